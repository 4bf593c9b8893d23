//! Parallel reductions whose result does not depend on how the scheduler splits the work.
//!
//! `par_iter().sum()` lets rayon split the range as it pleases, so the last bits of a sum vary
//! from run to run; the solver promises bit-identical output for the same game, so every
//! floating-point sum that feeds a decision goes through here.

use rayon::prelude::*;

/// Fewest elements an element-wise loop hands to one task. Waking another thread costs
/// 5–20 µs, while a pass over 10^4 floats takes about 4 µs: loops shorter than twice this run
/// on the calling thread, and only the long ones (and the matrix products) are split.
pub(crate) const ELEMENTS_PER_TASK: usize = 1 << 14;

/// Runs `work` on a thread of the global pool, so that the many short parallel loops inside
/// (a Newton solve runs hundreds) start from a worker — a split then costs a push on the
/// worker's own queue — instead of each going through the pool's injector and back.
pub fn in_pool<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| work())
}

/// Terms per chunk: long enough that scheduling is negligible, and fixed so the rounding is.
pub(crate) const CHUNK: usize = 4096;

/// `Σ_{i<n} term(i)`, summed in fixed chunks in order and then the partial sums in order.
pub(crate) fn ordered_sum(n: usize, term: impl Fn(usize) -> f64 + Sync) -> f64 {
    let partials: Vec<f64> = (0..n.div_ceil(CHUNK))
        .into_par_iter()
        .map(|c| (c * CHUNK..((c + 1) * CHUNK).min(n)).map(&term).sum())
        .collect();
    partials.iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equals_the_sequential_chunked_sum_and_repeats_bit_for_bit() {
        let n = 3 * CHUNK + 17;
        let term = |i: usize| ((i as f64) * 0.37).sin() * 1e-3 + 1.0 / (1.0 + i as f64);
        let sequential: f64 = (0..n)
            .collect::<Vec<_>>()
            .chunks(CHUNK)
            .map(|c| c.iter().map(|&i| term(i)).sum::<f64>())
            .sum();
        for _ in 0..20 {
            assert_eq!(ordered_sum(n, term).to_bits(), sequential.to_bits());
        }
        assert_eq!(ordered_sum(0, term).abs().to_bits(), 0);
    }
}
