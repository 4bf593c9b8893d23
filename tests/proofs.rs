//! The proofs in `proofs/` name the tests that check them. This test keeps those names
//! honest: every `tests/<file>.rs::<name>` reference must point at a test function that
//! exists in that file, and every theorem file (`proofs/T*.md`) must name at least one.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every `tests/<file>.rs::<name>` in `text`, as `(file, name)`.
fn references(text: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("tests/") {
        let after = &rest[start + "tests/".len()..];
        rest = after;
        let file_len = after.chars().take_while(|&c| is_ident(c)).count();
        let Some(tail) = after[file_len..].strip_prefix(".rs::") else {
            continue;
        };
        let name: String = tail.chars().take_while(|&c| is_ident(c)).collect();
        if file_len > 0 && !name.is_empty() {
            found.push((after[..file_len].to_string(), name));
        }
    }
    found
}

/// Whether `source` defines a function `name` (plain `#[test]` or inside `proptest!`).
fn defines(source: &str, name: &str) -> bool {
    let needle = format!("fn {name}(");
    source.match_indices(&needle).any(|(at, _)| {
        // Reject a longer identifier that merely ends in `name`.
        at >= 3 && !source[..at].ends_with(|c: char| is_ident(c))
    })
}

fn proof_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(root().join("proofs"))
        .expect("proofs/ exists")
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.sort();
    files
}

fn is_theorem(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('T'))
}

#[test]
fn every_theorem_file_exists() {
    let names: Vec<String> = proof_files()
        .iter()
        .filter_map(|p| p.file_name()?.to_str().map(String::from))
        .collect();
    for prefix in ["T1-", "T2-", "T3-", "T4-", "T5-", "T6-", "T7-", "T8-"] {
        assert!(
            names.iter().any(|n| n.starts_with(prefix)),
            "no proofs/{prefix}*.md"
        );
    }
    assert!(
        names.iter().any(|n| n == "README.md"),
        "no proofs/README.md"
    );
}

#[test]
fn every_named_test_exists_and_every_theorem_names_one() {
    let mut sources: BTreeMap<String, String> = BTreeMap::new();
    for path in proof_files() {
        let text = fs::read_to_string(&path).expect("readable proof file");
        let refs = references(&text);
        if is_theorem(&path) {
            let checked: Vec<_> = text
                .lines()
                .filter(|l| l.contains("Checked by:"))
                .flat_map(references)
                .collect();
            assert!(
                !checked.is_empty(),
                "{} names no test in a `Checked by:` line",
                path.display()
            );
        }
        for (file, name) in refs {
            let source = sources.entry(file.clone()).or_insert_with(|| {
                let test_file = root().join("tests").join(format!("{file}.rs"));
                fs::read_to_string(&test_file).unwrap_or_else(|_| {
                    panic!(
                        "{} names tests/{file}.rs, which does not exist",
                        path.display()
                    )
                })
            });
            assert!(
                defines(source, &name),
                "{} names tests/{file}.rs::{name}, which is not defined there",
                path.display()
            );
        }
    }
}

#[test]
fn the_reference_parser_is_not_vacuous() {
    let text = "Checked by: tests/theorems.rs::t3_a, tests/x.rs::b and tests/nothing here";
    assert_eq!(
        references(text),
        vec![
            ("theorems".to_string(), "t3_a".to_string()),
            ("x".to_string(), "b".to_string())
        ]
    );
    assert!(defines("    fn t3_a(x in 0..1) {", "t3_a"));
    assert!(!defines("    fn not_t3_a(x in 0..1) {", "t3_a"));
    assert!(!defines("    fn t3_ab() {", "t3_a"));
}
