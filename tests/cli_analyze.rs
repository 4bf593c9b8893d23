//! The `analyze` subcommand: readable report, JSON that matches the library's analysis, and
//! the error contract (one line on stderr, non-zero exit, no panic).

mod common;

use common::run_cli as run;

use pruning_game::dominance::{analyze, Analysis, AnalysisOptions, Uniqueness};
use pruning_game::game::PruningGame;

fn generate(dir: &std::path::Path, players: &str, extra: &[&str]) -> std::path::PathBuf {
    let path = dir.join("game.json");
    let mut args = vec![
        "generate",
        "--players",
        players,
        "--seed",
        "5",
        "--out",
        path.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = run(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

#[test]
fn json_output_matches_the_library() {
    let dir = tempfile::tempdir().unwrap();
    let path = generate(dir.path(), "400", &["--sparse", "8", "--symmetric"]);
    let out = run(&["analyze", "--game", path.to_str().unwrap(), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Analysis = serde_json::from_slice(&out.stdout).expect("valid analysis JSON");
    let game = PruningGame::read_json(&path).unwrap();
    let direct = analyze(&game, &AnalysisOptions::default()).unwrap();
    assert_eq!(printed.players, 400);
    assert_eq!(printed.storage, "sparse");
    assert_eq!(printed.provably_pruned, direct.provably_pruned);
    assert_eq!(printed.dominance.dominated, direct.dominance.dominated);
    assert!(printed.potential.exact_potential);
    // δ = 1.5 by default: the generator guarantees a unique equilibrium.
    assert!(matches!(
        printed.uniqueness.verdict,
        Uniqueness::Unique { .. }
    ));
    assert!(printed.provably_pruned.len() >= printed.dominance.dominated.len());
}

#[test]
fn readable_report_names_every_theorem() {
    let dir = tempfile::tempdir().unwrap();
    let path = generate(dir.path(), "400", &[]);
    let out = run(&["analyze", "--game", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "T3 dominance",
        "T4 iterated elimination",
        "T2 uniqueness",
        "T5 potential",
        "T6 convergence",
        "provably pruned without solving",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
}

#[test]
fn potential_at_a_given_equilibrium_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = generate(dir.path(), "3", &["--symmetric"]);
    let at = dir.path().join("eq.json");
    std::fs::write(&at, r#"{"participation": [0.0, 0.5, 1.0], "other": 1}"#).unwrap();
    let out = run(&[
        "analyze",
        "--game",
        path.to_str().unwrap(),
        "--at",
        at.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Analysis = serde_json::from_slice(&out.stdout).unwrap();
    let game = PruningGame::read_json(&path).unwrap();
    let expected = game.potential(&[0.0, 0.5, 1.0]);
    assert!((printed.potential.value.unwrap() - expected).abs() <= 1e-12);
    assert_eq!(printed.potential.at, "given profile");
}

/// Bad input: one line on stderr, exit status 1, nothing on stdout.
#[test]
fn errors_are_one_line_without_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = generate(dir.path(), "3", &[]);
    let short = dir.path().join("short.json");
    std::fs::write(&short, r#"{"participation": [0.5]}"#).unwrap();
    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, "{ not json").unwrap();
    // Profiles outside the strategy box [0, upper_i] are not profiles of the game.
    let outside = dir.path().join("outside.json");
    std::fs::write(&outside, r#"{"participation": [0.5, 1.5, 0.0]}"#).unwrap();
    let negative = dir.path().join("negative.json");
    std::fs::write(&negative, r#"{"participation": [0.5, 0.5, -0.25]}"#).unwrap();
    let cases: Vec<Vec<&str>> = vec![
        vec!["analyze", "--game", "/nonexistent/game.json"],
        vec!["analyze", "--game", garbage.to_str().unwrap()],
        vec![
            "analyze",
            "--game",
            path.to_str().unwrap(),
            "--at",
            short.to_str().unwrap(),
        ],
        vec![
            "analyze",
            "--game",
            path.to_str().unwrap(),
            "--at",
            outside.to_str().unwrap(),
        ],
        vec![
            "analyze",
            "--game",
            path.to_str().unwrap(),
            "--at",
            negative.to_str().unwrap(),
        ],
        vec!["analyze", "--game", path.to_str().unwrap(), "--tol", "-1"],
        vec!["analyze"],
    ];
    for args in cases {
        let out = run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

/// Finite games at the edges of the `f64` range read as figures, not as 300-digit numbers,
/// `inf` or `NaN`.
#[test]
fn extreme_finite_games_print_readable_figures() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("extreme.json");
    std::fs::write(
        &path,
        r#"{"benefit": [1e300, -1e300, 1e-300, 5e299], "self_cost": [1e-300, 1e300, 1.0, 1e-300],
            "participation_cost": 1e299,
            "competition": {"dense": [[0, 0.04, 0.008, 0.05], [0.03, 0, 0.07, 0.04],
                                      [0.08, 0.07, 0, 0.04], [0.009, 0.02, 0.04, 0]]}}"#,
    )
    .unwrap();
    let out = run(&["analyze", "--game", path.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let longest_digit_run = text
        .split(|c: char| !c.is_ascii_digit())
        .map(str::len)
        .max()
        .unwrap_or(0);
    assert!(
        longest_digit_run <= 12,
        "a {longest_digit_run}-digit number in\n{text}"
    );
    for word in ["inf", "NaN"] {
        assert!(!text.contains(word), "{word} in\n{text}");
    }
}
