//! Equilibrium solvers: one shared suite run against every solver configuration, properties
//! on generated games, and failures that must be reported rather than hidden.
//!
//! Tolerance-derived bound on the Nash gap (used throughout). Let `r_i = |s_i − Π(s_i − F_i)|`
//! be player `i`'s natural residual and `U_i` concave in the own strategy. Concavity gives
//! `U_i(x) − U_i(s) ≤ U_i'(s_i)(x − s_i) = F_i (s_i − x)` for all `x ∈ [0, u_i]`, so
//! `gain_i ≤ max_x F_i (s_i − x)`. Three cases of `z = Π(s_i − F_i)`:
//! * `z` interior: `|F_i| = r_i`, and `gain_i ≤ r_i u_i`;
//! * `z = 0`: `F_i ≥ s_i = r_i`, the maximum is at `x = 0`: `gain_i ≤ F_i s_i = |F_i| r_i`;
//! * `z = u_i`: `−F_i ≥ u_i − s_i = r_i`, the maximum is at `x = u_i`: `gain_i ≤ |F_i| r_i`.
//!
//! Hence `gap ≤ r · max(‖u‖_∞, ‖F(s)‖_∞)` with `r` the natural residual (∞-norm), for the
//! quadratic game and for any concave game. Summing the same inequality over players bounds
//! the potential: `Φ(x) − Φ(s) ≤ ∇Φ(s)ᵀ(x − s) = Σ_i F_i (s_i − x_i) ≤ N r max(‖u‖, ‖F‖)`.
//! `ROUNDING` absorbs the floating-point error of evaluating utilities of order 10 (a few ulps).

use std::time::Instant;

use nalgebra::{DMatrix, DVector};
use proptest::prelude::*;
use pruning_game::equilibrium::{
    solve, solve_game, Cancel, Solution, SolveOptions, SolverKind, Termination,
};
use pruning_game::game::{
    generate, BenefitSpec, Competition, CsrMatrix, Game, GeneratorConfig, PruningGame,
    SaturatingGame, Topology,
};
use pruning_game::Error;

/// Absolute slack for rounding in utility differences of order-10 utilities (≈ 500 ulps).
const ROUNDING: f64 = 1e-12;
/// Tolerance on the natural residual used by the property tests.
const TOLERANCE: f64 = 1e-10;
/// Tighter tolerance for the agreement test, so that the error bound gives 1e-8 (see there).
const AGREEMENT_TOLERANCE: f64 = 1e-12;
/// Agreement required between solvers on strongly monotone games.
const AGREEMENT: f64 = 1e-8;

/// One solver configuration of the shared suite.
#[derive(Debug, Clone)]
struct Config {
    name: &'static str,
    kind: SolverKind,
    options: SolveOptions,
}

/// Every solver, with each of its variants.
fn configurations(tolerance: f64) -> Vec<Config> {
    let base = SolveOptions {
        tolerance,
        max_iterations: 400_000,
        stall_window: Some(20_000),
        ..SolveOptions::default()
    };
    let with = |name, kind, change: &dyn Fn(&mut SolveOptions)| {
        let mut options = base.clone();
        change(&mut options);
        Config {
            name,
            kind,
            options,
        }
    };
    vec![
        with("jacobi", SolverKind::BestResponse, &|_| {}),
        with("gauss-seidel", SolverKind::BestResponse, &|o| {
            o.gauss_seidel = true
        }),
        with("damped-jacobi", SolverKind::BestResponse, &|o| {
            o.damping = 0.7
        }),
        with("projection", SolverKind::Projection, &|_| {}),
        with("golden-ratio", SolverKind::Projection, &|o| {
            o.adaptive = true
        }),
        with("extragradient", SolverKind::Extragradient, &|_| {}),
        with(
            "extragradient-backtracking",
            SolverKind::Extragradient,
            &|o| o.adaptive = true,
        ),
        with("newton", SolverKind::Newton, &|_| {}),
    ]
}

/// Generator configurations: proptest picks the seed, size, topology and scales.
fn game_config(
    symmetric: impl Strategy<Value = bool>,
    dominance: std::ops::Range<f64>,
) -> impl Strategy<Value = GeneratorConfig> {
    (
        any::<u64>(),
        2usize..=24,
        0usize..3,
        0.0f64..1.0,
        symmetric,
        0.0f64..0.5,
        dominance,
        0.0f64..0.6,
        0.2f64..2.0,
    )
        .prop_map(
            |(seed, players, topology, x, symmetric, beta, delta, negative, alpha)| {
                let topology = match topology {
                    0 => Topology::Dense {
                        density: 0.3 + 0.7 * x,
                    },
                    1 => {
                        // A symmetric ring needs an even number of neighbours.
                        let k = 1 + (x * (players - 2) as f64) as usize;
                        Topology::Nearest {
                            k: if symmetric { k - k % 2 } else { k },
                        }
                    }
                    _ => Topology::Random {
                        degree: 0.5 * x * (players - 1) as f64,
                    },
                };
                GeneratorConfig {
                    players,
                    seed,
                    topology,
                    symmetric,
                    competition_scale: beta,
                    participation_cost: 0.1,
                    benefit: BenefitSpec::Split {
                        negative_fraction: negative,
                        scale: 1.0,
                    },
                    diagonal_dominance: delta,
                    self_cost: alpha,
                }
            },
        )
}

fn gradient<G: Game + ?Sized>(game: &G, s: &[f64]) -> Vec<f64> {
    let mut f = vec![0.0; s.len()];
    game.pseudo_gradient(s, &mut f);
    f
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

/// `r · max(‖u‖_∞, ‖F(s)‖_∞)`: the gap bound derived in the file's docs.
fn gap_bound<G: Game + ?Sized>(game: &G, s: &[f64], residual: f64) -> f64 {
    let u = (0..game.num_players())
        .map(|i| game.upper(i))
        .fold(0.0, f64::max);
    residual * u.max(max_abs(&gradient(game, s)))
}

/// What every converged solution must satisfy: inside the box, converged with the residual
/// within tolerance, the reported certificate equal to a fresh one, and the gap within the
/// derived bound.
fn check_certified<G: Game + ?Sized>(
    game: &G,
    solution: &Solution,
    tolerance: f64,
    name: &str,
) -> Result<(), TestCaseError> {
    let report = &solution.report;
    prop_assert!(
        report.converged,
        "{name}: not converged: {:?} after {} iterations, residual {:e}",
        report.termination,
        report.iterations,
        report.certificate.natural_residual
    );
    prop_assert_eq!(report.termination, Termination::Converged);
    let s = &solution.profile;
    for (i, &x) in s.iter().enumerate() {
        prop_assert!((0.0..=game.upper(i)).contains(&x), "{name}: s[{i}] = {x}");
    }
    let fresh = pruning_game::game::Certificate::of(game, s);
    prop_assert_eq!(fresh, report.certificate);
    prop_assert!(fresh.natural_residual <= tolerance);
    let bound = gap_bound(game, s, fresh.natural_residual) + ROUNDING;
    prop_assert!(
        fresh.nash_gap <= bound,
        "{name}: gap {:e} above bound {:e}",
        fresh.nash_gap,
        bound
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Every solver, on monotone games with and without symmetry, converges and its output
    /// has a Nash gap within the tolerance-derived bound.
    #[test]
    fn every_solver_certifies_its_output(config in game_config(any::<bool>(), 1.05..3.0)) {
        let game = generate(&config).unwrap();
        for c in configurations(TOLERANCE) {
            let solution = solve(&game, c.kind, &c.options).unwrap();
            check_certified(&game, &solution, TOLERANCE, c.name)?;
        }
    }

    /// On strongly monotone games (δ > 1) the equilibrium is unique (T2) and all solvers find
    /// it. Error bound (Facchinei–Pang, Prop. 2.3.12): for μ-strongly monotone, L-Lipschitz F,
    /// `‖s − s*‖₂ ≤ (1 + L)/μ · ‖r(s)‖₂`. The generator sets
    /// `a_i = δ max(Σ_j C_ij, Σ_j C_ji) + α U(0.5, 1.5)`, so Gershgorin gives `μ ≥ α/2 ≥ 0.1`,
    /// and `L ≤ max row sum ≤ (δ + 1) β N + 1.5 α ≤ 4 · 0.5 · 24 + 3 = 51`. With every
    /// `r_i ≤ 1e-12`, `‖r‖₂ ≤ √24 · 1e-12`, each solution is within `520 · 4.9e-12 ≈ 2.6e-9`
    /// of `s*`, and two solutions within `5.1e-9 < 1e-8`.
    #[test]
    fn solvers_agree_on_strongly_monotone_games(config in game_config(any::<bool>(), 1.05..3.0)) {
        let game = generate(&config).unwrap();
        let solutions: Vec<(&str, Vec<f64>)> = configurations(AGREEMENT_TOLERANCE)
            .into_iter()
            .map(|c| {
                let solution = solve(&game, c.kind, &c.options).unwrap();
                (c.name, solution)
            })
            .map(|(name, solution)| {
                assert!(solution.report.converged, "{name}: {:?}", solution.report.termination);
                (name, solution.profile)
            })
            .collect();
        let (reference_name, reference) = &solutions[solutions.len() - 1];
        for (name, s) in &solutions {
            let distance = s.iter().zip(reference).fold(0.0_f64, |m, (a, b)| m.max((a - b).abs()));
            prop_assert!(distance <= AGREEMENT, "{name} vs {reference_name}: {distance:e}");
        }
    }

    /// Potential games (symmetric C) with M ≻ 0: every solver's output maximises the potential
    /// Φ = qᵀs − ½sᵀMs over the box (T5): no proptest-chosen feasible point beats it beyond
    /// the derived bound, and the KKT conditions of max Φ hold.
    #[test]
    fn potential_games_are_maximised(
        config in game_config(Just(true), 1.05..3.0),
        points in proptest::collection::vec(proptest::collection::vec(0.0f64..=1.0, 24), 16),
    ) {
        let game = generate(&config).unwrap();
        let n = game.num_players();
        for c in configurations(TOLERANCE) {
            let solution = solve(&game, c.kind, &c.options).unwrap();
            check_certified(&game, &solution, TOLERANCE, c.name)?;
            let s = &solution.profile;
            let f = gradient(&game, s);
            let r = solution.report.certificate.natural_residual;
            let scale = 1.0_f64.max(max_abs(&f));
            let phi = game.potential(s);
            for x in &points {
                let x = &x[..n];
                let bound = n as f64 * r * scale + ROUNDING;
                prop_assert!(game.potential(x) <= phi + bound, "{}: Φ(x) = {} > Φ(s) = {}", c.name, game.potential(x), phi);
            }
            // KKT of max Φ on the box with multipliers λ = max(F, 0) ≥ 0 at the lower bound
            // and ν = max(−F, 0) at the upper bound: stationarity holds by construction and
            // complementarity λ_i s_i, ν_i (u_i − s_i) ≤ r·max(1, ‖F‖) (same case analysis).
            for i in 0..n {
                let u = game.upper(i);
                prop_assert!(f[i].max(0.0) * s[i] <= r * scale + ROUNDING, "{}: λ s at {i}", c.name);
                prop_assert!((-f[i]).max(0.0) * (u - s[i]) <= r * scale + ROUNDING, "{}: ν (u − s) at {i}", c.name);
            }
        }
    }
}

/// A saturating game with proptest-chosen parameters, small enough competition that best
/// responses contract (row sums of C below the smallest own curvature `v κ² e^{−κ}`), with
/// its values `v` and rates `κ`.
fn saturating_game() -> impl Strategy<Value = (SaturatingGame, Vec<f64>, Vec<f64>)> {
    (1usize..=5).prop_flat_map(|n| {
        (
            proptest::collection::vec(0.5f64..2.0, n),
            proptest::collection::vec(0.5f64..3.0, n),
            proptest::collection::vec(0.0f64..0.5, n),
            proptest::collection::vec(0.0f64..0.01, n * n),
        )
            .prop_map(move |(value, rate, gamma, c)| {
                let mut m = DMatrix::from_vec(n, n, c);
                m.fill_diagonal(0.0);
                let game = SaturatingGame::new(
                    DVector::from_vec(value.clone()),
                    DVector::from_vec(rate.clone()),
                    DVector::from_vec(gamma),
                    DVector::from_element(n, 1.0),
                    Competition::dense(m).unwrap(),
                )
                .unwrap();
                (game, value, rate)
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Brent's best response on the non-quadratic game matches the closed form and a dense
    /// grid search: its utility is at least the grid's best, and it lies within one grid
    /// spacing of the grid's argmax (for a concave function the maximiser is bracketed by the
    /// grid argmax's neighbours).
    #[test]
    fn saturating_best_response_matches_closed_form_and_grid(
        (game, _, _) in saturating_game(),
        profile in proptest::collection::vec(0.0f64..=1.0, 5),
    ) {
        const GRID: usize = 20_000;
        let n = game.num_players();
        let profile = &profile[..n];
        for i in 0..n {
            let brent = game.best_response(i, profile);
            let closed = game.best_response_closed_form(i, profile);
            // Brent's root finder on ∂U_i/∂s_i stops at 1e-15 plus 2ε|x| (game/best_response.rs);
            // the closed form's logarithm adds a few ulps: 1e-12 is a hundredfold margin.
            prop_assert!((brent - closed).abs() <= 1e-12, "player {i}: Brent {brent} vs closed form {closed}");
            let (grid_x, grid_u) = (0..=GRID)
                .map(|k| k as f64 / GRID as f64)
                .map(|x| (x, game.utility(i, x, profile)))
                .fold((0.0, f64::NEG_INFINITY), |best, p| if p.1 > best.1 { p } else { best });
            prop_assert!(game.utility(i, brent, profile) >= grid_u - ROUNDING);
            prop_assert!((brent - grid_x).abs() <= 1.0 / GRID as f64 + 1e-12);
        }
    }

    /// The general-game solvers on the saturating game: converged, gap within the derived
    /// bound, and every player within the error bound of its closed-form best response. With
    /// own curvature `m_i = v κ² e^{−κ u}` ≤ `−∂²U_i` and Lipschitz constant `L_i = v κ²` of
    /// `x ↦ −∂U_i/∂x`, the one-dimensional error bound reads
    /// `|s_i − BR_i(s_−i)| ≤ (1 + L_i)/m_i · r_i`.
    #[test]
    fn general_solvers_solve_the_saturating_game((game, value, rate) in saturating_game(), seed in 0u64..6) {
        let n = game.num_players();
        let kinds = [
            (SolverKind::BestResponse, false, false),
            (SolverKind::BestResponse, true, false),
            (SolverKind::Projection, false, false),
            (SolverKind::Projection, false, true),
            (SolverKind::Extragradient, false, false),
            (SolverKind::Extragradient, false, true),
        ];
        let (kind, gauss_seidel, adaptive) = kinds[seed as usize % kinds.len()];
        for (kind, gauss_seidel, adaptive) in [(kind, gauss_seidel, adaptive), (SolverKind::BestResponse, false, false)] {
            let options = SolveOptions {
                tolerance: TOLERANCE,
                max_iterations: 200_000,
                gauss_seidel,
                adaptive,
                ..SolveOptions::default()
            };
            let solution = solve_game(&game, kind, &options).unwrap();
            check_certified(&game, &solution, TOLERANCE, kind.name())?;
            let s = &solution.profile;
            let r = solution.report.certificate.natural_residual;
            for i in 0..n {
                let (v, k) = (value[i], rate[i]);
                let curvature = v * k * k * (-k * game.upper(i)).exp();
                let lipschitz = v * k * k;
                let bound = (1.0 + lipschitz) / curvature * r + 1e-12;
                let closed = game.best_response_closed_form(i, s);
                prop_assert!((s[i] - closed).abs() <= bound, "{kind}: s[{i}] = {} vs BR {closed} (bound {bound:e})", s[i]);
            }
        }
    }
}

fn small_game(symmetric: bool) -> PruningGame {
    generate(&GeneratorConfig {
        players: 40,
        seed: 7,
        symmetric,
        ..GeneratorConfig::default()
    })
    .unwrap()
}

#[test]
fn exhausted_budget_is_reported_with_the_last_certificate() {
    let game = small_game(false);
    for c in configurations(1e-14) {
        let options = SolveOptions {
            max_iterations: 1,
            ..c.options
        };
        let solution = solve(&game, c.kind, &options).unwrap();
        let report = &solution.report;
        if report.converged {
            // Newton may legitimately finish in one step; then the certificate must say so.
            assert!(report.certificate.natural_residual <= 1e-14, "{}", c.name);
            continue;
        }
        assert_eq!(report.termination, Termination::MaxIterations, "{}", c.name);
        assert_eq!(report.iterations, 1, "{}", c.name);
        assert_eq!(report.residual_history.len(), 2, "{}", c.name);
        let fresh = pruning_game::game::Certificate::of(&game, &solution.profile);
        assert_eq!(report.certificate, fresh, "{}", c.name);
        assert!(fresh.natural_residual > 1e-14, "{}", c.name);
    }
}

/// A raised cancel flag stops every solver before its next iteration: `cancelled`, not
/// converged, with the certificate of the iterate it stopped at; an unraised one changes nothing.
#[test]
fn a_raised_cancel_flag_stops_every_solver() {
    let game = small_game(false);
    for c in configurations(1e-14) {
        let flag = Cancel::new();
        let options = SolveOptions {
            cancel: Some(flag.clone()),
            ..c.options.clone()
        };
        let free = solve(&game, c.kind, &options).unwrap();
        assert_ne!(
            free.report.termination,
            Termination::Cancelled,
            "{}",
            c.name
        );
        flag.cancel();
        let stopped = solve(&game, c.kind, &options).unwrap();
        let report = &stopped.report;
        assert_eq!(report.termination, Termination::Cancelled, "{}", c.name);
        assert!(!report.converged, "{}", c.name);
        let fresh = pruning_game::game::Certificate::of(&game, &stopped.profile);
        assert_eq!(report.certificate, fresh, "{}", c.name);
    }
}

#[test]
fn diverging_step_is_reported() {
    let game = small_game(true);
    let exact = solve(&game, SolverKind::Newton, &SolveOptions::new(1e-14, 100)).unwrap();
    assert!(exact.report.converged);
    // Start next to the equilibrium, then take steps 10^4 times too long: the residual jumps
    // from ~1e-7 to order one.
    let start: Vec<f64> = exact
        .profile
        .iter()
        .enumerate()
        .map(|(i, s)| (s + if i % 2 == 0 { 1e-7 } else { -1e-7 }).clamp(0.0, 1.0))
        .collect();
    for kind in [SolverKind::Projection, SolverKind::Extragradient] {
        let options = SolveOptions {
            tolerance: 1e-12,
            initial: Some(start.clone()),
            step: Some(1e3),
            ..SolveOptions::default()
        };
        let solution = solve(&game, kind, &options).unwrap();
        assert!(!solution.report.converged, "{kind}");
        assert_eq!(solution.report.termination, Termination::Diverged, "{kind}");
        assert!(
            solution.report.certificate.natural_residual > 1e-3,
            "{kind}"
        );
    }
}

#[test]
fn oscillating_step_is_reported_as_stalled() {
    let game = small_game(false);
    let options = SolveOptions {
        step: Some(1e3),
        stall_window: Some(500),
        max_iterations: 100_000,
        ..SolveOptions::default()
    };
    let solution = solve(&game, SolverKind::Projection, &options).unwrap();
    assert!(!solution.report.converged);
    assert!(
        matches!(
            solution.report.termination,
            Termination::Stalled | Termination::Diverged
        ),
        "{:?}",
        solution.report.termination
    );
    assert!(solution.report.iterations < 100_000);
}

#[test]
fn non_finite_initial_profile_is_an_error() {
    let game = small_game(false);
    let mut initial = vec![0.5; 40];
    initial[3] = f64::NAN;
    for kind in SolverKind::ALL {
        let options = SolveOptions {
            initial: Some(initial.clone()),
            ..SolveOptions::default()
        };
        match solve(&game, kind, &options) {
            Err(Error::NonFinite { field, index, .. }) => {
                assert_eq!(field, "initial");
                assert_eq!(index, 3);
            }
            other => panic!("{kind}: expected NonFinite, got {other:?}"),
        }
    }
    let options = SolveOptions {
        initial: Some(vec![0.5; 39]),
        ..SolveOptions::default()
    };
    assert!(matches!(
        solve(&game, SolverKind::Newton, &options),
        Err(Error::LengthMismatch { .. })
    ));
}

/// A one-player game whose gradient turns NaN once the player passes 0.5.
struct Poisoned;

impl Game for Poisoned {
    fn num_players(&self) -> usize {
        1
    }
    fn upper(&self, _: usize) -> f64 {
        1.0
    }
    fn utility(&self, _: usize, own: f64, _: &[f64]) -> f64 {
        -(own - 0.9) * (own - 0.9)
    }
    fn own_gradient(&self, _: usize, own: f64, _: &[f64]) -> f64 {
        if own > 0.5 {
            f64::NAN
        } else {
            -2.0 * (own - 0.9)
        }
    }
}

#[test]
fn nan_in_an_iterate_is_reported() {
    for kind in [SolverKind::Projection, SolverKind::Extragradient] {
        let options = SolveOptions {
            step: Some(0.3),
            ..SolveOptions::default()
        };
        let solution = solve_game(&Poisoned, kind, &options).unwrap();
        assert!(!solution.report.converged, "{kind}");
        assert_eq!(
            solution.report.termination,
            Termination::NonFinite,
            "{kind}"
        );
        assert!(
            solution.report.certificate.natural_residual.is_nan(),
            "{kind}"
        );
    }
}

#[test]
fn newton_needs_the_quadratic_game() {
    let game = small_game(false);
    let general: &dyn Game = &game;
    assert!(matches!(
        solve_game(general, SolverKind::Newton, &SolveOptions::default()),
        Err(Error::NeedsQuadraticGame { .. })
    ));
    // The general path still solves the quadratic game with the other solvers.
    let solution = solve_game(general, SolverKind::BestResponse, &SolveOptions::default()).unwrap();
    assert!(solution.report.converged);
}

#[test]
fn invalid_options_are_errors() {
    let game = small_game(false);
    for options in [
        SolveOptions {
            tolerance: 0.0,
            ..SolveOptions::default()
        },
        SolveOptions {
            damping: 0.0,
            ..SolveOptions::default()
        },
        SolveOptions {
            step: Some(f64::NAN),
            ..SolveOptions::default()
        },
        SolveOptions {
            divergence_factor: 0.5,
            ..SolveOptions::default()
        },
    ] {
        assert!(matches!(
            solve(&game, SolverKind::Projection, &options),
            Err(Error::InvalidParameter { .. })
        ));
    }
}

#[test]
fn sparse_game_with_thousands_of_players_is_solved_by_every_solver() {
    let game = generate(&GeneratorConfig {
        players: 20_000,
        seed: 3,
        topology: Topology::Nearest { k: 16 },
        ..GeneratorConfig::default()
    })
    .unwrap();
    let start = Instant::now();
    let mut profiles = Vec::new();
    for kind in SolverKind::ALL {
        let solution = solve(&game, kind, &SolveOptions::new(1e-10, 100_000)).unwrap();
        assert!(
            solution.report.converged,
            "{kind}: {:?}",
            solution.report.termination
        );
        profiles.push(solution.profile);
    }
    for p in &profiles[1..] {
        let d = p
            .iter()
            .zip(&profiles[0])
            .fold(0.0_f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(d < 1e-8, "{d:e}");
    }
    assert!(start.elapsed().as_secs_f64() < 30.0);
}

#[test]
fn games_without_self_cost_or_competition_are_solved() {
    // a = 0 and C = 0: F(s) = −q is constant, L = 0; best responses are bang-bang.
    let game = PruningGame::with_uniform_cost(
        DVector::from_vec(vec![0.5, -0.2, 0.3, 0.05]),
        DVector::zeros(4),
        0.1,
        Competition::None,
    )
    .unwrap();
    for c in configurations(TOLERANCE) {
        let solution = solve(&game, c.kind, &c.options).unwrap();
        assert!(
            solution.report.converged,
            "{}: {:?}",
            c.name, solution.report.termination
        );
        // Here the residual is exactly the distance to the equilibrium (1, 0, 1, 0): each
        // Π(s_i − F_i) is the equilibrium value once s_i is within |q_i| of it.
        for (s, e) in solution.profile.iter().zip([1.0, 0.0, 1.0, 0.0]) {
            assert!((s - e).abs() <= TOLERANCE, "{}: {s} vs {e}", c.name);
        }
    }
}

/// SplitMix64: the test games' one source of randomness, seeded by proptest.
struct SplitMix(u64);

impl SplitMix {
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Games where some players have no self cost (`a_i = 0`, linear utility) and no competitors
/// in their row, so `F_i = −q_i` is constant and their row of the free block is zero; the
/// others have `a_i` above their row and column sums, so the game has one equilibrium. Player 0
/// is always such a player; `C` is stored dense or sparse (the free block is then factorised
/// or solved iteratively).
fn zero_self_cost_game() -> impl Strategy<Value = PruningGame> {
    (
        any::<u64>(),
        5usize..120,
        0.02f64..0.4,
        0.0f64..2.0,
        0.05f64..0.2,
        any::<bool>(),
    )
        .prop_map(|(seed, n, density, beta, zero_fraction, dense)| {
            let mut rng = SplitMix(seed);
            let zero: Vec<bool> = (0..n)
                .map(|i| i == 0 || rng.unit() < zero_fraction)
                .collect();
            let mut entries = Vec::new();
            let (mut rows, mut columns) = (vec![0.0; n], vec![0.0; n]);
            for i in 0..n {
                for (j, column) in columns.iter_mut().enumerate() {
                    let value = beta * rng.unit();
                    if i != j && !zero[i] && rng.unit() < density {
                        entries.push((i, j, value));
                        rows[i] += value;
                        *column += value;
                    }
                }
            }
            let self_cost = DVector::from_fn(n, |i, _| {
                if zero[i] {
                    0.0
                } else {
                    1.2 * f64::max(rows[i], columns[i]) + 0.5 + rng.unit()
                }
            });
            let gamma = DVector::from_fn(n, |_, _| 0.3 * rng.unit());
            let benefit = DVector::from_fn(n, |i, _| {
                let size = 0.01 + 0.99 * rng.unit();
                let q = if rng.unit() < 0.3 { -size } else { size };
                q + gamma[i]
            });
            let competition = if dense {
                let mut c = DMatrix::zeros(n, n);
                for &(i, j, v) in &entries {
                    c[(i, j)] = v;
                }
                Competition::Dense(c)
            } else {
                Competition::Sparse(CsrMatrix::from_triplets(n, &entries).unwrap())
            };
            let upper = DVector::from_element(n, 1.0);
            PruningGame::new(benefit, self_cost, gamma, upper, competition).unwrap()
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Players without self cost leave a zero diagonal in Newton's free block (a zero row, for
    /// these games); Newton must still finish within a small iteration budget, with the
    /// certificate of the exact residual. Before the proximal term it ran to any cap.
    #[test]
    fn newton_converges_quickly_with_players_without_self_cost(game in zero_self_cost_game()) {
        let options = SolveOptions::new(TOLERANCE, 100);
        let solution = solve(&game, SolverKind::Newton, &options).unwrap();
        check_certified(&game, &solution, TOLERANCE, "newton")?;
    }
}
