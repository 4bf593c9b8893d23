//! The pruning state of one player group, kept across steps and checkpoints.

use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

/// What the pruner remembers of one player group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct GroupState {
    /// The group (its first producer's name, stable under removal).
    pub name: String,
    /// Original index of each current channel.
    pub orig: Vec<usize>,
    /// Consecutive steps each gate has been exactly 0.
    pub zero_steps: Vec<usize>,
    /// Averaged benefit `b̂`.
    pub benefit: Vec<f64>,
    /// Running mean of the squared batch benefit (for the RMS-normalised gate step).
    pub benefit_sq: Vec<f64>,
    /// Redundancy `R` (zero diagonal).
    pub redundancy: DMatrix<f64>,
    /// Original index of a channel kept by the collapse guard (its gate is frozen at 1).
    pub protected: Option<usize>,
    /// Participation cost `γ` of this group's game before the ramp (every group shares the
    /// configured `γ` unless target mode prices each on its own).
    pub gamma: f64,
    /// Gates at the previous evaluation (NaN before the first).
    #[serde(with = "super::nan_serde::vector")]
    pub prev_gate: Vec<f64>,
    /// Channels of the group before any removal.
    pub rho_total: usize,
    /// Norm of each channel's incoming scale at the start (held by normalisation).
    pub rho_in: Vec<f64>,
    /// Norm of each channel's outgoing weights at the start.
    pub rho_out: Vec<f64>,
}

impl GroupState {
    /// A fresh state for `n` channels with reference norms `rho_in`, `rho_out`.
    pub fn new(name: String, gamma: f64, rho_in: Vec<f64>, rho_out: Vec<f64>) -> Self {
        let n = rho_in.len();
        GroupState {
            name,
            orig: (0..n).collect(),
            zero_steps: vec![0; n],
            benefit: vec![0.0; n],
            benefit_sq: vec![0.0; n],
            redundancy: DMatrix::zeros(n, n),
            protected: None,
            gamma,
            prev_gate: vec![f64::NAN; n],
            rho_total: n,
            rho_in,
            rho_out,
        }
    }

    /// True if current channel `i` is frozen by the collapse guard.
    pub fn is_protected(&self, i: usize) -> bool {
        self.protected == Some(self.orig[i])
    }

    /// Keeps the state of channels `keep` after the network lost the others.
    pub fn retain(&mut self, keep: &[usize]) {
        let pick = |v: &[f64]| keep.iter().map(|&i| v[i]).collect::<Vec<f64>>();
        self.benefit = pick(&self.benefit);
        self.benefit_sq = pick(&self.benefit_sq);
        self.rho_in = pick(&self.rho_in);
        self.rho_out = pick(&self.rho_out);
        self.prev_gate = pick(&self.prev_gate);
        self.orig = keep.iter().map(|&i| self.orig[i]).collect();
        self.zero_steps = keep.iter().map(|&i| self.zero_steps[i]).collect();
        let r = &self.redundancy;
        self.redundancy = DMatrix::from_fn(keep.len(), keep.len(), |a, b| r[(keep[a], keep[b])]);
    }
}
