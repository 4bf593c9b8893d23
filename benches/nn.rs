//! Throughput of one full training step (forward + backward + Adam) and inference latency of
//! one batch, for the 784-512-256-10 MLP and the small CNN at batch 128, plus a raw GEMM
//! probe (1200³, nalgebra → matrixmultiply, one thread) that gives the reachable GFLOP/s.
//!
//! `cargo bench --bench nn`; compare with `python benches/torch_reference.py`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pruning_game::nn::graph::{Graph, GraphGrads, GraphOptimizer, GraphWorkspace, Mode};
use pruning_game::nn::OptimizerConfig;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

const BATCH: usize = 128;

fn inputs(model: &Graph, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = (0..BATCH * model.input_len())
        .map(|_| rng.sample(StandardNormal))
        .collect();
    let y = (0..BATCH).map(|_| rng.random_range(0..10)).collect();
    (x, y)
}

fn bench_model(c: &mut Criterion, name: &str, mut model: Graph) {
    let (x, y) = inputs(&model, 1);
    let mut ws = GraphWorkspace::new(&model, BATCH);
    let mut grads = GraphGrads::new(&model);
    let mut opt = GraphOptimizer::new(OptimizerConfig::adam(1e-4), &model).expect("adam");
    let flops = model.train_flops_per_sample() as f64 * BATCH as f64;
    eprintln!(
        "{name}: {:.1} MFLOP per training step (GEMMs: forward, weight and input gradients)",
        flops / 1e6
    );
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("train_step_b128", |b| {
        b.iter(|| {
            model
                .loss_and_grad(&mut ws, &x, &y, Mode::Train, &mut grads)
                .expect("step");
            opt.step(&mut model, &grads).expect("adam");
        })
    });
    g.bench_function("inference_b128", |b| {
        b.iter(|| {
            let out = model
                .forward(&mut ws, &x, BATCH, Mode::Eval)
                .expect("forward");
            std::hint::black_box(out[0]);
        })
    });
    g.finish();
}

fn gemm_peak(c: &mut Criterion) {
    // A large square product measures what matrixmultiply reaches on this machine.
    let n = 1200;
    let a = nalgebra::DMatrix::<f32>::from_fn(n, n, |i, j| ((i * 7 + j) % 13) as f32 * 0.1);
    let b = a.transpose();
    let mut out = nalgebra::DMatrix::<f32>::zeros(n, n);
    let mut g = c.benchmark_group("gemm");
    g.throughput(Throughput::Elements((2 * n * n * n) as u64));
    g.bench_function("sgemm_1200_flops", |bch| {
        bch.iter(|| out.gemm(1.0, &a, &b, 0.0))
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    bench_model(
        c,
        "mlp_784_512_256_10",
        Graph::mlp(&[784, 512, 256, 10], 1).expect("mlp"),
    );
    bench_model(
        c,
        "small_cnn",
        Graph::small_cnn(&[1, 28, 28], 10, 1).expect("cnn"),
    );
    gemm_peak(c);
}

criterion_group! {
    name = nn;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(4));
    targets = benches
}
criterion_main!(nn);
