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
/// value or is malformed. `$$` stands for a literal `$`. With a problem, the value is still
/// returned (a missing variable stands for its own name) so that no "missing setting" follows.
pub fn expand(value: &str, span: SourceSpan) -> (String, Option<Problem>) {
    if !value.contains('$') {
        return (value.to_string(), None);
    }
    let mut out = String::with_capacity(value.len());
    let mut problem = None;
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
            problem.get_or_insert(
                Problem::error(
                    Code::InvalidValue,
                    "a variable reference `${` is not closed",
                )
                .label(span, "`${` without `}`")
                .help("write `${NAME}`, or `$$` for a literal `$`"),
            );
            out.push_str(&rest[at..]);
            return (out, problem);
        };
        let name = &inner[..end];
        rest = &inner[end + 1..];
        if !valid_name(name) {
            problem.get_or_insert(
                Problem::error(
                    Code::InvalidValue,
                    format!("`${{{name}}}` is not a variable name"),
                )
                .label(span, "malformed reference")
                .help("a name of letters, digits, `_` and `-`, e.g. `${env}`"),
            );
            out.push_str(name);
            continue;
        }
        match lookup(name) {
            Some(v) => out.push_str(&v),
            None => {
                problem.get_or_insert(
                    Problem::error(
                        Code::MissingValue,
                        format!("the variable `{name}` has no value"),
                    )
                    .label(span, format!("`${{{name}}}` is used here"))
                    .help(format!(
                        "pass `--var {name}=VALUE`, or set {ENV_PREFIX}{}",
                        name.replace('-', "_")
                    )),
                );
                out.push_str(name);
            }
        }
    }
    out.push_str(rest);
    (out, problem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_expand_and_missing_ones_are_problems() {
        set(BTreeMap::from([("env".to_string(), "pr-123".to_string())]));
        let span = SourceSpan::from((0, 1));
        let (v, p) = expand("bv-${env}", span);
        assert_eq!(v, "bv-pr-123");
        assert!(p.is_none());
        assert_eq!(expand("a$$b", span).0, "a$b");
        assert_eq!(expand("cost $5", span).0, "cost $5");
        let (v, p) = expand("bv-${nope-not-set}", span);
        assert_eq!(v, "bv-nope-not-set");
        let p = p.expect("a problem");
        assert!(
            p.message.contains("`nope-not-set` has no value"),
            "{}",
            p.message
        );
        assert!(expand("bv-${env", span).1.is_some());
        assert!(expand("bv-${1x}", span).1.is_some());
        assert_eq!(
            parse_assignment("env=pr-1"),
            Ok(("env".to_string(), "pr-1".to_string()))
        );
        assert!(parse_assignment("=x").is_err());
    }
}
