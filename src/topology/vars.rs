//! Topology variables: `${NAME}` in a string value is replaced by the value given with
//! `--var NAME=VALUE`, or else by the environment variable `VAULTFORM_VAR_NAME`, so that one
//! topology serves every environment (`stack "bv-${env}"`). A reference without a value is a
//! problem pointing at the value that holds it.

use std::collections::BTreeMap;
use std::sync::RwLock;

use miette::SourceSpan;

use super::diagnostic::{Code, Problem};

/// The variables given on the command line, for this process.
static VARS: RwLock<BTreeMap<String, String>> = RwLock::new(BTreeMap::new());

/// The prefix of the environment variables that set topology variables.
pub const ENV_PREFIX: &str = "VAULTFORM_VAR_";

/// Sets the command line's variables (they win over the environment).
pub fn set(vars: BTreeMap<String, String>) {
    if let Ok(mut v) = VARS.write() {
        *v = vars;
    }
}

/// `NAME=VALUE`, as `--var` takes it.
pub fn parse_assignment(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, value)) if valid_name(name) => Ok((name.to_string(), value.to_string())),
        _ => Err(format!(
            "\"{s}\" is not NAME=VALUE (a name of letters, digits, `_` and `-`)"
        )),
    }
}

fn valid_name(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn lookup(name: &str) -> Option<String> {
    if let Some(v) = VARS.read().ok().and_then(|v| v.get(name).cloned()) {
        return Some(v);
    }
    let env = format!("{ENV_PREFIX}{}", name.replace('-', "_"));
    std::env::var(env).ok()
}

/// `value` with every `${NAME}` replaced; a problem at `span` for a reference that has no
/// value or is malformed. `$$` stands for a literal `$`.
pub fn expand(value: &str, span: SourceSpan) -> Result<String, Problem> {
    if !value.contains('$') {
        return Ok(value.to_string());
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
            continue;
        }
        let Some(inner) = after.strip_prefix('{') else {
            out.push('$');
            rest = after;
            continue;
        };
        let Some(end) = inner.find('}') else {
            return Err(Problem::error(
                Code::InvalidValue,
                "a variable reference `${` is not closed",
            )
            .label(span, "`${` without `}`")
            .help("write `${NAME}`, or `$$` for a literal `$`"));
        };
        let name = &inner[..end];
        if !valid_name(name) {
            return Err(Problem::error(
                Code::InvalidValue,
                format!("`${{{name}}}` is not a variable name"),
            )
            .label(span, "malformed reference")
            .help("a name of letters, digits, `_` and `-`, e.g. `${env}`"));
        }
        match lookup(name) {
            Some(v) => out.push_str(&v),
            None => {
                return Err(Problem::error(
                    Code::MissingValue,
                    format!("the variable `{name}` has no value"),
                )
                .label(span, format!("`${{{name}}}` is used here"))
                .help(format!(
                    "pass `--var {name}=VALUE`, or set {ENV_PREFIX}{}",
                    name.replace('-', "_")
                )));
            }
        }
        rest = &inner[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_expand_and_missing_ones_are_problems() {
        set(BTreeMap::from([("env".to_string(), "pr-123".to_string())]));
        let span = SourceSpan::from((0, 1));
        assert_eq!(expand("bv-${env}", span).unwrap(), "bv-pr-123");
        assert_eq!(expand("a$$b", span).unwrap(), "a$b");
        assert_eq!(expand("cost $5", span).unwrap(), "cost $5");
        let p = expand("bv-${nope-not-set}", span).unwrap_err();
        assert!(
            p.message.contains("`nope-not-set` has no value"),
            "{}",
            p.message
        );
        assert!(expand("bv-${env", span).is_err());
        assert!(expand("bv-${1x}", span).is_err());
        assert_eq!(
            parse_assignment("env=pr-1"),
            Ok(("env".to_string(), "pr-1".to_string()))
        );
        assert!(parse_assignment("=x").is_err());
    }
}
