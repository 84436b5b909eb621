//! `strata demo`: the main job on the embedded default, end to end on a generated receipt
//! workload. Producers write sealed deltas into the inbox (as the stream Lambda does), the
//! writer ingests and compacts them (as the compactor Lambda does), then places, labels and
//! sections are edited, receipts deleted, filtered queries run, versions listed and rolled
//! back, the store verified, and a short report printed.

use std::path::Path;
use std::time::Instant;

use strata_engine::{verify_store, write_inbox_delta, Include, Query, Store, StoreOptions};
use strata_formats::{
    samples, DeltaHeader, Filter, MetaValue, Metadata, Metric, Operation, Quantization, Record,
    Seq, Target,
};

/// Dimensions of the demo's embeddings (those of text-embedding-3-small).
pub const DIMS: usize = 1536;

const WORDS: [&str; 24] = [
    "TOTAL", "SUBTOTAL", "TAX", "CASH", "VISA", "CHANGE", "MILK", "BREAD", "EGGS", "APPLES",
    "COFFEE", "BANANAS", "RICE", "BEANS", "CHEESE", "BUTTER", "12.99", "3.49", "0.89", "4.25",
    "THANK", "YOU", "STORE", "RECEIPT",
];
const MERCHANTS: [&str; 6] = [
    "sprouts farmers market",
    "trader joe's",
    "whole foods",
    "costco wholesale",
    "target",
    "in-n-out burger",
];
const SECTIONS: [&str; 4] = ["HEADER", "ITEMS", "TOTALS", "FOOTER"];

/// A deterministic unit-norm embedding with cluster structure: texts that share a word
/// share a cluster center.
pub fn embedding(cluster: u64, item: u64) -> Vec<f32> {
    let center = samples::noise(cluster.wrapping_mul(0x9E37_79B9), DIMS);
    let noise = samples::noise(item.wrapping_add(1 << 40), DIMS);
    let mut v: Vec<f32> = center
        .iter()
        .zip(&noise)
        .map(|(c, n)| c + 0.45 * n)
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

fn title_case(s: &str) -> String {
    s.split(' ')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| {
                    f.to_uppercase()
                        .chain(c.flat_map(char::to_lowercase))
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect::<Vec<String>>()
        .join(" ")
}

fn meta(pairs: Vec<(&str, MetaValue)>) -> Metadata {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn receipt_filter(image: &str, receipt: i64) -> Filter {
    Filter::parse(&format!(
        r#"{{"$and": [{{"image_id": {{"$eq": "{image}"}}}}, {{"receipt_id": {{"$eq": {receipt}}}}}]}}"#
    ))
    .expect("valid filter")
}

struct Receipt {
    image: String,
    receipt: i64,
    lines: Vec<Record>,
    words: Vec<Record>,
}

fn receipt(n: usize, seed: u64) -> Receipt {
    let image = format!(
        "{:08x}-{:04x}-4000-8000-{:012x}",
        seed ^ n as u64,
        n % 65536,
        n
    );
    let receipt = 1 + (n % 3) as i64;
    let merchant = title_case(MERCHANTS[n % MERCHANTS.len()]);
    let mut lines = Vec::new();
    let mut words = Vec::new();
    let nlines = 12 + n % 9;
    for l in 1..=nlines {
        let texts: Vec<&str> = (0..4)
            .map(|w| WORDS[(n * 7 + l * 3 + w * 5 + seed as usize) % WORDS.len()])
            .collect();
        let line_id = format!("IMAGE#{image}#RECEIPT#{receipt:05}#LINE#{l:05}");
        let y = 1.0 - l as f64 / (nlines + 1) as f64;
        lines.push(Record {
            id: line_id.clone(),
            embedding: Some(embedding(
                (l * 4 / nlines) as u64,
                (n * 1000 + l) as u64 ^ seed,
            )),
            document: Some(texts.join(" ")),
            metadata: meta(vec![
                ("image_id", MetaValue::Str(image.clone())),
                ("receipt_id", MetaValue::Int(receipt)),
                ("line_id", MetaValue::Int(l as i64)),
                ("text", MetaValue::Str(texts.join(" "))),
                (
                    "confidence",
                    MetaValue::Float(0.9 + (l % 10) as f64 / 100.0),
                ),
                ("x", MetaValue::Float(0.05)),
                ("y", MetaValue::Float(y)),
                ("source", MetaValue::Str("openai_embedding_batch".into())),
                ("row_line_ids", MetaValue::Str(format!("[{l}]"))),
                ("merchant_name", MetaValue::Str(merchant.clone())),
                ("label_status", MetaValue::Str("unvalidated".into())),
            ]),
        });
        for (w, text) in texts.iter().enumerate() {
            let w = w + 1;
            words.push(Record {
                id: format!("{line_id}#WORD#{w:05}"),
                embedding: Some(embedding(
                    100 + WORDS.iter().position(|x| x == text).unwrap_or(0) as u64,
                    (n * 100_000 + l * 100 + w) as u64 ^ seed,
                )),
                document: Some(text.to_string()),
                metadata: meta(vec![
                    ("image_id", MetaValue::Str(image.clone())),
                    ("receipt_id", MetaValue::Int(receipt)),
                    ("line_id", MetaValue::Int(l as i64)),
                    ("word_id", MetaValue::Int(w as i64)),
                    ("text", MetaValue::Str(text.to_string())),
                    ("x", MetaValue::Float(0.1 + w as f64 * 0.2)),
                    ("y", MetaValue::Float(y)),
                    ("confidence", MetaValue::Float(0.95)),
                    ("merchant_name", MetaValue::Str(merchant.clone())),
                    ("label_status", MetaValue::Str("unvalidated".into())),
                    ("source", MetaValue::Str("openai_embedding_batch".into())),
                ]),
            });
        }
    }
    Receipt {
        image,
        receipt,
        lines,
        words,
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        dir_bytes(&p)
                    } else {
                        e.metadata().map_or(0, |m| m.len())
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

fn mb(b: u64) -> String {
    format!("{:.1} MB", b as f64 / 1e6)
}

/// Run the demo against a store directory; prints the report and returns an error message
/// on failure.
pub fn run(store_dir: &Path, receipts: usize, seed: u64) -> Result<(), String> {
    let e = |e: strata_engine::Error| e.to_string();
    let t0 = Instant::now();
    let mut report: Vec<(String, String)> = Vec::new();
    let mut step = |name: &str, t: Instant, detail: String| {
        let line = format!("{:>7.2} s  {detail}", t.elapsed().as_secs_f64());
        println!("{name:<28}{line}");
        report.push((name.to_string(), line));
    };

    let store = Store::open(store_dir, StoreOptions::default()).map_err(e)?;
    for name in ["lines", "words"] {
        if store.collection_info(name).is_err() {
            store
                .create_collection(name, DIMS as u32, Metric::L2, Quantization::I8)
                .map_err(e)?;
        }
    }
    let base_seq = store
        .snapshot("words")
        .map_err(e)?
        .version()
        .seq_watermark
        .max(store.snapshot("lines").map_err(e)?.version().seq_watermark);
    let mut seq = base_seq;
    let mut next_seq = || {
        seq = seq.next();
        seq
    };

    // 1. Producers (the stream Lambda) write one sealed delta per batch into the inbox.
    let t = Instant::now();
    let all: Vec<Receipt> = (0..receipts).map(|n| receipt(n, seed)).collect();
    let (mut nlines, mut nwords) = (0, 0);
    for (b, batch) in all.chunks(25).enumerate() {
        for (collection, pick) in [("lines", 0), ("words", 1)] {
            let ops: Vec<Operation> = batch
                .iter()
                .flat_map(|r| if pick == 0 { &r.lines } else { &r.words })
                .map(|rec| Operation::upsert(next_seq(), rec.clone()))
                .collect();
            if pick == 0 {
                nlines += ops.len();
            } else {
                nwords += ops.len();
            }
            let header = DeltaHeader {
                collection: collection.into(),
                dims: DIMS as u32,
                producer: format!("demo-producer-{b}"),
                first_seq: ops.first().map_or(Seq::ZERO, |o| o.seq),
                created_ms: 0,
            };
            write_inbox_delta(store_dir, "demo-producer", &header, &ops).map_err(e)?;
        }
    }
    step(
        "embed + write inbox deltas",
        t,
        format!("{receipts} receipts: {nlines} lines, {nwords} words"),
    );

    // 2. The compactor ingests the inbox and compacts by policy, then fully.
    let t = Instant::now();
    let ingest = store.ingest_inbox().map_err(e)?;
    step(
        "ingest inbox",
        t,
        format!("{} deltas registered", ingest.ingested.len()),
    );
    let t = Instant::now();
    for c in ["lines", "words"] {
        store.compact(c).map_err(e)?;
    }
    step(
        "compact (i8 codes built)",
        t,
        format!("store now {}", mb(dir_bytes(store_dir))),
    );
    let before_edits = store.snapshot("words").map_err(e)?.version().version;

    // 3. Edits: places (patch by receipt filter), labels, sections, deletes.
    let t = Instant::now();
    let mut edits = 0;
    for (i, r) in all.iter().enumerate().step_by(4) {
        let place = meta(vec![
            (
                "merchant_name",
                MetaValue::Str(title_case(MERCHANTS[(i + 1) % MERCHANTS.len()])),
            ),
            ("place_id", MetaValue::Str(format!("place-{i}"))),
        ]);
        for c in ["lines", "words"] {
            let op = Operation::patch(
                next_seq(),
                Target::Where(receipt_filter(&r.image, r.receipt)),
                place.clone(),
                vec![],
            );
            store.write_sequenced(c, vec![op]).map_err(e)?;
            edits += 1;
        }
    }
    let mut label_ops = Vec::new();
    for r in all.iter().step_by(3) {
        for w in r
            .words
            .iter()
            .filter(|w| w.document.as_deref() == Some("TOTAL"))
        {
            label_ops.push(Operation::patch(
                next_seq(),
                Target::Id(w.id.clone()),
                meta(vec![
                    ("label_status", MetaValue::Str("validated".into())),
                    (
                        "valid_labels_array",
                        MetaValue::StrList(vec!["GRAND_TOTAL".into()]),
                    ),
                ]),
                vec![],
            ));
        }
    }
    edits += label_ops.len();
    store.write_sequenced("words", label_ops).map_err(e)?;
    let section_ops: Vec<Operation> = all
        .iter()
        .flat_map(|r| r.lines.iter().enumerate())
        .map(|(i, l)| {
            Operation::patch(
                next_seq(),
                Target::Id(l.id.clone()),
                meta(vec![(
                    "section_label",
                    MetaValue::Str(SECTIONS[i * SECTIONS.len() / 21].into()),
                )]),
                vec![],
            )
        })
        .collect();
    edits += section_ops.len();
    store.write_sequenced("lines", section_ops).map_err(e)?;
    let deleted: Vec<&Receipt> = all.iter().step_by(20).collect();
    for r in &deleted {
        for c in ["lines", "words"] {
            let op = Operation::delete(
                next_seq(),
                Target::Where(receipt_filter(&r.image, r.receipt)),
            );
            store.write_sequenced(c, vec![op]).map_err(e)?;
            edits += 1;
        }
    }
    step(
        "edit places/labels/sections",
        t,
        format!("{edits} operations, {} receipts deleted", deleted.len()),
    );
    let t = Instant::now();
    for c in ["lines", "words"] {
        store.maybe_compact(c).map_err(e)?;
    }
    step("maybe_compact (policy)", t, String::new());

    // 4. Queries.
    let t = Instant::now();
    let words = store.snapshot("words").map_err(e)?;
    let lines = store.snapshot("lines").map_err(e)?;
    let probe = &all[1];
    let q = embedding(100, 7);
    let hits = words
        .query(&Query {
            vector: &q,
            k: 5,
            filter: None,
            include: Include::default(),
        })
        .map_err(e)?;
    let in_receipt = lines
        .query(&Query {
            vector: &embedding(1, 3),
            k: 3,
            filter: Some(&receipt_filter(&probe.image, probe.receipt)),
            include: Include::default(),
        })
        .map_err(e)?;
    let nin = Filter::parse(r#"{"section_label": {"$nin": ["TOTALS", "FOOTER"]}}"#)
        .map_err(|x| x.to_string())?;
    let not_totals = lines.count(Some(&nin)).map_err(e)?;
    let validated = words
        .count(Some(
            &Filter::parse(r#"{"valid_labels_array": {"$contains": "GRAND_TOTAL"}}"#)
                .map_err(|x| x.to_string())?,
        ))
        .map_err(e)?;
    step(
        "queries",
        t,
        format!(
            "words k=5 nearest: {}; {} GRAND_TOTAL words; {} lines outside TOTALS/FOOTER",
            hits.iter()
                .map(|h| format!(
                    "{} ({:.3})",
                    h.document.as_deref().unwrap_or(""),
                    h.distance.unwrap_or(0.0)
                ))
                .collect::<Vec<_>>()
                .join(", "),
            validated,
            not_totals
        ),
    );
    println!(
        "  receipt {}#{}: 3 nearest lines: {}",
        probe.image,
        probe.receipt,
        in_receipt
            .iter()
            .map(|h| h.document.clone().unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let deleted_left: usize = deleted
        .iter()
        .map(|r| {
            words
                .count(Some(&receipt_filter(&r.image, r.receipt)))
                .unwrap_or(1)
        })
        .sum();
    if deleted_left != 0 {
        return Err(format!(
            "{deleted_left} words of deleted receipts are still visible"
        ));
    }

    // 5. Versions and a rollback (and forward again).
    let t = Instant::now();
    let head = words.version().version;
    let rows_now = words.count(None).map_err(e)?;
    store.rollback("words", before_edits).map_err(e)?;
    let rows_then = store.snapshot("words").map_err(e)?.count(None).map_err(e)?;
    store.rollback("words", head).map_err(e)?;
    let versions = store.versions("words").map_err(e)?;
    step(
        "rollback and forward",
        t,
        format!(
            "words: {rows_now} rows at v{head}, {rows_then} at v{before_edits} (before deletes), {} versions kept",
            versions.len()
        ),
    );

    // 6. GC and verify.
    let t = Instant::now();
    let gc = store.gc().map_err(e)?;
    store.close().map_err(e)?;
    let v = verify_store(store_dir).map_err(e)?;
    step(
        "gc + verify",
        t,
        format!(
            "gc kept young files ({} in grace); verify: {} files, {}: {}",
            gc.files_in_grace,
            v.files,
            mb(v.bytes),
            if v.ok() {
                "ok".to_string()
            } else {
                format!("{} problems", v.problems.len())
            }
        ),
    );
    if !v.ok() {
        return Err(format!("verify found problems: {:?}", v.problems));
    }
    println!(
        "done in {:.1} s; store {} at {}",
        t0.elapsed().as_secs_f64(),
        mb(dir_bytes(store_dir)),
        store_dir.display()
    );
    Ok(())
}
