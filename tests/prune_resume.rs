//! An interrupted and resumed pruning run equals the uninterrupted one (same seed).

use pruning_game::nn::data::{teacher_student, TeacherConfig};
use pruning_game::nn::graph::Graph;
use pruning_game::prune::pipeline::split_holdout;
use pruning_game::prune::{PruneConfig, PruneRun};
use pruning_game::Error;

fn config() -> PruneConfig {
    PruneConfig {
        epochs: 4,
        gamma: 0.01,
        warmup_steps: 20,
        refresh_every: 10,
        patience: 20,
        record_every: 5,
        ..PruneConfig::teacher_default()
    }
}

#[test]
fn resumed_run_equals_uninterrupted_run() {
    let (train, test) = teacher_student(&TeacherConfig {
        train: 2500,
        test: 200,
        ..TeacherConfig::default()
    })
    .unwrap();
    let (tr, ho) = split_holdout(&train, 500).unwrap();
    let model = Graph::mlp(&[20, 32, 4], 7).unwrap();

    let mut full = PruneRun::new(model.clone(), config()).unwrap();
    full.run(&tr, &ho, Some(&test), None).unwrap();
    let (full_model, full_pruner) = full.finish(&ho).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut first = PruneRun::new(model, config()).unwrap();
    first.run_epoch(&tr, &ho, Some(&test)).unwrap();
    first.run_epoch(&tr, &ho, Some(&test)).unwrap();
    first.save(dir.path()).unwrap();
    drop(first);
    let mut resumed = PruneRun::resume(dir.path(), &config()).unwrap();
    assert_eq!(resumed.epochs_done(), 2);
    resumed
        .run(&tr, &ho, Some(&test), Some(dir.path()))
        .unwrap();
    let (res_model, res_pruner) = resumed.finish(&ho).unwrap();

    assert!(
        !full_pruner.certificates().is_empty(),
        "the run should remove units mid-training"
    );
    assert_eq!(res_model, full_model);
    assert_eq!(
        serde_json::to_string(&res_pruner).unwrap(),
        serde_json::to_string(&full_pruner).unwrap()
    );
}

#[test]
fn resuming_with_another_configuration_is_refused() {
    let (train, _) = teacher_student(&TeacherConfig {
        train: 600,
        test: 100,
        ..TeacherConfig::default()
    })
    .unwrap();
    let (tr, ho) = split_holdout(&train, 100).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut run = PruneRun::new(Graph::mlp(&[20, 8, 4], 1).unwrap(), config()).unwrap();
    run.run_epoch(&tr, &ho, None).unwrap();
    run.save(dir.path()).unwrap();
    let other = PruneConfig {
        gamma: 0.5,
        ..config()
    };
    assert!(matches!(
        PruneRun::resume(dir.path(), &other),
        Err(Error::ResumeMismatch { .. })
    ));
}

/// The report's fields that measure wall-clock time, which no two runs share.
const TIMINGS: [&str; 4] = [
    "seconds",
    "latency_ms_before",
    "latency_ms_after",
    "speedup",
];

fn report_without_timings(dir: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("report.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    for k in TIMINGS {
        v.as_object_mut().unwrap().remove(k).expect(k);
    }
    v
}

/// The binary killed in the middle of the game and restarted with `--resume` writes the same
/// report, model and certificates as an uninterrupted run.
#[test]
fn cli_run_killed_mid_game_resumes_to_the_uninterrupted_result() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    const BIN: &str = env!("CARGO_BIN_EXE_pruning-game");
    const EPOCHS: u64 = 40;
    let dir = tempfile::tempdir().unwrap();
    let args = |out: &std::path::Path| {
        let mut c = Command::new(BIN);
        c.args(["prune", "--dataset", "teacher", "--epochs"])
            .arg(EPOCHS.to_string())
            .args(["--seed", "5", "--baselines", "--out"])
            .arg(out)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    let full = dir.path().join("full");
    assert!(args(&full).status().unwrap().success());

    let killed = dir.path().join("killed");
    let mut child = args(&killed).spawn().unwrap();
    let state = killed.join("game").join("pruner_state.json");
    let start = Instant::now();
    let epoch_saved = || -> Option<u64> {
        let text = std::fs::read_to_string(&state).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        v["epoch"].as_u64()
    };
    loop {
        if let Some(e) = epoch_saved() {
            let game_epochs = PruneConfig {
                epochs: EPOCHS as usize,
                ..PruneConfig::teacher_default()
            }
            .game_epochs() as u64;
            assert!(e < game_epochs, "the game ended before the kill");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(300), "no checkpoint");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !killed.join("report.json").exists(),
        "the run was not interrupted"
    );
    let interrupted_at = epoch_saved().unwrap();
    assert!(interrupted_at < EPOCHS);

    let mut resume = args(&killed);
    resume.arg("--resume");
    assert!(resume.status().unwrap().success());
    assert_eq!(
        report_without_timings(&killed),
        report_without_timings(&full),
        "resumed after epoch {interrupted_at}"
    );
    for f in [
        "pruned.safetensors",
        "certificates.json",
        "trajectories.csv",
    ] {
        assert!(
            std::fs::read(killed.join(f)).unwrap() == std::fs::read(full.join(f)).unwrap(),
            "{f} differs after resuming from epoch {interrupted_at}"
        );
    }
}
