//! Quick throughput probe that mirrors `benches/torch_reference.py` exactly: per-iteration
//! times of a training step (forward + backward + Adam) and of inference at batch 128, for
//! the MLP 784-512-256-10 and the small CNN, reported as median and best (the best is the
//! most robust figure on a shared machine). Criterion (`cargo bench --bench nn`) gives the
//! same measurements with confidence intervals.
//!
//! `cargo run --release --example nn_speed [-- reps [mlp|cnn]]` (the second argument limits
//! the probe to one model, e.g. for a profiler).

use std::time::Instant;

use anyhow::Result;
use pruning_game::nn::graph::{Graph, GraphGrads, GraphOptimizer, GraphWorkspace, Mode};
use pruning_game::nn::OptimizerConfig;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

const BATCH: usize = 128;

fn stats(mut t: Vec<f64>) -> (f64, f64) {
    t.sort_by(|a, b| a.total_cmp(b));
    (t[t.len() / 2], t[0])
}

fn probe(name: &str, mut model: Graph, reps: usize) -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let x: Vec<f32> = (0..BATCH * model.input_len())
        .map(|_| rng.sample(StandardNormal))
        .collect();
    let y: Vec<u32> = (0..BATCH).map(|_| rng.random_range(0..10)).collect();
    let mut ws = GraphWorkspace::new(&model, BATCH);
    let mut grads = GraphGrads::new(&model);
    let mut opt = GraphOptimizer::new(OptimizerConfig::adam(1e-4), &model)?;
    let mut step_t = Vec::with_capacity(reps);
    let mut inf_t = Vec::with_capacity(reps);
    for i in 0..reps + 5 {
        let t0 = Instant::now();
        model.loss_and_grad(&mut ws, &x, &y, Mode::Train, &mut grads)?;
        opt.step(&mut model, &grads)?;
        if i >= 5 {
            step_t.push(t0.elapsed().as_secs_f64());
        }
    }
    for i in 0..reps + 5 {
        let t0 = Instant::now();
        let out = model.forward(&mut ws, &x, BATCH, Mode::Eval)?;
        std::hint::black_box(out[0]);
        if i >= 5 {
            inf_t.push(t0.elapsed().as_secs_f64());
        }
    }
    let (sm, sb) = stats(step_t);
    let (im, ib) = stats(inf_t);
    let gflop = model.train_flops_per_sample() as f64 * BATCH as f64 / 1e9;
    println!(
        "{name}: train step median {:.3} ms ({:.0} samples/s), best {:.3} ms ({:.0} samples/s, {:.1} GFLOP/s); inference median {:.3} ms, best {:.3} ms",
        sm * 1e3,
        BATCH as f64 / sm,
        sb * 1e3,
        BATCH as f64 / sb,
        gflop / sb,
        im * 1e3,
        ib * 1e3
    );
    Ok(())
}

fn main() -> Result<()> {
    let reps: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(50);
    let only = std::env::args().nth(2);
    let wanted = |name: &str| only.as_deref().is_none_or(|o| name.starts_with(o));
    println!(
        "rust/nalgebra+matrixmultiply, rayon threads {}",
        rayon::current_num_threads()
    );
    if wanted("mlp") {
        probe(
            "mlp_784_512_256_10",
            Graph::mlp(&[784, 512, 256, 10], 1)?,
            reps,
        )?;
    }
    if wanted("cnn") {
        probe(
            "small_cnn",
            Graph::small_cnn(&[1, 28, 28], 10, 1)?,
            reps / 2,
        )?;
    }
    if only.is_some() {
        return Ok(());
    }
    // GEMM peak through the backend's own path: one 1200x1200 linear layer on 1200 samples (not a power of two, which aliases in cache).
    let big = Graph::mlp(&[1200, 1200], 1)?;
    let xb: Vec<f32> = (0..1200 * 1200).map(|i| ((i % 13) as f32) * 0.1).collect();
    let mut wsb = GraphWorkspace::new(&big, 1200);
    let mut best = f64::INFINITY;
    for _ in 0..10 {
        let t0 = Instant::now();
        std::hint::black_box(big.forward(&mut wsb, &xb, 1200, Mode::Eval)?[0]);
        best = best.min(t0.elapsed().as_secs_f64());
    }
    println!(
        "backend sgemm 1200^3 (rayon-split matrixmultiply): best {:.1} GFLOP/s",
        2.0 * 1200f64.powi(3) / best / 1e9
    );
    let n = 1200;
    let a = nalgebra::DMatrix::<f32>::from_fn(n, n, |i, j| ((i * 7 + j) % 13) as f32 * 0.1);
    let mut c = nalgebra::DMatrix::<f32>::zeros(n, n);
    let mut best = f64::INFINITY;
    for _ in 0..10 {
        let t0 = Instant::now();
        c.gemm(1.0, &a, &a, 0.0);
        best = best.min(t0.elapsed().as_secs_f64());
    }
    println!(
        "nalgebra sgemm 1200 (single-threaded matrixmultiply): best {:.1} GFLOP/s",
        2.0 * (n * n * n) as f64 / best / 1e9
    );
    Ok(())
}
