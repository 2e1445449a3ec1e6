//! The rule for names that reach file paths, server configuration (HCL, `haproxy.cfg`) and
//! Kubernetes objects, checked after variable expansion: DNS-1123 labels, and strings that a
//! quoted HCL value cannot be broken out of.

use super::diagnostic::{Code, Problem};
use super::model::*;

/// The longest stack name: the IAM role `<stack>-vault-<v>` must fit IAM's 64 characters.
pub const STACK_MAX: usize = 32;
/// The longest Vault cluster name (see [`STACK_MAX`]).
pub const VAULT_MAX: usize = 24;
/// A DNS-1123 label: a Kubernetes name, a file name, a raft node ID, an HAProxy server name.
pub const LABEL_MAX: usize = 63;

/// Why `name` is not a DNS-1123 label of at most `max` characters, if it is not.
pub fn label_problem(name: &str, max: usize) -> Option<String> {
    let len = name.chars().count();
    if len == 0 || len > max {
        return Some(format!(
            "this name is 1 to {max} characters long; this one has {len}"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Some(format!(
            "this name uses lowercase letters, digits and '-' only; found {c:?}"
        ));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Some("this name begins and ends with a letter or digit".into());
    }
    None
}

/// Why `value` cannot be written inside a quoted HCL string as it is, if it cannot: a quote,
/// a backslash or a control character ends or bends the string, `${` and `%{` template it.
pub fn hcl_value_problem(value: &str) -> Option<String> {
    if let Some(c) = value
        .chars()
        .find(|c| *c == '"' || *c == '\\' || c.is_control())
    {
        return Some(format!(
            "found {c:?}, which would end or bend a quoted value"
        ));
    }
    ["${", "%{"]
        .iter()
        .find(|t| value.contains(*t))
        .map(|t| format!("found `{t}`, the template sequence of HCL 2"))
}

/// Checks every such name of `t`.
pub fn validate(t: &Topology, problems: &mut Vec<Problem>) {
    let mut label = |what: &str, name: &Spanned<String>, max: usize, example: &str| {
        if let Some(why) = label_problem(&name.value, max) {
            problems.push(
                Problem::error(Code::Name, format!("invalid {what} name {:?}", name.value))
                    .label(name.span, why)
                    .help(format!(
                        "it becomes file names, server configuration and Kubernetes names: \
                         lowercase letters, digits and '-', at most {max} characters, such as \"{example}\""
                    )),
            );
        }
    };
    label("stack", &t.stack, STACK_MAX, "bv-prod");
    for v in &t.vaults {
        label("Vault cluster", &v.name, VAULT_MAX, "main");
        if let Runtime::Kubernetes { namespace } = &v.runtime.value {
            label(
                "namespace",
                &Spanned::new(namespace.clone(), v.runtime.span),
                LABEL_MAX,
                "vault",
            );
        }
        for m in &v.members {
            label("member", &m.name, LABEL_MAX, "vault-0");
        }
    }
    for v in &t.vaults {
        let SealKind::Transit(TransitSeal::Existing {
            address,
            key_name,
            mount,
            ca_cert,
        }) = &v.seal.kind
        else {
            continue;
        };
        for (what, value) in [
            ("address", Some(address)),
            ("key-name", Some(key_name)),
            ("mount", Some(mount)),
            ("ca-cert", ca_cert.as_ref()),
        ] {
            let Some(value) = value else { continue };
            if let Some(why) = hcl_value_problem(&value.value) {
                problems.push(
                    Problem::error(
                        Code::Name,
                        format!("the transit seal's `{what}` cannot go into the seal stanza"),
                    )
                    .label(value.span, why)
                    .help("the members' server configuration quotes it as it is: remove the character"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        for ok in ["a", "vault-0", "bv-eu-1", &"x".repeat(63)] {
            assert_eq!(label_problem(ok, LABEL_MAX), None, "{ok}");
        }
        for bad in [
            "",
            "../../x",
            "a/b",
            "Vault",
            "vault_0",
            "-a",
            "a-",
            "a\nb",
            "a\"b",
            "a.b",
            &"x".repeat(64),
        ] {
            assert!(label_problem(bad, LABEL_MAX).is_some(), "{bad:?}");
        }
        assert!(label_problem(&"s".repeat(33), STACK_MAX).is_some());
    }

    #[test]
    fn hcl_values() {
        for ok in [
            "https://transit.example:8200",
            "autounseal",
            "transit",
            "/etc/ca.pem",
        ] {
            assert_eq!(hcl_value_problem(ok), None, "{ok}");
        }
        for bad in [
            "a\"b",
            "a\\b",
            "a\nb",
            "${file(\"/etc/passwd\")}",
            "%{if x}",
        ] {
            assert!(hcl_value_problem(bad).is_some(), "{bad:?}");
        }
    }
}
