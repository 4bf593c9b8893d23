#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
#![deny(clippy::float_cmp)]

pub mod dominance;
pub mod equilibrium;
pub mod error;
pub mod game;
pub mod io;
pub mod lock;
pub mod nn;
mod parallel;
pub mod plot;
pub mod prune;
pub mod sim;

pub use error::{Error, Result};
