//! Latency of the sparse eval path against the dense one.
//!
//! For the Fashion-MNIST MLP 784-512-256-10 and the small CNN with their Linear and Conv2d
//! weights zeroed at random to 80/90/95/98% sparsity, times the dense forward
//! (`Graph::forward`), the all-sparse one and the automatic choice (`SparseModel::new`) at
//! batch 1 and 128. Then, on one layer of each kind (the MLP's 784→512 Linear, the CNN's
//! 32→64 3×3 Conv2d on 13×13), sweeps the density to find where the sparse kernel starts to
//! win: the break-even density. Dense, sparse and auto run interleaved in every round, and
//! each figure is the median over rounds of the mean time per call; the load average is
//! printed before and after, since the machine may be shared.
//!
//! `cargo run --release --example sparse_speed -- [--seed N] [--rounds R]`

use std::time::Instant;

use nalgebra::DMatrix;
use pruning_game::nn::graph::{Conv, Dense, Flatten, Graph, GraphWorkspace, Mode, Node, Op};
use pruning_game::nn::graph::{Param, ParamKind};
use pruning_game::nn::sparse::SparseModel;
use pruning_game::nn::InputSpec;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Zeroes each Linear/Conv2d weight entry with probability `p`.
fn sparsify(g: &mut Graph, p: f64, rng: &mut ChaCha8Rng) {
    let names: Vec<String> = g
        .nodes()
        .iter()
        .filter_map(|n| match &n.op {
            Op::Linear(d) => Some(d.weight),
            Op::Conv2d(c) => Some(c.weight),
            _ => None,
        })
        .map(|w| g.params()[w].name.clone())
        .collect();
    for name in names {
        for v in g.param_mut(&name).unwrap() {
            if rng.random_bool(p) {
                *v = 0.0;
            }
        }
    }
}

/// A path to time: one forward of `batch` samples into its own workspace.
type Run<'a> = Box<dyn FnMut() + 'a>;

fn dense_run<'a>(g: &'a Graph, x: &'a [f32], batch: usize) -> Run<'a> {
    let mut ws = GraphWorkspace::new(g, batch);
    Box::new(move || {
        std::hint::black_box(g.forward(&mut ws, x, batch, Mode::Eval).unwrap());
    })
}

fn sparse_run<'a>(m: &'a SparseModel, x: &'a [f32], batch: usize) -> Run<'a> {
    let mut ws = GraphWorkspace::new(m.graph(), batch);
    Box::new(move || {
        std::hint::black_box(m.forward(&mut ws, x, batch).unwrap());
    })
}

/// Median over `rounds` of the mean seconds per call of each run, the runs interleaved in
/// every round; each round's calls of one run take about `budget` seconds.
fn time(runs: &mut [Run<'_>], rounds: usize, budget: f64) -> Vec<f64> {
    let calls: Vec<usize> = runs
        .iter_mut()
        .map(|r| {
            r(); // warm-up
            let t = Instant::now();
            r();
            ((budget / t.elapsed().as_secs_f64().max(1e-7)) as usize).clamp(1, 10_000)
        })
        .collect();
    let mut per: Vec<Vec<f64>> = vec![Vec::new(); runs.len()];
    for _ in 0..rounds {
        for (k, r) in runs.iter_mut().enumerate() {
            let t = Instant::now();
            for _ in 0..calls[k] {
                r();
            }
            per[k].push(t.elapsed().as_secs_f64() / calls[k] as f64);
        }
    }
    per.into_iter()
        .map(|mut v| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        })
        .collect()
}

fn inputs(n: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
}

fn matrix(r: usize, c: usize, rng: &mut ChaCha8Rng) -> DMatrix<f32> {
    DMatrix::from_fn(r, c, |_, _| rng.random_range(-0.1..0.1))
}

/// One Linear layer `inp → out`, as a graph.
fn linear_layer(inp: usize, out: usize, rng: &mut ChaCha8Rng) -> Graph {
    let params = vec![
        Param {
            name: "0.weight".into(),
            kind: ParamKind::Weight,
            value: matrix(out, inp, rng),
        },
        Param {
            name: "0.bias".into(),
            kind: ParamKind::Weight,
            value: matrix(out, 1, rng),
        },
    ];
    let nodes = vec![
        Node {
            name: "input".into(),
            op: Op::Input,
            inputs: vec![],
        },
        Node {
            name: "0".into(),
            op: Op::Linear(Dense {
                weight: 0,
                bias: Some(1),
            }),
            inputs: vec![0],
        },
    ];
    Graph::new(InputSpec::identity(vec![inp]), nodes, params).unwrap()
}

/// One 3×3 Conv2d `c → o` on `hw × hw` images (no padding) and a flatten, as a graph.
fn conv_layer(c: usize, o: usize, hw: usize, rng: &mut ChaCha8Rng) -> Graph {
    let params = vec![
        Param {
            name: "0.weight".into(),
            kind: ParamKind::Weight,
            value: matrix(o, c * 9, rng),
        },
        Param {
            name: "0.bias".into(),
            kind: ParamKind::Weight,
            value: matrix(o, 1, rng),
        },
    ];
    let node = |name: &str, op, input| Node {
        name: name.into(),
        op,
        inputs: vec![input],
    };
    let nodes = vec![
        Node {
            name: "input".into(),
            op: Op::Input,
            inputs: vec![],
        },
        node(
            "0",
            Op::Conv2d(Conv {
                weight: 0,
                bias: Some(1),
                kernel: 3,
                stride: 1,
                padding: 0,
            }),
            0,
        ),
        node("1", Op::Flatten(Flatten), 1),
    ];
    Graph::new(InputSpec::identity(vec![c, hw, hw]), nodes, params).unwrap()
}

/// The density where the sparse/dense time ratio crosses 1, interpolated between the grid's
/// neighbours (`densities` decreasing); `None` if sparse never wins, the top density if it
/// always does.
fn crossing(densities: &[f64], ratio: &[f64]) -> Option<f64> {
    let k = ratio.iter().position(|&r| r < 1.0)?;
    if k == 0 {
        return Some(densities[0]);
    }
    let (d0, d1, r0, r1) = (densities[k - 1], densities[k], ratio[k - 1], ratio[k]);
    Some(d0 + (d1 - d0) * (r0 - 1.0) / (r0 - r1))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |flag: &str, default: u64| -> u64 {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .map(|v| v.parse().expect("a whole number"))
            .unwrap_or(default)
    };
    let seed = arg("--seed", 17);
    let rounds = arg("--rounds", 7).max(1) as usize;
    let budget = 0.03;
    println!(
        "seed {seed}, {rounds} interleaved rounds, {} rayon threads, load average {}",
        rayon::current_num_threads(),
        load()
    );
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let nets = [
        (
            "MLP 784-512-256-10",
            Graph::mlp(&[784, 512, 256, 10], seed).unwrap(),
        ),
        (
            "small CNN",
            Graph::small_cnn(&[1, 28, 28], 10, seed).unwrap(),
        ),
    ];
    println!();
    println!("| network | sparsity | batch | dense ms | sparse ms | dense/sparse | auto ms | auto sparse layers |");
    println!("|---|---|---|---|---|---|---|---|");
    for (name, base) in &nets {
        for &p in &[0.8, 0.9, 0.95, 0.98] {
            let mut g = base.clone();
            sparsify(&mut g, p, &mut rng);
            let all = SparseModel::with_break_even(&g, f64::INFINITY, f64::INFINITY).unwrap();
            let auto = SparseModel::new(&g).unwrap();
            for &batch in &[1usize, 128] {
                let x = inputs(batch * g.input_len(), &mut rng);
                let mut runs = vec![
                    dense_run(&g, &x, batch),
                    sparse_run(&all, &x, batch),
                    sparse_run(&auto, &x, batch),
                ];
                let t = time(&mut runs, rounds, budget);
                println!(
                    "| {name} | {:.0}% | {batch} | {:.3} | {:.3} | {:.2}x | {:.3} | {} |",
                    p * 100.0,
                    t[0] * 1e3,
                    t[1] * 1e3,
                    t[0] / t[1],
                    t[2] * 1e3,
                    auto.sparse_layers().join(" ")
                );
            }
        }
    }
    let densities = [
        1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.25, 0.2, 0.15, 0.1, 0.05, 0.02,
    ];
    let layers = [
        ("linear 784→512", linear_layer(784, 512, &mut rng)),
        (
            "conv2d 32→64 3×3 on 13×13",
            conv_layer(32, 64, 13, &mut rng),
        ),
    ];
    println!();
    println!("Break-even sweep: sparse time / dense time per density (below 1: sparse wins).");
    println!();
    print!("| layer | batch |");
    for d in densities {
        print!(" {d} |");
    }
    println!(" break-even density |");
    println!("|---|---|{}---|", "---|".repeat(densities.len()));
    for (name, base) in &layers {
        for &batch in &[1usize, 128] {
            let x = inputs(batch * base.input_len(), &mut rng);
            let mut ratios = Vec::new();
            for &d in &densities {
                let mut g = base.clone();
                sparsify(&mut g, 1.0 - d, &mut rng);
                let m = SparseModel::with_break_even(&g, f64::INFINITY, f64::INFINITY).unwrap();
                let mut runs = vec![dense_run(&g, &x, batch), sparse_run(&m, &x, batch)];
                let t = time(&mut runs, rounds, budget);
                ratios.push(t[1] / t[0]);
            }
            print!("| {name} | {batch} |");
            for r in &ratios {
                print!(" {r:.2} |");
            }
            match crossing(&densities, &ratios) {
                Some(d) => println!(" {d:.3} |"),
                None => println!(" below {} |", densities[densities.len() - 1]),
            }
        }
    }
    println!();
    println!("load average at the end {}", load());
}
