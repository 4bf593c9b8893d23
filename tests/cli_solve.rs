//! `pruning-game solve` end to end: the equilibrium file's fields and the error paths.

use std::process::Command;

use pruning_game::equilibrium::{EquilibriumFile, SolverKind};
use pruning_game::game::{generate, Certificate, GeneratorConfig, PruningGame};

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
        assert!(file.dominated.is_empty());
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
