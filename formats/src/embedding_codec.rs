//! The bincode encoding of an embedding (`Option<Vec<f32>>`), moved as one block of bytes.
//!
//! bincode writes and reads a `Vec<f32>` one element at a time; on a little-endian machine
//! the encoded elements are the vector's own bytes, so they are copied in one piece. The
//! bytes are exactly bincode's (FORMAT.md §6.2): the `Option` tag (`0` or `1`), the length as
//! a varint, then each value as 4 bytes little-endian. Big-endian machines, and a bincode
//! configuration that writes floats big-endian, take bincode's element-by-element path.

use bincode::config::Config;
use bincode::de::read::Reader;
use bincode::de::Decoder;
use bincode::enc::write::{SliceWriter, Writer};
use bincode::enc::{Encoder, EncoderImpl};
use bincode::error::{DecodeError, EncodeError};
use bincode::{Decode, Encode};

/// Whether values under `config` are the vector's own bytes: this machine and the
/// configuration both little-endian (asked of bincode by encoding one value).
fn own_bytes<C: Config>(config: C) -> bool {
    if !cfg!(target_endian = "little") {
        return false;
    }
    let mut out = [0u8; 4];
    let mut e = EncoderImpl::new(SliceWriter::new(&mut out), config);
    1.5f32.encode(&mut e).is_ok() && out == 1.5f32.to_le_bytes()
}

/// Encode `embedding` as bincode encodes an `Option<Vec<f32>>`.
pub(crate) fn encode<E: Encoder>(embedding: Option<&[f32]>, e: &mut E) -> Result<(), EncodeError> {
    let Some(v) = embedding else {
        return 0u8.encode(e);
    };
    1u8.encode(e)?;
    (v.len() as u64).encode(e)?;
    if own_bytes(*e.config()) {
        e.writer().write(bytemuck::cast_slice(v))
    } else {
        v.iter().try_for_each(|x| x.encode(e))
    }
}

/// Decode what [`encode`] (or bincode's own `Option<Vec<f32>>`) wrote, with the decoder's
/// allocation limit charged before the vector is allocated.
pub(crate) fn decode<C, D: Decoder<Context = C>>(
    d: &mut D,
) -> Result<Option<Vec<f32>>, DecodeError> {
    match u8::decode(d)? {
        0 => return Ok(None),
        1 => {}
        found => {
            return Err(DecodeError::UnexpectedVariant {
                type_name: "Option<Vec<f32>>",
                allowed: &bincode::error::AllowedEnumVariants::Range { min: 0, max: 1 },
                found: found as u32,
            })
        }
    }
    let len = u64::decode(d)?;
    let len = usize::try_from(len).map_err(|_| DecodeError::OutsideUsizeRange(len))?;
    d.claim_container_read::<f32>(len)?;
    let mut v = vec![0f32; len];
    if own_bytes(*d.config()) {
        d.reader().read(bytemuck::cast_slice_mut(&mut v))?;
    } else {
        for x in &mut v {
            // The claim above covers the values: each decode's own claim is handed back
            // first, as bincode's `Vec` does.
            d.unclaim_bytes_read(std::mem::size_of::<f32>());
            *x = f32::decode(d)?;
        }
    }
    Ok(Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bincode::de::DecoderImpl;
    use bincode::enc::EncoderImpl;

    fn ours(v: Option<&[f32]>) -> Vec<u8> {
        let mut e = EncoderImpl::new(
            bincode::enc::write::SizeWriter::default(),
            crate::codec::config(),
        );
        encode(v, &mut e).unwrap();
        let size = e.into_writer().bytes_written;
        let mut out = vec![0u8; size];
        let mut e = EncoderImpl::new(
            bincode::enc::write::SliceWriter::new(&mut out),
            crate::codec::config(),
        );
        encode(v, &mut e).unwrap();
        out
    }

    fn decoded(bytes: &[u8]) -> Result<Option<Vec<f32>>, DecodeError> {
        let config = crate::codec::config().with_limit::<4096>();
        let mut d = DecoderImpl::new(bincode::de::read::SliceReader::new(bytes), config, ());
        decode(&mut d)
    }

    #[test]
    fn bytes_equal_bincodes_own_and_decode_back() {
        let long: Vec<f32> = (0..300).map(|i| i as f32 * -0.37).collect();
        let cases: [Option<Vec<f32>>; 4] = [
            None,
            Some(vec![]),
            Some(vec![1.5, f32::NAN, -0.0, f32::INFINITY]),
            Some(long),
        ];
        for case in cases {
            let bincodes = crate::codec::encode(&case);
            assert_eq!(ours(case.as_deref()), bincodes);
            let back = decoded(&bincodes).unwrap();
            assert_eq!(
                back.map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()),
                case.map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
            );
        }
    }

    /// A configuration that writes floats big-endian gets bincode's bytes, value by value,
    /// and decoding charges the limit once for the values (4000 bytes within 4096).
    #[test]
    fn a_big_endian_configuration_takes_the_value_path() {
        let config = crate::codec::config().with_big_endian();
        let v: Vec<f32> = (0..1000).map(|i| i as f32 * 0.5).collect();
        let theirs = bincode::encode_to_vec(Some(v.clone()), config).unwrap();
        let mut out = vec![0u8; theirs.len()];
        let mut e = EncoderImpl::new(SliceWriter::new(&mut out), config);
        encode(Some(&v), &mut e).unwrap();
        assert_eq!(out, theirs);
        assert_ne!(
            theirs,
            crate::codec::encode(&Some(v.clone())),
            "big-endian bytes differ"
        );
        let reader = bincode::de::read::SliceReader::new(&theirs);
        let mut d = DecoderImpl::new(reader, config.with_limit::<4096>(), ());
        assert_eq!(decode(&mut d).unwrap(), Some(v));
    }

    #[test]
    fn a_bad_tag_a_cut_vector_and_a_huge_length_are_errors() {
        assert!(matches!(
            decoded(&[2]),
            Err(DecodeError::UnexpectedVariant { found: 2, .. })
        ));
        let mut cut = crate::codec::encode(&Some(vec![1.0f32, 2.0]));
        cut.pop();
        assert!(decoded(&cut).is_err());
        // A length of 2^40 values is refused by the limit before any allocation.
        let mut huge = vec![1u8];
        bincode::encode_into_std_write(1u64 << 40, &mut huge, crate::codec::config()).unwrap();
        assert!(matches!(decoded(&huge), Err(DecodeError::LimitExceeded)));
    }
}
