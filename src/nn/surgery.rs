//! Structural surgery: folding gates into weights and removing units.
//!
//! With `a_i = s_i relu(z_i)` and every operation between a unit and the next weight layer
//! being positively homogeneous (ReLU's output, max pooling, flatten), the gate can move into
//! the next layer: `W' [:, cols(i)] = s_i W[:, cols(i)]`, `s_i = 1`. Removing unit `i` then
//! drops row `i` of its layer (`W`, `b`, `s`) and the columns `cols(i)` of the next layer
//! (a dense column, an input channel of a filter bank, or a channel's block after flatten).
//! A unit whose gate is 0 (or whose ReLU never fires) can be removed without changing outputs.

use std::ops::Range;

use nalgebra::{DMatrix, DVector};

use super::layers::{Layer, Shape};
use super::model::Model;
use crate::error::{Error, Result};

/// Which columns of the next weight layer read a unit: `[u * per, (u + 1) * per)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnMap {
    /// Columns per unit.
    pub per: usize,
}

impl ColumnMap {
    /// Column range of unit `u`.
    pub fn of(&self, u: usize) -> Range<usize> {
        u * self.per..(u + 1) * self.per
    }
}

/// Column map from the units of `layer` to the weight columns of `next`.
pub(crate) fn consumer_columns(model: &Model, layer: usize, next: usize) -> Result<ColumnMap> {
    let per = match &model.layers[next] {
        Layer::Conv2d(c) => c.kernel * c.kernel,
        Layer::Linear(_) => {
            // The unit's values reach `next` either directly (dense) or as a flattened
            // channel block; find the image shape just before a flatten, if any.
            let flat_from = (layer + 1..next).find(|&j| matches!(model.layers[j], Layer::Flatten));
            match flat_from.map(|j| model.shapes[j]) {
                Some(Shape::Image { h, w, .. }) => h * w,
                _ => 1,
            }
        }
        _ => {
            return Err(Error::NotPrunable {
                layer: next,
                reason: "not a weight layer".into(),
            })
        }
    };
    Ok(ColumnMap { per })
}

/// Rows of `m` listed in `keep`.
pub(crate) fn select_rows(m: &DMatrix<f32>, keep: &[usize]) -> DMatrix<f32> {
    DMatrix::from_fn(keep.len(), m.ncols(), |r, c| m[(keep[r], c)])
}

/// Columns of `m` in the blocks of the kept units.
pub(crate) fn select_col_blocks(m: &DMatrix<f32>, keep: &[usize], map: ColumnMap) -> DMatrix<f32> {
    let cols: Vec<usize> = keep.iter().flat_map(|&u| map.of(u)).collect();
    DMatrix::from_fn(m.nrows(), cols.len(), |r, c| m[(r, cols[c])])
}

/// Entries of `v` listed in `keep`.
pub(crate) fn select_entries(v: &DVector<f32>, keep: &[usize]) -> DVector<f32> {
    DVector::from_iterator(keep.len(), keep.iter().map(|&i| v[i]))
}

/// Checks that `keep` is strictly increasing, non-empty and inside `0..units`.
pub(crate) fn check_keep(layer: usize, keep: &[usize], units: usize) -> Result<()> {
    if keep.is_empty() {
        return Err(Error::invalid(
            "keep",
            format!("layer {layer}: at least one unit must stay"),
        ));
    }
    if keep.windows(2).any(|w| w[0] >= w[1]) || keep.last().is_some_and(|&k| k >= units) {
        return Err(Error::invalid(
            "keep",
            format!("layer {layer}: indices must be strictly increasing and < {units}"),
        ));
    }
    Ok(())
}

impl Model {
    /// Moves the gates of `layer` into the next weight layer's columns and resets them to 1.
    /// Outputs are unchanged. A gated layer with no next weight layer keeps its gates.
    pub fn fold_gate(&mut self, layer: usize) -> Result<()> {
        let gate = self.gate(layer)?.clone();
        let Some(next) = self.next_weight_layer(layer) else {
            return Ok(());
        };
        let map = consumer_columns(self, layer, next)?;
        if let Some((w, _)) = self.layers[next].params_mut() {
            for (u, &s) in gate.iter().enumerate() {
                for c in map.of(u) {
                    w.column_mut(c).scale_mut(s);
                }
            }
        }
        self.gate_mut(layer)?.fill(1.0);
        Ok(())
    }

    /// Folds every gate into the next layer (see [`Model::fold_gate`]).
    pub fn fold_gates(&mut self) -> Result<()> {
        for layer in self.gated_layers() {
            self.fold_gate(layer)?;
        }
        Ok(())
    }

    /// A copy with gates folded and dropped: a plain network for export (no `.gate` tensors).
    /// Gates without a next weight layer are folded into their own rows, which is exact for
    /// gates >= 0 because `s relu(z) = relu(s z)`.
    pub fn exported(&self) -> Result<Model> {
        let mut m = self.clone();
        m.fold_gates()?;
        for l in m.layers.iter_mut() {
            let gate = match l {
                Layer::Linear(x) => x.gate.take(),
                Layer::Conv2d(x) => x.gate.take(),
                _ => None,
            };
            if let (Some(g), Some((w, b))) = (gate, l.params_mut()) {
                for (u, &s) in g.iter().enumerate() {
                    w.row_mut(u).scale_mut(s);
                    b[u] *= s;
                }
            }
        }
        Ok(m)
    }

    /// Removes every unit of gated layer `layer` not listed in `keep` (strictly increasing
    /// indices). The layer's gates are first folded into the next layer, then row `i` of its
    /// weight, bias and gate and the next layer's columns reading unit `i` are dropped.
    /// Outputs are unchanged when the removed units have gate 0 or never fire.
    pub fn remove_units(&mut self, layer: usize, keep: &[usize]) -> Result<()> {
        let units = self.gate(layer)?.len();
        check_keep(layer, keep, units)?;
        self.fold_gate(layer)?;
        let next = self.next_weight_layer(layer);
        let map = match next {
            Some(n) => Some(consumer_columns(self, layer, n)?),
            None => None,
        };
        match &mut self.layers[layer] {
            Layer::Linear(l) => {
                l.weight = select_rows(&l.weight, keep);
                l.bias = select_entries(&l.bias, keep);
                l.gate = l.gate.as_ref().map(|g| select_entries(g, keep));
            }
            Layer::Conv2d(c) => {
                c.weight = select_rows(&c.weight, keep);
                c.bias = select_entries(&c.bias, keep);
                c.gate = c.gate.as_ref().map(|g| select_entries(g, keep));
            }
            _ => {
                return Err(Error::NotPrunable {
                    layer,
                    reason: "not a weight layer".into(),
                })
            }
        }
        if let (Some(n), Some(map)) = (next, map) {
            match &mut self.layers[n] {
                Layer::Linear(l) => l.weight = select_col_blocks(&l.weight, keep, map),
                Layer::Conv2d(c) => {
                    c.weight = select_col_blocks(&c.weight, keep, map);
                    c.in_channels = keep.len();
                }
                _ => {}
            }
        }
        self.refresh_shapes()
    }
}
