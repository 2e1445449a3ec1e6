//! How a cluster is reached, for shells and pipelines: `export` lines with every value
//! shell-quoted, and what `login` says about the token it made (never the root token).

use serde_json::{Value, json};

use crate::ops::endpoint::Endpoint;
use crate::ops::login::IssuedToken;

/// `value` as one POSIX shell word: single-quoted, each `'` written as `'\''`.
pub fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// `export NAME='value'` lines, for `eval "$(vaultform env FILE)"`.
pub fn exports(vars: &[(&str, String)]) -> String {
    vars.iter()
        .map(|(name, value)| format!("export {name}={}\n", quote(value)))
        .collect()
}

/// `env --json`: the endpoint and its variables.
pub fn endpoint_json(e: &Endpoint) -> Value {
    let vars: serde_json::Map<String, Value> = e
        .variables()
        .into_iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    json!({
        "vault": e.vault,
        "via": e.via,
        "addr": e.addr,
        "ca_file": e.ca_file,
        "env": vars,
    })
}

/// The message beside a login token: what it may do, until when, and where it works.
pub fn issued(t: &IssuedToken) -> String {
    format!(
        "A token for {} through {} ({}): policies {}; valid for {}s, until {}, not renewable; accessor {}.",
        t.endpoint.vault,
        t.endpoint.via,
        t.endpoint.addr,
        t.policies.join(", "),
        t.ttl_seconds,
        t.expires_at,
        t.accessor
    )
}

/// `login --json`: the token (unless it went to a file) and its details.
pub fn issued_json(t: &IssuedToken, token_file: Option<&std::path::Path>) -> Value {
    let mut v = json!({
        "vault": t.endpoint.vault,
        "addr": t.endpoint.addr,
        "ca_file": t.endpoint.ca_file,
        "accessor": t.accessor,
        "policies": t.policies,
        "ttl_seconds": t.ttl_seconds,
        "expires_at": t.expires_at,
        "renewable": false,
    });
    match token_file {
        Some(path) => v["token_file"] = json!(path),
        None => v["token"] = json!(t.token.expose()),
    }
    v
}

#[cfg(test)]
mod tests {
    use super::{exports, quote};

    #[test]
    fn values_are_one_shell_word_whatever_they_hold() {
        assert_eq!(quote("http://127.0.0.1:8200"), "'http://127.0.0.1:8200'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
        let out = exports(&[("VAULT_ADDR", "a b$(x)`y`".into())]);
        assert_eq!(out, "export VAULT_ADDR='a b$(x)`y`'\n");
    }
}
