//! Helpers shared by the fuzz targets: checksum fix-ups for a custom mutator.
//!
//! Every strata file is crc-protected, so almost every random mutation of a valid file is
//! rejected by the first checksum and the decoders behind it are never reached. The targets
//! install a custom mutator (`fuzz_mutator!`) that runs libFuzzer's own mutation and then,
//! most of the time, recomputes the checksums (and the delta seal's count and seq range) so
//! that the mutated bytes reach the bincode bodies, the block tables and the offsets
//! tables. The rest of the time the checksums are left wrong, so the checksum paths stay
//! covered too. The fix-ups read the layout defensively: on anything that does not fit they
//! stop, leaving the rest of the bytes as they are.

use strata_formats::{crc32, Seq};

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    if let Some(dst) = at.checked_add(4).and_then(|end| b.get_mut(at..end)) {
        dst.copy_from_slice(&v.to_le_bytes());
    }
}

/// A bincode `standard()` varint u32 at `*pos` (None if it is not one).
fn varint_u32(b: &[u8], pos: &mut usize) -> Option<u32> {
    let first = *b.get(*pos)?;
    *pos += 1;
    match first {
        0..=250 => Some(u32::from(first)),
        251 => {
            let v = u16::from_le_bytes(b.get(*pos..*pos + 2)?.try_into().ok()?);
            *pos += 2;
            Some(u32::from(v))
        }
        252 => {
            let v = u32_at(b, *pos)?;
            *pos += 4;
            Some(v)
        }
        _ => None,
    }
}

/// The seq at the start of a record payload (five varint u32 limbs).
fn payload_seq(payload: &[u8]) -> Option<Seq> {
    let mut pos = 0;
    let mut limbs = [0u32; 5];
    for limb in &mut limbs {
        *limb = varint_u32(payload, &mut pos)?;
    }
    Some(Seq::from_limbs(limbs))
}

/// Recompute a delta file's header crc, record crcs and, when it ends with a seal footer,
/// the footer's count, seq range, body crc and footer crc.
pub fn fix_delta(b: &mut [u8]) {
    let Some(hlen) = u32_at(b, 12) else { return };
    let Some(crc_at) = 16usize.checked_add(hlen as usize) else {
        return;
    };
    if crc_at + 4 > b.len() {
        return;
    }
    let crc = crc32(&b[..crc_at]);
    put_u32(b, crc_at, crc);
    let body_start = crc_at + 4;
    let sealed = b.len() >= body_start + 68 && b.ends_with(b"DLSEALED");
    let records_end = if sealed { b.len() - 68 } else { b.len() };
    let mut pos = body_start;
    let (mut count, mut min, mut max) = (0u64, Seq::MAX, Seq::ZERO);
    while pos + 8 <= records_end {
        let len = u32_at(b, pos).unwrap_or(0) as usize;
        if len == 0 || len > records_end - pos - 8 {
            break;
        }
        let crc = crc_concat(&b[pos..pos + 4], &b[pos + 8..pos + 8 + len]);
        put_u32(b, pos + 4, crc);
        if let Some(seq) = payload_seq(&b[pos + 8..pos + 8 + len]) {
            min = min.min(seq);
            max = max.max(seq);
        }
        count += 1;
        pos += 8 + len;
    }
    if sealed {
        let f = records_end;
        if count == 0 {
            min = Seq::ZERO;
        }
        b[f + 4..f + 12].copy_from_slice(&count.to_le_bytes());
        b[f + 12..f + 32].copy_from_slice(&min.to_be_bytes());
        b[f + 32..f + 52].copy_from_slice(&max.to_be_bytes());
        let body = crc32(&b[..f]);
        put_u32(b, f + 52, body);
        let footer = crc32(&b[f..f + 56]);
        put_u32(b, f + 56, footer);
    }
}

/// crc32 of two slices in sequence (a record's length word, then its payload).
fn crc_concat(a: &[u8], b: &[u8]) -> u32 {
    let mut v = Vec::with_capacity(a.len() + b.len());
    v.extend_from_slice(a);
    v.extend_from_slice(b);
    crc32(&v)
}

/// Recompute a version file's crc (after the body its length word names).
pub fn fix_version(b: &mut [u8]) {
    let Some(len) = u32_at(b, 12) else { return };
    let Some(crc_at) = 16usize.checked_add(len as usize) else {
        return;
    };
    if crc_at + 4 <= b.len() {
        let crc = crc32(&b[..crc_at]);
        put_u32(b, crc_at, crc);
    }
}

/// Recompute a segment's header crc, the crc of every block its table lists, and the
/// table crc (`strata_formats::samples::fix_segment_checksums`).
pub fn fix_segment(b: &mut [u8]) {
    strata_formats::samples::fix_segment_checksums(b);
}

/// Whether this mutation should get its checksums fixed (7 times out of 8).
pub fn fix_this_time(seed: u32) -> bool {
    seed % 8 != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_formats::segment::{SegmentLayout, SegmentView};
    use strata_formats::{samples, AlignedBuf, FormatError};

    /// Flip each byte of a valid file, fix it up, and count the checksum errors left: only
    /// flips in framing fields (length words, block offsets, end magics) may leave one.
    fn checksum_errors_left(
        good: &[u8],
        fix: fn(&mut [u8]),
        read: fn(&[u8]) -> Option<FormatError>,
    ) -> usize {
        let mut same = good.to_vec();
        fix(&mut same);
        assert_eq!(same, good, "fixing a valid file changed it");
        (0..good.len())
            .filter(|&at| {
                let mut bad = good.to_vec();
                bad[at] ^= 0x5a;
                fix(&mut bad);
                matches!(read(&bad), Some(FormatError::Checksum { .. }))
            })
            .count()
    }

    #[test]
    fn fixups_leave_few_checksum_errors() {
        let d = samples::delta();
        let n = checksum_errors_left(&d, fix_delta, |b| strata_formats::decode_delta(b).err());
        assert!(n * 10 < d.len(), "{n} of {} flips", d.len());
        let v = samples::version();
        let n = checksum_errors_left(&v, fix_version, |b| strata_formats::decode_version(b).err());
        assert!(n * 10 < v.len(), "{n} of {} flips", v.len());
        let s = samples::segment();
        let n = checksum_errors_left(&s, fix_segment, |b| {
            let buf = AlignedBuf::copy_from(b);
            let layout = SegmentLayout::parse(buf.as_bytes()).err()?;
            Some(layout)
        });
        assert!(n * 10 < s.len(), "{n} of {} flips", s.len());
        let n = checksum_errors_left(&s, fix_segment, |b| {
            let buf = AlignedBuf::copy_from(b);
            let layout = SegmentLayout::parse(buf.as_bytes()).ok()?;
            SegmentView::new(buf.as_bytes(), &layout)
                .ok()?
                .verify()
                .err()
        });
        assert!(n * 10 < s.len(), "{n} of {} flips", s.len());
    }

    #[test]
    fn a_payload_edit_reads_back_after_the_fixup() {
        let mut d = samples::delta();
        let at = d.windows(5).position(|w| w == b"TOTAL").unwrap();
        d[at] = b'X';
        fix_delta(&mut d);
        let decoded = strata_formats::decode_delta(&d).unwrap();
        assert!(decoded.is_sealed());
    }
}
