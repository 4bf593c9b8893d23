//! Per-cell statistics of a sweep and the predicted-versus-observed comparison.
//!
//! For each cell: mean, sample standard deviation (divisor `n − 1`) and the 95% Student-t
//! confidence interval `mean ± t_{0.975, n−1} · sd / √n` of the pruned fraction at
//! equilibrium. Two predictors of that fraction are compared with it, game by game:
//! the fraction with `q_i < 0` (T3) and the fraction proved pruned by iterated elimination
//! (T3 ∪ T4). Both are lower bounds whenever the equilibrium is unique; `bound_holds` counts
//! how often they were.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

use super::record::{num, CellParams, Row};
use crate::error::Result;

/// Confidence level of the intervals.
pub const CONFIDENCE: f64 = 0.95;

/// Mean, spread and confidence interval of a sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// Sample size.
    pub n: usize,
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (`n − 1` divisor); `None` when `n < 2`.
    pub std: Option<f64>,
    /// Lower end of the 95% Student-t interval; `None` when `n < 2`.
    pub ci_low: Option<f64>,
    /// Upper end of the interval.
    pub ci_high: Option<f64>,
}

/// The two-sided Student-t quantile `t_{(1+level)/2, df}`.
pub fn t_quantile(level: f64, df: usize) -> Option<f64> {
    let t = StudentsT::new(0.0, 1.0, df as f64).ok()?;
    Some(t.inverse_cdf(0.5 + level / 2.0))
}

impl Estimate {
    /// The estimate of `values` (empty input gives a NaN mean).
    pub fn of(values: &[f64]) -> Self {
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n as f64;
        if n < 2 {
            return Estimate {
                n,
                mean,
                std: None,
                ci_low: None,
                ci_high: None,
            };
        }
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let std = var.sqrt();
        let half = t_quantile(CONFIDENCE, n - 1).map(|t| t * std / (n as f64).sqrt());
        Estimate {
            n,
            mean,
            std: Some(std),
            ci_low: half.map(|h| mean - h),
            ci_high: half.map(|h| mean + h),
        }
    }
}

/// How well a predictor matches the observed pruned fraction.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Games compared.
    pub games: usize,
    /// Mean of `observed − predicted`.
    pub mean_difference: f64,
    /// Mean of `|observed − predicted|`.
    pub mean_absolute_difference: f64,
    /// Fraction of games with `predicted ≤ observed` (the predictor is a lower bound).
    pub bound_holds: f64,
}

impl Comparison {
    fn of(pairs: impl Iterator<Item = (f64, f64)>) -> Self {
        let (mut n, mut d, mut a, mut holds) = (0usize, 0.0, 0.0, 0usize);
        for (predicted, observed) in pairs {
            n += 1;
            d += observed - predicted;
            a += (observed - predicted).abs();
            // A tolerance of one part in 10^12 absorbs rounding in the fractions only.
            if predicted <= observed + 1e-12 {
                holds += 1;
            }
        }
        let n_f = n as f64;
        Comparison {
            games: n,
            mean_difference: d / n_f,
            mean_absolute_difference: a / n_f,
            bound_holds: holds as f64 / n_f,
        }
    }
}

/// Statistics of one cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellSummary {
    /// Cell index.
    pub cell: usize,
    /// The cell's parameters.
    #[serde(flatten)]
    pub params: CellParams,
    /// Fraction of the cell's games whose solver converged.
    pub converged_fraction: f64,
    /// Mean solver iterations.
    pub mean_iterations: f64,
    /// Pruned fraction at equilibrium.
    pub pruned: Estimate,
    /// Fraction with `q_i < 0`.
    pub negative_q: Estimate,
    /// Fraction proved pruned by iterated elimination.
    pub proved_pruned: Estimate,
    /// `q < 0` as a predictor of the pruned fraction.
    pub negative_q_vs_pruned: Comparison,
    /// Iterated elimination as a predictor of the pruned fraction.
    pub proved_vs_pruned: Comparison,
}

/// Statistics of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The sweep's name.
    pub name: Option<String>,
    /// Games.
    pub games: usize,
    /// Confidence level of the intervals.
    pub confidence: f64,
    /// Per cell, in cell order.
    pub cells: Vec<CellSummary>,
    /// `q < 0` versus observed, over all games.
    pub negative_q_vs_pruned: Comparison,
    /// Iterated elimination versus observed, over all games.
    pub proved_vs_pruned: Comparison,
}

/// Groups `rows` by cell and summarises each. Rows are taken in key order whatever order
/// they come in (a journal holds them in completion order), so the sums, and with them the
/// summary's last digits, are the same in every run.
pub fn summarise(rows: &[Row], name: Option<&str>) -> Summary {
    let mut rows: Vec<&Row> = rows.iter().collect();
    rows.sort_by_key(|r| r.key());
    let mut by_cell: BTreeMap<usize, Vec<&Row>> = BTreeMap::new();
    for &r in &rows {
        by_cell.entry(r.cell).or_default().push(r);
    }
    let cells = by_cell
        .into_values()
        .map(|group| {
            let r0 = group[0];
            let col = |f: fn(&Row) -> f64| group.iter().map(|r| f(r)).collect::<Vec<f64>>();
            let n = group.len() as f64;
            CellSummary {
                cell: r0.cell,
                params: r0.params.clone(),
                converged_fraction: group.iter().filter(|r| r.converged).count() as f64 / n,
                mean_iterations: group.iter().map(|r| r.iterations as f64).sum::<f64>() / n,
                pruned: Estimate::of(&col(|r| r.pruned_fraction)),
                negative_q: Estimate::of(&col(|r| r.negative_q_fraction)),
                proved_pruned: Estimate::of(&col(|r| r.proved_pruned_fraction)),
                negative_q_vs_pruned: Comparison::of(
                    group
                        .iter()
                        .map(|r| (r.negative_q_fraction, r.pruned_fraction)),
                ),
                proved_vs_pruned: Comparison::of(
                    group
                        .iter()
                        .map(|r| (r.proved_pruned_fraction, r.pruned_fraction)),
                ),
            }
        })
        .collect();
    Summary {
        name: name.map(str::to_owned),
        games: rows.len(),
        confidence: CONFIDENCE,
        cells,
        negative_q_vs_pruned: Comparison::of(
            rows.iter()
                .map(|r| (r.negative_q_fraction, r.pruned_fraction)),
        ),
        proved_vs_pruned: Comparison::of(
            rows.iter()
                .map(|r| (r.proved_pruned_fraction, r.pruned_fraction)),
        ),
    }
}

/// Header of `summary.csv`.
pub const SUMMARY_HEADER: &str = "cell,players,topology,symmetric,gamma,beta,alpha,dominance,\
benefit,solver,tolerance,games,converged_fraction,mean_iterations,pruned_mean,pruned_std,\
pruned_ci_low,pruned_ci_high,negative_q_mean,proved_pruned_mean,pruned_minus_negative_q,\
pruned_minus_proved,proved_bound_holds";

fn opt(v: Option<f64>) -> String {
    v.map_or_else(String::new, num)
}

/// Writes `summary.csv` and `summary.json` into `dir`, atomically.
pub fn write_summary(dir: &Path, summary: &Summary) -> Result<()> {
    crate::io::write_json_atomic(&dir.join("summary.json"), summary)?;
    crate::io::write_atomic(&dir.join("summary.csv"), |w| {
        writeln!(w, "{SUMMARY_HEADER}")?;
        for c in &summary.cells {
            writeln!(
                w,
                "{}",
                [c.cell.to_string()]
                    .into_iter()
                    .chain(c.params.csv_fields())
                    .chain([
                        c.pruned.n.to_string(),
                        num(c.converged_fraction),
                        num(c.mean_iterations),
                        num(c.pruned.mean),
                        opt(c.pruned.std),
                        opt(c.pruned.ci_low),
                        opt(c.pruned.ci_high),
                        num(c.negative_q.mean),
                        num(c.proved_pruned.mean),
                        num(c.negative_q_vs_pruned.mean_difference),
                        num(c.proved_vs_pruned.mean_difference),
                        num(c.proved_vs_pruned.bound_holds),
                    ])
                    .collect::<Vec<_>>()
                    .join(",")
            )?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_value_has_no_interval() {
        let e = Estimate::of(&[0.5]);
        assert_eq!(e.n, 1);
        assert!(e.std.is_none() && e.ci_low.is_none());
    }

    #[test]
    fn t_quantile_matches_tables() {
        // t_{0.975, 4} = 2.7764 and t_{0.975, 1} = 12.7062 (NIST/SEMATECH e-Handbook, 1.3.6.7.2).
        assert!((t_quantile(0.95, 4).unwrap() - 2.7764).abs() < 1e-4);
        assert!((t_quantile(0.95, 1).unwrap() - 12.7062).abs() < 1e-4);
    }

    /// The journal gives rows in completion order; the summary must not depend on it. Summing
    /// these fractions in the two orders gives different doubles (checked below), which is
    /// what made `summary.json` differ in its last digits between identical runs.
    #[test]
    fn summary_does_not_depend_on_row_order() {
        // One large value and small ones below its half-ulp: the order decides whether the
        // small ones are absorbed one by one or first add up.
        let fractions = [1.0, 1e-16, 1e-16, 1e-16, 1e-16, 1e-16, 1e-16, 1e-16];
        let rows: Vec<Row> = fractions
            .iter()
            .enumerate()
            .map(|(k, &f)| Row {
                cell: k % 2,
                replicate: k / 2,
                seed: k as u64,
                params: CellParams {
                    players: 10,
                    topology: "dense:1".into(),
                    symmetric: false,
                    gamma: 0.1,
                    beta: 0.2,
                    alpha: 1.0,
                    dominance: 0.0,
                    benefit: "split:0.3:1".into(),
                    solver: "projection".into(),
                    tolerance: 1e-8,
                },
                iterations: 1,
                nash_gap: 0.0,
                residual: 0.0,
                converged: true,
                termination: "converged".into(),
                pruned_fraction: f,
                proved_pruned_fraction: 0.0,
                negative_q_fraction: 0.0,
                uniqueness: "unknown".into(),
                seconds: 0.0,
            })
            .collect();
        let mut reversed = rows.clone();
        reversed.reverse();
        let forward: f64 = rows
            .iter()
            .map(|r| r.negative_q_fraction - r.pruned_fraction)
            .sum();
        let backward: f64 = reversed
            .iter()
            .map(|r| r.negative_q_fraction - r.pruned_fraction)
            .sum();
        assert_ne!(
            forward.to_bits(),
            backward.to_bits(),
            "pick other fractions"
        );
        assert_eq!(summarise(&rows, None), summarise(&reversed, None));
    }
}
