//! Benchmark cases shared by `benches/solvers.rs` and `examples/solver_table.rs`: seeded games,
//! the solver variants timed, and the same potential game solved as a QP by clarabel.
#![allow(dead_code)]

use std::time::Instant;

use clarabel::algebra::CscMatrix;
use clarabel::solver::{DefaultSettingsBuilder, DefaultSolver, IPSolver, NonnegativeConeT};
use nalgebra::{DMatrix, DVector};
use pruning_game::equilibrium::{SolveOptions, SolverKind};
use pruning_game::game::{
    generate, natural_residual, Competition, Game, GeneratorConfig, PruningGame, Topology,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Residual every solver is timed to.
pub const TARGET: f64 = 1e-8;

/// How far from singular the game is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Variant {
    /// The generator's symmetric game with δ = 1.5, α = 1: strictly diagonally dominant,
    /// comfortably unique (T2), `M` well conditioned.
    Dominant,
    /// Bipartite competition (players compete only across the two parity classes) with
    /// `a_i = Σ_j C_ij + 10⁻⁴ U(0.5, 1.5)`: `M` is a signless Laplacian plus a tiny diagonal,
    /// so `λ_min(M) ≤ 1.5·10⁻⁴` (Rayleigh quotient at `x_i = (−1)^i`) against
    /// `λ_max ≈ 2 max_i Σ_j C_ij` — condition numbers of 10⁵–10⁷.
    NearlySingular,
}

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Variant::Dominant => "dominant",
            Variant::NearlySingular => "nearly-singular",
        }
    }
}

/// The game of a case: dense, or sparse with 16 competitors per player.
pub fn game(players: usize, sparse: bool, variant: Variant) -> PruningGame {
    match variant {
        Variant::Dominant => generate(&config(players, sparse)).expect("valid generator config"),
        Variant::NearlySingular => nearly_singular(players, sparse),
    }
}

/// The generator's default game made symmetric (a potential game): dense, or a ring with
/// 16 neighbours.
pub fn config(players: usize, sparse: bool) -> GeneratorConfig {
    GeneratorConfig {
        players,
        seed: 1,
        topology: if sparse {
            Topology::Nearest { k: 16 }
        } else {
            Topology::Dense { density: 1.0 }
        },
        symmetric: true,
        // β = γ = 0.1, α = 1, δ = 1.5, 30% of players with q_i < 0.
        ..GeneratorConfig::default()
    }
}

/// The nearly singular potential game of [`Variant::NearlySingular`] (`players` even).
/// Sparse: player `i` competes with `i ± 1, ±3, …, ±15` on a ring (16 competitors, all of
/// the other parity); dense: with every player of the other parity. Entries `0.1 U(0, 1)`,
/// net benefits `q_i ~ U(−0.3, 1)`, `γ = 0.1`.
pub fn nearly_singular(players: usize, sparse: bool) -> PruningGame {
    let n = players + players % 2;
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let competition = if sparse {
        let mut entries = Vec::with_capacity(16 * n);
        for i in 0..n {
            for d in (1..16).step_by(2) {
                let j = (i + d) % n;
                let v = 0.1 * rng.random::<f64>();
                entries.push((i, j, v));
                entries.push((j, i, v));
            }
        }
        Competition::sparse(n, &entries).expect("valid sparse competition")
    } else {
        let mut m = DMatrix::zeros(n, n);
        for j in 0..n {
            for i in (0..j).filter(|i| (i + j) % 2 == 1) {
                let v = 0.1 * rng.random::<f64>();
                m[(i, j)] = v;
                m[(j, i)] = v;
            }
        }
        Competition::dense(m).expect("valid dense competition")
    };
    let mut row = vec![0.0; n];
    for (i, _, v) in competition.triplets() {
        row[i] += v;
    }
    let self_cost = DVector::from_fn(n, |i, _| row[i] + 1e-4 * rng.random_range(0.5..1.5));
    let gamma = 0.1;
    let benefit = DVector::from_fn(n, |_, _| gamma + 0.3 + 1e-3 * rng.random_range(-1.0..1.0));
    PruningGame::new(
        benefit,
        self_cost,
        DVector::from_element(n, gamma),
        DVector::from_element(n, 1.0),
        competition,
    )
    .expect("valid game")
}

/// Iteration budget: about 10⁹ multiply-adds of `M` per solve, between 300 and 20 000
/// iterations, so that a solver that cannot reach the target gives up in seconds.
pub fn budget(game: &PruningGame) -> usize {
    let nnz = game.competition().nnz() + game.num_players();
    (1e9 / nnz as f64).clamp(300.0, 20_000.0) as usize
}

/// The solver variants timed: (name, solver, options).
pub fn solvers(budget: usize) -> Vec<(&'static str, SolverKind, SolveOptions)> {
    let base = SolveOptions {
        tolerance: TARGET,
        max_iterations: budget,
        record_history: false,
        ..SolveOptions::default()
    };
    let with = |name, kind, change: fn(&mut SolveOptions)| {
        let mut options = base.clone();
        change(&mut options);
        (name, kind, options)
    };
    vec![
        with("best-response", SolverKind::BestResponse, |_| {}),
        with("best-response-gs", SolverKind::BestResponse, |o| {
            o.gauss_seidel = true
        }),
        with("projection", SolverKind::Projection, |_| {}),
        with("projection-adaptive", SolverKind::Projection, |o| {
            o.adaptive = true
        }),
        with("extragradient", SolverKind::Extragradient, |_| {}),
        with("extragradient-adaptive", SolverKind::Extragradient, |o| {
            o.adaptive = true
        }),
        with("newton", SolverKind::Newton, |_| {}),
    ]
}

/// The potential game as a QP for clarabel: minimise `½ sᵀMs − qᵀs` subject to `−s ≤ 0` and
/// `s ≤ u` (upper triangle of `M` in CSC form), with tolerances tightened to `1e-10`.
/// Returns the solution, the seconds spent (set-up included) and its natural residual.
pub fn clarabel(game: &PruningGame) -> (Vec<f64>, f64, f64) {
    let n = game.num_players();
    let start = Instant::now();
    let dense = game.competition().to_dense(n);
    let a = game.self_cost();
    let mut colptr = Vec::with_capacity(n + 1);
    let mut rowval = Vec::new();
    let mut nzval = Vec::new();
    colptr.push(0);
    for j in 0..n {
        for i in 0..j {
            let v = dense[(i, j)];
            if v != 0.0 {
                rowval.push(i);
                nzval.push(v);
            }
        }
        rowval.push(j);
        nzval.push(a[j]);
        colptr.push(rowval.len());
    }
    drop(dense);
    let p = CscMatrix::new(n, n, colptr, rowval, nzval);
    let q: Vec<f64> = game.net_benefit().iter().map(|v| -v).collect();
    let constraints = CscMatrix::new(
        2 * n,
        n,
        (0..=n).map(|j| 2 * j).collect(),
        (0..n).flat_map(|j| [j, n + j]).collect(),
        (0..n).flat_map(|_| [-1.0, 1.0]).collect(),
    );
    let mut b = vec![0.0; 2 * n];
    for i in 0..n {
        b[n + i] = game.upper(i);
    }
    let settings = DefaultSettingsBuilder::default()
        .verbose(false)
        .tol_gap_abs(1e-10)
        .tol_gap_rel(1e-10)
        .tol_feas(1e-10)
        .build()
        .expect("valid clarabel settings");
    let cones = [NonnegativeConeT(2 * n)];
    let mut solver =
        DefaultSolver::new(&p, &q, &constraints, &b, &cones, settings).expect("valid QP");
    solver.solve();
    let mut x = solver.solution.x.clone();
    game.project(&mut x);
    let seconds = start.elapsed().as_secs_f64();
    let residual = natural_residual(game, &x);
    (x, seconds, residual)
}
