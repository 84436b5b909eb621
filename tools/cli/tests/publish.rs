//! `strata publish` and the read commands on a published store (`--store s3://…` or
//! `file://…`) through the binary: a directory destination always, moto's S3 when the test
//! script started it. What a published store answers equals what the local store answers.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(store: &str, args: &[&str], env: &[(&'static str, String)]) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--store")
        .arg(store)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ok(store: &str, args: &[&str], env: &[(&'static str, String)]) -> Out {
    let o = run(store, args, env);
    assert_eq!(o.code, 0, "strata {args:?}:\n{}\n{}", o.stdout, o.stderr);
    o
}

fn json(o: &Out) -> Value {
    serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", o.stdout))
}

/// A local store with `lines` (4-d) holding r0..r19 in a segment and r20..r24 in a delta.
fn local_store(dir: &Path) -> String {
    let store = dir.join("store").to_str().unwrap().to_string();
    ok(&store, &["create", "lines", "--dims", "4"], &[]);
    let lines = |r: std::ops::Range<usize>| -> String {
        r.map(|i| {
            format!(
                "{{\"id\":\"r{i}\",\"embedding\":[{i},{},0,1],\"document\":\"doc {i}\",\"metadata\":{{\"receipt_id\":{}}}}}\n",
                i % 3,
                i / 4
            )
        })
        .collect()
    };
    let a = dir.join("a.jsonl");
    std::fs::write(&a, lines(0..20)).unwrap();
    ok(
        &store,
        &["put", "lines", "--file", a.to_str().unwrap()],
        &[],
    );
    ok(&store, &["compact"], &[]);
    let b = dir.join("b.jsonl");
    std::fs::write(&b, lines(20..25)).unwrap();
    ok(
        &store,
        &["put", "lines", "--file", b.to_str().unwrap()],
        &[],
    );
    store
}

/// The read commands answer the same on the local and the published store.
fn assert_same_answers(local: &str, remote: &str, cache: &Path, env: &[(&'static str, String)]) {
    let cache = cache.to_str().unwrap();
    for args in [
        vec!["collections"],
        vec!["count", "lines"],
        vec!["count", "lines", "--where", "{\"receipt_id\": 2}"],
        vec!["get", "lines", "--ids", "r1", "r7", "r22"],
        vec!["query", "lines", "--vector", "[3, 1, 0, 1]", "--k", "5"],
    ] {
        let mut with_json = vec!["--json"];
        with_json.extend(&args);
        let l = ok(local, &with_json, &[]);
        let mut remote_args = vec!["--cache", cache];
        remote_args.extend(&with_json);
        let r = ok(remote, &remote_args, env);
        assert_eq!(json(&l), json(&r), "{args:?}");
    }
}

#[test]
fn a_store_published_to_a_directory_answers_like_the_local_one() {
    let dir = tempfile::tempdir().unwrap();
    let local = local_store(dir.path());
    let dest = format!("file://{}", dir.path().join("bucket").display());
    let o = ok(&local, &["--json", "publish", &dest], &[]);
    let report = json(&o);
    assert_eq!(report["unchanged"], false);
    assert!(report["files_uploaded"].as_u64().unwrap() >= 4, "{report}");
    let cache = dir.path().join("cache");
    assert_same_answers(&local, &dest, &cache, &[]);
    // A directory cannot compare-and-swap: moving an existing head needs the escape.
    ok(&local, &["delete", "lines", "--ids", "r3"], &[]);
    let o = run(&local, &["publish", &dest], &[]);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("compare-and-swap"), "{}", o.stderr);
    let o = ok(
        &local,
        &["--json", "publish", &dest, "--unsafe-unconditional"],
        &[],
    );
    assert_eq!(json(&o)["files_uploaded"], 2, "{}", o.stdout);
    assert_same_answers(&local, &dest, &cache, &[]);
    // Writing through a published store is refused, naming why.
    let o = run(&dest, &["delete", "lines", "--ids", "r1"], &[]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.stderr.contains("read-only"), "{}", o.stderr);
}

#[test]
fn a_store_published_to_s3_answers_like_the_local_one() {
    let Some(endpoint) = strata_testkit::s3::endpoint("publishing through the CLI") else {
        return;
    };
    let bucket = format!("cli-publish-{}", std::process::id());
    strata_testkit::s3::create_bucket(&endpoint, &bucket);
    let env = strata_testkit::s3::env(&endpoint);
    let dir = tempfile::tempdir().unwrap();
    let local = local_store(dir.path());
    let dest = format!("s3://{bucket}/receipts");
    ok(&local, &["publish", &dest], &env);
    let cache = dir.path().join("cache");
    assert_same_answers(&local, &dest, &cache, &env);
    ok(&local, &["delete", "lines", "--ids", "r3"], &[]);
    let o = ok(&local, &["--json", "publish", &dest], &env);
    assert_eq!(json(&o)["files_uploaded"], 2, "{}", o.stdout);
    assert_same_answers(&local, &dest, &cache, &env);
    let o = ok(&local, &["--json", "publish", &dest], &env);
    assert_eq!(json(&o)["unchanged"], true, "{}", o.stdout);
    let versions = ok(
        &dest,
        &[
            "--cache",
            cache.to_str().unwrap(),
            "--json",
            "versions",
            "lines",
        ],
        &env,
    );
    assert!(json(&versions).as_array().is_some_and(|v| !v.is_empty()));
}
