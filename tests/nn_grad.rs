//! Gradient checks: analytic `dL/dW`, `dL/db`, `dL/ds` against central finite differences on
//! random small MLPs and CNNs (proptest).
//!
//! Tolerances. The network runs in `f32`; the loss is accumulated in `f64`. With step
//! `h = 1e-3` the central difference has truncation error `O(h²)` ≈ 1e-6 for these
//! O(1)-scaled nets and `f32` round-off (forward sums of ~100 terms, ≈ 1e-6 relative) ≈ `1e-6 / h` = 1e-3, so we accept
//! `|analytic − fd| ≤ 2e-3 + 2e-2·|fd|`. A ReLU or max-pool kink inside `[θ−h, θ+h]` makes the
//! difference meaningless; such coordinates are detected structurally (the sign pattern of
//! every ReLU input and the winning cell of every positive max-pool output differ between
//! `θ − h`, `θ` and `θ + h`) and skipped; at most 25% of coordinates may be skipped, so a
//! wrong gradient cannot hide behind the skip rule; a draw with more kinks than that tests
//! too little and is discarded (see `CheckFailure::Degenerate`).

use nalgebra::{DMatrix, DVector};
use proptest::prelude::*;
use pruning_game::nn::{
    Conv2d, Gradients, InputSpec, Layer, Linear, MaxPool2d, Model, Shape, Workspace,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

const H: f32 = 1e-3;
const ATOL: f64 = 2e-3;
const RTOL: f64 = 2e-2;
const MAX_SKIPPED: f64 = 0.25;

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

/// The piecewise-linear regime of the last forward pass: the sign of every ReLU input and,
/// for every positive max-pool output, which cell of its window produced it. The loss is
/// smooth between two parameter values exactly when the regime is the same at both ends
/// and in the middle (each piece is linear in one parameter).
fn regime(model: &Model, ws: &Workspace) -> Vec<u32> {
    let mut out = Vec::new();
    for (i, layer) in model.layers().iter().enumerate() {
        let input = ws.activation(i).expect("layer input");
        match layer {
            Layer::Relu => out.extend(input.iter().map(|&z| u32::from(z > 0.0))),
            Layer::MaxPool2d(p) => {
                let Shape::Image { c, h, w } = model.shapes()[i] else {
                    continue;
                };
                let k = p.kernel();
                let y = ws.activation(i + 1).expect("pool output");
                let (ho, wo) = (h / k, w / k);
                for plane in 0..input.len() / (h * w) {
                    for oy in 0..ho {
                        for ox in 0..wo {
                            let v = y[plane * ho * wo + oy * wo + ox];
                            let mut cell = u32::MAX;
                            if v > 0.0 {
                                for j in 0..k * k {
                                    let (ky, kx) = (j / k, j % k);
                                    if input[plane * h * w + (oy * k + ky) * w + ox * k + kx]
                                        .to_bits()
                                        == v.to_bits()
                                    {
                                        cell = j as u32;
                                        break;
                                    }
                                }
                            }
                            out.push(cell);
                        }
                    }
                }
                let _ = c;
            }
            _ => {}
        }
    }
    out
}

/// Loss at the current parameters and the regime it was computed in.
fn loss_regime(model: &Model, ws: &mut Workspace, x: &[f32], y: &[u32]) -> (f64, Vec<u32>) {
    let l = loss(model, ws, x, y);
    (l, regime(model, ws))
}

/// Checks every weight, bias and gate of `model`; returns an error message on failure.
/// Why a gradient check did not pass.
enum CheckFailure {
    /// An analytic derivative disagrees with its finite difference: a real failure.
    Mismatch(String),
    /// Too many coordinates sit on a kink for the draw to test anything: the case is
    /// discarded and proptest draws another. Kinks are detected from ReLU sign patterns and
    /// pool winners alone, never from the gradients, so a wrong gradient cannot cause a
    /// discard; proptest fails the test if too many draws are discarded.
    Degenerate(String),
}

fn check(mut model: Model, x: &[f32], y: &[u32]) -> Result<(), CheckFailure> {
    let mut ws = Workspace::new(&model, y.len());
    let mut grads = Gradients::new(&model);
    model
        .loss_and_grad(&mut ws, x, y, &mut grads)
        .map_err(|e| CheckFailure::Mismatch(e.to_string()))?;
    let (mut checked, mut skipped) = (0usize, 0usize);
    let hd = H as f64;
    for layer in 0..model.layers().len() {
        let Some(g) = grads.layer(layer).cloned() else {
            continue;
        };
        let (nw, nb) = model
            .parameters_mut(layer)
            .map(|(w, b)| (w.len(), b.len()))
            .unwrap_or((0, 0));
        let gates = g.gate.as_ref().map_or(0, |v| v.len());
        for k in 0..nw + nb + gates {
            // Value of coordinate k, and a setter.
            let get = |m: &mut Model| -> f32 {
                if k < nw + nb {
                    let (w, b) = m.parameters_mut(layer).expect("parametrised");
                    if k < nw {
                        w[k]
                    } else {
                        b[k - nw]
                    }
                } else {
                    m.gate(layer).expect("gated")[k - nw - nb]
                }
            };
            let set = |m: &mut Model, v: f32| {
                if k < nw + nb {
                    let (w, b) = m.parameters_mut(layer).expect("parametrised");
                    if k < nw {
                        w[k] = v
                    } else {
                        b[k - nw] = v
                    }
                } else {
                    m.gate_mut(layer).expect("gated")[k - nw - nb] = v;
                }
            };
            let t0 = get(&mut model);
            let mut probe = |t: f32| {
                set(&mut model, t);
                let r = loss_regime(&model, &mut ws, x, y);
                set(&mut model, t0);
                r
            };
            let is_gate_at_zero = k >= nw + nb && t0 <= 0.0;
            let (fd, smooth) = if is_gate_at_zero {
                // Gates live in [0, 1]: at s = 0 the derivative is one-sided; second-order
                // forward difference (-3 L(0) + 4 L(h) - L(2h)) / 2h.
                // At s = 0 a pooled channel outputs zeros (no winning cell); every other part
                // of the regime must match the one on (0, 2h].
                let (l0, r0) = probe(0.0);
                let (l1, r1) = probe(H);
                let (l2, r2) = probe(2.0 * H);
                let (_, rm) = probe(H / 2.0);
                let same_from_zero = r0.iter().zip(&r1).all(|(&a, &b)| a == b || a == u32::MAX);
                (
                    (-3.0 * l0 + 4.0 * l1 - l2) / (2.0 * hd),
                    r1 == r2 && rm == r1 && same_from_zero,
                )
            } else {
                let (up, ru) = probe(t0 + H);
                let (down, rd) = probe(t0 - H);
                let (_, r0) = probe(t0);
                ((up - down) / (2.0 * hd), ru == r0 && rd == r0)
            };
            if !smooth {
                skipped += 1;
                continue;
            }
            checked += 1;
            let analytic = if k < nw {
                g.weight.as_slice()[k]
            } else if k < nw + nb {
                g.bias[k - nw]
            } else {
                g.gate.as_ref().expect("gated")[k - nw - nb]
            } as f64;
            if (analytic - fd).abs() > ATOL + RTOL * fd.abs() {
                return Err(CheckFailure::Mismatch(format!("layer {layer} coordinate {k} (weights {nw}, biases {nb}): analytic {analytic:.6} vs finite difference {fd:.6}")));
            }
        }
    }
    let total = (checked + skipped) as f64;
    if skipped as f64 > MAX_SKIPPED * total {
        return Err(CheckFailure::Degenerate(format!(
            "{skipped} of {total} coordinates sat on a kink"
        )));
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
        match check(model, &x, &y) {
            Ok(()) => {}
            Err(CheckFailure::Mismatch(msg)) => prop_assert!(false, "{}", msg),
            Err(CheckFailure::Degenerate(msg)) => return Err(TestCaseError::reject(msg)),
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
        match check(model, &x, &y) {
            Ok(()) => {}
            Err(CheckFailure::Mismatch(msg)) => prop_assert!(false, "{}", msg),
            Err(CheckFailure::Degenerate(msg)) => return Err(TestCaseError::reject(msg)),
        }
    }
}
