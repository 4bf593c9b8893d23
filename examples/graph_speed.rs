//! Training-step throughput of the graph backend, mirroring `benches/torch_graph_speed.py`
//! exactly: batch 128 of 1×28×28 inputs, forward + backward in training mode + running
//! statistics + SGD with momentum and weight decay, for the BN-CNN (32-64-128) and ResNet-8
//! and -20; median and best step times over `reps` steps after 3 warm-up steps, in
//! samples/s. Run both, interleaved, on a quiet machine with the same thread count
//! (`RAYON_NUM_THREADS=2`, the script's `THREADS=2`). Each network is exported to
//! `runs/graph_speed/NAME.safetensors` first, so that the script times the very same graphs:
//! `python3 benches/torch_graph_speed.py 20 runs/graph_speed/*.safetensors`.
//!
//! `cargo run --release --example graph_speed [-- reps [bn-cnn|resnet8|resnet20]]`

use std::time::Instant;

use anyhow::{bail, Result};
use pruning_game::nn::graph::{Graph, GraphGrads, GraphOptimizer, GraphWorkspace, Mode};
use pruning_game::nn::{InputSpec, OptimizerConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

const BATCH: usize = 128;

fn probe(name: &str, mut g: Graph, reps: usize) -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let x: Vec<f32> = (0..BATCH * g.input_len())
        .map(|_| rng.sample(StandardNormal))
        .collect();
    let y: Vec<u32> = (0..BATCH).map(|_| rng.random_range(0..10)).collect();
    let opt_cfg = OptimizerConfig::Sgd {
        lr: 0.01,
        momentum: 0.9,
        weight_decay: 5e-4,
    };
    let mut opt = GraphOptimizer::new(opt_cfg, &g)?;
    let mut ws = GraphWorkspace::new(&g, BATCH);
    let mut grads = GraphGrads::new(&g);
    let mut times = Vec::with_capacity(reps);
    for i in 0..reps + 3 {
        let t0 = Instant::now();
        g.loss_and_grad(&mut ws, &x, &y, Mode::Train, &mut grads)?;
        g.update_running_stats(&ws)?;
        opt.step(&mut g, &grads)?;
        if i >= 3 {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let (median, best) = (times[times.len() / 2], times[0]);
    println!(
        "{name:<10} train step  median {:7.2} ms ({:6.0} samples/s)  best {:7.2} ms",
        median * 1e3,
        BATCH as f64 / median,
        best * 1e3
    );
    Ok(())
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let reps: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(20);
    let only = args.next();
    let input = InputSpec::fashion_mnist();
    for name in ["bn-cnn", "resnet8", "resnet20"] {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let g = match name {
            "bn-cnn" => Graph::bn_cnn(input.clone(), &[32, 64, 128], 10, 0)?,
            "resnet8" => Graph::resnet(8, input.clone(), 10, 0)?,
            "resnet20" => Graph::resnet(20, input.clone(), 10, 0)?,
            _ => bail!("unknown model"),
        };
        std::fs::create_dir_all("runs/graph_speed")?;
        g.export(std::path::Path::new(&format!(
            "runs/graph_speed/{name}.safetensors"
        )))?;
        probe(name, g, reps)?;
    }
    if let Some(o) = only.filter(|o| !["bn-cnn", "resnet8", "resnet20"].contains(&o.as_str())) {
        bail!("unknown model {o}: bn-cnn, resnet8 or resnet20");
    }
    Ok(())
}
