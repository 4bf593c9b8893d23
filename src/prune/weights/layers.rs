//! The weight players of a graph — every entry of every Linear and Conv2d weight — and who
//! competes with whom.
//!
//! Two weights into the same unit are substitutes when the inputs they read move together:
//! either can carry what the other would. So the competition of weights `(o, i)` and
//! `(o, j)` of one row is `R_ij = |corr(x_i, x_j)| / k`, the correlation of the two input
//! features on held-out data (for a convolution, of the two entries of an input patch over
//! every patch position), kept for each feature's `k` most correlated partners and made
//! symmetric (`proofs/W1-weight-players.md`). Weights of different rows never compete.

use nalgebra::DMatrix;

use crate::error::Result;
use crate::nn::graph::{Graph, GraphWorkspace, Mode, NodeId, Op, ParamId};
use crate::nn::Shape;

/// Patch rows sampled at most per layer when measuring input correlations: enough for a
/// correlation estimate good to about ±0.01, few enough to cost milliseconds.
const MAX_PATCH_ROWS: usize = 16_384;

/// One weight tensor whose entries are players.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightLayer {
    /// The parameter's name (`0.weight`, `features.3.weight`).
    pub name: String,
    /// The weight parameter.
    pub param: ParamId,
    /// The node it reads.
    pub input: NodeId,
    /// Output units (rows of the `[out, in]` or `[out, in·k·k]` matrix).
    pub rows: usize,
    /// Input features per unit (columns).
    pub cols: usize,
    /// Kernel, stride and padding of a convolution.
    pub conv: Option<(usize, usize, usize)>,
}

impl WeightLayer {
    /// Players of the layer.
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }

    /// True for a layer without weights.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Every Linear and Conv2d weight of `graph`, in node order.
pub fn weight_layers(graph: &Graph) -> Vec<WeightLayer> {
    graph
        .nodes
        .iter()
        .filter_map(|n| {
            let (param, conv) = match &n.op {
                Op::Linear(d) => (d.weight, None),
                Op::Conv2d(c) => (c.weight, Some((c.kernel, c.stride, c.padding))),
                _ => return None,
            };
            let w = &graph.params[param].value;
            Some(WeightLayer {
                name: graph.params[param].name.clone(),
                param,
                input: n.inputs[0],
                rows: w.nrows(),
                cols: w.ncols(),
                conv,
            })
        })
        .collect()
}

/// A symmetric sparse `cols × cols` feature competition `R` (zero diagonal), in CSR form.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Neighbours {
    /// Row `i`'s entries are `offsets[i]..offsets[i + 1]`.
    pub offsets: Vec<usize>,
    /// Partner features.
    pub index: Vec<u32>,
    /// `R_ij`.
    pub value: Vec<f32>,
}

impl Neighbours {
    /// The entries of feature `i`.
    pub fn of(&self, i: usize) -> impl Iterator<Item = (usize, f32)> + '_ {
        let (a, b) = (self.offsets[i], self.offsets[i + 1]);
        self.index[a..b]
            .iter()
            .zip(&self.value[a..b])
            .map(|(&j, &v)| (j as usize, v))
    }

    /// Entries of the matrix.
    pub fn nnz(&self) -> usize {
        self.index.len()
    }
}

/// Each layer's feature competition measured on `rows` probe samples `probe`, keeping `k`
/// partners per feature.
pub fn competition(
    graph: &Graph,
    layers: &[WeightLayer],
    probe: &[f32],
    rows: usize,
    k: usize,
) -> Result<Vec<Neighbours>> {
    let mut ws = GraphWorkspace::new(graph, rows);
    graph.forward(&mut ws, probe, rows, Mode::Eval)?;
    layers
        .iter()
        .map(|l| {
            let x = ws.activation(l.input).unwrap_or(&[]);
            let features = features(x, graph.shapes()[l.input], rows, l);
            Ok(nearest(&correlation(&features), k))
        })
        .collect()
}

/// The input features a layer's weights read, one row per sample (a convolution: per sampled
/// patch position), columns in the weight's column order (`c·k·k + ky·k + kx`).
fn features(x: &[f32], shape: Shape, batch: usize, layer: &WeightLayer) -> DMatrix<f32> {
    match (shape, layer.conv) {
        (Shape::Image { c, h, w }, Some((k, stride, pad))) => {
            let oh = (h + 2 * pad).saturating_sub(k) / stride + 1;
            let ow = (w + 2 * pad).saturating_sub(k) / stride + 1;
            let positions = batch * oh * ow;
            // Every `step`-th patch position, so the sample stays spread over images.
            let step = positions.div_ceil(MAX_PATCH_ROWS).max(1);
            let picked: Vec<usize> = (0..positions).step_by(step).collect();
            DMatrix::from_fn(picked.len(), c * k * k, |r, f| {
                let p = picked[r];
                let (n, rest) = (p / (oh * ow), p % (oh * ow));
                let (oy, ox) = (rest / ow, rest % ow);
                let (ch, ky, kx) = (f / (k * k), (f / k) % k, f % k);
                let (y, xx) = (oy * stride + ky, ox * stride + kx);
                if y < pad || xx < pad || y - pad >= h || xx - pad >= w {
                    0.0
                } else {
                    x[n * c * h * w + ch * h * w + (y - pad) * w + (xx - pad)]
                }
            })
        }
        _ => {
            let n = layer.cols;
            DMatrix::from_fn(batch, n, |r, f| x[r * n + f])
        }
    }
}

/// `|corr|` between the columns of `x` (a constant column correlates with nothing).
fn correlation(x: &DMatrix<f32>) -> DMatrix<f32> {
    let (n, f) = (x.nrows().max(1) as f32, x.ncols());
    let mut centred = x.clone();
    for mut col in centred.column_iter_mut() {
        let mean = col.sum() / n;
        col.add_scalar_mut(-mean);
        let norm = col.norm();
        if norm > 0.0 {
            col /= norm;
        }
    }
    let mut c = centred.transpose() * &centred;
    for i in 0..f {
        c[(i, i)] = 0.0;
    }
    c.apply(|v| *v = v.abs().min(1.0));
    c
}

/// The `k` largest entries of each row of `c`, made symmetric (an entry kept by either
/// side), scaled by `1/k` so that a feature's total competition stays of order one.
fn nearest(c: &DMatrix<f32>, k: usize) -> Neighbours {
    let f = c.nrows();
    let mut keep = vec![Vec::<u32>::new(); f];
    for i in 0..f {
        let mut order: Vec<usize> = (0..f).filter(|&j| j != i && c[(i, j)] > 0.0).collect();
        order.sort_by(|&a, &b| c[(i, b)].total_cmp(&c[(i, a)]).then(a.cmp(&b)));
        for &j in order.iter().take(k) {
            keep[i].push(j as u32);
            keep[j].push(i as u32);
        }
    }
    let scale = 1.0 / k.max(1) as f32;
    let mut out = Neighbours {
        offsets: vec![0],
        ..Neighbours::default()
    };
    for (i, mut row) in keep.into_iter().enumerate() {
        row.sort_unstable();
        row.dedup();
        for j in row {
            out.index.push(j);
            out.value.push(c[(i, j as usize)] * scale);
        }
        out.offsets.push(out.index.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two copies of one feature compete fully, an independent feature barely, a constant
    /// one not at all; the result is symmetric with a zero diagonal.
    #[test]
    fn correlated_features_compete_and_the_competition_is_symmetric() {
        let n = 400;
        let mut rng = 12345u64;
        let mut next = || {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((rng >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        };
        let x = DMatrix::from_fn(n, 4, |_, _| 0.0);
        let mut x = x;
        for r in 0..n {
            let a = next();
            x[(r, 0)] = a;
            x[(r, 1)] = -2.0 * a;
            x[(r, 2)] = next();
            x[(r, 3)] = 1.0;
        }
        let r = nearest(&correlation(&x), 1);
        let get = |i: usize, j: usize| r.of(i).find(|&(t, _)| t == j).map(|(_, v)| v);
        assert!((get(0, 1).unwrap() - 1.0).abs() < 1e-5, "{r:?}");
        assert_eq!(get(0, 1), get(1, 0));
        assert!(get(0, 3).is_none() && get(3, 0).is_none(), "{r:?}");
        for i in 0..4 {
            assert!(get(i, i).is_none());
            for (j, v) in r.of(i) {
                assert_eq!(get(j, i), Some(v), "not symmetric at {i},{j}");
            }
        }
    }
}
