//! Parallel sweeps of synthetic pruning games, their statistics, and resumable result files.
//!
//! A [`SweepConfig`] (TOML or JSON) expands to a grid of cells; [`run_sweep`] solves every
//! cell × replicate in parallel (rayon), appends one CSV row per game to a crash-safe
//! journal, and on completion writes sorted `results.csv` plus per-cell statistics
//! ([`summarise`]). Seeds come from `(base seed, cell, replicate)` ([`game_seed`]), so
//! threads, shards ([`Shard`]) and resumed runs all produce the same rows; [`merge`] joins
//! shard folders and refuses shards of different sweeps.

mod config;
mod record;
mod run;
mod stats;

pub use config::{game_seed, Axis, Cell, FloatAxis, Grid, Linspace, Shard, SweepConfig, MAX_GAMES};
pub use record::{parse_rows, read_rows, run_game, write_rows, Row, HEADER};
pub use run::{
    load_results, merge, run_sweep, Manifest, MergeOutcome, SweepOptions, SweepRun, FORMAT_VERSION,
    JOURNAL, MANIFEST, RESULTS, SYNC_INTERVAL,
};
pub use stats::{
    summarise, t_quantile, write_summary, CellSummary, Comparison, Estimate, Summary, CONFIDENCE,
    SUMMARY_HEADER,
};
