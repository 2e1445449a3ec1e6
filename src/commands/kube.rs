//! `kubeconfig` and `eks-token`: kubectl access to the stack's EKS clusters without the aws
//! CLI.

use std::path::Path;

use super::stack::open;
use super::{Error, Outcome};
use crate::aws::{Aws, AwsSettings};
use crate::cli::StateArgs;
use crate::runtime::kubernetes::{client, kubeconfig, token};
use crate::ui::Printer;

/// Environment passed on to the exec plugin, so that kubectl signs as the person who wrote
/// the kubeconfig did.
const PASSED_ENV: [&str; 1] = ["AWS_PROFILE"];

pub async fn kubeconfig(
    file: &Path,
    only: Option<&str>,
    out: Option<&Path>,
    printer: &Printer,
) -> Result<Outcome, Error> {
    // The clusters come from the topology; the state is not read.
    let no_state = StateArgs { path: None };
    let Some(session) = open(file, None, &no_state, None, printer)? else {
        return Ok(Outcome::Failure);
    };
    let all: Vec<(String, String)> = session
        .topology()
        .regions
        .iter()
        .flat_map(|r| {
            r.clusters
                .iter()
                .map(|c| (r.name.value.clone(), c.name.value.clone()))
        })
        .collect();
    let wanted: Vec<&(String, String)> = all
        .iter()
        .filter(|(_, name)| only.is_none_or(|o| o == name))
        .collect();
    if let Some(name) = only
        && wanted.is_empty()
    {
        return Err(Error::UnknownCluster {
            name: name.to_string(),
            known: all
                .iter()
                .map(|(_, n)| n.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let aws = session.connect_checked().await?;
    let mut clusters = Vec::new();
    for (region, name) in wanted {
        // The API vaultform reaches: an endpoint override (a tunnel, an emulator) wins.
        let access = crate::runtime::kubernetes::clusters::access(&aws, region, name)
            .await
            .map_err(|e| Error::Kube {
                message: e.message,
                help: "`vaultform doctor FILE` checks each EKS cluster's API".into(),
            })?;
        clusters.push(access);
    }
    let program = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "vaultform".into());
    let env: Vec<(String, String)> = PASSED_ENV
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
        .collect();
    let yaml = kubeconfig::to_yaml(&kubeconfig::kubeconfig(&clusters, &program, &env));
    match out {
        Some(path) => {
            crate::private::write(path, yaml.as_bytes()).map_err(|source| Error::Write {
                path: path.display().to_string(),
                source,
            })?;
            printer.message(&format!(
                "Wrote a kubeconfig for {} cluster(s) to {}; use it with `KUBECONFIG={} kubectl ...`.",
                clusters.len(),
                path.display(),
                path.display()
            ));
        }
        None => printer.data(&yaml),
    }
    Ok(Outcome::Success)
}

pub async fn eks_token(cluster: &str, region: &str, printer: &Printer) -> Result<Outcome, Error> {
    let aws = Aws::connect(&AwsSettings::resolve(None)).await;
    let tokens = token::EksTokens::new(&aws, region, cluster).map_err(client::KubeError::from)?;
    let token = tokens.get().await.map_err(client::KubeError::from)?;
    printer.data(&format!("{}\n", kubeconfig::exec_credential(&token)));
    Ok(Outcome::Success)
}

/// A cluster's API that cannot be reached, said with its help.
impl From<client::KubeError> for Error {
    fn from(e: client::KubeError) -> Self {
        let help = miette::Diagnostic::help(&e)
            .map(|h| h.to_string())
            .unwrap_or_else(|| "`vaultform doctor FILE` checks each EKS cluster's API".into());
        Error::Kube {
            message: e.to_string(),
            help,
        }
    }
}
