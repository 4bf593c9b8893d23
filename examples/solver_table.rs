//! Prints the solver comparison table of `benches/README.md` in one run: for each game
//! (N, storage, variant) and each solver, the seconds and iterations to a natural residual of
//! 1e-8, the residual reached, and — for the dense potential games — the time ratio against
//! clarabel solving the same game as a QP.
//!
//! ```text
//! cargo run --release --example solver_table                 # full table
//! cargo run --release --example solver_table -- --quick      # N ≤ 1000 dense, ≤ 10^5 sparse
//! cargo run --release --example solver_table -- --no-clarabel
//! cargo run --release --example solver_table -- --clarabel-max 1000
//! cargo run --release --example solver_table -- --solvers newton,best-response
//! ```

#[path = "../benches/common/mod.rs"]
mod common;

use std::time::Instant;

use common::{budget, clarabel, game as build, solvers, Variant, TARGET};
use pruning_game::equilibrium::solve;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let with_clarabel = !args.iter().any(|a| a == "--no-clarabel");
    // clarabel's dense factorisations grow as N³: `--clarabel-max N` bounds the sizes it gets.
    let clarabel_limit = args
        .iter()
        .position(|a| a == "--clarabel-max")
        .and_then(|k| args.get(k + 1))
        .map(|v| v.parse::<usize>())
        .transpose()?
        .unwrap_or(usize::MAX);
    // `--solvers a,b` keeps only the named rows (names as in the table).
    let only: Option<Vec<String>> = args
        .iter()
        .position(|a| a == "--solvers")
        .and_then(|k| args.get(k + 1))
        .map(|v| v.split(',').map(str::to_string).collect());
    let dense: &[usize] = if quick {
        &[100, 1000]
    } else {
        &[100, 1000, 4000]
    };
    let sparse: &[usize] = if quick {
        &[10_000, 100_000]
    } else {
        &[10_000, 100_000, 1_000_000]
    };
    println!(
        "| N | storage | variant | solver | seconds | iterations | residual | converged | ours / clarabel |"
    );
    println!("|---:|---|---|---|---:|---:|---:|---|---:|");
    let cases = dense
        .iter()
        .map(|&n| (n, false))
        .chain(sparse.iter().map(|&n| (n, true)));
    for (n, is_sparse) in cases {
        for variant in [Variant::Dominant, Variant::NearlySingular] {
            let generated = Instant::now();
            let game = build(n, is_sparse, variant);
            eprintln!(
                "N = {n} {} {}: generated in {:.2} s ({} non-zeros)",
                if is_sparse { "sparse" } else { "dense" },
                variant.name(),
                generated.elapsed().as_secs_f64(),
                game.competition().nnz()
            );
            let storage = if is_sparse { "sparse" } else { "dense" };
            let reference = if with_clarabel && !is_sparse && n <= clarabel_limit {
                let (_, seconds, residual) = clarabel(&game);
                println!(
                    "| {n} | {storage} | {} | clarabel (QP) | {seconds:.4} | – | {residual:.1e} | {} | 1 |",
                    variant.name(),
                    if residual <= TARGET { "yes" } else { "no" },
                );
                Some((seconds, residual))
            } else {
                None
            };
            for (name, kind, options) in solvers(budget(&game)) {
                if only.as_ref().is_some_and(|o| !o.iter().any(|x| x == name)) {
                    continue;
                }
                let solution = solve(&game, kind, &options)?;
                let report = &solution.report;
                let ratio = match reference {
                    Some((seconds, _)) if report.converged => {
                        format!("{:.3}", report.seconds / seconds)
                    }
                    _ => "–".into(),
                };
                println!(
                    "| {n} | {storage} | {} | {name} | {:.4} | {} | {:.1e} | {} | {ratio} |",
                    variant.name(),
                    report.seconds,
                    report.iterations,
                    report.certificate.natural_residual,
                    if report.converged {
                        "yes".to_string()
                    } else {
                        format!("no ({})", report.termination)
                    },
                );
            }
        }
    }
    Ok(())
}
