//! One Kubernetes object handled the way a provider handles a resource: server-side apply
//! under vaultform's one field manager, a read of the fields vaultform sets (for a diff
//! attribute by attribute), and a delete that waits until the object is gone. Each
//! tolerates an object that is not there.

use std::time::Duration;

use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use serde_json::Value;

use crate::retry::{Backoff, Jitter, TryPollError, try_poll};

/// The field manager of everything vaultform applies.
pub const FIELD_MANAGER: &str = "vaultform";

/// What the API server answers (422) for a node port another Service holds.
const PORT_TAKEN: &str = "provided port is already allocated";

/// Why an operation on an object failed.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ApplyError {
    #[error("{verb} {object}: {message}")]
    #[diagnostic(code(vaultform::kube::api))]
    Api {
        verb: &'static str,
        object: String,
        message: String,
        /// The HTTP status the API server answered, if it answered.
        code: Option<u16>,
    },
    #[error("{object} is not a Kubernetes object: {message}")]
    #[diagnostic(code(vaultform::kube::object))]
    Invalid { object: String, message: String },
    #[error("{object} is still there: {source}")]
    #[diagnostic(
        code(vaultform::kube::delete),
        help("a finalizer or a pod's graceful termination may hold it; `kubectl describe` it")
    )]
    NotGone {
        object: String,
        #[source]
        source: crate::retry::PollError,
    },
}

impl ApplyError {
    /// Worth trying again: the server was unreachable, overloaded or failing; or a node port
    /// it reports taken, which two creates of one Service racing each other (a killed run's
    /// request still in the server, and the next run's) answer the loser with, and which the
    /// API server's repair loop frees when it leaked.
    pub fn retryable(&self) -> bool {
        match self {
            ApplyError::Api { code, message, .. } => match code {
                None => true,
                Some(422) => message.contains(PORT_TAKEN),
                Some(c) => *c == 429 || *c >= 500,
            },
            ApplyError::Invalid { .. } | ApplyError::NotGone { .. } => false,
        }
    }
}

/// Which object: its API resource, namespace (none when cluster-scoped) and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub resource: ApiResource,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    /// The reference of a typed object (e.g. from `manifests`), and the object as JSON.
    pub fn of<K>(obj: &K) -> Result<(ObjectRef, Value), ApplyError>
    where
        K: kube::Resource<DynamicType = ()> + serde::Serialize,
    {
        let meta = obj.meta();
        let name = meta.name.clone().unwrap_or_default();
        let resource = ApiResource::erase::<K>(&());
        let object = format!("{} {name}", resource.kind);
        let value = serde_json::to_value(obj).map_err(|e| ApplyError::Invalid {
            object: object.clone(),
            message: e.to_string(),
        })?;
        Ok((
            ObjectRef {
                resource,
                namespace: meta.namespace.clone(),
                name,
            },
            value,
        ))
    }

    /// A reference from the kind's group, version, kind and plural.
    pub fn new(
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> ObjectRef {
        let gvk = GroupVersionKind::gvk(group, version, kind);
        ObjectRef {
            resource: ApiResource::from_gvk_with_plural(&gvk, plural),
            namespace: namespace.map(str::to_string),
            name: name.to_string(),
        }
    }

    fn api(&self, client: &kube::Client) -> Api<DynamicObject> {
        match &self.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &self.resource),
            None => Api::all_with(client.clone(), &self.resource),
        }
    }

    fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.resource.kind, self.name),
            None => format!("{} {}", self.resource.kind, self.name),
        }
    }

    fn failed(&self, verb: &'static str, e: kube::Error) -> ApplyError {
        let code = match &e {
            kube::Error::Api(status) => Some(status.code),
            _ => None,
        };
        let mut message = match &e {
            kube::Error::Api(status) => format!("{} ({})", status.message, status.reason),
            other => other.to_string(),
        };
        if message.contains(PORT_TAKEN) {
            message.push_str(
                "; if no Service holds that port, a create of this one was cut short (an apply killed mid-request) and the API server holds the port until its repair loop frees it, minutes later: apply again then",
            );
        }
        ApplyError::Api {
            verb,
            object: self.describe(),
            message,
            code,
        }
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Server-side apply of `desired` under [`FIELD_MANAGER`], taking over fields another
/// manager changed (`force`: vaultform's intent wins, and `plan` showed the drift first).
/// Creates the object when it is missing. Returns the object as the server stored it.
pub async fn apply(
    client: &kube::Client,
    target: &ObjectRef,
    desired: &Value,
) -> Result<Value, ApplyError> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let stored = target
        .api(client)
        .patch(&target.name, &params, &Patch::Apply(desired))
        .await
        .map_err(|e| target.failed("apply", e))?;
    Ok(serde_json::to_value(stored).unwrap_or(Value::Null))
}

/// What a read found.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// The live object, projected onto the shape of `desired`: the fields vaultform sets,
    /// with the server's values.
    pub managed: Value,
    /// Every field whose live value differs from the desired one, by path.
    pub drift: Vec<Difference>,
    /// The field managers that own fields of the object besides vaultform.
    pub other_managers: Vec<String>,
}

/// One field that differs.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    /// `spec.replicas`, `spec.template.spec.containers[0].image`.
    pub path: String,
    pub desired: Value,
    /// `None` when the live object lacks the field.
    pub live: Option<Value>,
}

/// Reads the object: `None` when it does not exist (or is being deleted).
pub async fn read(
    client: &kube::Client,
    target: &ObjectRef,
    desired: &Value,
) -> Result<Option<Observed>, ApplyError> {
    let live = match target.api(client).get_opt(&target.name).await {
        Ok(Some(obj)) => serde_json::to_value(obj).unwrap_or(Value::Null),
        Ok(None) => return Ok(None),
        Err(e) => return Err(target.failed("read", e)),
    };
    if live.pointer("/metadata/deletionTimestamp").is_some() {
        return Ok(None);
    }
    let managed = project(&live, desired).unwrap_or(Value::Null);
    let mut drift = Vec::new();
    differences(desired, Some(&managed), String::new(), &mut drift);
    Ok(Some(Observed {
        managed,
        drift,
        other_managers: other_managers(&live),
    }))
}

/// The managers of `live`'s fields besides vaultform, sorted. A manager that wrote only the
/// status subresource (the controller reporting a StatefulSet's replicas, the kubelet a
/// pod's phase) owns nothing vaultform sets, so it is not one.
fn other_managers(live: &Value) -> Vec<String> {
    let mut managers: Vec<String> = live
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|m| m.get("subresource").and_then(Value::as_str) != Some("status"))
        .filter_map(|m| m.get("manager").and_then(Value::as_str))
        .filter(|m| *m != FIELD_MANAGER)
        .map(str::to_string)
        .collect();
    managers.sort();
    managers.dedup();
    managers
}

/// `live` cut down to the shape of `shape`: maps to the keys `shape` has, lists of the same
/// length element by element, anything else whole. What the server added (defaults, status,
/// its metadata) falls away; what it changed stays visible.
pub fn project(live: &Value, shape: &Value) -> Option<Value> {
    match (live, shape) {
        (Value::Object(l), Value::Object(s)) => Some(Value::Object(
            s.iter()
                .filter_map(|(k, sv)| Some((k.clone(), project(l.get(k)?, sv)?)))
                .collect(),
        )),
        (Value::Array(l), Value::Array(s)) if l.len() == s.len() => Some(Value::Array(
            l.iter()
                .zip(s)
                .map(|(lv, sv)| project(lv, sv).unwrap_or(Value::Null))
                .collect(),
        )),
        (other, _) => Some(other.clone()),
    }
}

/// The leaves of `desired` whose value in `live` differs, with their paths.
fn differences(desired: &Value, live: Option<&Value>, path: String, out: &mut Vec<Difference>) {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match (desired, live) {
        (Value::Object(d), Some(Value::Object(l))) => {
            for (k, dv) in d {
                differences(dv, l.get(k), join(k), out);
            }
        }
        (Value::Array(d), Some(Value::Array(l))) if d.len() == l.len() => {
            for (i, (dv, lv)) in d.iter().zip(l).enumerate() {
                differences(dv, Some(lv), format!("{path}[{i}]"), out);
            }
        }
        (d, l) if l == Some(d) => {}
        (d, l) => out.push(Difference {
            path,
            desired: d.clone(),
            live: l.cloned(),
        }),
    }
}

/// How a delete ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// It existed and is gone now.
    Gone,
    /// There was nothing to delete.
    Absent,
}

/// Polls for an object to be gone: 100 ms doubling to 2 s, each sleep 0.5 to 1 x.
const GONE_POLL: Backoff = Backoff::exponential(Duration::from_millis(100), Duration::from_secs(2))
    .jitter(Jitter::between(0.5, 1.0));

/// Deletes the object with background propagation (its dependents, such as a StatefulSet's
/// pods, are deleted by the garbage collector), then waits up to `timeout` until it is gone.
pub async fn delete(
    client: &kube::Client,
    target: &ObjectRef,
    timeout: Duration,
) -> Result<Deleted, ApplyError> {
    let api = target.api(client);
    match api.delete(&target.name, &DeleteParams::background()).await {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => return Ok(Deleted::Absent),
        Err(e) => return Err(target.failed("delete", e)),
    }
    let waited = try_poll(
        GONE_POLL.deadline(timeout),
        &format!("{} to be deleted", target.describe()),
        || {
            let api = api.clone();
            async move {
                match api.get_opt(&target.name).await {
                    Ok(None) => Ok(Some(())),
                    Ok(Some(_)) => Ok(None),
                    Err(e) => Err(target.failed("read", e)),
                }
            }
        },
    )
    .await;
    match waited {
        Ok(()) => Ok(Deleted::Gone),
        Err(TryPollError::Failed(e)) => Err(e),
        Err(TryPollError::GaveUp(source)) => Err(ApplyError::NotGone {
            object: target.describe(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_node_port_taken_is_tried_again_other_invalid_objects_are_not() {
        let api = |code, message: &str| ApplyError::Api {
            verb: "apply",
            object: "Service vault/vault-0".into(),
            message: message.into(),
            code: Some(code),
        };
        let taken = "Service \"vault-0\" is invalid: spec.ports[0].nodePort: Invalid value: 32000: provided port is already allocated (Invalid)";
        assert!(api(422, taken).retryable());
        assert!(!api(422, "spec.replicas: Invalid value: -1 (Invalid)").retryable());
        assert!(api(503, "unavailable").retryable());
        assert!(!api(404, "not found").retryable());
    }

    #[test]
    fn projection_keeps_the_desired_shape_and_the_live_values() {
        let desired = json!({"spec": {"replicas": 1, "template": {"containers": [{"name": "s", "image": "a:1"}]}}});
        let live = json!({"spec": {"replicas": 3, "revisionHistoryLimit": 10,
            "template": {"containers": [{"name": "s", "image": "a:1", "imagePullPolicy": "IfNotPresent"}]}},
            "status": {"replicas": 3}});
        let managed = project(&live, &desired).unwrap();
        assert_eq!(
            managed,
            json!({"spec": {"replicas": 3, "template": {"containers": [{"name": "s", "image": "a:1"}]}}})
        );
        let mut drift = Vec::new();
        differences(&desired, Some(&managed), String::new(), &mut drift);
        assert_eq!(
            drift,
            vec![Difference {
                path: "spec.replicas".into(),
                desired: json!(1),
                live: Some(json!(3)),
            }]
        );
    }

    /// Regression: on a real API server the StatefulSet controller writes the status of every
    /// StatefulSet, and every read named it as another manager of vaultform's fields.
    #[test]
    fn a_manager_of_the_status_only_is_not_another_manager() {
        let live = json!({"metadata": {"managedFields": [
            {"manager": "vaultform", "operation": "Apply"},
            {"manager": "kube-controller-manager", "operation": "Update", "subresource": "status"},
            {"manager": "kubectl", "operation": "Update", "subresource": "scale"},
            {"manager": "kubectl-edit", "operation": "Update"},
            {"manager": "kubectl", "operation": "Update"},
        ]}});
        assert_eq!(other_managers(&live), ["kubectl", "kubectl-edit"]);
        assert_eq!(other_managers(&json!({})), Vec::<String>::new());
    }

    #[test]
    fn missing_fields_and_changed_lists_are_differences() {
        let desired = json!({"data": {"a": "1"}, "ports": [1, 2]});
        let live = json!({"data": {}, "ports": [1]});
        let mut drift = Vec::new();
        differences(
            &desired,
            project(&live, &desired).as_ref(),
            String::new(),
            &mut drift,
        );
        let paths: Vec<&str> = drift.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(paths, ["data.a", "ports"]);
        assert_eq!(drift[0].live, None);
    }
}
