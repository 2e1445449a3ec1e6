#!/usr/bin/env python3
"""The floor for a 3-member OpenBao raft bootstrap on this machine: the same OpenBao calls
vaultform makes, in a tight loop polling every 50 ms, with the best server settings
(raft performance_multiplier = 1, autopilot server_stabilization_time 1s), no KMS, no S3,
no load balancer. As vaultform does, the followers join and unseal in parallel (one thread
each: join, then unseal). Prints one JSON line: seconds from "three members answer" to
"three unsealed voters under one active leader".

Usage: bootstrap-floor.py BAO_BINARY NET   (NET like 127.0.89. : members on NET11-13)
       bootstrap-floor.py --existing CA_FILE URL0 URL1 URL2
The second form starts nothing: it bootstraps three uninitialised members that already run
(the Kubernetes test bed's pods, through their load balancers, TLS with CA_FILE), URL0 the
one that initialises and the others' join address.
Every process it starts is stopped by its own PID before it exits.
"""
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

POLL = 0.05
# The TLS context of --existing (None: plain HTTP).
TLS = None


def call(method, url, body=None, token=None, timeout=5):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if token:
        req.add_header("X-Vault-Token", token)
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=TLS) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, None


def wait(what, probe, timeout=180):
    deadline = time.monotonic() + timeout
    while True:
        try:
            v = probe()
            if v:
                return v
        except (OSError, urllib.error.URLError):
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"floor: timed out {what}")
        time.sleep(POLL)


def bootstrap(urls, ca_pem=None):
    """Seconds from three members answering uninitialised to three unsealed voters under
    one leader; urls[0] initialises, the others join it."""
    join = {"leader_api_addr": urls[0]}
    if ca_pem:
        join["leader_ca_cert"] = ca_pem
    for u in urls:
        wait("start", lambda u=u: call("GET", u + "/v1/sys/health")[0] in (501, 503))
    t0 = time.monotonic()
    _, init = call("PUT", urls[0] + "/v1/sys/init",
                   {"secret_shares": 5, "secret_threshold": 3}, timeout=60)
    keys, token = init["keys_base64"], init["root_token"]

    def unseal(u):
        for k in keys[:3]:
            call("PUT", u + "/v1/sys/unseal", {"key": k})
        wait("unseal", lambda: not call("GET", u + "/v1/sys/seal-status")[1]["sealed"])

    unseal(urls[0])
    wait("active", lambda: call("GET", urls[0] + "/v1/sys/health")[0] == 200)
    wait("autopilot", lambda: call(
        "POST", urls[0] + "/v1/sys/storage/raft/autopilot/configuration",
        {"server_stabilization_time": "1s"}, token)[0] in (200, 204))
    failed = []

    def joined(u):
        # A member with retry_join in its configuration may have joined by itself.
        _, body = call("POST", u + "/v1/sys/storage/raft/join", join)
        if body and body.get("joined"):
            return True
        return (call("GET", u + "/v1/sys/seal-status")[1] or {}).get("initialized")

    def join_and_unseal(u):
        try:
            wait("join", lambda: joined(u))
            unseal(u)
        except BaseException as e:  # SystemExit from wait() included
            failed.append(f"{u}: {e}")

    threads = [threading.Thread(target=join_and_unseal, args=(u,)) for u in urls[1:]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failed:
        raise SystemExit(f"floor: {failed}")

    def voters():
        status, body = call("GET", urls[0] + "/v1/sys/storage/raft/configuration",
                            token=token)
        if status != 200:
            return False
        servers = body["data"]["config"]["servers"]
        return sum(s["voter"] for s in servers) == 3 and sum(s["leader"] for s in servers) == 1

    wait("voters", voters)
    return round(time.monotonic() - t0, 2)


def main():
    global TLS
    if sys.argv[1] == "--existing":
        ca_file, urls = sys.argv[2], sys.argv[3:6]
        TLS = ssl.create_default_context(cafile=ca_file)
        with open(ca_file) as f:
            print(json.dumps({"floor_s": bootstrap(urls, f.read())}))
        return
    bao, net = sys.argv[1], sys.argv[2]
    work = tempfile.mkdtemp(prefix="vaultform-floor-")
    procs = []
    try:
        urls = []
        for i in range(3):
            addr = f"{net}{11 + i}"
            d = os.path.join(work, f"n{i}")
            os.makedirs(os.path.join(d, "data"))
            cfg = os.path.join(d, "server.hcl")
            with open(cfg, "w") as f:
                f.write(
                    f'storage "raft" {{\n  path = "{d}/data"\n  node_id = "n{i}"\n'
                    f"  performance_multiplier = 1\n}}\n"
                    f'listener "tcp" {{\n  address = "{addr}:8200"\n'
                    f'  cluster_address = "{addr}:8201"\n  tls_disable = true\n}}\n'
                    f'api_addr = "http://{addr}:8200"\ncluster_addr = "https://{addr}:8201"\n'
                )
            log = open(os.path.join(d, "log"), "w")
            procs.append(
                subprocess.Popen([bao, "server", f"-config={cfg}"], stdout=log, stderr=log)
            )
            urls.append(f"http://{addr}:8200")
        print(json.dumps({"floor_s": bootstrap(urls)}))
    finally:
        for p in procs:
            p.kill()
            p.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
