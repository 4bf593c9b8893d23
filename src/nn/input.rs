//! How raw input values become network inputs: the preprocessing a model file records in
//! its `input` metadata and a data set hands to the network it trains.

use serde::{Deserialize, Serialize};

/// How raw input bytes become network inputs: `x = (byte * scale - mean) / std`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    /// Per-sample shape, `[n]` or `[c, h, w]`.
    pub shape: Vec<usize>,
    /// Multiplier applied to raw values (1/255 for bytes).
    pub scale: f64,
    /// Mean subtracted after scaling.
    pub mean: f64,
    /// Standard deviation divided by after centring.
    pub std: f64,
}

impl InputSpec {
    /// Inputs used as they are (scale 1, mean 0, std 1).
    pub fn identity(shape: Vec<usize>) -> Self {
        InputSpec {
            shape,
            scale: 1.0,
            mean: 0.0,
            std: 1.0,
        }
    }

    /// Fashion-MNIST bytes: `[1, 28, 28]`, scale 1/255, mean 0.286, std 0.353.
    pub fn fashion_mnist() -> Self {
        InputSpec {
            shape: vec![1, 28, 28],
            scale: 1.0 / 255.0,
            mean: 0.286,
            std: 0.353,
        }
    }

    /// Preprocesses one raw value.
    pub fn apply(&self, raw: f32) -> f32 {
        ((raw as f64 * self.scale - self.mean) / self.std) as f32
    }
}
