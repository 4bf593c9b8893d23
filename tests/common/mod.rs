//! Proptest strategies shared by the integration tests: games come from the crate's own
//! seeded generator, with every knob chosen by proptest, so a failing case shrinks to a
//! small configuration that reproduces it.
#![allow(dead_code)]

use proptest::prelude::*;
use pruning_game::game::{generate, BenefitSpec, GeneratorConfig, PruningGame, Topology};

/// Topologies for games of `players` players.
pub fn topology(players: usize) -> impl Strategy<Value = Topology> {
    let k_max = (players - 1).min(6);
    prop_oneof![
        (0.0..=1.0f64).prop_map(|density| Topology::Dense { density }),
        (0..=k_max).prop_map(|k| Topology::Nearest { k }),
        (0.0..=(players - 1) as f64).prop_map(|degree| Topology::Random { degree }),
    ]
}

/// Generator configurations with `players` in `sizes`. `dominance` bounds δ.
pub fn config(
    sizes: std::ops::RangeInclusive<usize>,
    dominance: std::ops::Range<f64>,
) -> impl Strategy<Value = GeneratorConfig> {
    sizes.prop_flat_map(move |players| {
        (
            Just(players),
            any::<u64>(),
            topology(players),
            any::<bool>(),
            0.0..1.0f64,
            0.0..0.5f64,
            0.0..=1.0f64,
            dominance.clone(),
            0.0..2.0f64,
        )
            .prop_map(
                |(
                    players,
                    seed,
                    mut topology,
                    symmetric,
                    beta,
                    gamma,
                    negative_fraction,
                    dominance,
                    alpha,
                )| {
                    // A symmetric ring needs an even number of neighbours.
                    if let (Topology::Nearest { k }, true) = (&mut topology, symmetric) {
                        *k -= *k % 2;
                    }
                    GeneratorConfig {
                        players,
                        seed,
                        topology,
                        symmetric,
                        competition_scale: beta,
                        participation_cost: gamma,
                        benefit: BenefitSpec::Split {
                            negative_fraction,
                            scale: 1.0,
                        },
                        diagonal_dominance: dominance,
                        self_cost: alpha,
                    }
                },
            )
    })
}

/// Small games of every shape, including zero self costs (`α = δ = 0` is reachable).
pub fn game(sizes: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = PruningGame> {
    config(sizes, 0.0..3.0).prop_map(|c| generate(&c).expect("generated configurations are valid"))
}

/// A feasible profile for `game`, from proptest-chosen fractions of each upper bound, with
/// exact zeros and exact upper bounds mixed in.
pub fn profile_for(players: usize) -> impl Strategy<Value = Vec<f64>> {
    proptest::collection::vec(prop_oneof![Just(0.0), Just(1.0), 0.0..=1.0f64], players)
}

/// `cases` cases per property, with failures saved next to the test file
/// (`tests/<name>.proptest-regressions`, committed) so that they are replayed first.
pub fn cases(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..ProptestConfig::default()
    }
}

/// Asserts a failed run printed exactly one `error:` line, no panic, and returns it.
pub fn one_line_error(output: &std::process::Output) -> String {
    assert!(!output.status.success(), "the command was accepted");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    stderr
}

/// Runs the `pruning-game` binary with `args` and collects its output.
pub fn run_cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_pruning-game"))
        .args(args)
        .output()
        .expect("the binary runs")
}

/// A sweep file (TOML) of 6 cells × `replicates` games of `players` sparse players,
/// shared by the sweep tests.
pub fn sweep_text(replicates: usize, players: usize, seed: u64) -> String {
    format!(
        r#"
seed = {seed}
replicates = {replicates}
[grid]
players = {players}
topology = {{ kind = "random", degree = 6.0 }}
gamma = [0.0, 0.1, 0.2]
beta = [0.0, 0.5]
diagonal_dominance = 1.1
benefit = {{ kind = "normal", mean = 0.2, std = 0.3 }}
solver = "best-response"
tolerance = 1e-9
"#
    )
}

/// Gates of `g` at random, a quarter of them at 0.
pub fn random_gates(g: &mut pruning_game::nn::graph::Graph, seed: u64) {
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed);
    let gates: Vec<String> = g
        .params()
        .iter()
        .filter(|p| p.kind == pruning_game::nn::graph::ParamKind::Gate)
        .map(|p| p.name.clone())
        .collect();
    use rand::Rng;
    for name in gates {
        for s in g.param_mut(&name).unwrap() {
            *s = if rng.random_bool(0.25) {
                0.0
            } else {
                rng.random_range(0.1..1.0)
            };
        }
    }
}

/// Kills `child` with SIGKILL (kill number `k`); a run that had ended by itself before must
/// have succeeded. True if the kill hit a running process.
pub fn kill(child: &mut std::process::Child, k: usize) -> bool {
    let running = child.try_wait().unwrap().is_none();
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(
        status.code().is_none_or(|c| c == 0),
        "kill {k}: the run failed by itself ({status})"
    );
    running
}

/// Random 12×12 images whose label is the sign pattern of two pixel sums, so there is a
/// signal to learn.
pub fn images(n: usize, seed: u64) -> pruning_game::nn::Dataset {
    use pruning_game::nn::{DataSource, Dataset, InputSpec};
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let x: Vec<f32> = (0..n * 144).map(|_| rng.random_range(-1.0..1.0)).collect();
    let y: Vec<u32> = (0..n)
        .map(|i| {
            let s = &x[i * 144..(i + 1) * 144];
            let a: f32 = s[..72].iter().sum();
            let b: f32 = s[72..].iter().step_by(3).sum();
            (a > 0.0) as u32 * 2 + (b > 0.0) as u32
        })
        .collect();
    Dataset::new(
        x,
        y,
        vec![1, 12, 12],
        4,
        InputSpec::identity(vec![1, 12, 12]),
        DataSource::Subset {
            parent: Box::new(DataSource::Idx {
                dir: "random".into(),
                split: "train".into(),
            }),
            len: n,
        },
    )
    .unwrap()
}
