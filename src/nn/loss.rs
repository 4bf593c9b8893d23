//! The loss every network here is trained on: the mean softmax cross-entropy of a batch,
//! with its accuracy.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Loss and accuracy of one batch or one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct LossStats {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Correctly classified samples.
    pub correct: usize,
    /// Samples seen.
    pub count: usize,
}

impl LossStats {
    /// Fraction classified correctly (0 when empty).
    pub fn accuracy(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.correct as f64 / self.count as f64
        }
    }
}

/// Mean softmax cross-entropy; writes `(softmax - onehot) / batch` into `dlogits` if given.
pub(crate) fn softmax_xent(
    logits: &[f32],
    labels: &[u32],
    classes: usize,
    mut dlogits: Option<&mut [f32]>,
) -> Result<LossStats> {
    let batch = labels.len();
    let mut loss = 0.0f64;
    let mut correct = 0;
    let inv = 1.0 / batch.max(1) as f32;
    for (b, (row, &y)) in logits.chunks(classes).zip(labels).enumerate() {
        let y = y as usize;
        if y >= classes {
            return Err(Error::invalid(
                "label",
                format!("sample {b}: label {y} >= {classes} classes"),
            ));
        }
        let (mut arg, mut max) = (0, f32::NEG_INFINITY);
        for (c, &v) in row.iter().enumerate() {
            if v > max {
                max = v;
                arg = c;
            }
        }
        if arg == y {
            correct += 1;
        }
        // The loss is formed in f64: `lse - z_y` cancels, and in f32 its error would be
        // eps * |z|, enough to swamp small loss differences.
        let max = max as f64;
        let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
        let lse = max + sum.ln();
        loss += lse - row[y] as f64;
        if let Some(d) = dlogits.as_deref_mut() {
            let drow = &mut d[b * classes..][..classes];
            for (c, (dv, &v)) in drow.iter_mut().zip(row).enumerate() {
                let p = (v as f64 - lse).exp() as f32;
                *dv = (p - if c == y { 1.0 } else { 0.0 }) * inv;
            }
        }
    }
    Ok(LossStats {
        loss: loss / batch.max(1) as f64,
        correct,
        count: batch,
    })
}
