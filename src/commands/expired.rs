//! `expired`: wiring from flags to the inventory of every stack, the expiry check, the
//! destroys and the UI.

use std::sync::Arc;

use super::{Error, Outcome};
use crate::aws::{Aws, AwsSettings};
use crate::catalog::Catalog;
use crate::cli::ExpiredArgs;
use crate::sweep::{self, Query, expired, expiry};
use crate::ui::{Printer, prompt, sweep as render};
use crate::vault::spec::Vaults;

/// The regions enabled for the account (EC2 DescribeRegions).
pub(crate) async fn enabled_regions(aws: &Aws) -> Result<Vec<String>, Error> {
    let out = aws
        .ec2("us-east-1")
        .describe_regions()
        .send()
        .await
        .map_err(|e| Error::Sweep {
            message: crate::provider::OpError::from_sdk("describe regions", e).message,
        })?;
    let mut regions: Vec<String> = out
        .regions()
        .iter()
        .filter_map(|r| r.region_name().map(str::to_owned))
        .collect();
    regions.sort();
    Ok(regions)
}

pub async fn expired(args: &ExpiredArgs, printer: &Printer) -> Result<Outcome, Error> {
    let aws = Aws::connect(&AwsSettings::resolve(None)).await;
    let regions = if args.regions.is_empty() {
        enabled_regions(&aws).await?
    } else {
        args.regions.clone()
    };
    aws.check(&regions).await.map_err(|e| Error::AwsCheck {
        message: e.to_string(),
    })?;
    let query = Query {
        stack: Query::ANY.to_string(),
        regions: regions.clone(),
        clusters: Vec::new(),
        work_dirs: Vec::new(),
        bucket_names: Vec::new(),
    };
    let found = sweep::inventory(&aws, &query)
        .await
        .map_err(|e| Error::Sweep { message: e.message })?;
    let stacks = expiry::stacks(&found, time::OffsetDateTime::now_utc());
    let due: Vec<&expiry::Expiring> = stacks.iter().filter(|s| s.expired).collect();
    if !args.destroy || due.is_empty() {
        if args.json {
            printer.json_line(&render::ExpiredJson {
                stacks: &stacks,
                destroyed: None,
            });
        } else {
            printer.data(&render::expiring(&stacks));
        }
        return Ok(Outcome::Success);
    }
    if !args.json {
        printer.data(&render::expiring(&stacks));
    }
    if !args.auto_approve && !prompt::confirm("destroy the expired stacks", printer)? {
        printer.message("Cancelled: nothing was destroyed.");
        return Ok(Outcome::Failure);
    }
    // No topology: the Vault parts of the state delete from what the state records.
    let catalog = Arc::new(Catalog::new(Arc::new(Vaults(Default::default()))));
    let mut destroyed = Vec::new();
    for s in due {
        let d =
            expired::destroy(&aws, s, &regions, catalog.clone(), crate::session::ATTEMPTS).await;
        if !args.json {
            printer.message(&render::destroyed(&d));
        }
        destroyed.push(d);
    }
    if args.json {
        printer.json_line(&render::ExpiredJson {
            stacks: &stacks,
            destroyed: Some(&destroyed),
        });
    }
    Ok(if destroyed.iter().all(expired::Destroyed::ok) {
        Outcome::Success
    } else {
        Outcome::Failure
    })
}
