//! Schema-driven access to one KDL node: typed getters that record what they read, so that
//! whatever nobody asked for is reported as unknown, with "did you mean".
//!
//! A setting may be written as a property (`min=1`) or as a child node (`min 1`); both read the
//! same way, and giving it twice is an error.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use kdl::{KdlDocument, KdlEntry, KdlNode, KdlValue};
use miette::SourceSpan;

use super::diagnostic::{Code, Problem, did_you_mean};
use super::model::Spanned;

/// Where a setting was found.
#[derive(Clone, Copy)]
enum Field<'a> {
    Prop(&'a KdlEntry),
    Child(&'a KdlNode),
}

impl Field<'_> {
    fn span(&self) -> SourceSpan {
        match self {
            Field::Prop(e) => e.span(),
            Field::Child(n) => n.span(),
        }
    }
}

/// Reads one node (or the whole document) against the schema its caller asks for.
pub struct NodeReader<'a> {
    /// What the node is called in messages (`bucket`, `node-pool`, ...).
    kind: &'static str,
    /// The span of the node's name: where "missing" problems point.
    head: SourceSpan,
    entries: &'a [KdlEntry],
    children: &'a [KdlNode],
    used_entries: Vec<bool>,
    used_children: Vec<bool>,
    args_used: usize,
    known: Vec<&'static str>,
    problems: Vec<Problem>,
}

pub fn describe(value: &KdlValue) -> String {
    match value {
        KdlValue::String(s) => format!("\"{s}\" (a string)"),
        KdlValue::Integer(i) => format!("{i} (an integer)"),
        KdlValue::Float(f) => format!("{f} (a number)"),
        KdlValue::Bool(b) => format!("#{b} (a boolean)"),
        KdlValue::Null => "#null".to_string(),
    }
}

impl<'a> NodeReader<'a> {
    pub fn node(kind: &'static str, node: &'a KdlNode) -> Self {
        let children = node.children().map(KdlDocument::nodes).unwrap_or(&[]);
        NodeReader {
            kind,
            head: node.name().span(),
            entries: node.entries(),
            children,
            used_entries: vec![false; node.entries().len()],
            used_children: vec![false; children.len()],
            args_used: 0,
            known: Vec::new(),
            problems: Vec::new(),
        }
    }

    pub fn document(doc: &'a KdlDocument) -> Self {
        NodeReader {
            kind: "topology",
            head: SourceSpan::from((0, 0)),
            entries: &[],
            children: doc.nodes(),
            used_entries: Vec::new(),
            used_children: vec![false; doc.nodes().len()],
            args_used: 0,
            known: Vec::new(),
            problems: Vec::new(),
        }
    }

    pub fn head(&self) -> SourceSpan {
        self.head
    }

    pub fn kind(&self) -> &'static str {
        self.kind
    }

    pub fn push(&mut self, problem: Problem) {
        self.problems.push(problem);
    }

    /// An optional positional boolean (`tls #false`): `None` when the next argument is absent
    /// or not a boolean (then `finish` reports it).
    pub fn arg_bool(&mut self) -> Option<Spanned<bool>> {
        let idx = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.name().is_none())
            .nth(self.args_used)
            .map(|(i, _)| i)?;
        let entry = &self.entries[idx];
        let KdlValue::Bool(b) = entry.value() else {
            return None;
        };
        self.args_used += 1;
        self.used_entries[idx] = true;
        Some(Spanned::new(*b, entry.span()))
    }

    /// The next positional argument, which must be a string (a name or a kind).
    pub fn arg_string(&mut self, what: &str) -> Option<Spanned<String>> {
        let idx = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.name().is_none())
            .nth(self.args_used)
            .map(|(i, _)| i);
        let Some(idx) = idx else {
            self.push(
                Problem::error(Code::MissingValue, format!("`{}` needs {what}", self.kind))
                    .label(self.head, format!("{what} missing here"))
                    .help(format!("write it as `{} \"...\"`", self.kind)),
            );
            return None;
        };
        self.args_used += 1;
        self.used_entries[idx] = true;
        let entry = &self.entries[idx];
        match entry.value() {
            KdlValue::String(s) if !s.is_empty() => self.expanded(s, entry.span()),
            KdlValue::String(_) => {
                self.push(
                    Problem::error(Code::InvalidValue, format!("{what} must not be empty"))
                        .label(entry.span(), "empty string"),
                );
                None
            }
            other => {
                self.push(
                    Problem::error(
                        Code::WrongType,
                        format!("{what} of `{}` must be a string", self.kind),
                    )
                    .label(entry.span(), format!("found {}", describe(other)))
                    .help(format!("quote it: `{} \"...\"`", self.kind)),
                );
                None
            }
        }
    }

    /// Finds a setting by name, as property or child node; reports duplicates.
    fn find(&mut self, name: &'static str) -> Option<Field<'a>> {
        if !self.known.contains(&name) {
            self.known.push(name);
        }
        let mut found: Vec<Field<'a>> = Vec::new();
        for (i, e) in self.entries.iter().enumerate() {
            if e.name().map(|n| n.value()) == Some(name) {
                self.used_entries[i] = true;
                found.push(Field::Prop(e));
            }
        }
        for (i, c) in self.children.iter().enumerate() {
            if c.name().value() == name {
                self.used_children[i] = true;
                found.push(Field::Child(c));
            }
        }
        if found.len() > 1 {
            let first = found[0].span();
            for extra in &found[1..] {
                self.push(
                    Problem::error(
                        Code::DuplicateSetting,
                        format!("`{name}` is set more than once on `{}`", self.kind),
                    )
                    .label(extra.span(), "set again here")
                    .label(first, "first set here")
                    .help("keep one of them"),
                );
            }
        }
        found.into_iter().next()
    }

    /// A setting that holds exactly one value.
    fn scalar(&mut self, name: &'static str) -> Option<(&'a KdlValue, SourceSpan)> {
        match self.find(name)? {
            Field::Prop(e) => Some((e.value(), e.span())),
            Field::Child(n) => {
                let args: Vec<&KdlEntry> = n.entries().iter().collect();
                if args.len() == 1 && args[0].name().is_none() && n.children().is_none() {
                    Some((args[0].value(), args[0].span()))
                } else {
                    self.push(
                        Problem::error(
                            Code::WrongType,
                            format!("`{name}` takes exactly one value"),
                        )
                        .label(n.span(), "expected one value here")
                        .help(format!("write it as `{name}=<value>` or `{name} <value>`")),
                    );
                    None
                }
            }
        }
    }

    fn wrong_type(&mut self, name: &str, expected: &str, value: &KdlValue, span: SourceSpan) {
        self.push(
            Problem::error(Code::WrongType, format!("`{name}` must be {expected}"))
                .label(span, format!("found {}", describe(value))),
        );
    }

    /// A string with its `${NAME}` variables replaced (see `vars`).
    fn expanded(&mut self, s: &str, span: SourceSpan) -> Option<Spanned<String>> {
        let (value, problem) = super::vars::expand(s, span);
        if let Some(problem) = problem {
            self.push(problem);
        }
        Some(Spanned::new(value, span))
    }

    pub fn string(&mut self, name: &'static str) -> Option<Spanned<String>> {
        let (value, span) = self.scalar(name)?;
        match value {
            KdlValue::String(s) => self.expanded(s, span),
            other => {
                self.wrong_type(name, "a string", other, span);
                None
            }
        }
    }

    pub fn bool(&mut self, name: &'static str) -> Option<Spanned<bool>> {
        let (value, span) = self.scalar(name)?;
        match value {
            KdlValue::Bool(b) => Some(Spanned::new(*b, span)),
            other => {
                self.push(
                    Problem::error(Code::WrongType, format!("`{name}` must be #true or #false"))
                        .label(span, format!("found {}", describe(other)))
                        .help("KDL v2 booleans are written #true and #false"),
                );
                None
            }
        }
    }

    /// An integer within `min..=max`.
    pub fn uint(&mut self, name: &'static str, min: u32, max: u32) -> Option<Spanned<u32>> {
        let (value, span) = self.scalar(name)?;
        match value {
            KdlValue::Integer(i) if (*i >= min as i128) && (*i <= max as i128) => {
                Some(Spanned::new(*i as u32, span))
            }
            KdlValue::Integer(i) => {
                self.push(
                    Problem::error(
                        Code::InvalidValue,
                        format!("`{name}` must be between {min} and {max}"),
                    )
                    .label(span, format!("{i} is out of range")),
                );
                None
            }
            other => {
                self.wrong_type(name, "an integer", other, span);
                None
            }
        }
    }

    pub fn port(&mut self, name: &'static str) -> Option<Spanned<u16>> {
        self.uint(name, 1, 65535)
            .map(|v| Spanned::new(v.value as u16, v.span))
    }

    /// One of a fixed set of words.
    pub fn choice<T: Copy>(
        &mut self,
        name: &'static str,
        choices: &[(&'static str, T)],
    ) -> Option<Spanned<T>> {
        let s = self.string(name)?;
        if let Some((_, v)) = choices.iter().find(|(k, _)| *k == s.value) {
            return Some(Spanned::new(*v, s.span));
        }
        let names: Vec<&str> = choices.iter().map(|(k, _)| *k).collect();
        let mut help = format!("expected one of: {}", names.join(", "));
        if let Some(close) = did_you_mean(&s.value, names.iter().copied()) {
            help = format!("did you mean \"{close}\"? ({help})");
        }
        self.push(
            Problem::error(
                Code::InvalidValue,
                format!("`{name}` cannot be \"{}\"", s.value),
            )
            .label(s.span, "unknown value")
            .help(help),
        );
        None
    }

    pub fn cidr(&mut self, name: &'static str) -> Option<Spanned<Ipv4Net>> {
        let s = self.string(name)?;
        parse_cidr(&s, &mut self.problems)
    }

    pub fn ipv4(&mut self, name: &'static str) -> Option<Spanned<Ipv4Addr>> {
        let s = self.string(name)?;
        match s.value.parse::<Ipv4Addr>() {
            Ok(a) => Some(Spanned::new(a, s.span)),
            Err(_) => {
                self.push(
                    Problem::error(
                        Code::InvalidValue,
                        format!("`{name}` must be an IPv4 address"),
                    )
                    .label(s.span, "not an IPv4 address")
                    .help("for example \"127.0.10.1\""),
                );
                None
            }
        }
    }

    /// Several strings: `name "a" "b"` as a child, or `name="a,b"` as a property.
    pub fn list(&mut self, name: &'static str) -> Option<Vec<Spanned<String>>> {
        match self.find(name)? {
            Field::Prop(e) => match e.value() {
                KdlValue::String(s) => Some(
                    s.split(',')
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .map(|p| Spanned::new(p.to_string(), e.span()))
                        .collect(),
                ),
                other => {
                    self.wrong_type(name, "a string or a list of strings", other, e.span());
                    None
                }
            },
            Field::Child(n) => {
                let mut out = Vec::new();
                for e in n.entries() {
                    match (e.name(), e.value()) {
                        (None, KdlValue::String(s)) => out.push(Spanned::new(s.clone(), e.span())),
                        (Some(k), _) => self.push(
                            Problem::error(
                                Code::UnknownProperty,
                                format!("`{name}` is a list and takes no properties"),
                            )
                            .label(e.span(), format!("unexpected `{}=`", k.value()))
                            .help(format!("write it as `{name} \"a\" \"b\"`")),
                        ),
                        (None, other) => {
                            self.wrong_type(name, "a list of strings", other, e.span())
                        }
                    }
                }
                Some(out)
            }
        }
    }

    /// String pairs: `name a="1" b="2"` or a block `name { a "1" }`.
    pub fn map(&mut self, name: &'static str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let Some(field) = self.find(name) else {
            return out;
        };
        let Field::Child(n) = field else {
            self.push(
                Problem::error(
                    Code::WrongType,
                    format!("`{name}` is a set of key/value pairs"),
                )
                .label(field.span(), "expected a node, not a property")
                .help(format!("write it as `{name} key=\"value\"`")),
            );
            return out;
        };
        for e in n.entries() {
            match (e.name(), e.value()) {
                (Some(k), KdlValue::String(v)) => {
                    if let Some(v) = self.expanded(v, e.span()) {
                        out.insert(k.value().to_string(), v.value);
                    }
                }
                (Some(k), other) => self.wrong_type(k.value(), "a string", other, e.span()),
                (None, _) => self.push(
                    Problem::error(
                        Code::UnexpectedArgument,
                        format!("`{name}` takes key=\"value\" pairs"),
                    )
                    .label(e.span(), "a value without a key")
                    .help(format!("write it as `{name} key=\"value\"`")),
                ),
            }
        }
        for c in n.children().map(KdlDocument::nodes).unwrap_or(&[]) {
            match c.entries() {
                [e] if e.name().is_none() => match e.value() {
                    KdlValue::String(v) => {
                        if let Some(v) = self.expanded(v, e.span()) {
                            out.insert(c.name().value().to_string(), v.value);
                        }
                    }
                    other => self.wrong_type(c.name().value(), "a string", other, e.span()),
                },
                _ => self.push(
                    Problem::error(
                        Code::WrongType,
                        format!("each entry of `{name}` takes one value"),
                    )
                    .label(c.span(), "expected `key \"value\"`"),
                ),
            }
        }
        out
    }

    /// Every child node called `name` (repeated blocks such as `bucket` or `member`).
    pub fn children(&mut self, name: &'static str) -> Vec<&'a KdlNode> {
        if !self.known.contains(&name) {
            self.known.push(name);
        }
        let mut out = Vec::new();
        for (i, c) in self.children.iter().enumerate() {
            if c.name().value() == name {
                self.used_children[i] = true;
                out.push(c);
            }
        }
        out
    }

    /// At most one child node called `name`.
    pub fn child(&mut self, name: &'static str) -> Option<&'a KdlNode> {
        let all = self.children(name);
        if let [first, rest @ ..] = all.as_slice() {
            for extra in rest {
                self.push(
                    Problem::error(
                        Code::DuplicateSetting,
                        format!("`{name}` appears more than once in `{}`", self.kind),
                    )
                    .label(extra.name().span(), "again here")
                    .label(first.name().span(), "first here")
                    .help("merge them into one"),
                );
            }
        }
        all.first().copied()
    }

    /// Reports everything nobody asked for, then hands over the problems.
    pub fn finish(self, problems: &mut Vec<Problem>) {
        let mut out = self.problems;
        let known = self.known;
        for (i, e) in self.entries.iter().enumerate() {
            if self.used_entries[i] {
                continue;
            }
            match e.name() {
                Some(name) => {
                    let mut p = Problem::error(
                        Code::UnknownProperty,
                        format!("`{}` has no property `{}`", self.kind, name.value()),
                    )
                    .label(e.span(), "unknown property");
                    p = with_suggestion(p, name.value(), &known);
                    out.push(p);
                }
                None => out.push(
                    Problem::error(
                        Code::UnexpectedArgument,
                        format!("`{}` takes no further arguments", self.kind),
                    )
                    .label(e.span(), format!("unexpected {}", describe(e.value())))
                    .help(if known.is_empty() {
                        "remove it".to_string()
                    } else {
                        format!(
                            "settings are named ({}); a list is written as a child node, `name \"a\" \"b\"`, or as `name=\"a,b\"`",
                            known.join(", ")
                        )
                    }),
                ),
            }
        }
        for (i, c) in self.children.iter().enumerate() {
            if self.used_children[i] {
                continue;
            }
            let name = c.name().value();
            let what = if self.kind == "topology" {
                "the top level of a topology".to_string()
            } else {
                format!("`{}`", self.kind)
            };
            let mut p = Problem::error(
                Code::UnknownNode,
                format!("unknown node `{name}` in {what}"),
            )
            .label(c.name().span(), "unknown node");
            p = with_suggestion(p, name, &known);
            out.push(p);
        }
        problems.extend(out);
    }
}

fn with_suggestion(p: Problem, given: &str, known: &[&'static str]) -> Problem {
    match did_you_mean(given, known.iter().copied()) {
        Some(close) => p.help(format!("did you mean `{close}`?")),
        None if known.is_empty() => p.help("this node takes no settings"),
        None => p.help(format!("expected one of: {}", known.join(", "))),
    }
}

/// Parses an IPv4 CIDR, insisting on a network address (no host bits set).
pub fn parse_cidr(s: &Spanned<String>, problems: &mut Vec<Problem>) -> Option<Spanned<Ipv4Net>> {
    match s.value.parse::<Ipv4Net>() {
        Ok(net) if net.network() == net.addr() => Some(Spanned::new(net, s.span)),
        Ok(net) => {
            problems.push(
                Problem::error(Code::Cidr, format!("\"{}\" has host bits set", s.value))
                    .label(s.span, "not a network address")
                    .help(format!("did you mean \"{}\"?", net.trunc())),
            );
            None
        }
        Err(_) => {
            problems.push(
                Problem::error(
                    Code::Cidr,
                    format!("\"{}\" is not an IPv4 CIDR block", s.value),
                )
                .label(s.span, "malformed CIDR")
                .help("write it as ADDRESS/PREFIX, for example \"10.10.0.0/16\""),
            );
            None
        }
    }
}
