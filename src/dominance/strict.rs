//! Strict dominance of zero participation (T3).
//!
//! For the quadratic game with `C ≥ 0`: `U_i(x, s_-i) − U_i(0, s_-i) = x (q_i − (Cs)_i) −
//! (a_i/2) x² ≤ x q_i`, so when `q_i < 0` zero beats every `x > 0` against every opponent
//! profile, by at least `−q_i` per unit of participation: `−q_i` is the certificate.
//! `q_i = 0` with `a_i > 0` is strict as well (the curvature alone makes every `x > 0` worse),
//! with margin zero per unit.
//!
//! For a general [`Game`] the same question is decided numerically. Utilities are concave in
//! the own strategy, so zero strictly dominates against `s_-i` as soon as
//! `∂U_i/∂s_i(0, s_-i) < 0`. An analytic upper bound on that derivative over all opponent
//! profiles ([`ZeroMarginalBound`]) proves dominance; sampled opponent profiles (seeded,
//! including the two corners of the box) can only refute it, with the profile as a witness.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::game::{Game, PruningGame, SaturatingGame};

/// A deviation from zero must gain more than this (absolute utility) to refute dominance, so
/// that rounding in a utility evaluation of order one cannot produce a false witness.
pub const REFUTATION_GAIN: f64 = 1e-12;

/// The T3 certificate of one player of the quadratic game.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DominanceMargin {
    /// Player index.
    pub player: usize,
    /// `−q_i ≥ 0`: zero participation beats every `x > 0` by at least `margin · x`
    /// (plus `a_i x²/2`).
    pub margin: f64,
}

/// Players of the quadratic game for which zero participation strictly dominates every
/// positive participation, with their margins (T3; valid because `C ≥ 0` is enforced by
/// [`PruningGame::new`]). Players with `q_i < 0`, and those with `q_i = 0 < a_i`.
pub fn dominated_players(game: &PruningGame) -> Vec<DominanceMargin> {
    let q = game.net_benefit();
    let a = game.self_cost();
    (0..q.len())
        .into_par_iter()
        .filter(|&i| q[i] < 0.0 || (q[i] <= 0.0 && a[i] > 0.0))
        .map(|i| DominanceMargin {
            player: i,
            margin: -q[i],
        })
        .collect()
}

/// Summary of T3 for reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DominanceReport {
    /// Players whose zero participation is strictly dominant.
    pub dominated: Vec<usize>,
    /// The smallest margin `−q_i` among them (how robust the weakest proof is).
    pub min_margin: Option<f64>,
    /// The largest margin.
    pub max_margin: Option<f64>,
}

impl DominanceReport {
    /// The T3 summary of a quadratic game.
    pub fn of(game: &PruningGame) -> Self {
        let margins = dominated_players(game);
        let min_margin = margins.iter().map(|m| m.margin).reduce(f64::min);
        let max_margin = margins.iter().map(|m| m.margin).reduce(f64::max);
        DominanceReport {
            dominated: margins.iter().map(|m| m.player).collect(),
            min_margin,
            max_margin,
        }
    }
}

/// An analytic upper bound on `sup_{s_-i ∈ box} ∂U_i/∂s_i(0, s_-i)`, where a game can give
/// one. A negative bound proves that zero participation strictly dominates (T3).
pub trait ZeroMarginalBound {
    /// The bound for player `i`, or `None` when the game does not know one.
    fn zero_marginal_bound(&self, i: usize) -> Option<f64>;
}

impl ZeroMarginalBound for PruningGame {
    /// `q_i`: the marginal at zero is `q_i − (C s)_i`, largest when opponents play 0.
    fn zero_marginal_bound(&self, i: usize) -> Option<f64> {
        self.net_benefit().get(i).copied()
    }
}

impl ZeroMarginalBound for SaturatingGame {
    /// `v_i κ_i − γ_i`: with `C ≥ 0` the marginal at zero is largest when opponents play 0,
    /// so it is the game's own marginal at the all-zero profile.
    fn zero_marginal_bound(&self, i: usize) -> Option<f64> {
        let n = self.num_players();
        if i >= n {
            return None;
        }
        Some(self.own_gradient(i, 0.0, &vec![0.0; n]))
    }
}

/// How opponents are sampled in [`zero_dominance`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SamplingOptions {
    /// Uniformly random opponent profiles per player, in addition to the two box corners.
    pub samples: usize,
    /// Seed; player `i` uses a stream derived from `(seed, i)`, so results do not depend on
    /// the order in which players are checked.
    pub seed: u64,
}

impl Default for SamplingOptions {
    fn default() -> Self {
        SamplingOptions {
            samples: 64,
            seed: 42,
        }
    }
}

/// Where a proof of dominance came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProofSource {
    /// The game's [`ZeroMarginalBound`].
    AnalyticBound,
}

/// Outcome of the numerical dominance test for one player.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "verdict")]
pub enum DominanceVerdict {
    /// Zero strictly dominates: the marginal at zero is at most `−margin < 0` against every
    /// opponent profile.
    Proved {
        /// `−(upper bound on the marginal at zero)`.
        margin: f64,
        /// What proved it.
        by: ProofSource,
    },
    /// Zero does not dominate: against `witness` (whose entry `i` is the better response)
    /// the player gains `gain` by participating.
    Refuted {
        /// The opponent profile, with player `i`'s better deviation in position `i`.
        witness: Vec<f64>,
        /// `U_i(witness) − U_i(0, witness_-i) > 0`.
        gain: f64,
    },
    /// No proof and no counterexample: every sample had a non-positive marginal at zero.
    Undetermined {
        /// The largest marginal at zero seen among the samples.
        largest_marginal: f64,
        /// Profiles tried.
        samples: usize,
    },
}

/// Decides numerically whether zero participation strictly dominates for player `i` of a
/// general game: an analytic bound first (a proof), then `options.samples` random opponent
/// profiles plus the all-zero and all-upper corners (which can only refute).
pub fn zero_dominance<G: Game + ZeroMarginalBound + ?Sized>(
    game: &G,
    i: usize,
    options: &SamplingOptions,
) -> Result<DominanceVerdict> {
    let n = game.num_players();
    if i >= n {
        return Err(Error::PlayerOutOfRange {
            player: i,
            players: n,
        });
    }
    if let Some(bound) = game.zero_marginal_bound(i) {
        if bound < 0.0 {
            return Ok(DominanceVerdict::Proved {
                margin: -bound,
                by: ProofSource::AnalyticBound,
            });
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    rng.set_stream(i as u64);
    let mut profile = vec![0.0; n];
    let mut largest = f64::NEG_INFINITY;
    let total = options.samples + 2;
    for sample in 0..total {
        for (j, s) in profile.iter_mut().enumerate() {
            *s = match sample {
                0 => 0.0,
                1 => game.upper(j),
                _ => rng.random::<f64>() * game.upper(j),
            };
        }
        profile[i] = 0.0;
        let marginal = game.own_gradient(i, 0.0, &profile);
        largest = largest.max(marginal);
        if marginal > 0.0 {
            let best = game.best_response(i, &profile);
            let gain = game.utility(i, best, &profile) - game.utility(i, 0.0, &profile);
            if gain > REFUTATION_GAIN {
                profile[i] = best;
                return Ok(DominanceVerdict::Refuted {
                    witness: profile,
                    gain,
                });
            }
        }
    }
    Ok(DominanceVerdict::Undetermined {
        largest_marginal: largest,
        samples: total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::game::Competition;
    use nalgebra::{dmatrix, dvector, DVector};

    fn game(b: DVector<f64>, c: nalgebra::DMatrix<f64>) -> PruningGame {
        let n = b.len();
        PruningGame::with_uniform_cost(
            b,
            DVector::from_element(n, 1.0),
            0.1,
            Competition::dense(c).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn margins_are_minus_net_benefit() {
        let g = game(
            dvector![0.0, 0.5, 0.1],
            dmatrix![0.0, 1.0, 0.0; 0.0, 0.0, 0.0; 1.0, 1.0, 0.0],
        );
        let margins = dominated_players(&g);
        // q = (-0.1, 0.4, 0.0): player 0 by margin 0.1, player 2 by curvature (q = 0, a = 1).
        assert_eq!(margins.len(), 2);
        assert_eq!(margins[0].player, 0);
        assert!((margins[0].margin - 0.1).abs() < 1e-15);
        assert_eq!(margins[1].player, 2);
        let report = DominanceReport::of(&g);
        assert_eq!(report.dominated, vec![0, 2]);
        assert!((report.max_margin.unwrap() - 0.1).abs() < 1e-15);
    }

    #[test]
    fn quadratic_bound_proves_and_sampling_refutes() {
        let g = game(dvector![0.0, 0.5], dmatrix![0.0, 0.3; 0.3, 0.0]);
        let proved = zero_dominance(&g, 0, &SamplingOptions::default()).unwrap();
        assert!(
            matches!(proved, DominanceVerdict::Proved { margin, .. } if (margin - 0.1).abs() < 1e-15)
        );
        match zero_dominance(&g, 1, &SamplingOptions::default()).unwrap() {
            DominanceVerdict::Refuted { witness, gain } => {
                assert!(gain > 0.0);
                assert!(witness[1] > 0.0);
            }
            other => panic!("expected a refutation, got {other:?}"),
        }
    }

    /// A game without an analytic bound, for the sampling path.
    struct NoBound(PruningGame);

    impl Game for NoBound {
        fn num_players(&self) -> usize {
            self.0.num_players()
        }
        fn upper(&self, i: usize) -> f64 {
            self.0.upper(i)
        }
        fn utility(&self, i: usize, own: f64, profile: &[f64]) -> f64 {
            self.0.utility(i, own, profile)
        }
        fn own_gradient(&self, i: usize, own: f64, profile: &[f64]) -> f64 {
            self.0.own_gradient(i, own, profile)
        }
    }

    impl ZeroMarginalBound for NoBound {
        fn zero_marginal_bound(&self, _: usize) -> Option<f64> {
            None
        }
    }

    #[test]
    fn without_a_bound_a_dominated_player_is_undetermined() {
        let g = NoBound(game(dvector![0.0, 0.5], dmatrix![0.0, 0.3; 0.3, 0.0]));
        let verdict = zero_dominance(&g, 0, &SamplingOptions::default()).unwrap();
        match verdict {
            DominanceVerdict::Undetermined {
                largest_marginal,
                samples,
            } => {
                // The all-zero corner gives the largest marginal, q_0 = −0.1.
                assert!((largest_marginal + 0.1).abs() < 1e-15);
                assert_eq!(samples, 66);
            }
            other => panic!("expected undetermined, got {other:?}"),
        }
        // Player 1 is refuted by sampling alone (already at the all-zero corner).
        assert!(matches!(
            zero_dominance(&g, 1, &SamplingOptions::default()).unwrap(),
            DominanceVerdict::Refuted { .. }
        ));
    }

    #[test]
    fn saturating_game_bound() {
        // v κ − γ = 0.5 · 1 − 0.6 < 0: dominated; the second player (v κ = 2) is not.
        let g = SaturatingGame::new(
            dvector![0.5, 2.0],
            dvector![1.0, 1.0],
            dvector![0.6, 0.6],
            dvector![1.0, 1.0],
            Competition::None,
        )
        .unwrap();
        assert!(matches!(
            zero_dominance(&g, 0, &SamplingOptions::default()).unwrap(),
            DominanceVerdict::Proved { .. }
        ));
        assert!(matches!(
            zero_dominance(&g, 1, &SamplingOptions::default()).unwrap(),
            DominanceVerdict::Refuted { .. }
        ));
    }

    #[test]
    fn out_of_range_player_is_an_error() {
        let g = game(dvector![0.0, 0.5], dmatrix![0.0, 0.3; 0.3, 0.0]);
        assert!(matches!(
            zero_dominance(&g, 2, &SamplingOptions::default()),
            Err(Error::PlayerOutOfRange {
                player: 2,
                players: 2
            })
        ));
        assert_eq!(g.zero_marginal_bound(5), None);
    }
}
