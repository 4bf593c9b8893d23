//! TEMPORARY stand-ins for `crate::equilibrium` and `crate::dominance`, which are written on
//! other branches. Deleted when those branches are merged; only `record.rs` uses them.
#![allow(dead_code)]

pub mod equilibrium {
    use serde::{Deserialize, Serialize};

    use crate::error::Result;
    use crate::game::{Certificate, Game, PruningGame};

    /// Which solver runs.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
    #[serde(rename_all = "kebab-case")]
    pub enum SolverKind {
        /// Jacobi best response.
        BestResponse,
        /// Projection.
        Projection,
        /// Extragradient.
        Extragradient,
        /// Newton.
        Newton,
    }

    /// Why a solve stopped.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Termination {
        /// Tolerance reached.
        Converged,
        /// Budget spent.
        MaxIterations,
    }

    /// Solver options.
    #[derive(Debug, Clone, PartialEq)]
    pub struct SolveOptions {
        /// Natural-residual tolerance.
        pub tolerance: f64,
        /// Iteration budget.
        pub max_iterations: usize,
        /// Starting profile.
        pub initial: Option<Vec<f64>>,
    }

    impl Default for SolveOptions {
        fn default() -> Self {
            SolveOptions {
                tolerance: 1e-8,
                max_iterations: 10_000,
                initial: None,
            }
        }
    }

    /// Solver report.
    #[derive(Debug, Clone)]
    pub struct SolveReport {
        /// Solver.
        pub solver: SolverKind,
        /// Iterations.
        pub iterations: usize,
        /// Certificate.
        pub certificate: Certificate,
        /// Converged.
        pub converged: bool,
        /// Termination.
        pub termination: Termination,
        /// Residual per iteration.
        pub residual_history: Vec<f64>,
        /// Wall time.
        pub seconds: f64,
    }

    /// Profile and report.
    #[derive(Debug, Clone)]
    pub struct Solution {
        /// Equilibrium profile.
        pub profile: Vec<f64>,
        /// Report.
        pub report: SolveReport,
    }

    /// Jacobi best response for every kind (stand-in).
    pub fn solve(game: &PruningGame, kind: SolverKind, options: &SolveOptions) -> Result<Solution> {
        let start = std::time::Instant::now();
        let n = game.num_players();
        let mut s = options.initial.clone().unwrap_or_else(|| vec![0.0; n]);
        let mut next = vec![0.0; n];
        let mut history = Vec::new();
        let mut converged = false;
        let mut iterations = 0;
        while iterations < options.max_iterations {
            game.best_responses(&s, &mut next);
            std::mem::swap(&mut s, &mut next);
            iterations += 1;
            let r = crate::game::natural_residual(game, &s);
            history.push(r);
            if r <= options.tolerance {
                converged = true;
                break;
            }
        }
        Ok(Solution {
            report: SolveReport {
                solver: kind,
                iterations,
                certificate: Certificate::of(game, &s),
                converged,
                termination: if converged {
                    Termination::Converged
                } else {
                    Termination::MaxIterations
                },
                residual_history: history,
                seconds: start.elapsed().as_secs_f64(),
            },
            profile: s,
        })
    }
}

pub mod dominance {
    use crate::game::PruningGame;

    fn bounds(game: &PruningGame) -> (Vec<f64>, Vec<f64>) {
        let n = game.net_benefit().len();
        let mut lower = vec![0.0; n];
        let mut upper: Vec<f64> = game.upper_bounds().iter().copied().collect();
        let mut pl = vec![0.0; n];
        let mut pu = vec![0.0; n];
        for _ in 0..10_000 {
            game.competition().mul_vec(&lower, &mut pl);
            game.competition().mul_vec(&upper, &mut pu);
            let mut change: f64 = 0.0;
            for i in 0..n {
                let nu = game
                    .best_response_to_pressure(i, pl[i], upper[i])
                    .min(upper[i]);
                let nl = game
                    .best_response_to_pressure(i, pu[i], lower[i])
                    .max(lower[i]);
                change = change.max(upper[i] - nu).max(nl - lower[i]);
                upper[i] = nu;
                lower[i] = nl;
            }
            if change <= 1e-12 {
                break;
            }
        }
        (lower, upper)
    }

    /// Players with upper bound zero.
    pub fn provably_pruned(game: &PruningGame) -> Vec<usize> {
        let (_, upper) = bounds(game);
        (0..upper.len()).filter(|&i| upper[i] <= 0.0).collect()
    }

    /// Uniqueness verdict as text.
    pub fn uniqueness(game: &PruningGame) -> String {
        let (lower, upper) = bounds(game);
        let gap = lower
            .iter()
            .zip(&upper)
            .map(|(l, u)| u - l)
            .fold(0.0, f64::max);
        if gap <= 1e-9 {
            "unique".into()
        } else {
            "unknown".into()
        }
    }
}
