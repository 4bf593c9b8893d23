//! Pruning runs under hostile but realistic use: `kill -9` at random moments followed by a
//! resume, flipped bytes and edited state, resumes that do not match, moved folders, two
//! processes on one folder, and flags that do not apply.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::one_line_error;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const BIN: &str = env!("CARGO_BIN_EXE_pruning-game");

/// A short teacher–student run with every baseline: all stages (game, refit, fine-tune,
/// dense reference, baselines, exports) in a few seconds. Seed 5 unless `extra` sets one.
fn prune(out: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args([
        "prune",
        "--dataset",
        "teacher",
        "--epochs",
        "12",
        "--baselines",
    ])
    .arg("--out")
    .arg(out)
    .args(extra)
    .stdout(Stdio::null());
    if !extra.contains(&"--seed") {
        c.args(["--seed", "5"]);
    }
    c
}

/// The report's fields that measure wall-clock time, which no two runs share.
const TIMINGS: [&str; 6] = [
    "seconds",
    "latency_ms_before",
    "latency_ms_after",
    "speedup",
    "latency_ms_folded",
    "speedup_folded",
];

/// The files a finished run writes, compared byte for byte (the report without timings).
const OUTPUTS: [&str; 5] = [
    "pruned.safetensors",
    "certificates.json",
    "trajectories.csv",
    "equilibrium.csv",
    "config.json",
];

fn report_without_timings(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("report.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    for k in TIMINGS {
        v.as_object_mut().unwrap().remove(k).expect(k);
    }
    v
}

fn assert_same_run(out: &Path, full: &Path, context: &str) {
    assert_eq!(
        report_without_timings(out),
        report_without_timings(full),
        "report.json differs: {context}"
    );
    for f in OUTPUTS {
        assert!(
            std::fs::read(out.join(f)).unwrap() == std::fs::read(full.join(f)).unwrap(),
            "{f} differs: {context}"
        );
    }
    for dir in [out.to_path_buf(), out.join("game")] {
        let stray: Vec<String> = names(&dir)
            .into_iter()
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(
            stray.is_empty(),
            "temporaries left in {}: {stray:?}",
            dir.display()
        );
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Every file under `dir` with its bytes and modification time.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>, SystemTime)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(snapshot(&path));
        } else {
            let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
            out.push((path.clone(), std::fs::read(&path).unwrap(), modified));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn full_run(dir: &Path) -> (PathBuf, f64) {
    full_run_with(dir, &[])
}

/// [`full_run`] with more flags.
fn full_run_with(dir: &Path, extra: &[&str]) -> (PathBuf, f64) {
    let full = dir.join("full");
    let start = Instant::now();
    assert!(prune(&full, extra)
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success());
    (full, start.elapsed().as_secs_f64())
}

/// A run killed part-way, for the tests that tamper with what it left.
fn interrupted_run(dir: &Path, name: &str) -> PathBuf {
    let out = dir.join(name);
    let mut child = prune(&out, &[]).stderr(Stdio::null()).spawn().unwrap();
    let checkpoint = out.join("game").join("checkpoint.safetensors");
    wait_until(&mut child, || checkpoint.is_file());
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !out.join("report.json").exists(),
        "the run was not interrupted"
    );
    out
}

fn wait_until(child: &mut Child, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(300), "no progress");
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Kills `prune` with SIGKILL at seeded random moments, resuming each time (or starting
/// afresh when the kill came before the run had recorded itself), then lets it finish:
/// every output must equal an uninterrupted run's (the report up to its timings), and no
/// temporary may be left. `KILL_POINTS` sets the number of kills (default 12).
#[test]
fn killed_anywhere_the_prune_run_resumes_to_the_uninterrupted_result() {
    let kills: usize = std::env::var("KILL_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    killed_and_resumed(&[], kills, 2026);
}

/// The same with distillation on: the refit, fine-tunes and scratch control resumed after a
/// kill distil from the dense reference read back from its checkpoint, and end where the
/// uninterrupted run does.
#[test]
fn killed_anywhere_a_distilled_run_resumes_to_the_uninterrupted_result() {
    killed_and_resumed(&["--set", "distill_weight=0.5"], 8, 2027);
}

/// `kills` seeded kills of `prune` with `extra` flags, each followed by a resume; the result
/// must be the uninterrupted run's.
fn killed_and_resumed(extra: &[&str], kills: usize, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let (full, span) = full_run_with(dir.path(), extra);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut killed_running, mut folders) = (0, 0);
    let mut out = dir.path().join("killed0");
    let start_or_resume = |out: &Path| {
        if out.join("config.json").is_file() {
            prune(out, &[extra, &["--resume"]].concat())
        } else {
            prune(out, extra)
        }
    };
    for k in 0..kills {
        if out.join("report.json").exists() {
            assert_same_run(&out, &full, &format!("folder {folders}"));
            folders += 1;
            out = dir.path().join(format!("killed{folders}"));
        }
        let mut child = start_or_resume(&out).stderr(Stdio::null()).spawn().unwrap();
        // A third of the kills land in the first milliseconds (folder, record, lock), the
        // rest anywhere in a whole run's time.
        let wait = if k % 3 == 0 {
            rng.random_range(0.0..0.05)
        } else {
            rng.random_range(0.0..span * 1.1)
        };
        std::thread::sleep(Duration::from_secs_f64(wait));
        if common::kill(&mut child, k) {
            killed_running += 1;
        }
    }
    let output = start_or_resume(&out).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_same_run(&out, &full, &format!("folder {folders}"));
    assert!(
        killed_running >= kills / 2,
        "only {killed_running} of {kills} kills hit a running process"
    );
    eprintln!(
        "{kills} kill points over {} folders, {killed_running} while the process ran; full run \
         {span:.2} s",
        folders + 1
    );
}

/// A flipped byte in any checkpoint, or an edited pruner state, is refused on resume by name
/// instead of changing the result; the folder is left as it was.
#[test]
fn damaged_or_edited_checkpoints_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = interrupted_run(dir.path(), "run");
    let checkpoint = out.join("game").join("checkpoint.safetensors");
    let good = std::fs::read(&checkpoint).unwrap();
    let header = 8 + u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    // A weight's byte, and a digit of the pruner's state in the metadata (0-7, which stay
    // digits with their second bit flipped).
    let key = b"\"pruner\":\"";
    let state = good[..header]
        .windows(key.len())
        .position(|w| w == key)
        .unwrap();
    let in_state = state
        + good[state..header]
            .iter()
            .position(|b| (b'0'..=b'7').contains(b))
            .unwrap();
    for (what, at) in [("a weight", good.len() - 3), ("the pruner state", in_state)] {
        let mut bad = good.clone();
        bad[at] ^= if what == "a weight" { 0x01 } else { 0x02 };
        std::fs::write(&checkpoint, &bad).unwrap();
        let before = snapshot(&out);
        let e = one_line_error(&prune(&out, &["--resume"]).output().unwrap());
        assert!(
            e.contains("checkpoint.safetensors") && e.contains("checksum"),
            "{what}: {e}"
        );
        assert!(
            snapshot(&out) == before,
            "{what}: the refused resume changed the folder"
        );
    }
    std::fs::write(&checkpoint, &good).unwrap();
    assert!(prune(&out, &["--resume"]).status().unwrap().success());
    assert!(out.join("report.json").is_file());
}

/// `--resume` needs a run to resume; a resume with other settings, other data or another
/// network is refused with the settings named, and touches nothing.
#[test]
fn refused_resumes_name_what_differs_and_leave_the_folder_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    let e = one_line_error(&prune(&empty, &["--resume"]).output().unwrap());
    assert!(e.contains("nothing to resume"), "{e}");
    assert!(!empty.exists(), "a refused resume created its folder");

    let out = interrupted_run(dir.path(), "run");
    for (flags, named) in [
        (vec!["--seed", "6"], "config.seed: 5 -> 6"),
        (vec!["--gamma", "0.01"], "config.gamma"),
        (vec!["--hidden", "16"], "architecture.mlp.hidden"),
        (vec!["--train-samples", "3000"], "inputs.data_digest"),
    ] {
        let before = snapshot(&out);
        let c = &mut prune(&out, &[&["--resume"], flags.as_slice()].concat());
        let e = one_line_error(&c.output().unwrap());
        assert!(
            e.contains("cannot resume") && e.contains(named),
            "{flags:?}: {e}"
        );
        assert!(
            snapshot(&out) == before,
            "{flags:?}: the refused resume changed the folder"
        );
    }
}

/// A run folder moved elsewhere and named by a relative path resumes to the same result.
#[test]
fn a_moved_run_resumes_from_a_relative_path() {
    let dir = tempfile::tempdir().unwrap();
    let (full, _) = full_run(dir.path());
    let out = interrupted_run(dir.path(), "run");
    let elsewhere = dir.path().join("moved").join("here");
    std::fs::create_dir_all(elsewhere.parent().unwrap()).unwrap();
    std::fs::rename(&out, &elsewhere).unwrap();
    let mut c = prune(Path::new("here"), &["--resume"]);
    c.current_dir(dir.path().join("moved"));
    let output = c.stderr(Stdio::piped()).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_same_run(&elsewhere, &full, "moved");
}

/// A second `prune` on a folder another one is writing is refused at once and disturbs
/// nothing.
#[test]
fn a_second_writer_on_one_run_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let mut first = prune(&out, &[]).stderr(Stdio::null()).spawn().unwrap();
    wait_until(&mut first, || out.join("config.json").is_file());
    let e = one_line_error(&prune(&out, &["--resume"]).output().unwrap());
    assert!(e.contains("another process is writing"), "{e}");
    assert!(
        first.wait().unwrap().success(),
        "the first run was disturbed"
    );
    assert!(out.join("report.json").is_file());
}

/// Without `--resume`, `prune` refuses a folder that holds a run instead of starting over it.
#[test]
fn a_run_folder_is_not_overwritten_without_resume() {
    let dir = tempfile::tempdir().unwrap();
    let out = interrupted_run(dir.path(), "run");
    let before = snapshot(&out);
    let e = one_line_error(&prune(&out, &[]).output().unwrap());
    assert!(e.contains("already holds a pruning run"), "{e}");
    assert!(
        snapshot(&out) == before,
        "the refused run changed the folder"
    );
}

/// Bad flags and flags that do not apply are refused in one line before anything is
/// written: a new folder is not created, an existing run is not touched.
#[test]
fn flags_that_do_not_apply_are_refused_before_any_write() {
    let dir = tempfile::tempdir().unwrap();
    let out = interrupted_run(dir.path(), "run");
    let fresh = dir.path().join("fresh");
    for (flags, named) in [
        (vec!["--data-dir", "/tmp"], "--data-dir"),
        (vec!["--model", "cnn", "--hidden", "16"], "--hidden"),
        (vec!["--widths", "8,8"], "--widths"),
        (vec!["--depth", "20"], "--depth"),
        (vec!["--gamma", "0.1", "--target-kept", "0.5"], "--gamma"),
        (vec!["--init", "m.safetensors", "--model", "mlp"], "--model"),
        (vec!["--train-samples", "999999999"], "--train-samples"),
        (vec!["--hidden", "0"], "--hidden"),
        (vec!["--set", "no_such_key=1"], "no_such_key"),
        (vec!["--target-kept", "1.5"], "target_kept"),
        (vec!["--hidden", "1000000000"], "parameters"),
        (vec!["--hidden", "100000,100000"], "parameters"),
        (vec!["--set", "batch_size=1000000000000"], "batch_size"),
        (vec!["--set", "distill_weight=2"], "distill_weight"),
        (
            vec!["--set", "distill_temperature=0"],
            "distill_temperature",
        ),
    ] {
        for folder in [&out, &fresh] {
            let before = folder.exists().then(|| snapshot(folder));
            let e = one_line_error(&prune(folder, &flags).output().unwrap());
            assert!(e.contains(named), "{flags:?}: {e}");
            assert!(
                folder.exists().then(|| snapshot(folder)) == before,
                "{flags:?}: the refused run changed {}",
                folder.display()
            );
        }
    }
}
