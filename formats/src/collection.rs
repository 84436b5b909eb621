//! Collection-level settings shared by segment and version files: metric and quantization.

use std::fmt;
use std::str::FromStr;

/// Distance metric of a collection, with Chroma's definitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, bincode::Encode, bincode::Decode)]
pub enum Metric {
    /// Squared Euclidean distance (Chroma's default `l2`).
    #[default]
    L2,
    /// `1 - cos(a, b)`.
    Cosine,
    /// `1 - a·b`.
    Ip,
}

/// Quantized copy of the vectors kept in a segment for a fast first search pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, bincode::Encode, bincode::Decode)]
pub enum Quantization {
    /// No quantized block.
    #[default]
    None,
    /// One signed byte per dimension with a per-row scale.
    I8,
    /// One sign bit per dimension.
    Bit,
}

/// An unknown metric or quantization name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {found:?}; expected one of {expected}")]
pub struct UnknownName {
    what: &'static str,
    found: String,
    expected: &'static str,
}

impl Metric {
    /// The metric's name as Chroma spells it.
    pub fn name(self) -> &'static str {
        match self {
            Metric::L2 => "l2",
            Metric::Cosine => "cosine",
            Metric::Ip => "ip",
        }
    }
}

impl Quantization {
    /// The quantization's name as the CLI spells it.
    pub fn name(self) -> &'static str {
        match self {
            Quantization::None => "none",
            Quantization::I8 => "i8",
            Quantization::Bit => "1bit",
        }
    }

    pub(crate) fn code(self) -> u8 {
        match self {
            Quantization::None => 0,
            Quantization::I8 => 1,
            Quantization::Bit => 2,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<Quantization> {
        Some(match code {
            0 => Quantization::None,
            1 => Quantization::I8,
            2 => Quantization::Bit,
            _ => return None,
        })
    }
}

impl FromStr for Metric {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Metric, UnknownName> {
        match s {
            "l2" => Ok(Metric::L2),
            "cosine" => Ok(Metric::Cosine),
            "ip" => Ok(Metric::Ip),
            _ => Err(UnknownName {
                what: "metric",
                found: s.to_string(),
                expected: "l2, cosine, ip",
            }),
        }
    }
}

impl FromStr for Quantization {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Quantization, UnknownName> {
        match s {
            "none" => Ok(Quantization::None),
            "i8" => Ok(Quantization::I8),
            "1bit" | "bit" => Ok(Quantization::Bit),
            _ => Err(UnknownName {
                what: "quantization",
                found: s.to_string(),
                expected: "none, i8, 1bit",
            }),
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Quantization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
