//! The import-cycle check: every `crate::…`, `super::…` and `self::…` path in `src/` (the
//! library; `main.rs` is the binary on top) is resolved to the module it names, and the
//! modules' use-graph must be acyclic, both file by file (as cargo-modules' acyclic mode checks
//! it) and between the top-level modules (`provider`, `vault`, `runtime`, ...), so that imports
//! point one way only. A `mod x;` declaration is ownership, not use, and is not an edge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use petgraph::graph::{DiGraph, NodeIndex};

/// `a::b` for `src/a/b.rs` and `src/a/b/mod.rs`; `crate` for `src/lib.rs`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    if parts == ["lib"] {
        return "crate".into();
    }
    parts.join("::")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The text without comments and string literals, so that neither counts as a use.
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

fn ident_at(b: &[u8], mut i: usize) -> (String, usize) {
    let start = i;
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
        i += 1;
    }
    (String::from_utf8_lossy(&b[start..i]).into_owned(), i)
}

/// Every path that follows `head::` at `i`: `a::b::c`, or each item of a `{a::b, c}` group.
fn paths_at(b: &[u8], mut i: usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    let mut path = prefix;
    loop {
        if b.get(i) == Some(&b'{') {
            i += 1;
            loop {
                while i < b.len() && (b[i] as char).is_whitespace() {
                    i += 1;
                }
                if i >= b.len() || b[i] == b'}' {
                    return i + 1;
                }
                if b[i] == b',' {
                    i += 1;
                    continue;
                }
                i = paths_at(b, i, path.clone(), out);
            }
        }
        let (ident, next) = ident_at(b, i);
        if ident.is_empty() {
            // `*` or the end of the path.
            out.push(path);
            return next.max(i + 1);
        }
        path.push(ident);
        i = next;
        if b.get(i) == Some(&b':') && b.get(i + 1) == Some(&b':') {
            i += 2;
        } else {
            // `as NAME` and the rest of the statement do not change the target.
            out.push(path);
            return i;
        }
    }
}

/// The paths a file uses, absolute from the crate root.
fn uses(module: &str, text: &str) -> Vec<Vec<String>> {
    let code = code_only(text);
    let b = code.as_bytes();
    let own: Vec<String> = if module == "crate" {
        Vec::new()
    } else {
        module.split("::").map(str::to_string).collect()
    };
    // `super` of `a::b` (`a/b.rs` or `a/b/mod.rs`) is `a`.
    let parent: Vec<String> = own[..own.len().saturating_sub(1)].to_vec();
    let mut out = Vec::new();
    for (head, base) in [
        ("crate::", Vec::new()),
        ("super::", parent),
        ("self::", own),
    ] {
        let mut from = 0;
        while let Some(pos) = code[from..].find(head) {
            let at = from + pos;
            let boundary = at == 0 || !(b[at - 1].is_ascii_alphanumeric() || b[at - 1] == b'_');
            from = at + head.len();
            if !boundary || (at >= 2 && &code[at - 2..at] == "::") {
                continue;
            }
            let mut found = Vec::new();
            paths_at(b, from, base.clone(), &mut found);
            // `use super::*` in an inline test module names the file's own module.
            out.extend(found.into_iter().filter(|p| p.len() > base.len()));
        }
    }
    out
}

/// The longest prefix of `path` that is a module.
fn resolve(path: &[String], modules: &BTreeSet<String>) -> Option<String> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|m| modules.contains(m))
}

struct Graphs {
    files: BTreeMap<String, BTreeSet<String>>,
}

fn use_graph() -> Graphs {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.retain(|f| !f.ends_with("main.rs"));
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let module = module_of(&src, f);
        let text = std::fs::read_to_string(f).unwrap();
        let targets = edges.entry(module.clone()).or_default();
        for path in uses(&module, &text) {
            let target = resolve(&path, &modules).unwrap_or_else(|| "crate".to_string());
            if target != module && target != "crate" {
                targets.insert(target);
            }
        }
    }
    Graphs { files: edges }
}

/// Each cycle of `edges`, as the sorted list of its members.
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let mut g = DiGraph::<String, ()>::new();
    let mut ix: BTreeMap<String, NodeIndex> = BTreeMap::new();
    let mut node = |g: &mut DiGraph<String, ()>, n: &str| {
        *ix.entry(n.to_string())
            .or_insert_with(|| g.add_node(n.to_string()))
    };
    for (from, tos) in edges {
        let a = node(&mut g, from);
        for to in tos {
            let b = node(&mut g, to);
            g.add_edge(a, b, ());
        }
    }
    petgraph::algo::tarjan_scc(&g)
        .into_iter()
        .filter(|scc| scc.len() > 1)
        .map(|scc| {
            let mut names: Vec<String> = scc.iter().map(|i| g[*i].clone()).collect();
            names.sort();
            names
        })
        .collect()
}

fn top(module: &str) -> String {
    module.split("::").next().unwrap_or(module).to_string()
}

#[test]
fn no_module_imports_another_that_imports_it_back() {
    let graphs = use_graph();
    assert!(
        graphs.files.len() > 40,
        "the check found only {} modules",
        graphs.files.len()
    );
    let found = cycles(&graphs.files);
    assert!(found.is_empty(), "module cycles: {found:#?}");
}

#[test]
fn top_level_modules_import_one_way_only() {
    let graphs = use_graph();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, tos) in &graphs.files {
        for to in tos {
            if top(from) != top(to) {
                edges.entry(top(from)).or_default().insert(top(to));
            }
        }
    }
    // The contract knows no kind, no Vault and no runtime; the catalog is above them all.
    let provider = edges.get("provider").cloned().unwrap_or_default();
    for low in [
        "resources",
        "vault",
        "runtime",
        "catalog",
        "engine",
        "commands",
    ] {
        assert!(!provider.contains(low), "provider imports {low}");
    }
    for kinds in ["resources", "vault", "runtime", "engine", "plan", "graph"] {
        let deps = edges.get(kinds).cloned().unwrap_or_default();
        assert!(!deps.contains("catalog"), "{kinds} imports the catalog");
        assert!(!deps.contains("commands"), "{kinds} imports commands");
    }
    // The lower layers know no runtime, no operation and nothing above them.
    for low in [
        "topology",
        "graph",
        "plan",
        "engine",
        "provider",
        "state",
        "error",
        "address",
        "retry",
        "lifecycle",
        "aws",
        "aws_error",
    ] {
        let deps = edges.get(low).cloned().unwrap_or_default();
        for high in ["catalog", "ops", "commands", "runtime", "session", "sweep"] {
            assert!(!deps.contains(high), "{low} imports {high}");
        }
    }
    let found = cycles(&edges);
    assert!(found.is_empty(), "top-level module cycles: {found:#?}");
}

#[test]
fn the_check_sees_uses_and_cycles() {
    let text = "use crate::vault::{Client, spec::VaultSpec};\nuse super::wait;\n// crate::ignored::Thing\nfn f() { let _ = \"crate::not_code\"; crate::aws::Aws::connect(); }\n";
    let found = uses("resources::eks", text);
    let joined: Vec<String> = found.iter().map(|p| p.join("::")).collect();
    assert!(joined.contains(&"vault::Client".to_string()), "{joined:?}");
    assert!(joined.contains(&"vault::spec::VaultSpec".to_string()));
    assert!(joined.contains(&"resources::wait".to_string()));
    assert!(joined.contains(&"aws::Aws::connect".to_string()));
    assert!(
        !joined
            .iter()
            .any(|p| p.contains("ignored") || p.contains("not_code"))
    );
    let edges = BTreeMap::from([
        ("a".to_string(), BTreeSet::from(["b".to_string()])),
        ("b".to_string(), BTreeSet::from(["a".to_string()])),
    ]);
    assert_eq!(cycles(&edges), vec![vec!["a".to_string(), "b".to_string()]]);
}
