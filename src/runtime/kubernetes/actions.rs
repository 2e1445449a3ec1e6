//! What the drills do to a member on Kubernetes, through the API: delete its pod (the
//! StatefulSet makes a new one, as after a node's loss) and scale its StatefulSet to 0 and
//! back (a region's loss, as seed 000 drills it); and what an interrupted init needs: the
//! member's raft data removed (its claim deleted while no pod uses it).

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;

use super::apply::ObjectRef;

use crate::provider::OpError;

fn failed(what: &str, e: kube::Error) -> OpError {
    OpError::fatal(format!("{what}: {e}"))
}

/// Whether the pod exists (and is not being deleted).
pub async fn pod_exists(client: &kube::Client, ns: &str, pod: &str) -> Result<bool, OpError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let p = pods
        .get_opt(pod)
        .await
        .map_err(|e| failed(&format!("reading pod {ns}/{pod}"), e))?;
    Ok(p.is_some_and(|p| p.metadata.deletion_timestamp.is_none()))
}

/// Deletes a pod with `grace_seconds` to shut down (0: at once, as a crash).
pub async fn delete_pod(
    client: &kube::Client,
    ns: &str,
    pod: &str,
    grace_seconds: u32,
) -> Result<(), OpError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let params = DeleteParams {
        grace_period_seconds: Some(grace_seconds),
        ..DeleteParams::default()
    };
    pods.delete(pod, &params)
        .await
        .map(drop)
        .map_err(|e| failed(&format!("deleting pod {ns}/{pod}"), e))
}

/// Sets a StatefulSet's replicas through its scale subresource's field (a merge patch under
/// vaultform's field manager; the next apply's server-side apply owns it again).
pub async fn scale(
    client: &kube::Client,
    ns: &str,
    statefulset: &str,
    replicas: i32,
) -> Result<(), OpError> {
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    let params = PatchParams {
        field_manager: Some(super::apply::FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    sets.patch(
        statefulset,
        &params,
        &Patch::Merge(json!({"spec": {"replicas": replicas}})),
    )
    .await
    .map(drop)
    .map_err(|e| failed(&format!("scaling statefulset {ns}/{statefulset}"), e))
}

/// Removes a member's raft data: its StatefulSet scaled to 0 until its pod is gone, the pod's
/// claim deleted until it (and with it the volume, reclaimed) is gone, then scaled to 1 again:
/// the new pod starts on a new, empty volume. Each wait is bounded by `timeout`.
pub async fn wipe_data(
    client: &kube::Client,
    ns: &str,
    statefulset: &str,
    pod: &str,
    claim: &str,
    timeout: std::time::Duration,
) -> Result<(), OpError> {
    let gone = |kind: &str, plural: &str, name: &str| {
        let target = ObjectRef::new("", "v1", kind, plural, Some(ns), name);
        async move {
            super::apply::delete(client, &target, timeout)
                .await
                .map(drop)
                .map_err(|e| OpError::fatal(e.to_string()))
        }
    };
    scale(client, ns, statefulset, 0).await?;
    // At once: the server holds nothing worth a clean shutdown.
    match delete_pod(client, ns, pod, 0).await {
        Ok(()) => {}
        Err(_) if !pod_exists(client, ns, pod).await? => {}
        Err(e) => return Err(e),
    }
    gone("Pod", "pods", pod).await?;
    gone("PersistentVolumeClaim", "persistentvolumeclaims", claim).await?;
    scale(client, ns, statefulset, 1).await
}
