//! Time to a natural residual of 1e-8 for every solver on seeded games: dense N ∈ {100, 1000,
//! 4000}, sparse N ∈ {10^4, 10^5, 10^6} with 16 competitors, diagonally dominant and nearly
//! singular variants, plus clarabel on the dense potential games as the equivalent QP.
//!
//! Only solver/game pairs that reach the target within their budget are timed (a pre-run
//! decides); the table with ratios is printed by `examples/solver_table.rs`. Games are built
//! outside the timed closures. `cargo bench --bench solvers -- --quick` runs it in minutes;
//! `PRUNING_GAME_BENCH_MAX_N=100000` skips the larger sizes, and clarabel runs for
//! N ≤ `PRUNING_GAME_BENCH_CLARABEL_MAX_N` (default 1000: its dense factorisations at N = 4000
//! take minutes per solve).

#[path = "common/mod.rs"]
mod common;

use std::time::Duration;

use common::{budget, clarabel, game, solvers, Variant};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use pruning_game::equilibrium::solve;
use pruning_game::game::Game;

fn limit(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn bench_case(c: &mut Criterion, n: usize, sparse: bool, variant: Variant, clarabel_max: usize) {
    let game = game(n, sparse, variant);
    let name = format!(
        "{}/{}/{}",
        if sparse { "sparse" } else { "dense" },
        variant.name(),
        n
    );
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(2));
    for (solver, kind, options) in solvers(budget(&game)) {
        let trial = solve(&game, kind, &options).expect("valid options");
        if !trial.report.converged {
            eprintln!(
                "skipping {solver} on {n} {}: {} ({:.1e})",
                variant.name(),
                trial.report.termination,
                trial.report.certificate.natural_residual
            );
            continue;
        }
        group.bench_function(BenchmarkId::from_parameter(solver), |b| {
            b.iter(|| solve(&game, kind, &options).expect("valid options"))
        });
    }
    if !sparse && game.num_players() <= clarabel_max {
        group.bench_function(BenchmarkId::from_parameter("clarabel"), |b| {
            b.iter(|| clarabel(&game))
        });
    }
    group.finish();
}

fn solvers_bench(c: &mut Criterion) {
    let max_n = limit("PRUNING_GAME_BENCH_MAX_N", usize::MAX);
    let clarabel_max = limit("PRUNING_GAME_BENCH_CLARABEL_MAX_N", 1000);
    for variant in [Variant::Dominant, Variant::NearlySingular] {
        for n in [100, 1000, 4000].into_iter().filter(|&n| n <= max_n) {
            bench_case(c, n, false, variant, clarabel_max);
        }
        for n in [10_000, 100_000, 1_000_000]
            .into_iter()
            .filter(|&n| n <= max_n)
        {
            bench_case(c, n, true, variant, clarabel_max);
        }
    }
}

criterion_group!(benches, solvers_bench);
criterion_main!(benches);
