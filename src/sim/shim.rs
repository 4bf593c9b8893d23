//! TEMPORARY stand-in for `crate::dominance`, which is written on another branch. Deleted
//! when that branch is merged; only `record.rs` uses it.
#![allow(dead_code)]

pub mod dominance {
    use crate::game::PruningGame;

    fn bounds(game: &PruningGame) -> (Vec<f64>, Vec<f64>) {
        let n = game.net_benefit().len();
        let mut lower = vec![0.0; n];
        let mut upper: Vec<f64> = game.upper_bounds().iter().copied().collect();
        let mut pl = vec![0.0; n];
        let mut pu = vec![0.0; n];
        for _ in 0..10_000 {
            game.competition().mul_vec(&lower, &mut pl);
            game.competition().mul_vec(&upper, &mut pu);
            let mut change: f64 = 0.0;
            for i in 0..n {
                let nu = game
                    .best_response_to_pressure(i, pl[i], upper[i])
                    .min(upper[i]);
                let nl = game
                    .best_response_to_pressure(i, pu[i], lower[i])
                    .max(lower[i]);
                change = change.max(upper[i] - nu).max(nl - lower[i]);
                upper[i] = nu;
                lower[i] = nl;
            }
            if change <= 1e-12 {
                break;
            }
        }
        (lower, upper)
    }

    /// Players with upper bound zero.
    pub fn provably_pruned(game: &PruningGame) -> Vec<usize> {
        let (_, upper) = bounds(game);
        (0..upper.len()).filter(|&i| upper[i] <= 0.0).collect()
    }

    /// Uniqueness verdict as text.
    pub fn uniqueness(game: &PruningGame) -> String {
        let (lower, upper) = bounds(game);
        let gap = lower
            .iter()
            .zip(&upper)
            .map(|(l, u)| u - l)
            .fold(0.0, f64::max);
        if gap <= 1e-9 {
            "unique".into()
        } else {
            "unknown".into()
        }
    }
}
