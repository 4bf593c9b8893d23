//! The equilibrium-driven pruner, its baselines, structural removal and certificates.
//!
//! Each channel of a prunable channel group (an MLP neuron, a CNN filter, a ResNet block's
//! inner channel, a residual stream's channel across every block that adds into it) is a
//! player with gate `s_i ∈ [0, 1]` and
//! utility `U_i = b_i s_i − (a_i/2) s_i² − γ s_i − s_i β Σ_{j≠i} R_ij s_j` (docs/mathematics.md,
//! the pruner), where `b_i = −∂L/∂s_i` (T8). After every weight step the gates take a projected
//! gradient step on their own utility ([`EquilibriumPruner`]); a unit whose gate stays at 0
//! for a patience window has made zero participation its best response and is removed
//! structurally, with a [`UnitCertificate`] (benefit, cost, margin, T3/T4 dominance in the
//! group's measured [`PruningGame`](crate::game::PruningGame)).
//!
//! The scale symmetries of gated channels are broken by normalisation
//! ([`ScaleSymmetry::Normalize`], `proofs/S1-scale-symmetry.md`): after every step each
//! channel's incoming scale and outgoing weights return to their initial norms and the gate
//! absorbs the scale, and a group read only through BatchNorm has its gates divided by their
//! largest value, so the gate is the channel's only free scale. Without it gates drift to 0
//! while the weights around them grow, and no interior equilibrium exists.
//!
//! Collapse guard: a group never loses its last channel. If every remaining channel of a
//! group is due for removal, the one with the largest `benefit − cost` stays, its gate is set
//! to 1 and frozen (it stops playing), and a [`GuardRecord`] goes into the report.
//!
//! [`pipeline`] runs the whole job (dense reference, pruning, the survivors' refit, fine-tune,
//! baselines, reports) for the CLI and the examples; [`baselines`] holds group magnitude,
//! network slimming, random and Taylor pruning as published, at equal per-group kept counts,
//! the kept shape trained from scratch as a control, and the fine-tune they all share.

pub mod baselines;
mod certificate;
mod config;
mod diagnostics;
mod dynamics;
pub mod layer_game;
mod nan_serde;
pub mod pipeline;
pub mod players;
mod price;
mod pruner;
mod removal;
pub mod report;
mod run;
mod state;
mod symmetry;
pub mod weights;

pub use baselines::Baseline;
pub use certificate::{GuardRecord, UnitCertificate};
pub use config::{
    apply_overrides, DataSettings, GameSettings, GateDynamics, GateStep, PriceControl, PruneConfig,
    Redundancy, RunSettings, ScaleSymmetry, TargetSchedule, TargetScope, TrainingSchedule,
};
pub use diagnostics::{Evaluation, TrajectoryPoint};
pub use price::Calibration;
pub use pruner::{EquilibriumPruner, PruneHook};
pub use run::PruneRun;
