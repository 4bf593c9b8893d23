//! The embedded teacher–student task.
//!
//! A random teacher MLP `inputs → width → classes` (ReLU) labels standard Gaussian inputs by
//! the argmax of its logits. A student with more hidden units than `width` can fit the task
//! exactly, so `width` is the ground-truth number of hidden units a pruner should keep.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use super::{DataSource, Dataset};
use crate::error::{Error, Result};
use crate::nn::graph::Graph;
use crate::nn::InputSpec;

/// Most memory the task may take (inputs of both splits, or the teacher's weights), bytes.
pub const MAX_TEACHER_BYTES: u64 = 4 << 30;

/// Parameters of the teacher–student task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeacherConfig {
    /// Input dimension.
    pub inputs: usize,
    /// Teacher hidden width (units to keep).
    pub width: usize,
    /// Number of classes.
    pub classes: usize,
    /// Training samples.
    pub train: usize,
    /// Test samples.
    pub test: usize,
    /// Seed for the teacher and the inputs.
    pub seed: u64,
}

impl Default for TeacherConfig {
    fn default() -> Self {
        TeacherConfig {
            inputs: 20,
            width: 8,
            classes: 4,
            train: 8000,
            test: 2000,
            seed: 42,
        }
    }
}

impl TeacherConfig {
    /// Checks that every size is > 0 and there are at least 2 classes.
    pub fn check(&self) -> Result<()> {
        if self.inputs == 0
            || self.width == 0
            || self.classes < 2
            || self.train == 0
            || self.test == 0
        {
            return Err(Error::invalid(
                "teacher",
                format!("{self:?}: sizes must be > 0 and classes >= 2"),
            ));
        }
        // Checked before anything is allocated: the inputs of both splits (f32) and the
        // teacher's two weight matrices.
        let samples = self.train as u128 + self.test as u128;
        let input_bytes = samples * self.inputs as u128 * 4;
        if input_bytes > MAX_TEACHER_BYTES as u128 {
            return Err(Error::invalid(
                "teacher",
                format!(
                    "{} train + {} test samples of {} inputs need {input_bytes} bytes, more than the limit of {MAX_TEACHER_BYTES}",
                    self.train, self.test, self.inputs
                ),
            ));
        }
        let weights = self.width as u128 * (self.inputs as u128 + self.classes as u128);
        if weights * 4 > MAX_TEACHER_BYTES as u128 {
            return Err(Error::invalid(
                "teacher",
                format!(
                    "a teacher of width {} on {} inputs and {} classes has {weights} weights, more than the limit of {} bytes",
                    self.width, self.inputs, self.classes, MAX_TEACHER_BYTES
                ),
            ));
        }
        Ok(())
    }
}

/// Generates `(train, test)` labelled by a fresh teacher; both record the teacher's width.
pub fn teacher_student(config: &TeacherConfig) -> Result<(Dataset, Dataset)> {
    config.check()?;
    let teacher = Graph::mlp(&[config.inputs, config.width, config.classes], config.seed)?;
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    rng.set_stream(1);
    let mut make = |n: usize| -> Result<Dataset> {
        let x: Vec<f32> = (0..n * config.inputs)
            .map(|_| StandardNormal.sample(&mut rng))
            .collect();
        let logits = teacher.predict(&x, n)?;
        let labels = (0..n)
            .map(|r| logits.row(r).transpose().argmax().0 as u32)
            .collect();
        Dataset::new(
            x,
            labels,
            vec![config.inputs],
            config.classes,
            InputSpec::identity(vec![config.inputs]),
            DataSource::TeacherStudent(*config),
        )
    };
    let train = make(config.train)?;
    let test = make(config.test)?;
    Ok((train, test))
}
