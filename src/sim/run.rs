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
//! * `results.csv` — written atomically when every game is done: the journal sorted by
//!   `(cell, replicate)`, so an interrupted-and-resumed sweep and an uninterrupted one give
//!   the same file (up to the `seconds` column);
//! * `summary.csv`, `summary.json` — per-cell statistics ([`super::stats`]).

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::config::{Shard, SweepConfig};
use super::record::{parse_rows, read_rows, run_game, write_rows, Row, HEADER};
use super::stats::{summarise, write_summary};
use crate::error::{Error, Result};

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
/// Fails if `out_dir` holds a different sweep or shard, or a journal that is not one.
pub fn run_sweep(config: &SweepConfig, out_dir: &Path, options: &SweepOptions) -> Result<SweepRun> {
    config.check()?;
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let manifest = Manifest::new(config, options.shard);
    let manifest_path = out_dir.join(MANIFEST);
    if manifest_path.exists() {
        let old = Manifest::read(out_dir)?;
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
    } else {
        crate::io::write_json_atomic(&manifest_path, &manifest)?;
    }

    let cells: Vec<_> = config
        .cells()
        .into_iter()
        .filter(|c| options.shard.is_none_or(|s| s.owns(c.index)))
        .collect();
    let total = cells.len() * config.replicates;
    let journal_path = out_dir.join(JOURNAL);
    let (mut journal, done) = open_journal(&journal_path)?;
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

/// Writes `results.csv` (sorted) and the summaries from the journal of a complete run.
fn finish(out_dir: &Path) -> Result<()> {
    let rows = read_rows(&out_dir.join(JOURNAL))?;
    write_rows(&out_dir.join(RESULTS), &rows)?;
    let manifest = Manifest::read(out_dir)?;
    write_summary(out_dir, &summarise(&rows, manifest.config.name.as_deref()))
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
/// rows that appear in more than one input, and — unless `allow_partial` — missing shards.
pub fn merge(inputs: &[PathBuf], out_dir: &Path, allow_partial: bool) -> Result<MergeOutcome> {
    if inputs.is_empty() {
        return Err(Error::invalid("merge", "no input folders given"));
    }
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
        for s in own {
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
    let mut rows = Vec::new();
    let mut keys = HashSet::new();
    for dir in inputs {
        for row in read_rows(&dir.join(RESULTS))? {
            if !keys.insert(row.key()) {
                return Err(Error::SweepMismatch {
                    path: dir.clone(),
                    reason: format!(
                        "cell {} replicate {} is also in an earlier input",
                        row.cell, row.replicate
                    ),
                });
            }
            rows.push(row);
        }
    }
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    shards.sort_by_key(|s| s.index);
    let mut manifest = Manifest::new(&first.config, None);
    manifest.merged_from = shards.clone();
    crate::io::write_json_atomic(&out_dir.join(MANIFEST), &manifest)?;
    write_rows(&out_dir.join(RESULTS), &rows)?;
    write_summary(out_dir, &summarise(&rows, first.config.name.as_deref()))?;
    Ok(MergeOutcome {
        rows: rows.len(),
        shards,
        missing,
    })
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
