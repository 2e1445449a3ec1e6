//! Deleting orphans: wave by wave (what uses a thing before it), each through its kind's
//! provider with a state entry built from what the APIs showed; network interfaces, volumes and
//! OIDC providers, which vaultform does not make, through their own calls.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::{Found, Thing};
use crate::address::Address;
use crate::aws::Aws;
use crate::provider::{Cx, OpError, Providers};
use crate::retry::{Backoff, retry};
use crate::state::{ResourceState, Status};

/// What a deletion did.
#[derive(Debug, Clone, Serialize)]
pub struct Removed {
    pub thing: Thing,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The failure, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Deletes `orphans` (in the order [`super::orphans`] returns) wave by wave, concurrently
/// within a wave. A failure does not stop the others; the next wave still runs (its delete
/// waits out, then reports, what the failure left in use).
pub async fn remove(
    aws: &Aws,
    stack: &str,
    providers: &dyn Providers,
    orphans: &[Found],
) -> Vec<Removed> {
    let empty_tags = BTreeMap::new();
    let empty_outputs = BTreeMap::new();
    let cx = Cx {
        aws,
        stack,
        default_tags: &empty_tags,
        outputs: &empty_outputs,
    };
    let mut out = Vec::new();
    let mut waves: BTreeMap<u8, Vec<&Found>> = BTreeMap::new();
    for f in orphans {
        waves.entry(f.thing.wave()).or_default().push(f);
    }
    for wave in waves.values() {
        let results = futures::future::join_all(wave.iter().map(|f| async {
            let policy = Backoff::OPERATION.attempts(4);
            let result = retry(policy, || delete_one(&cx, providers, f)).await;
            Removed {
                thing: f.thing,
                id: f.id.clone(),
                address: f.address.clone(),
                error: result.err().map(|e| e.message),
            }
        }))
        .await;
        out.extend(results);
    }
    out
}

/// A state entry for an orphan: what its provider's delete reads.
fn entry(f: &Found, kind: crate::graph::Kind) -> Result<ResourceState, OpError> {
    let address = match f.address.as_deref() {
        Some(text) => text.parse().map_err(|e: crate::address::ParseError| {
            OpError::fatal(format!("{}: unreadable address tag: {}", f.id, e.0))
        })?,
        None => stand_in(f),
    };
    let mut attributes = Map::new();
    // Nothing records the topology's choices for an orphan: the shortest KMS deletion window,
    // and a bucket is emptied (deleting orphans was asked for and confirmed).
    attributes.insert("deletion_window_days".into(), json!(7));
    attributes.insert("force_destroy".into(), Value::Bool(true));
    Ok(ResourceState {
        address,
        kind,
        region: f.region.clone(),
        status: Status::Ready,
        ids: f.ids.clone(),
        attributes,
        outputs: BTreeMap::new(),
        dependencies: Vec::new(),
    })
}

/// An address for a thing tagged with the stack but not with an address (made by hand): its
/// provider's delete reads the identifiers, the address only names it in messages.
fn stand_in(f: &Found) -> Address {
    use crate::address::{Port, RegionItem as R, Role};
    let region = f.region.as_deref().unwrap_or("global");
    let id = f.id.clone();
    let what = match f.thing {
        Thing::IamRole => return Address::role(Role::Vault(id)),
        Thing::Vpc => R::Vpc,
        Thing::Subnet => R::Subnet(0),
        Thing::InternetGateway => R::InternetGateway,
        Thing::RouteTable => R::RouteTable,
        Thing::SecurityGroup => R::SecurityGroup,
        Thing::KmsKey => R::Key(id),
        Thing::S3Bucket => R::Bucket(id),
        Thing::EksCluster => R::Cluster(id),
        Thing::EksNodeGroup => R::NodePool {
            cluster: f.ids.get("cluster").cloned().unwrap_or_default(),
            pool: id,
        },
        Thing::LoadBalancer => R::LoadBalancer(id),
        Thing::TargetGroup => R::TargetGroup {
            lb: id,
            port: Port::Api,
        },
        _ => R::Listener {
            lb: id,
            port: Port::Api,
        },
    };
    Address::region(region, what)
}

async fn delete_one(cx: &Cx<'_>, providers: &dyn Providers, f: &Found) -> Result<(), OpError> {
    if let Some(kind) = f.thing.kind() {
        // A listener without the stack's tag goes with its load balancer.
        if f.thing == Thing::Listener && !f.tagged {
            return Ok(());
        }
        let provider = providers
            .provider(kind)
            .ok_or_else(|| OpError::fatal(format!("no provider for {kind}")))?;
        return provider.delete(cx, &entry(f, kind)?).await;
    }
    let region = f.region.as_deref().unwrap_or("us-east-1");
    match f.thing {
        Thing::NetworkInterface => {
            match cx
                .aws
                .ec2(region)
                .delete_network_interface()
                .network_interface_id(&f.id)
                .send()
                .await
            {
                Ok(_) => Ok(()),
                Err(e) if gone(e.code()) => Ok(()),
                Err(e) => Err(in_use(OpError::from_sdk("delete network interface", e))),
            }
        }
        Thing::EbsVolume => {
            match cx
                .aws
                .ec2(region)
                .delete_volume()
                .volume_id(&f.id)
                .send()
                .await
            {
                Ok(_) => Ok(()),
                Err(e) if gone(e.code()) => Ok(()),
                Err(e) => Err(in_use(OpError::from_sdk("delete volume", e))),
            }
        }
        Thing::OidcProvider => {
            match cx
                .aws
                .iam()
                .delete_open_id_connect_provider()
                .open_id_connect_provider_arn(&f.id)
                .send()
                .await
            {
                Ok(_) => Ok(()),
                Err(e) if e.code() == Some("NoSuchEntity") => Ok(()),
                Err(e) => Err(OpError::from_sdk("delete OIDC provider", e)),
            }
        }
        _ => Ok(()),
    }
}

fn gone(code: Option<&str>) -> bool {
    code.is_some_and(|c| c.ends_with(".NotFound"))
}

/// A thing still attached (an interface of a load balancer being deleted) frees itself soon.
fn in_use(mut e: OpError) -> OpError {
    if matches!(
        e.aws_code(),
        Some("InvalidNetworkInterface.InUse" | "VolumeInUse" | "DependencyViolation")
    ) {
        e.retryable = true;
    }
    e
}

use aws_smithy_types::error::metadata::ProvideErrorMetadata as _;
