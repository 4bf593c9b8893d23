//! Sweeps under hostile but realistic use: two processes on one folder, merges into their
//! own inputs or of short shards, absurd sizes, folders that are not sweeps, and `kill -9`
//! at random moments followed by a resume.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::one_line_error;
use pruning_game::sim::{read_rows, run_sweep, Shard, SweepConfig, SweepOptions, JOURNAL, RESULTS};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const BIN: &str = env!("CARGO_BIN_EXE_pruning-game");

fn write_sweep(dir: &Path, name: &str, text: &str) -> PathBuf {
    let file = dir.join(name);
    std::fs::write(&file, text).unwrap();
    file
}

fn simulate(file: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(["simulate", "--quiet", "--config"])
        .arg(file)
        .arg("--out")
        .arg(out)
        .args(extra);
    c
}

/// The results file without the wall-time column, the only one that varies between runs.
fn without_seconds(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| l.rsplit_once(',').unwrap().0.to_owned())
        .collect()
}

fn wait_for_rows(journal: &Path, rows: usize, child: &mut std::process::Child) {
    let start = Instant::now();
    while std::fs::read_to_string(journal).map_or(0, |t| t.lines().count()) <= rows {
        assert!(start.elapsed() < Duration::from_secs(120), "no progress");
        assert!(child.try_wait().unwrap().is_none(), "ended too early");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_second_simulate_on_a_busy_folder_is_refused_and_the_lock_dies_with_its_process() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_sweep(dir.path(), "s.toml", &common::sweep_text(150, 400, 21));
    let out = dir.path().join("out");
    let mut first = simulate(&file, &out, &["--threads", "1"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_rows(&out.join(JOURNAL), 5, &mut first);
    let second = simulate(&file, &out, &[]).output().unwrap();
    let e = one_line_error(&second);
    assert!(e.contains("another process is writing"), "{e}");
    assert!(e.contains("out"), "the message names the folder: {e}");
    // The library refuses too, not only the command line.
    let config = SweepConfig::from_path(&file).unwrap();
    let err = run_sweep(&config, &out, &SweepOptions::default()).unwrap_err();
    assert!(err.to_string().contains("another process"), "{err}");
    // SIGKILL: no stale lock survives the process.
    first.kill().unwrap();
    first.wait().unwrap();
    let status = simulate(&file, &out, &[])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let rows = read_rows(&out.join(RESULTS)).unwrap();
    let mut keys: Vec<_> = rows.iter().map(|r| r.key()).collect();
    keys.dedup();
    assert_eq!(keys.len(), 6 * 150, "rows lost or duplicated");
}

fn shards(dir: &Path, config: &SweepConfig, count: usize) -> Vec<PathBuf> {
    (1..=count)
        .map(|k| {
            let out = dir.join(format!("shard{k}"));
            let options = SweepOptions {
                shard: Some(Shard { index: k, count }),
                ..SweepOptions::default()
            };
            assert!(run_sweep(config, &out, &options).unwrap().complete);
            out
        })
        .collect()
}

fn merge_cli(inputs: &[PathBuf], out: &Path) -> Output {
    Command::new(BIN)
        .arg("merge")
        .arg("--out")
        .arg(out)
        .args(inputs)
        .output()
        .unwrap()
}

#[test]
fn merge_refuses_its_own_inputs_short_shards_and_foreign_folders() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_sweep(dir.path(), "s.toml", &common::sweep_text(3, 30, 5));
    let config = SweepConfig::from_path(&file).unwrap();
    let inputs = shards(dir.path(), &config, 3);
    let before = std::fs::read(inputs[0].join(RESULTS)).unwrap();

    // The output folder is one of the inputs, named differently (relative, trailing slash).
    let out = PathBuf::from(format!("{}/", inputs[0].display()));
    let e = one_line_error(&merge_cli(&inputs, &out));
    assert!(e.contains("also the input"), "{e}");
    let e = one_line_error(
        &Command::new(BIN)
            .current_dir(dir.path())
            .args(["merge", "--out", "./shard2", "shard1", "shard2", "shard3"])
            .output()
            .unwrap(),
    );
    assert!(e.contains("also the input"), "{e}");
    assert_eq!(std::fs::read(inputs[0].join(RESULTS)).unwrap(), before);

    // A shard folder of simulate is not a merge output either.
    let other = dir.path().join("other");
    run_sweep(&config, &other, &SweepOptions::default()).unwrap();
    let e = one_line_error(&merge_cli(&inputs, &other));
    assert!(e.contains("run by simulate"), "{e}");

    // A shard missing rows its sweep file gives it: 6 rows expected, 4 left.
    let text = std::fs::read_to_string(inputs[1].join(RESULTS)).unwrap();
    let short: Vec<&str> = text.lines().take(5).collect();
    std::fs::write(inputs[1].join(RESULTS), short.join("\n") + "\n").unwrap();
    let merged = dir.path().join("merged");
    let e = one_line_error(&merge_cli(&inputs, &merged));
    assert!(e.contains("holds 4 rows") && e.contains("6 games"), "{e}");
    assert!(e.contains("shard2"), "the message names the shard: {e}");
    assert!(
        !merged.exists(),
        "a refused merge wrote {}",
        merged.display()
    );

    // A row duplicated in place of a missing one: the count matches, the set does not.
    let mut lines: Vec<&str> = text.lines().collect();
    lines[2] = lines[1];
    std::fs::write(inputs[1].join(RESULTS), lines.join("\n") + "\n").unwrap();
    let e = one_line_error(&merge_cli(&inputs, &merged));
    assert!(e.contains("appears twice"), "{e}");
    // A row of another shard's cell.
    let foreign = std::fs::read_to_string(inputs[0].join(RESULTS)).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[1] = foreign.lines().nth(1).unwrap();
    std::fs::write(inputs[1].join(RESULTS), lines.join("\n") + "\n").unwrap();
    let e = one_line_error(&merge_cli(&inputs, &merged));
    assert!(e.contains("not a game of this shard"), "{e}");
    assert!(!merged.exists());
}

/// Runs `simulate` on a sweep file holding `text` and returns its one-line error, after
/// checking that no output folder was created.
fn refused(name: &str, text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = write_sweep(dir.path(), name, text);
    let out = dir.path().join("out");
    let start = Instant::now();
    let e = one_line_error(&simulate(&file, &out, &[]).output().unwrap());
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{name} took long"
    );
    assert!(!out.exists(), "{name}: a refused sweep created its folder");
    assert!(e.contains(name), "{name}: the message names the file: {e}");
    e
}

#[test]
fn absurd_sizes_are_refused_before_any_allocation_or_file() {
    let good = common::sweep_text(1, 10, 0);
    let cases = [
        (
            "steps.toml",
            good.replace(
                "gamma = [0.0, 0.1, 0.2]",
                "gamma = { from = 0.0, to = 1.0, steps = 1000000000000 }",
            ),
            "grid.participation_cost",
        ),
        (
            "players.toml",
            good.replace("players = 10", "players = 1000000000000"),
            "grid.players",
        ),
        (
            "dense.toml",
            good.replace(
                "players = 10\ntopology = { kind = \"random\", degree = 6.0 }",
                "players = 200000\ntopology = { kind = \"dense\", density = 0.001 }",
            ),
            "grid.players",
        ),
        (
            "replicates.toml",
            good.replace("replicates = 1", "replicates = 1000000000000"),
            "replicates",
        ),
        (
            "cells.toml",
            good.replace(
                "gamma = [0.0, 0.1, 0.2]",
                "gamma = { from = 0.0, to = 1.0, steps = 1000 }\nalpha = { from = 0.5, to = 1.0, steps = 1000 }",
            ),
            "grid.self_cost",
        ),
    ];
    for (name, text, field) in cases {
        let e = refused(name, &text);
        assert!(e.contains(field), "{name}: the message names {field}: {e}");
    }
    // JSON too.
    let e = refused(
        "players.json",
        r#"{"seed": 1, "grid": {"players": 1000000000000, "gamma": 0.1, "beta": 0.5}}"#,
    );
    assert!(e.contains("grid.players"), "{e}");
}

#[test]
fn simulate_checks_its_flags_and_folder_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_sweep(dir.path(), "s.toml", &common::sweep_text(1, 10, 0));
    // A folder that is not a sweep folder is left alone.
    let busy = dir.path().join("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("notes.txt"), "mine").unwrap();
    let e = one_line_error(&simulate(&file, &busy, &[]).output().unwrap());
    assert!(
        e.contains("notes.txt") && e.contains("not a sweep folder"),
        "{e}"
    );
    let names: Vec<_> = std::fs::read_dir(&busy).unwrap().collect();
    assert_eq!(names.len(), 1, "the refused run wrote into the folder");
    // A file where the folder should be.
    let e = one_line_error(
        &simulate(&file, &busy.join("notes.txt"), &[])
            .output()
            .unwrap(),
    );
    assert!(e.contains("not a folder"), "{e}");
    // Flags that cannot do what they say.
    for (flags, expected) in [
        (&["--stop-after", "0"][..], "stop-after"),
        (&["--shard", "7/9"][..], "owns no cells"),
        (&["--threads", "0"][..], "--threads"),
    ] {
        let out = dir.path().join("fresh");
        let e = one_line_error(&simulate(&file, &out, flags).output().unwrap());
        assert!(e.contains(expected), "{flags:?}: {e}");
        assert!(!out.exists(), "{flags:?} created the folder");
    }
}

#[test]
fn a_journal_row_that_is_not_a_game_of_the_sweep_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_sweep(dir.path(), "s.toml", &common::sweep_text(2, 20, 3));
    let out = dir.path().join("out");
    let status = simulate(&file, &out, &["--stop-after", "3", "--threads", "1"])
        .status()
        .unwrap();
    assert!(status.success());
    let journal = out.join(JOURNAL);
    let text = std::fs::read_to_string(&journal).unwrap();
    let line = text.lines().nth(1).unwrap();
    for (column, value, expected) in [
        (2, "12345", "not the sweep's seed"),
        (0, "999", "only 6 cells"),
    ] {
        let mut fields: Vec<&str> = line.split(',').collect();
        fields[column] = value;
        std::fs::write(&journal, text.replacen(line, &fields.join(","), 1)).unwrap();
        let e = one_line_error(&simulate(&file, &out, &[]).output().unwrap());
        assert!(e.contains(JOURNAL) && e.contains(expected), "{e}");
    }
}

/// Kills `simulate` with SIGKILL at seeded random moments, resuming each time, then lets it
/// finish: every file must equal an uninterrupted run's (results up to the timing column),
/// and no temporary may be left. `KILL_POINTS` sets the number of kills (default 40).
#[test]
fn killed_anywhere_the_sweep_resumes_to_the_uninterrupted_result() {
    let kills: usize = std::env::var("KILL_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let dir = tempfile::tempdir().unwrap();
    let file = write_sweep(dir.path(), "s.toml", &common::sweep_text(40, 200, 17));
    let games = 6 * 40;
    let full = dir.path().join("full");
    let start = Instant::now();
    let status = simulate(&file, &full, &["--threads", "2"])
        .status()
        .unwrap();
    assert!(status.success());
    let span = start.elapsed().as_secs_f64();

    let mut rng = ChaCha8Rng::seed_from_u64(2026);
    let mut killed_running = 0;
    let mut progress = Vec::new();
    let mut round = 0;
    let mut out = dir.path().join("killed0");
    for k in 0..kills {
        // A folder the kills let finish is checked, and the next kills start a new one.
        if out.join(RESULTS).exists() {
            assert_same_sweep(&out, &full);
            round += 1;
            out = dir.path().join(format!("killed{round}"));
        }
        // Half the kills land in the first milliseconds (folder, manifest, journal header,
        // the final files of a run with little left), half anywhere in what remains.
        let done = std::fs::read_to_string(out.join(JOURNAL))
            .map_or(0, |t| t.lines().count())
            .saturating_sub(1);
        progress.push(done);
        let left = 1.0 - done as f64 / games as f64;
        let mut child = simulate(&file, &out, &["--threads", "2"])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        if k % 2 == 0 {
            std::thread::sleep(Duration::from_secs_f64(rng.random_range(0.0..0.02)));
        } else {
            // Once this run has added a row (however loaded the machine), a random moment
            // in what is left.
            let start = Instant::now();
            while child.try_wait().unwrap().is_none()
                && start.elapsed() < Duration::from_secs(60)
                && std::fs::read_to_string(out.join(JOURNAL)).map_or(0, |t| t.lines().count())
                    <= done + 1
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            std::thread::sleep(Duration::from_secs_f64(
                rng.random_range(0.0..0.005 + span * left * 1.1),
            ));
        }
        if common::kill(&mut child, k) {
            killed_running += 1;
        }
    }
    let output = simulate(&file, &out, &[]).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_same_sweep(&out, &full);
    assert!(
        killed_running >= kills / 2,
        "only {killed_running} of {kills} kills hit a running process"
    );
    // The kills must have spread over the run: some with an empty journal, some midway.
    let midway = progress.iter().filter(|&&d| d > 0 && d < games).count();
    assert!(
        midway >= kills / 8,
        "journal rows at the kills: {progress:?}"
    );
    eprintln!(
        "{kills} kill points over {} folders, {killed_running} while the process ran, \
         {midway} with the journal part-full; full run {span:.3} s",
        round + 1
    );
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `out` holds what `full` holds: the same files, identical but for the timing column.
fn assert_same_sweep(out: &Path, full: &Path) {
    assert_eq!(
        without_seconds(&out.join(RESULTS)),
        without_seconds(&full.join(RESULTS)),
        "{}",
        out.display()
    );
    for name in ["sweep.json", "summary.csv", "summary.json"] {
        assert_eq!(
            std::fs::read(out.join(name)).unwrap(),
            std::fs::read(full.join(name)).unwrap(),
            "{name} differs in {}",
            out.display()
        );
    }
    assert_eq!(
        file_names(out),
        file_names(full),
        "stray files in {}",
        out.display()
    );
}

#[test]
fn plot_checks_its_output_and_inputs_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_sweep(dir.path(), "s.toml", &common::sweep_text(1, 10, 0));
    let results = dir.path().join("results");
    assert!(simulate(&file, &results, &[]).status().unwrap().success());
    let plot = |input: &Path, out: &Path| {
        Command::new(BIN)
            .args(["plot", "phase"])
            .arg(input)
            .arg("--out")
            .arg(out)
            .output()
            .unwrap()
    };
    // A bad extension: refused before the folder it names is created.
    let out = dir.path().join("figures/phase.jpg");
    let e = one_line_error(&plot(&results, &out));
    assert!(e.contains(".svg or .png"), "{e}");
    assert!(!dir.path().join("figures").exists(), "created the folder");
    // A missing input: refused before anything is written.
    let out = dir.path().join("figures/phase.svg");
    let e = one_line_error(&plot(&dir.path().join("nothing"), &out));
    assert!(e.contains("nothing"), "{e}");
    assert!(!dir.path().join("figures").exists(), "created the folder");
    // A good one leaves the figure and no temporary beside it.
    assert!(plot(&results, &out).status.success());
    assert_eq!(file_names(&dir.path().join("figures")), ["phase.svg"]);
}
