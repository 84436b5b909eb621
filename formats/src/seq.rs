//! `Seq`: the position of an operation in its source's order.
//!
//! A DynamoDB stream SequenceNumber is a decimal string of up to 40 digits; it must be
//! compared as a number ("9" < "10"), and 40 digits do not fit in a `u128`. `Seq` holds an
//! unsigned integer of up to 160 bits as five 32-bit limbs, most significant first, so the
//! derived ordering is the numeric ordering.

use std::fmt;
use std::str::FromStr;

/// Largest number of decimal digits a [`Seq`] accepts when parsed from text.
pub const MAX_SEQ_DIGITS: usize = 40;

/// An operation's position in its source's order: an unsigned integer of up to 160 bits.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, bincode::Encode, bincode::Decode,
)]
pub struct Seq([u32; 5]);

/// Why a text is not a valid [`Seq`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeqParseError {
    /// The text was empty.
    #[error("sequence number is empty")]
    Empty,
    /// The text held something other than ASCII decimal digits.
    #[error("sequence number {text:?} holds a character that is not a decimal digit at byte {at}")]
    NotDecimal {
        /// The offending text (cut to 64 characters).
        text: String,
        /// Byte offset of the first bad character.
        at: usize,
    },
    /// The text held more than [`MAX_SEQ_DIGITS`] significant digits.
    #[error(
        "sequence number has {digits} significant digits; at most {MAX_SEQ_DIGITS} are allowed"
    )]
    TooLong {
        /// Number of significant digits found.
        digits: usize,
    },
}

impl Seq {
    /// The smallest sequence number, zero.
    pub const ZERO: Seq = Seq([0; 5]);
    /// The largest representable sequence number (2^160 - 1).
    pub const MAX: Seq = Seq([u32::MAX; 5]);

    /// A sequence number from a `u128`.
    pub fn from_u128(v: u128) -> Seq {
        Seq([
            0,
            (v >> 96) as u32,
            (v >> 64) as u32,
            (v >> 32) as u32,
            v as u32,
        ])
    }

    /// The raw limbs, most significant first.
    pub fn limbs(&self) -> [u32; 5] {
        self.0
    }

    /// A sequence number from raw limbs, most significant first.
    pub fn from_limbs(limbs: [u32; 5]) -> Seq {
        Seq(limbs)
    }

    /// The next sequence number, saturating at [`Seq::MAX`].
    pub fn next(&self) -> Seq {
        let mut limbs = self.0;
        for limb in limbs.iter_mut().rev() {
            let (v, overflow) = limb.overflowing_add(1);
            *limb = v;
            if !overflow {
                return Seq(limbs);
            }
        }
        Seq::MAX
    }

    /// Twenty bytes: the five limbs, most significant first, each big-endian — a byte string
    /// whose lexicographic order is the numeric order.
    pub fn to_be_bytes(&self) -> [u8; 20] {
        let mut out = [0u8; 20];
        for (i, limb) in self.0.iter().enumerate() {
            out[i * 4..i * 4 + 4].copy_from_slice(&limb.to_be_bytes());
        }
        out
    }

    /// Inverse of [`Seq::to_be_bytes`].
    pub fn from_be_bytes(bytes: [u8; 20]) -> Seq {
        let mut limbs = [0u32; 5];
        for (i, limb) in limbs.iter_mut().enumerate() {
            *limb = u32::from_be_bytes([
                bytes[i * 4],
                bytes[i * 4 + 1],
                bytes[i * 4 + 2],
                bytes[i * 4 + 3],
            ]);
        }
        Seq(limbs)
    }

    fn mul10_add(&mut self, digit: u32) -> bool {
        let mut carry = u64::from(digit);
        for limb in self.0.iter_mut().rev() {
            let v = u64::from(*limb) * 10 + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        carry == 0
    }

    fn divmod10(&mut self) -> u32 {
        let mut rem = 0u64;
        for limb in self.0.iter_mut() {
            let cur = (rem << 32) | u64::from(*limb);
            *limb = (cur / 10) as u32;
            rem = cur % 10;
        }
        rem as u32
    }
}

impl FromStr for Seq {
    type Err = SeqParseError;

    fn from_str(text: &str) -> Result<Seq, SeqParseError> {
        if text.is_empty() {
            return Err(SeqParseError::Empty);
        }
        if let Some(at) = text.bytes().position(|b| !b.is_ascii_digit()) {
            return Err(SeqParseError::NotDecimal {
                text: text.chars().take(64).collect(),
                at,
            });
        }
        let significant = text.trim_start_matches('0');
        if significant.len() > MAX_SEQ_DIGITS {
            return Err(SeqParseError::TooLong {
                digits: significant.len(),
            });
        }
        let mut seq = Seq::ZERO;
        for b in significant.bytes() {
            // 40 decimal digits are below 2^133, so this never overflows 160 bits.
            let fits = seq.mul10_add(u32::from(b - b'0'));
            debug_assert!(fits);
        }
        Ok(seq)
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Seq::ZERO {
            return f.write_str("0");
        }
        let mut digits = Vec::with_capacity(49);
        let mut n = *self;
        while n != Seq::ZERO {
            digits.push(b'0' + n.divmod10() as u8);
        }
        digits.reverse();
        f.write_str(std::str::from_utf8(&digits).unwrap_or("?"))
    }
}

impl fmt::Debug for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Seq({self})")
    }
}

impl From<u64> for Seq {
    fn from(v: u64) -> Seq {
        Seq::from_u128(u128::from(v))
    }
}

impl serde::Serialize for Seq {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Seq {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Seq, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Seq;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a decimal sequence number (string or unsigned integer)")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Seq, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Seq, E> {
                Ok(Seq::from(v))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn orders_numerically_not_textually() {
        let nine: Seq = "9".parse().unwrap();
        let ten: Seq = "10".parse().unwrap();
        assert!(nine < ten);
        let big: Seq = "9999999999999999999999999999999999999999".parse().unwrap();
        let bigger: Seq = "10000000000000000000000000000000000000000"
            .trim_end_matches('0')
            .parse::<Seq>()
            .unwrap();
        assert!(bigger < big);
        assert_eq!(big.to_string(), "9".repeat(40));
    }

    #[test]
    fn rejects_bad_text() {
        assert_eq!("".parse::<Seq>(), Err(SeqParseError::Empty));
        assert!(matches!(
            "12a".parse::<Seq>(),
            Err(SeqParseError::NotDecimal { at: 2, .. })
        ));
        assert!(matches!(
            "1".repeat(41).parse::<Seq>(),
            Err(SeqParseError::TooLong { digits: 41 })
        ));
        assert_eq!("000012".parse::<Seq>().unwrap(), Seq::from(12));
    }

    #[test]
    fn next_carries() {
        assert_eq!(Seq::from(u64::from(u32::MAX)).next(), Seq::from(1u64 << 32));
        assert_eq!(Seq::MAX.next(), Seq::MAX);
    }

    proptest! {
        #[test]
        fn text_round_trip_and_order(a in "[1-9][0-9]{0,39}", b in "[1-9][0-9]{0,39}") {
            let sa: Seq = a.parse().unwrap();
            let sb: Seq = b.parse().unwrap();
            prop_assert_eq!(sa.to_string(), a.clone());
            let numeric = a.len().cmp(&b.len()).then(a.cmp(&b));
            prop_assert_eq!(sa.cmp(&sb), numeric);
            prop_assert_eq!(sa.to_be_bytes().cmp(&sb.to_be_bytes()), numeric);
            prop_assert_eq!(Seq::from_be_bytes(sa.to_be_bytes()), sa);
        }
    }
}
