//! What can be said about a game's equilibria without solving it (T2–T6, docs/mathematics.md).
//!
//! * [`dominated_players`] / [`zero_dominance`] — strict dominance of zero participation
//!   (T3): closed form with margin `−q_i` for the quadratic game, numerical (analytic bound
//!   or sampled refutation) for a general [`Game`](crate::game::Game).
//! * [`iterated_elimination`] — the monotone bracket `[L, U]` of T4, `O(nnz)` per sweep:
//!   players with `U_i = 0` are pruned in every equilibrium.
//! * [`provably_pruned_near`] — the same proofs at about the cost of a solve, given the
//!   solver's profile: a start box from a contraction of best response (T6) and a stopping
//!   rule; what it cannot decide in time it reports as undetermined, never as pruned.
//! * [`uniqueness_and_convergence`] — sufficient conditions for a unique equilibrium (T2) and
//!   the Lipschitz constant, monotonicity modulus, safe step sizes and Jacobi contraction
//!   factor of T6.
//! * [`PotentialReport`] — whether the game is an exact potential game (T5) and `Φ` at a
//!   profile.
//! * [`analyze`] collects all of it in one serialisable [`Analysis`]; [`provably_pruned`]
//!   is the index list the `solve` command records as `dominated`.
//!
//! Everything here relies on `C ≥ 0`, which [`PruningGame::new`] enforces; the proofs are in
//! `proofs/`.

mod elimination;
mod near;
mod operator;
mod strict;
mod uniqueness;

use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use elimination::{
    iterated_elimination, EliminationBounds, EliminationOptions, EliminationReport, PRESSURE_SLACK,
};
pub use near::{provably_pruned_near, NearOptions, NearReport, NearStop};
pub use strict::{
    dominated_players, zero_dominance, DominanceMargin, DominanceReport, DominanceVerdict,
    ProofSource, SamplingOptions, ZeroMarginalBound, REFUTATION_GAIN,
};
pub use uniqueness::{
    uniqueness_and_convergence, ConvergenceConstants, SpectralOptions, Uniqueness,
    UniquenessReport, UniquenessTest,
};

use crate::error::{Error, Result};
use crate::game::{Competition, PruningGame};

/// Potential structure (T5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PotentialReport {
    /// `C = Cᵀ` exactly: `Φ(s) = qᵀs − ½ sᵀMs` is an exact potential.
    pub exact_potential: bool,
    /// `Φ` at the profile the analysis was given (or the midpoint of the T4 bracket); `None`
    /// when the game has no exact potential.
    pub value: Option<f64>,
    /// Which profile `value` was computed at.
    pub at: String,
}

impl PotentialReport {
    /// The T5 report at `profile` (described by `at`).
    pub fn of(game: &PruningGame, profile: &[f64], at: impl Into<String>) -> Self {
        let exact_potential = game.is_symmetric();
        PotentialReport {
            exact_potential,
            value: exact_potential.then(|| game.potential(profile)),
            at: at.into(),
        }
    }
}

/// Options of [`analyze`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AnalysisOptions {
    /// Iterated-elimination options.
    pub elimination: EliminationOptions,
    /// Eigenvalue and power-iteration options.
    pub spectral: SpectralOptions,
    /// Profile at which to evaluate the potential; default the midpoint of the T4 bracket.
    pub profile: Option<Vec<f64>>,
}

/// Everything known about a quadratic game's equilibria before solving it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// Number of players.
    pub players: usize,
    /// `none`, `dense` or `sparse`.
    pub storage: String,
    /// Non-zero competition entries.
    pub competition_entries: usize,
    /// T3: strict dominance of zero participation.
    pub dominance: DominanceReport,
    /// T4: iterated-elimination bracket.
    pub elimination: EliminationReport,
    /// T2: uniqueness.
    pub uniqueness: UniquenessReport,
    /// T5: potential structure.
    pub potential: PotentialReport,
    /// T6: convergence constants.
    pub convergence: ConvergenceConstants,
    /// T3 ∪ T4: players pruned in every equilibrium, sorted.
    pub provably_pruned: Vec<usize>,
    /// Wall-clock seconds of the analysis.
    pub seconds: f64,
}

/// Players with zero participation in every equilibrium, by T3 or T4, sorted.
///
/// Never fails: the default elimination options are valid. This is the `dominated` field of
/// the equilibrium file.
pub fn provably_pruned(game: &PruningGame) -> Vec<usize> {
    let t3 = dominated_players(game).into_iter().map(|m| m.player);
    let t4 = iterated_elimination(game, &EliminationOptions::default())
        .map(|b| b.pruned())
        .unwrap_or_default();
    merge_sorted(t3.collect(), t4)
}

fn merge_sorted(mut a: Vec<usize>, b: Vec<usize>) -> Vec<usize> {
    a.extend(b);
    a.sort_unstable();
    a.dedup();
    a
}

/// Runs every analysis of this module on `game`.
pub fn analyze(game: &PruningGame, options: &AnalysisOptions) -> Result<Analysis> {
    crate::parallel::in_pool(|| analyze_in_pool(game, options))
}

fn analyze_in_pool(game: &PruningGame, options: &AnalysisOptions) -> Result<Analysis> {
    let start = Instant::now();
    let n = game.net_benefit().len();
    options.elimination.check()?;
    if let Some(p) = &options.profile {
        if p.len() != n {
            return Err(Error::LengthMismatch {
                field: "profile".into(),
                expected: n,
                got: p.len(),
            });
        }
        if let Some(index) = p.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                field: "profile".into(),
                index,
                value: p[index],
            });
        }
    }
    let dominance = DominanceReport::of(game);
    let bounds = iterated_elimination(game, &options.elimination)?;
    let elimination = EliminationReport::of(&bounds, &options.elimination);
    let (uniqueness, convergence) = uniqueness_and_convergence(game, &options.spectral);
    let potential = match &options.profile {
        Some(p) => PotentialReport::of(game, p, "given profile"),
        None => PotentialReport::of(game, &bounds.midpoint(), "midpoint of the T4 bracket"),
    };
    let provably_pruned = merge_sorted(dominance.dominated.clone(), elimination.pruned.clone());
    let storage = match game.competition() {
        Competition::None => "none",
        Competition::Dense(_) => "dense",
        Competition::Sparse(_) => "sparse",
    }
    .to_string();
    Ok(Analysis {
        players: n,
        storage,
        competition_entries: game.competition().nnz(),
        dominance,
        elimination,
        uniqueness,
        potential,
        convergence,
        provably_pruned,
        seconds: start.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::{dmatrix, dvector};

    fn small() -> PruningGame {
        PruningGame::with_uniform_cost(
            dvector![1.0, 0.05, 0.5],
            dvector![1.0, 1.0, 1.0],
            0.1,
            Competition::dense(dmatrix![0.0, 0.2, 0.3; 0.2, 0.0, 0.1; 0.3, 0.1, 0.0]).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn analysis_of_a_small_symmetric_game() {
        let g = small();
        let analysis = analyze(&g, &AnalysisOptions::default()).unwrap();
        assert_eq!(analysis.players, 3);
        assert_eq!(analysis.storage, "dense");
        assert_eq!(analysis.competition_entries, 6);
        assert_eq!(analysis.dominance.dominated, vec![1]);
        assert!(analysis.provably_pruned.contains(&1));
        assert!(analysis.potential.exact_potential);
        assert!(analysis.potential.value.is_some());
        assert!(matches!(
            analysis.uniqueness.verdict,
            Uniqueness::Unique { .. }
        ));
        assert!(analysis.elimination.met);
        let json = serde_json::to_string(&analysis).unwrap();
        let back: Analysis = serde_json::from_str(&json).unwrap();
        assert_eq!(back.provably_pruned, analysis.provably_pruned);
        assert_eq!(provably_pruned(&g), analysis.provably_pruned);
    }

    #[test]
    fn potential_value_at_a_given_profile() {
        let g = small();
        let options = AnalysisOptions {
            profile: Some(vec![1.0, 0.0, 0.0]),
            ..Default::default()
        };
        let analysis = analyze(&g, &options).unwrap();
        // Φ(1, 0, 0) = q_0 − a_0/2 = 0.9 − 0.5.
        assert!((analysis.potential.value.unwrap() - 0.4).abs() < 1e-12);
    }

    #[test]
    fn bad_profiles_are_errors() {
        let g = small();
        let short = AnalysisOptions {
            profile: Some(vec![1.0]),
            ..Default::default()
        };
        assert!(matches!(
            analyze(&g, &short),
            Err(Error::LengthMismatch { .. })
        ));
        let nan = AnalysisOptions {
            profile: Some(vec![1.0, f64::NAN, 0.0]),
            ..Default::default()
        };
        assert!(matches!(analyze(&g, &nan), Err(Error::NonFinite { .. })));
    }

    #[test]
    fn non_symmetric_game_has_no_potential_value() {
        let g = PruningGame::with_uniform_cost(
            dvector![1.0, 1.0],
            dvector![1.0, 1.0],
            0.0,
            Competition::dense(dmatrix![0.0, 0.2; 0.0, 0.0]).unwrap(),
        )
        .unwrap();
        let report = PotentialReport::of(&g, &[0.5, 0.5], "x");
        assert!(!report.exact_potential);
        assert_eq!(report.value, None);
    }
}
