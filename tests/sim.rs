//! Sweeps: interruption and resume, shards and merge, statistics, malformed sweep files,
//! and figures.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pruning_game::sim::{
    merge, read_rows, run_sweep, summarise, Shard, SweepConfig, SweepOptions, JOURNAL, RESULTS,
};

const BIN: &str = env!("CARGO_BIN_EXE_pruning-game");

fn config(replicates: usize, players: usize, seed: u64) -> SweepConfig {
    SweepConfig::from_toml_str(
        &common::sweep_text(replicates, players, seed),
        Path::new("t.toml"),
    )
    .unwrap()
}

/// The results file without the wall-time column, the only one that varies between runs.
fn without_seconds(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| l.rsplit_once(',').unwrap().0.to_owned())
        .collect()
}

fn full_run(dir: &Path, config: &SweepConfig) -> PathBuf {
    let out = dir.join("full");
    let run = run_sweep(config, &out, &SweepOptions::default()).unwrap();
    assert!(run.complete);
    out
}

#[test]
fn killed_sweep_resumes_to_the_uninterrupted_result() {
    let dir = tempfile::tempdir().unwrap();
    // 6 cells × 150 replicates of 400 players: long enough (seconds) to be killed midway.
    let text = common::sweep_text(150, 400, 11);
    let file = dir.path().join("sweep.toml");
    std::fs::write(&file, &text).unwrap();
    let out = dir.path().join("killed");
    let mut child = Command::new(BIN)
        .args(["simulate", "--threads", "1", "--config"])
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let journal = out.join(JOURNAL);
    let start = Instant::now();
    loop {
        let lines = std::fs::read_to_string(&journal).map_or(0, |t| t.lines().count());
        if lines > 40 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "sweep never started"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "sweep ended before it was killed"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !out.join(RESULTS).exists(),
        "the sweep finished before the kill"
    );
    // Simulate a torn final write as well: half a row without its newline.
    let mut bytes = std::fs::read(&journal).unwrap();
    let done_before = bytes.iter().filter(|&&b| b == b'\n').count() - 1;
    bytes.extend_from_slice(b"5,3,123,400,random:6.0,fal");
    std::fs::write(&journal, &bytes).unwrap();

    let status = Command::new(BIN)
        .args(["simulate", "--config"])
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let resumed = read_rows(&out.join(JOURNAL)).unwrap();
    assert_eq!(resumed.len(), 6 * 150, "rows lost or duplicated");
    let mut keys: Vec<_> = resumed.iter().map(|r| r.key()).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), 6 * 150, "duplicate rows");
    assert!(done_before < 6 * 150);

    let full = full_run(dir.path(), &config(150, 400, 11));
    assert_eq!(
        without_seconds(&out.join(RESULTS)),
        without_seconds(&full.join(RESULTS))
    );
}

#[test]
fn interruption_hook_then_resume_matches_full_run() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(4, 50, 3);
    let out = dir.path().join("part");
    let first = run_sweep(
        &c,
        &out,
        &SweepOptions {
            stop_after: Some(5),
            ..SweepOptions::default()
        },
    )
    .unwrap();
    assert!(!first.complete && first.ran >= 5 && first.ran < 24);
    let second = run_sweep(&c, &out, &SweepOptions::default()).unwrap();
    assert!(second.complete);
    assert_eq!(second.resumed, first.ran);
    assert_eq!(second.resumed + second.ran, 24);
    let full = full_run(dir.path(), &c);
    assert_eq!(
        without_seconds(&out.join(RESULTS)),
        without_seconds(&full.join(RESULTS))
    );
    // A different sweep cannot be resumed into the same folder.
    let err = run_sweep(&config(4, 50, 4), &out, &SweepOptions::default()).unwrap_err();
    assert!(err.to_string().contains("use another --out"), "{err}");
}

#[test]
fn shards_merge_to_the_full_run_and_bad_merges_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(3, 40, 5);
    let shard_dirs: Vec<PathBuf> = (1..=3)
        .map(|k| {
            let out = dir.path().join(format!("shard{k}"));
            let options = SweepOptions {
                shard: Some(Shard { index: k, count: 3 }),
                ..SweepOptions::default()
            };
            assert!(run_sweep(&c, &out, &options).unwrap().complete);
            out
        })
        .collect();
    // Each shard holds exactly its cells.
    for (k, d) in shard_dirs.iter().enumerate() {
        let rows = read_rows(&d.join(RESULTS)).unwrap();
        assert_eq!(rows.len(), 2 * 3);
        assert!(rows.iter().all(|r| r.cell % 3 == k));
    }
    let merged = dir.path().join("merged");
    let outcome = merge(&shard_dirs, &merged, false).unwrap();
    assert_eq!(outcome.rows, 18);
    let full = full_run(dir.path(), &c);
    assert_eq!(
        without_seconds(&merged.join(RESULTS)),
        without_seconds(&full.join(RESULTS))
    );

    // Overlap: a shard given twice.
    let twice = [shard_dirs[0].clone(), shard_dirs[0].clone()];
    let err = merge(&twice, &dir.path().join("m2"), true).unwrap_err();
    assert!(err.to_string().contains("overlaps"), "{err}");
    // Overlap: the full run with a shard.
    let err = merge(
        &[shard_dirs[0].clone(), full.clone()],
        &dir.path().join("m3"),
        true,
    )
    .unwrap_err();
    assert!(err.to_string().contains("overlaps every shard"), "{err}");
    // Mismatch: a shard of another sweep (different seed, hence config hash).
    let other = dir.path().join("other");
    let options = SweepOptions {
        shard: Some(Shard { index: 3, count: 3 }),
        ..SweepOptions::default()
    };
    run_sweep(&config(3, 40, 6), &other, &options).unwrap();
    let err = merge(
        &[shard_dirs[0].clone(), shard_dirs[1].clone(), other],
        &dir.path().join("m4"),
        false,
    )
    .unwrap_err();
    assert!(err.to_string().contains("config hash"), "{err}");
    // Missing shard without --partial.
    let err = merge(&shard_dirs[..2], &dir.path().join("m5"), false).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
    assert_eq!(
        merge(&shard_dirs[..2], &dir.path().join("m6"), true)
            .unwrap()
            .missing,
        vec![3]
    );
}

/// A fixed results file: cell 0 has five games, cell 1 has two.
const FIXED: &str = "\
cell,replicate,seed,players,topology,symmetric,gamma,beta,alpha,dominance,benefit,solver,tolerance,iterations,nash_gap,residual,converged,termination,pruned_fraction,proved_pruned_fraction,negative_q_fraction,uniqueness,seconds
0,0,1,10,dense:1.0,false,0.1,0.5,1.0,1.5,split:0.3:1.0,projection,1e-8,10,0.0,0.0,true,converged,0.1,0.1,0.0,unique,0.01
0,1,2,10,dense:1.0,false,0.1,0.5,1.0,1.5,split:0.3:1.0,projection,1e-8,20,0.0,0.0,true,converged,0.2,0.2,0.1,unique,0.01
0,2,3,10,dense:1.0,false,0.1,0.5,1.0,1.5,split:0.3:1.0,projection,1e-8,30,0.0,0.0,true,converged,0.3,0.2,0.2,unique,0.01
0,3,4,10,dense:1.0,false,0.1,0.5,1.0,1.5,split:0.3:1.0,projection,1e-8,40,0.0,0.0,false,max_iterations,0.4,0.4,0.2,unique,0.01
0,4,5,10,dense:1.0,false,0.1,0.5,1.0,1.5,split:0.3:1.0,projection,1e-8,50,0.0,0.0,true,converged,0.5,0.5,0.5,unique,0.01
1,0,6,10,dense:1.0,false,0.2,0.5,1.0,1.5,split:0.3:1.0,projection,1e-8,5,0.0,0.0,true,converged,0.6,0.7,0.6,unique,0.01
1,1,7,10,dense:1.0,false,0.2,0.5,1.0,1.5,split:0.3:1.0,projection,1e-8,5,0.0,0.0,true,converged,0.8,0.8,0.6,unique,0.01
";

#[test]
fn statistics_match_a_hand_computation() {
    let rows = pruning_game::sim::parse_rows(FIXED, Path::new("fixed.csv")).unwrap();
    let s = summarise(&rows, None);
    assert_eq!(s.games, 7);
    assert_eq!(s.cells.len(), 2);
    let c0 = &s.cells[0];
    // Pruned 0.1..0.5: mean 0.3; squared deviations 0.04+0.01+0+0.01+0.04 = 0.1, / (5−1)
    // = 0.025, sd = 0.158114. t_{0.975,4} = 2.7764 (NIST/SEMATECH e-Handbook of Statistical
    // Methods, table 1.3.6.7.2); half width 2.7764 · 0.158114 / √5 = 0.196324.
    let tol = 1e-4; // the table's t has 4 decimals
    assert!((c0.pruned.mean - 0.3).abs() < 1e-12);
    assert!((c0.pruned.std.unwrap() - 0.158_114).abs() < 1e-6);
    assert!((c0.pruned.ci_low.unwrap() - (0.3 - 0.196_324)).abs() < tol);
    assert!((c0.pruned.ci_high.unwrap() - (0.3 + 0.196_324)).abs() < tol);
    assert!((c0.converged_fraction - 0.8).abs() < 1e-12);
    assert!((c0.mean_iterations - 30.0).abs() < 1e-12);
    // q < 0: 0, .1, .2, .2, .5 → mean 0.2; observed − predicted: .1,.1,.1,.2,0 → mean 0.1.
    assert!((c0.negative_q.mean - 0.2).abs() < 1e-12);
    assert!((c0.negative_q_vs_pruned.mean_difference - 0.1).abs() < 1e-12);
    // Elimination: .1,.2,.2,.4,.5 → differences 0,0,.1,0,0 → mean 0.02, always a bound.
    assert!((c0.proved_vs_pruned.mean_difference - 0.02).abs() < 1e-12);
    assert!((c0.proved_vs_pruned.bound_holds - 1.0).abs() < 1e-12);
    // Cell 1, n = 2: mean 0.7, sd = √((0.01+0.01)/1) = 0.141421; t_{0.975,1} = 12.7062
    // (same table); half width 12.7062 · 0.141421 / √2 = 1.27062.
    let c1 = &s.cells[1];
    assert!((c1.pruned.mean - 0.7).abs() < 1e-12);
    assert!((c1.pruned.ci_high.unwrap() - (0.7 + 1.27062)).abs() < tol);
    // Elimination predicted 0.7 > observed 0.6 in game (1,0): the bound failed once.
    assert!((c1.proved_vs_pruned.bound_holds - 0.5).abs() < 1e-12);
    assert!((s.proved_vs_pruned.bound_holds - 6.0 / 7.0).abs() < 1e-12);
}

fn simulate_error(name: &str, text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(name);
    std::fs::write(&file, text).unwrap();
    let output = Command::new(BIN)
        .args(["simulate", "--config"])
        .arg(&file)
        .arg("--out")
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    assert!(!output.status.success(), "{name} was accepted");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    stderr
}

#[test]
fn malformed_sweep_files_give_clear_errors() {
    let good = common::sweep_text(1, 10, 0);
    let cases: [(&str, String, &str); 10] = [
        (
            "a.toml",
            good.replace("seed = 0", "seed = \"zero\""),
            "line 2",
        ),
        (
            "b.toml",
            good.replace("players = 10", "player = 10"),
            "unknown field `player`",
        ),
        (
            "c.toml",
            good.replace("beta = [0.0, 0.5]", "beta = []"),
            "competition_scale",
        ),
        (
            "d.toml",
            good.replace("beta = [0.0, 0.5]", "beta = [-1.0]"),
            "competition_scale",
        ),
        (
            "e.toml",
            good.replace("tolerance = 1e-9", "tolerance = 0.0"),
            "tolerance",
        ),
        ("f.toml", good.replace("[grid]", "[grid"), "line 4"),
        ("g.yaml", good.clone(), ".toml or .json"),
        (
            "h.toml",
            good.replace("kind = \"random\"", "kind = \"ring\""),
            "unknown variant `ring`",
        ),
        (
            "i.toml",
            good.replace(
                "gamma = [0.0, 0.1, 0.2]",
                "gamma = { from = 0.0, to = 1.0, step = 3 }",
            ),
            "unknown field `step`",
        ),
        (
            "j.toml",
            good.replace("solver = \"best-response\"", "solver = \"newtonn\""),
            "unknown variant `newtonn`",
        ),
    ];
    for (name, text, expected) in cases {
        let e = simulate_error(name, &text);
        assert!(e.contains(expected), "{name}: {e}");
    }
    let json = r#"{"seed": 1, "grid": {"players": 10, "gamma": 0.1, "beta": "high"}}"#;
    let e = simulate_error("h.json", json);
    assert!(e.contains("at `grid.beta`: invalid type"), "{e}");
    let e = simulate_error("i.json", r#"{"seed": 1}"#);
    assert!(e.contains("grid"), "{e}");
}

fn assert_image(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    assert!(
        bytes.len() > 2000,
        "{} is only {} bytes",
        path.display(),
        bytes.len()
    );
    match path.extension().unwrap().to_str().unwrap() {
        "png" => assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n"),
        _ => {
            let text = String::from_utf8(bytes).unwrap();
            assert!(
                text.contains("<svg") && text.contains("<text"),
                "no text drawn"
            );
        }
    }
}

#[test]
fn every_figure_renders_to_svg_and_png() {
    let dir = tempfile::tempdir().unwrap();
    let results = full_run(dir.path(), &config(2, 30, 9));
    let trace = dir.path().join("trace.json");
    std::fs::write(
        &trace,
        r#"{"solver": "projection", "residual_history": [1.0, 0.1, 0.01, 0.001, 0.0]}"#,
    )
    .unwrap();
    let trajectories = dir.path().join("traj.csv");
    std::fs::write(
        &trajectories,
        "step,unit,value\n0,a,1.0\n1,a,0.5\n2,a,0.0\n0,b,1.0\n1,b,0.9\n2,b,0.8\n",
    )
    .unwrap();
    let frontier = dir.path().join("frontier.csv");
    std::fs::write(
        &frontier,
        "method,kept_fraction,accuracy_mean,accuracy_std\ngame,0.2,0.8,0.01\ngame,0.5,0.85,0.01\n\
         magnitude,0.2,0.6,0.05\nmagnitude,0.5,0.82,0.02\n",
    )
    .unwrap();
    for ext in ["svg", "png"] {
        for (kind, input) in [
            ("phase", &results),
            ("sparsity", &results),
            ("convergence", &trace),
            ("trajectories", &trajectories),
            ("frontier", &frontier),
        ] {
            let out = dir.path().join(format!("{kind}.{ext}"));
            let status = Command::new(BIN)
                .args(["plot", kind])
                .arg(input)
                .arg("--out")
                .arg(&out)
                .stderr(Stdio::null())
                .status()
                .unwrap();
            assert!(status.success(), "plot {kind} {ext}");
            assert_image(&out);
        }
    }
    // A bad extension and a missing column are errors, not panics.
    let out = Command::new(BIN)
        .args(["plot", "frontier"])
        .arg(&trajectories)
        .args(["--out", "x.svg"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no column `method`"));
}
