//! Absurd requests through the `strata` binary and its input readers get a typed error
//! that says which limit, without allocating for what they claim.

use std::process::Command;

use strata_cli::input::parse_npy;

fn strata(store: &std::path::Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--store")
        .arg(store)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_k_of_a_billion_and_a_deep_where_are_refused_by_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    assert_eq!(strata(&store, &["create", "c", "--dims", "2"]).0, 0);
    let (code, err) = strata(
        &store,
        &["query", "c", "--vector", "[0, 0]", "--k", "1000000000"],
    );
    assert_ne!(code, 0);
    // clap refuses it against the engine's MAX_K, before any store is opened.
    let bound = format!("1000000000 is not in 1..={}", strata_engine::limits::MAX_K);
    assert!(err.contains(&bound), "{err}");
    let deep = format!(
        "{}{}{}",
        r#"{"$or":["#.repeat(40),
        r#"{"n":1}"#,
        "]}".repeat(40)
    );
    let (code, err) = strata(&store, &["get", "c", "--where", &deep]);
    assert_ne!(code, 0);
    assert!(err.contains("deeper than"), "{err}");
}

#[test]
fn a_two_gigabyte_npy_header_claim_is_refused_before_allocating() {
    // Format 2.0: a 4-byte header length, here 2 GB, in a file of a few bytes.
    let mut bytes = b"\x93NUMPY\x02\x00".to_vec();
    bytes.extend(2_000_000_000u32.to_le_bytes());
    bytes.extend(b"{'descr'");
    let err = parse_npy(&mut bytes.as_slice(), bytes.len() as u64).unwrap_err();
    assert!(err.contains("header claims 2000000000 bytes"), "{err}");
}
