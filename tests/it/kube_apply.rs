//! The Kubernetes client (EKS token, CA from the cluster's description) and the apply / read
//! / delete of one object, against real control planes (`scripts/testbed kube-up`: the API
//! server, its controllers and the EKS token webhook) over TLS.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use vaultform::aws::{Aws, AwsSettings};
use vaultform::runtime::kubernetes::apply::{self, Deleted, ObjectRef};
use vaultform::runtime::kubernetes::client::{self, ClusterAccess, KubeError};
use vaultform::runtime::kubernetes::manifests;
use vaultform::runtime::kubernetes::token::{self, EksTokens};

use super::kube_manifests::{member, vault};
use crate::support::control_plane::{ControlPlanes, kube_version};

async fn connect(access: &ClusterAccess) -> Result<kube::Client, KubeError> {
    let mut settings = AwsSettings::resolve(None);
    settings.static_credentials = Some(("test".into(), "test".into()));
    let aws = Aws::connect(&settings).await;
    let tokens = Arc::new(EksTokens::new(&aws, &access.region, &access.name)?);
    client::client(access, tokens)
}

/// Applies a typed object; returns its reference and desired JSON.
async fn apply<K>(c: &kube::Client, obj: &K) -> (ObjectRef, serde_json::Value)
where
    K: kube::Resource<DynamicType = ()> + serde::Serialize,
{
    let (target, desired) = ObjectRef::of(obj).unwrap();
    apply::apply(c, &target, &desired).await.unwrap();
    (target, desired)
}

/// Waits until `n` pods match and none is terminating (the StatefulSet controller and the
/// garbage collector act after the API call that asked them to).
async fn settle(pods: &Api<Pod>, selector: &ListParams, n: usize) {
    vaultform::retry::poll(
        vaultform::retry::Backoff::PROBE.deadline(Duration::from_secs(30)),
        "the pods to settle",
        || async {
            let items = pods.list(selector).await.unwrap().items;
            let live = items
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .count();
            if items.len() == n && live == n {
                Ok(())
            } else {
                Err(format!("{} pods, {live} not terminating", items.len()))
            }
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn the_client_trusts_only_the_clusters_ca_and_sends_a_token() {
    // "n" is also a regression test: YAML 1.1 reads it as false, and unquoted in the
    // kubeconfigs of the test bed it made the controller manager and the scheduler exit.
    let planes = ControlPlanes::up(&["c1", "n"], None);
    let c = connect(&planes.access("c1", "eu-west-1")).await.unwrap();
    let version = c.apiserver_version().await.unwrap();
    assert_eq!(version.git_version, kube_version());

    // The EKS token is accepted as EKS accepts it: the signer is a cluster admin.
    let namespaces: Api<Namespace> = Api::all(c.clone());
    let names: Vec<_> = namespaces
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert!(names.iter().any(|n| n == "kube-system"), "{names:?}");
    // Who the API server says the caller is: the ARN moto's STS gives the signing key, in
    // system:masters.
    let reviews: Api<SelfSubjectReview> = Api::all(c.clone());
    let me = reviews
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .unwrap();
    let user = me.status.unwrap().user_info.unwrap();
    let name = user.username.unwrap_or_default();
    assert!(name.starts_with("arn:aws:"), "{name}");
    let groups = user.groups.unwrap_or_default();
    assert!(groups.iter().any(|g| g == "system:masters"), "{groups:?}");

    // Another server's CA: the TLS handshake fails.
    let mut wrong = planes.access("c1", "eu-west-1");
    wrong.ca_data = planes.access("n", "eu-west-1").ca_data;
    let c = connect(&wrong).await.unwrap();
    let err = c.apiserver_version().await.unwrap_err();
    assert!(
        format!("{err:?}").to_lowercase().contains("certificate"),
        "{err:?}"
    );

    // A token signed for c1 is refused by the other cluster: the cluster's name is signed in.
    let mut crossed = planes.access("n", "eu-west-1");
    crossed.name = "c1".into();
    let c = connect(&crossed).await.unwrap();
    let err = namespaces_of(&c).await.unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 401),
        "{err:?}"
    );

    // Without a token the caller is anonymous, and RBAC gives it nothing (as on EKS).
    let ca = reqwest::Certificate::from_pem(planes.ca_pem("c1").as_bytes()).unwrap();
    let plain = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let answer = plain
        .get(format!("{}/api/v1/namespaces", planes.server("c1")))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 403);
    assert!(answer.text().await.unwrap().contains("system:anonymous"));

    // What the webhook checks itself, sent by hand: a token signed 16 minutes ago (EKS takes
    // one for 15), and one signed with a secret that is not the key's.
    let status = |token: String| {
        let plain = plain.clone();
        let url = format!("{}/api/v1/namespaces", planes.server("c1"));
        async move {
            let answer = plain.get(url).bearer_auth(token).send().await.unwrap();
            answer.status().as_u16()
        }
    };
    let sign = |secret: &str, age: u64| {
        let credentials =
            aws_credential_types::Credentials::new("test", secret, None, None, "test");
        let at = std::time::SystemTime::now() - Duration::from_secs(age);
        let url = token::presign(
            &credentials,
            "eu-west-1",
            "c1",
            &token::sts_url("eu-west-1"),
            at,
        )
        .unwrap();
        token::encode(&url)
    };
    assert_eq!(status(sign("test", 0)).await, 200);
    assert_eq!(status(sign("test", 16 * 60)).await, 401);
    assert_eq!(status(sign("not-the-secret", 0)).await, 401);

    // A CA that is not a certificate is refused before any request.
    let mut garbage = planes.access("c1", "eu-west-1");
    garbage.ca_data = "bm90IGEgY2VydGlmaWNhdGU=".into();
    assert!(matches!(connect(&garbage).await, Err(KubeError::Ca { .. })));
    drop(planes);
}

async fn namespaces_of(c: &kube::Client) -> Result<Vec<Namespace>, kube::Error> {
    let api: Api<Namespace> = Api::all(c.clone());
    Ok(api.list(&ListParams::default()).await?.items)
}

#[tokio::test]
async fn objects_are_applied_read_with_drift_and_deleted() {
    let planes = ControlPlanes::up(&["bv-eu-west-1"], None);
    let c = connect(&planes.access("bv-eu-west-1", "eu-west-1"))
        .await
        .unwrap();
    let v = vault();
    let m = member(1, "eu-west-1");
    let objects = manifests::member(&v, &m);

    // A namespaced object before its namespace: the API's error, not retryable.
    let (cm_ref, cm) = ObjectRef::of(&objects.config).unwrap();
    let err = apply::apply(&c, &cm_ref, &cm).await.unwrap_err();
    assert!(!err.retryable(), "{err}");
    assert!(err.to_string().contains("not found"), "{err}");

    let (ns_ref, _) = apply(&c, &manifests::namespace(&v)).await;
    apply(&c, &manifests::disruption_budget(&v)).await;
    apply(&c, &objects.service_account).await;
    apply(&c, &objects.config).await;
    apply(&c, &objects.tls).await;
    apply(&c, &objects.headless).await;
    apply(&c, &objects.node_port).await;
    let (sts_ref, sts) = ObjectRef::of(&objects.statefulset).unwrap();
    let first = apply::apply(&c, &sts_ref, &sts).await.unwrap();
    assert_eq!(first["metadata"]["generation"], 1);

    // The second apply changes nothing (the controller writes the status meanwhile, so the
    // resource version may move; the generation counts changes of the spec), and a read
    // sees no drift and no other manager of what vaultform sets.
    let again = apply::apply(&c, &sts_ref, &sts).await.unwrap();
    assert_eq!(again["metadata"]["generation"], 1);
    assert_eq!(again["spec"], first["spec"]);
    for obj in [
        ObjectRef::of(&objects.service_account).unwrap(),
        ObjectRef::of(&objects.config).unwrap(),
        ObjectRef::of(&objects.tls).unwrap(),
        ObjectRef::of(&objects.headless).unwrap(),
        ObjectRef::of(&objects.node_port).unwrap(),
        (sts_ref.clone(), sts.clone()),
    ] {
        let seen = apply::read(&c, &obj.0, &obj.1).await.unwrap().unwrap();
        assert_eq!(seen.drift, vec![], "{:?}", obj.0);
        assert_eq!(seen.other_managers, Vec::<String>::new());
    }

    // The StatefulSet's pod and volume claim (made by the StatefulSet controller), found by
    // label.
    let pods: Api<Pod> = Api::namespaced(c.clone(), "vault");
    let selector = ListParams::default().labels("vaultform.io/member=vault-1");
    settle(&pods, &selector, 1).await;
    let listed = pods.list(&selector).await.unwrap();
    let names: Vec<_> = listed
        .items
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["vault-1-0"]);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(c.clone(), "vault");
    assert!(claims.get_opt("data-vault-1-0").await.unwrap().is_some());
    let set_based = ListParams::default()
        .labels("vaultform.io/member in (vault-1,vault-9),app.kubernetes.io/name");
    assert_eq!(pods.list(&set_based).await.unwrap().items.len(), 1);
    let none = ListParams::default().labels("vaultform.io/member!=vault-1");
    assert!(pods.list(&none).await.unwrap().items.is_empty());

    // No node runs the pod here: it stays Pending and the StatefulSet has no ready replica
    // until the pod's status says Ready (what a kubelet would write).
    let statefulsets: Api<k8s_openapi::api::apps::v1::StatefulSet> =
        Api::namespaced(c.clone(), "vault");
    let ready = |s: &k8s_openapi::api::apps::v1::StatefulSet| {
        s.status
            .as_ref()
            .and_then(|st| st.ready_replicas)
            .unwrap_or(0)
    };
    let pod = pods.get("vault-1-0").await.unwrap();
    assert_eq!(pod.status.unwrap().phase.as_deref(), Some("Pending"));
    assert_eq!(ready(&statefulsets.get("vault-1").await.unwrap()), 0);
    pods.patch_status(
        "vault-1-0",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}]}})),
    )
    .await
    .unwrap();
    vaultform::retry::poll(
        vaultform::retry::Backoff::PROBE.deadline(Duration::from_secs(30)),
        "the StatefulSet controller to count the ready pod",
        || async {
            match ready(&statefulsets.get("vault-1").await.unwrap()) {
                1 => Ok(()),
                n => Err(format!("{n} ready")),
            }
        },
    )
    .await
    .unwrap();

    // Someone scales it to 0 with the real kubectl: drift; apply takes it back. `kubectl
    // scale` goes through the scale subresource, which leaves no field manager of its own
    // (seen on 1.34), so this drift is attributed to nobody.
    planes.kubectl(
        "bv-eu-west-1",
        &[
            "-n",
            "vault",
            "scale",
            "statefulset/vault-1",
            "--replicas=0",
        ],
    );
    settle(&pods, &selector, 0).await;
    let seen = apply::read(&c, &sts_ref, &sts).await.unwrap().unwrap();
    assert_eq!(seen.drift.len(), 1, "{:?}", seen.drift);
    assert_eq!(seen.drift[0].path, "spec.replicas");
    assert_eq!(seen.drift[0].desired, json!(1));
    assert_eq!(seen.drift[0].live, Some(json!(0)));
    assert_eq!(seen.other_managers, Vec::<String>::new());
    let back = apply::apply(&c, &sts_ref, &sts).await.unwrap();
    assert_eq!(back["spec"]["replicas"], 1);
    assert_eq!(back["metadata"]["generation"], 3);
    settle(&pods, &selector, 1).await;
    let seen = apply::read(&c, &sts_ref, &sts).await.unwrap().unwrap();
    assert_eq!(seen.drift, vec![]);

    // The ConfigMap edited with `kubectl patch`: drift on that key, attributed to
    // kubectl-patch (its field manager); apply takes it back.
    let key = cm["data"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    let patch = json!({"data": {&key: "edited"}}).to_string();
    planes.kubectl(
        "bv-eu-west-1",
        &[
            "-n",
            "vault",
            "patch",
            "configmap",
            &cm_ref.name,
            "--type",
            "merge",
            "-p",
            &patch,
        ],
    );
    let seen = apply::read(&c, &cm_ref, &cm).await.unwrap().unwrap();
    assert_eq!(seen.drift.len(), 1, "{:?}", seen.drift);
    assert_eq!(seen.drift[0].path, format!("data.{key}"));
    assert_eq!(seen.drift[0].live, Some(json!("edited")));
    assert_eq!(seen.other_managers, ["kubectl-patch"]);
    apply::apply(&c, &cm_ref, &cm).await.unwrap();
    let seen = apply::read(&c, &cm_ref, &cm).await.unwrap().unwrap();
    assert_eq!(seen.drift, vec![]);

    // A second member on the same node ports of this cluster is refused by the API.
    let clash = manifests::node_port(&v, &member(2, "eu-west-1"));
    let (clash_ref, clash) = ObjectRef::of(&clash).unwrap();
    let err = apply::apply(&c, &clash_ref, &clash).await.unwrap_err();
    assert!(err.to_string().contains("already allocated"), "{err}");

    // Delete: the StatefulSet and (background propagation) its pod; the claim stays, as
    // the default retention policy keeps it.
    let gone = apply::delete(&c, &sts_ref, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(gone, Deleted::Gone);
    assert_eq!(apply::read(&c, &sts_ref, &sts).await.unwrap(), None);
    settle(&pods, &selector, 0).await;
    assert!(claims.get_opt("data-vault-1-0").await.unwrap().is_some());
    assert_eq!(
        apply::delete(&c, &sts_ref, Duration::from_secs(10))
            .await
            .unwrap(),
        Deleted::Absent
    );

    // The namespace lingers while it terminates: delete waits until it is gone, with
    // everything in it.
    let started = std::time::Instant::now();
    let gone = apply::delete(&c, &ns_ref, Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(gone, Deleted::Gone);
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "{:?}",
        started.elapsed()
    );
    assert!(claims.get_opt("data-vault-1-0").await.unwrap().is_none());
    let (sa_ref, sa) = ObjectRef::of(&objects.service_account).unwrap();
    assert_eq!(apply::read(&c, &sa_ref, &sa).await.unwrap(), None);
    drop(planes);
}
