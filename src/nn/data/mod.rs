//! Data sets: IDX folders (Fashion-MNIST, MNIST) and the embedded teacher–student task.
//!
//! Inputs are stored preprocessed (`f32`, `[n, numel]` row-major, NCHW for images), labels
//! as `u32`. Every [`Dataset`] records where it came from.

pub mod idx;
pub mod teacher;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::nn::InputSpec;

pub use teacher::{teacher_student, TeacherConfig};

/// Where the Debian package `dataset-fashion-mnist` installs its files.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// Origin of a data set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DataSource {
    /// Files of an IDX folder.
    Idx {
        /// The folder.
        dir: PathBuf,
        /// `train` or `test`.
        split: String,
    },
    /// The embedded teacher–student task; `width` is the ground-truth hidden width.
    TeacherStudent(TeacherConfig),
    /// A subset of another data set.
    Subset {
        /// The parent's source.
        parent: Box<DataSource>,
        /// Samples kept (the first ones).
        len: usize,
    },
}

/// A labelled data set held in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    inputs: Vec<f32>,
    labels: Vec<u32>,
    shape: Vec<usize>,
    classes: usize,
    input: InputSpec,
    source: DataSource,
}

impl Dataset {
    /// A data set from preprocessed inputs (`labels.len() * prod(shape)` values).
    pub fn new(
        inputs: Vec<f32>,
        labels: Vec<u32>,
        shape: Vec<usize>,
        classes: usize,
        input: InputSpec,
        source: DataSource,
    ) -> Result<Self> {
        let numel: usize = shape.iter().product();
        if numel == 0 || labels.is_empty() {
            return Err(Error::invalid(
                "dataset",
                "needs at least one sample and a non-empty shape",
            ));
        }
        if inputs.len() != labels.len() * numel {
            return Err(Error::LengthMismatch {
                field: "dataset inputs".into(),
                expected: labels.len() * numel,
                got: inputs.len(),
            });
        }
        if let Some((i, &l)) = labels
            .iter()
            .enumerate()
            .find(|(_, &l)| l as usize >= classes)
        {
            return Err(Error::invalid(
                "labels",
                format!("sample {i}: label {l} >= {classes} classes"),
            ));
        }
        Ok(Dataset {
            inputs,
            labels,
            shape,
            classes,
            input,
            source,
        })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True if there are no samples (never, for a constructed data set).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per sample.
    pub fn sample_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Per-sample shape (`[n]` or `[c, h, w]`).
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// All inputs, `[len, sample_len]` row-major.
    pub fn inputs(&self) -> &[f32] {
        &self.inputs
    }

    /// All labels.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// The preprocessing that produced the inputs (stored in exported models).
    pub fn input_spec(&self) -> &InputSpec {
        &self.input
    }

    /// Where the data came from.
    pub fn source(&self) -> &DataSource {
        &self.source
    }

    /// The first `len` samples (all if `len` is larger).
    pub fn take(&self, len: usize) -> Dataset {
        let len = len.min(self.len());
        let n = self.sample_len();
        Dataset {
            inputs: self.inputs[..len * n].to_vec(),
            labels: self.labels[..len].to_vec(),
            shape: self.shape.clone(),
            classes: self.classes,
            input: self.input.clone(),
            source: DataSource::Subset {
                parent: Box::new(self.source.clone()),
                len,
            },
        }
    }

    /// Copies the samples `indices` into `x` and `y` (which must be large enough).
    pub(crate) fn gather(&self, indices: &[u32], x: &mut [f32], y: &mut [u32]) {
        let n = self.sample_len();
        for (k, &i) in indices.iter().enumerate() {
            let i = i as usize;
            x[k * n..(k + 1) * n].copy_from_slice(&self.inputs[i * n..(i + 1) * n]);
            y[k] = self.labels[i];
        }
    }
}

/// Finds a standard IDX file in `dir`, compressed or not.
fn find(dir: &Path, stem: &str) -> Result<PathBuf> {
    for name in [format!("{stem}.gz"), stem.to_string()] {
        let p = dir.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(Error::io(
        dir.join(format!("{stem}[.gz]")),
        std::io::Error::new(std::io::ErrorKind::NotFound, "IDX file not found"),
    ))
}

fn load_split(
    dir: &Path,
    images: &str,
    labels: &str,
    split: &str,
    spec: &InputSpec,
) -> Result<Dataset> {
    let ip = find(dir, images)?;
    let lp = find(dir, labels)?;
    let img = idx::read_images(&ip)?;
    let lab = idx::read_labels(&lp)?;
    if img.dims[0] != lab.dims[0] {
        return Err(Error::DataFormat {
            path: lp,
            message: format!(
                "{} labels for {} images in {}",
                lab.dims[0],
                img.dims[0],
                ip.display()
            ),
        });
    }
    if let Some(&bad) = lab.data.iter().find(|&&l| l >= 10) {
        return Err(Error::DataFormat {
            path: lp,
            message: format!("label {bad} is outside 0..10"),
        });
    }
    let (h, w) = (img.dims[1], img.dims[2]);
    let inputs = img.data.iter().map(|&b| spec.apply(b as f32)).collect();
    let labels = lab.data.iter().map(|&l| l as u32).collect();
    let spec = InputSpec {
        shape: vec![1, h, w],
        ..spec.clone()
    };
    Dataset::new(
        inputs,
        labels,
        vec![1, h, w],
        10,
        spec,
        DataSource::Idx {
            dir: dir.to_path_buf(),
            split: split.into(),
        },
    )
}

/// Loads `(train, test)` from a folder with the four standard IDX files (gzip or raw),
/// preprocessed with `spec` (use [`InputSpec::fashion_mnist`] for Fashion-MNIST).
pub fn load_idx_dir(dir: &Path, spec: &InputSpec) -> Result<(Dataset, Dataset)> {
    let train = load_split(
        dir,
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "train",
        spec,
    )?;
    let test = load_split(
        dir,
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
        "test",
        spec,
    )?;
    Ok((train, test))
}

/// Fashion-MNIST from [`FASHION_MNIST_DIR`], or `None` if the folder is absent.
pub fn fashion_mnist() -> Result<Option<(Dataset, Dataset)>> {
    let dir = Path::new(FASHION_MNIST_DIR);
    if !dir.is_dir() {
        return Ok(None);
    }
    load_idx_dir(dir, &InputSpec::fashion_mnist()).map(Some)
}
