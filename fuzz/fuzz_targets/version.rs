//! decode_version on arbitrary bytes: never a panic; a decoded record re-encodes
//! (encode_version) to a file that decodes to the same record.
#![no_main]

use libfuzzer_sys::{fuzz_mutator, fuzz_target};
use strata_formats::codec::encode;
use strata_formats::{decode_version, encode_version};

// libFuzzer's mutation, then (most of the time) the checksums recomputed: see strata_fuzz.
fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    let size = libfuzzer_sys::fuzzer_mutate(data, size, max_size);
    if strata_fuzz::fix_this_time(seed) {
        strata_fuzz::fix_version(&mut data[..size]);
    }
    size
});

fuzz_target!(|data: &[u8]| {
    let Ok((version, record)) = decode_version(data) else {
        return;
    };
    assert!(version.major >= 1);
    let bytes = encode_version(&record);
    let again = match decode_version(&bytes) {
        Ok((_, r)) => r,
        Err(e) => panic!("a re-encoded version file does not decode: {e}"),
    };
    // Compared by encoding: NaN floats in retained operations defeat `==`.
    assert_eq!(encode(&again), encode(&record));
});
