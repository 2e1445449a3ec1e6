//! Parses a large topology on several cores: the text is cut between top-level nodes (found
//! by a scanner that understands KDL strings and comments), each piece is parsed on its own
//! thread, and the spans of later pieces are shifted back to whole-file offsets.
//!
//! Any piece that fails to parse makes the caller fall back to one serial parse of the whole
//! file, so syntax errors are always reported exactly as the serial parser reports them.

use kdl::{KdlDocument, KdlNode};
use miette::SourceSpan;

/// Below this size one parse is faster than starting threads.
pub const PARALLEL_THRESHOLD: usize = 64 * 1024;

/// Parses `text` in `pieces` parts; `None` when it cannot be cut or a part fails to parse.
pub fn parse_in_pieces(text: &str, pieces: usize) -> Option<KdlDocument> {
    let cuts = cut_points(text, pieces);
    if cuts.is_empty() {
        return None;
    }
    let mut bounds = vec![0];
    bounds.extend(cuts);
    bounds.push(text.len());
    let parts: Vec<(usize, &str)> = bounds
        .windows(2)
        .map(|w| (w[0], &text[w[0]..w[1]]))
        .collect();
    let parsed: Vec<Option<KdlDocument>> = std::thread::scope(|s| {
        let handles: Vec<_> = parts
            .iter()
            .map(|(offset, part)| {
                s.spawn(move || {
                    let mut doc = KdlDocument::parse_v2(part).ok()?;
                    if *offset > 0 {
                        for node in doc.nodes_mut() {
                            shift_node(node, *offset);
                        }
                    }
                    Some(doc)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().ok().flatten())
            .collect()
    });
    let mut docs = parsed.into_iter();
    let mut whole = docs.next()??;
    for doc in docs {
        let mut doc = doc?;
        whole.nodes_mut().append(doc.nodes_mut());
    }
    whole.set_span(SourceSpan::from((0, text.len())));
    Some(whole)
}

fn shift(span: SourceSpan, by: usize) -> SourceSpan {
    SourceSpan::from((span.offset() + by, span.len()))
}

fn shift_node(node: &mut KdlNode, by: usize) {
    node.set_span(shift(node.span(), by));
    let name = node.name().span();
    node.name_mut().set_span(shift(name, by));
    if let Some(ty) = node.ty_mut() {
        let s = ty.span();
        ty.set_span(shift(s, by));
    }
    for entry in node.entries_mut() {
        entry.set_span(shift(entry.span(), by));
        if let Some(name) = entry.name_mut() {
            let s = name.span();
            name.set_span(shift(s, by));
        }
        if let Some(ty) = entry.ty_mut() {
            let s = ty.span();
            ty.set_span(shift(s, by));
        }
    }
    if let Some(children) = node.children_mut() {
        children.set_span(shift(children.span(), by));
        for child in children.nodes_mut() {
            shift_node(child, by);
        }
    }
}

/// Byte offsets, one near each `k/pieces` of the text, where a top-level node starts at the
/// beginning of a line outside any block, string or comment.
pub fn cut_points(text: &str, pieces: usize) -> Vec<usize> {
    let b = text.as_bytes();
    let mut cuts = Vec::new();
    if pieces < 2 {
        return cuts;
    }
    let mut next_target = text.len() / pieces;
    let mut depth: usize = 0;
    let mut i = 0;
    // Whether the current line so far ends in a `\` continuation (outside comments).
    let mut continued = false;
    while i < b.len() {
        match b[i] {
            b'\n' => {
                let start = i + 1;
                if depth == 0 && !continued && start >= next_target && start < b.len() {
                    let c = b[start];
                    let starts_node = c.is_ascii_alphabetic() || c == b'"' || c == b'(';
                    if starts_node {
                        cuts.push(start);
                        if cuts.len() == pieces - 1 {
                            return cuts;
                        }
                        next_target = text.len() * (cuts.len() + 1) / pieces;
                    }
                }
                continued = false;
                i += 1;
            }
            b'\\' => {
                continued = true;
                i += 1;
            }
            b'{' => {
                depth += 1;
                continued = false;
                i += 1;
            }
            b'}' => {
                depth = depth.saturating_sub(1);
                continued = false;
                i += 1;
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                // A line comment runs to the end of the line; the newline is seen next.
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut level = 1;
                i += 2;
                while i < b.len() && level > 0 {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        level += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        level -= 1;
                        i += 2;
                    } else {
                        i += 1;
                    }
                }
            }
            b'"' => {
                i = skip_string(b, i, 0);
                continued = false;
            }
            b'#' => {
                let mut hashes = 0;
                while b.get(i + hashes) == Some(&b'#') {
                    hashes += 1;
                }
                if b.get(i + hashes) == Some(&b'"') {
                    i = skip_string(b, i + hashes, hashes);
                } else {
                    i += hashes;
                }
                continued = false;
            }
            c => {
                if !c.is_ascii_whitespace() {
                    continued = false;
                }
                i += 1;
            }
        }
    }
    // A text that ends inside a block, string or comment is left to the serial parser.
    if depth != 0 {
        cuts.clear();
    }
    cuts
}

/// Skips a string opening at `b[i] == '"'`; `hashes > 0` makes it raw (no escapes).
fn skip_string(b: &[u8], i: usize, hashes: usize) -> usize {
    let multi = b[i..].starts_with(b"\"\"\"");
    let (mut j, quote) = if multi { (i + 3, 3) } else { (i + 1, 1) };
    while j < b.len() {
        if hashes == 0 && b[j] == b'\\' {
            j += 2;
            continue;
        }
        if b[j..].starts_with(&b"\"\"\""[..quote]) {
            let end = j + quote;
            if b.len() >= end + hashes && b[end..end + hashes].iter().all(|c| *c == b'#') {
                return end + hashes;
            }
        }
        j += 1;
    }
    b.len()
}
