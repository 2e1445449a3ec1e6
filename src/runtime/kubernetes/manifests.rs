//! The Kubernetes objects that run a Vault member on an EKS cluster, as typed values: pure
//! functions of a small input, no I/O.
//!
//! Per cluster: the namespace and a PodDisruptionBudget over the Vault pods in it. Per member:
//! a service account (IRSA role for KMS and the unseal store), the server configuration, the
//! TLS secret, a headless service (the StatefulSet's), a NodePort service on fixed ports (the
//! load balancer's targets) and a StatefulSet of one replica.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EnvVar,
    EnvVarSource, HTTPGetAction, Namespace, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PodAffinityTerm, PodAntiAffinity, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, Secret, SecretKeySelector, SecretVolumeSource, SecurityContext, Service,
    ServiceAccount, ServicePort, ServiceSpec, Volume, VolumeMount, VolumeResourceRequirements,
    WeightedPodAffinityTerm,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Where the pieces are inside the pod.
pub const CONFIG_DIR: &str = "/vault/config";
pub const TLS_DIR: &str = "/vault/tls";
pub const DATA_DIR: &str = "/vault/data";
/// Where the transit seal's secret is mounted (its server's CA).
pub const SEAL_DIR: &str = "/vault/seal";
/// The environment variable the server reads the transit seal's token from: `VAULT_` for
/// Vault and OpenBao alike (OpenBao has no `BAO_` form of it).
pub const TRANSIT_TOKEN_ENV: &str = "VAULT_TRANSIT_SEAL_TOKEN";
/// The annotation IRSA's webhook reads to give a pod the role's credentials.
pub const IRSA_ANNOTATION: &str = "eks.amazonaws.com/role-arn";
/// The label that picks one member's pod.
pub const MEMBER_LABEL: &str = "vaultform.io/member";
/// Node ports are allocated from here per member of a cluster: API then cluster port. The
/// rule lives in the topology, where the load balancers' target groups read it too.
pub use crate::topology::{NODE_PORT_BASE, node_ports};

/// A Vault cluster's settings shared by its members on Kubernetes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeVault {
    /// The Vault cluster's name in the topology (`vault "bv"`).
    pub name: String,
    pub namespace: String,
    /// The server program in the image: `bao` or `vault`.
    pub program: String,
    /// Image repository, e.g. `quay.io/openbao/openbao`.
    pub image: String,
    /// Image tag: the server version.
    pub version: String,
    pub api_port: u16,
    pub cluster_port: u16,
    pub cpu_request: String,
    pub memory_request: String,
    pub memory_limit: String,
    /// Size of each member's raft volume.
    pub storage: String,
    /// None: the cluster's default storage class.
    pub storage_class: Option<String>,
    /// `true`: the pod gets `IPC_LOCK` and the server locks its memory; `false`:
    /// `disable_mlock = true`, which Vault's documentation recommends with raft storage.
    pub mlock: bool,
}

/// One member placed on a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeMember {
    /// The member's name (`member "vault-0"`): raft node ID and object name.
    pub name: String,
    /// The cluster's AWS region (the KMS key's).
    pub region: String,
    /// The DNS name of the member's own load balancer: its `api_addr` and `cluster_addr`.
    pub advertise_host: String,
    /// `https://<bootstrap member's load balancer>:<api port>`; `None` for the bootstrap
    /// member itself.
    pub join_url: Option<String>,
    /// How the server unseals.
    pub seal: KubeSeal,
    /// The IAM role its service account assumes (IRSA).
    pub role_arn: String,
    /// Fixed node ports for the API and cluster ports (see [`node_ports`]).
    pub node_ports: (u16, u16),
    /// PEM: the member's certificate (chain), its key, the cluster's CA.
    pub tls_cert: String,
    pub tls_key: String,
    pub tls_ca: String,
}

/// A member's seal, as its configuration says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeSeal {
    /// No stanza: vaultform unseals with the stored shares.
    Shamir,
    /// The awskms seal's key: ID, ARN or alias; credentials through IRSA.
    Awskms { kms_key_id: String },
    /// A transit server outside the cluster. Its token is never in the ConfigMap: the server
    /// reads it from [`TRANSIT_TOKEN_ENV`], set from the member's seal secret (`token`),
    /// which also carries the server's CA (`ca.crt`, at [`SEAL_DIR`]) when `ca` is set.
    Transit {
        address: String,
        key_name: String,
        mount: String,
        ca: bool,
    },
}

/// The objects of one member, in the order they are created.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberObjects {
    pub service_account: ServiceAccount,
    pub config: ConfigMap,
    pub tls: Secret,
    pub headless: Service,
    pub node_port: Service,
    pub statefulset: StatefulSet,
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The labels of every object of the Vault cluster.
fn vault_labels(v: &KubeVault) -> BTreeMap<String, String> {
    labels(&[
        ("app.kubernetes.io/name", "vault"),
        ("app.kubernetes.io/instance", &v.name),
        ("app.kubernetes.io/managed-by", "vaultform"),
    ])
}

/// The labels of one member's objects (and what selects its pod).
fn member_labels(v: &KubeVault, m: &KubeMember) -> BTreeMap<String, String> {
    let mut l = vault_labels(v);
    l.insert(MEMBER_LABEL.into(), m.name.clone());
    l
}

fn meta(v: &KubeVault, name: &str, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: s(name),
        namespace: s(&v.namespace),
        labels: Some(labels),
        ..ObjectMeta::default()
    }
}

/// The namespace of the Vault cluster's members on one Kubernetes cluster.
pub fn namespace(v: &KubeVault) -> Namespace {
    Namespace {
        metadata: ObjectMeta {
            name: s(&v.namespace),
            labels: Some(vault_labels(v)),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    }
}

/// At most one Vault pod of a Kubernetes cluster evicted at a time (a node drain waits for
/// the other); with one member per cluster it never blocks a drain.
pub fn disruption_budget(v: &KubeVault) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: meta(v, &v.name, vault_labels(v)),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(labels(&[
                    ("app.kubernetes.io/name", "vault"),
                    ("app.kubernetes.io/instance", &v.name),
                ])),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

/// The service account whose token the Kubernetes auth method reviews workloads' tokens
/// with (`TokenReview`), in the Vault cluster's namespace.
pub const REVIEWER: &str = crate::vault::config::KUBE_REVIEWER;

pub fn reviewer_account(v: &KubeVault) -> ServiceAccount {
    ServiceAccount {
        metadata: meta(v, REVIEWER, vault_labels(v)),
        ..ServiceAccount::default()
    }
}

/// The name of the reviewer's binding: cluster-scoped, so it carries the namespace.
pub fn reviewer_binding_name(v: &KubeVault) -> String {
    format!("{}-{}-token-reviewer", v.namespace, v.name)
}

/// `system:auth-delegator` for the reviewer: it may create TokenReviews.
pub fn reviewer_binding(v: &KubeVault) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(reviewer_binding_name(v)),
            labels: Some(vault_labels(v)),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: "system:auth-delegator".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: REVIEWER.into(),
            namespace: s(&v.namespace),
            ..Subject::default()
        }]),
    }
}

/// The name of the reviewer's long-lived token secret.
pub fn reviewer_token_name() -> String {
    format!("{REVIEWER}-token")
}

/// A long-lived token of the reviewer, which Kubernetes' token controller fills in
/// (`data.token`, `data["ca.crt"]`): what vaultform gives the auth method.
pub fn reviewer_token(v: &KubeVault) -> Secret {
    let mut metadata = meta(v, &reviewer_token_name(), vault_labels(v));
    metadata.annotations = Some(labels(&[("kubernetes.io/service-account.name", REVIEWER)]));
    Secret {
        metadata,
        type_: s("kubernetes.io/service-account-token"),
        ..Secret::default()
    }
}

/// A string as an HCL quoted string.
fn hcl(value: &str) -> String {
    crate::vault::hcl::quote(value)
}

/// The server configuration (HCL) of a member.
pub fn server_config(v: &KubeVault, m: &KubeMember) -> String {
    let api = format!("https://{}:{}", m.advertise_host, v.api_port);
    let cluster = format!("https://{}:{}", m.advertise_host, v.cluster_port);
    let join = match &m.join_url {
        Some(url) => format!(
            "\n  retry_join {{\n    leader_api_addr     = {}\n    leader_ca_cert_file = {}\n  }}\n",
            hcl(url),
            hcl(&format!("{TLS_DIR}/ca.crt")),
        ),
        None => String::new(),
    };
    format!(
        r#"ui            = true
disable_mlock = {disable_mlock}
cluster_name  = {name}
api_addr      = {api}
cluster_addr  = {cluster}

listener "tcp" {{
  address         = "[::]:{api_port}"
  cluster_address = "[::]:{cluster_port}"
  tls_cert_file   = "{TLS_DIR}/tls.crt"
  tls_key_file    = "{TLS_DIR}/tls.key"
  tls_min_version = "tls12"
}}

storage "raft" {{
  path    = "{DATA_DIR}"
  node_id = {node}
  performance_multiplier = 1
{join}}}
{seal}"#,
        disable_mlock = !v.mlock,
        name = hcl(&v.name),
        api = hcl(&api),
        cluster = hcl(&cluster),
        api_port = v.api_port,
        cluster_port = v.cluster_port,
        node = hcl(&m.name),
        seal = seal_stanza(m),
    )
}

/// The `seal` stanza of a member's configuration, after a blank line; none for Shamir.
fn seal_stanza(m: &KubeMember) -> String {
    match &m.seal {
        KubeSeal::Shamir => String::new(),
        KubeSeal::Awskms { kms_key_id } => format!(
            "\nseal \"awskms\" {{\n  region     = {}\n  kms_key_id = {}\n}}\n",
            hcl(&m.region),
            hcl(kms_key_id),
        ),
        KubeSeal::Transit {
            address,
            key_name,
            mount,
            ca,
        } => {
            let ca = if *ca {
                format!("  tls_ca_cert = {}\n", hcl(&format!("{SEAL_DIR}/ca.crt")))
            } else {
                String::new()
            };
            format!(
                "\nseal \"transit\" {{\n  address    = {}\n  key_name   = {}\n  mount_path = {}\n{ca}}}\n",
                hcl(address),
                hcl(key_name),
                hcl(&format!("{}/", mount.trim_matches('/'))),
            )
        }
    }
}

/// Every object of one member.
pub fn member(v: &KubeVault, m: &KubeMember) -> MemberObjects {
    MemberObjects {
        service_account: service_account(v, m),
        config: config(v, m),
        tls: tls(v, m),
        headless: headless(v, m),
        node_port: node_port(v, m),
        statefulset: statefulset(v, m),
    }
}

fn config_name(m: &KubeMember) -> String {
    format!("{}-config", m.name)
}

fn tls_name(m: &KubeMember) -> String {
    format!("{}-tls", m.name)
}

fn seal_name(m: &KubeMember) -> String {
    format!("{}-seal", m.name)
}

fn headless_name(m: &KubeMember) -> String {
    format!("{}-internal", m.name)
}

/// The member's service account, which IRSA maps to its IAM role.
pub fn service_account(v: &KubeVault, m: &KubeMember) -> ServiceAccount {
    let mut metadata = meta(v, &m.name, member_labels(v, m));
    metadata.annotations = Some(labels(&[
        (IRSA_ANNOTATION, &m.role_arn),
        // STS in the pod's own region, not the global endpoint.
        ("eks.amazonaws.com/sts-regional-endpoints", "true"),
    ]));
    ServiceAccount {
        metadata,
        ..ServiceAccount::default()
    }
}

pub fn config(v: &KubeVault, m: &KubeMember) -> ConfigMap {
    ConfigMap {
        metadata: meta(v, &config_name(m), member_labels(v, m)),
        data: Some(BTreeMap::from([(
            "config.hcl".to_string(),
            server_config(v, m),
        )])),
        ..ConfigMap::default()
    }
}

pub fn tls(v: &KubeVault, m: &KubeMember) -> Secret {
    let bytes = |pem: &str| ByteString(pem.as_bytes().to_vec());
    Secret {
        metadata: meta(v, &tls_name(m), member_labels(v, m)),
        type_: s("kubernetes.io/tls"),
        data: Some(BTreeMap::from([
            ("tls.crt".to_string(), bytes(&m.tls_cert)),
            ("tls.key".to_string(), bytes(&m.tls_key)),
            ("ca.crt".to_string(), bytes(&m.tls_ca)),
        ])),
        ..Secret::default()
    }
}

/// The transit seal's secret of a member: its token (`token`) and, when the server's TLS
/// chains to a CA of its own, that CA (`ca.crt`); the values are filled in when it is sent.
pub fn seal_secret(v: &KubeVault, m: &KubeMember) -> Secret {
    let ca = matches!(m.seal, KubeSeal::Transit { ca: true, .. });
    let mut data = BTreeMap::from([("token".to_string(), ByteString(Vec::new()))]);
    if ca {
        data.insert("ca.crt".to_string(), ByteString(Vec::new()));
    }
    Secret {
        metadata: meta(v, &seal_name(m), member_labels(v, m)),
        type_: s("Opaque"),
        data: Some(data),
        ..Secret::default()
    }
}

fn ports(v: &KubeVault, node_ports: Option<(u16, u16)>) -> Vec<ServicePort> {
    [
        ("api", v.api_port, node_ports.map(|p| p.0)),
        ("cluster", v.cluster_port, node_ports.map(|p| p.1)),
    ]
    .into_iter()
    .map(|(name, port, node_port)| ServicePort {
        name: s(name),
        port: port.into(),
        target_port: Some(IntOrString::Int(port.into())),
        node_port: node_port.map(i32::from),
        protocol: s("TCP"),
        ..ServicePort::default()
    })
    .collect()
}

fn pod_selector(v: &KubeVault, m: &KubeMember) -> BTreeMap<String, String> {
    labels(&[
        ("app.kubernetes.io/instance", &v.name),
        (MEMBER_LABEL, &m.name),
    ])
}

/// The StatefulSet's governing service: stable DNS for the pod, also before it is ready.
pub fn headless(v: &KubeVault, m: &KubeMember) -> Service {
    Service {
        metadata: meta(v, &headless_name(m), member_labels(v, m)),
        spec: Some(ServiceSpec {
            cluster_ip: s("None"),
            publish_not_ready_addresses: Some(true),
            selector: Some(pod_selector(v, m)),
            ports: Some(ports(v, None)),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The member's API and cluster ports on fixed node ports of every node: the targets of its
/// load balancer's target groups, which the node group's auto scaling group keeps registered.
pub fn node_port(v: &KubeVault, m: &KubeMember) -> Service {
    Service {
        metadata: meta(v, &m.name, member_labels(v, m)),
        spec: Some(ServiceSpec {
            type_: s("NodePort"),
            // Any node forwards to the pod wherever it runs: the load balancer's view does
            // not change when the pod moves.
            external_traffic_policy: s("Cluster"),
            selector: Some(pod_selector(v, m)),
            ports: Some(ports(v, Some(m.node_ports))),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// What the readiness probe asks: 200 active, 429 standby made 200 by `standbyok`, sealed and
/// uninitialised answered 204, so a member is ready as soon as it serves (the bootstrap must
/// reach it through its load balancer before it is initialised).
pub const READINESS_PATH: &str = "/v1/sys/health?standbyok=true&sealedcode=204&uninitcode=204";

pub fn statefulset(v: &KubeVault, m: &KubeMember) -> StatefulSet {
    let labels_all = member_labels(v, m);
    let env_prefix = if v.program == "bao" { "BAO" } else { "VAULT" };
    let mount = |name: &str, path: &str| VolumeMount {
        name: name.to_string(),
        mount_path: path.to_string(),
        // `readOnly: false` is the default, which the API server does not store: set, it
        // would read back as absent and show as drift on every plan.
        read_only: (name != "data").then_some(true),
        ..VolumeMount::default()
    };
    let transit_ca = matches!(m.seal, KubeSeal::Transit { ca: true, .. });
    let container = Container {
        name: "server".into(),
        image: Some(format!("{}:{}", v.image, v.version)),
        command: Some(vec![
            v.program.clone(),
            "server".into(),
            format!("-config={CONFIG_DIR}/config.hcl"),
        ]),
        env: Some(
            vec![
                EnvVar {
                    name: format!("{env_prefix}_ADDR"),
                    value: Some(format!("https://127.0.0.1:{}", v.api_port)),
                    ..EnvVar::default()
                },
                EnvVar {
                    name: format!("{env_prefix}_CACERT"),
                    value: Some(format!("{TLS_DIR}/ca.crt")),
                    ..EnvVar::default()
                },
                EnvVar {
                    name: "AWS_REGION".into(),
                    value: Some(m.region.clone()),
                    ..EnvVar::default()
                },
            ]
            .into_iter()
            .chain(matches!(m.seal, KubeSeal::Transit { .. }).then(|| EnvVar {
                name: TRANSIT_TOKEN_ENV.into(),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: seal_name(m),
                        key: "token".into(),
                        ..SecretKeySelector::default()
                    }),
                    ..EnvVarSource::default()
                }),
                ..EnvVar::default()
            }))
            .collect(),
        ),
        ports: Some(vec![
            ContainerPort {
                name: s("api"),
                container_port: v.api_port.into(),
                protocol: s("TCP"),
                ..ContainerPort::default()
            },
            ContainerPort {
                name: s("cluster"),
                container_port: v.cluster_port.into(),
                protocol: s("TCP"),
                ..ContainerPort::default()
            },
        ]),
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: s(READINESS_PATH),
                port: IntOrString::Int(v.api_port.into()),
                scheme: s("HTTPS"),
                ..HTTPGetAction::default()
            }),
            period_seconds: Some(5),
            timeout_seconds: Some(3),
            failure_threshold: Some(2),
            ..Probe::default()
        }),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_string(), Quantity(v.cpu_request.clone())),
                ("memory".to_string(), Quantity(v.memory_request.clone())),
            ])),
            limits: Some(BTreeMap::from([(
                "memory".to_string(),
                Quantity(v.memory_limit.clone()),
            )])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                add: v.mlock.then(|| vec!["IPC_LOCK".to_string()]),
                drop: Some(vec!["ALL".into()]),
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(
            [
                mount("config", CONFIG_DIR),
                mount("tls", TLS_DIR),
                mount("data", DATA_DIR),
            ]
            .into_iter()
            .chain(transit_ca.then(|| mount("seal", SEAL_DIR)))
            .collect(),
        ),
        ..Container::default()
    };
    let anti_affinity = Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            // Two members on one cluster prefer different nodes; one node still runs both.
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: PodAffinityTerm {
                        label_selector: Some(LabelSelector {
                            match_labels: Some(labels(&[
                                ("app.kubernetes.io/name", "vault"),
                                ("app.kubernetes.io/instance", &v.name),
                            ])),
                            ..LabelSelector::default()
                        }),
                        topology_key: "kubernetes.io/hostname".into(),
                        ..PodAffinityTerm::default()
                    },
                },
            ]),
            ..PodAntiAffinity::default()
        }),
        ..Affinity::default()
    };
    let pod = PodSpec {
        service_account_name: s(&m.name),
        automount_service_account_token: Some(true),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(100),
            run_as_group: Some(1000),
            fs_group: Some(1000),
            ..PodSecurityContext::default()
        }),
        termination_grace_period_seconds: Some(30),
        affinity: Some(anti_affinity),
        containers: vec![container],
        volumes: Some(
            vec![
                Volume {
                    name: "config".into(),
                    config_map: Some(ConfigMapVolumeSource {
                        name: config_name(m),
                        ..ConfigMapVolumeSource::default()
                    }),
                    ..Volume::default()
                },
                Volume {
                    name: "tls".into(),
                    secret: Some(SecretVolumeSource {
                        secret_name: Some(tls_name(m)),
                        default_mode: Some(0o440),
                        ..SecretVolumeSource::default()
                    }),
                    ..Volume::default()
                },
            ]
            .into_iter()
            .chain(transit_ca.then(|| Volume {
                name: "seal".into(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(seal_name(m)),
                    items: Some(vec![k8s_openapi::api::core::v1::KeyToPath {
                        key: "ca.crt".into(),
                        path: "ca.crt".into(),
                        ..Default::default()
                    }]),
                    default_mode: Some(0o440),
                    ..SecretVolumeSource::default()
                }),
                ..Volume::default()
            }))
            .collect(),
        ),
        ..PodSpec::default()
    };
    StatefulSet {
        metadata: meta(v, &m.name, labels_all.clone()),
        spec: Some(StatefulSetSpec {
            replicas: Some(1),
            service_name: Some(headless_name(m)),
            // The one pod is replaced without waiting for readiness of others.
            pod_management_policy: s("Parallel"),
            selector: LabelSelector {
                match_labels: Some(pod_selector(v, m)),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels_all.clone()),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            volume_claim_templates: Some(vec![PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: s("data"),
                    labels: Some(labels_all),
                    ..ObjectMeta::default()
                },
                spec: Some(PersistentVolumeClaimSpec {
                    access_modes: Some(vec!["ReadWriteOnce".into()]),
                    storage_class_name: v.storage_class.clone(),
                    resources: Some(VolumeResourceRequirements {
                        requests: Some(BTreeMap::from([(
                            "storage".to_string(),
                            Quantity(v.storage.clone()),
                        )])),
                        ..VolumeResourceRequirements::default()
                    }),
                    ..PersistentVolumeClaimSpec::default()
                }),
                ..PersistentVolumeClaim::default()
            }]),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault(mlock: bool) -> KubeVault {
        KubeVault {
            name: "bv".into(),
            namespace: "vault".into(),
            program: "bao".into(),
            image: "quay.io/openbao/openbao".into(),
            version: "2.7.2".into(),
            api_port: 8200,
            cluster_port: 8201,
            cpu_request: "250m".into(),
            memory_request: "256Mi".into(),
            memory_limit: "512Mi".into(),
            storage: "10Gi".into(),
            storage_class: None,
            mlock,
        }
    }

    fn m(join: Option<&str>) -> KubeMember {
        KubeMember {
            name: "vault-1".into(),
            region: "eu-west-1".into(),
            advertise_host: "nlb-1.elb.eu-west-1.amazonaws.com".into(),
            join_url: join.map(str::to_string),
            seal: KubeSeal::Awskms {
                kms_key_id: "alias/bv-unseal".into(),
            },
            role_arn: "arn:aws:iam::123456789012:role/r".into(),
            node_ports: node_ports(0),
            tls_cert: "C".into(),
            tls_key: "K".into(),
            tls_ca: "A".into(),
        }
    }

    #[test]
    fn mlock_is_a_capability_or_disabled() {
        let with = statefulset(&vault(true), &m(None));
        let caps = |s: &StatefulSet| {
            s.spec
                .as_ref()
                .unwrap()
                .template
                .spec
                .as_ref()
                .unwrap()
                .containers[0]
                .security_context
                .clone()
                .unwrap()
                .capabilities
                .unwrap()
                .add
        };
        assert_eq!(caps(&with), Some(vec!["IPC_LOCK".to_string()]));
        assert!(server_config(&vault(true), &m(None)).contains("disable_mlock = false"));
        let without = statefulset(&vault(false), &m(None));
        assert_eq!(caps(&without), None);
        assert!(server_config(&vault(false), &m(None)).contains("disable_mlock = true"));
    }

    #[test]
    fn only_joiners_retry_join() {
        let joiner = server_config(&vault(true), &m(Some("https://nlb-0:8200")));
        assert!(joiner.contains("leader_api_addr     = \"https://nlb-0:8200\""));
        assert!(joiner.contains("leader_ca_cert_file = \"/vault/tls/ca.crt\""));
        assert!(!server_config(&vault(true), &m(None)).contains("retry_join"));
    }

    proptest::proptest! {
        /// Whatever the names and addresses, the server configuration keeps its structure and
        /// every value reads back as itself.
        #[test]
        fn no_value_changes_the_server_configurations_structure(
            name in proptest::prelude::any::<String>(),
            member in proptest::prelude::any::<String>(),
            host in proptest::prelude::any::<String>(),
            key in proptest::prelude::any::<String>(),
        ) {
            use crate::vault::hcl::tests::lex;
            let plain = lex(&server_config(&vault(true), &m(Some("https://j")))).unwrap();
            let mut v = vault(true);
            v.name = name.clone();
            let mut mm = m(Some("https://j"));
            mm.name = member.clone();
            mm.advertise_host = host.clone();
            mm.seal = KubeSeal::Awskms {
                kms_key_id: key.clone(),
            };
            let (structure, strings) = lex(&server_config(&v, &mm)).unwrap();
            proptest::prop_assert_eq!(&structure, &plain.0);
            proptest::prop_assert!(strings.contains(&name));
            proptest::prop_assert!(strings.contains(&member));
            proptest::prop_assert!(strings.contains(&key));
            let api = format!("https://{}:8200", host);
            proptest::prop_assert!(strings.contains(&api));
        }
    }

    #[test]
    fn the_transit_token_comes_from_the_seal_secret_not_the_config() {
        let mut mm = m(None);
        mm.seal = KubeSeal::Transit {
            address: "https://transit.internal:8200".into(),
            key_name: "autounseal-bv".into(),
            mount: "/transit/".into(),
            ca: true,
        };
        let hcl = server_config(&vault(false), &mm);
        assert!(hcl.contains("seal \"transit\""), "{hcl}");
        assert!(hcl.contains("mount_path = \"transit/\""), "{hcl}");
        assert!(
            hcl.contains("tls_ca_cert = \"/vault/seal/ca.crt\""),
            "{hcl}"
        );
        assert!(!hcl.contains("token"), "{hcl}");
        let sts = statefulset(&vault(false), &mm);
        let pod = sts.spec.unwrap().template.spec.unwrap();
        let env = pod.containers[0].env.clone().unwrap();
        let token = env.iter().find(|e| e.name == TRANSIT_TOKEN_ENV).unwrap();
        let from = token.value_from.clone().unwrap().secret_key_ref.unwrap();
        assert_eq!(
            (from.name.as_str(), from.key.as_str()),
            ("vault-1-seal", "token")
        );
        assert!(pod.volumes.unwrap().iter().any(|v| v.name == "seal"));
        let secret = seal_secret(&vault(false), &mm);
        let keys: Vec<&String> = secret.data.as_ref().unwrap().keys().collect();
        assert_eq!(keys, ["ca.crt", "token"]);
        mm.seal = KubeSeal::Shamir;
        assert!(!server_config(&vault(false), &mm).contains("seal"));
    }

    #[test]
    fn node_ports_do_not_overlap_between_members() {
        assert_eq!(node_ports(0), (32000, 32001));
        assert_eq!(node_ports(1), (32002, 32003));
    }
}
