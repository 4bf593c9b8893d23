//! The T4 bracket at the cost of a solve: what `solve` records as `dominated`.
//!
//! The sweeps of [`iterated_elimination`](super::iterated_elimination) converge at the rate
//! of the game's conditioning: on a game just above the loss of positive definiteness they
//! need thousands of sweeps, a hundred times the solve. [`provably_pruned_near`] is given the
//! profile a solver returned and uses it twice, never as evidence that a player is pruned:
//!
//! 1. **A start near the limit (T6).** When every `a_i > 0` and a weighted row sum shows that
//!    best response contracts, `ρ̄ = max_i (D⁻¹C w)_i / w_i < 1` for a weight `w > 0` (tried:
//!    `w = 1`, then a few power steps until one contracts), the equilibrium is unique and lies within
//!    `r = ‖ŝ − BR(ŝ)‖_w / (1 − ρ̄)` of the profile `ŝ` (Banach). The box
//!    `[ŝ − r w, ŝ + r w] ∩ [0, u]` is then a bracket of every equilibrium, and the sweeps
//!    start from it instead of from `[0, u]`. Rounding is outward throughout.
//! 2. **A stopping rule.** The players the profile prunes (`ŝ_i ≤ candidate_level`) are the
//!    only ones the sweeps can prove pruned, if `ŝ` is near an equilibrium. The sweeps stop
//!    once every such candidate is proved pruned, or when no candidate has been proved in half
//!    as many rounds as it took to prove the last one (and at least `patience`), or when the
//!    round budget (`max_sweeps`, 32 by default: about the cost of a solve) is spent;
//!    candidates left unproved are reported as `undetermined`, not as dominated.
//!
//! What is claimed is the same as for the sweeps from `[0, u]`: a player in `dominated` has
//! `U_i = 0` in a bracket that contains every equilibrium, and the exact bracket (the limit of
//! the sweeps from `[0, u]`) has `U_i = 0` too — under contraction that limit is the unique
//! equilibrium, which the start box contains. The proof is in
//! `proofs/T4-iterated-elimination.md`.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::elimination::{best_response_max, best_response_min, Bracket, Outcome};
use super::strict::dominated_players;
use super::PRESSURE_SLACK;
use crate::error::{Error, Result};
use crate::game::PruningGame;

/// Relative outward rounding of the contraction factor, the residual and the radius: a few
/// thousand ulps, far above the rounding of any of those sums.
const ROUNDING_SLACK: f64 = 1e-12;

/// Rounds in `f64` after the single-precision rounds of a dense game.
const FINAL_ROUNDS: usize = 2;

/// Options of [`provably_pruned_near`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NearOptions {
    /// Players with `ŝ_i` at most this are candidates for a proof.
    pub candidate_level: f64,
    /// Stop when no bound moves by more than this in a round.
    pub tolerance: f64,
    /// Largest number of rounds.
    pub max_sweeps: usize,
    /// Fewest rounds without a newly proved candidate before giving up on the rest.
    pub patience: usize,
    /// Power steps tried to find a weight `w` with `ρ̄ < 1`.
    pub power_steps: usize,
}

impl Default for NearOptions {
    fn default() -> Self {
        NearOptions {
            candidate_level: 0.0,
            tolerance: 1e-12,
            // A budget of 64 products with `C`, of the order of what a solve of a hard game
            // spends: on ill-conditioned rings at 10^5 players the rounds past 32 still prove a
            // few in ten thousand candidates, at up to four times the cost of the solve.
            max_sweeps: 32,
            // Proofs arrive in bursts a few rounds apart on hard games; sixteen rounds of
            // nothing after a quick start is a plateau, not a pause.
            patience: 16,
            power_steps: 6,
        }
    }
}

impl NearOptions {
    /// Checks that the levels are finite and non-negative.
    pub fn check(&self) -> Result<()> {
        for (name, value) in [
            ("candidate_level", self.candidate_level),
            ("tolerance", self.tolerance),
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

/// Why the sweeps of [`provably_pruned_near`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NearStop {
    /// Every candidate is proved pruned.
    Decided,
    /// No bound moved by more than the tolerance: the bracket is (numerically) its limit.
    Converged,
    /// No candidate was proved for `max(patience, K / 2)` rounds after the last proof at
    /// round `K`.
    Plateau,
    /// The round budget ran out.
    Budget,
}

/// What [`provably_pruned_near`] proved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NearReport {
    /// Players pruned in every equilibrium (T3, or `U_i = 0` in the bracket), sorted.
    pub dominated: Vec<usize>,
    /// Candidates (`ŝ_i ≤ candidate_level`) not proved pruned when the sweeps stopped, sorted.
    pub undetermined: Vec<usize>,
    /// Rounds of the bracket sweeps.
    pub sweeps: usize,
    /// Why they stopped.
    pub stop: NearStop,
    /// The contraction factor `ρ̄ < 1` the start box came from; `None` when the sweeps
    /// started from `[0, u]`.
    pub contraction: Option<f64>,
    /// Radius `r` of the start box (in the weighted norm), when there was one.
    pub radius: Option<f64>,
}

/// Players pruned in every equilibrium, proved from the T4 bracket at about the cost of a
/// solve, given a solver's `profile` (see the module docs). Never claims a player that the
/// limit of the sweeps from `[0, u]` does not prune.
pub fn provably_pruned_near(
    game: &PruningGame,
    profile: &[f64],
    options: &NearOptions,
) -> Result<NearReport> {
    crate::parallel::in_pool(|| prove_near(game, profile, options))
}

fn prove_near(game: &PruningGame, profile: &[f64], options: &NearOptions) -> Result<NearReport> {
    options.check()?;
    let n = game.net_benefit().len();
    if profile.len() != n {
        return Err(Error::LengthMismatch {
            field: "profile".into(),
            expected: n,
            got: profile.len(),
        });
    }
    if let Some(index) = profile.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFinite {
            field: "profile".into(),
            index,
            value: profile[index],
        });
    }
    let candidate: Vec<bool> = profile
        .par_iter()
        .map(|&s| s <= options.candidate_level)
        .collect();
    let candidates = candidate.iter().filter(|&&c| c).count();
    let start = contraction_start(game, profile, options.power_steps);
    let mut bracket = match &start {
        Some(box_) => Bracket::new(game, box_.lower.clone(), box_.upper.clone()),
        None => Bracket::top(game),
    };
    let mut proved = 0usize;
    let mut last_proof = 0usize;
    let mut stop = NearStop::Budget;
    let single = bracket.start_single_precision();
    let mut outcome: Outcome = bracket.run(options.tolerance, options.max_sweeps, |round| {
        let new = round.zeroed.iter().filter(|&&i| candidate[i]).count();
        if new > 0 {
            proved += new;
            last_proof = round.sweeps;
        }
        if proved >= candidates {
            stop = NearStop::Decided;
            return true;
        }
        if round.sweeps - last_proof >= options.patience.max(last_proof / 2) {
            stop = NearStop::Plateau;
            return true;
        }
        false
    });
    if outcome.converged {
        stop = NearStop::Converged;
    }
    if single && stop != NearStop::Decided {
        // The single-precision bracket is sound but a little looser; rounds in f64 from it
        // prove the candidates whose margins were within the wider rounding.
        bracket.end_single_precision();
        let done = outcome.sweeps;
        let last = bracket.run(options.tolerance, FINAL_ROUNDS, |round| {
            proved += round.zeroed.iter().filter(|&&i| candidate[i]).count();
            proved >= candidates
        });
        if proved >= candidates {
            stop = NearStop::Decided;
        } else if last.converged {
            stop = NearStop::Converged;
        }
        outcome = Outcome {
            sweeps: done + last.sweeps,
            ..last
        };
    }
    let bounds = bracket.into_bounds(outcome);
    let t3 = dominated_players(game);
    let mut marked: Vec<bool> = bounds.upper.par_iter().map(|&u| u <= 0.0).collect();
    for m in t3 {
        marked[m.player] = true;
    }
    let dominated = indices_where(&marked, |i| marked[i]);
    let undetermined = indices_where(&marked, |i| candidate[i] && !marked[i]);
    Ok(NearReport {
        dominated,
        undetermined,
        sweeps: outcome.sweeps,
        stop,
        contraction: start.as_ref().map(|b| b.contraction),
        radius: start.as_ref().map(|b| b.radius),
    })
}

/// The indices `i` of `0..values.len()` with `keep(i)`, in increasing order.
fn indices_where<T: Sync>(values: &[T], keep: impl Fn(usize) -> bool + Sync) -> Vec<usize> {
    (0..values.len())
        .into_par_iter()
        .filter(|&i| keep(i))
        .collect()
}

/// A bracket of every equilibrium around a profile, from a contraction of best response.
struct StartBox {
    lower: Vec<f64>,
    upper: Vec<f64>,
    contraction: f64,
    radius: f64,
}

/// The start box of step 1 of the module docs, or `None` when no contraction is shown.
fn contraction_start(game: &PruningGame, profile: &[f64], power_steps: usize) -> Option<StartBox> {
    let a = game.self_cost().as_slice();
    if a.iter().any(|&v| v <= 0.0) {
        return None;
    }
    let (contraction, weight) = contraction_weight(game, power_steps)?;
    let n = a.len();
    let u = game.upper_bounds().as_slice();
    // ‖ŝ − BR(ŝ)‖_w with the best response bracketed from outward-rounded pressures, and the
    // rounding of the subtraction and the division (a relative 2^-52 each) added on.
    let mut pressure = vec![0.0; n];
    game.competition().mul_vec(profile, &mut pressure);
    let residual = (0..n)
        .into_par_iter()
        .map(|i| {
            let hi = best_response_max(game, i, pressure[i] * (1.0 - PRESSURE_SLACK));
            let lo = best_response_min(game, i, pressure[i] * (1.0 + PRESSURE_SLACK));
            let s = profile[i];
            let rounding = 4.0 * f64::EPSILON * hi.abs().max(lo.abs()) + f64::MIN_POSITIVE;
            ((s - lo).max(hi - s).max(0.0) + rounding) / weight[i]
        })
        .reduce(|| 0.0, f64::max);
    let radius = residual / (1.0 - contraction) * (1.0 + ROUNDING_SLACK);
    if !radius.is_finite() {
        return None;
    }
    let (lower, upper): (Vec<f64>, Vec<f64>) = (0..n)
        .into_par_iter()
        .map(|i| {
            let reach = radius * weight[i] * (1.0 + ROUNDING_SLACK);
            let s = profile[i];
            let margin = ROUNDING_SLACK * (s.abs() + reach);
            (
                (s - reach - margin).max(0.0),
                (s + reach + margin).min(u[i]),
            )
        })
        .unzip();
    Some(StartBox {
        lower,
        upper,
        contraction,
        radius,
    })
}

/// The first `(ρ̄, w)` with `ρ̄ = max_i (D⁻¹C w)_i / w_i < 1` among `w = 1` and up to
/// `power_steps` shifted power steps `w ← (w + D⁻¹C w)/max`, rounded outward; `None` if none
/// is below 1.
fn contraction_weight(game: &PruningGame, power_steps: usize) -> Option<(f64, Vec<f64>)> {
    let a = game.self_cost().as_slice();
    let n = a.len();
    // Any w > 0 gives a valid bound; the floor keeps w_i away from 0, where the weighted
    // residual ‖·‖_w would blow up.
    const FLOOR: f64 = 1e-6;
    let mut w = vec![1.0; n];
    let mut y = vec![0.0; n];
    let mut best: Option<(f64, Vec<f64>)> = None;
    for step in 0..=power_steps {
        game.competition().mul_vec(&w, &mut y);
        let (smallest, largest) = y
            .par_iter_mut()
            .zip(w.par_iter())
            .zip(a.par_iter())
            .map(|((yi, &wi), &ai)| {
                *yi /= ai;
                let ratio = *yi / wi;
                (ratio, ratio)
            })
            .reduce(|| (f64::INFINITY, 0.0), |x, y| (x.0.min(y.0), x.1.max(y.1)));
        let ratio = largest * (1.0 + PRESSURE_SLACK) * (1.0 + ROUNDING_SLACK);
        if ratio < 1.0 {
            // Any contraction will do: the radius scales with 1/(1 − ρ̄), and the rounds
            // after the start shrink the box at the true rate anyway.
            best = Some((ratio, w));
            break;
        }
        // Collatz–Wielandt: for D⁻¹C ≥ 0 and w > 0, min_i (D⁻¹C w)_i / w_i ≤ ρ(D⁻¹C) ≤ the
        // max ratio of every w > 0. A min ratio at 1 or above (rounded down) shows that no
        // weight contracts, so the remaining power steps (a product each) are skipped.
        if step == power_steps || smallest * (1.0 - PRESSURE_SLACK) * (1.0 - ROUNDING_SLACK) >= 1.0
        {
            break;
        }
        let scale = w
            .par_iter()
            .zip(y.par_iter())
            .map(|(wi, yi)| wi + yi)
            .reduce(|| 0.0, f64::max);
        if !(scale.is_finite() && scale > 0.0) {
            break;
        }
        w.par_iter_mut()
            .zip(y.par_iter())
            .for_each(|(wi, &yi)| *wi = ((*wi + yi) / scale).max(FLOOR));
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dominance::{iterated_elimination, EliminationOptions};
    use crate::equilibrium::{solve, SolveOptions, SolverKind};
    use crate::game::{generate, GeneratorConfig, Topology};

    fn ring(players: usize, dominance: f64, self_cost: f64) -> PruningGame {
        generate(&GeneratorConfig {
            players,
            seed: 3,
            topology: Topology::Nearest { k: 8 },
            symmetric: true,
            diagonal_dominance: dominance,
            self_cost,
            ..GeneratorConfig::default()
        })
        .unwrap()
    }

    fn solved(game: &PruningGame) -> Vec<f64> {
        let options = SolveOptions {
            tolerance: 1e-12,
            ..SolveOptions::default()
        };
        solve(game, SolverKind::Newton, &options).unwrap().profile
    }

    #[test]
    fn contracting_game_starts_near_the_equilibrium_and_decides_quickly() {
        // δ = 1.02 and no base cost: ρ(D⁻¹C) ≤ 1/1.02, slow sweeps from [0, u].
        let game = ring(2000, 1.02, 0.0);
        let s = solved(&game);
        let near = provably_pruned_near(&game, &s, &NearOptions::default()).unwrap();
        let rho = near.contraction.expect("row sums show a contraction");
        assert!(rho < 1.0 / 1.02 + 1e-6);
        assert!(near.radius.unwrap() < 1e-6);
        let exact = iterated_elimination(&game, &EliminationOptions::default()).unwrap();
        assert_eq!(near.stop, NearStop::Decided);
        assert!(
            near.sweeps * 5 < exact.sweeps,
            "{} vs {}",
            near.sweeps,
            exact.sweeps
        );
        assert_eq!(near.dominated, exact.pruned());
        assert!(near.undetermined.is_empty());
    }

    #[test]
    fn non_contracting_game_sweeps_from_the_box_and_reports_the_rest() {
        // δ = 0.47, no base cost: ρ(D⁻¹C) ≈ 2, the bracket does not meet.
        let game = ring(2000, 0.47, 0.0);
        let s = solved(&game);
        let near = provably_pruned_near(&game, &s, &NearOptions::default()).unwrap();
        assert_eq!(near.contraction, None);
        let exact = iterated_elimination(&game, &EliminationOptions::default()).unwrap();
        let exact_pruned = exact.pruned();
        for i in &near.dominated {
            assert!(exact_pruned.binary_search(i).is_ok());
        }
        for i in &near.undetermined {
            assert!(s[*i] <= 0.0);
            assert!(near.dominated.binary_search(i).is_err());
        }
        assert_eq!(
            near.dominated.len() + near.undetermined.len(),
            s.iter().filter(|&&v| v == 0.0).count()
        );
    }

    fn dense(players: usize, dominance: f64, self_cost: f64) -> PruningGame {
        generate(&GeneratorConfig {
            players,
            seed: 5,
            topology: Topology::Dense { density: 1.0 },
            symmetric: true,
            diagonal_dominance: dominance,
            self_cost,
            ..GeneratorConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn dense_games_sweep_in_single_precision_and_claim_only_true_eliminations() {
        // Large enough for the f32 copy: the proofs must stay sound under its wider rounding.
        let players = Bracket::MIN_SINGLE_PLAYERS;
        let game = dense(players, 1.5, 1.0);
        assert!(Bracket::top(&game).start_single_precision());
        let s = solved(&game);
        let near = provably_pruned_near(&game, &s, &NearOptions::default()).unwrap();
        let exact = iterated_elimination(&game, &EliminationOptions::default()).unwrap();
        assert!(exact.converged);
        let exact_pruned = exact.pruned();
        assert!(!near.dominated.is_empty());
        assert!(near
            .dominated
            .iter()
            .all(|i| exact_pruned.binary_search(i).is_ok()));
        // Just above the loss of positive definiteness the equilibrium is still unique (M is
        // positive definite), and every player proved pruned is at 0 in it.
        let ill = dense(players, 0.47, 0.0);
        let s = solved(&ill);
        let near = provably_pruned_near(&ill, &s, &NearOptions::default()).unwrap();
        assert_eq!(near.contraction, None);
        assert!(
            near.dominated.len() > players / 10,
            "{}",
            near.dominated.len()
        );
        assert!(near.dominated.iter().all(|&i| s[i] <= 0.0));
    }

    #[test]
    fn a_profile_far_from_equilibrium_proves_nothing_wrong() {
        // Everyone at 0 "prunes" every player; only the true eliminations may be claimed.
        let game = ring(500, 1.5, 1.0);
        let zeros = vec![0.0; 500];
        let near = provably_pruned_near(&game, &zeros, &NearOptions::default()).unwrap();
        let exact = iterated_elimination(&game, &EliminationOptions::default()).unwrap();
        assert_eq!(near.dominated, exact.pruned());
        assert_eq!(near.undetermined.len(), 500 - near.dominated.len());
    }

    #[test]
    fn bad_profiles_are_errors() {
        let game = ring(50, 1.5, 1.0);
        assert!(matches!(
            provably_pruned_near(&game, &[0.0; 3], &NearOptions::default()),
            Err(Error::LengthMismatch { .. })
        ));
        let mut s = vec![0.0; 50];
        s[7] = f64::NAN;
        assert!(matches!(
            provably_pruned_near(&game, &s, &NearOptions::default()),
            Err(Error::NonFinite { index: 7, .. })
        ));
        let options = NearOptions {
            candidate_level: -1.0,
            ..NearOptions::default()
        };
        assert!(provably_pruned_near(&game, &[0.0; 50], &options).is_err());
    }
}
