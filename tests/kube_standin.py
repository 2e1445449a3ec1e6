#!/usr/bin/env python3
"""A stateful stand-in for the Kubernetes API server, for tests where none can run.

    python tests/kube_standin.py --tls-dir DIR [--port 0] [--linger-ms 200]

Written from the documented API behaviour (API concepts, server-side apply, finalizers and
garbage collection, the StatefulSet controller's naming); it knows nothing of its client.
It generates a CA and a server certificate for 127.0.0.1 into DIR (ca.crt, tls.crt, tls.key),
serves HTTPS with them, and prints `listening on https://127.0.0.1:PORT` once it accepts
connections. TLS, not plain HTTP: a client's CA handling is part of what is tested, and
Python's ssl module makes it cheap (the certificates take ~50 ms to make).

What it does:
- every request needs `Authorization: Bearer <token>`; any non-empty token is accepted (401
  otherwise, as the API server answers an unauthenticated request when anonymous auth is off);
- discovery: /version, /api, /apis, /api/v1, /apis/apps/v1, /apis/policy/v1,
  /apis/rbac.authorization.k8s.io/v1;
- resources: namespaces, serviceaccounts, configmaps, secrets, services, pods,
  persistentvolumeclaims (v1), statefulsets (apps/v1), poddisruptionbudgets (policy/v1),
  clusterrolebindings (rbac.authorization.k8s.io/v1); namespaced ones need their namespace
  to exist (404 otherwise);
- verbs: GET, LIST (labelSelector: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`,
  `k`, `!k`), POST (409 AlreadyExists), PUT (409 Conflict on a stale
  metadata.resourceVersion), PATCH as server-side apply (`application/apply-patch+yaml`,
  `fieldManager` required, `force`), as JSON merge patch (`application/merge-patch+json`;
  `application/strategic-merge-patch+json` is treated the same, see limits), DELETE with
  `propagationPolicy` (query or DeleteOptions body; default Background) and `dryRun=All`
  on apply;
- metadata kept by the server: uid, resourceVersion (one counter for all objects),
  generation (bumped when anything but metadata and status changes), creationTimestamp,
  managedFields (fieldsV1 of the fields each manager set, operation Apply or Update);
- server-side apply: creates or updates; the fields a manager applied last time and leaves
  out now are removed (unless another manager owns them); a field another manager owns
  with a different value is a 409 conflict naming the manager and field, unless `force=true`,
  which takes it over; PUT and merge patches make their manager (`fieldManager`, else
  the first word of the User-Agent) own the fields they change;
- status subresource (`/status`) for statefulsets, pods, poddisruptionbudgets, services,
  namespaces and persistentvolumeclaims: writes to the main resource keep the old status,
  writes to /status change only the status;
- defaulting: a namespace gets status.phase Active; a service gets a clusterIP and, when
  of type NodePort or LoadBalancer, a nodePort per port from 30000-32767; a requested
  nodePort outside that range or already allocated is refused with 422 Invalid; secret
  stringData is moved into data (base64);
- the token controller: a Secret of type `kubernetes.io/service-account-token` annotated
  `kubernetes.io/service-account.name` gets `data.token` (an opaque signed-looking token,
  not a verifiable JWT), `data["ca.crt"]` (this server's CA) and `data.namespace` once that
  service account exists in its namespace;
- a StatefulSet "controller" acting at once on every write: pods `<name>-<i>` for i <
  spec.replicas, owned by the StatefulSet (ownerReferences, controller=true), labelled
  from the pod template plus `statefulset.kubernetes.io/pod-name`, phase Pending; one
  PersistentVolumeClaim per volumeClaimTemplate and pod (`<claim>-<name>-<i>`, not owned:
  the default retention policy keeps them); extra pods deleted on scale-down; status
  replicas, currentReplicas, readyReplicas (pods whose Ready condition is True) and
  observedGeneration;
- deletion: Background and Foreground delete the dependents (objects whose ownerReferences
  name the deleted uid), Orphan removes those references; a namespace's deletion deletes
  everything in it; pods and namespaces linger with metadata.deletionTimestamp set (a
  namespace in phase Terminating) for --linger-ms before they are gone, as kubelet's
  graceful termination and the namespace finalizer make them; other objects go at once.

Limits (what it does not do):
- no scheduler, kubelet or other controllers: pods stay Pending and never become Ready
  unless a client writes their status; no Deployments, ReplicaSets, endpoints, events;
- no authorization, admission webhooks, schema validation or OpenAPI, and only the
  defaulting listed above; every request is allowed once it carries a bearer token;
- lists are atomic in server-side apply (the real server merges list-map lists such as
  containers by their keys); strategic merge patch is treated as JSON merge patch;
  no JSON patch (415);
- no watch, no field selectors, no pagination (limit/continue ignored), no
  resourceVersion semantics on reads; DELETE preconditions and grace periods are ignored;
- Foreground deletion removes the dependents at once instead of waiting on the
  foregroundDeletion finalizer; finalizers set by clients are not honoured;
- one process, in memory, HTTP/1.1 only; nothing is persisted.

Python standard library, PyYAML and cryptography (both in the test bed's .venv).
"""
import argparse
import base64
import copy
import datetime
import ipaddress
import json
import os
import re
import ssl
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

# plural -> (group, version, kind, namespaced, has status subresource)
RESOURCES = {
    "namespaces": ("", "v1", "Namespace", False, True),
    "serviceaccounts": ("", "v1", "ServiceAccount", True, False),
    "configmaps": ("", "v1", "ConfigMap", True, False),
    "secrets": ("", "v1", "Secret", True, False),
    "services": ("", "v1", "Service", True, True),
    "pods": ("", "v1", "Pod", True, True),
    "persistentvolumeclaims": ("", "v1", "PersistentVolumeClaim", True, True),
    "statefulsets": ("apps", "v1", "StatefulSet", True, True),
    "poddisruptionbudgets": ("policy", "v1", "PodDisruptionBudget", True, True),
    "clusterrolebindings": ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", False, False),
}
LINGERING = {"pods", "namespaces"}
NODE_PORTS = range(30000, 32768)
VERBS = ["create", "delete", "get", "list", "patch", "update"]


def api_version(group, version):
    return f"{group}/{version}" if group else version


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    def __init__(self, code, reason, message, details=None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self):
        s = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            s["details"] = self.details
        return s


def not_found(plural, name):
    kind = RESOURCES[plural][0]
    group = f".{kind}" if kind else ""
    return ApiError(404, "NotFound", f'{plural}{group} "{name}" not found',
                    {"name": name, "kind": plural})


# ---- field paths: a set of tuples of keys; lists and scalars are leaves ----

def leaves(obj, prefix=()):
    if isinstance(obj, dict) and obj:
        out = set()
        for k, v in obj.items():
            out |= leaves(v, prefix + (k,))
        return out
    return {prefix}


def get_path(obj, path):
    for k in path:
        if not isinstance(obj, dict) or k not in obj:
            return None, False
        obj = obj[k]
    return obj, True


def del_path(obj, path):
    parents = []
    for k in path[:-1]:
        if not isinstance(obj, dict) or k not in obj:
            return
        parents.append((obj, k))
        obj = obj[k]
    if isinstance(obj, dict):
        obj.pop(path[-1], None)
    # Empty maps left behind go too.
    for parent, k in reversed(parents):
        if parent[k] == {}:
            del parent[k]


def merge(base, patch):
    """JSON merge patch (RFC 7386); also how applied maps are merged."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(base) if isinstance(base, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge(out.get(k), v)
    return out


def fields_v1(paths):
    tree = {}
    for p in sorted(paths):
        node = tree
        for k in p:
            node = node.setdefault(f"f:{k}", {})
    return tree


def managed_paths(obj):
    """Only what a client manages: not the server's metadata, not status."""
    body = {k: v for k, v in obj.items() if k not in ("status", "apiVersion", "kind")}
    meta = {k: v for k, v in body.get("metadata", {}).items()
            if k in ("labels", "annotations", "ownerReferences", "finalizers")}
    body.pop("metadata", None)
    if meta:
        body["metadata"] = meta
    return leaves(body) - {()}


def selector_matches(selector, labels):
    if not selector:
        return True
    for term in re.findall(r"(?:[^,(]|\([^)]*\))+", selector):
        term = term.strip()
        m = re.fullmatch(r"([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)", term)
        if m:
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            has = key in labels and labels[key] in values
            if (op == "in") != has:
                return False
            continue
        m = re.fullmatch(r"([\w./-]+)\s*(==|=|!=)\s*([\w.-]*)", term)
        if m:
            key, op, value = m.groups()
            equal = labels.get(key) == value
            if (op == "!=") == equal:
                return False
            continue
        if term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


class Store:
    def __init__(self, linger):
        self.lock = threading.RLock()
        self.objects = {}  # (plural, namespace or "", name) -> object
        self.owned = {}  # key -> {manager: (operation, set of paths)}
        self.rv = 0
        self.linger = linger
        self.ca_pem = b""

    def next_rv(self):
        self.rv += 1
        return str(self.rv)

    # ---- reads ----
    def get(self, plural, ns, name):
        obj = self.objects.get((plural, ns, name))
        if obj is None:
            raise not_found(plural, name)
        return obj

    def list(self, plural, ns, selector):
        items = [o for (p, n, _), o in sorted(self.objects.items())
                 if p == plural and (ns is None or n == ns)
                 and selector_matches(selector, o["metadata"].get("labels", {}))]
        return items

    def require_namespace(self, plural, ns):
        if RESOURCES[plural][3]:
            nsobj = self.objects.get(("namespaces", "", ns))
            if nsobj is None:
                raise not_found("namespaces", ns)
            return nsobj
        return None

    # ---- writes ----
    def check_body(self, plural, ns, name, body):
        group, version, kind, namespaced, _ = RESOURCES[plural]
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body is not an object")
        want = api_version(group, version)
        if body.get("apiVersion") != want or body.get("kind") != kind:
            raise ApiError(400, "BadRequest",
                           f"expected apiVersion {want!r} and kind {kind!r}, "
                           f"got {body.get('apiVersion')!r} and {body.get('kind')!r}")
        meta = body.setdefault("metadata", {})
        if name is not None and meta.get("name", name) != name:
            raise ApiError(400, "BadRequest",
                           f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})")
        if not meta.get("name") and name is None:
            raise ApiError(422, "Invalid", f"{kind}.{group or 'core'} is invalid: metadata.name: Required value")
        if namespaced:
            if meta.get("namespace", ns) != ns:
                raise ApiError(400, "BadRequest",
                               "the namespace of the provided object does not match the namespace sent on the request")
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)

    def store(self, plural, ns, obj, old, dry_run=False):
        """Defaulting, server metadata, then the controllers."""
        _, _, kind, _, has_status = RESOURCES[plural]
        meta = obj["metadata"]
        if old is not None:
            if old["metadata"].get("deletionTimestamp"):
                meta["deletionTimestamp"] = old["metadata"]["deletionTimestamp"]
            for k in ("uid", "creationTimestamp"):
                meta[k] = old["metadata"][k]
            if has_status and "status" in old:
                obj["status"] = old["status"]
            elif has_status:
                obj.pop("status", None)
            spec_old = {k: v for k, v in old.items() if k not in ("metadata", "status")}
            spec_new = {k: v for k, v in obj.items() if k not in ("metadata", "status")}
            gen = old["metadata"].get("generation", 1)
            meta["generation"] = gen + 1 if spec_old != spec_new else gen
        else:
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now()
            meta["generation"] = 1
            if has_status:
                obj.pop("status", None)
        self.default(plural, obj, old)
        if dry_run:
            meta["resourceVersion"] = old["metadata"]["resourceVersion"] if old else "0"
            return obj
        meta["resourceVersion"] = self.next_rv()
        self.objects[(plural, ns, meta["name"])] = obj
        if plural == "statefulsets":
            self.reconcile_statefulset(obj)
        if plural == "pods":
            self.refresh_owner_status(obj)
        return obj

    def default(self, plural, obj, old):
        if plural == "namespaces":
            obj.setdefault("status", {"phase": "Active"})
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
        if plural == "secrets":
            data = obj.setdefault("data", {})
            for k, v in (obj.pop("stringData", None) or {}).items():
                data[k] = base64.b64encode(v.encode()).decode()
            for k, v in data.items():
                try:
                    base64.b64decode(v, validate=True)
                except Exception:
                    raise ApiError(422, "Invalid", f"Secret is invalid: data[{k}]: not base64")
            sa = (obj["metadata"].get("annotations") or {}).get("kubernetes.io/service-account.name")
            ns = obj["metadata"].get("namespace", "")
            if (obj.get("type") == "kubernetes.io/service-account-token" and sa
                    and ("serviceaccounts", ns, sa) in self.objects and "token" not in data):
                enc = lambda b: base64.b64encode(b).decode()
                body = enc(json.dumps({"sub": f"system:serviceaccount:{ns}:{sa}"}).encode())
                data["token"] = enc(f"standin.{body}.{uuid.uuid4().hex}".encode())
                data["ca.crt"] = enc(self.ca_pem)
                data["namespace"] = enc(ns.encode())
            if not data:
                obj.pop("data")
        if plural == "services":
            self.default_service(obj, old)

    def default_service(self, obj, old):
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        # A headless service ("None") or an address the client chose is kept.
        spec["clusterIP"] = spec.get("clusterIP") or (old or {}).get("spec", {}).get("clusterIP") or \
            f"10.96.{self.rv // 250 % 250}.{self.rv % 250 + 1}"
        spec.setdefault("sessionAffinity", "None")
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        taken = {
            p.get("nodePort")
            for (pl, n, nm), o in self.objects.items() if pl == "services" and (n, nm) != key
            for p in o.get("spec", {}).get("ports", [])
        }
        old_ports = {p.get("port"): p.get("nodePort")
                     for p in (old or {}).get("spec", {}).get("ports", [])}
        for i, port in enumerate(spec.get("ports", [])):
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
            if spec["type"] not in ("NodePort", "LoadBalancer"):
                if "nodePort" in port:
                    raise ApiError(422, "Invalid",
                                   f"Service is invalid: spec.ports[{i}].nodePort: Forbidden: may not be used when `type` is '{spec['type']}'")
                continue
            np = port.get("nodePort")
            if np is None:
                np = old_ports.get(port.get("port")) or next(p for p in NODE_PORTS if p not in taken)
            if np not in NODE_PORTS:
                raise ApiError(422, "Invalid",
                               f"Service is invalid: spec.ports[{i}].nodePort: Invalid value: {np}: provided port is not in the valid range. The range of valid ports is 30000-32767")
            if np in taken:
                raise ApiError(422, "Invalid",
                               f"Service is invalid: spec.ports[{i}].nodePort: Invalid value: {np}: provided port is already allocated")
            port["nodePort"] = np
            taken.add(np)

    def write_owned(self, key, manager, operation, paths, others_lose):
        owners = self.owned.setdefault(key, {})
        for m, (op, ps) in list(owners.items()):
            if m != manager:
                ps -= others_lose
                if not ps:
                    del owners[m]
        if operation == "Update" and manager in owners:
            paths = paths | owners[manager][1]
        owners[manager] = (operation, set(paths))

    def managed_fields(self, key, api):
        return [
            {"manager": m, "operation": op, "apiVersion": api, "time": now(),
             "fieldsType": "FieldsV1", "fieldsV1": fields_v1(ps)}
            for m, (op, ps) in sorted(self.owned.get(key, {}).items())
        ]

    def finish(self, plural, key, obj):
        group, version, _, _, _ = RESOURCES[plural]
        obj["metadata"]["managedFields"] = self.managed_fields(key, api_version(group, version))
        return obj

    def apply(self, plural, ns, name, body, manager, force, dry_run):
        self.check_body(plural, ns, name, body)
        self.require_namespace(plural, ns)
        key = (plural, ns, name)
        old = self.objects.get(key)
        applied = managed_paths(body)
        if old is None:
            obj = copy.deepcopy(body)
            obj["metadata"].pop("managedFields", None)
            obj["metadata"].pop("resourceVersion", None)
            stored = self.store(plural, ns, obj, None, dry_run)
            if not dry_run:
                self.owned[key] = {manager: ("Apply", applied)}
            return 201, stored
        owners = self.owned.get(key, {})
        conflicts = []
        for m, (op, ps) in owners.items():
            if m == manager:
                continue
            for p in sorted(ps & applied):
                if get_path(old, p) != get_path(body, p):
                    conflicts.append((m, p))
        if conflicts and not force:
            lines = "\n".join(f'- conflict with "{m}": .{".".join(p)}' for m, p in conflicts)
            raise ApiError(409, "Conflict",
                           f"Apply failed with {len(conflicts)} conflict{'s' if len(conflicts) > 1 else ''}: {lines}",
                           {"causes": [{"reason": "FieldManagerConflict",
                                        "message": f'conflict with "{m}"',
                                        "field": "." + ".".join(p)} for m, p in conflicts]})
        obj = copy.deepcopy(old)
        others = set()
        for m, (op, ps) in owners.items():
            if m != manager:
                others |= ps
        for p in owners.get(manager, (None, set()))[1] - applied - others:
            del_path(obj, p)
        incoming = {k: v for k, v in body.items() if k != "metadata"}
        obj = merge(obj, incoming)
        for k in ("labels", "annotations", "ownerReferences", "finalizers"):
            if k in body["metadata"]:
                obj["metadata"][k] = merge(obj["metadata"].get(k), body["metadata"][k])
        if dry_run:
            return 200, self.store(plural, ns, obj, old, dry_run)
        before = copy.deepcopy(self.owned.get(key, {}))
        self.write_owned(key, manager, "Apply", applied, applied)
        if self.same(old, obj) and self.owned.get(key) == before:
            # Nothing changed: no new resourceVersion, as the API server does.
            return 200, old
        return 200, self.store(plural, ns, obj, old, dry_run)

    @staticmethod
    def same(old, new):
        def content(o):
            o = copy.deepcopy(o)
            o.pop("status", None)
            for k in ("resourceVersion", "managedFields", "generation", "uid", "creationTimestamp"):
                o["metadata"].pop(k, None)
            return o
        return content(old) == content(new)

    def update(self, plural, ns, name, obj, manager, status_only, create=False):
        key = (plural, ns, name)
        old = self.objects.get(key)
        if old is None and not create:
            raise not_found(plural, name)
        if old is not None and create:
            raise ApiError(409, "AlreadyExists", f'{plural} "{name}" already exists',
                           {"name": name, "kind": plural})
        rv = obj["metadata"].get("resourceVersion")
        if old is not None and rv and rv != old["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict",
                           f'Operation cannot be fulfilled on {plural} "{name}": the object has been modified; please apply your changes to the latest version and try again')
        if status_only:
            new = copy.deepcopy(old)
            new["status"] = obj.get("status", {})
            new["metadata"]["resourceVersion"] = self.next_rv()
            self.objects[key] = new
            if plural == "pods":
                self.refresh_owner_status(new)
            return new
        obj["metadata"].pop("managedFields", None)
        changed = managed_paths(obj)
        if old is not None:
            changed = {p for p in changed if get_path(old, p) != get_path(obj, p)}
        stored = self.store(plural, ns, obj, old)
        self.write_owned(key, manager, "Update", changed, changed)
        return stored

    # ---- the StatefulSet controller ----
    def reconcile_statefulset(self, sts):
        ns, name = sts["metadata"]["namespace"], sts["metadata"]["name"]
        spec = sts.get("spec", {})
        replicas = spec.get("replicas", 1)
        template = spec.get("template", {})
        owner = {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": name,
                 "uid": sts["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}
        for i in range(replicas):
            pod_name = f"{name}-{i}"
            for claim in spec.get("volumeClaimTemplates", []):
                claim_name = f"{claim['metadata']['name']}-{pod_name}"
                if ("persistentvolumeclaims", ns, claim_name) not in self.objects:
                    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                           "metadata": {"name": claim_name, "namespace": ns,
                                        "labels": dict(template.get("metadata", {}).get("labels", {}))},
                           "spec": copy.deepcopy(claim.get("spec", {}))}
                    self.store("persistentvolumeclaims", ns, pvc, None)
                    self.objects[("persistentvolumeclaims", ns, claim_name)]["status"] = {"phase": "Pending"}
            if ("pods", ns, pod_name) in self.objects:
                continue
            labels = dict(template.get("metadata", {}).get("labels", {}))
            labels["statefulset.kubernetes.io/pod-name"] = pod_name
            pod = {"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": pod_name, "namespace": ns, "labels": labels,
                                "annotations": dict(template.get("metadata", {}).get("annotations", {})),
                                "ownerReferences": [owner]},
                   "spec": copy.deepcopy(template.get("spec", {}))}
            self.store("pods", ns, pod, None)
            self.objects[("pods", ns, pod_name)]["status"] = {"phase": "Pending"}
            self.owned[("pods", ns, pod_name)] = {"statefulset-controller": ("Update", managed_paths(pod))}
        for (p, n, nm), o in list(self.objects.items()):
            m = re.fullmatch(re.escape(name) + r"-(\d+)", nm)
            if p == "pods" and n == ns and m and int(m.group(1)) >= replicas and self.owned_by(o, sts):
                self.delete("pods", ns, nm, "Background")
        self.refresh_status(sts)

    @staticmethod
    def owned_by(obj, owner):
        return any(r.get("uid") == owner["metadata"]["uid"]
                   for r in obj["metadata"].get("ownerReferences", []))

    def refresh_status(self, sts):
        ns = sts["metadata"]["namespace"]
        pods = [o for (p, n, _), o in self.objects.items()
                if p == "pods" and n == ns and self.owned_by(o, sts)
                and not o["metadata"].get("deletionTimestamp")]
        ready = sum(1 for o in pods if any(c.get("type") == "Ready" and c.get("status") == "True"
                                          for c in o.get("status", {}).get("conditions", [])))
        sts["status"] = {"replicas": len(pods), "currentReplicas": len(pods),
                         "readyReplicas": ready, "availableReplicas": ready,
                         "observedGeneration": sts["metadata"]["generation"]}

    def refresh_owner_status(self, pod):
        for ref in pod["metadata"].get("ownerReferences", []):
            if ref.get("kind") == "StatefulSet":
                sts = self.objects.get(("statefulsets", pod["metadata"]["namespace"], ref["name"]))
                if sts is not None and sts["metadata"]["uid"] == ref.get("uid"):
                    self.refresh_status(sts)

    # ---- deletion ----
    def delete(self, plural, ns, name, propagation):
        key = (plural, ns, name)
        obj = self.objects.get(key)
        if obj is None:
            raise not_found(plural, name)
        uid = obj["metadata"]["uid"]
        for k, o in list(self.objects.items()):
            refs = o["metadata"].get("ownerReferences", [])
            if any(r.get("uid") == uid for r in refs) and k in self.objects:
                if propagation == "Orphan":
                    o["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]
                    o["metadata"]["resourceVersion"] = self.next_rv()
                else:
                    self.delete(k[0], k[1], k[2], propagation)
        if plural == "namespaces":
            for k in [k for k in self.objects if k[1] == name and k[0] != "namespaces"]:
                if k in self.objects:
                    self.delete(k[0], k[1], k[2], "Background")
        if plural in LINGERING and self.linger > 0:
            if not obj["metadata"].get("deletionTimestamp"):
                obj["metadata"]["deletionTimestamp"] = now()
                obj["metadata"]["resourceVersion"] = self.next_rv()
                if plural == "namespaces":
                    obj.setdefault("status", {})["phase"] = "Terminating"
                threading.Timer(self.linger, self.remove, args=(key, uid)).start()
                if plural == "pods":
                    self.refresh_owner_status(obj)
            return obj
        self.remove(key, uid)
        return obj

    def remove(self, key, uid):
        with self.lock:
            obj = self.objects.get(key)
            if obj is not None and obj["metadata"]["uid"] == uid:
                del self.objects[key]
                self.owned.pop(key, None)
                if key[0] == "pods":
                    # The controller acts again once a terminating pod is gone (it may have
                    # to replace it).
                    for ref in obj["metadata"].get("ownerReferences", []):
                        sts = self.objects.get(("statefulsets", key[1], ref.get("name")))
                        if sts is not None and sts["metadata"]["uid"] == ref.get("uid"):
                            self.reconcile_statefulset(sts)


def discovery(group, version):
    resources = []
    for plural, (g, v, kind, namespaced, has_status) in sorted(RESOURCES.items()):
        if (g, v) != (group, version):
            continue
        resources.append({"name": plural, "singularName": kind.lower(), "namespaced": namespaced,
                          "kind": kind, "verbs": VERBS})
        if has_status:
            resources.append({"name": f"{plural}/status", "singularName": "", "namespaced": namespaced,
                              "kind": kind, "verbs": ["get", "patch", "update"]})
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": api_version(group, version), "resources": resources}


def group_list():
    groups = sorted({g for g, *_ in RESOURCES.values() if g})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
        {"name": g, "versions": [{"groupVersion": f"{g}/v1", "version": "v1"}],
         "preferredVersion": {"groupVersion": f"{g}/v1", "version": "v1"}} for g in groups]}


ROUTE = re.compile(
    r"^/(?:api/(?P<cv>v1)|apis/(?P<g>[a-z0-9.]+)/(?P<gv>v1))"
    r"(?:/namespaces/(?P<ns>[a-z0-9-]+)(?=/))?"
    r"/(?P<plural>[a-z]+)(?:/(?P<name>[a-z0-9.-]+))?(?P<status>/status)?$"
)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kube-standin"

    def log_message(self, fmt, *args):
        pass

    def send_json(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        return raw

    def handle_any(self, method):
        try:
            raw = self.body()
            auth = self.headers.get("Authorization", "")
            if not auth.startswith("Bearer ") or not auth[7:].strip():
                raise ApiError(401, "Unauthorized", "Unauthorized")
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))
            code, out = self.route(method, url.path, query, raw)
            self.send_json(code, out)
        except ApiError as e:
            self.send_json(e.code, e.status())
        except Exception as e:  # a bug here must not look like an API answer
            self.send_json(500, ApiError(500, "InternalError", f"stand-in error: {e!r}").status())

    def route(self, method, path, query, raw):
        store = self.server.store
        if method == "GET":
            if path == "/version":
                return 200, {"major": "1", "minor": "31", "gitVersion": "v1.31.0-standin",
                             "platform": "linux/amd64"}
            if path == "/api":
                return 200, {"kind": "APIVersions", "versions": ["v1"],
                             "serverAddressByClientCIDRs": []}
            if path == "/apis":
                return 200, group_list()
            if path == "/api/v1":
                return 200, discovery("", "v1")
            m = re.fullmatch(r"/apis/([a-z0-9.]+)/(v1)", path)
            if m and any(g == m.group(1) for g, *_ in RESOURCES.values()):
                return 200, discovery(m.group(1), m.group(2))
        m = ROUTE.match(path)
        if not m or m.group("plural") not in RESOURCES:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        plural, ns, name = m.group("plural"), m.group("ns"), m.group("name")
        group, version, kind, namespaced, has_status = RESOURCES[plural]
        if (m.group("g") or "", m.group("gv") or m.group("cv")) != (group, version):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if namespaced and ns is None and name is not None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not namespaced and ns is not None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        status_only = m.group("status") is not None
        if status_only and (not has_status or name is None):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        ns_key = ns if namespaced else ""
        manager = query.get("fieldManager") or (self.headers.get("User-Agent") or "unknown").split("/")[0].split()[0]
        with store.lock:
            if method == "GET" and name is None:
                items = store.list(plural, ns_key if ns is not None or not namespaced else None,
                                   query.get("labelSelector", ""))
                items = [store.finish(plural, (plural, o["metadata"].get("namespace", ""), o["metadata"]["name"]),
                                      copy.deepcopy(o)) for o in items]
                return 200, {"kind": f"{kind}List", "apiVersion": api_version(group, version),
                             "metadata": {"resourceVersion": str(store.rv)}, "items": items}
            if method == "GET":
                return 200, store.finish(plural, (plural, ns_key, name),
                                         copy.deepcopy(store.get(plural, ns_key, name)))
            if method == "POST" and name is None:
                body = json.loads(raw or b"{}")
                store.check_body(plural, ns_key, None, body)
                store.require_namespace(plural, ns_key)
                name = body["metadata"]["name"]
                obj = store.update(plural, ns_key, name, body, manager, False, create=True)
                return 201, store.finish(plural, (plural, ns_key, name), copy.deepcopy(obj))
            if name is None:
                raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on a collection here")
            key = (plural, ns_key, name)
            if method == "PUT":
                body = json.loads(raw or b"{}")
                store.check_body(plural, ns_key, name, body)
                obj = store.update(plural, ns_key, name, body, manager, status_only)
                return 200, store.finish(plural, key, copy.deepcopy(obj))
            if method == "PATCH":
                ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
                if ctype == "application/apply-patch+yaml":
                    if status_only:
                        raise ApiError(415, "UnsupportedMediaType", "apply to /status is not supported here")
                    if not query.get("fieldManager"):
                        raise ApiError(400, "BadRequest",
                                       "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch")
                    body = yaml.safe_load(raw.decode() or "{}")
                    force = query.get("force") == "true"
                    dry = query.get("dryRun") == "All"
                    code, obj = store.apply(plural, ns_key, name, body, query["fieldManager"], force, dry)
                    return code, store.finish(plural, key, copy.deepcopy(obj))
                if ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
                    old = store.get(plural, ns_key, name)
                    patch = json.loads(raw or b"{}")
                    new = merge(old, patch)
                    if status_only:
                        new = dict(old, status=new.get("status", {}))
                    new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
                    obj = store.update(plural, ns_key, name, new, manager, status_only)
                    return 200, store.finish(plural, key, copy.deepcopy(obj))
                raise ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - accepted media types include: application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml (got {ctype})")
            if method == "DELETE":
                options = json.loads(raw) if raw else {}
                propagation = query.get("propagationPolicy") or options.get("propagationPolicy") or "Background"
                if propagation not in ("Background", "Foreground", "Orphan"):
                    raise ApiError(400, "BadRequest", f"propagationPolicy {propagation!r} is not one of Background, Foreground, Orphan")
                obj = store.delete(plural, ns_key, name, propagation)
                return 200, store.finish(plural, key, copy.deepcopy(obj))
        raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed")

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_PUT(self):
        self.handle_any("PUT")

    def do_PATCH(self):
        self.handle_any("PATCH")

    def do_DELETE(self):
        self.handle_any("DELETE")


def make_certificates(directory):
    """A CA and a server certificate for 127.0.0.1 and localhost, signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    end = start + datetime.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("kube-standin-ca")).issuer_name(name("kube-standin-ca"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name("kube-apiserver")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    pem = serialization.Encoding.PEM
    files = {
        "ca.crt": ca.public_bytes(pem),
        "tls.crt": cert.public_bytes(pem),
        "tls.key": key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    }
    for f, data in files.items():
        path = os.path.join(directory, f)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
    return os.path.join(directory, "tls.crt"), os.path.join(directory, "tls.key")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tls-dir", required=True, help="where ca.crt, tls.crt and tls.key are written")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--linger-ms", type=int, default=200,
                    help="how long deleted pods and namespaces stay visible")
    args = ap.parse_args()
    cert, key = make_certificates(args.tls_dir)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.store = Store(args.linger_ms / 1000)
    with open(os.path.join(args.tls_dir, "ca.crt"), "rb") as f:
        server.store.ca_pem = f.read()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print(f"listening on https://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
