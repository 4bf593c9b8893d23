//! Iterated elimination bounds (T4).
//!
//! With `C ≥ 0` a player's best response falls as its opponents participate more (strategic
//! substitutes). Starting from `L⁰ = 0`, `U⁰ = u`, the Jacobi sweeps
//! `U^{k+1} = BR(L^k)`, `L^{k+1} = BR(U^k)` give `L^k ↑`, `U^k ↓`, and every Nash equilibrium
//! stays inside `[L^k, U^k]` (proof in `proofs/T4-iterated-elimination.md`). A player with
//! `U_i = 0` is pruned in every equilibrium — without solving the game; one with `L_i > 0`
//! is active in every equilibrium. Each sweep costs two products `C·L`, `C·U`: `O(nnz)` work,
//! row-parallel through rayon.
//!
//! **Soundness in floating point.** Only the sign of `q_i − (C x)_i` decides whether a bound
//! is zero, so the pressures are rounded outward: the upper bound uses
//! `(C L)_i · (1 − PRESSURE_SLACK)`, the lower bound `(C U)_i · (1 + PRESSURE_SLACK)`. Every
//! term of `(C x)_i` is non-negative, so the computed sum is within `n_i · ε` (relative) of
//! the exact one, far inside the slack for any row shorter than 10^5 entries.
//!
//! **Ties (`a_i = 0`).** The utility is then linear in `s_i`; at a zero slope every
//! `s_i ∈ [0, u_i]` is a best response. The upper bound takes the largest element of that
//! set (`u_i`) and the lower bound the smallest (`0`), which keeps both maps monotone and
//! the bracket valid for every selection a solver may make.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::game::PruningGame;

/// Relative outward rounding of competition pressures; see the module docs.
pub const PRESSURE_SLACK: f64 = 1e-10;

/// Options of [`iterated_elimination`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EliminationOptions {
    /// Stop when no bound moves by more than this (absolute) in a sweep.
    pub tolerance: f64,
    /// Largest number of sweeps.
    pub max_sweeps: usize,
    /// Bounds closer than this everywhere count as met (the equilibrium is known to this
    /// accuracy and every equilibrium lies within it).
    pub meet_tolerance: f64,
}

impl Default for EliminationOptions {
    fn default() -> Self {
        EliminationOptions {
            // Strategies are of order one; 1e-12 is a few thousand ulps, below any solver
            // tolerance yet reachable before rounding noise dominates the sweep-to-sweep change.
            tolerance: 1e-12,
            max_sweeps: 10_000,
            // Bounds this close identify the equilibrium at the accuracy of a solver's
            // certificate.
            meet_tolerance: 1e-9,
        }
    }
}

impl EliminationOptions {
    /// Checks that tolerances are finite and non-negative.
    pub fn check(&self) -> Result<()> {
        for (name, value) in [
            ("tolerance", self.tolerance),
            ("meet_tolerance", self.meet_tolerance),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(Error::invalid(
                    name,
                    format!("{value} must be finite and >= 0"),
                ));
            }
        }
        Ok(())
    }
}

/// The bracket `[L, U]` that contains every Nash equilibrium, after the sweeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EliminationBounds {
    /// Lower bounds `L` (non-decreasing over sweeps).
    pub lower: Vec<f64>,
    /// Upper bounds `U` (non-increasing over sweeps).
    pub upper: Vec<f64>,
    /// Sweeps performed.
    pub sweeps: usize,
    /// Whether the last sweep moved no bound by more than the tolerance.
    pub converged: bool,
    /// Largest change of a bound in the last sweep.
    pub last_change: f64,
}

impl EliminationBounds {
    /// `max_i (U_i − L_i)`.
    pub fn gap(&self) -> f64 {
        self.lower
            .par_iter()
            .zip(self.upper.par_iter())
            .map(|(l, u)| u - l)
            .reduce(|| 0.0, f64::max)
    }

    /// Players with `U_i = 0`: zero participation in every equilibrium.
    pub fn pruned(&self) -> Vec<usize> {
        indices_where(&self.upper, |u| u <= 0.0)
    }

    /// Players with `L_i > 0`: positive participation in every equilibrium.
    pub fn active(&self) -> Vec<usize> {
        indices_where(&self.lower, |l| l > 0.0)
    }

    /// Whether `profile` lies in the bracket, up to `slack` per coordinate.
    pub fn contains(&self, profile: &[f64], slack: f64) -> bool {
        profile.len() == self.lower.len()
            && profile
                .iter()
                .zip(self.lower.iter().zip(&self.upper))
                .all(|(&s, (&l, &u))| s >= l - slack && s <= u + slack)
    }

    /// The midpoint `(L + U)/2`: the equilibrium when the bounds have met.
    pub fn midpoint(&self) -> Vec<f64> {
        self.lower
            .iter()
            .zip(&self.upper)
            .map(|(l, u)| 0.5 * (l + u))
            .collect()
    }
}

fn indices_where(values: &[f64], keep: impl Fn(f64) -> bool + Sync) -> Vec<usize> {
    values
        .par_iter()
        .enumerate()
        .filter(|(_, &v)| keep(v))
        .map(|(i, _)| i)
        .collect()
}

/// The largest best response of player `i` to pressure `pressure` (ties resolved upward).
fn best_response_max(game: &PruningGame, i: usize, pressure: f64) -> f64 {
    let slope = game.net_benefit()[i] - pressure;
    let a = game.self_cost()[i];
    let u = game.upper_bounds()[i];
    if a > 0.0 {
        (slope / a).clamp(0.0, u)
    } else if slope >= 0.0 {
        u
    } else {
        0.0
    }
}

/// The smallest best response of player `i` to pressure `pressure` (ties resolved downward).
fn best_response_min(game: &PruningGame, i: usize, pressure: f64) -> f64 {
    let slope = game.net_benefit()[i] - pressure;
    let a = game.self_cost()[i];
    let u = game.upper_bounds()[i];
    if a > 0.0 {
        (slope / a).clamp(0.0, u)
    } else if slope > 0.0 {
        u
    } else {
        0.0
    }
}

/// Runs the T4 sweeps until no bound moves by more than `options.tolerance` or the sweep
/// budget is spent. The bracket is valid after every sweep, converged or not.
pub fn iterated_elimination(
    game: &PruningGame,
    options: &EliminationOptions,
) -> Result<EliminationBounds> {
    options.check()?;
    let n = game.net_benefit().len();
    let mut lower = vec![0.0; n];
    let mut upper: Vec<f64> = game.upper_bounds().iter().copied().collect();
    let mut pressure_lower = vec![0.0; n]; // C · L
    let mut pressure_upper = vec![0.0; n]; // C · U
    let mut bounds = EliminationBounds {
        lower: Vec::new(),
        upper: Vec::new(),
        sweeps: 0,
        converged: false,
        last_change: f64::INFINITY,
    };
    for sweep in 1..=options.max_sweeps {
        game.competition().mul_vec(&lower, &mut pressure_lower);
        game.competition().mul_vec(&upper, &mut pressure_upper);
        let change = upper
            .par_iter_mut()
            .zip(lower.par_iter_mut())
            .zip(pressure_lower.par_iter().zip(pressure_upper.par_iter()))
            .enumerate()
            .map(|(i, ((u, l), (&pl, &pu)))| {
                // Monotone by construction; max/min only guard against rounding.
                let new_u = best_response_max(game, i, pl * (1.0 - PRESSURE_SLACK)).min(*u);
                let new_l = best_response_min(game, i, pu * (1.0 + PRESSURE_SLACK)).max(*l);
                let change = (*u - new_u).max(new_l - *l);
                *u = new_u;
                *l = new_l;
                change
            })
            .reduce(|| 0.0, f64::max);
        bounds.sweeps = sweep;
        bounds.last_change = change;
        if change <= options.tolerance {
            bounds.converged = true;
            break;
        }
    }
    bounds.lower = lower;
    bounds.upper = upper;
    Ok(bounds)
}

/// Summary of the T4 bracket for reports (index lists, no per-player vectors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EliminationReport {
    /// Sweeps performed.
    pub sweeps: usize,
    /// Whether the sweeps reached the tolerance.
    pub converged: bool,
    /// Largest change in the last sweep.
    pub last_change: f64,
    /// `max_i (U_i − L_i)`.
    pub gap: f64,
    /// Whether `gap ≤ meet_tolerance`: the equilibrium is unique up to `gap` and equals the
    /// midpoint of the bracket.
    pub met: bool,
    /// Players with `U_i = 0` (pruned in every equilibrium).
    pub pruned: Vec<usize>,
    /// Players with `L_i > 0` (active in every equilibrium).
    pub active: Vec<usize>,
}

impl EliminationReport {
    /// The summary of `bounds`.
    pub fn of(bounds: &EliminationBounds, options: &EliminationOptions) -> Self {
        let gap = bounds.gap();
        EliminationReport {
            sweeps: bounds.sweeps,
            converged: bounds.converged,
            last_change: bounds.last_change,
            gap,
            met: gap <= options.meet_tolerance,
            pruned: bounds.pruned(),
            active: bounds.active(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::game::Competition;
    use nalgebra::{dmatrix, dvector};

    fn two_player(q: [f64; 2], a: [f64; 2], c: f64) -> PruningGame {
        PruningGame::with_uniform_cost(
            dvector![q[0], q[1]],
            dvector![a[0], a[1]],
            0.0,
            Competition::dense(dmatrix![0.0, c; c, 0.0]).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn hand_checked_two_player_bracket_meets_at_the_equilibrium() {
        // q = (1, 1), a = (2, 2), c = 1: s = (1 − s_other)/2 has the unique NE s = 1/3.
        let game = two_player([1.0, 1.0], [2.0, 2.0], 1.0);
        let bounds = iterated_elimination(&game, &EliminationOptions::default()).unwrap();
        assert!(bounds.converged);
        assert!(bounds.gap() < 1e-9);
        for s in bounds.midpoint() {
            assert!((s - 1.0 / 3.0).abs() < 1e-9);
        }
        assert_eq!(bounds.active(), vec![0, 1]);
        assert!(bounds.pruned().is_empty());
    }

    #[test]
    fn first_sweep_prunes_negative_net_benefit() {
        let game = two_player([-0.5, 1.0], [1.0, 1.0], 0.2);
        let options = EliminationOptions {
            max_sweeps: 1,
            ..Default::default()
        };
        let bounds = iterated_elimination(&game, &options).unwrap();
        assert_eq!(bounds.pruned(), vec![0]);
        assert!((bounds.upper[1] - 1.0).abs() < 1e-15);
        // L¹ = BR(U⁰ = 1): player 1 faces pressure 0.2 from player 0 at its upper bound.
        assert!((bounds.lower[1] - 0.8).abs() < 1e-9);
    }

    #[test]
    fn second_round_elimination_needs_a_sweep_more() {
        // Player 1 has q = 0.5 but player 0 is surely at 1 and pushes 0.6 on it.
        let game = PruningGame::with_uniform_cost(
            dvector![5.0, 0.5],
            dvector![1.0, 1.0],
            0.0,
            Competition::dense(dmatrix![0.0, 0.0; 0.6, 0.0]).unwrap(),
        )
        .unwrap();
        let bounds = iterated_elimination(&game, &EliminationOptions::default()).unwrap();
        assert_eq!(bounds.pruned(), vec![1]);
        assert_eq!(bounds.active(), vec![0]);
    }

    #[test]
    fn zero_self_cost_ties_keep_the_whole_interval() {
        // a = 0 and q exactly balances the pressure at the upper bound: every s_1 is a best
        // response when player 0 plays 1, so the bracket must keep [0, 1] for player 1.
        let game = PruningGame::with_uniform_cost(
            dvector![2.0, 0.5],
            dvector![1.0, 0.0],
            0.0,
            Competition::dense(dmatrix![0.0, 0.0; 0.5, 0.0]).unwrap(),
        )
        .unwrap();
        let bounds = iterated_elimination(&game, &EliminationOptions::default()).unwrap();
        assert!(bounds.lower[1] <= 0.0);
        assert!(bounds.upper[1] >= 1.0);
        assert!(bounds.pruned().is_empty());
        assert!(!bounds.contains(&[1.0, 0.5, 0.0], 0.0));
        assert!(bounds.contains(&[1.0, 0.5], 0.0));
    }

    #[test]
    fn rejects_bad_tolerance() {
        let game = two_player([1.0, 1.0], [1.0, 1.0], 0.0);
        let options = EliminationOptions {
            tolerance: f64::NAN,
            ..Default::default()
        };
        assert!(iterated_elimination(&game, &options).is_err());
    }
}
