//! Quoted HCL strings: the one writer of every value vaultform puts into a server
//! configuration, a seal stanza or a policy, so that no value can end its string or add a line.

use std::fmt::Write;

/// `value` as a quoted HCL string: `\`, `"` and control characters escaped (`\n`, `\r`,
/// `\t`, else `\uNNNN`), everything else as it is. Vault and OpenBao read configuration and
/// policies with HCL 1, which has no templates: `${` is not special there and stays.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What HCL makes of `text`: the text outside quoted strings (the structure), and each
    /// string's value, escapes decoded. `None` when a string is not closed on its line.
    pub(crate) fn lex(text: &str) -> Option<(String, Vec<String>)> {
        let mut structure = String::new();
        let mut strings = Vec::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c != '"' {
                structure.push(c);
                continue;
            }
            structure.push_str("\"\"");
            let mut s = String::new();
            loop {
                match chars.next()? {
                    '"' => break,
                    '\n' => return None,
                    '\\' => match chars.next()? {
                        'n' => s.push('\n'),
                        'r' => s.push('\r'),
                        't' => s.push('\t'),
                        'u' => {
                            let hex: String = chars.by_ref().take(4).collect();
                            s.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                        }
                        other => s.push(other),
                    },
                    other => s.push(other),
                }
            }
            strings.push(s);
        }
        Some((structure, strings))
    }

    #[test]
    fn quotes_and_control_characters_are_escaped() {
        assert_eq!(quote("vault-0"), "\"vault-0\"");
        assert_eq!(quote("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
    }

    proptest! {
        /// Any value is one string in HCL, read back as itself.
        #[test]
        fn any_value_is_one_string_read_back_as_itself(value in any::<String>()) {
            let (structure, strings) = lex(&format!("x = {}\n", quote(&value))).unwrap();
            prop_assert_eq!(structure, "x = \"\"\n");
            prop_assert_eq!(strings, vec![value]);
        }
    }
}
