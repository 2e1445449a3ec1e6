//! What a planned stack costs while it runs, from a price table: EKS control planes, nodes by
//! instance type and capacity type (and their disks and public addresses), network load
//! balancers with their public addresses, and KMS keys; before and after the plan.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::graph::Kind;
use crate::plan::Plan;

/// The price table shipped in the repository (`src/cost/prices.json`).
const SHIPPED: &str = include_str!("prices.json");

/// A price table: when and where its prices come from, and the prices per region.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Prices {
    pub date: String,
    pub source: String,
    pub currency: String,
    pub hours_per_month: f64,
    /// Spot capacity costs this share of on-demand.
    pub spot_factor: f64,
    pub spot_note: String,
    pub regions: BTreeMap<String, RegionPrices>,
}

/// One region's prices.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegionPrices {
    pub eks_cluster_hour: f64,
    pub nlb_hour: f64,
    pub public_ipv4_hour: f64,
    pub kms_key_month: f64,
    pub ebs_gp3_gb_month: f64,
    /// On-demand, by instance type.
    pub ec2_hour: BTreeMap<String, f64>,
}

/// A price table that cannot be read.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("cannot read the price table {path}: {message}")]
#[diagnostic(
    code(vaultform::cost::prices),
    help("a price table has the format of src/cost/prices.json in the vaultform repository")
)]
pub struct PricesError {
    pub path: String,
    pub message: String,
}

impl Prices {
    pub fn shipped() -> Prices {
        serde_json::from_str(SHIPPED).expect("the shipped price table is valid")
    }

    /// The table in `path`, or the shipped one.
    pub fn load(path: Option<&Path>) -> Result<Prices, PricesError> {
        let Some(path) = path else {
            return Ok(Prices::shipped());
        };
        let err = |message: String| PricesError {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| err(e.to_string()))
    }
}

/// One priced item of the planned stack, per region: `count` units at `unit_hour` each.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    pub region: String,
    /// `EKS control plane`, `c5.large spot node`, `NLB`, `public IPv4`, `KMS key`, ...
    pub item: String,
    pub count: f64,
    pub unit_hour: f64,
    pub hour: f64,
    pub month: f64,
}

/// The cost of a plan: its stack after the plan, and the difference from before.
#[derive(Debug, Clone, Serialize)]
pub struct Cost {
    pub currency: String,
    pub prices_date: String,
    pub hour: f64,
    pub month: f64,
    pub before_hour: f64,
    pub diff_hour: f64,
    pub diff_month: f64,
    /// The stack after the plan, item by item.
    pub lines: Vec<Line>,
    /// What the table has no price for (an instance type, a region).
    pub unpriced: Vec<String>,
}

/// Priced quantities of one resource: `(item, count, unit price per hour)`.
fn items(
    kind: Kind,
    attrs: &Map<String, Value>,
    p: &RegionPrices,
    prices: &Prices,
    unpriced: &mut Vec<String>,
) -> Vec<(String, f64, f64)> {
    let num = |k: &str| attrs.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    let list_len = |k: &str| attrs.get(k).and_then(Value::as_array).map_or(0, Vec::len);
    let month = prices.hours_per_month;
    match kind {
        Kind::EksCluster => vec![("EKS control plane".into(), 1.0, p.eks_cluster_hour)],
        Kind::EksNodeGroup => {
            let nodes = num("desired");
            let spot = attrs.get("capacity").and_then(Value::as_str) == Some("SPOT");
            let Some(itype) = attrs
                .get("instance_types")
                .and_then(Value::as_array)
                .and_then(|t| t.first())
                .and_then(Value::as_str)
            else {
                return Vec::new();
            };
            let mut out = Vec::new();
            match p.ec2_hour.get(itype) {
                Some(od) => {
                    let (what, unit) = if spot {
                        ("spot", od * prices.spot_factor)
                    } else {
                        ("on-demand", *od)
                    };
                    out.push((format!("{itype} {what} node"), nodes, unit));
                }
                None => unpriced.push(format!("instance type {itype}")),
            }
            // Node subnets map a public IPv4 address to every node.
            out.push(("public IPv4 (nodes)".into(), nodes, p.public_ipv4_hour));
            out.push((
                "EBS gp3 GB (node disks)".into(),
                nodes * num("disk_size"),
                p.ebs_gp3_gb_month / month,
            ));
            out
        }
        Kind::LoadBalancer => {
            let mut out = vec![("NLB".into(), 1.0, p.nlb_hour)];
            if attrs.get("scheme").and_then(Value::as_str) == Some("internet-facing") {
                // One public address per availability zone (subnet) it serves.
                let azs = list_len("subnets").max(list_len("subnet_ids"));
                out.push(("public IPv4 (NLB)".into(), azs as f64, p.public_ipv4_hour));
            }
            out
        }
        Kind::KmsKey => vec![("KMS key".into(), 1.0, p.kms_key_month / month)],
        // A Vault member's StatefulSet: its raft volume (an EBS gp3 volume through the EBS
        // CSI driver), per replica.
        Kind::KubeObject if attrs.get("kind").and_then(Value::as_str) == Some("StatefulSet") => {
            let size = attrs
                .get("spec.volumeClaimTemplates[0].spec.resources.requests.storage")
                .and_then(Value::as_str)
                .and_then(|q| q.strip_suffix("Gi"))
                .and_then(|n| n.parse::<f64>().ok())
                .unwrap_or(0.0);
            vec![(
                "EBS gp3 GB (Vault data)".into(),
                num("spec.replicas") * size,
                p.ebs_gp3_gb_month / month,
            )]
        }
        _ => Vec::new(),
    }
}

/// Adds a resource's items to `lines`, per region and item.
fn add(
    lines: &mut BTreeMap<(String, String), (f64, f64)>,
    kind: Kind,
    region: Option<&str>,
    attrs: &Map<String, Value>,
    prices: &Prices,
    unpriced: &mut Vec<String>,
) {
    let Some(region) = region else { return };
    let priced = matches!(
        kind,
        Kind::EksCluster
            | Kind::EksNodeGroup
            | Kind::LoadBalancer
            | Kind::KmsKey
            | Kind::KubeObject
    );
    if !priced {
        return;
    }
    let Some(p) = prices.regions.get(region) else {
        unpriced.push(format!("region {region}"));
        return;
    };
    for (item, count, unit) in items(kind, attrs, p, prices, unpriced) {
        let e = lines
            .entry((region.to_string(), item))
            .or_insert((0.0, unit));
        e.0 += count;
    }
}

fn total(lines: &BTreeMap<(String, String), (f64, f64)>) -> f64 {
    lines.values().map(|(n, unit)| n * unit).sum()
}

/// Rounded to a hundredth of a cent: what JSON and snapshots show.
fn round(x: f64) -> f64 {
    // `+ 0.0` turns a negative zero into zero.
    (x * 10_000.0).round() / 10_000.0 + 0.0
}

/// What the stack costs after `plan` and how much that changes.
pub fn of(plan: &Plan, prices: &Prices) -> Cost {
    let mut after = BTreeMap::new();
    let mut before = BTreeMap::new();
    let mut unpriced = Vec::new();
    let mut ignored = Vec::new();
    for c in &plan.changes {
        let region = c.region.as_deref();
        if let Some(a) = &c.after {
            add(&mut after, c.kind, region, a, prices, &mut unpriced);
        }
        if let Some(b) = &c.before {
            add(&mut before, c.kind, region, b, prices, &mut ignored);
        }
    }
    unpriced.sort();
    unpriced.dedup();
    let hour = total(&after);
    let before_hour = total(&before);
    let m = prices.hours_per_month;
    Cost {
        currency: prices.currency.clone(),
        prices_date: prices.date.clone(),
        hour: round(hour),
        month: round(hour * m),
        before_hour: round(before_hour),
        diff_hour: round(hour - before_hour),
        diff_month: round((hour - before_hour) * m),
        lines: after
            .into_iter()
            .filter(|(_, (n, _))| *n > 0.0)
            .map(|((region, item), (count, unit))| Line {
                region,
                item,
                count,
                unit_hour: round(unit),
                hour: round(count * unit),
                month: round(count * unit * m),
            })
            .collect(),
        unpriced,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_table_prices_every_instance_type_of_the_shipped_topologies() {
        let p = Prices::shipped();
        for region in ["eu-central-1", "eu-west-1", "eu-north-1"] {
            let r = &p.regions[region];
            for t in ["c5.large", "m6i.large", "m5.large"] {
                assert!(r.ec2_hour.contains_key(t), "{region} {t}");
            }
        }
        assert!(p.spot_factor > 0.0 && p.spot_factor < 1.0);
    }
}
