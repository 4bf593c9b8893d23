//! The `generate` subcommand and the command line's error contract.

use std::path::Path;
use std::process::Command;

use pruning_game::game::PruningGame;

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pruning-game"))
        .args(args)
        .output()
        .expect("the binary runs")
}

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
