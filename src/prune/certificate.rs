//! Why each unit left: the certificate recorded at its removal.

use serde::{Deserialize, Serialize};

/// The certificate of one removed unit, measured on held-out batches just before removal.
///
/// At `s_i = 0` the KKT condition of T8 reads `benefit ≤ cost`; `margin = cost − benefit`.
/// `dominated` is true when T3 (`b_i < γ`) or T4 (iterated elimination of the layer's game)
/// proves `s_i = 0` in every equilibrium of the measured game; `cost` is measured at the
/// actual gates, which need not be an equilibrium, so a dominated unit has
/// `benefit < cost_bound` but not always `benefit < cost`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitCertificate {
    /// The player group (its first producer's name: `0` or `layer1.0.conv1`).
    pub group: String,
    /// Channel index in the original, unpruned group.
    pub unit: usize,
    /// Optimiser step at removal.
    pub step: u64,
    /// `b_i = −∂L/∂s_i` on held-out data at `s_i = 0`.
    pub benefit: f64,
    /// `γ + β Σ_j R_ij s_j` at removal.
    pub cost: f64,
    /// `cost − benefit` (> 0: leaving is the strict best response).
    pub margin: f64,
    /// The self cost `a_i = α‖θ_i‖²` of the group's game.
    pub self_cost: f64,
    /// `γ + Σ_j C_ij L_j` with `L` the T4 lower bounds: the smallest cost the unit can face
    /// in any equilibrium of the measured game. `dominated ⇔ benefit < cost_bound`.
    pub cost_bound: f64,
    /// Proved pruned by T3 alone (`b_i < γ`).
    pub t3: bool,
    /// Proved pruned by T3 or T4 (iterated elimination).
    pub dominated: bool,
    /// How the unit left: `equilibrium` (gate at 0 for the patience window) or `final`
    /// (gate at 0 when training ended).
    pub reason: String,
}

/// A unit kept by the layer-collapse guard although its gate reached 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardRecord {
    /// The player group.
    pub group: String,
    /// Original channel index.
    pub unit: usize,
    /// Step at which the guard acted.
    pub step: u64,
    /// `benefit − cost` of the kept unit (the largest of its layer).
    pub net: f64,
}
