//! decode_delta on arbitrary bytes: never a panic; a sealed file re-encodes (DeltaWriter) to
//! a file that decodes to the same header and operations; a torn file's complete prefix
//! decodes to the same operations.
#![no_main]

use libfuzzer_sys::{fuzz_mutator, fuzz_target};
use strata_formats::codec::encode;
use strata_formats::delta::DeltaWriteError;
use strata_formats::{decode_delta, DeltaStatus, DeltaWriter, Operation};

/// Operations compared by their encoding (f32/f64 NaN payloads make `==` useless).
fn encoded(ops: &[Operation]) -> Vec<Vec<u8>> {
    ops.iter().map(encode).collect()
}

// libFuzzer's mutation, then (most of the time) the checksums recomputed: see strata_fuzz.
fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    let size = libfuzzer_sys::fuzzer_mutate(data, size, max_size);
    if strata_fuzz::fix_this_time(seed) {
        strata_fuzz::fix_delta(&mut data[..size]);
    }
    size
});

fuzz_target!(|data: &[u8]| {
    let Ok(delta) = decode_delta(data) else {
        return;
    };
    match delta.status {
        DeltaStatus::Sealed(seal) => {
            assert_eq!(seal.count, delta.ops.len() as u64);
            let mut w = DeltaWriter::new(&delta.header).expect("a decoded header re-encodes");
            for op in &delta.ops {
                match w.push(op) {
                    Ok(()) => {}
                    // A canonical filter text can be longer than the one stored.
                    Err(DeltaWriteError::RecordTooLarge { .. }) => return,
                    Err(e) => panic!("re-encoding a decoded op failed: {e}"),
                }
            }
            let bytes = w.seal();
            let again = match decode_delta(&bytes) {
                Ok(d) => d,
                Err(e) => panic!("a re-encoded sealed delta does not decode: {e}"),
            };
            assert_eq!(encode(&again.header), encode(&delta.header));
            assert_eq!(encoded(&again.ops), encoded(&delta.ops));
            assert_eq!(again.status, DeltaStatus::Sealed(seal));
        }
        DeltaStatus::Torn { complete_bytes } => {
            let n = usize::try_from(complete_bytes).expect("fits");
            assert!(n <= data.len());
            let prefix = match decode_delta(&data[..n]) {
                Ok(d) => d,
                Err(e) => panic!("the complete prefix ({n} bytes) of a torn delta fails: {e}"),
            };
            assert!(!prefix.is_sealed(), "a torn file's prefix reads as sealed");
            assert_eq!(encoded(&prefix.ops), encoded(&delta.ops));
        }
    }
});
