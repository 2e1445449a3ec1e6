//! Snapshots of the rendered diagnostic of every invalid fixture, and the binary's verdict on
//! each: exit 1, never a panic, a `FILE:LINE:COL` pointing into the file.

use crate::support::{kdl_files, root, stderr, vaultform};

fn render(path: &std::path::Path) -> (vaultform::Loaded, String) {
    let text = std::fs::read_to_string(root().join(path)).expect("read fixture");
    let loaded = vaultform::load(path.display().to_string(), text);
    let rendered = vaultform::ui::diagnostics::render(&loaded, false);
    (loaded, rendered)
}

#[test]
fn every_invalid_fixture_renders_a_spanned_diagnostic() {
    let files = kdl_files("tests/fixtures/invalid");
    assert!(
        files.len() >= 25,
        "at least 25 invalid fixtures, found {}",
        files.len()
    );
    let mut codes = std::collections::BTreeSet::new();
    for path in &files {
        let (loaded, rendered) = render(path);
        assert!(loaded.has_errors(), "{} should be invalid", path.display());
        for p in loaded.problems.iter() {
            assert!(
                !p.labels.is_empty(),
                "{}: `{}` has no label",
                path.display(),
                p.message
            );
            codes.insert(p.code);
        }
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        insta::with_settings!({snapshot_path => "snapshots/diagnostics", prepend_module_to_snapshot => false}, {
            insta::assert_snapshot!(name, rendered);
        });
    }
    assert!(
        codes.len() >= 25,
        "at least 25 distinct error kinds, found {}: {codes:?}",
        codes.len()
    );
}

#[test]
fn validate_exits_1_with_file_line_col_on_every_invalid_fixture() {
    for path in kdl_files("tests/fixtures/invalid") {
        let out = vaultform(&["validate", path.to_str().unwrap()]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{}: {err}", path.display());
        let loc = format!("[{}:", path.display());
        assert!(
            err.contains(&loc),
            "{} names FILE:LINE:COL: {err}",
            path.display()
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn warnings_do_not_fail_validation() {
    for path in kdl_files("tests/fixtures/warnings") {
        let (loaded, rendered) = render(&path);
        assert!(!loaded.has_errors(), "{rendered}");
        assert!(loaded.warning_count() >= 3, "{rendered}");
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        insta::with_settings!({snapshot_path => "snapshots/diagnostics", prepend_module_to_snapshot => false}, {
            insta::assert_snapshot!(name, rendered);
        });
        let out = vaultform(&["validate", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
}

#[test]
fn line_and_column_point_at_the_offending_value() {
    let (loaded, _) = render(std::path::Path::new(
        "tests/fixtures/invalid/bucket-name.kdl",
    ));
    let p = &loaded.problems[0];
    let span = p.primary_span().expect("span");
    assert_eq!(loaded.source.line_col(span.offset()), (4, 12));
    assert_eq!(
        &loaded.source.text[span.offset()..span.offset() + span.len()],
        "\"Unseal_Keys\""
    );
}

/// A member named `../../x` would put its directory, and destroy's removal of it, outside the
/// work directory (`.vaultform/t/v/../../x` is `.vaultform/x`): destroy stops at the name.
#[test]
fn destroy_refuses_a_member_name_that_climbs_out_of_the_work_directory() {
    let dir = tempfile::tempdir().unwrap();
    let text =
        std::fs::read_to_string(root().join("tests/fixtures/invalid/name-dot-dot.kdl")).unwrap();
    std::fs::write(dir.path().join("t.kdl"), text).unwrap();
    let outside = dir.path().join(".vaultform/x");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("keep"), "not vaultform's").unwrap();
    for args in [
        vec!["validate", "t.kdl"],
        vec!["destroy", "t.kdl", "--auto-approve"],
    ] {
        let out = crate::support::vaultform_in(dir.path(), &args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("invalid member name \"../../x\""),
            "{}",
            stderr(&out)
        );
    }
    assert!(outside.join("keep").exists());
}
