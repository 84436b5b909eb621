//! Every `strata` command end to end through the binary, on temporary stores: real
//! outputs (ids, counts, distance order), and bad input — malformed JSON lines, wrong
//! dimensions, unknown collections, bad filters, bad .npy files — each failing with a
//! message that names what and where, and leaving the store exactly as it was.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use strata_engine::{StoreOptions, Writer};

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }

    fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn run(store: &Path, args: &[&str]) -> Out {
    run_env(store, args, &[])
}

fn run_env(store: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--store")
        .arg(store)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Run and expect exit status 0.
fn ok(store: &Path, args: &[&str]) -> Out {
    let o = run(store, args);
    assert_eq!(
        o.code, 0,
        "strata {args:?} failed:\n{}\n{}",
        o.stdout, o.stderr
    );
    o
}

/// Run and expect exit status `code` with `want` in stderr.
fn fails(store: &Path, args: &[&str], code: i32, want: &str) -> Out {
    let o = run(store, args);
    assert_eq!(
        o.code, code,
        "strata {args:?}: expected {code}\n{}\n{}",
        o.stdout, o.stderr
    );
    assert!(
        o.stderr.contains(want),
        "strata {args:?}: stderr should contain {want:?}:\n{}",
        o.stderr
    );
    o
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn record(i: usize) -> Value {
    json!({
        "id": format!("r{i}"),
        "embedding": [i as f32, (i % 2) as f32, 0.0, 1.0],
        "document": format!("doc {i}"),
        "metadata": {"receipt_id": i / 3, "even": i.is_multiple_of(2), "tags": [format!("t{i}")]},
    })
}

fn records_jsonl(range: std::ops::Range<usize>) -> String {
    range.map(|i| record(i).to_string() + "\n").collect()
}

/// A store with collection `lines` (4-d, l2) holding r0..r9.
fn store_with_lines() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    ok(&store, &["create", "lines", "--dims", "4"]);
    let f = write(dir.path(), "records.jsonl", &records_jsonl(0..10));
    let o = ok(&store, &["put", "lines", "--file", s(&f)]);
    assert!(
        o.stdout.contains("wrote 10 records to lines"),
        "{}",
        o.stdout
    );
    (dir, store)
}

/// Every file under the store except the RocksDB manifest, with its contents.
fn files(store: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(root).unwrap().to_path_buf();
            if rel.starts_with("manifest") {
                continue;
            }
            if e.file_type().unwrap().is_dir() {
                walk(root, &e.path(), out);
            } else {
                out.insert(rel.display().to_string(), std::fs::read(e.path()).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(store, store, &mut out);
    out
}

/// What must not change when a command fails: the files, the versions, the count.
fn state(store: &Path) -> (BTreeMap<String, Vec<u8>>, Value, Value) {
    (
        files(store),
        ok(store, &["--json", "versions", "lines"]).json(),
        ok(store, &["--json", "count", "lines"]).json(),
    )
}

fn ids_of(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn create_list_and_drop_collections() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    // A bad name or a bad flag creates no store.
    fails(
        &store,
        &["create", "bad/name", "--dims", "3"],
        1,
        "collection name",
    );
    fails(
        &store,
        &["create", "x", "--dims", "3", "--metric", "manhattan"],
        2,
        "manhattan",
    );
    fails(&store, &["create", "x"], 2, "--dims");
    assert!(!store.exists());
    fails(&store, &["collections"], 1, "is not a strata store");

    let o = ok(
        &store,
        &[
            "create",
            "lines",
            "--dims",
            "4",
            "--metric",
            "cosine",
            "--quantize",
            "i8",
        ],
    );
    assert!(
        o.stdout
            .contains("created collection lines: 4 dims, metric cosine, quantization i8"),
        "{}",
        o.stdout
    );
    let o = ok(&store, &["--json", "create", "labels", "--dims", "0"]);
    assert_eq!(o.json()["dims"], 0);
    fails(
        &store,
        &["create", "lines", "--dims", "4"],
        1,
        "already exists",
    );

    let list = ok(&store, &["collections", "--json"]).json();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["labels", "lines"]);
    assert_eq!(list[1]["metric"], "cosine");
    assert_eq!(list[1]["quantization"], "i8");
    let table = ok(&store, &["collections"]).stdout;
    assert!(table.starts_with("name"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("lines") && l.contains("cosine") && l.contains("i8")),
        "{table}"
    );

    let o = ok(&store, &["drop", "labels"]);
    assert!(
        o.stdout.contains("dropped collection labels"),
        "{}",
        o.stdout
    );
    fails(
        &store,
        &["drop", "labels"],
        1,
        "no collection named \"labels\"",
    );
    let list = ok(&store, &["--json", "collections"]).json();
    assert_eq!(list.as_array().unwrap().len(), 1);
}

#[test]
fn put_get_count_and_query_return_real_results() {
    let (dir, store) = store_with_lines();

    // get by ids keeps the order asked and skips unknown ids.
    let v = ok(
        &store,
        &["--json", "get", "lines", "--ids", "r3", "r1", "nope"],
    )
    .json();
    assert_eq!(v["collection"], "lines");
    assert_eq!(ids_of(&v["records"]), ["r3", "r1"]);
    assert_eq!(v["records"][0]["document"], "doc 3");
    assert_eq!(
        v["records"][0]["metadata"],
        json!({"receipt_id": 1, "even": false, "tags": ["t3"]})
    );
    assert!(v["records"][0].get("embedding").is_none());

    // get by filter: ordered by id, paged; include picks the parts.
    let v = ok(
        &store,
        &[
            "get",
            "lines",
            "--where",
            r#"{"even": true}"#,
            "--limit",
            "2",
            "--offset",
            "1",
            "--include",
            "embeddings",
            "--json",
        ],
    )
    .json();
    assert_eq!(ids_of(&v["records"]), ["r2", "r4"]);
    assert_eq!(v["records"][0]["embedding"], json!([2.0, 0.0, 0.0, 1.0]));
    assert!(v["records"][0].get("document").is_none());
    let all = ok(&store, &["--json", "get", "lines", "--include", "ids"]).json();
    assert_eq!(all["records"].as_array().unwrap().len(), 10);
    let table = ok(&store, &["get", "lines", "--ids", "r5"]).stdout;
    assert!(
        table.lines().nth(1).unwrap().starts_with("r5  doc 5"),
        "{table}"
    );

    // count, with filters.
    assert_eq!(ok(&store, &["count", "lines"]).stdout.trim(), "10");
    let v = ok(
        &store,
        &[
            "--json",
            "count",
            "lines",
            "--where",
            r#"{"receipt_id": {"$in": [0, 2]}}"#,
        ],
    )
    .json();
    assert_eq!(v["count"], 6);
    let v = ok(
        &store,
        &[
            "--json",
            "count",
            "lines",
            "--where",
            r#"{"tags": {"$contains": "t7"}}"#,
        ],
    )
    .json();
    assert_eq!(v["count"], 1);

    // query: nearest first, distances squared L2.
    let q = ok(
        &store,
        &[
            "--json",
            "query",
            "lines",
            "--vector",
            "[2.1, 0, 0, 1]",
            "--k",
            "3",
        ],
    )
    .json_lines();
    assert_eq!(q.len(), 1);
    let res = &q[0]["results"];
    assert_eq!(ids_of(res), ["r2", "r3", "r1"]);
    let d: Vec<f64> = res
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["distance"].as_f64().unwrap())
        .collect();
    assert!(
        (d[0] - 0.01).abs() < 1e-5 && (d[1] - 1.81).abs() < 1e-5,
        "{d:?}"
    );
    assert!(d.windows(2).all(|w| w[0] <= w[1]));
    // With a filter and a table.
    let t = ok(
        &store,
        &[
            "query",
            "lines",
            "--vector",
            "[2.1, 0, 0, 1]",
            "--k",
            "2",
            "--where",
            r#"{"even": false}"#,
        ],
    )
    .stdout;
    let lines: Vec<&str> = t.lines().collect();
    assert!(lines[0].contains("distance"), "{t}");
    assert!(lines[1].starts_with("1  r3"), "{t}");
    assert!(lines[2].starts_with("2  r1"), "{t}");
    // A batch: one JSON line per query.
    let q = ok(
        &store,
        &[
            "query",
            "lines",
            "--vector",
            "[[0, 0, 0, 1], [9, 1, 0, 1], [5, 1, 0, 1]]",
            "--k",
            "1",
            "--json",
        ],
    )
    .json_lines();
    let firsts: Vec<&str> = q
        .iter()
        .map(|l| l["results"][0]["id"].as_str().unwrap())
        .collect();
    assert_eq!(firsts, ["r0", "r9", "r5"]);
    assert_eq!(q[2]["query"], 2);
    // Queries from a .npy file, --exact accepted.
    let npy = dir.path().join("q.npy");
    std::fs::write(
        &npy,
        strata_cli::input::write_npy(&[vec![7.0, 1.0, 0.0, 1.0], vec![0.2, 0.0, 0.0, 1.0]], 4),
    )
    .unwrap();
    let q = ok(
        &store,
        &[
            "--json",
            "query",
            "lines",
            "--npy",
            s(&npy),
            "--k",
            "2",
            "--exact",
        ],
    )
    .json_lines();
    assert_eq!(ids_of(&q[0]["results"]), ["r7", "r6"]);
    assert_eq!(ids_of(&q[1]["results"]), ["r0", "r1"]);
}

#[test]
fn put_from_npy_with_ids_and_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    ok(
        &store,
        &["create", "words", "--dims", "3", "--quantize", "i8"],
    );
    let rows: Vec<Vec<f32>> = (0..50)
        .map(|i| vec![i as f32, 1.0, -(i as f32) / 10.0])
        .collect();
    let npy = dir.path().join("v.npy");
    std::fs::write(&npy, strata_cli::input::write_npy(&rows, 3)).unwrap();
    let ids: String = (0..50).map(|i| format!("w{i:02}\n")).collect();
    let ids = write(dir.path(), "ids.txt", &ids);
    let meta: String = (0..50)
        .map(|i| {
            json!({"receipt_id": i % 5, "label": if i == 7 {Value::Null} else {json!("WORD")}})
                .to_string()
                + "\n"
        })
        .collect();
    let meta = write(dir.path(), "meta.jsonl", &meta);
    let o = ok(
        &store,
        &[
            "--json",
            "put",
            "words",
            "--npy",
            s(&npy),
            "--ids",
            s(&ids),
            "--metadata",
            s(&meta),
        ],
    );
    assert_eq!(o.json()["records"], 50);
    let v = ok(
        &store,
        &[
            "--json",
            "count",
            "words",
            "--where",
            r#"{"receipt_id": 3}"#,
        ],
    )
    .json();
    assert_eq!(v["count"], 10);
    let v = ok(
        &store,
        &[
            "--json",
            "get",
            "words",
            "--ids",
            "w07",
            "w12",
            "--include",
            "embeddings,metadatas",
        ],
    )
    .json();
    assert_eq!(v["records"][0]["embedding"], json!([7.0, 1.0, -0.7]));
    assert_eq!(v["records"][0]["metadata"], json!({"receipt_id": 2}));
    assert_eq!(
        v["records"][1]["metadata"],
        json!({"receipt_id": 2, "label": "WORD"})
    );
    // Without metadata too; compaction builds the i8 codes, the quantized path and the
    // exact path agree on the nearest.
    ok(&store, &["compact", "words"]);
    for extra in [&["--exact"][..], &["--oversample", "8"][..], &[][..]] {
        let mut args = vec![
            "--json",
            "query",
            "words",
            "--vector",
            "[20.2, 1, -2]",
            "--k",
            "3",
        ];
        args.extend_from_slice(extra);
        let q = ok(&store, &args).json_lines();
        assert_eq!(ids_of(&q[0]["results"]), ["w20", "w21", "w19"], "{extra:?}");
    }
}

#[test]
fn put_from_npy_with_documents() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    ok(&store, &["create", "words", "--dims", "2"]);
    let rows: Vec<Vec<f32>> = (0..3).map(|i| vec![i as f32, 1.0]).collect();
    let npy = dir.path().join("v.npy");
    std::fs::write(&npy, strata_cli::input::write_npy(&rows, 2)).unwrap();
    let ids = write(dir.path(), "ids.txt", "w0\nw1\nw2\n");
    let put = |docs: &Path| {
        vec![
            "put".to_string(),
            "words".into(),
            "--npy".into(),
            s(&npy).into(),
            "--ids".into(),
            s(&ids).into(),
            "--documents".into(),
            s(docs).into(),
        ]
    };
    fn args(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    // A line that is not a string or null, and a count that differs, are refused by line.
    let bad = write(dir.path(), "bad.jsonl", "\"TOTAL\"\n7\nnull\n");
    fails(
        &store,
        &args(&put(&bad)),
        1,
        "bad.jsonl line 2: expected a document",
    );
    let short = write(dir.path(), "short.jsonl", "\"TOTAL\"\n");
    fails(&store, &args(&put(&short)), 1, "has 1 document lines but");
    let docs = write(
        dir.path(),
        "docs.jsonl",
        "\"TOTAL 12.99\"\nnull\n\"line\\nbreak\"\n",
    );
    ok(&store, &args(&put(&docs)));
    let v = ok(
        &store,
        &[
            "--json",
            "get",
            "words",
            "--ids",
            "w0",
            "w1",
            "w2",
            "--include",
            "documents",
        ],
    )
    .json();
    assert_eq!(v["records"][0]["document"], json!("TOTAL 12.99"));
    assert_eq!(v["records"][1]["document"], Value::Null);
    assert_eq!(v["records"][2]["document"], json!("line\nbreak"));
}

#[test]
fn update_and_delete_by_id_ids_and_filter() {
    let (dir, store) = store_with_lines();
    let patches = write(
        dir.path(),
        "patches.jsonl",
        concat!(
            r#"{"id": "r0", "metadata": {"label": "TOTAL", "tags": null}}"#,
            "\n\n",
            r#"{"ids": ["r1", "r2"], "metadata": {"valid": true}}"#,
            "\n",
            r#"{"where": {"receipt_id": 3}, "metadata": {"merchant": "Target"}}"#,
            "\n",
            r#"{"ids": ["ghost"], "metadata": {"x": 1}}"#,
            "\n",
        ),
    );
    let o = ok(&store, &["update", "lines", "--file", s(&patches)]);
    assert!(
        o.stdout.contains("wrote 4 patches to lines"),
        "{}",
        o.stdout
    );
    assert!(o.stderr.contains("1 of the 4 ids"), "{}", o.stderr);
    let v = ok(
        &store,
        &[
            "--json",
            "get",
            "lines",
            "--ids",
            "r0",
            "r1",
            "r9",
            "--include",
            "metadatas",
        ],
    )
    .json();
    assert_eq!(
        v["records"][0]["metadata"],
        json!({"receipt_id": 0, "even": true, "label": "TOTAL"})
    );
    assert_eq!(v["records"][1]["metadata"]["valid"], true);
    assert_eq!(v["records"][1]["metadata"]["tags"], json!(["t1"]));
    assert_eq!(v["records"][2]["metadata"]["merchant"], "Target");
    let v = ok(
        &store,
        &[
            "--json",
            "count",
            "lines",
            "--where",
            r#"{"merchant": "Target"}"#,
        ],
    )
    .json();
    assert_eq!(v["count"], 1);
    assert!(ok(&store, &["get", "lines", "--ids", "ghost"])
        .stdout
        .contains("no records"));

    let o = ok(&store, &["delete", "lines", "--ids", "r1", "r2", "ghost"]);
    assert!(
        o.stdout.contains("deleted 2 records from lines"),
        "{}",
        o.stdout
    );
    let o = ok(
        &store,
        &[
            "--json",
            "delete",
            "lines",
            "--where",
            r#"{"receipt_id": {"$gte": 2}}"#,
        ],
    );
    assert_eq!(o.json()["deleted"], 4);
    let v = ok(&store, &["--json", "get", "lines", "--include", "ids"]).json();
    assert_eq!(ids_of(&v["records"]), ["r0", "r3", "r4", "r5"]);
    fails(&store, &["delete", "lines"], 2, "required");
    fails(
        &store,
        &["delete", "lines", "--ids", "a", "--where", "{}"],
        2,
        "cannot be used with",
    );
}

#[test]
fn versions_compact_rollback_pins_gc_and_stats() {
    let (dir, store) = store_with_lines();
    ok(&store, &["create", "other", "--dims", "2"]);
    let f = write(
        dir.path(),
        "more.jsonl",
        &records_jsonl(10..15).replace("\"r1", "\"s1"),
    );
    ok(&store, &["put", "lines", "--file", s(&f)]);
    let versions = ok(&store, &["--json", "versions", "lines"]).json();
    let vs = versions.as_array().unwrap();
    assert_eq!(vs.len(), 3, "{versions}");
    assert_eq!(vs[0]["head"], true);
    assert_eq!(vs[0]["rows"], 15);
    assert_eq!(vs[0]["deltas"], 2);
    let after_first_put = vs[1]["version"].as_u64().unwrap();
    assert_eq!(vs[1]["rows"], 10);

    let st = ok(&store, &["--json", "stats"]).json();
    let lines = &st["collections"][0];
    assert_eq!(lines["name"], "lines");
    assert_eq!(
        (
            lines["rows"].clone(),
            lines["segments"].clone(),
            lines["deltas"].clone()
        ),
        (json!(15), json!(0), json!(2))
    );
    assert_eq!(lines["versions"], 3);
    assert!(st["disk"]["deltas"]["files"].as_u64().unwrap() >= 2);
    // Before any compaction the head references both deltas; nothing else holds data.
    assert_eq!(st["space"]["head"]["files"], 2, "{st}");
    assert_eq!(st["space"]["unreferenced"]["files"], 0, "{st}");

    // compact everything: lines folds its two deltas into one segment; other has nothing.
    let c = ok(&store, &["--json", "compact"]).json();
    let c = c.as_array().unwrap();
    assert_eq!(c.len(), 2);
    assert_eq!(c[0]["collection"], "lines");
    assert_eq!(c[0]["deltas_folded"], 2);
    assert_eq!(c[0]["segments_out"], 1);
    assert_eq!(c[0]["rows_out"], 15);
    assert_eq!(c[1]["version"], Value::Null);
    let table = ok(&store, &["compact", "other"]).stdout;
    assert!(table.contains("nothing to do"), "{table}");
    let st = ok(&store, &["--json", "stats", "lines"]).json();
    assert_eq!(st["collections"][0]["segments"], 1);
    assert_eq!(st["collections"][0]["deltas"], 0);
    // After it the head is the segment, and the deltas are the older versions' only.
    assert_eq!(st["space"]["head"]["files"], 1, "{st}");
    assert_eq!(st["space"]["retained"]["files"], 2, "{st}");
    assert!(st["space"]["amplification"].as_f64().unwrap() > 1.0, "{st}");
    let text = ok(&store, &["stats"]).stdout;
    assert!(text.contains("disk:"), "{text}");
    assert!(text.contains("space: head "), "{text}");
    assert!(text.contains("rollback window"), "{text}");

    // rollback to the version after the first put: 10 rows again, as a new version.
    let to = after_first_put.to_string();
    let o = ok(&store, &["rollback", "lines", "--to", &to]);
    assert!(
        o.stdout.contains(&format!("back to version {to}")),
        "{}",
        o.stdout
    );
    assert_eq!(ok(&store, &["count", "lines"]).stdout.trim(), "10");
    assert!(ok(&store, &["get", "lines", "--ids", "s10"])
        .stdout
        .contains("no records"));
    fails(
        &store,
        &["rollback", "lines", "--to", "9999"],
        1,
        "no retained version 9999",
    );

    // pin / unpin show in versions.
    ok(&store, &["pin", "lines", &to]);
    let vs = ok(&store, &["--json", "versions", "lines"]).json();
    let pinned: Vec<u64> = vs
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["pinned"] == true)
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(pinned, [after_first_put]);
    let table = ok(&store, &["versions", "lines"]).stdout;
    assert!(
        table.contains("pinned") && table.contains("head"),
        "{table}"
    );
    ok(&store, &["unpin", "lines", &to]);
    fails(&store, &["unpin", "lines", &to], 1, "is not pinned");
    fails(&store, &["pin", "lines", "9999"], 1, "9999");

    // gc: nothing is old enough to delete (grace period), nothing breaks.
    let g = ok(&store, &["--json", "gc"]).json();
    assert_eq!(g["files_deleted"], 0);
    assert_eq!(ok(&store, &["count", "lines"]).stdout.trim(), "10");
    ok(&store, &["verify"]);

    // gc --older-than 0s: only the heads remain (nothing is pinned now), and only what
    // they reference is on disk.
    let g = ok(&store, &["--json", "gc", "--older-than", "0s"]).json();
    assert!(g["versions_dropped"].as_u64().unwrap() > 0, "{g}");
    assert!(g["files_deleted"].as_u64().unwrap() > 0, "{g}");
    assert_eq!(g["files_in_grace"], 0, "{g}");
    let vs = ok(&store, &["--json", "versions", "lines"]).json();
    assert_eq!(vs.as_array().unwrap().len(), 1, "{vs}");
    let st = ok(&store, &["--json", "stats"]).json();
    assert_eq!(st["space"]["retained"]["files"], 0, "{st}");
    assert_eq!(st["space"]["unreferenced"]["files"], 0, "{st}");
    assert_eq!(ok(&store, &["count", "lines"]).stdout.trim(), "10");
    ok(&store, &["verify"]);
    fails(&store, &["gc", "--older-than", "soon"], 2, "--older-than");
}

#[test]
fn bad_input_fails_with_where_and_what_and_changes_nothing() {
    let (dir, store) = store_with_lines();
    let d = dir.path();
    let before = state(&store);
    let check = |args: &[&str], code: i32, want: &[&str]| {
        let o = fails(&store, args, code, want[0]);
        for w in want {
            assert!(o.stderr.contains(w), "{args:?}: {w:?} not in {}", o.stderr);
        }
        assert!(o.stdout.is_empty(), "{args:?} printed {}", o.stdout);
        assert!(state(&store) == before, "{args:?} changed the store");
    };

    // JSON lines: the line and what is wrong.
    let mut text = records_jsonl(20..22);
    text.push_str("{\"id\": \"x\", \"embedding\": [1, 2, 3, 4,]}\n");
    let f = write(d, "syntax.jsonl", &text);
    check(
        &["put", "lines", "--file", s(&f)],
        1,
        &["syntax.jsonl line 3", "invalid JSON at column"],
    );
    let f = write(
        d,
        "dims.jsonl",
        &format!(
            "{}{}",
            records_jsonl(20..21),
            r#"{"id": "x", "embedding": [1, 2, 3]}"#
        ),
    );
    check(
        &["put", "lines", "--file", s(&f)],
        1,
        &[
            "dims.jsonl line 2",
            "has 3 dimensions; collection \"lines\" has 4",
        ],
    );
    let f = write(d, "noemb.jsonl", r#"{"id": "x", "document": "d"}"#);
    check(
        &["put", "lines", "--file", s(&f)],
        1,
        &["line 1", "has no embedding"],
    );
    let f = write(
        d,
        "type.jsonl",
        r#"{"id": "x", "embedding": [1, 2, "3", 4]}"#,
    );
    check(
        &["put", "lines", "--file", s(&f)],
        1,
        &[
            "line 1",
            "field \"embedding\"[2]: expected a number, found string",
        ],
    );
    let f = write(
        d,
        "meta.jsonl",
        r#"{"id": "x", "embedding": [1, 2, 3, 4], "metadata": {"k": [1, "a"]}}"#,
    );
    check(
        &["put", "lines", "--file", s(&f)],
        1,
        &["line 1", "metadata key \"k\"", "mixes"],
    );
    let f = write(
        d,
        "dup.jsonl",
        &format!("{}{}", records_jsonl(20..22), records_jsonl(20..21)),
    );
    check(
        &["put", "lines", "--file", s(&f)],
        1,
        &["line 3: id \"r20\" already appears on line 1"],
    );
    let f = write(
        d,
        "huge.jsonl",
        r#"{"id": "x", "embedding": [1, 2, 1e300, 4]}"#,
    );
    check(
        &["put", "lines", "--file", s(&f)],
        1,
        &["line 1", "32-bit float"],
    );
    check(
        &["put", "lines", "--file", s(&d.join("missing.jsonl"))],
        1,
        &["missing.jsonl"],
    );
    // Unknown collection.
    let good = write(d, "good.jsonl", &records_jsonl(30..32));
    check(
        &["put", "nope", "--file", s(&good)],
        1,
        &["no collection named \"nope\""],
    );
    check(&["get", "nope"], 1, &["no collection named \"nope\""]);
    check(&["count", "nope"], 1, &["no collection named \"nope\""]);
    check(&["versions", "nope"], 1, &["nope"]);
    check(
        &["delete", "nope", "--ids", "r1"],
        1,
        &["no collection named \"nope\""],
    );

    // Filters: the offending part by JSON path.
    check(
        &[
            "delete",
            "lines",
            "--where",
            r#"{"$and": [{"a": 1}, {"b": {"$near": 2}}]}"#,
        ],
        1,
        &["--where", "$.$and[1].b", "$near"],
    );
    check(
        &["count", "lines", "--where", r#"{"a": "#],
        1,
        &["--where", "invalid where filter"],
    );
    check(
        &["get", "lines", "--where", r#"{"a": {"$in": 3}}"#],
        1,
        &["$.a.$in"],
    );
    let f = write(
        d,
        "patches.jsonl",
        concat!(
            r#"{"id": "r1", "metadata": {"x": 1}}"#,
            "\n",
            r#"{"where": {"$or": "r1"}, "metadata": {"x": 2}}"#,
            "\n"
        ),
    );
    check(
        &["update", "lines", "--file", s(&f)],
        1,
        &["patches.jsonl line 2", "field \"where\"", "$.$or"],
    );
    let f = write(d, "patch2.jsonl", r#"{"id": "r1", "document": "new"}"#);
    check(
        &["update", "lines", "--file", s(&f)],
        1,
        &["line 1", "metadata only"],
    );

    // .npy: truncated data, header claiming more than the file, shape mismatches.
    let ids = write(d, "ids.txt", "n1\nn2\nn3\n");
    let npy = d.join("v.npy");
    let good_npy = strata_cli::input::write_npy(&[vec![1.0; 4], vec![2.0; 4], vec![3.0; 4]], 4);
    std::fs::write(&npy, &good_npy[..good_npy.len() - 5]).unwrap();
    check(
        &["put", "lines", "--npy", s(&npy), "--ids", s(&ids)],
        1,
        &["v.npy", "holds only"],
    );
    let mut claims = good_npy.clone();
    let at = claims.windows(4).position(|w| w == b"(3, ").unwrap();
    claims[at + 1] = b'9';
    std::fs::write(&npy, &claims).unwrap();
    check(
        &["put", "lines", "--npy", s(&npy), "--ids", s(&ids)],
        1,
        &["header claims shape (9, 4)"],
    );
    std::fs::write(&npy, b"\x93NUMPY\x01\x00\xff\xff{'descr': '<f4'").unwrap();
    check(
        &["put", "lines", "--npy", s(&npy), "--ids", s(&ids)],
        1,
        &["header claims 65535 bytes"],
    );
    std::fs::write(&npy, b"PK\x03\x04 this is a zip file, not npy").unwrap();
    check(
        &["put", "lines", "--npy", s(&npy), "--ids", s(&ids)],
        1,
        &["not a .npy file"],
    );
    std::fs::write(&npy, &good_npy).unwrap();
    let two = write(d, "two.txt", "n1\nn2\n");
    check(
        &["put", "lines", "--npy", s(&npy), "--ids", s(&two)],
        1,
        &["has 2 ids but", "has 3 rows"],
    );
    let dup = write(d, "dup.txt", "n1\nn2\nn1\n");
    check(
        &["put", "lines", "--npy", s(&npy), "--ids", s(&dup)],
        1,
        &["dup.txt line 3", "already appears on line 1"],
    );
    let meta = write(d, "m.jsonl", "{}\n[1]\n{}\n");
    check(
        &[
            "put",
            "lines",
            "--npy",
            s(&npy),
            "--ids",
            s(&ids),
            "--metadata",
            s(&meta),
        ],
        1,
        &["m.jsonl line 2", "expected an object"],
    );
    std::fs::write(
        &npy,
        strata_cli::input::write_npy(&[vec![1.0; 3], vec![2.0; 3], vec![3.0; 3]], 3),
    )
    .unwrap();
    check(
        &["put", "lines", "--npy", s(&npy), "--ids", s(&ids)],
        1,
        &["rows have 3 values; collection \"lines\" has 4 dimensions"],
    );
    check(
        &["query", "lines", "--npy", s(&npy)],
        1,
        &["query 0 has 3 dimensions"],
    );

    // Queries, versions, usage.
    check(
        &["query", "lines", "--vector", "[1, 2]"],
        1,
        &["--vector: the query vector has 2 dimensions; collection \"lines\" has 4"],
    );
    check(
        &["query", "lines", "--vector", "[1, \"a\"]"],
        1,
        &["vector[1]"],
    );
    check(
        &["query", "lines", "--vector", "[1,2,3,4]", "--k", "0"],
        2,
        &["--k"],
    );
    check(
        &[
            "query",
            "lines",
            "--vector",
            "[1,2,3,4]",
            "--oversample",
            "0",
        ],
        2,
        &["--oversample"],
    );
    check(&["query", "lines"], 2, &["--vector"]);
    check(
        &["get", "lines", "--include", "distances"],
        2,
        &["distances"],
    );
    check(&["put", "lines"], 2, &["--file"]);
    check(&["put", "lines", "--npy", s(&npy)], 2, &["--ids"]);
    check(&["rollback", "lines", "--to", "424242"], 1, &["424242"]);
    check(&["no-such-command"], 2, &["no-such-command"]);
}

#[test]
fn reads_work_while_a_writer_holds_the_store_and_writes_fail_fast() {
    let (dir, store) = store_with_lines();
    let before = state(&store);
    let holder = Writer::open(
        &store,
        StoreOptions {
            holder: "the test's writer".into(),
            ..StoreOptions::default()
        },
    )
    .unwrap();
    assert_eq!(ok(&store, &["count", "lines"]).stdout.trim(), "10");
    let q = ok(
        &store,
        &[
            "--json",
            "query",
            "lines",
            "--vector",
            "[4, 0, 0, 1]",
            "--k",
            "1",
        ],
    );
    assert_eq!(q.json()["results"][0]["id"], "r4");
    ok(&store, &["collections"]);
    ok(&store, &["versions", "lines"]);
    ok(&store, &["stats"]);
    let f = write(dir.path(), "more.jsonl", &records_jsonl(40..41));
    fails(
        &store,
        &["put", "lines", "--file", s(&f)],
        1,
        "open for writing by the test's writer",
    );
    fails(&store, &["compact"], 1, "the test's writer");
    drop(holder);
    assert!(files(&store) == before.0);
    ok(&store, &["put", "lines", "--file", s(&f)]);
    assert_eq!(ok(&store, &["count", "lines"]).stdout.trim(), "11");
}

#[test]
fn help_covers_every_command_with_examples() {
    let dir = tempfile::tempdir().unwrap();
    let o = ok(dir.path(), &["--help"]);
    for cmd in [
        "create",
        "collections",
        "drop",
        "put",
        "update",
        "delete",
        "compact",
        "versions",
        "rollback",
        "pin",
        "unpin",
        "gc",
        "stats",
        "get",
        "count",
        "query",
        "inspect",
        "verify",
        "ingest-events",
        "lambda-invoke",
        "demo",
        "--store",
        "--json",
        "Exit status",
    ] {
        assert!(o.stdout.contains(cmd), "--help lacks {cmd}:\n{}", o.stdout);
    }
    for (cmd, want) in [
        ("put", "--npy"),
        ("put", "Examples"),
        ("update", "null"),
        ("query", "--oversample"),
        ("query", "Examples"),
        ("get", "--include"),
        ("create", "--quantize"),
        ("ingest-events", "--runs"),
        ("ingest-events", "Examples"),
        ("lambda-invoke", "compactor"),
        ("lambda-invoke", "Examples"),
    ] {
        let o = ok(dir.path(), &[cmd, "--help"]);
        assert!(
            o.stdout.contains(want),
            "{cmd} --help lacks {want}:\n{}",
            o.stdout
        );
    }
}

/// A small generated receipt workload written as event files, with its run deltas.
fn workload_files(dir: &Path) -> (strata_testkit::workload::Workload, Vec<PathBuf>, PathBuf) {
    let w =
        strata_testkit::workload::Workload::generate(&strata_testkit::workload::WorkloadConfig {
            receipts: 4,
            seed: 2,
            records_per_event: 200,
            edit_rounds: 1,
        });
    let runs = dir.join("runs");
    w.write_run_files(&runs).unwrap();
    let events = w
        .events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let p = dir.join(format!("event-{i:03}.json"));
            std::fs::write(&p, e).unwrap();
            p
        })
        .collect();
    (w, events, runs)
}

/// Two `get --json` outputs hold the same records; the message names the differing keys.
fn assert_same_records(a: &Value, b: &Value) {
    let by_id = |v: &Value| -> BTreeMap<String, Value> {
        v["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["id"].as_str().unwrap().to_string(), r.clone()))
            .collect()
    };
    let (a, b) = (by_id(a), by_id(b));
    let mut diffs = Vec::new();
    for id in a.keys().chain(b.keys()) {
        match (a.get(id), b.get(id)) {
            (Some(x), Some(y)) if x != y => {
                let keys: Vec<&String> = x["metadata"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .chain(y["metadata"].as_object().unwrap().keys())
                    .filter(|k| x["metadata"][k.as_str()] != y["metadata"][k.as_str()])
                    .collect();
                diffs.push(format!("{id}: {keys:?}"));
            }
            (Some(_), None) | (None, Some(_)) => diffs.push(format!("{id}: only on one side")),
            _ => {}
        }
    }
    assert!(
        diffs.is_empty(),
        "{} records differ:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}

fn words_of(store: &Path) -> Value {
    ok(
        store,
        &["--json", "get", "words", "--include", "metadatas,documents"],
    )
    .json()
}

#[test]
fn ingest_events_and_lambda_invoke_run_the_receipt_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let (w, events, runs) = workload_files(dir.path());
    let paths: Vec<&str> = events.iter().map(|p| s(p)).collect();

    // The stream Lambda then the compactor Lambda, locally.
    let piped = dir.path().join("piped");
    for (i, e) in paths.iter().enumerate() {
        let o = ok(
            &piped,
            &[
                "lambda-invoke",
                "stream",
                e,
                "--request-id",
                &format!("req-{i}"),
            ],
        );
        assert_eq!(o.stdout.trim(), r#"{"batchItemFailures":[]}"#);
        assert!(o.stderr.contains("inbox file"), "{}", o.stderr);
    }
    let inbox = std::fs::read_dir(piped.join("inbox")).unwrap().count();
    assert!(inbox >= events.len(), "{inbox} inbox files");
    let schedule = write(dir.path(), "schedule.json", "{}");
    let o = ok(
        &piped,
        &[
            "--json",
            "lambda-invoke",
            "compactor",
            s(&schedule),
            "--runs",
            s(&runs),
        ],
    );
    let out = o.json();
    assert_eq!(out["ingested"].as_array().unwrap().len(), inbox);
    assert_eq!(
        out["follow_ups"]["merged_runs"].as_array().unwrap().len(),
        w.runs.len()
    );
    assert_eq!(out["follow_ups"]["failed_runs"], json!([]));

    // The same events through ingest-events give the same words.
    let direct = dir.path().join("direct");
    let mut args = vec!["ingest-events", "--runs", s(&runs)];
    args.extend(paths.iter().copied());
    let o = ok(&direct, &args);
    assert!(o.stdout.contains("runs merged"), "{}", o.stdout);
    let present = &w.expected.receipts[0].receipt;
    let filter =
        json!({"$and": [{"image_id": present.image_id}, {"receipt_id": present.receipt_id}]});
    let n = ok(
        &direct,
        &["--json", "count", "words", "--where", &filter.to_string()],
    )
    .json();
    assert!(n["count"].as_u64().unwrap() > 0, "{n}");
    assert_same_records(&words_of(&piped), &words_of(&direct));
    ok(&direct, &["verify"]);

    // Ingesting the same files again changes nothing (every operation carries its seq).
    let before = words_of(&direct);
    ok(&direct, &args);
    assert_same_records(&before, &words_of(&direct));
}

/// `lambda-invoke compactor --runs-table` writes run states through DynamoDB (moto's, when
/// `.ci/moto.sh start` set `STRATA_TEST_DYNAMODB_ENDPOINT`): to a table that does not exist
/// the reports fail, the error names the table, and no run is acknowledged as merged.
#[test]
fn lambda_invoke_reports_run_states_to_the_table_given() {
    let Ok(endpoint) = std::env::var("STRATA_TEST_DYNAMODB_ENDPOINT") else {
        println!("skipped: STRATA_TEST_DYNAMODB_ENDPOINT is unset (start moto: .ci/moto.sh start)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (w, events, runs) = workload_files(dir.path());
    assert!(!w.runs.is_empty());
    let table = format!("no-such-runs-table-{}", std::process::id());
    let env = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
    ];
    let store = dir.path().join("store");
    let mut merged = 0;
    let mut errors = Vec::new();
    for e in &events {
        let o = run_env(
            &store,
            &[
                "--json",
                "lambda-invoke",
                "compactor",
                s(e),
                "--runs",
                s(&runs),
                "--runs-table",
                &table,
            ],
            &env,
        );
        assert_eq!(o.code, 0, "{}\n{}", o.stdout, o.stderr);
        let out = o.json();
        merged += out["follow_ups"]["merged_runs"].as_array().unwrap().len();
        errors.extend(
            out["follow_ups"]["report_errors"]
                .as_array()
                .unwrap()
                .clone(),
        );
    }
    assert_eq!(merged, 0, "a run whose COMPLETED report failed is not done");
    assert!(!errors.is_empty());
    assert!(
        errors.iter().all(|e| e.to_string().contains(&table)),
        "{errors:?}"
    );
}

#[test]
fn bad_events_are_reported_with_where_and_change_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let (_, events, runs) = workload_files(dir.path());
    let store = dir.path().join("store");
    // Not JSON: nothing is written, not even a store.
    let bad = write(
        dir.path(),
        "bad.json",
        "{\"Records\": [\n  {\"eventName\": ",
    );
    let o = fails(
        &store,
        &["ingest-events", s(&events[0]), s(&bad)],
        1,
        "bad.json",
    );
    assert!(o.stderr.contains("line 2"), "{}", o.stderr);
    assert!(!store.exists(), "a failed ingest-events created nothing");
    fails(&store, &["ingest-events"], 2, "FILE");
    fails(
        &store,
        &["lambda-invoke", "sideways", s(&events[0])],
        2,
        "sideways",
    );
    let missing = dir.path().join("nope.json");
    fails(
        &store,
        &["lambda-invoke", "stream", s(&missing)],
        1,
        "nope.json",
    );
    let o = fails(
        &store,
        &["lambda-invoke", "compactor", s(&bad)],
        1,
        "bad.json",
    );
    assert!(o.stderr.contains("line 2"), "{}", o.stderr);
    assert!(
        !store.exists(),
        "a compactor given a bad event creates nothing"
    );
    let huge = dir.path().join("huge.json");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(17 << 20)
        .unwrap();
    fails(&store, &["ingest-events", s(&huge)], 1, "larger than");

    // One bad record among good ones: the good ones are applied, the bad one is named.
    let mut event: Value = serde_json::from_slice(&std::fs::read(&events[0]).unwrap()).unwrap();
    let records = event["Records"].as_array_mut().unwrap();
    let victim = records[1]["dynamodb"]["SequenceNumber"]
        .as_str()
        .unwrap()
        .to_string();
    records[1]["dynamodb"]["NewImage"] = json!({"PK": {"S": 12}});
    records[1]["dynamodb"]["Keys"] = json!({"PK": {"Q": "x"}});
    let one_bad = write(dir.path(), "one-bad.json", &event.to_string());
    let o = fails(
        &store,
        &["ingest-events", "--runs", s(&runs), s(&one_bad)],
        1,
        "record 1",
    );
    assert!(o.stderr.contains(&victim), "{}", o.stderr);
    assert!(o.stderr.contains("1 problem"), "{}", o.stderr);
    // The stream Lambda answers the bad record as a batch item failure.
    let o = run(&store, &["lambda-invoke", "stream", s(&one_bad)]);
    assert_eq!(o.code, 1, "{}", o.stderr);
    let response: Value = serde_json::from_str(o.stdout.trim()).unwrap();
    assert_eq!(
        response,
        json!({"batchItemFailures": [{"itemIdentifier": victim}]})
    );
}
