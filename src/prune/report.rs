//! Run reports: JSON summaries and CSV files in the formats `src/plot` renders
//! (trajectories `step,group,unit,value`; frontier `method,kept_fraction,accuracy_mean,
//! accuracy_std`).

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::diagnostics::{Evaluation, TrajectoryPoint};
use super::players::players;
use crate::error::Result;
use crate::io::write_atomic;
use crate::nn::data::Dataset;
use crate::nn::graph::{Graph, GraphWorkspace, Mode};

/// Channels of one player group before and after pruning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupCount {
    /// The player group.
    pub group: String,
    /// Channels before.
    pub before: usize,
    /// Channels after.
    pub after: usize,
}

/// Per-group counts of `after` relative to `before` (same player groups, by name).
pub fn group_counts(before: &Graph, after: &Graph) -> Vec<GroupCount> {
    let now = after.channel_groups();
    players(before)
        .into_iter()
        .map(|g| GroupCount {
            after: now
                .iter()
                .find(|h| h.name == g.name)
                .map_or(0, |h| h.channels),
            group: g.name,
            before: g.channels,
        })
        .collect()
}

/// Fraction of channels kept over all player groups.
pub fn kept_fraction(counts: &[GroupCount]) -> f64 {
    let before: usize = counts.iter().map(|c| c.before).sum();
    let after: usize = counts.iter().map(|c| c.after).sum();
    after as f64 / before.max(1) as f64
}

/// Fastest wall-clock milliseconds of an evaluation-mode forward pass over the first
/// `samples` of `data` in batches of `batch` (best of `repeats` timings after one warm-up: on
/// a shared machine the minimum is the least disturbed estimate).
pub fn latency_ms(
    graph: &Graph,
    data: &Dataset,
    samples: usize,
    batch: usize,
    repeats: usize,
) -> Result<f64> {
    let n = samples.min(data.len()).max(1);
    let b = batch.clamp(1, n);
    let il = graph.input_len();
    let mut ws = GraphWorkspace::new(graph, b);
    let x = &data.inputs()[..n * il];
    let once = |ws: &mut GraphWorkspace| -> Result<()> {
        let mut start = 0;
        while start < n {
            let end = (start + b).min(n);
            graph.forward(ws, &x[start * il..end * il], end - start, Mode::Eval)?;
            start = end;
        }
        Ok(())
    };
    once(&mut ws)?;
    let mut times = Vec::new();
    for _ in 0..repeats.max(1) {
        let t = Instant::now();
        once(&mut ws)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[0])
}

/// Writes gate trajectories as CSV `step,group,unit,value`.
pub fn write_trajectories(path: &Path, points: &[TrajectoryPoint]) -> Result<()> {
    write_atomic(path, |w| {
        writeln!(w, "step,group,unit,value")?;
        for p in points {
            writeln!(w, "{},{},{},{}", p.step, p.group, p.unit, p.value)?;
        }
        Ok(())
    })
}

/// Writes the equilibrium-gap metric of every evaluation as CSV
/// `epoch,step,group,units,natural_residual,natural_residual_train,nash_gap,mean_gate,drift,
/// test_loss,test_accuracy`.
pub fn write_evaluations(path: &Path, evaluations: &[Evaluation]) -> Result<()> {
    write_atomic(path, |w| {
        writeln!(
            w,
            "epoch,step,group,units,natural_residual,natural_residual_train,nash_gap,mean_gate,drift,mean_outgoing_norm,test_loss,test_accuracy"
        )?;
        for e in evaluations {
            for l in &e.layers {
                writeln!(
                    w,
                    "{},{},{},{},{},{},{},{},{},{},{},{}",
                    e.epoch,
                    e.step,
                    l.group,
                    l.units,
                    l.natural_residual,
                    l.natural_residual_train,
                    l.nash_gap,
                    l.mean_gate,
                    l.drift,
                    l.mean_outgoing_norm,
                    e.test_loss,
                    e.test_accuracy
                )?;
            }
        }
        Ok(())
    })
}

/// One row of the accuracy–kept-fraction frontier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrontierRow {
    /// `game` or a baseline name (suffix `-before-ft` for accuracy before fine-tuning).
    pub method: String,
    /// Fraction of hidden units kept.
    pub kept_fraction: f64,
    /// Mean test accuracy over seeds.
    pub accuracy_mean: f64,
    /// Standard deviation over seeds (0 for one seed).
    pub accuracy_std: f64,
}

/// Writes the frontier CSV `method,kept_fraction,accuracy_mean,accuracy_std`.
pub fn write_frontier(path: &Path, rows: &[FrontierRow]) -> Result<()> {
    write_atomic(path, |w| {
        writeln!(w, "method,kept_fraction,accuracy_mean,accuracy_std")?;
        for r in rows {
            writeln!(
                w,
                "{},{},{},{}",
                r.method, r.kept_fraction, r.accuracy_mean, r.accuracy_std
            )?;
        }
        Ok(())
    })
}

/// Mean and sample standard deviation (0 for fewer than two values).
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    (mean, var.sqrt())
}
