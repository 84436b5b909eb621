//! strata-chroma's tarball checks on arbitrary bytes: `member_path` never accepts a path
//! that could leave the directory, and `read_tar_gz` (on the input as gzip, or on the
//! input gzip-compressed, so that the tar parser sees the mutations) never panics and only
//! returns members whose paths pass the same check, within the limits.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use strata_chroma::tarball::{member_path, read_tar_gz};
use strata_chroma::Limits;

fn check_path(p: &str) {
    assert!(!p.is_empty() && !p.starts_with('/') && !p.contains('\\') && !p.contains('\0'));
    assert!(p.split('/').all(|c| !c.is_empty() && c != "." && c != ".."));
}

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(p)) = member_path(data) {
        check_path(&p);
        assert_eq!(member_path(p.as_bytes()), Ok(Some(p.clone())));
    }
    let limits = Limits {
        max_member_bytes: 1 << 16,
        max_total_bytes: 1 << 18,
        max_members: 64,
    };
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let gz = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(rest).unwrap();
        e.finish().unwrap()
    };
    if let Ok(files) = read_tar_gz(&gz, &limits) {
        assert!(files.len() <= limits.max_members);
        let total: usize = files.values().map(Vec::len).sum();
        assert!(total as u64 <= limits.max_total_bytes);
        for p in files.keys() {
            check_path(p);
        }
    }
});
