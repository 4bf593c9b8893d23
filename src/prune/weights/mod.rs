//! Weights as players: unstructured equilibrium pruning.
//!
//! Every entry of every Linear and Conv2d weight is a player with participation
//! `s_w ∈ [0, 1]` (the effective weight is `s_w·w`), benefit `b_w = −∂L/∂s_w = −w ∂L/∂w`,
//! self cost `α w²`, participation cost `γ` and competition among the weights of one unit
//! that read correlated inputs ([`layers`], `proofs/W1-weight-players.md`). The gates play
//! after every weight step ([`WeightPruner`]); a weight at exactly 0 for a patience window
//! leaves, and a unit whose every incoming or outgoing weight left is removed structurally
//! ([`units`]), so weight and unit players combine. At the end each layer's measured game is
//! a sparse [`PruningGame`](crate::game::PruningGame) with one player per weight, and T3/T4
//! certify which weights are zero in every equilibrium ([`certificates`]). [`baselines`]
//! holds magnitude (layer-wise and global), random and SNIP pruning and the scratch control;
//! [`pipeline`] runs the whole job.

pub mod baselines;
pub mod certificates;
mod config;
pub mod layers;
pub mod pipeline;
mod pruner;
pub mod units;

pub use baselines::{Masks, WeightBaseline};
pub use config::WeightGame;
pub use pipeline::{run_weight_job, WeightJob, WeightReport};
pub use pruner::{pressure, LayerState, WeightHook, WeightPruner};
