//! The library's one error type.
//!
//! Every fallible public function returns [`Result`]. Variants carry the field and index
//! that is wrong, so a message names the problem without a backtrace. Numerical outcomes
//! that are not bad input (a solver that ran out of budget) are reported in result values,
//! not here.

use std::path::PathBuf;

/// Errors raised by the toolkit.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A vector field has the wrong length.
    #[error("{field}: expected {expected} entries (one per player), got {got}")]
    LengthMismatch {
        /// Field name as in the game file.
        field: String,
        /// Expected length.
        expected: usize,
        /// Length found.
        got: usize,
    },
    /// A number is NaN or infinite.
    #[error("{field}[{index}] is not a finite number ({value})")]
    NonFinite {
        /// Field name.
        field: String,
        /// Offending index.
        index: usize,
        /// The value found.
        value: f64,
    },
    /// A number that must be non-negative is negative.
    #[error("{field}[{index}] = {value} is negative; it must be >= 0")]
    Negative {
        /// Field name.
        field: String,
        /// Offending index.
        index: usize,
        /// The value found.
        value: f64,
    },
    /// A number that must be strictly positive is not.
    #[error("{field}[{index}] = {value} must be > 0")]
    NotPositive {
        /// Field name.
        field: String,
        /// Offending index.
        index: usize,
        /// The value found.
        value: f64,
    },
    /// The competition matrix has a non-zero diagonal entry.
    #[error("competition[{index}][{index}] = {value}: the diagonal must be 0 (self cost goes in self_cost)")]
    NonZeroDiagonal {
        /// Player index.
        index: usize,
        /// The value found.
        value: f64,
    },
    /// A sparse competition entry names a player that does not exist.
    #[error("competition.sparse entry {entry}: index ({row}, {col}) is out of range for {players} players")]
    IndexOutOfRange {
        /// Position of the entry in the list.
        entry: usize,
        /// Row index.
        row: usize,
        /// Column index.
        col: usize,
        /// Number of players.
        players: usize,
    },
    /// A sparse competition entry repeats an earlier one.
    #[error("competition.sparse entry {entry}: ({row}, {col}) appears more than once")]
    DuplicateEntry {
        /// Position of the entry in the list.
        entry: usize,
        /// Row index.
        row: usize,
        /// Column index.
        col: usize,
    },
    /// A game with no players.
    #[error("the game has no players")]
    EmptyGame,
    /// A configuration or argument value outside its valid range.
    #[error("invalid {name}: {reason}")]
    InvalidParameter {
        /// Parameter name.
        name: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON document is malformed or does not match its schema.
    #[error("{path}: {message}")]
    Format {
        /// The file (or a description of the input).
        path: PathBuf,
        /// What is wrong, with line and column where known.
        message: String,
    },
    // --- equilibrium ---
    /// A solver that relies on the quadratic structure `F(s) = M s − q` was asked to solve a
    /// general game.
    #[error("solver `{solver}` needs the quadratic pruning game (F(s) = M s - q); use best-response, projection or extragradient for general games")]
    NeedsQuadraticGame {
        /// The solver's name.
        solver: String,
    },
    /// A solver's linear algebra broke down in a way no fallback can repair.
    #[error("solver `{solver}`: numerical breakdown: {reason}")]
    Breakdown {
        /// The solver's name.
        solver: String,
        /// What failed.
        reason: String,
    },
    // --- dominance ---
    /// A player index that does not exist in the game.
    #[error("player {player} does not exist (the game has {players} players)")]
    PlayerOutOfRange {
        /// The index asked for.
        player: usize,
        /// Number of players.
        players: usize,
    },
    // --- nn ---
    /// A layer received an input of the wrong shape.
    #[error("layer {layer}: expected input {expected}, got {got}")]
    ShapeMismatch {
        /// Layer index (as in `torch.nn.Sequential`).
        layer: usize,
        /// The shape the layer accepts.
        expected: String,
        /// The shape it was given.
        got: String,
    },
    /// A layer index that is not a gated (prunable) layer.
    #[error("layer {layer} has no gated units ({reason})")]
    NotPrunable {
        /// Layer index.
        layer: usize,
        /// Why (out of range, ungated, not a linear/conv layer).
        reason: String,
    },
    /// Training produced a NaN or infinite value; nothing was written.
    #[error("training diverged at epoch {epoch}, step {step}: {what} is not finite")]
    Diverged {
        /// Epoch (0-based).
        epoch: usize,
        /// Step within the epoch (0-based).
        step: usize,
        /// What was not finite (loss, a layer's parameters).
        what: String,
    },
    /// An IDX file has the wrong magic number.
    #[error("{path}: bad IDX magic {got:#010x}, expected {expected:#010x}")]
    IdxMagic {
        /// The file.
        path: PathBuf,
        /// Expected magic number.
        expected: u32,
        /// Magic number found.
        got: u32,
    },
    /// A file is shorter than its header promises.
    #[error("{path}: truncated: expected {expected} bytes, got {got}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes expected.
        expected: u64,
        /// Bytes found.
        got: u64,
    },
    /// A data file has a valid header but inconsistent contents (dimensions, labels, counts).
    #[error("{path}: {message}")]
    DataFormat {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A safetensors model or checkpoint is malformed or does not match its architecture.
    #[error("{path}: {message}")]
    ModelFormat {
        /// The file.
        path: PathBuf,
        /// What is wrong (tensor name, expected and found shapes).
        message: String,
    },
    // --- sim ---
    /// An output folder or shard belongs to a different sweep, or shards overlap.
    #[error("{path}: {reason}")]
    SweepMismatch {
        /// The folder or file.
        path: PathBuf,
        /// What does not match.
        reason: String,
    },
    /// Another process holds an output folder's lock.
    #[error("{path}: another process is writing to this folder; wait for it to finish or use another output folder")]
    Locked {
        /// The folder.
        path: PathBuf,
    },
    /// A size read from a file or a flag would need more memory or work than is allowed.
    #[error("{path}: {field} = {value}: {reason}")]
    TooLarge {
        /// The file (or flag) the size came from.
        path: PathBuf,
        /// The field, as named in the file.
        field: String,
        /// The value found.
        value: String,
        /// What it would need, and the limit.
        reason: String,
    },
    /// A figure could not be drawn.
    #[error("plot {path}: {reason}")]
    Plot {
        /// The output file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    // --- prune ---
    /// `--resume` on a folder where no run was started.
    #[error("{path}: nothing to resume: no run was started in this folder (run without --resume to start one)")]
    NothingToResume {
        /// The run folder.
        path: PathBuf,
    },
    /// A saved pruning run does not match the requested one or its own checkpoint.
    #[error("{path}: cannot resume: {message}")]
    ResumeMismatch {
        /// The state file.
        path: PathBuf,
        /// What differs.
        message: String,
    },
}

/// Shorthand for results with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An [`Error::InvalidParameter`] from anything printable.
    pub fn invalid(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidParameter {
            name: name.into(),
            reason: reason.into(),
        }
    }

    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
