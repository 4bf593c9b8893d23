//! Run reports: JSON summaries and CSV files in the formats `src/plot` renders
//! (trajectories `step,layer,unit,value`; frontier `method,kept_fraction,accuracy_mean,
//! accuracy_std`).

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::pruner::{Evaluation, TrajectoryPoint};
use crate::error::Result;
use crate::io::write_atomic;
use crate::nn::{Dataset, Model, Workspace};

/// Units of one gated layer before and after pruning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerCount {
    /// Layer index.
    pub layer: usize,
    /// Units before.
    pub before: usize,
    /// Units after.
    pub after: usize,
}

/// Per-layer counts of `after` relative to `before` (same gated-layer order).
pub fn layer_counts(before: &Model, after: &Model) -> Vec<LayerCount> {
    let b = before.gated_layers();
    b.iter()
        .map(|&l| LayerCount {
            layer: l,
            before: before.gate(l).map_or(0, |g| g.len()),
            after: after
                .layers()
                .get(l)
                .and_then(|x| x.params())
                .map_or(0, |(w, _)| w.nrows()),
        })
        .collect()
}

/// Fraction of hidden units kept over all gated layers.
pub fn kept_fraction(counts: &[LayerCount]) -> f64 {
    let before: usize = counts.iter().map(|c| c.before).sum();
    let after: usize = counts.iter().map(|c| c.after).sum();
    after as f64 / before.max(1) as f64
}

/// Fastest wall-clock milliseconds of a forward pass over the first `samples` of `data` in
/// batches of `batch` (best of `repeats` timings after one warm-up: on a shared machine the
/// minimum is the least disturbed estimate).
pub fn latency_ms(
    model: &Model,
    data: &Dataset,
    samples: usize,
    batch: usize,
    repeats: usize,
) -> Result<f64> {
    let n = samples.min(data.len()).max(1);
    let b = batch.clamp(1, n);
    let il = model.input_len();
    let mut ws = Workspace::new(model, b);
    let x = &data.inputs()[..n * il];
    let once = |ws: &mut Workspace| -> Result<()> {
        let mut start = 0;
        while start < n {
            let end = (start + b).min(n);
            model.forward(ws, &x[start * il..end * il], end - start)?;
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

/// Writes gate trajectories as CSV `step,layer,unit,value`.
pub fn write_trajectories(path: &Path, points: &[TrajectoryPoint]) -> Result<()> {
    write_atomic(path, |w| {
        writeln!(w, "step,layer,unit,value")?;
        for p in points {
            writeln!(w, "{},{},{},{}", p.step, p.layer, p.unit, p.value)?;
        }
        Ok(())
    })
}

/// Writes the equilibrium-gap metric of every evaluation as CSV
/// `epoch,step,layer,units,natural_residual,natural_residual_train,nash_gap,mean_gate,drift,
/// test_loss,test_accuracy`.
pub fn write_evaluations(path: &Path, evaluations: &[Evaluation]) -> Result<()> {
    write_atomic(path, |w| {
        writeln!(
            w,
            "epoch,step,layer,units,natural_residual,natural_residual_train,nash_gap,mean_gate,drift,mean_outgoing_norm,test_loss,test_accuracy"
        )?;
        for e in evaluations {
            for l in &e.layers {
                writeln!(
                    w,
                    "{},{},{},{},{},{},{},{},{},{},{},{}",
                    e.epoch,
                    e.step,
                    l.layer,
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
