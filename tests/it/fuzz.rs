//! Property tests: the parser and validator never panic, on arbitrary bytes or on mutations
//! of the shipped topologies.

use proptest::prelude::*;
use vaultform::topology;

fn shipped() -> Vec<String> {
    crate::support::kdl_files("topologies")
        .into_iter()
        .chain(crate::support::kdl_files("tests/fixtures/invalid"))
        .map(|p| std::fs::read_to_string(crate::support::root().join(p)).expect("read"))
        .collect()
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete { at: usize, len: usize },
    Insert { at: usize, text: String },
    Duplicate { from: usize, len: usize, to: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let token = prop_oneof![
        Just("{".to_string()),
        Just("}".to_string()),
        Just("\"".to_string()),
        Just("=".to_string()),
        Just("#true".to_string()),
        Just("-1".to_string()),
        Just("99999999999999999999999".to_string()),
        Just("depends-on=\"vault.bv.init\"".to_string()),
        Just("/*".to_string()),
        Just("\n".to_string()),
        Just("é".to_string()),
        Just("#\"raw \" string\"#".to_string()),
        Just("\"\"\"\nregion \"x\" {\n\"\"\"".to_string()),
        Just(" \\\n".to_string()),
        Just("/-".to_string()),
        Just("/* {\nregion \"a\" */".to_string()),
        "[ -~]{0,12}",
    ];
    prop_oneof![
        (any::<usize>(), 0usize..40).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (any::<usize>(), token).prop_map(|(at, text)| Mutation::Insert { at, text }),
        (any::<usize>(), 0usize..200, any::<usize>())
            .prop_map(|(from, len, to)| Mutation::Duplicate { from, len, to }),
    ]
}

fn boundary(s: &str, at: usize) -> usize {
    let mut at = at % (s.len() + 1);
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn apply(mut s: String, m: &Mutation) -> String {
    match m {
        Mutation::Delete { at, len } => {
            let a = boundary(&s, *at);
            let b = boundary(&s, (a + len).min(s.len()));
            if b > a {
                s.replace_range(a..b, "");
            }
        }
        Mutation::Insert { at, text } => {
            let a = boundary(&s, *at);
            s.insert_str(a, text);
        }
        Mutation::Duplicate { from, len, to } => {
            let a = boundary(&s, *from);
            let b = boundary(&s, (a + len).min(s.len()));
            let piece = s[a..b].to_string();
            let t = boundary(&s, *to);
            s.insert_str(t, &piece);
        }
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let len = text.len();
        let loaded = vaultform::load("fuzz.kdl", text);
        // Either a valid topology, or at least one error; every problem has a code and points
        // inside the input.
        prop_assert_eq!(loaded.valid().is_some(), !loaded.has_errors());
        for p in &loaded.problems {
            prop_assert!(!p.code.name().is_empty(), "{:?}", p);
            prop_assert!(!p.message.is_empty(), "{:?}", p);
            if p.severity == topology::Severity::Error {
                prop_assert!(!p.labels.is_empty(), "an error without a span: {:?}", p);
            }
            for l in &p.labels {
                prop_assert!(l.span.offset() + l.span.len() <= len, "{:?} outside {} bytes", l, len);
            }
        }
        let rendered = vaultform::ui::diagnostics::render(&loaded, false);
        if loaded.has_errors() {
            prop_assert!(rendered.contains("vaultform::topology::"), "{}", rendered);
        }
        let _ = topology::format::format(&loaded.source.text);
    }

    #[test]
    fn mutated_topologies_never_panic(
        which in any::<prop::sample::Index>(),
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        let files = shipped();
        let mut text = files[which.index(files.len())].clone();
        for m in &mutations {
            text = apply(text, m);
        }
        let loaded = vaultform::load("mutated.kdl", text);
        let rendered = vaultform::ui::diagnostics::render(&loaded, false);
        prop_assert!(!rendered.is_empty());
        if let Some((_, g)) = loaded.valid() {
            prop_assert!(petgraph::algo::toposort(&g.dag, None).is_ok(), "a valid topology has an acyclic graph");
        }
    }
}

/// Everything the validator reads from a document: names, values and spans, in order.
fn dump(doc: &kdl::KdlDocument, out: &mut Vec<String>) {
    for n in doc.nodes() {
        out.push(format!(
            "node {} {:?} {:?}",
            n.name().value(),
            n.name().span(),
            n.span()
        ));
        for e in n.entries() {
            out.push(format!(
                "  entry {:?} {:?} {:?} {:?}",
                e.name().map(|k| (k.value().to_string(), k.span())),
                e.value(),
                e.span(),
                e.ty().map(|t| t.value().to_string())
            ));
        }
        if let Some(c) = n.children() {
            dump(c, out);
        }
    }
}

fn serial_and_split_agree(text: &str, pieces: usize) -> Result<(), TestCaseError> {
    if let Some(split) = topology::split::parse_in_pieces(text, pieces) {
        let mut problems = Vec::new();
        let serial = topology::parse_serial(text, &mut problems);
        prop_assert!(
            serial.is_some(),
            "split parsed a text the serial parser rejects"
        );
        let (mut a, mut b) = (Vec::new(), Vec::new());
        dump(&split, &mut a);
        dump(&serial.unwrap(), &mut b);
        prop_assert_eq!(a, b);
    }
    Ok(())
}

#[test]
fn split_parsing_agrees_with_serial_parsing_on_shipped_files() {
    for path in crate::support::kdl_files("topologies") {
        let text = std::fs::read_to_string(crate::support::root().join(&path)).unwrap();
        assert!(
            topology::split::parse_in_pieces(&text, 3).is_some(),
            "{} is cut into pieces",
            path.display()
        );
    }
    for text in shipped() {
        for pieces in 2..5 {
            serial_and_split_agree(&text, pieces).unwrap();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn split_parsing_agrees_with_serial_parsing_on_mutations(
        which in any::<prop::sample::Index>(),
        mutations in proptest::collection::vec(mutation(), 1..4),
        pieces in 2usize..5,
    ) {
        let files = shipped();
        let mut text = files[which.index(files.len())].clone();
        for m in &mutations {
            text = apply(text, m);
        }
        serial_and_split_agree(&text, pieces)?;
    }
}
