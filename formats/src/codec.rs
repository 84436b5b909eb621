//! Shared codec pieces: bounded bincode, checksums, a bounds-checked byte cursor and the
//! common file preamble (magic + format version).

use crate::error::{FileKind, FormatError, Result};

/// The bincode configuration of every strata file: varint integers, little-endian.
pub(crate) fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encode a value with the strata bincode configuration.
pub fn encode<T: bincode::Encode>(value: &T) -> Vec<u8> {
    bincode::encode_to_vec(value, config()).expect("encoding into a Vec cannot fail")
}

/// Encode a value with the strata bincode configuration, appended to `out`.
pub fn encode_into<T: bincode::Encode>(value: &T, out: &mut Vec<u8>) {
    bincode::encode_into_std_write(value, out, config()).expect("encoding into a Vec cannot fail");
}

macro_rules! decode_with_limit {
    ($bytes:expr, $limit:literal) => {
        bincode::decode_from_slice::<T, _>($bytes, config().with_limit::<$limit>())
    };
}

/// Decode a value that must fill `bytes` exactly, with bincode's limit set to 64 bytes per
/// input byte rounded up to the next power of sixteen (at least 4 KiB, at most 4 GiB): every
/// length prefix is checked against the limit before anything is allocated, so a decode
/// allocates at most 1024 bytes per input byte (FORMAT.md §2.5). Valid files charge at most
/// 24 bytes per byte.
pub(crate) fn decode_exact<T: bincode::Decode<()>>(
    bytes: &[u8],
    kind: FileKind,
    what: &str,
    offset: u64,
) -> Result<T> {
    let budget = (bytes.len() as u64).saturating_mul(64);
    let decoded = if budget <= 0x1000 {
        decode_with_limit!(bytes, 0x1000)
    } else if budget <= 0x1_0000 {
        decode_with_limit!(bytes, 0x1_0000)
    } else if budget <= 0x10_0000 {
        decode_with_limit!(bytes, 0x10_0000)
    } else if budget <= 0x100_0000 {
        decode_with_limit!(bytes, 0x100_0000)
    } else if budget <= 0x1000_0000 {
        decode_with_limit!(bytes, 0x1000_0000)
    } else {
        decode_with_limit!(bytes, 0x1_0000_0000)
    };
    match decoded {
        Ok((value, used)) if used == bytes.len() => Ok(value),
        Ok((_, used)) => Err(FormatError::malformed(
            kind,
            what,
            offset,
            format!(
                "{} trailing bytes after the encoded value",
                bytes.len() - used
            ),
        )),
        Err(e) => Err(FormatError::malformed(kind, what, offset, e.to_string())),
    }
}

/// crc32 (IEEE, as crc32fast computes it) of some bytes.
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// Check a stored crc against the bytes it covers (`range` within `file`).
pub(crate) fn check_crc(
    file: &[u8],
    range: std::ops::Range<usize>,
    stored: u32,
    kind: FileKind,
    what: &str,
) -> Result<()> {
    let computed = crc32(&file[range.clone()]);
    if computed == stored {
        Ok(())
    } else {
        Err(FormatError::Checksum {
            kind,
            what: what.to_string(),
            offset: range.start as u64,
            end: range.end as u64,
            stored,
            computed,
        })
    }
}

/// A bounds-checked reader over a byte slice that names what it reads in its errors.
pub(crate) struct Cursor<'a> {
    pub bytes: &'a [u8],
    pub pos: usize,
    pub kind: FileKind,
}

impl<'a> Cursor<'a> {
    pub fn new(bytes: &'a [u8], pos: usize, kind: FileKind) -> Cursor<'a> {
        Cursor { bytes, pos, kind }
    }

    pub fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let have = self.bytes.len().saturating_sub(self.pos);
        if n > have {
            return Err(FormatError::Truncated {
                kind: self.kind,
                what: what.to_string(),
                offset: self.pos as u64,
                need: n as u64,
                have: have as u64,
            });
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    pub fn u16(&mut self, what: &str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    pub fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
}

/// Format version of a file: readers accept any minor of a major they know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormatVersion {
    /// Incompatible changes bump the major version.
    pub major: u16,
    /// Compatible additions (new optional blocks) bump the minor version.
    pub minor: u16,
}

impl std::fmt::Display for FormatVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Read and check the 12-byte preamble: magic (8), major (u16), minor (u16).
pub(crate) fn read_preamble(
    cur: &mut Cursor<'_>,
    magic: &[u8; 8],
    supported_major: u16,
) -> Result<FormatVersion> {
    let found = cur.take(8, "magic")?;
    if found != magic {
        return Err(FormatError::BadMagic {
            kind: cur.kind,
            found: found.to_vec(),
        });
    }
    let major = cur.u16("major version")?;
    let minor = cur.u16("minor version")?;
    if major > supported_major {
        return Err(FormatError::NewerMajor {
            kind: cur.kind,
            found: major,
            supported: supported_major,
        });
    }
    if major == 0 {
        return Err(FormatError::malformed(
            cur.kind,
            "major version",
            8,
            "major version 0 does not exist",
        ));
    }
    Ok(FormatVersion { major, minor })
}

/// Append the preamble.
pub(crate) fn write_preamble(out: &mut Vec<u8>, magic: &[u8; 8], version: FormatVersion) {
    out.extend_from_slice(magic);
    out.extend_from_slice(&version.major.to_le_bytes());
    out.extend_from_slice(&version.minor.to_le_bytes());
}
