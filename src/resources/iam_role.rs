//! IAM roles: the EKS cluster role, the node role, and a role per Vault cluster on the
//! Kubernetes runtime with exactly the KMS permissions its awskms seal needs (none of the
//! unseal-key store's), assumed by the members' service accounts through IRSA (web identity from each cluster's
//! OIDC provider, restricted to exactly those service accounts).
//! IAM is global: role names carry the stack name, so that several stacks coexist.

use std::collections::BTreeMap;

use aws_sdk_iam::types::Tag;
use serde_json::{Map, Value, json};

use crate::address::{Address, Item, RegionItem, Role};
use crate::aws_error::is_not_found;
use crate::graph::{Builder, Kind, Resource};
use crate::provider::{Cx, Desired, Observed, OpError, Provider, Recorded};
use crate::state::ResourceState;
use crate::topology::{Runtime, SealKind, Topology};

pub struct IamRole;

const EKS_CLUSTER_POLICIES: &[&str] = &["arn:aws:iam::aws:policy/AmazonEKSClusterPolicy"];
/// What the EBS CSI driver needs to make, attach and delete volumes.
const EBS_CSI_POLICY: &str = "arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy";
const EKS_NODE_POLICIES: &[&str] = &[
    "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
    "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
];

/// Policy lists in the order a read returns them, so that a refresh sees no drift.
fn sorted(list: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

fn trust(service: &str, actions: &[&str]) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": service},
            "Action": actions,
        }]
    })
}

/// IAM role names are at most 64 characters.
fn role_name(stack: &str, what: &str) -> String {
    let mut name = format!("{stack}-{what}");
    name.truncate(64);
    name
}

/// The EKS cluster and node roles, when the topology has an EKS cluster.
pub fn graph(b: &mut Builder<'_>, t: &Topology) {
    if t.regions.iter().any(|r| !r.clusters.is_empty()) {
        let span = t.stack.span;
        let cluster =
            b.g.add(Address::role(Role::EksCluster), Kind::IamRole, None, span);
        let node =
            b.g.add(Address::role(Role::EksNode), Kind::IamRole, None, span);
        b.eks_roles = Some((cluster, node));
    }
}

pub fn desired(t: &Topology, r: &Resource) -> Option<(String, Map<String, Value>)> {
    let stack = t.stack.value.as_str();
    let mut attrs = Map::new();
    attrs.insert("tags".into(), json!(t.aws.tags));
    let Item::IamRole(role) = r.address.item() else {
        return None;
    };
    let name = match role {
        Role::EksCluster => {
            attrs.insert(
                "trust".into(),
                trust("eks.amazonaws.com", &["sts:AssumeRole"]),
            );
            attrs.insert(
                "managed_policies".into(),
                json!(sorted(EKS_CLUSTER_POLICIES)),
            );
            role_name(stack, "eks-cluster")
        }
        Role::EksNode => {
            attrs.insert(
                "trust".into(),
                trust("ec2.amazonaws.com", &["sts:AssumeRole"]),
            );
            let mut policies = EKS_NODE_POLICIES.to_vec();
            // The EBS CSI driver add-on acts with the nodes' credentials.
            let ebs_csi = t.regions.iter().flat_map(|r| &r.clusters).any(|c| {
                c.addons
                    .iter()
                    .any(|a| a.value == crate::topology::model::EBS_CSI_ADDON)
            });
            if ebs_csi {
                policies.push(EBS_CSI_POLICY);
            }
            attrs.insert("managed_policies".into(), json!(sorted(&policies)));
            role_name(stack, "eks-node")
        }
        Role::Vault(vault_name) => {
            let v = t.vaults.iter().find(|v| &v.name.value == vault_name)?;
            if !matches!(v.runtime.value, Runtime::Kubernetes { .. }) {
                return None;
            }
            // IRSA: the service account of each member, through its cluster's OIDC provider.
            attrs.insert("irsa".into(), json!(irsa(t, v)));
            attrs.insert("managed_policies".into(), json!([]));
            // The servers never read the unseal store (vaultform does): the role gets the
            // awskms seal's key and nothing of the store's objects.
            if let SealKind::Awskms { key } = &v.seal.kind
                && let Some((home, _)) = v
                    .bootstrap_member()
                    .and_then(|m| t.cluster(&m.cluster.value))
            {
                let home = home.name.value.as_str();
                let key = Address::region(home, RegionItem::Key(key.value.clone()));
                let regions: std::collections::BTreeSet<&str> = v
                    .members
                    .iter()
                    .filter_map(|m| t.cluster(&m.cluster.value))
                    .map(|(r, _)| r.name.value.as_str())
                    .chain([home])
                    .collect();
                attrs.insert("seal_key".into(), json!(key));
                attrs.insert("seal_regions".into(), json!(regions));
            }
            role_name(stack, &format!("vault-{vault_name}"))
        }
    };
    Some((name, attrs))
}

/// Per EKS cluster hosting members of `v`, in member order: its OIDC provider's address and
/// the service accounts (one per member, named after it) the role trusts there.
fn irsa(t: &Topology, v: &crate::topology::VaultCluster) -> Vec<Value> {
    let Runtime::Kubernetes { namespace } = &v.runtime.value else {
        return Vec::new();
    };
    let mut out: Vec<(Address, Vec<String>)> = Vec::new();
    for m in &v.members {
        let Some((region, _)) = t.cluster(&m.cluster.value) else {
            continue;
        };
        let provider = Address::region(
            &region.name.value,
            RegionItem::OidcProvider(m.cluster.value.clone()),
        );
        let subject = format!("system:serviceaccount:{namespace}:{}", m.name.value);
        match out.iter_mut().find(|(p, _)| *p == provider) {
            Some((_, subjects)) => subjects.push(subject),
            None => out.push((provider, vec![subject])),
        }
    }
    out.into_iter()
        .map(|(p, s)| json!({"oidc_provider": p, "subjects": s}))
        .collect()
}

/// The trust policy: the fixed one of `trust`, or for a Vault role the IRSA statements made
/// from its clusters' OIDC providers (their ARNs and issuers are known once they exist).
fn trust_document(cx: &Cx<'_>, attrs: &Map<String, Value>) -> Result<String, OpError> {
    let Some(irsa) = attrs.get("irsa").and_then(Value::as_array) else {
        return Ok(attrs.get("trust").map(Value::to_string).unwrap_or_default());
    };
    let mut statements = Vec::new();
    for entry in irsa {
        let provider = entry
            .get("oidc_provider")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let arn = cx.output(provider, "arn")?;
        let host = super::oidc_provider::issuer_host(cx.output(provider, "issuer")?);
        let subjects = entry.get("subjects").cloned().unwrap_or(json!([]));
        statements.push(json!({
            "Effect": "Allow",
            "Principal": {"Federated": arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                format!("{host}:sub"): subjects,
                format!("{host}:aud"): super::oidc_provider::AUDIENCE,
            }}
        }));
    }
    Ok(json!({"Version": "2012-10-17", "Statement": statements}).to_string())
}

/// The inline policy of a Vault role: what the awskms seal needs of its key (replicas in each
/// member's region), nothing else. The seal sends no encryption context and the store always
/// does, so the `Null` condition keeps the role from the store's ciphertexts even where the
/// store shares the seal's key.
fn seal_policy(cx: &Cx<'_>, attrs: &Map<String, Value>) -> Result<Option<String>, OpError> {
    let Some(key) = attrs.get("seal_key").and_then(Value::as_str) else {
        return Ok(None);
    };
    let arn = cx.output(key, "arn")?;
    let arns: Vec<String> = crate::provider::str_list(attrs, "seal_regions")
        .iter()
        .map(|r| crate::vault::seal::replica_arn(arn, r))
        .collect();
    Ok(Some(seal_policy_document(&arns).to_string()))
}

/// The seal's statement on `key_arns`: Encrypt, Decrypt and DescribeKey, without context.
pub fn seal_policy_document(key_arns: &[String]) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "AwskmsSeal",
            "Effect": "Allow",
            "Action": ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"],
            "Resource": key_arns,
            "Condition": {"Null": {"kms:EncryptionContextKeys": "true"}}
        }]
    })
}

fn tags(cx: &Cx<'_>, address: &str) -> Result<Vec<Tag>, OpError> {
    iam_tags(&cx.tags(address))
}

/// Tags as IAM takes them.
pub(crate) fn iam_tags(
    tags: &std::collections::BTreeMap<String, String>,
) -> Result<Vec<Tag>, OpError> {
    tags.iter()
        .map(|(k, v)| {
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| OpError::fatal(e.to_string()))
        })
        .collect()
}

/// The Vault role's inline policy: the awskms seal's use of its key.
const INLINE: &str = "vaultform-seal";

/// Attaches and detaches managed policies, and sets the inline policy, to match `d`.
async fn converge(
    cx: &Cx<'_>,
    iam: &aws_sdk_iam::Client,
    d: &Desired,
) -> Result<Recorded, OpError> {
    let role = iam
        .get_role()
        .role_name(&d.name)
        .send()
        .await
        .map_err(|e| OpError::from_sdk("read IAM role", e))?;
    let arn = role.role().map(|r| r.arn().to_string()).unwrap_or_default();
    let want: Vec<String> = d
        .attrs
        .get("managed_policies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    let attached = iam
        .list_attached_role_policies()
        .role_name(&d.name)
        .send()
        .await
        .map_err(|e| OpError::from_sdk("list role policies", e))?;
    let have: Vec<String> = attached
        .attached_policies()
        .iter()
        .filter_map(|p| p.policy_arn().map(str::to_owned))
        .collect();
    for p in want.iter().filter(|p| !have.contains(p)) {
        iam.attach_role_policy()
            .role_name(&d.name)
            .policy_arn(p)
            .send()
            .await
            .map_err(|e| OpError::from_sdk("attach role policy", e))?;
    }
    for p in have.iter().filter(|p| !want.contains(p)) {
        iam.detach_role_policy()
            .role_name(&d.name)
            .policy_arn(p)
            .send()
            .await
            .map_err(|e| OpError::from_sdk("detach role policy", e))?;
    }
    let policy = seal_policy(cx, &d.attrs)?;
    // Exactly the one inline policy wanted: any other (an older one granting the store's
    // objects) goes.
    let inline = iam
        .list_role_policies()
        .role_name(&d.name)
        .send()
        .await
        .map_err(|e| OpError::from_sdk("list inline role policies", e))?;
    for p in inline.policy_names() {
        if policy.is_none() || p != INLINE {
            iam.delete_role_policy()
                .role_name(&d.name)
                .policy_name(p)
                .send()
                .await
                .map_err(|e| OpError::from_sdk("delete role policy", e))?;
        }
    }
    if let Some(policy) = policy {
        iam.put_role_policy()
            .role_name(&d.name)
            .policy_name(INLINE)
            .policy_document(policy)
            .send()
            .await
            .map_err(|e| OpError::from_sdk("put role policy", e))?;
    }
    iam.update_assume_role_policy()
        .role_name(&d.name)
        .policy_document(trust_document(cx, &d.attrs)?)
        .send()
        .await
        .map_err(|e| OpError::from_sdk("update trust policy", e))?;
    Ok(Recorded {
        ids: BTreeMap::from([("name".into(), d.name.clone()), ("arn".into(), arn.clone())]),
        outputs: BTreeMap::from([("name".into(), d.name.clone()), ("arn".into(), arn)]),
    })
}

#[async_trait::async_trait]
impl Provider for IamRole {
    fn service(&self) -> &'static str {
        "iam"
    }

    fn forces_replacement(&self) -> &'static [&'static str] {
        &[]
    }

    async fn read(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<Observed, OpError> {
        let iam = cx.aws.iam();
        let Some(name) = rs.id("name") else {
            return Ok(Observed::Gone);
        };
        match iam.get_role().role_name(name).send().await {
            Ok(_) => {
                let attached = iam
                    .list_attached_role_policies()
                    .role_name(name)
                    .send()
                    .await
                    .map_err(|e| OpError::from_sdk("list role policies", e))?;
                let mut have: Vec<&str> = attached
                    .attached_policies()
                    .iter()
                    .filter_map(|p| p.policy_arn())
                    .collect();
                have.sort();
                let mut attrs = rs.attributes.clone();
                attrs.insert("managed_policies".into(), json!(have));
                Ok(Observed::Present {
                    attrs,
                    delete_blocker: None,
                })
            }
            Err(e) if is_not_found(&e) => Ok(Observed::Gone),
            Err(e) => Err(OpError::from_sdk("read IAM role", e)),
        }
    }

    async fn create(&self, cx: &Cx<'_>, d: &Desired) -> Result<Recorded, OpError> {
        let iam = cx.aws.iam();
        match iam.get_role().role_name(&d.name).send().await {
            Ok(out) => {
                let tags: BTreeMap<String, String> = out
                    .role()
                    .map(|r| {
                        r.tags()
                            .iter()
                            .map(|t| (t.key().to_string(), t.value().to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                cx.check_owner(&format!("IAM role {}", d.name), d.address.as_str(), &tags)?;
            }
            Err(e) if is_not_found(&e) => {
                iam.create_role()
                    .role_name(&d.name)
                    .assume_role_policy_document(trust_document(cx, &d.attrs)?)
                    .description(format!("vaultform {} {}", cx.stack, d.address))
                    .set_tags(Some(tags(cx, d.address.as_str())?))
                    .send()
                    .await
                    .map_err(|e| OpError::from_sdk("create IAM role", e))?;
            }
            Err(e) => return Err(OpError::from_sdk("read IAM role", e)),
        }
        converge(cx, &iam, d).await
    }

    async fn update(
        &self,
        cx: &Cx<'_>,
        _rs: &ResourceState,
        d: &Desired,
    ) -> Result<Recorded, OpError> {
        converge(cx, &cx.aws.iam(), d).await
    }

    async fn delete(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<(), OpError> {
        let iam = cx.aws.iam();
        let Some(name) = rs.id("name") else {
            return Ok(());
        };
        let attached = match iam
            .list_attached_role_policies()
            .role_name(name)
            .send()
            .await
        {
            Ok(a) => a,
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) => return Err(OpError::from_sdk("list role policies", e)),
        };
        for p in attached
            .attached_policies()
            .iter()
            .filter_map(|p| p.policy_arn())
        {
            let _ = iam
                .detach_role_policy()
                .role_name(name)
                .policy_arn(p)
                .send()
                .await;
        }
        if let Ok(inline) = iam.list_role_policies().role_name(name).send().await {
            for p in inline.policy_names() {
                let _ = iam
                    .delete_role_policy()
                    .role_name(name)
                    .policy_name(p)
                    .send()
                    .await;
            }
        }
        match iam.delete_role().role_name(name).send().await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(OpError::from_sdk("delete IAM role", e)),
        }
    }
}
