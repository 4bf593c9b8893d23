//! The shape of one sample's activation, as every op and data set states it.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Shape of one sample's activation (the batch dimension is implicit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shape {
    /// A feature vector.
    Flat(usize),
    /// A channel-major image, `[c, h, w]` as in PyTorch's NCHW.
    Image {
        /// Channels.
        c: usize,
        /// Height.
        h: usize,
        /// Width.
        w: usize,
    },
}

impl Shape {
    /// Number of values per sample.
    pub fn numel(&self) -> usize {
        match *self {
            Shape::Flat(n) => n,
            Shape::Image { c, h, w } => c * h * w,
        }
    }

    /// The shape as a list of dimensions (`[n]` or `[c, h, w]`).
    pub fn dims(&self) -> Vec<usize> {
        match *self {
            Shape::Flat(n) => vec![n],
            Shape::Image { c, h, w } => vec![c, h, w],
        }
    }

    /// Builds a shape from `[n]` or `[c, h, w]`.
    pub fn from_dims(dims: &[usize]) -> Result<Shape> {
        match *dims {
            [n] if n > 0 => Ok(Shape::Flat(n)),
            [c, h, w] if c > 0 && h > 0 && w > 0 => Ok(Shape::Image { c, h, w }),
            _ => Err(Error::invalid(
                "input shape",
                format!("{dims:?}: expected [n] or [c, h, w], all > 0"),
            )),
        }
    }
}
