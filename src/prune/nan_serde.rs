//! JSON has no NaN: serde_json writes it as `null`. These helpers read `null` back as NaN so
//! that saved states with "not measured yet" values round-trip exactly.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `f64` fields that may be NaN.
pub mod scalar {
    use super::*;

    /// Writes NaN as `null`.
    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_nan() {
            s.serialize_none()
        } else {
            s.serialize_some(v)
        }
    }

    /// Reads `null` as NaN.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}

/// `Vec<f64>` fields whose entries may be NaN.
pub mod vector {
    use super::*;

    /// Writes NaN entries as `null`.
    pub fn serialize<S: Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
        let o: Vec<Option<f64>> = v.iter().map(|x| (!x.is_nan()).then_some(*x)).collect();
        o.serialize(s)
    }

    /// Reads `null` entries as NaN.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        Ok(Vec::<Option<f64>>::deserialize(d)?
            .into_iter()
            .map(|x| x.unwrap_or(f64::NAN))
            .collect())
    }
}
