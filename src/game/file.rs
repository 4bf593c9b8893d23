//! The game file (docs/formats.md): JSON in, validated [`PruningGame`] out, and back;
//! [`PruningGame::read`] and [`PruningGame::write`] also take the binary form of `binary.rs`
//! (safetensors, docs/game-binary-format.md), chosen by the file's extension or, for
//! reading, its first bytes.
//!
//! ```json
//! { "benefit": [..], "self_cost": [..], "participation_cost": 0.1 | [..],
//!   "upper": 1.0 | [..],                                  (optional, default 1)
//!   "competition": {"dense": [[..], ..]} | {"sparse": [[i, j, c], ..]} }   (optional)
//! ```
//! Type errors name the field path with line and column; value errors (non-finite, negative,
//! out of range, duplicated, mismatched lengths) come from [`PruningGame::new`] and name the
//! field and index. Nothing in a malformed file can make the reader panic.

use std::fmt;
use std::path::Path;

use nalgebra::{DMatrix, DVector};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::{Competition, PruningGame};
use crate::error::{Error, Result};

/// A number for every player, or one number for all.
#[derive(Debug, Clone, PartialEq)]
enum PerPlayer {
    Uniform(f64),
    Each(Vec<f64>),
}

impl PerPlayer {
    fn expand(self, players: usize) -> DVector<f64> {
        match self {
            PerPlayer::Uniform(v) => DVector::from_element(players, v),
            PerPlayer::Each(v) => DVector::from_vec(v),
        }
    }

    /// The compact form: one number when every player has the same value.
    fn compact(values: &DVector<f64>) -> Self {
        match values.iter().next() {
            Some(&first) if values.iter().all(|v| v.to_bits() == first.to_bits()) => {
                PerPlayer::Uniform(first)
            }
            _ => PerPlayer::Each(values.iter().copied().collect()),
        }
    }
}

impl Serialize for PerPlayer {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            PerPlayer::Uniform(v) => serializer.serialize_f64(*v),
            PerPlayer::Each(v) => v.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for PerPlayer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct PerPlayerVisitor;
        impl<'de> Visitor<'de> for PerPlayerVisitor {
            type Value = PerPlayer;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or a list of numbers (one per player)")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<PerPlayer, E> {
                Ok(PerPlayer::Uniform(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<PerPlayer, E> {
                Ok(PerPlayer::Uniform(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<PerPlayer, E> {
                Ok(PerPlayer::Uniform(v as f64))
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<PerPlayer, A::Error> {
                let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
                while let Some(v) = seq.next_element::<f64>()? {
                    values.push(v);
                }
                Ok(PerPlayer::Each(values))
            }
        }
        deserializer.deserialize_any(PerPlayerVisitor)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum CompetitionSpec {
    Dense(Vec<Vec<f64>>),
    Sparse(Vec<(usize, usize, f64)>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GameFile {
    benefit: Vec<f64>,
    self_cost: PerPlayer,
    participation_cost: PerPlayer,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    upper: Option<PerPlayer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    competition: Option<CompetitionSpec>,
}

impl GameFile {
    fn into_game(self) -> Result<PruningGame> {
        let n = self.benefit.len();
        if n == 0 {
            return Err(Error::EmptyGame);
        }
        let competition = match self.competition {
            None => Competition::None,
            Some(CompetitionSpec::Sparse(entries)) => Competition::sparse(n, &entries)?,
            Some(CompetitionSpec::Dense(rows)) => {
                if rows.len() != n {
                    return Err(Error::LengthMismatch {
                        field: "competition.dense".into(),
                        expected: n,
                        got: rows.len(),
                    });
                }
                if let Some(i) = rows.iter().position(|r| r.len() != n) {
                    return Err(Error::LengthMismatch {
                        field: format!("competition.dense[{i}]"),
                        expected: n,
                        got: rows[i].len(),
                    });
                }
                Competition::dense(DMatrix::from_fn(n, n, |i, j| rows[i][j]))?
            }
        };
        PruningGame::new(
            DVector::from_vec(self.benefit),
            self.self_cost.expand(n),
            self.participation_cost.expand(n),
            self.upper.unwrap_or(PerPlayer::Uniform(1.0)).expand(n),
            competition,
        )
    }

    fn from_game(game: &PruningGame) -> Self {
        let n = game.benefit().len();
        let upper = PerPlayer::compact(game.upper_bounds());
        let competition = match game.competition() {
            Competition::None => None,
            Competition::Dense(m) => Some(CompetitionSpec::Dense(
                (0..n).map(|i| m.row(i).iter().copied().collect()).collect(),
            )),
            Competition::Sparse(m) => Some(CompetitionSpec::Sparse(m.triplets().collect())),
        };
        GameFile {
            benefit: game.benefit().iter().copied().collect(),
            self_cost: PerPlayer::Each(game.self_cost().iter().copied().collect()),
            participation_cost: PerPlayer::compact(game.participation_cost()),
            upper: (upper != PerPlayer::Uniform(1.0)).then_some(upper),
            competition,
        }
    }
}

impl PruningGame {
    /// Parses and validates a game from JSON text. `source` names the input in errors.
    pub fn from_json_str(text: &str, source: &Path) -> Result<Self> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let file: GameFile =
            serde_path_to_error::deserialize(&mut deserializer).map_err(|e| Error::Format {
                path: source.to_path_buf(),
                message: describe_json_error(&e),
            })?;
        deserializer.end().map_err(|e| Error::Format {
            path: source.to_path_buf(),
            message: e.to_string(),
        })?;
        file.into_game()
    }

    /// Reads and validates a game file in either form: safetensors when the name ends in
    /// `.safetensors` or the file starts like one, JSON otherwise. Every error names the file.
    pub fn read(path: &Path) -> Result<Self> {
        let binary = match path.extension().and_then(|e| e.to_str()) {
            Some("safetensors") => true,
            Some("json") => false,
            _ => {
                let mut start = [0u8; 9];
                let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
                let got = read_prefix(&mut file, &mut start).map_err(|e| Error::io(path, e))?;
                super::binary::looks_like_safetensors(&start[..got])
            }
        };
        let game = if binary {
            Self::read_safetensors(path)
        } else {
            Self::read_json(path)
        };
        game.map_err(|e| super::binary::with_path(path, e))
    }

    /// Writes the game file atomically: safetensors when the name ends in `.safetensors`,
    /// JSON otherwise.
    pub fn write(&self, path: &Path) -> Result<()> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("safetensors") => self.write_safetensors(path),
            _ => self.write_json(path),
        }
    }

    /// Reads and validates a game file.
    pub fn read_json(path: &Path) -> Result<Self> {
        Self::from_json_str(&crate::io::read_to_string(path)?, path)
    }

    /// The game as JSON text in the game-file schema.
    pub fn to_json_string(&self) -> String {
        // Serialising plain numbers, vectors and tuples cannot fail.
        serde_json::to_string(&GameFile::from_game(self)).unwrap_or_default()
    }

    /// Writes the game file atomically.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        let file = GameFile::from_game(self);
        crate::io::write_atomic(path, |w| {
            serde_json::to_writer(w, &file).map_err(std::io::Error::other)
        })
    }
}

fn describe_json_error(error: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let path = error.path().to_string();
    if path == "." || path.is_empty() {
        error.inner().to_string()
    } else {
        format!("{path}: {}", error.inner())
    }
}

/// Reads up to `buffer.len()` bytes (fewer only at the end of the file).
fn read_prefix(file: &mut std::fs::File, buffer: &mut [u8]) -> std::io::Result<usize> {
    use std::io::Read;
    let mut got = 0;
    while got < buffer.len() {
        match file.read(&mut buffer[got..])? {
            0 => break,
            k => got += k,
        }
    }
    Ok(got)
}
