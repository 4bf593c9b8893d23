//! Property tests of the theorems T1–T8 of docs/mathematics.md (proofs in `proofs/`).
//!
//! Every property runs on 256 generated games (seeded through proptest, so failures shrink
//! and are replayed from `tests/theorems.proptest-regressions`). Each theorem also has a
//! failing-hypothesis case: a game outside the theorem's hypotheses where the conclusion
//! really fails, so that the checks are not vacuous.
//!
//! Equilibria come from the crate's solvers (every [`SolverKind`]) and, for games of at most
//! [`ENUMERATION_LIMIT`] players, from an exhaustive enumeration of active sets written here
//! as an independent reference.

mod common;

use nalgebra::{DMatrix, DVector};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use pruning_game::dominance::{
    analyze, dominated_players, iterated_elimination, provably_pruned_near,
    uniqueness_and_convergence, zero_dominance, AnalysisOptions, DominanceVerdict,
    EliminationBounds, EliminationOptions, NearOptions, SamplingOptions, SpectralOptions,
    Uniqueness, ZeroMarginalBound,
};
use pruning_game::equilibrium::{solve, SolveOptions, SolverKind};
use pruning_game::game::{
    generate, nash_gap, natural_residual, Competition, Game, GeneratorConfig, PruningGame, Topology,
};

/// Natural-residual tolerance the solvers are asked for.
const SOLVE_TOLERANCE: f64 = 1e-10;
/// A solver output counts as an equilibrium when its Nash gap and residual are below this:
/// two orders above the requested tolerance, room for the certificate's own rounding.
const CERTIFIED: f64 = 1e-8;
/// Games up to this size are also solved by enumerating all `3^N` active sets.
const ENUMERATION_LIMIT: usize = 7;
/// Feasibility slack of the enumeration's sign checks (linear solves of size ≤ 7 with
/// entries of order one lose a few ulps times the condition number).
const ENUMERATION_SLACK: f64 = 1e-9;

// ---------------------------------------------------------------------------------------
// Strategies.

/// Generator configurations with the sizes and knobs of a property, fixing a symmetric ring
/// to an even number of neighbours (the generator requires it).
fn configs(
    sizes: std::ops::RangeInclusive<usize>,
    dominance: std::ops::Range<f64>,
    min_self_cost: f64,
    symmetric: Option<bool>,
) -> impl Strategy<Value = GeneratorConfig> {
    common::config(sizes, dominance).prop_map(move |mut c| {
        c.self_cost = c.self_cost.max(min_self_cost);
        if let Some(s) = symmetric {
            c.symmetric = s;
        }
        if let (Topology::Nearest { k }, true) = (&mut c.topology, c.symmetric) {
            *k -= *k % 2;
        }
        c
    })
}

fn games(
    sizes: std::ops::RangeInclusive<usize>,
    dominance: std::ops::Range<f64>,
    min_self_cost: f64,
    symmetric: Option<bool>,
) -> impl Strategy<Value = PruningGame> {
    configs(sizes, dominance, min_self_cost, symmetric)
        .prop_map(|c| generate(&c).expect("generated configurations are valid"))
}

/// Dense games (any density) of the given sizes, everything else as in [`games`].
fn dense_games(
    sizes: std::ops::RangeInclusive<usize>,
    dominance: std::ops::Range<f64>,
) -> impl Strategy<Value = PruningGame> {
    (configs(sizes, dominance, 0.05, None), 0.2..=1.0f64).prop_map(|(mut c, density)| {
        c.topology = Topology::Dense { density };
        generate(&c).expect("generated configurations are valid")
    })
}

/// The T4 bracket swept until no bound moves at all, or for `max_sweeps` rounds: the
/// reference the budgeted fast paths are checked against.
fn exact_bracket(game: &PruningGame, max_sweeps: usize) -> EliminationBounds {
    let options = EliminationOptions {
        tolerance: 0.0,
        max_sweeps,
        ..EliminationOptions::default()
    };
    iterated_elimination(game, &options).unwrap()
}

/// A game together with a starting profile (fractions of the upper bounds).
fn game_and_start(
    game: impl Strategy<Value = PruningGame>,
) -> impl Strategy<Value = (PruningGame, Vec<f64>)> {
    game.prop_flat_map(|g| {
        let n = g.num_players();
        (Just(g), common::profile_for(n))
    })
}

thread_local! {
    /// A one-thread rayon pool per test thread.
    static POOL: rayon::ThreadPool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a one-thread pool can always be built");
}

/// Runs a property's body inside a one-thread rayon pool. The games here have at most 30
/// players: handing every small product from a test thread to rayon's global pool and
/// waiting for it costs far more (in futex wake-ups) than the product itself, while inside a
/// pool the crate's parallel loops run inline. The harness already runs properties in
/// parallel.
fn in_pool<R: Send>(body: impl FnOnce() -> R + Send) -> R {
    POOL.with(|pool| pool.install(body))
}

fn scaled(game: &PruningGame, fractions: &[f64]) -> Vec<f64> {
    fractions
        .iter()
        .enumerate()
        .map(|(i, f)| f * game.upper(i))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Equilibria.

/// Every solver's output, from `initial` (or the solvers' default start).
fn solver_outputs(
    game: &PruningGame,
    initial: Option<Vec<f64>>,
) -> Vec<(SolverKind, Vec<f64>, bool)> {
    let budget = iteration_budget(game);
    SolverKind::ALL
        .iter()
        .map(|&kind| {
            let options = SolveOptions {
                tolerance: SOLVE_TOLERANCE,
                max_iterations: budget,
                initial: initial.clone(),
                record_history: false,
                ..SolveOptions::default()
            };
            let solution = solve(game, kind, &options).expect("valid options and start");
            (kind, solution.profile, solution.report.converged)
        })
        .collect()
}

/// 5 000 iterations, or what T6's linear rate needs where it is slowest: projected gradient
/// play with the safe step `τ = μ/L²` contracts by `√(1 − μ²/L²)` per step, so reaching
/// `SOLVE_TOLERANCE` from an O(1) residual takes about `2 (L/μ)² ln(1/tol)` steps. With a
/// fixed budget, strongly monotone games with a small `μ/L` would count as non-convergence
/// although every solver converges as T6 says (capped at 2·10^6 steps for N ≤ 30).
fn iteration_budget(game: &PruningGame) -> usize {
    let constants = analysis(game).convergence;
    match constants.strong_monotonicity {
        Some(mu) if mu > 0.0 => {
            let ratio = constants.lipschitz_upper / mu;
            let needed = 2.0 * ratio * ratio * (1.0 / SOLVE_TOLERANCE).ln();
            (needed.ceil() as usize).clamp(5_000, 2_000_000)
        }
        _ => 5_000,
    }
}

/// Two identical players with net benefit `q`, self cost `a` and symmetric competition `c`:
/// with `q < a < c` the symmetric part of `M` is indefinite and the game has three equilibria.
fn two_competing_players(q: f64, a: f64, c: f64) -> PruningGame {
    PruningGame::with_uniform_cost(
        DVector::from_element(2, q),
        DVector::from_element(2, a),
        0.0,
        Competition::dense(DMatrix::from_row_slice(2, 2, &[0.0, c, c, 0.0])).unwrap(),
    )
    .unwrap()
}

fn certified(game: &PruningGame, profile: &[f64]) -> bool {
    nash_gap(game, profile) <= CERTIFIED && natural_residual(game, profile) <= CERTIFIED
}

/// Every equilibrium whose active set gives a non-singular linear system, by enumerating
/// the `3^N` assignments of each player to {0, interior, upper}. For a game with `a > 0` in
/// general position this is every equilibrium.
fn enumerate_equilibria(game: &PruningGame) -> Vec<Vec<f64>> {
    let n = game.num_players();
    assert!(n <= ENUMERATION_LIMIT);
    let q = game.net_benefit();
    let u = game.upper_bounds();
    let m = {
        let mut m = game.competition().to_dense(n);
        for i in 0..n {
            m[(i, i)] = game.self_cost()[i];
        }
        m
    };
    let mut found: Vec<Vec<f64>> = Vec::new();
    let mut state = vec![0u8; n];
    for code in 0..3usize.pow(n as u32) {
        let mut c = code;
        for s in state.iter_mut() {
            *s = (c % 3) as u8;
            c /= 3;
        }
        let interior: Vec<usize> = (0..n).filter(|&i| state[i] == 1).collect();
        let mut s = DVector::from_fn(n, |i, _| if state[i] == 2 { u[i] } else { 0.0 });
        if !interior.is_empty() {
            let k = interior.len();
            let sub = DMatrix::from_fn(k, k, |r, c| m[(interior[r], interior[c])]);
            let fixed = &m * &s;
            let rhs = DVector::from_fn(k, |r, _| q[interior[r]] - fixed[interior[r]]);
            let Some(x) = sub.lu().solve(&rhs) else {
                continue;
            };
            if x.iter().any(|v| !v.is_finite()) {
                continue;
            }
            for (r, &i) in interior.iter().enumerate() {
                s[i] = x[r];
            }
        }
        let f = &m * &s - q;
        let feasible = (0..n).all(|i| match state[i] {
            0 => f[i] >= -ENUMERATION_SLACK,
            1 => s[i] >= -ENUMERATION_SLACK && s[i] <= u[i] + ENUMERATION_SLACK,
            _ => f[i] <= ENUMERATION_SLACK,
        });
        if !feasible {
            continue;
        }
        let profile: Vec<f64> = (0..n).map(|i| s[i].clamp(0.0, u[i])).collect();
        if !certified(game, &profile) {
            continue;
        }
        if !found.iter().any(|p| max_distance(p, &profile) <= 1e-9) {
            found.push(profile);
        }
    }
    found
}

fn max_distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn distance2(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt()
}

/// `Π(s − τ F(s))`.
fn projection_step(game: &PruningGame, s: &[f64], tau: f64) -> Vec<f64> {
    let mut f = vec![0.0; s.len()];
    game.pseudo_gradient(s, &mut f);
    s.iter()
        .zip(&f)
        .enumerate()
        .map(|(i, (x, g))| (x - tau * g).clamp(0.0, game.upper(i)))
        .collect()
}

/// One extragradient step `y = Π(s − τF(s))`, `s ← Π(s − τF(y))`.
fn extragradient_step(game: &PruningGame, s: &[f64], tau: f64) -> Vec<f64> {
    let y = projection_step(game, s, tau);
    let mut f = vec![0.0; s.len()];
    game.pseudo_gradient(&y, &mut f);
    s.iter()
        .zip(&f)
        .enumerate()
        .map(|(i, (x, g))| (x - tau * g).clamp(0.0, game.upper(i)))
        .collect()
}

fn analysis(game: &PruningGame) -> pruning_game::dominance::Analysis {
    analyze(game, &AnalysisOptions::default()).expect("default options are valid")
}

// ---------------------------------------------------------------------------------------
// T1 existence.

/// `U_1 = (s_1 − s_2)²` (convex in the own strategy: player 1 runs away), `U_2 = −(s_2 − s_1)²`
/// (player 2 follows). Outside T1's hypotheses; it has no pure equilibrium.
struct Chase;

impl Game for Chase {
    fn num_players(&self) -> usize {
        2
    }
    fn upper(&self, _: usize) -> f64 {
        1.0
    }
    fn utility(&self, i: usize, own: f64, profile: &[f64]) -> f64 {
        let d = own - profile[1 - i];
        if i == 0 {
            d * d
        } else {
            -d * d
        }
    }
    fn own_gradient(&self, i: usize, own: f64, profile: &[f64]) -> f64 {
        let d = own - profile[1 - i];
        if i == 0 {
            2.0 * d
        } else {
            -2.0 * d
        }
    }
    fn best_response(&self, i: usize, profile: &[f64]) -> f64 {
        if i == 1 {
            profile[0]
        } else if profile[1] < 0.5 {
            1.0
        } else {
            0.0
        }
    }
}

// ---------------------------------------------------------------------------------------
// T3 failing hypothesis: negative competition (not expressible as a `PruningGame`).

/// Two players, `U_i = q_i s_i − s_i²/2 − c s_i s_j` with `c < 0` (complements).
struct Complements {
    q: [f64; 2],
    c: f64,
}

impl Game for Complements {
    fn num_players(&self) -> usize {
        2
    }
    fn upper(&self, _: usize) -> f64 {
        1.0
    }
    fn utility(&self, i: usize, own: f64, profile: &[f64]) -> f64 {
        own * (self.q[i] - self.c * profile[1 - i]) - 0.5 * own * own
    }
    fn own_gradient(&self, i: usize, own: f64, profile: &[f64]) -> f64 {
        self.q[i] - self.c * profile[1 - i] - own
    }
    fn best_response(&self, i: usize, profile: &[f64]) -> f64 {
        (self.q[i] - self.c * profile[1 - i]).clamp(0.0, 1.0)
    }
}

impl ZeroMarginalBound for Complements {
    /// No bound: with `c < 0` the pressure can be negative, so `q_i` bounds nothing.
    fn zero_marginal_bound(&self, _: usize) -> Option<f64> {
        None
    }
}

// ---------------------------------------------------------------------------------------
// T8: a gated linear unit layer and its loss.

/// A layer of `N` units with non-negative output vectors `w_i ∈ R^d` (columns of `w`),
/// gates `s`, prediction `Σ s_i w_i` and loss `ℒ(s) = ½‖y − W s‖²`.
#[derive(Debug, Clone)]
struct GatedLayer {
    w: DMatrix<f64>,
    y: DVector<f64>,
}

impl GatedLayer {
    /// `∂ℒ/∂s_i = −w_iᵀ (y − W s)`, from the forward residual (not from the game).
    fn gate_gradient(&self, s: &[f64]) -> DVector<f64> {
        let residual = &self.y - &self.w * DVector::from_column_slice(s);
        -(self.w.transpose() * residual)
    }

    /// The pruning game whose utilities are `−ℒ(s) − γ s_i − (α/2)‖w_i‖² s_i² − β s_i Σ R_ij s_j`
    /// up to terms without `s_i`: `b = Wᵀy`, `a_i = (1 + α)‖w_i‖²`, `C = offdiag(WᵀW) + βR`.
    fn game(&self, alpha: f64, gamma: f64, beta: f64, r: &DMatrix<f64>) -> PruningGame {
        let n = self.w.ncols();
        let gram = self.w.transpose() * &self.w;
        let b = self.w.transpose() * &self.y;
        let a = DVector::from_fn(n, |i, _| (1.0 + alpha) * gram[(i, i)]);
        let c = DMatrix::from_fn(n, n, |i, j| {
            if i == j {
                0.0
            } else {
                gram[(i, j)] + beta * r[(i, j)]
            }
        });
        PruningGame::with_uniform_cost(b, a, gamma, Competition::dense(c).expect("C ≥ 0"))
            .expect("valid game")
    }
}

/// |cosine| similarity of the columns of `w` (zero diagonal).
fn redundancy(w: &DMatrix<f64>) -> DMatrix<f64> {
    let n = w.ncols();
    DMatrix::from_fn(n, n, |i, j| {
        if i == j {
            return 0.0;
        }
        let (a, b) = (w.column(i), w.column(j));
        let denominator = a.norm() * b.norm();
        if denominator > 0.0 {
            (a.dot(&b) / denominator).abs()
        } else {
            0.0
        }
    })
}

fn gated_layer() -> impl Strategy<Value = (GatedLayer, f64, f64, f64)> {
    // At most ENUMERATION_LIMIT units, so that every layer has a reference equilibrium even
    // when the low-rank Gram matrix makes the game strongly non-monotone; entries ≥ 0.05 and
    // α ≥ 0.05 keep a_i > 0, where the enumeration finds every equilibrium.
    (1usize..=ENUMERATION_LIMIT, 1usize..=8).prop_flat_map(|(n, d)| {
        (
            proptest::collection::vec(0.05..1.0f64, n * d),
            proptest::collection::vec(-1.0..2.0f64, d),
            0.05..1.0f64,
            0.0..1.0f64,
            0.0..0.5f64,
        )
            .prop_map(move |(w, y, alpha, gamma, beta)| {
                (
                    GatedLayer {
                        w: DMatrix::from_vec(d, n, w),
                        y: DVector::from_vec(y),
                    },
                    alpha,
                    gamma,
                    beta,
                )
            })
    })
}

/// KKT rounding slack for T8: gradients of order ten (‖w‖² ≤ 8, |y| ≤ 2) compared after a
/// solve to residual 1e-10 and a certificate of 1e-8.
const KKT_SLACK: f64 = 1e-6;

proptest! {
    #![proptest_config(common::cases(256))]

    // -----------------------------------------------------------------------------------
    // T1

    /// T1: on every generated game — monotone or not, with zero self costs allowed — some
    /// solver returns a certified equilibrium, and on small games with `a > 0` the
    /// enumeration finds one too.
    #[test]
    fn t1_every_game_has_a_certified_equilibrium(
        game in games(1..=30, 0.0..3.0, 0.0, None),
    ) {
        in_pool(|| -> Result<(), TestCaseError> {
            let outputs = solver_outputs(&game, None);
            let found = outputs.iter().any(|(_, s, _)| certified(&game, s));
            prop_assert!(found, "no solver certified an equilibrium: {:?}",
                outputs.iter().map(|(k, s, c)| (k, *c, nash_gap(&game, s))).collect::<Vec<_>>());
            Ok(())
        })?;
    }

    /// T1 by enumeration: small non-monotone games (δ < 1 allowed) with `a > 0`.
    #[test]
    fn t1_enumeration_finds_an_equilibrium_on_small_games(
        game in games(1..=ENUMERATION_LIMIT, 0.0..1.5, 0.05, None),
    ) {
        in_pool(|| -> Result<(), TestCaseError> {
            prop_assert!(!enumerate_equilibria(&game).is_empty());
            Ok(())
        })?;
    }

    /// T1 fails without concavity: in the chase game some player gains at least 1/16 by
    /// deviating from every profile.
    #[test]
    fn t1_fails_without_own_concavity(s1 in 0.0..=1.0f64, s2 in 0.0..=1.0f64) {
        in_pool(|| -> Result<(), TestCaseError> {
            let gap = nash_gap(&Chase, &[s1, s2]);
            prop_assert!(gap >= 1.0 / 16.0, "gap {gap} at ({s1}, {s2})");
            Ok(())
        })?;
    }

    // -----------------------------------------------------------------------------------
    // T2

    /// T2: when a sufficient condition proves uniqueness, every solver from every start
    /// reaches the same profile (within the strong-monotonicity error bound).
    #[test]
    fn t2_unique_implies_all_solvers_and_starts_agree(
        (game, start) in game_and_start(games(2..=30, 1.05..3.0, 0.1, None)),
    ) {
        in_pool(|| -> Result<(), TestCaseError> {
            let a = analysis(&game);
            prop_assert!(matches!(a.uniqueness.verdict, Uniqueness::Unique { .. }),
                "δ > 1 with a > 0 must be recognised: {:?}", a.uniqueness);
            let mu = a.convergence.strong_monotonicity.expect("δ > 1 gives μ > 0");
            let lipschitz = a.convergence.lipschitz_upper;
            let n = game.num_players() as f64;
            let mut profiles = Vec::new();
            for initial in [None, Some(scaled(&game, &start))] {
                for (kind, s, converged) in solver_outputs(&game, initial) {
                    prop_assert!(converged, "{kind} did not converge on a strongly monotone game");
                    let r = natural_residual(&game, &s);
                    profiles.push((kind, s, r));
                }
            }
            // ‖s − s*‖₂ ≤ (1 + L)/μ ‖r(s)‖₂ ≤ (1 + L)/μ √n ‖r(s)‖_∞ for strongly monotone F.
            let (_, reference, r0) = &profiles[0];
            for (kind, s, r) in &profiles {
                let bound = (1.0 + lipschitz) / mu * n.sqrt() * (r + r0) + 1e-12;
                prop_assert!(distance2(s, reference) <= bound,
                    "{kind} disagrees: distance {} > {bound}", distance2(s, reference));
            }
            Ok(())
        })?;
    }

    /// T2 is not vacuous: `M` with an indefinite symmetric part (two strongly competing
    /// players) has two distinct equilibria, and the analysis says `Unknown`.
    #[test]
    fn t2_fails_for_non_monotone_games(
        a in 0.2..1.0f64, extra in 0.05..1.0f64, fraction in 0.1..1.0f64,
    ) {
        in_pool(|| -> Result<(), TestCaseError> {
            // q < a < c: the pure profiles (u, 0) and (0, u) with u = q/a < 1 are both equilibria
            // (the idle player faces slope q − c u < 0), and so is the interior q/(a + c).
            let q = a * fraction;
            let c = a + extra;
            let game = two_competing_players(q, a, c);
            let u = q / a;
            prop_assert!(certified(&game, &[u, 0.0]));
            prop_assert!(certified(&game, &[0.0, u]));
            prop_assert_eq!(analysis(&game).uniqueness.verdict, Uniqueness::Unknown);
            prop_assert_eq!(enumerate_equilibria(&game).len(), 3);
            Ok(())
        })?;
    }

    // -----------------------------------------------------------------------------------
    // T3

    /// T3: every player with `q_i < 0` plays exactly 0 in every solver's output, from the
    /// default start and from random starts, on any game (non-symmetric `C` included).
    #[test]
    fn t3_negative_net_benefit_is_zero_in_every_solver(
        (game, start) in game_and_start(games(1..=30, 0.0..3.0, 0.0, None)),
    ) {
        in_pool(|| -> Result<(), TestCaseError> {
            let q = game.net_benefit();
            let negative: Vec<usize> = (0..q.len()).filter(|&i| q[i] < 0.0).collect();
            for (i, margin) in dominated_players(&game).iter().map(|m| (m.player, m.margin)) {
                prop_assert!(margin >= 0.0 && (margin + q[i]).abs() <= 0.0);
            }
            for initial in [None, Some(scaled(&game, &start))] {
                let from_zero = initial.is_none();
                for (kind, s, converged) in solver_outputs(&game, initial) {
                    if !(from_zero || converged) {
                        continue;
                    }
                    for &i in &negative {
                        prop_assert!(s[i] == 0.0, "{kind}: q_{i} = {} but s_{i} = {}", q[i], s[i]);
                    }
                }
            }
            Ok(())
        })?;
    }

    /// T3 fails with negative competition: `q_0 < 0` but player 1's participation pays
    /// player 0 to join; sampling refutes dominance and the equilibrium has `s_0 > 0`.
    #[test]
    fn t3_fails_with_negative_competition(q0 in -0.5..-0.01f64, extra in 0.02..1.0f64) {
        in_pool(|| -> Result<(), TestCaseError> {
            let game = Complements { q: [q0, 1.0], c: -(-q0 + extra) };
            match zero_dominance(&game, 0, &SamplingOptions::default()).unwrap() {
                DominanceVerdict::Refuted { witness, gain } => {
                    prop_assert!(gain > 0.0 && witness[0] > 0.0);
                }
                other => prop_assert!(false, "expected a refutation, got {:?}", other),
            }
            // Player 1 plays 1 whatever player 0 does (c s_0 ≤ 0 only raises its slope), so the
            // equilibrium is s_0 = min(1, q_0 − c) = min(1, extra) > 0.
            let equilibrium = [extra.min(1.0), 1.0];
            prop_assert!(nash_gap(&game, &equilibrium) <= 1e-15);
            prop_assert!(equilibrium[0] > 0.0);
            Ok(())
        })?;
    }

    // -----------------------------------------------------------------------------------
    // T4

    /// T4: the elimination bracket contains every equilibrium — every certified solver
    /// output, and on small games every enumerated equilibrium (several for non-monotone
    /// games) — and when the bounds meet, every equilibrium equals their midpoint.
    #[test]
    fn t4_bounds_bracket_every_computed_equilibrium(
        (game, start) in game_and_start(games(1..=30, 0.0..3.0, 0.05, None)),
    ) {
        in_pool(|| -> Result<(), TestCaseError> {
            let options = EliminationOptions::default();
            let bounds = iterated_elimination(&game, &options).unwrap();
            let met = bounds.gap() <= options.meet_tolerance;
            let midpoint = bounds.midpoint();
            let mut equilibria: Vec<Vec<f64>> = Vec::new();
            for initial in [None, Some(scaled(&game, &start))] {
                for (_, s, _) in solver_outputs(&game, initial) {
                    if certified(&game, &s) {
                        equilibria.push(s);
                    }
                }
            }
            if game.num_players() <= ENUMERATION_LIMIT {
                equilibria.extend(enumerate_equilibria(&game));
            }
            prop_assert!(!equilibria.is_empty());
            // A certified profile is within ~1e-8 of an exact equilibrium on these games (a > 0).
            let slack = 1e-6;
            for s in &equilibria {
                prop_assert!(bounds.contains(s, slack), "profile outside the bracket");
                for i in bounds.pruned() {
                    prop_assert!(s[i] == 0.0 || s[i] <= slack);
                }
                if met {
                    prop_assert!(max_distance(s, &midpoint) <= slack);
                }
            }
            Ok(())
        })?;
    }

    /// T4 with ties: `a = 0` for every player (linear utilities); the bracket still holds
    /// every enumerated equilibrium, including those where a player is indifferent.
    #[test]
    fn t4_bracket_is_sound_with_zero_self_costs(
        config in configs(1..=ENUMERATION_LIMIT, 0.0..0.01, 0.0, None),
    ) {
        in_pool(|| -> Result<(), TestCaseError> {
            let mut config = config;
            config.self_cost = 0.0;
            config.diagonal_dominance = 0.0;
            let game = generate(&config).unwrap();
            let bounds = iterated_elimination(&game, &EliminationOptions::default()).unwrap();
            for s in enumerate_equilibria(&game) {
                prop_assert!(bounds.contains(&s, 0.0), "{s:?} outside [{:?}, {:?}]",
                    bounds.lower, bounds.upper);
            }
            Ok(())
        })?;
    }

    /// T4 from a solved profile: the budgeted bracket that `solve` records as `dominated`
    /// never marks a player that the exact bracket (the sweeps from `[0, u]` run until no
    /// bound moves at all) leaves unpruned — whatever profile it starts from: every solver's
    /// output, converged or not, and a random profile — and on small games every enumerated
    /// equilibrium has the marked players at zero.
    #[test]
    fn t4_fast_path_never_marks_a_player_the_exact_bracket_does_not(
        (game, start) in game_and_start(games(1..=30, 0.0..3.0, 0.05, None)),
    ) {
        in_pool(|| -> Result<(), TestCaseError> {
            let exact = exact_bracket(&game, 1_000_000);
            prop_assume!(exact.converged);
            let exact_pruned = exact.pruned();
            let mut profiles: Vec<Vec<f64>> = solver_outputs(&game, None)
                .into_iter()
                .map(|(_, s, _)| s)
                .collect();
            profiles.push(scaled(&game, &start));
            let equilibria = if game.num_players() <= ENUMERATION_LIMIT {
                enumerate_equilibria(&game)
            } else {
                Vec::new()
            };
            for profile in &profiles {
                let near = provably_pruned_near(&game, profile, &NearOptions::default()).unwrap();
                for i in &near.dominated {
                    prop_assert!(
                        exact_pruned.binary_search(i).is_ok(),
                        "player {i} marked, exact bracket U_i = {} (stop {:?}, ρ̄ {:?})",
                        exact.upper[*i], near.stop, near.contraction
                    );
                    for s in &equilibria {
                        prop_assert!(s[*i] == 0.0);
                    }
                }
                for i in &near.undetermined {
                    prop_assert!(profile[*i] <= 0.0 && near.dominated.binary_search(i).is_err());
                }
            }
            Ok(())
        })?;
    }

    // -----------------------------------------------------------------------------------
    // T5

    /// T5: with symmetric `C` the game is an exact potential game (utility differences equal
    /// potential differences), and when `M ≻ 0` the equilibrium maximises `Φ` over the box:
    /// no random feasible point and no projected-ascent run does better.
    #[test]
    fn t5_symmetric_equilibrium_maximises_potential(
        (game, start) in game_and_start(games(1..=30, 1.05..3.0, 0.1, Some(true))),
        points in proptest::collection::vec(proptest::collection::vec(0.0..=1.0f64, 30), 8),
        deviation in 0.0..=1.0f64,
    ) {
        in_pool(|| -> Result<(), TestCaseError> {
            prop_assert!(game.competition().is_symmetric());
            let n = game.num_players();
            let s = scaled(&game, &start);
            // Exact potential: U_i(x, s_-i) − U_i(s) = Φ(x, s_-i) − Φ(s).
            for i in 0..n {
                let mut t = s.clone();
                t[i] = deviation * game.upper(i);
                let du = game.utility(i, t[i], &s) - game.utility(i, s[i], &s);
                let dphi = game.potential(&t) - game.potential(&s);
                prop_assert!((du - dphi).abs() <= 1e-10 * (1.0 + du.abs()));
            }
            let (_, equilibrium, converged) = solver_outputs(&game, None).swap_remove(3);
            prop_assert!(converged);
            let best = game.potential(&equilibrium);
            // Φ is within ~L·r² of its maximum at a point with residual r; 1e-9 is generous.
            let slack = 1e-9;
            for p in &points {
                let x = scaled(&game, &p[..n]);
                prop_assert!(game.potential(&x) <= best + slack);
            }
            let step = 1.0 / analysis(&game).convergence.lipschitz_upper;
            let mut x = s;
            for _ in 0..2_000 {
                x = projection_step(&game, &x, step);
            }
            prop_assert!(game.potential(&x) <= best + slack);
            Ok(())
        })?;
    }

    /// T5 fails without symmetry: for a non-symmetric `C`, `Φ` does not track the utility
    /// differences of the player whose row differs from its column.
    #[test]
    fn t5_fails_without_symmetry(c01 in 0.1..1.0f64, c10 in 0.1..1.0f64, s0 in 0.1..1.0f64, x in 0.0..1.0f64) {
        in_pool(|| -> Result<(), TestCaseError> {
            prop_assume!((c01 - c10).abs() > 0.05);
            let game = PruningGame::with_uniform_cost(
                DVector::from_element(2, 1.0),
                DVector::from_element(2, 1.0),
                0.0,
                Competition::dense(DMatrix::from_row_slice(2, 2, &[0.0, c01, c10, 0.0])).unwrap(),
            ).unwrap();
            prop_assume!((x - 0.5).abs() > 0.05);
            let s = [s0, 0.5];
            let t = [s0, x];
            let du = game.utility(1, x, &s) - game.utility(1, 0.5, &s);
            let dphi = game.potential(&t) - game.potential(&s);
            // du − dΦ = −(x − 0.5) s_0 (c10 − (c01 + c10)/2) ≠ 0.
            prop_assert!((du - dphi).abs() > 1e-4);
            Ok(())
        })?;
    }

    /// T5 part 3 needs `M ≻ 0`: with symmetric `C` but `c > a > q`, the interior equilibrium
    /// `q/(a + c)·(1, 1)` is certified yet has a lower potential than the pure `(q/a, 0)`.
    #[test]
    fn t5_symmetric_indefinite_equilibrium_is_not_a_maximiser(
        a in 0.2..1.0f64, extra in 0.05..1.0f64, fraction in 0.1..1.0f64,
    ) {
        in_pool(|| -> Result<(), TestCaseError> {
            let q = a * fraction;
            let c = a + extra;
            let game = two_competing_players(q, a, c);
            let interior = [q / (a + c), q / (a + c)];
            let pure = [q / a, 0.0];
            prop_assert!(certified(&game, &interior) && certified(&game, &pure));
            // Φ(interior) = q²/(a + c) < q²/(2a) = Φ(pure) because c > a.
            prop_assert!(game.potential(&interior) < game.potential(&pure) - 1e-12);
            Ok(())
        })?;
    }

    // -----------------------------------------------------------------------------------
    // T6

    /// T6: the step sizes the analysis reports converge — projected gradient play with
    /// `τ = μ/L²` contracts by `√(1 − μ²/L²)` per step towards the equilibrium, extragradient
    /// with `0.9/L` and Jacobi best response (when `ρ(D⁻¹C) < 1`) reach it.
    #[test]
    fn t6_reported_step_sizes_converge(
        (game, start) in game_and_start(games(1..=12, 1.5..3.0, 0.5, None)),
    ) {
        in_pool(|| -> Result<(), TestCaseError> {
            let a = analysis(&game);
            let c = &a.convergence;
            let equilibrium = solver_outputs(&game, None).swap_remove(3).1;
            // Error of the reference equilibrium (strong-monotonicity bound, as in T2).
            let n = game.num_players() as f64;
            let mu_bound = c.strong_monotonicity.expect("δ > 1 gives μ > 0");
            let reference_error = (1.0 + c.lipschitz_upper) / mu_bound * n.sqrt()
                * natural_residual(&game, &equilibrium);
            prop_assert!(reference_error <= 1e-8);
            let tau = c.projection_step.expect("μ > 0 on these games");
            let mu = c.strong_monotonicity.unwrap();
            let factor = (1.0 - 2.0 * tau * mu + tau * tau * c.lipschitz_upper.powi(2)).sqrt();
            let mut s = scaled(&game, &start);
            // Check the contraction step by step while the distance is far above the error of
            // the reference equilibrium (≤ 1e-12 residual).
            for _ in 0..5_000 {
                let before = distance2(&s, &equilibrium);
                if before < 1e-6 {
                    break;
                }
                s = projection_step(&game, &s, tau);
                let after = distance2(&s, &equilibrium);
                let slack = 2.0 * reference_error + 1e-12;
                prop_assert!(after <= factor * before + slack, "{after} > {factor} · {before}");
            }
            let mut s = scaled(&game, &start);
            for _ in 0..100_000 {
                s = extragradient_step(&game, &s, c.extragradient_step);
                if natural_residual(&game, &s) <= 1e-10 {
                    break;
                }
            }
            prop_assert!(natural_residual(&game, &s) <= 1e-10, "extragradient did not converge");
            if c.jacobi_radius_upper.is_some_and(|r| r < 1.0) {
                let mut s = scaled(&game, &start);
                let mut next = vec![0.0; s.len()];
                for _ in 0..100_000 {
                    game.best_responses(&s, &mut next);
                    std::mem::swap(&mut s, &mut next);
                    if natural_residual(&game, &s) <= 1e-10 {
                        break;
                    }
                }
                prop_assert!(natural_residual(&game, &s) <= 1e-10, "Jacobi did not converge");
            }
            Ok(())
        })?;
    }

    /// T6 is sharp on uncoupled games (`M = a I`, so `μ = L = a`): projection with a step 2%
    /// above `2μ/L²`, or extragradient 5% above `1/L`, does not converge, while the reported
    /// steps do; Jacobi with `ρ(D⁻¹C) > 1` cycles.
    #[test]
    fn t6_steps_above_the_bound_fail(
        n in 1usize..=6, a in 0.5..4.0f64, fraction in 0.2..0.8f64, start in 0.0..=1.0f64,
    ) {
        in_pool(|| -> Result<(), TestCaseError> {
            prop_assume!((start - fraction).abs() > 0.05);
            let game = PruningGame::with_uniform_cost(
                DVector::from_element(n, a * fraction),
                DVector::from_element(n, a),
                0.0,
                Competition::None,
            ).unwrap();
            let (_, c) = uniqueness_and_convergence(&game, &SpectralOptions::default());
            let bound = c.projection_step_bound.unwrap();
            prop_assert!((bound - 2.0 / a).abs() <= 1e-9 * bound);
            let run = |step: fn(&PruningGame, &[f64], f64) -> Vec<f64>, tau: f64| {
                let mut s = vec![start; n];
                for _ in 0..2_000 {
                    s = step(&game, &s, tau);
                }
                natural_residual(&game, &s)
            };
            prop_assert!(run(projection_step, 1.02 * bound) > 1e-3);
            prop_assert!(run(projection_step, c.projection_step.unwrap()) <= 1e-10);
            prop_assert!(run(extragradient_step, 1.05 * c.extragradient_step_bound) > 1e-3);
            prop_assert!(run(extragradient_step, c.extragradient_step) <= 1e-10);
            // Jacobi with ρ(D⁻¹C) = c/a > 1: two players started at 0 jump together to
            // their upper bounds and back, forever.
            let cycling = PruningGame::with_uniform_cost(
                DVector::from_element(2, a),
                DVector::from_element(2, a),
                0.0,
                Competition::dense(DMatrix::from_row_slice(2, 2, &[0.0, 1.2 * a, 1.2 * a, 0.0]))
                    .unwrap(),
            )
            .unwrap();
            let (_, jacobi) = uniqueness_and_convergence(&cycling, &SpectralOptions::default());
            prop_assert!(jacobi.jacobi_radius_upper.unwrap() >= 1.2 - 1e-9);
            let mut s = vec![0.0; 2];
            let mut next = vec![0.0; 2];
            for _ in 0..1_001 {
                cycling.best_responses(&s, &mut next);
                std::mem::swap(&mut s, &mut next);
            }
            prop_assert!(natural_residual(&cycling, &s) >= 0.1);
            Ok(())
        })?;
    }

    // -----------------------------------------------------------------------------------
    // T7

    /// T7: under projected gradient play with any step `η`, every player with `q_i < 0`
    /// (so `∂U_i/∂s_i ≤ q_i = −δ` along any path, as `C ≥ 0`) loses at least `ηδ` per step
    /// until it reaches exactly 0, within `⌈u_i/(ηδ)⌉` steps, and stays there.
    #[test]
    fn t7_finite_time_collapse_under_projected_gradient(
        (game, start) in game_and_start(games(1..=30, 0.0..3.0, 0.0, None)),
        eta in 0.001..0.5f64,
    ) {
        in_pool(|| -> Result<(), TestCaseError> {
            let q = game.net_benefit().clone();
            let collapsing: Vec<usize> = (0..q.len()).filter(|&i| q[i] < 0.0).collect();
            let deadline: Vec<usize> = collapsing
                .iter()
                .map(|&i| (game.upper(i) / (eta * -q[i])).ceil() as usize)
                .collect();
            let horizon = 2 * deadline.iter().copied().max().unwrap_or(0).min(50_000) + 1;
            let mut s = scaled(&game, &start);
            let mut gradient = vec![0.0; s.len()];
            for step in 1..=horizon {
                game.pseudo_gradient(&s, &mut gradient);
                for &i in &collapsing {
                    // The hypothesis along the path: ∂U_i/∂s_i = −F_i ≤ q_i.
                    prop_assert!(-gradient[i] <= q[i] + 1e-12);
                }
                let next = projection_step(&game, &s, eta);
                for (k, &i) in collapsing.iter().enumerate() {
                    // Each step loses at least ηδ, or lands exactly on 0.
                    prop_assert!(next[i] == 0.0 || next[i] <= s[i] + eta * q[i] + 1e-12);
                    if step >= deadline[k] {
                        prop_assert!(next[i] == 0.0, "player {i} at {} after {step} steps", next[i]);
                    }
                }
                s = next;
            }
            Ok(())
        })?;
    }

    /// T7 needs the gradient bounded away from zero: with `q_i = 0` (`∂U_i/∂s_i = −a s_i → 0`)
    /// a player shrinks geometrically and is still positive after 1000 steps.
    #[test]
    fn t7_fails_when_the_gradient_vanishes(s0 in 0.1..1.0f64, eta_a in 0.01..0.5f64) {
        in_pool(|| -> Result<(), TestCaseError> {
            let game = PruningGame::with_uniform_cost(
                DVector::from_element(1, 0.0),
                DVector::from_element(1, 1.0),
                0.0,
                Competition::None,
            ).unwrap();
            let mut s = vec![s0];
            for _ in 0..1_000 {
                s = projection_step(&game, &s, eta_a);
            }
            prop_assert!(s[0] > 0.0);
            Ok(())
        })?;
    }

    // -----------------------------------------------------------------------------------
    // T8

    /// T8 on a gated layer `ℒ(s) = ½‖y − Ws‖²` (non-negative unit outputs `w_i`) with
    /// magnitude cost `α‖w_i‖²`, participation cost `γ` and redundancy `βR`: at the
    /// equilibrium of the pruning game built from the loss, with `∂ℒ/∂s_i` computed from the
    /// layer's forward residual, a unit is at zero only if `−∂ℒ/∂s_i ≤ γ + β Σ R_ij s_j`, it is
    /// at zero whenever the inequality is strict, and an interior unit balances
    /// `−∂ℒ/∂s_i = γ + α‖w_i‖² s_i + β Σ R_ij s_j`.
    #[test]
    fn t8_kkt_reading_of_the_quadratic_model((layer, alpha, gamma, beta) in gated_layer()) {
        in_pool(|| -> Result<(), TestCaseError> {
            let r = redundancy(&layer.w);
            let game = layer.game(alpha, gamma, beta, &r);
            let mut equilibria: Vec<Vec<f64>> = solver_outputs(&game, None)
                .into_iter()
                .map(|(_, s, _)| s)
                .filter(|s| certified(&game, s))
                .collect();
            if game.num_players() <= ENUMERATION_LIMIT {
                equilibria.extend(enumerate_equilibria(&game));
            }
            prop_assert!(!equilibria.is_empty());
            for s in &equilibria {
                kkt_holds(&layer, &r, alpha, gamma, beta, s)?;
            }
            Ok(())
        })?;
    }
}

/// The KKT reading of T8 at one equilibrium `s` of the layer's game.
fn kkt_holds(
    layer: &GatedLayer,
    r: &DMatrix<f64>,
    alpha: f64,
    gamma: f64,
    beta: f64,
    s: &[f64],
) -> Result<(), TestCaseError> {
    {
        let gradient = layer.gate_gradient(s);
        let n = s.len();
        for i in 0..n {
            let benefit = -gradient[i];
            let cost: f64 = gamma + beta * (0..n).map(|j| r[(i, j)] * s[j]).sum::<f64>();
            let magnitude = alpha * layer.w.column(i).norm_squared();
            if s[i] == 0.0 {
                prop_assert!(
                    benefit <= cost + KKT_SLACK,
                    "pruned unit {i} pays: {benefit} > {cost}"
                );
            }
            if benefit < cost - KKT_SLACK {
                prop_assert!(
                    s[i] == 0.0,
                    "unit {i} does not pay ({benefit} < {cost}) but s = {}",
                    s[i]
                );
            }
            if s[i] > 0.0 && s[i] < 1.0 {
                prop_assert!((benefit - cost - magnitude * s[i]).abs() <= KKT_SLACK);
            }
            if s[i] >= 1.0 {
                prop_assert!(benefit >= cost + magnitude - KKT_SLACK);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(common::cases(8))]

    /// T4, single precision: dense games from `Bracket::MIN_SINGLE_PLAYERS` players run
    /// their rounds on an `f32` copy of `C` (its upper triangle when `C` is symmetric; the
    /// generator draws both kinds). Over generated dense games of that size the
    /// players marked from the solved profile and from a random one are pruned by the exact
    /// `f64` bracket too. Few cases: each exact bracket is thousands of dense products.
    #[test]
    fn t4_single_precision_rounds_never_mark_a_player_the_exact_bracket_does_not(
        (game, start) in game_and_start(dense_games(1024..=1088, 0.6..2.5)),
    ) {
        in_pool(|| -> Result<(), TestCaseError> {
            let exact = exact_bracket(&game, 100_000);
            prop_assume!(exact.converged);
            let exact_pruned = exact.pruned();
            let options = SolveOptions {
                tolerance: SOLVE_TOLERANCE,
                max_iterations: iteration_budget(&game),
                ..SolveOptions::default()
            };
            let solved = solve(&game, SolverKind::Newton, &options).unwrap().profile;
            for profile in [solved, scaled(&game, &start)] {
                let near = provably_pruned_near(&game, &profile, &NearOptions::default()).unwrap();
                for i in &near.dominated {
                    prop_assert!(
                        exact_pruned.binary_search(i).is_ok(),
                        "player {i} marked, exact bracket U_i = {} (stop {:?})",
                        exact.upper[*i], near.stop
                    );
                }
            }
            Ok(())
        })?;
    }
}
