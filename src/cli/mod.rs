//! Subcommands of the `pruning-game` binary.

mod analyze;
mod generate;
mod merge;
mod plot;
mod prune;
mod simulate;
mod solve;

use clap::{Parser, Subcommand};

/// Neural-network pruning as a continuous non-cooperative game.
#[derive(Debug, Parser)]
#[command(name = "pruning-game", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a seeded synthetic pruning game to a game file (JSON, or safetensors for `.safetensors`).
    Generate(generate::Args),
    /// Compute a Nash equilibrium of a game file, with its certificate.
    Solve(solve::Args),
    /// Dominance, iterated-elimination bounds, uniqueness and potential of a game file.
    Analyze(analyze::Args),
    /// Run a sweep of synthetic games in parallel.
    Simulate(simulate::Args),
    /// Combine the output folders of a sharded sweep.
    Merge(merge::Args),
    /// Train a network and prune it with the equilibrium-driven pruner.
    Prune(Box<prune::Args>),
    /// Render figures from result files.
    Plot(plot::Args),
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Generate(args) => generate::run(args),
        Command::Solve(args) => solve::run(args),
        Command::Analyze(args) => analyze::run(args),
        Command::Simulate(args) => simulate::run(args),
        Command::Merge(args) => merge::run(args),
        Command::Prune(args) => prune::run(*args),
        Command::Plot(args) => plot::run(args),
    }
}

/// An error and its causes on one line.
pub fn one_line(error: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ").replace('\n', " ")
}
