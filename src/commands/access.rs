//! `env` and `login`: wiring from flags to the endpoint and token operations in `ops` and
//! their rendering in `ui`.

use std::path::Path;

use super::vault::open_ops;
use super::{Error, Outcome};
use crate::cli::StateArgs;
use crate::ops::endpoint::Endpoint;
use crate::ops::login::{self, LoginRequest};
use crate::ui::{Printer, access};

pub async fn env(
    file: &Path,
    state: &StateArgs,
    json: bool,
    vault: Option<&str>,
    printer: &Printer,
) -> Result<Outcome, Error> {
    let Some((ops, _)) = open_ops(file, state, printer).await? else {
        return Ok(Outcome::Failure);
    };
    let endpoint = Endpoint::of(&ops.one(vault)?);
    if json {
        printer.json_line(&access::endpoint_json(&endpoint));
    } else {
        printer.data(&access::exports(&endpoint.variables()));
    }
    Ok(Outcome::Success)
}

/// Where `login` puts the token.
#[derive(Debug, Clone, Copy)]
pub struct LoginOutput {
    /// In ~/.vault-token rather than on stdout.
    pub token_helper: bool,
    pub json: bool,
}

/// `request` is resolved from the flags before anything is read: nothing is read from the
/// store for a request that would be refused.
pub async fn login(
    file: &Path,
    state: &StateArgs,
    request: LoginRequest,
    output: LoginOutput,
    vault: Option<&str>,
    printer: &Printer,
) -> Result<Outcome, Error> {
    let token_file = if output.token_helper {
        Some(login::token_helper_path()?)
    } else {
        None
    };
    let Some((ops, _)) = open_ops(file, state, printer).await? else {
        return Ok(Outcome::Failure);
    };
    let v = ops.one(vault)?;
    let issued = login::login(&ops, &v, &request).await?;
    if let Some(path) = &token_file {
        login::write_token(path, &issued.token)?;
    }
    if output.json {
        printer.json_line(&access::issued_json(&issued, token_file.as_deref()));
        return Ok(Outcome::Success);
    }
    printer.message(&access::issued(&issued));
    match &token_file {
        Some(path) => printer.data(&format!("Wrote the token to {}.\n", path.display())),
        None => printer.data(&format!("{}\n", issued.token.expose())),
    }
    Ok(Outcome::Success)
}
