//! Gradient checks: analytic `dL/dW`, `dL/db`, `dL/ds` against central finite differences on
//! random small MLPs and CNNs (proptest).
//!
//! Tolerances. The network runs in `f32`; the loss is accumulated in `f64`. With step
//! `h = 2e-3` the central difference has truncation error `O(h²)` ≈ 1e-5 for these
//! O(1)-scaled nets and `f32` round-off (forward sums of ~100 terms, ≈ 1e-6 relative) ≈ `1e-6 / h` = 5e-4, so we accept
//! `|analytic − fd| ≤ 2e-3 + 2e-2·|fd|`. A ReLU or max-pool kink inside `[θ−h, θ+h]` makes the
//! difference meaningless; such coordinates are detected by comparing the differences at `h`
//! and `h/2` and skipped, and at most 15% of coordinates may be skipped, so a wrong gradient
//! cannot hide behind the skip rule.

use nalgebra::{DMatrix, DVector};
use proptest::prelude::*;
use pruning_game::nn::{Conv2d, Gradients, InputSpec, Layer, Linear, MaxPool2d, Model, Workspace};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

const H: f32 = 2e-3;
const ATOL: f64 = 2e-3;
const RTOL: f64 = 2e-2;
const MAX_SKIPPED: f64 = 0.15;

fn randn(rng: &mut ChaCha8Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| rng.sample::<f32, _>(StandardNormal) * scale)
        .collect()
}

fn gates(rng: &mut ChaCha8Rng, n: usize) -> DVector<f32> {
    // Some gates exactly 0: dL/ds at s = 0 is what a pruner reads.
    DVector::from_fn(n, |_, _| {
        if rng.random_bool(0.2) {
            0.0
        } else {
            rng.random_range(0.2..1.0)
        }
    })
}

fn linear(rng: &mut ChaCha8Rng, i: usize, o: usize, gated: bool) -> Layer {
    let w = DMatrix::from_vec(o, i, randn(rng, o * i, 1.0 / (i as f32).sqrt()));
    let b = DVector::from_vec(randn(rng, o, 0.3));
    let g = gated.then(|| gates(rng, o));
    Layer::Linear(Linear::new(w, b, g).expect("consistent shapes"))
}

fn conv(rng: &mut ChaCha8Rng, c: usize, o: usize, k: usize, stride: usize, pad: usize) -> Layer {
    let fan = c * k * k;
    let w = DMatrix::from_vec(o, fan, randn(rng, o * fan, 1.0 / (fan as f32).sqrt()));
    let b = DVector::from_vec(randn(rng, o, 0.3));
    Layer::Conv2d(
        Conv2d::new(c, k, stride, pad, w, b, Some(gates(rng, o))).expect("consistent shapes"),
    )
}

fn loss(model: &Model, ws: &mut Workspace, x: &[f32], y: &[u32]) -> f64 {
    model.evaluate_batch(ws, x, y).expect("valid batch").loss
}

/// Checks every weight, bias and gate of `model`; returns an error message on failure.
fn check(mut model: Model, x: &[f32], y: &[u32]) -> Result<(), String> {
    let mut ws = Workspace::new(&model, y.len());
    let mut grads = Gradients::new(&model);
    model
        .loss_and_grad(&mut ws, x, y, &mut grads)
        .map_err(|e| e.to_string())?;
    let (mut checked, mut skipped) = (0usize, 0usize);
    let mut compare = |what: String, analytic: f64, fd: [f64; 2]| -> Result<(), String> {
        if (fd[0] - fd[1]).abs() > ATOL + RTOL * fd[0].abs() {
            skipped += 1;
            return Ok(());
        }
        checked += 1;
        if (analytic - fd[0]).abs() > ATOL + RTOL * fd[0].abs() {
            return Err(format!(
                "{what}: analytic {analytic:.6} vs finite difference {:.6}",
                fd[0]
            ));
        }
        Ok(())
    };
    for layer in 0..model.layers().len() {
        let Some(g) = grads.layer(layer).cloned() else {
            continue;
        };
        let (nw, nb) = model
            .parameters_mut(layer)
            .map(|(w, b)| (w.len(), b.len()))
            .unwrap_or((0, 0));
        for k in 0..nw + nb {
            let mut fd = [0.0; 2];
            for (slot, h) in [H, H / 2.0].into_iter().enumerate() {
                let eval = |d: f32, m: &mut Model| {
                    let (w, b) = m.parameters_mut(layer).expect("parametrised layer");
                    if k < nw {
                        w[k] += d
                    } else {
                        b[k - nw] += d
                    }
                };
                eval(h, &mut model);
                let up = loss(&model, &mut ws, x, y);
                eval(-2.0 * h, &mut model);
                let down = loss(&model, &mut ws, x, y);
                eval(h, &mut model);
                fd[slot] = (up - down) / (2.0 * h as f64);
            }
            let a = if k < nw {
                g.weight.as_slice()[k]
            } else {
                g.bias[k - nw]
            } as f64;
            compare(format!("layer {layer} param {k}"), a, fd)?;
        }
        if let Some(gg) = &g.gate {
            for u in 0..gg.len() {
                let mut fd = [0.0; 2];
                for (slot, h) in [H, H / 2.0].into_iter().enumerate() {
                    let s0 = model.gate(layer).expect("gated")[u];
                    let at = |s: f32, m: &mut Model, ws: &mut Workspace| {
                        m.gate_mut(layer).expect("gated")[u] = s;
                        let l = loss(m, ws, x, y);
                        m.gate_mut(layer).expect("gated")[u] = s0;
                        l
                    };
                    fd[slot] = if s0 <= 0.0 {
                        // Gates live in [0, 1]: at s = 0 the derivative is one-sided;
                        // second-order forward difference (-3 L0 + 4 L(h) - L(2h)) / 2h.
                        let l0 = at(0.0, &mut model, &mut ws);
                        let l1 = at(h, &mut model, &mut ws);
                        let l2 = at(2.0 * h, &mut model, &mut ws);
                        (-3.0 * l0 + 4.0 * l1 - l2) / (2.0 * h as f64)
                    } else {
                        let up = at(s0 + h, &mut model, &mut ws);
                        let down = at(s0 - h, &mut model, &mut ws);
                        (up - down) / (2.0 * h as f64)
                    };
                }
                compare(format!("layer {layer} gate {u}"), gg[u] as f64, fd)?;
            }
        }
    }
    let total = (checked + skipped) as f64;
    if skipped as f64 > MAX_SKIPPED * total {
        return Err(format!("{skipped} of {total} coordinates sat on a kink"));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn nn_mlp_gradients_match_finite_differences(
        seed in any::<u64>(),
        widths in prop::collection::vec(2usize..7, 1..3),
        inputs in 2usize..6,
        classes in 2usize..5,
        batch in 1usize..5,
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut layers = Vec::new();
        let mut prev = inputs;
        for &w in &widths {
            layers.push(linear(&mut rng, prev, w, true));
            layers.push(Layer::Relu);
            prev = w;
        }
        layers.push(linear(&mut rng, prev, classes, false));
        let model = Model::new(InputSpec::identity(vec![inputs]), layers).expect("valid model");
        let x = randn(&mut rng, batch * inputs, 1.0);
        let y: Vec<u32> = (0..batch).map(|_| rng.random_range(0..classes as u32)).collect();
        if let Err(msg) = check(model, &x, &y) {
            prop_assert!(false, "{}", msg);
        }
    }

    #[test]
    fn nn_cnn_gradients_match_finite_differences(
        seed in any::<u64>(),
        channels in 1usize..3,
        c1 in 1usize..4,
        c2 in 1usize..3,
        stride in 1usize..3,
        pad in 0usize..2,
        side in 6usize..9,
        batch in 1usize..3,
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let layers = vec![
            conv(&mut rng, channels, c1, 3, stride, pad),
            Layer::Relu,
            Layer::MaxPool2d(MaxPool2d::new(2).expect("kernel > 0")),
            conv(&mut rng, c1, c2, 1, 1, 0),
            Layer::Relu,
            Layer::Flatten,
        ];
        let probe = Model::new(InputSpec::identity(vec![channels, side, side]), layers.clone());
        let Ok(probe) = probe else { return Ok(()) };
        let flat = probe.output_len();
        let mut layers = layers;
        layers.push(linear(&mut rng, flat, 3, false));
        let model = Model::new(InputSpec::identity(vec![channels, side, side]), layers).expect("valid model");
        let x = randn(&mut rng, batch * channels * side * side, 1.0);
        let y: Vec<u32> = (0..batch).map(|_| rng.random_range(0..3)).collect();
        if let Err(msg) = check(model, &x, &y) {
            prop_assert!(false, "{}", msg);
        }
    }
}
