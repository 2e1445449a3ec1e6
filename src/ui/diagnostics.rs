//! Renders topology diagnostics as miette reports, plus a one-line verdict.

use miette::{GraphicalReportHandler, GraphicalTheme};

use crate::loaded::Loaded;

/// Renders every problem of a loaded file, then a summary line.
pub fn render(loaded: &Loaded, color: bool) -> String {
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(100)
        .with_links(false)
        .with_urls(false);
    let mut out = String::new();
    for d in loaded.diagnostics() {
        let _ = handler.render_report(&mut out, &d);
        out.push('\n');
    }
    out.push_str(&summary(loaded));
    out.push('\n');
    out
}

/// "FILE: valid" or "FILE: 2 errors, 1 warning".
pub fn summary(loaded: &Loaded) -> String {
    let errors = loaded.error_count();
    let warnings = loaded.warning_count();
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let name = &loaded.source.name;
    match (errors, warnings) {
        (0, 0) => format!("{name}: valid"),
        (0, w) => format!("{name}: valid, with {}", plural(w, "warning")),
        (e, 0) => format!("{name}: {}", plural(e, "error")),
        (e, w) => format!("{name}: {}, {}", plural(e, "error"), plural(w, "warning")),
    }
}
