//! The `generate` subcommand and the command line's error contract.

mod common;

use common::run_cli as run;

use std::path::Path;

use pruning_game::game::PruningGame;

#[test]
fn generate_writes_a_file_that_reads_back_and_is_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("a.json");
    let second = dir.path().join("b.json");
    for path in [&first, &second] {
        let out = run(&[
            "generate",
            "--players",
            "300",
            "--sparse",
            "6",
            "--symmetric",
            "--seed",
            "3",
            "--out",
            path.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let game = PruningGame::read_json(&first).unwrap();
    assert_eq!(game.benefit().len(), 300);
    assert_eq!(game.competition().nnz(), 300 * 6);
    assert!(game.competition().is_symmetric());
    assert_eq!(
        std::fs::read(&first).unwrap(),
        std::fs::read(&second).unwrap()
    );
}

/// Bad input: one line on stderr, a non-zero exit, no panic and no file written.
#[test]
fn errors_are_one_line_and_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("g.json");
    let cases: [(&[&str], &str); 3] = [
        (&["generate", "--players", "0", "--out"], "no players"),
        (
            &["generate", "--players", "4", "--sparse", "4", "--out"],
            "neighbours",
        ),
        (
            &["generate", "--players", "4", "--beta", "-1", "--out"],
            "competition_scale",
        ),
    ];
    for (args, expected) in cases {
        let mut args = args.to_vec();
        args.push(out_path.to_str().unwrap());
        let out = run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"));
        assert!(!Path::new(&out_path).exists());
    }
    let out = run(&[
        "generate",
        "--players",
        "3",
        "--out",
        "/nonexistent-dir/g.json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent-dir/g.json"));
}

#[test]
fn usage_errors_are_one_line_and_help_lists_the_subcommands() {
    let out = run(&["generate", "--players"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr)
            .trim_end()
            .lines()
            .count(),
        1
    );
    let out = run(&["--help"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("generate"));
}

#[test]
fn absurd_sizes_are_refused_in_one_line_before_any_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("g.safetensors");
    let out = out_path.to_str().unwrap();
    for (args, fragment) in [
        (
            vec!["--players", "1000000000000"],
            "would not fit in any memory",
        ),
        (
            vec!["--players", "1000000000000", "--sparse", "16"],
            "sparse limit",
        ),
        (
            vec!["--players", "4000000000", "--sparse", "16"],
            "more than the",
        ),
        (vec!["--players", "3000000"], "more than the"),
    ] {
        let mut full = vec!["generate"];
        full.extend(&args);
        full.extend(["--out", out]);
        let result = run(&full);
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(!result.status.success(), "{args:?} was accepted");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(fragment), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!out_path.exists());
    }
}

#[test]
fn generate_writes_binary_files_that_solve_and_analyze_read() {
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("g.safetensors");
    let json = dir.path().join("g.json");
    for path in [&binary, &json] {
        let out = run(&[
            "generate",
            "--players",
            "400",
            "--sparse",
            "8",
            "--seed",
            "5",
            "--out",
            path.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(
        PruningGame::read(&binary).unwrap(),
        PruningGame::read(&json).unwrap()
    );
    assert!(std::fs::metadata(&binary).unwrap().len() < std::fs::metadata(&json).unwrap().len());
    let mut outputs = Vec::new();
    for path in [&binary, &json] {
        let eq = dir.path().join("eq.json");
        let solved = run(&[
            "solve",
            "--game",
            path.to_str().unwrap(),
            "--out",
            eq.to_str().unwrap(),
        ]);
        assert!(
            solved.status.success(),
            "{}",
            String::from_utf8_lossy(&solved.stderr)
        );
        let analyzed = run(&["analyze", "--game", path.to_str().unwrap(), "--json"]);
        assert!(analyzed.status.success());
        let analysis: serde_json::Value = serde_json::from_slice(&analyzed.stdout).unwrap();
        let file: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&eq).unwrap()).unwrap();
        outputs.push((
            file["participation"].clone(),
            analysis["provably_pruned"].clone(),
        ));
    }
    assert_eq!(outputs[0], outputs[1]);
}
