//! Properties of the game core: best responses, certificates, pseudo-gradients, generators.

mod common;

use nalgebra::{DMatrix, DVector};
use proptest::prelude::*;
use pruning_game::game::{
    generate, maximise_on_interval, nash_gap, natural_residual, BenefitSpec, Competition, Game,
    GeneratorConfig, PruningGame, SaturatingGame, Topology,
};

/// Points of the dense grid a best response is compared against.
const GRID_POINTS: usize = 2001;
/// Rounding slack for utilities of order one evaluated in f64: a handful of ulps of the
/// terms involved (`|q|, a, Σ C s` are all below ~10 here).
const UTILITY_ROUNDING: f64 = 1e-12;

fn game_and_profile() -> impl Strategy<Value = (PruningGame, Vec<f64>)> {
    common::game(1..=12).prop_flat_map(|g| {
        let n = g.num_players();
        (Just(g), common::profile_for(n))
    })
}

fn scaled(game: &PruningGame, fractions: &[f64]) -> Vec<f64> {
    fractions
        .iter()
        .enumerate()
        .map(|(i, f)| f * game.upper(i))
        .collect()
}

proptest! {
    #![proptest_config(common::cases(256))]

    /// The closed-form best response is at least as good as every point of a dense grid.
    #[test]
    fn closed_form_best_response_beats_a_dense_grid((game, fractions) in game_and_profile()) {
        let profile = scaled(&game, &fractions);
        for i in 0..game.num_players() {
            let best = game.best_response(i, &profile);
            prop_assert!((0.0..=game.upper(i)).contains(&best));
            let value = game.utility(i, best, &profile);
            for k in 0..GRID_POINTS {
                let x = game.upper(i) * k as f64 / (GRID_POINTS - 1) as f64;
                let other = game.utility(i, x, &profile);
                prop_assert!(value >= other - UTILITY_ROUNDING, "player {i}: U(BR={best}) = {value} < U({x}) = {other}");
            }
        }
    }

    /// The closed form and argmin's Brent method reach the same utility.
    #[test]
    fn closed_form_best_response_matches_brent((game, fractions) in game_and_profile()) {
        let profile = scaled(&game, &fractions);
        for i in 0..game.num_players() {
            let closed = game.utility(i, game.best_response(i, &profile), &profile);
            let brent_x = maximise_on_interval(|x| game.utility(i, x, &profile), game.upper(i));
            let brent = game.utility(i, brent_x, &profile);
            // Brent locates the maximiser to ~1e-10; the utility is flat there, so values agree
            // to rounding; at a kink on the boundary both pick the same end point.
            prop_assert!((closed - brent).abs() <= 1e-9, "player {i}: closed {closed} vs brent {brent}");
            prop_assert!(closed >= brent - UTILITY_ROUNDING);
        }
    }

    /// Gap and residual are non-negative everywhere, and both vanish at a profile built to be
    /// an equilibrium (each player's KKT condition holds by construction).
    #[test]
    fn certificates_vanish_exactly_at_a_constructed_equilibrium(
        (game, fractions) in game_and_profile(),
        margins in proptest::collection::vec(0.01..1.0f64, 12),
    ) {
        let any_profile = scaled(&game, &fractions);
        prop_assert!(nash_gap(&game, &any_profile) >= 0.0);
        prop_assert!(natural_residual(&game, &any_profile) >= 0.0);

        // Choose q so that `any_profile` is an equilibrium: F_i = (M s)_i − q_i must be 0 for
        // interior players, positive at 0 and negative at the upper bound.
        let n = game.num_players();
        let pressure = game.competition_pressure(&any_profile);
        let q: Vec<f64> = (0..n).map(|i| {
            let ms = game.self_cost()[i] * any_profile[i] + pressure[i];
            if any_profile[i] == 0.0 { ms - margins[i] }
            else if any_profile[i] == game.upper(i) { ms + margins[i] }
            else { ms }
        }).collect();
        // An interior player with a_i = 0 is only an equilibrium if its slope is exactly 0.
        let equilibrium_game = PruningGame::new(
            DVector::from_vec(q) + game.participation_cost(),
            game.self_cost().clone(),
            game.participation_cost().clone(),
            game.upper_bounds().clone(),
            game.competition().clone(),
        ).unwrap();
        let gap = nash_gap(&equilibrium_game, &any_profile);
        let residual = natural_residual(&equilibrium_game, &any_profile);
        // q was computed from the same products, so only the rounding of b = q + γ remains.
        prop_assert!(gap <= 1e-13, "gap {gap}");
        prop_assert!(residual <= 1e-13, "residual {residual}");
    }

    /// `F(s)_i` equals minus a central finite difference of `U_i` in `s_i`.
    #[test]
    fn pseudo_gradient_matches_finite_differences((game, fractions) in game_and_profile()) {
        let profile = scaled(&game, &fractions);
        let mut gradient = vec![0.0; profile.len()];
        game.pseudo_gradient(&profile, &mut gradient);
        check_finite_differences(&game, &profile, &gradient)?;
    }

    /// The same for the non-quadratic saturating game.
    #[test]
    fn saturating_pseudo_gradient_matches_finite_differences(
        (values, rates, fractions) in (1..10usize).prop_flat_map(|n| (
            proptest::collection::vec(0.1..3.0f64, n),
            proptest::collection::vec(0.2..4.0f64, n),
            common::profile_for(n),
        )),
        gamma in 0.0..0.5f64,
        seed in any::<u64>(),
    ) {
        let game = saturating(&values, &rates, gamma, seed);
        let mut gradient = vec![0.0; values.len()];
        game.pseudo_gradient(&fractions, &mut gradient);
        check_finite_differences(&game, &fractions, &gradient)?;
        // Brent's best response matches the first-order condition in closed form.
        for i in 0..values.len() {
            let numeric = game.best_response(i, &fractions);
            let closed = game.best_response_closed_form(i, &fractions);
            prop_assert!((numeric - closed).abs() <= 1e-7, "player {i}: brent {numeric} vs closed form {closed}");
        }
    }

    /// Same configuration, same game; the requested fraction of negative net benefits is exact;
    /// symmetric, k-nearest and dominance knobs do what they say.
    #[test]
    fn generator_is_deterministic_and_honours_its_knobs(config in common::config(2..=40, 0.0..3.0)) {
        let game = generate(&config).unwrap();
        prop_assert_eq!(&game, &generate(&config).unwrap());
        let n = config.players;
        if let BenefitSpec::Split { negative_fraction, .. } = config.benefit {
            let negatives = game.net_benefit().iter().filter(|q| **q < 0.0).count();
            prop_assert_eq!(negatives, (negative_fraction * n as f64).round() as usize);
        }
        if config.symmetric {
            prop_assert!(game.competition().is_symmetric());
        }
        if let (Topology::Nearest { k }, Competition::Sparse(m)) = (config.topology, game.competition()) {
            for i in 0..n {
                prop_assert_eq!(m.row(i).count(), k);
            }
        }
        if config.diagonal_dominance > 1.0 {
            let c = game.competition().to_dense(n);
            for i in 0..n {
                let a = game.self_cost()[i];
                prop_assert!(a > c.row(i).sum() || a > 0.0 && c.row(i).sum() == 0.0);
                prop_assert!(a > c.column(i).sum() || a > 0.0 && c.column(i).sum() == 0.0);
            }
        }
    }

    /// Sparse and dense storage of the same matrix give the same products and games.
    #[test]
    fn sparse_and_dense_competition_agree((game, fractions) in game_and_profile()) {
        let n = game.num_players();
        let dense = Competition::dense(game.competition().to_dense(n)).unwrap();
        let triplets: Vec<_> = game.competition().triplets().collect();
        let sparse = Competition::sparse(n, &triplets).unwrap();
        let (mut a, mut b) = (vec![0.0; n], vec![0.0; n]);
        dense.mul_vec(&fractions, &mut a);
        sparse.mul_vec(&fractions, &mut b);
        for i in 0..n {
            prop_assert!((a[i] - b[i]).abs() <= 1e-14 * (1.0 + a[i].abs()));
            prop_assert!((a[i] - sparse.row_dot(i, &fractions)).abs() <= 1e-14 * (1.0 + a[i].abs()));
        }
        prop_assert_eq!(dense.is_symmetric(), sparse.is_symmetric());
    }
}

fn saturating(values: &[f64], rates: &[f64], gamma: f64, seed: u64) -> SaturatingGame {
    let n = values.len();
    let competition = generate(&GeneratorConfig {
        players: n,
        seed,
        topology: Topology::Dense { density: 0.7 },
        competition_scale: 0.3,
        ..GeneratorConfig::default()
    })
    .unwrap()
    .competition()
    .clone();
    SaturatingGame::new(
        DVector::from_column_slice(values),
        DVector::from_column_slice(rates),
        DVector::from_element(n, gamma),
        DVector::from_element(n, 1.0),
        competition,
    )
    .unwrap()
}

/// Central differences with step `h = 1e-5`: truncation error `h² |U'''| / 6` is 0 for the
/// quadratic game and below `1e-10 · v κ³` for the saturating one; rounding adds about
/// `ε |U| / h ≈ 1e-11`. A tolerance of `1e-7` leaves a wide margin for both.
fn check_finite_differences<G: Game>(
    game: &G,
    profile: &[f64],
    gradient: &[f64],
) -> Result<(), TestCaseError> {
    let h = 1e-5;
    for i in 0..profile.len() {
        let s = profile[i];
        let numeric =
            (game.utility(i, s + h, profile) - game.utility(i, s - h, profile)) / (2.0 * h);
        prop_assert!(
            (-gradient[i] - numeric).abs() <= 1e-7,
            "player {i}: F = {} vs -dU/ds = {}",
            gradient[i],
            -numeric
        );
        prop_assert!((game.own_gradient(i, s, profile) - numeric).abs() <= 1e-7);
    }
    Ok(())
}

#[test]
fn zero_self_cost_best_response_is_bang_bang_or_keeps_its_place() {
    // One player, a = 0: slope q_i − Σ C s decides.
    let competition =
        Competition::dense(DMatrix::from_row_slice(2, 2, &[0.0, 1.0, 1.0, 0.0])).unwrap();
    let game = PruningGame::with_uniform_cost(
        DVector::from_vec(vec![0.5, 0.5]),
        DVector::zeros(2),
        0.0,
        competition,
    )
    .unwrap();
    assert_eq!(game.best_response(0, &[0.3, 0.2]), 1.0); // slope 0.3 > 0
    assert_eq!(game.best_response(0, &[0.3, 0.9]), 0.0); // slope −0.4 < 0
    assert_eq!(game.best_response(0, &[0.3, 0.5]), 0.3); // slope 0: stays where it is
}
