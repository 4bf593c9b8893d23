//! `pruning-game solve` end to end: the equilibrium file of docs/formats.md (with `dominated`
//! and `undetermined` filled in), and the error paths.

mod common;

use common::run_cli as run;

use std::process::Command;

use pruning_game::equilibrium::{EquilibriumFile, SolverKind};
use pruning_game::game::{generate, Certificate, Game, GeneratorConfig, PruningGame};

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pruning-game"))
}

#[test]
fn solve_writes_a_certified_equilibrium_file() {
    let dir = tempfile::tempdir().unwrap();
    let game_path = dir.path().join("game.json");
    let game = generate(&GeneratorConfig {
        players: 60,
        seed: 5,
        ..GeneratorConfig::default()
    })
    .unwrap();
    game.write_json(&game_path).unwrap();
    for solver in SolverKind::ALL {
        let out = dir.path().join(format!("{solver}.json"));
        let status = binary()
            .args(["solve", "--game"])
            .arg(&game_path)
            .args(["--solver", solver.name(), "--tol", "1e-10", "--out"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            status.status.success(),
            "{solver}: {}",
            String::from_utf8_lossy(&status.stderr)
        );
        let file = EquilibriumFile::read_json(&out).unwrap();
        assert_eq!(file.solver, solver);
        assert!(file.converged);
        assert!(file.residual <= 1e-10);
        // The file's certificate is the game's certificate of the stored profile.
        let reread = PruningGame::read_json(&game_path).unwrap();
        let certificate = Certificate::of(&reread, &file.participation);
        assert_eq!(certificate.natural_residual, file.residual);
        assert_eq!(certificate.nash_gap, file.nash_gap);
        let zeros: Vec<usize> = (0..60).filter(|&i| file.participation[i] == 0.0).collect();
        assert_eq!(file.pruned, zeros);
    }
}

#[test]
fn solve_reports_bad_input_and_non_convergence_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let game_path = dir.path().join("game.json");
    generate(&GeneratorConfig::default())
        .unwrap()
        .write_json(&game_path)
        .unwrap();
    let out = dir.path().join("e.json");
    let run = |extra: &[&str]| {
        binary()
            .args(["solve", "--game"])
            .arg(&game_path)
            .arg("--out")
            .arg(&out)
            .args(extra)
            .output()
            .unwrap()
    };
    let bad_tolerance = run(&["--tol=-1"]);
    assert!(!bad_tolerance.status.success());
    let stderr = String::from_utf8_lossy(&bad_tolerance.stderr);
    assert!(
        stderr.contains("tolerance") && !stderr.contains("panicked"),
        "{stderr}"
    );
    // One iteration of projection cannot reach 1e-14: the file is written, the exit fails.
    let budget = run(&[
        "--solver",
        "projection",
        "--max-iter",
        "1",
        "--tol",
        "1e-14",
    ]);
    assert!(!budget.status.success());
    let file = EquilibriumFile::read_json(&out).unwrap();
    assert!(!file.converged);
    assert!(file.residual > 1e-14);
    let missing = binary()
        .args(["solve", "--game", "/nonexistent/game.json", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(!String::from_utf8_lossy(&missing.stderr).contains("panicked"));
}

#[test]
fn solve_writes_a_certified_equilibrium_whose_dominated_players_are_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let game_path = dir.path().join("g.json");
    let out_path = dir.path().join("e.json");
    let g = game_path.to_str().unwrap();
    assert!(run(&[
        "generate",
        "--players",
        "400",
        "--sparse",
        "8",
        "--seed",
        "5",
        "--negative-fraction",
        "0.4",
        "--out",
        g
    ])
    .status
    .success());
    for solver in ["newton", "best-response", "projection", "extragradient"] {
        let out = run(&[
            "solve",
            "--game",
            g,
            "--solver",
            solver,
            "--tol",
            "1e-10",
            "--out",
            out_path.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{solver}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let file: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&out_path).unwrap()).unwrap();
        let participation: Vec<f64> =
            serde_json::from_value(file["participation"].clone()).unwrap();
        let pruned: Vec<usize> = serde_json::from_value(file["pruned"].clone()).unwrap();
        let dominated: Vec<usize> = serde_json::from_value(file["dominated"].clone()).unwrap();
        assert_eq!(participation.len(), 400);
        assert!(file["converged"].as_bool().unwrap());
        assert!(file["residual"].as_f64().unwrap() <= 1e-10);
        assert!(file["nash_gap"].as_f64().unwrap() >= 0.0);
        assert_eq!(file["solver"].as_str().unwrap(), solver);
        let expected: Vec<usize> = (0..400).filter(|&i| participation[i] == 0.0).collect();
        assert_eq!(pruned, expected);
        // T3: every player with q_i < 0 is proved dominated; dominated players are pruned.
        let game = PruningGame::read_json(&game_path).unwrap();
        let negative: Vec<usize> = (0..game.num_players())
            .filter(|&i| game.net_benefit()[i] < 0.0)
            .collect();
        assert_eq!(negative.len(), 160);
        assert!(negative.iter().all(|i| dominated.contains(i)));
        assert!(
            dominated.iter().all(|i| pruned.contains(i)),
            "{solver}: a dominated player is active"
        );
    }
}

#[test]
fn solve_refuses_a_malformed_game_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let game_path = dir.path().join("bad.json");
    std::fs::write(
        &game_path,
        r#"{"benefit": [1.0, 2.0], "self_cost": [1.0, -1.0], "participation_cost": 0}"#,
    )
    .unwrap();
    let out_path = dir.path().join("e.json");
    let out = run(&[
        "solve",
        "--game",
        game_path.to_str().unwrap(),
        "--out",
        out_path.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("self_cost[1]"), "{stderr}");
    assert!(!out_path.exists());
}

/// On an ill-conditioned game (δ just above the loss of positive definiteness, no base self
/// cost: best response does not contract and the T4 bracket does not meet) `dominated` is a
/// subset of what the exact bracket of `analyze` proves, and with `undetermined` it accounts
/// for every pruned player.
#[test]
fn dominated_on_an_ill_conditioned_game_is_within_the_exact_bracket() {
    let dir = tempfile::tempdir().unwrap();
    let game_path = dir.path().join("ill.safetensors");
    let out_path = dir.path().join("e.json");
    let g = game_path.to_str().unwrap();
    let generated = run(&[
        "generate",
        "--players",
        "3000",
        "--sparse",
        "16",
        "--symmetric",
        "--dominance",
        "0.47",
        "--alpha",
        "0",
        "--seed",
        "1",
        "--out",
        g,
    ]);
    assert!(generated.status.success());
    let solved = run(&["solve", "--game", g, "--out", out_path.to_str().unwrap()]);
    assert!(
        solved.status.success(),
        "{}",
        String::from_utf8_lossy(&solved.stderr)
    );
    let file = EquilibriumFile::read_json(&out_path).unwrap();
    let analyzed = run(&["analyze", "--game", g, "--json"]);
    assert!(analyzed.status.success());
    let analysis: serde_json::Value = serde_json::from_slice(&analyzed.stdout).unwrap();
    let exact: Vec<usize> = serde_json::from_value(analysis["provably_pruned"].clone()).unwrap();
    assert!(analysis["elimination"]["converged"].as_bool().unwrap());
    assert!(!file.dominated.is_empty());
    for i in &file.dominated {
        assert!(
            exact.binary_search(i).is_ok(),
            "player {i} is not in the exact bracket"
        );
    }
    let mut accounted: Vec<usize> = file
        .dominated
        .iter()
        .chain(&file.undetermined)
        .copied()
        .collect();
    accounted.sort_unstable();
    let mut pruned = file.pruned.clone();
    pruned.extend(file.dominated.iter().filter(|i| !file.pruned.contains(i)));
    pruned.sort_unstable();
    assert_eq!(accounted, pruned);
}
