//! Running a sweep: parallel games, an append-only journal, resume, and the final files.
//!
//! Layout of an output folder:
//! * `sweep.json` — the configuration, its hash and the shard (written first);
//! * `rows.csv` — the journal: a header, then one line per finished game in completion
//!   order. Each line is written with a single `write` of the whole line on an append-only
//!   file, and the file is `fsync`ed at most every [`SYNC_INTERVAL`] and at the end (a
//!   killed process loses nothing written; a power cut loses at most that interval). After a crash
//!   the journal ends in at most one torn line: a resumed run truncates it back to its last
//!   newline, skips every `(cell, replicate)` already present and runs the rest;
//! * `summary.csv`, `summary.json` — per-cell statistics ([`super::stats`]), written when
//!   every game is done;
//! * `results.csv` — written atomically after the summaries, so its presence means the
//!   folder is complete: the journal sorted by `(cell, replicate)`, so an
//!   interrupted-and-resumed sweep and an uninterrupted one give the same file (up to the
//!   `seconds` column);
//! * `.lock` — the file the running process locks ([`crate::lock`]): a second `simulate`
//!   on the folder is refused while the first lives, and the kernel frees the lock however
//!   the first one ends.
//!
//! Kill-safety: every file but the journal is replaced atomically ([`crate::io::write_atomic`]),
//! so a kill at any moment leaves each either absent, complete, or with a torn last line
//! (the journal); temporaries of a killed write are deleted by the next run, which holds the
//! lock. The journal's rows are checked against the sweep (cell, shard, replicate and seed)
//! before they are resumed.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::config::{game_seed, Shard, SweepConfig};
use super::record::{parse_rows, read_rows, run_game, write_rows, Row, HEADER};
use super::stats::{summarise, write_summary};
use crate::error::{Error, Result};
use crate::io::{is_temporary, remove_stale_temporaries};
use crate::lock::{FolderLock, LOCK_FILE};

/// Least time between two `fsync`s of the journal: bounds the work a power cut can lose,
/// while fast games (thousands per second) do not wait on the disk. A killed process loses
/// nothing either way: every finished line is already in the kernel's page cache.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// Version of the output-folder layout, stored in `sweep.json`.
pub const FORMAT_VERSION: u32 = 1;

/// `sweep.json`: what was run, so that a resumed run or a merge can refuse to mix sweeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Layout version.
    pub format_version: u32,
    /// Crate version that wrote it.
    pub crate_version: String,
    /// [`SweepConfig::hash`] of `config`.
    pub config_hash: String,
    /// The shard run into this folder; `None` for the whole sweep.
    pub shard: Option<Shard>,
    /// For merged folders, the shards they came from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_from: Vec<Shard>,
    /// The configuration (with its seed).
    pub config: SweepConfig,
}

impl Manifest {
    /// The manifest of a (sharded) run of `config`.
    pub fn new(config: &SweepConfig, shard: Option<Shard>) -> Self {
        Manifest {
            format_version: FORMAT_VERSION,
            crate_version: env!("CARGO_PKG_VERSION").into(),
            config_hash: config.hash(),
            shard,
            merged_from: Vec::new(),
            config: config.clone(),
        }
    }

    /// Reads `DIR/sweep.json`.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST);
        let text = crate::io::read_to_string(&path)?;
        serde_json::from_str(&text).map_err(|e| Error::Format {
            path,
            message: e.to_string(),
        })
    }
}

/// File names inside an output folder.
pub const MANIFEST: &str = "sweep.json";
/// The journal.
pub const JOURNAL: &str = "rows.csv";
/// The sorted results, present once the sweep (or shard) is complete.
pub const RESULTS: &str = "results.csv";

/// How to run a sweep.
#[derive(Default)]
pub struct SweepOptions<'a> {
    /// Run only this shard of the cells.
    pub shard: Option<Shard>,
    /// Called once before any game runs, with the games this run covers and how many of
    /// them the journal already holds: a progress bar's length and starting position.
    pub on_start: Option<&'a (dyn Fn(usize, usize) + Sync)>,
    /// Called after each finished game (from worker threads): progress bars, logs.
    pub on_row: Option<&'a (dyn Fn(&Row) + Sync)>,
    /// Stop starting new games once this many have finished in this run: an interruption
    /// hook for tests and time-limited jobs. The output stays resumable.
    pub stop_after: Option<usize>,
}

/// What a call to [`run_sweep`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepRun {
    /// Games this run (or shard) covers.
    pub total: usize,
    /// Games found already done in the journal.
    pub resumed: usize,
    /// Games run now.
    pub ran: usize,
    /// Whether every game is done (then `results.csv` and the summaries exist).
    pub complete: bool,
    /// The output folder.
    pub out_dir: PathBuf,
}

/// Runs (or resumes) `config` into `out_dir`. See the module docs for the files.
///
/// Everything is checked before the first file is written: the configuration, the options,
/// and that `out_dir` is absent, empty, or a folder of this very sweep and shard. The folder
/// is then locked ([`FolderLock`]) for the whole run, so a second process on the same
/// folder is refused instead of interleaving its rows with this one's.
pub fn run_sweep(config: &SweepConfig, out_dir: &Path, options: &SweepOptions) -> Result<SweepRun> {
    config.check()?;
    if options.stop_after == Some(0) {
        return Err(Error::invalid("stop_after", "must be at least 1 game"));
    }
    let all_cells = config.cells();
    let cells: Vec<_> = all_cells
        .iter()
        .filter(|c| options.shard.is_none_or(|s| s.owns(c.index)))
        .cloned()
        .collect();
    if let (Some(shard), true) = (options.shard, cells.is_empty()) {
        return Err(Error::invalid(
            "shard",
            format!(
                "{shard} owns no cells: the sweep has {} cells, so use at most {} shards",
                all_cells.len(),
                all_cells.len()
            ),
        ));
    }
    let manifest = Manifest::new(config, options.shard);
    check_out_dir(out_dir, &manifest)?;
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let _lock = FolderLock::acquire(out_dir)?;
    // Again under the lock: another process may have started this folder in between.
    check_out_dir(out_dir, &manifest)?;
    remove_stale_temporaries(out_dir)?;
    let manifest_path = out_dir.join(MANIFEST);
    if !manifest_path.exists() {
        crate::io::write_json_atomic(&manifest_path, &manifest)?;
    }

    let total = cells.len() * config.replicates;
    let journal_path = out_dir.join(JOURNAL);
    let (mut journal, done) = open_journal(&journal_path)?;
    check_journal_rows(&done, &all_cells, config, options.shard, &journal_path)?;
    let done_keys: HashSet<(usize, usize)> = done.iter().map(Row::key).collect();
    let todo: Vec<(usize, usize)> = cells
        .iter()
        .enumerate()
        .flat_map(|(k, _)| (0..config.replicates).map(move |r| (k, r)))
        .filter(|&(k, r)| !done_keys.contains(&(cells[k].index, r)))
        .collect();
    if let Some(f) = options.on_start {
        f(total, done.len());
    }
    journal
        .seek(SeekFrom::End(0))
        .map_err(|e| Error::io(&journal_path, e))?;

    let writer = Mutex::new((journal, Instant::now()));
    let finished = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    todo.par_iter().for_each(|&(k, replicate)| {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let result = run_game(&cells[k], replicate, config.seed, config.max_iterations)
            .and_then(|row| append(&writer, &journal_path, &row).map(|()| row));
        match result {
            Ok(row) => {
                let n = finished.fetch_add(1, Ordering::SeqCst) + 1;
                if let Some(f) = options.on_row {
                    f(&row);
                }
                if options.stop_after.is_some_and(|limit| n >= limit) {
                    stop.store(true, Ordering::Relaxed);
                }
            }
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                first_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert(e);
            }
        }
    });
    let (journal, _) = writer.into_inner().unwrap_or_else(|p| p.into_inner());
    journal
        .sync_data()
        .map_err(|e| Error::io(&journal_path, e))?;
    if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    let ran = finished.into_inner();
    let complete = done.len() + ran == total;
    if complete {
        finish(out_dir)?;
    }
    Ok(SweepRun {
        total,
        resumed: done.len(),
        ran,
        complete,
        out_dir: out_dir.into(),
    })
}

/// Refuses an output folder that is not absent, empty, or a folder of this sweep and shard.
/// Reads only: nothing is written before the checks pass.
fn check_out_dir(out_dir: &Path, manifest: &Manifest) -> Result<()> {
    if !out_dir.exists() {
        return Ok(());
    }
    if !out_dir.is_dir() {
        return Err(Error::SweepMismatch {
            path: out_dir.into(),
            reason: "exists and is not a folder; use another --out".into(),
        });
    }
    let manifest_path = out_dir.join(MANIFEST);
    if manifest_path.exists() {
        let old = Manifest::read(out_dir)?;
        if !old.merged_from.is_empty() {
            return Err(Error::SweepMismatch {
                path: manifest_path,
                reason: "the folder holds merged shards, not a run to resume; use another --out"
                    .into(),
            });
        }
        if old.config_hash != manifest.config_hash || old.shard != manifest.shard {
            return Err(Error::SweepMismatch {
                path: manifest_path,
                reason: format!(
                    "it holds sweep {} shard {}, not sweep {} shard {}; use another --out",
                    old.config_hash,
                    shard_label(old.shard),
                    manifest.config_hash,
                    shard_label(manifest.shard)
                ),
            });
        }
        return Ok(());
    }
    if let Some(name) = foreign_entry(out_dir)? {
        return Err(Error::SweepMismatch {
            path: out_dir.into(),
            reason: format!(
                "it holds `{name}` but no {MANIFEST}, so it is not a sweep folder; use a new or empty --out"
            ),
        });
    }
    Ok(())
}

/// The first entry of `dir` other than the lock file and temporaries, if any.
fn foreign_entry(dir: &Path) -> Result<Option<String>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let name = entry
            .map_err(|e| Error::io(dir, e))?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name != LOCK_FILE && !is_temporary(&name) {
            return Ok(Some(name));
        }
    }
    Ok(None)
}

/// Checks that every row of a journal is a game of this run: a cell of the grid owned by
/// the shard, a replicate in range, and the seed the sweep gives that game. A journal
/// edited by hand or copied from another folder is refused rather than merged into the
/// results.
fn check_journal_rows(
    rows: &[Row],
    cells: &[super::config::Cell],
    config: &SweepConfig,
    shard: Option<Shard>,
    path: &Path,
) -> Result<()> {
    for row in rows {
        let bad = |what: String| Error::Format {
            path: path.into(),
            message: format!("cell {} replicate {}: {what}", row.cell, row.replicate),
        };
        let Some(cell) = cells.get(row.cell) else {
            return Err(bad(format!("the sweep has only {} cells", cells.len())));
        };
        if shard.is_some_and(|s| !s.owns(row.cell)) {
            return Err(bad(format!(
                "the cell is not in shard {}",
                shard_label(shard)
            )));
        }
        if row.replicate >= config.replicates {
            return Err(bad(format!(
                "the sweep has only {} replicates",
                config.replicates
            )));
        }
        let seed = game_seed(config.seed, cell.generator_index, row.replicate);
        if row.seed != seed {
            return Err(bad(format!(
                "seed {} is not the sweep's seed {seed} for this game",
                row.seed
            )));
        }
    }
    Ok(())
}

fn shard_label(shard: Option<Shard>) -> String {
    shard.map_or_else(|| "all".into(), |s| s.to_string())
}

/// Opens (creating if needed) the journal, truncates a torn last line and returns the rows
/// already in it.
fn open_journal(path: &Path) -> Result<(File, Vec<Row>)> {
    let io = |e| Error::io(path, e);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io)?;
    let complete_len = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    if complete_len < bytes.len() {
        file.set_len(complete_len as u64).map_err(io)?;
        bytes.truncate(complete_len);
    }
    if bytes.is_empty() {
        file.write_all(format!("{HEADER}\n").as_bytes())
            .map_err(io)?;
        file.sync_data().map_err(io)?;
        return Ok((file, Vec::new()));
    }
    let text = String::from_utf8(bytes).map_err(|_| Error::Format {
        path: path.into(),
        message: "the journal is not UTF-8".into(),
    })?;
    let rows = parse_rows(&text, path)?;
    let mut seen = HashSet::new();
    if let Some(dup) = rows.iter().find(|r| !seen.insert(r.key())) {
        return Err(Error::Format {
            path: path.into(),
            message: format!(
                "cell {} replicate {} appears twice",
                dup.cell, dup.replicate
            ),
        });
    }
    Ok((file, rows))
}

/// Appends one full line with a single write; syncs at most every [`SYNC_INTERVAL`].
fn append(writer: &Mutex<(File, Instant)>, path: &Path, row: &Row) -> Result<()> {
    let line = format!("{}\n", row.to_csv());
    let mut guard = writer.lock().unwrap_or_else(|p| p.into_inner());
    let (file, last_sync) = &mut *guard;
    file.write_all(line.as_bytes())
        .map_err(|e| Error::io(path, e))?;
    if last_sync.elapsed() >= SYNC_INTERVAL {
        file.sync_data().map_err(|e| Error::io(path, e))?;
        *last_sync = Instant::now();
    }
    Ok(())
}

/// Writes the summaries and then `results.csv` (sorted) from the journal of a complete run.
/// `results.csv` comes last: its presence is what marks the folder complete (for `merge`,
/// `plot` and the user), so a kill between the files leaves a folder that is still
/// incomplete and is finished by the next run.
fn finish(out_dir: &Path) -> Result<()> {
    let rows = read_rows(&out_dir.join(JOURNAL))?;
    let manifest = Manifest::read(out_dir)?;
    write_summary(out_dir, &summarise(&rows, manifest.config.name.as_deref()))?;
    write_rows(&out_dir.join(RESULTS), &rows)
}

/// What [`merge`] produced.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeOutcome {
    /// Rows in the merged results.
    pub rows: usize,
    /// Shards merged.
    pub shards: Vec<Shard>,
    /// Shards of the sweep that were absent (only with `allow_partial`).
    pub missing: Vec<usize>,
}

/// Combines complete shard folders of one sweep into `out_dir`.
///
/// Refuses shards of different sweeps (config hash) or shard counts, a shard given twice,
/// rows that appear in more than one input, a shard whose `results.csv` does not hold
/// exactly the games its sweep file gives it, an output folder that is one of the inputs
/// or holds anything but an earlier merge, and — unless `allow_partial` — missing shards.
/// Every input is read and checked before anything is written; the output folder is locked
/// while it is written.
pub fn merge(inputs: &[PathBuf], out_dir: &Path, allow_partial: bool) -> Result<MergeOutcome> {
    if inputs.is_empty() {
        return Err(Error::invalid("merge", "no input folders given"));
    }
    let out_identity = planned_canonical(out_dir);
    for dir in inputs {
        if std::fs::canonicalize(dir).ok() == out_identity {
            return Err(Error::SweepMismatch {
                path: out_dir.into(),
                reason: format!(
                    "the output folder is also the input {}; merge into a new folder",
                    dir.display()
                ),
            });
        }
    }
    check_merge_out(out_dir)?;
    let mut manifests = Vec::new();
    for dir in inputs {
        let m = Manifest::read(dir)?;
        if !dir.join(RESULTS).exists() {
            return Err(Error::SweepMismatch {
                path: dir.clone(),
                reason: "the shard is not complete (no results.csv); resume it first".into(),
            });
        }
        manifests.push(m);
    }
    let first = &manifests[0];
    let mut shards = Vec::new();
    let mut owned_by_input = Vec::new();
    for (dir, m) in inputs.iter().zip(&manifests) {
        if m.config_hash != first.config_hash {
            return Err(Error::SweepMismatch {
                path: dir.clone(),
                reason: format!(
                    "config hash {} differs from {} in {}",
                    m.config_hash,
                    first.config_hash,
                    inputs[0].display()
                ),
            });
        }
        let own: Vec<Shard> = if m.merged_from.is_empty() {
            m.shard.into_iter().collect()
        } else {
            m.merged_from.clone()
        };
        if own.is_empty() {
            return Err(Error::SweepMismatch {
                path: dir.clone(),
                reason: "it holds the whole sweep, which overlaps every shard".into(),
            });
        }
        for &s in &own {
            if let Some(prev) = shards.iter().find(|p: &&Shard| p.count != s.count) {
                return Err(Error::SweepMismatch {
                    path: dir.clone(),
                    reason: format!("shard {s} does not match shard {prev} (different N)"),
                });
            }
            if shards.contains(&s) {
                return Err(Error::SweepMismatch {
                    path: dir.clone(),
                    reason: format!("shard {s} overlaps an earlier input"),
                });
            }
            shards.push(s);
        }
        owned_by_input.push(own);
    }
    let count = shards[0].count;
    let missing: Vec<usize> = (1..=count)
        .filter(|k| !shards.iter().any(|s| s.index == *k))
        .collect();
    if !missing.is_empty() && !allow_partial {
        return Err(Error::SweepMismatch {
            path: out_dir.into(),
            reason: format!(
                "shards {missing:?} of {count} are missing (--partial to merge anyway)"
            ),
        });
    }
    let config = &first.config;
    config.check()?;
    let cells = config.cells();
    let mut rows = Vec::new();
    let mut keys = HashSet::new();
    for (dir, own) in inputs.iter().zip(&owned_by_input) {
        let path = dir.join(RESULTS);
        let shard_rows = read_rows(&path)?;
        let owned_cells = cells
            .iter()
            .filter(|c| own.iter().any(|s| s.owns(c.index)))
            .count();
        let expected = owned_cells * config.replicates;
        if shard_rows.len() != expected {
            let labels: Vec<String> = own.iter().map(Shard::to_string).collect();
            return Err(Error::SweepMismatch {
                path,
                reason: format!(
                    "holds {} rows, but its sweep file gives shard {} {expected} games ({owned_cells} cells × {} replicates); re-run the shard",
                    shard_rows.len(),
                    labels.join("+"),
                    config.replicates
                ),
            });
        }
        for row in shard_rows {
            if row.cell >= cells.len()
                || row.replicate >= config.replicates
                || !own.iter().any(|s| s.owns(row.cell))
            {
                return Err(Error::SweepMismatch {
                    path,
                    reason: format!(
                        "cell {} replicate {} is not a game of this shard",
                        row.cell, row.replicate
                    ),
                });
            }
            if !keys.insert(row.key()) {
                return Err(Error::SweepMismatch {
                    path,
                    reason: format!(
                        "cell {} replicate {} appears twice or is also in an earlier input",
                        row.cell, row.replicate
                    ),
                });
            }
            rows.push(row);
        }
    }
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let _lock = FolderLock::acquire(out_dir)?;
    check_merge_out(out_dir)?;
    remove_stale_temporaries(out_dir)?;
    shards.sort_by_key(|s| s.index);
    let mut manifest = Manifest::new(config, None);
    manifest.merged_from = shards.clone();
    crate::io::write_json_atomic(&out_dir.join(MANIFEST), &manifest)?;
    // The results last, as in a sweep folder: their presence marks the merge complete.
    write_summary(out_dir, &summarise(&rows, config.name.as_deref()))?;
    write_rows(&out_dir.join(RESULTS), &rows)?;
    Ok(MergeOutcome {
        rows: rows.len(),
        shards,
        missing,
    })
}

/// The canonical path `path` has or would have once created: canonical parent plus name.
fn planned_canonical(path: &Path) -> Option<PathBuf> {
    if let Ok(p) = std::fs::canonicalize(path) {
        return Some(p);
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Some(std::fs::canonicalize(parent).ok()?.join(path.file_name()?))
}

/// A merge writes only into a new or empty folder, or over an earlier merge.
fn check_merge_out(out_dir: &Path) -> Result<()> {
    if !out_dir.exists() {
        return Ok(());
    }
    if !out_dir.is_dir() {
        return Err(Error::SweepMismatch {
            path: out_dir.into(),
            reason: "exists and is not a folder; use another --out".into(),
        });
    }
    if out_dir.join(MANIFEST).exists() {
        let old = Manifest::read(out_dir)?;
        if old.merged_from.is_empty() || out_dir.join(JOURNAL).exists() {
            return Err(Error::SweepMismatch {
                path: out_dir.into(),
                reason: "it holds a sweep run by simulate, not a merge; use a new --out".into(),
            });
        }
        return Ok(());
    }
    if let Some(name) = foreign_entry(out_dir)? {
        return Err(Error::SweepMismatch {
            path: out_dir.into(),
            reason: format!(
                "it holds `{name}` but no {MANIFEST}; merge into a new or empty folder"
            ),
        });
    }
    Ok(())
}

/// Reads the rows of a results folder (`results.csv`, else the journal of an unfinished run)
/// or of a CSV file given directly.
pub fn load_results(path: &Path) -> Result<Vec<Row>> {
    if path.is_dir() {
        let results = path.join(RESULTS);
        if results.exists() {
            return read_rows(&results);
        }
        let journal = path.join(JOURNAL);
        let text = crate::io::read_to_string(&journal)?;
        let end = text.rfind('\n').map_or(0, |p| p + 1);
        return parse_rows(&text[..end], &journal);
    }
    read_rows(path)
}
