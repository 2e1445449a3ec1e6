//! KMS keys with their alias. Destroy schedules deletion with the topology's window and keeps
//! the alias, so that re-applying within the window cancels the deletion and re-enables the
//! same key instead of creating a second one.

use std::collections::BTreeMap;

use aws_sdk_kms::types::{KeyState, Tag};
use serde_json::{Map, Value, json};

use crate::address::{Address, RegionItem};
use crate::graph::{Builder, Kind, Resource};
use crate::provider::{Cx, Desired, Observed, OpError, Provider, Recorded};
use crate::state::ResourceState;
use crate::topology::{Region, Topology};

pub struct KmsKey;

/// The keys of region number `ri`.
pub fn graph<'t>(b: &mut Builder<'t>, ri: usize, r: &'t Region) {
    let rn = r.name.value.as_str();
    for (ki, k) in r.keys.iter().enumerate() {
        let ix = b.g.add(
            Address::region(rn, RegionItem::Key(k.name.value.clone())),
            Kind::KmsKey,
            Some(rn),
            k.name.span,
        );
        b.g.dag[ix].origin = Some((ri, ki));
        b.keys.insert((rn, k.name.value.as_str()), ix);
        b.depends.extend(k.depends_on.iter().map(|d| (ix, d)));
    }
}

pub fn desired(t: &Topology, r: &Resource) -> Option<(String, Map<String, Value>)> {
    let key = match (r.origin, r.address.region_item()) {
        (Some((ri, ki)), _) => t.regions.get(ri)?.keys.get(ki)?,
        (None, Some((region, RegionItem::Key(name)))) => t.region(region)?.key(name)?,
        _ => return None,
    };
    let mut attrs = Map::new();
    attrs.insert("alias".into(), json!(key.alias.value));
    attrs.insert("rotation".into(), json!(key.rotation));
    attrs.insert(
        "deletion_window_days".into(),
        json!(key.deletion_window.value),
    );
    attrs.insert("tags".into(), json!(t.aws.tags));
    // Only a multi-Region key shows these: single-Region keys plan as before.
    if key.multi_region.as_ref().is_some_and(|m| m.value) {
        let region = r.region.as_deref().unwrap_or_default();
        attrs.insert("multi_region".into(), json!(true));
        attrs.insert(
            "replica_regions".into(),
            json!(crate::topology::seal::replica_regions(
                t,
                region,
                &key.name.value
            )),
        );
    }
    Some((key.alias.value.clone(), attrs))
}

/// Replicates a multi-Region key into every region `d` asks for that has no replica yet
/// (`ReplicateKey`; a replica's ARN is the primary's with its region).
async fn replicate(client: &aws_sdk_kms::Client, key_id: &str, d: &Desired) -> Result<(), OpError> {
    let wanted = crate::provider::str_list(&d.attrs, "replica_regions");
    if wanted.is_empty() {
        return Ok(());
    }
    let have = replica_regions_of(client, key_id).await?;
    for region in wanted.iter().filter(|r| !have.contains(r)) {
        client
            .replicate_key()
            .key_id(key_id)
            .replica_region(region)
            .send()
            .await
            .map_err(|e| OpError::from_sdk("replicate KMS key", e))?;
    }
    Ok(())
}

/// The regions of a multi-Region key's replicas, sorted; empty for a single-Region key.
async fn replica_regions_of(
    client: &aws_sdk_kms::Client,
    key_id: &str,
) -> Result<Vec<String>, OpError> {
    let meta = client
        .describe_key()
        .key_id(key_id)
        .send()
        .await
        .map_err(|e| OpError::from_sdk("describe KMS key", e))?;
    let mut regions: Vec<String> = meta
        .key_metadata()
        .and_then(|m| m.multi_region_configuration())
        .map(|c| {
            c.replica_keys()
                .iter()
                .filter_map(|k| k.region().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    regions.sort();
    regions.dedup();
    Ok(regions)
}

fn region(rs_region: Option<&str>) -> Result<&str, OpError> {
    rs_region.ok_or_else(|| OpError::fatal("a KMS key needs a region"))
}

async fn key_tags(
    client: &aws_sdk_kms::Client,
    key_id: &str,
) -> Result<BTreeMap<String, String>, OpError> {
    let mut tags = BTreeMap::new();
    let mut marker = None;
    loop {
        let out = client
            .list_resource_tags()
            .key_id(key_id)
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| OpError::from_sdk("list KMS key tags", e))?;
        for t in out.tags() {
            tags.insert(t.tag_key().to_string(), t.tag_value().to_string());
        }
        match (out.truncated(), out.next_marker()) {
            (true, Some(m)) => marker = Some(m.to_string()),
            _ => return Ok(tags),
        }
    }
}

/// The key an alias points to, if the alias exists.
async fn alias_target(
    client: &aws_sdk_kms::Client,
    alias: &str,
) -> Result<Option<String>, OpError> {
    let mut marker = None;
    loop {
        let out = client
            .list_aliases()
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| OpError::from_sdk("list KMS aliases", e))?;
        if let Some(a) = out.aliases().iter().find(|a| a.alias_name() == Some(alias)) {
            return Ok(a.target_key_id().map(str::to_owned));
        }
        match (out.truncated(), out.next_marker()) {
            (true, Some(m)) => marker = Some(m.to_string()),
            _ => return Ok(None),
        }
    }
}

/// A key of this stack and address left behind by an interrupted create (no alias yet).
async fn find_by_tags(
    cx: &Cx<'_>,
    client: &aws_sdk_kms::Client,
    address: &str,
) -> Result<Option<String>, OpError> {
    let mut marker = None;
    loop {
        let out = client
            .list_keys()
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| OpError::from_sdk("list KMS keys", e))?;
        for k in out.keys() {
            let Some(id) = k.key_id() else { continue };
            let tags = key_tags(client, id).await?;
            if tags.get(crate::provider::TAG_STACK).map(String::as_str) == Some(cx.stack)
                && tags.get(crate::provider::TAG_ADDRESS).map(String::as_str) == Some(address)
            {
                return Ok(Some(id.to_string()));
            }
        }
        match (out.truncated(), out.next_marker()) {
            (true, Some(m)) => marker = Some(m.to_string()),
            _ => return Ok(None),
        }
    }
}

/// Tags as KMS takes them.
pub(crate) fn kms_tags(tags: &BTreeMap<String, String>) -> Result<Vec<Tag>, OpError> {
    tags.iter()
        .map(|(k, v)| {
            Tag::builder()
                .tag_key(k)
                .tag_value(v)
                .build()
                .map_err(|e| OpError::fatal(format!("bad tag {k}: {e}")))
        })
        .collect()
}

/// The key policy: the account administers the key through IAM, as AWS's default policy does;
/// written explicitly so that drift in it is corrected. (The Vault role's access comes from its
/// IAM policy, which this statement enables.)
pub fn key_policy(account: &str) -> String {
    json!({
        "Version": "2012-10-17",
        "Id": "vaultform",
        "Statement": [{
            "Sid": "AccountAdministersThroughIam",
            "Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::{account}:root")},
            "Action": "kms:*",
            "Resource": "*"
        }]
    })
    .to_string()
}

/// Makes an existing key usable again, sets its rotation and policy; returns what state records.
async fn converge(
    cx: &Cx<'_>,
    client: &aws_sdk_kms::Client,
    key_id: &str,
    d: &Desired,
) -> Result<Recorded, OpError> {
    let account = cx
        .aws
        .account_id()
        .await
        .map_err(|e| OpError::retryable(format!("look up the AWS account: {e}")))?;
    let meta = client
        .describe_key()
        .key_id(key_id)
        .send()
        .await
        .map_err(|e| OpError::from_sdk("describe KMS key", e))?;
    let meta = meta
        .key_metadata()
        .ok_or_else(|| OpError::fatal("KMS returned no key metadata"))?;
    match meta.key_state() {
        Some(KeyState::PendingDeletion) => {
            client
                .cancel_key_deletion()
                .key_id(key_id)
                .send()
                .await
                .map_err(|e| OpError::from_sdk("cancel KMS key deletion", e))?;
            client
                .enable_key()
                .key_id(key_id)
                .send()
                .await
                .map_err(|e| OpError::from_sdk("enable KMS key", e))?;
        }
        Some(KeyState::Disabled) => {
            client
                .enable_key()
                .key_id(key_id)
                .send()
                .await
                .map_err(|e| OpError::from_sdk("enable KMS key", e))?;
        }
        _ => {}
    }
    set_rotation(
        client,
        key_id,
        d.attrs
            .get("rotation")
            .and_then(Value::as_bool)
            .unwrap_or(true),
    )
    .await?;
    client
        .put_key_policy()
        .key_id(key_id)
        .policy_name("default")
        .policy(key_policy(&account))
        .send()
        .await
        .map_err(|e| OpError::from_sdk("set KMS key policy", e))?;
    let arn = meta.arn().unwrap_or_default().to_string();
    Ok(Recorded {
        ids: BTreeMap::from([
            ("key_id".into(), key_id.to_string()),
            ("arn".into(), arn.clone()),
        ]),
        outputs: BTreeMap::from([("arn".into(), arn), ("key_id".into(), key_id.to_string())]),
    })
}

async fn set_rotation(client: &aws_sdk_kms::Client, key_id: &str, on: bool) -> Result<(), OpError> {
    let current = client
        .get_key_rotation_status()
        .key_id(key_id)
        .send()
        .await
        .map_err(|e| OpError::from_sdk("read KMS key rotation", e))?
        .key_rotation_enabled();
    if current == on {
        return Ok(());
    }
    if on {
        client
            .enable_key_rotation()
            .key_id(key_id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| OpError::from_sdk("enable KMS key rotation", e))
    } else {
        client
            .disable_key_rotation()
            .key_id(key_id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| OpError::from_sdk("disable KMS key rotation", e))
    }
}

fn alias_of(d: &Desired) -> &str {
    d.attrs
        .get("alias")
        .and_then(Value::as_str)
        .unwrap_or(&d.name)
}

#[async_trait::async_trait]
impl Provider for KmsKey {
    fn service(&self) -> &'static str {
        "kms"
    }

    fn forces_replacement(&self) -> &'static [&'static str] {
        &[]
    }

    async fn read(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<Observed, OpError> {
        let client = cx.aws.kms(region(rs.region.as_deref())?);
        let Some(key_id) = rs.id("key_id") else {
            return Ok(Observed::Gone);
        };
        let meta = match client.describe_key().key_id(key_id).send().await {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_not_found_exception()) =>
            {
                return Ok(Observed::Gone);
            }
            Err(e) => return Err(OpError::from_sdk("describe KMS key", e)),
        };
        if meta
            .key_metadata()
            .and_then(|m| m.key_state())
            .is_some_and(|s| {
                matches!(
                    s,
                    KeyState::PendingDeletion | KeyState::PendingReplicaDeletion
                )
            })
        {
            return Ok(Observed::Gone);
        }
        let mut attrs = rs.attributes.clone();
        let aliases = client
            .list_aliases()
            .key_id(key_id)
            .send()
            .await
            .map_err(|e| OpError::from_sdk("list KMS aliases", e))?;
        let names: Vec<&str> = aliases
            .aliases()
            .iter()
            .filter_map(|a| a.alias_name())
            .collect();
        let recorded = rs
            .attributes
            .get("alias")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let alias = if names.contains(&recorded) {
            recorded
        } else {
            names.first().copied().unwrap_or_default()
        };
        attrs.insert("alias".into(), json!(alias));
        let rotation = client
            .get_key_rotation_status()
            .key_id(key_id)
            .send()
            .await
            .map_err(|e| OpError::from_sdk("read KMS key rotation", e))?
            .key_rotation_enabled();
        attrs.insert("rotation".into(), json!(rotation));
        if meta.key_metadata().and_then(|m| m.multi_region()) == Some(true) {
            attrs.insert("multi_region".into(), json!(true));
            attrs.insert(
                "replica_regions".into(),
                json!(replica_regions_of(&client, key_id).await?),
            );
        }
        let mut tags = key_tags(&client, key_id).await?;
        // vaultform's own tags (ownership, expiry) are not the topology's.
        tags.retain(|k, _| !k.starts_with("vaultform:"));
        attrs.insert("tags".into(), json!(tags));
        Ok(Observed::Present {
            attrs,
            delete_blocker: None,
        })
    }

    async fn create(&self, cx: &Cx<'_>, d: &Desired) -> Result<Recorded, OpError> {
        let client = cx.aws.kms(region(d.region.as_deref())?);
        let alias = alias_of(d);
        // Adopt: by alias first, then by tags (a create interrupted before its alias existed).
        let existing = super::wait::find_resumed(d.resumed, || async {
            match alias_target(&client, alias).await? {
                Some(id) => Ok(Some(id)),
                None => find_by_tags(cx, &client, d.address.as_str()).await,
            }
        })
        .await?;
        if let Some(key_id) = existing {
            let tags = key_tags(&client, &key_id).await?;
            cx.check_owner(
                &format!("KMS key {key_id} ({alias})"),
                d.address.as_str(),
                &tags,
            )?;
            let recorded = converge(cx, &client, &key_id, d).await?;
            replicate(&client, &key_id, d).await?;
            if alias_target(&client, alias).await?.is_none() {
                client
                    .create_alias()
                    .alias_name(alias)
                    .target_key_id(&key_id)
                    .send()
                    .await
                    .map_err(|e| OpError::from_sdk("create KMS alias", e))?;
            }
            return Ok(recorded);
        }
        let multi_region = d.attrs.get("multi_region").and_then(Value::as_bool) == Some(true);
        let out = client
            .create_key()
            .multi_region(multi_region)
            .description(format!("vaultform {} {}", cx.stack, d.address))
            .set_tags(Some(kms_tags(&cx.tags(d.address.as_str()))?))
            .send()
            .await
            .map_err(|e| OpError::from_sdk("create KMS key", e))?;
        let key_id = out
            .key_metadata()
            .map(|m| m.key_id().to_string())
            .ok_or_else(|| OpError::fatal("KMS returned no key ID"))?;
        client
            .create_alias()
            .alias_name(alias)
            .target_key_id(&key_id)
            .send()
            .await
            .map_err(|e| OpError::from_sdk("create KMS alias", e))?;
        let recorded = converge(cx, &client, &key_id, d).await?;
        replicate(&client, &key_id, d).await?;
        Ok(recorded)
    }

    async fn update(
        &self,
        cx: &Cx<'_>,
        rs: &ResourceState,
        d: &Desired,
    ) -> Result<Recorded, OpError> {
        let client = cx.aws.kms(region(d.region.as_deref())?);
        let key_id = rs
            .id("key_id")
            .ok_or_else(|| OpError::fatal("no recorded key ID"))?;
        let alias = alias_of(d);
        // A key cannot become multi-Region, and replacing a key would lose what it encrypts.
        if d.attrs.get("multi_region").and_then(Value::as_bool) == Some(true) {
            let meta = client
                .describe_key()
                .key_id(key_id)
                .send()
                .await
                .map_err(|e| OpError::from_sdk("describe KMS key", e))?;
            if meta.key_metadata().and_then(|m| m.multi_region()) != Some(true) {
                return Err(OpError::fatal(format!(
                    "KMS key {key_id} ({alias}) is a single-Region key and cannot become multi-Region; declare a new key with `multi-region=#true` (and move what the old one encrypts)"
                )));
            }
        }
        match alias_target(&client, alias).await? {
            Some(target) if target == key_id => {}
            Some(other) => {
                return Err(OpError::fatal(format!(
                    "alias {alias} already points to another key ({other})"
                )));
            }
            None => {
                client
                    .create_alias()
                    .alias_name(alias)
                    .target_key_id(key_id)
                    .send()
                    .await
                    .map_err(|e| OpError::from_sdk("create KMS alias", e))?;
                let old = rs.attributes.get("alias").and_then(Value::as_str);
                if let Some(old) = old.filter(|o| *o != alias) {
                    let _ = client.delete_alias().alias_name(old).send().await;
                }
            }
        }
        client
            .tag_resource()
            .key_id(key_id)
            .set_tags(Some(kms_tags(&cx.tags(d.address.as_str()))?))
            .send()
            .await
            .map_err(|e| OpError::from_sdk("tag KMS key", e))?;
        let recorded = converge(cx, &client, key_id, d).await?;
        replicate(&client, key_id, d).await?;
        Ok(recorded)
    }

    async fn delete(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<(), OpError> {
        let client = cx.aws.kms(region(rs.region.as_deref())?);
        let Some(key_id) = rs.id("key_id") else {
            return Ok(());
        };
        let days = rs
            .attributes
            .get("deletion_window_days")
            .and_then(Value::as_i64)
            .unwrap_or(30) as i32;
        // A primary key is deleted after its replicas, each scheduled in its own region (a
        // replica has its primary's key ID).
        let multi_region = rs.attributes.get("multi_region").and_then(Value::as_bool) == Some(true);
        let replicas = if multi_region {
            replica_regions_of(&client, key_id)
                .await
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        for replica_region in replicas {
            schedule_deletion(&cx.aws.kms(&replica_region), key_id, days).await?;
        }
        schedule_deletion(&client, key_id, days).await
    }
}

/// Schedules a key's deletion; one already gone or pending deletion is fine.
async fn schedule_deletion(
    client: &aws_sdk_kms::Client,
    key_id: &str,
    days: i32,
) -> Result<(), OpError> {
    match client
        .schedule_key_deletion()
        .key_id(key_id)
        .pending_window_in_days(days)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => {
            let service = e.as_service_error();
            // Already gone, or already pending deletion: the goal is reached.
            if service
                .is_some_and(|s| s.is_not_found_exception() || s.is_kms_invalid_state_exception())
            {
                Ok(())
            } else {
                Err(OpError::from_sdk("schedule KMS key deletion", e))
            }
        }
    }
}
