//! The losses every network here is trained on: the mean softmax cross-entropy of a batch,
//! with its accuracy, and knowledge distillation's blend of it with a teacher's softened
//! outputs ([`Distill`]).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Loss and accuracy of one batch or one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct LossStats {
    /// Mean loss: the cross-entropy, or the distillation loss when training distils.
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

/// Knowledge distillation (Hinton, Vinyals and Dean, "Distilling the Knowledge in a Neural
/// Network", 2015): the student's logits `z` are trained on
/// `L = (1 − λ) CE(y, softmax(z)) + λ T² KL(softmax(t/T) ‖ softmax(z/T))`, `t` the teacher's
/// logits on the same batch and `T` the temperature. The `T²` keeps the soft term's gradient,
/// `λ T (softmax(z/T) − softmax(t/T))`, on the scale of the hard term's as `T` changes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Distill {
    /// Weight `λ ∈ [0, 1]` of the teacher's term (0: the plain cross-entropy).
    pub weight: f64,
    /// Temperature `T > 0` of both softmaxes in the teacher's term.
    pub temperature: f64,
}

impl Distill {
    /// Checks the ranges; errors name the settings by their configuration keys
    /// (`distill_weight`, `distill_temperature`).
    pub fn check(&self) -> Result<()> {
        if !(self.weight.is_finite() && (0.0..=1.0).contains(&self.weight)) {
            return Err(Error::invalid(
                "distill_weight",
                format!("{}: must be a fraction in [0, 1]", self.weight),
            ));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(Error::invalid(
                "distill_temperature",
                format!("{}: must be a finite number > 0", self.temperature),
            ));
        }
        Ok(())
    }
}

/// `ln Σ_c exp(z_c / T)` of one row (`inv_t = 1/T`), formed in f64 after subtracting the
/// row's maximum, so that no term overflows.
fn log_sum_exp(row: &[f32], inv_t: f64) -> f64 {
    let max = row
        .iter()
        .fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64 * inv_t));
    let sum: f64 = row.iter().map(|&v| (v as f64 * inv_t - max).exp()).sum();
    max + sum.ln()
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
        let lse = log_sum_exp(row, 1.0);
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

/// Mean distillation loss of [`Distill`] of the student's `logits` against the labels and
/// the `teacher`'s logits of the same samples; writes its gradient
/// `((1 − λ)(p − y) + λ T (softmax(z/T) − softmax(t/T))) / batch` into `dlogits` if given.
/// The accuracy is the student's. With `λ = 0` it is [`softmax_xent`] to the bit.
pub(crate) fn distill_xent(
    logits: &[f32],
    teacher: &[f32],
    labels: &[u32],
    classes: usize,
    distill: Distill,
    mut dlogits: Option<&mut [f32]>,
) -> Result<LossStats> {
    if teacher.len() != logits.len() {
        return Err(Error::LengthMismatch {
            field: "teacher logits".into(),
            expected: logits.len(),
            got: teacher.len(),
        });
    }
    let hard = softmax_xent(logits, labels, classes, dlogits.as_deref_mut())?;
    let (lambda, t) = (distill.weight, distill.temperature);
    let inv_t = 1.0 / t;
    let inv = 1.0 / labels.len().max(1) as f64;
    let mut kl = 0.0f64;
    for (b, (row, trow)) in logits
        .chunks(classes)
        .zip(teacher.chunks(classes))
        .take(labels.len())
        .enumerate()
    {
        let (lse_s, lse_t) = (log_sum_exp(row, inv_t), log_sum_exp(trow, inv_t));
        let mut drow = dlogits
            .as_deref_mut()
            .map(|d| &mut d[b * classes..][..classes]);
        for (c, (&z, &tz)) in row.iter().zip(trow).enumerate() {
            // Log-probabilities, so that a teacher probability that underflows to 0 adds
            // 0 · (finite) and not 0 · ln 0.
            let (log_s, log_t) = (z as f64 * inv_t - lse_s, tz as f64 * inv_t - lse_t);
            let q_t = log_t.exp();
            kl += q_t * (log_t - log_s);
            if let Some(d) = drow.as_deref_mut() {
                let soft = lambda * t * (log_s.exp() - q_t) * inv;
                d[c] = ((1.0 - lambda) * d[c] as f64 + soft) as f32;
            }
        }
    }
    Ok(LossStats {
        loss: (1.0 - lambda) * hard.loss + lambda * t * t * kl * inv,
        ..hard
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    const CLASSES: usize = 5;
    const BATCH: usize = 3;

    fn logits(seed: u64, scale: f32) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..BATCH * CLASSES)
            .map(|_| scale * rng.random_range(-1.0f32..1.0))
            .collect()
    }

    const LABELS: [u32; BATCH] = [0, 3, 4];

    /// The distillation gradient matches central differences of the loss, for the soft
    /// term alone, the hard term alone and a blend, at temperatures below and above 1.
    #[test]
    fn distillation_gradient_matches_central_differences() {
        let (z, t) = (logits(1, 3.0), logits(2, 4.0));
        for (weight, temperature) in [(0.3, 2.5), (1.0, 4.0), (0.0, 1.0), (0.7, 0.5)] {
            let distill = Distill {
                weight,
                temperature,
            };
            let mut grad = vec![0.0f32; z.len()];
            distill_xent(&z, &t, &LABELS, CLASSES, distill, Some(&mut grad)).unwrap();
            for i in 0..z.len() {
                let at = |delta: f32| {
                    let mut p = z.clone();
                    p[i] += delta;
                    let l = distill_xent(&p, &t, &LABELS, CLASSES, distill, None).unwrap();
                    (l.loss, p[i])
                };
                let ((up, zu), (down, zd)) = (at(1e-3), at(-1e-3));
                let numeric = (up - down) / (zu as f64 - zd as f64);
                let gap = (numeric - grad[i] as f64).abs();
                assert!(
                    gap < 1e-4 * (1.0 + numeric.abs()),
                    "λ {weight}, T {temperature}, logit {i}: analytic {} vs numeric {numeric}",
                    grad[i]
                );
            }
        }
    }

    /// Weight 0 is the plain cross-entropy to the bit, loss and gradient alike, whatever
    /// the teacher says.
    #[test]
    fn zero_weight_is_exactly_the_plain_loss() {
        let (z, t) = (logits(3, 5.0), logits(4, 5.0));
        let mut plain_grad = vec![0.0f32; z.len()];
        let plain = softmax_xent(&z, &LABELS, CLASSES, Some(&mut plain_grad)).unwrap();
        for temperature in [0.5, 1.0, 4.0] {
            let mut grad = vec![f32::NAN; z.len()];
            let distill = Distill {
                weight: 0.0,
                temperature,
            };
            let d = distill_xent(&z, &t, &LABELS, CLASSES, distill, Some(&mut grad)).unwrap();
            assert_eq!(d.loss.to_bits(), plain.loss.to_bits(), "T {temperature}");
            assert_eq!((d.correct, d.count), (plain.correct, plain.count));
            for (a, b) in grad.iter().zip(&plain_grad) {
                assert_eq!(a.to_bits(), b.to_bits(), "T {temperature}");
            }
        }
    }

    /// The soft term vanishes, with its gradient, when the student agrees with the teacher,
    /// and is positive when it does not.
    #[test]
    fn soft_term_is_zero_only_at_the_teacher() {
        let z = logits(5, 3.0);
        let distill = Distill {
            weight: 1.0,
            temperature: 4.0,
        };
        let mut grad = vec![0.0f32; z.len()];
        let same = distill_xent(&z, &z, &LABELS, CLASSES, distill, Some(&mut grad)).unwrap();
        assert!(same.loss.abs() < 1e-12, "{}", same.loss);
        assert!(grad.iter().all(|g| g.abs() < 1e-7), "{grad:?}");
        let other = distill_xent(&z, &logits(6, 3.0), &LABELS, CLASSES, distill, None).unwrap();
        assert!(other.loss > 1e-3, "{}", other.loss);
    }

    #[test]
    fn settings_out_of_range_are_refused_by_key() {
        for (weight, temperature, key) in [
            (-0.1, 4.0, "distill_weight"),
            (1.5, 4.0, "distill_weight"),
            (f64::NAN, 4.0, "distill_weight"),
            (0.5, 0.0, "distill_temperature"),
            (0.5, -1.0, "distill_temperature"),
            (0.5, f64::INFINITY, "distill_temperature"),
        ] {
            let e = Distill {
                weight,
                temperature,
            }
            .check()
            .unwrap_err();
            assert!(e.to_string().contains(key), "{weight}, {temperature}: {e}");
        }
        assert!(Distill {
            weight: 1.0,
            temperature: 1e-3
        }
        .check()
        .is_ok());
    }
}
