//! Encode and decode throughput of the three file formats (criterion; MB/s).
//!
//! `cargo bench --bench formats` (or `make bench`). Figures in README.md.

// criterion_group! and criterion_main! define public functions that cannot carry docs.
#![allow(missing_docs)]

use std::io::Cursor;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use strata::formats::segment::{RowInput, SegmentLayout, SegmentView, SegmentWriter};
use strata::formats::{
    decode_delta, decode_version, encode_version, samples, AlignedBuf, DeltaHeader, DeltaWriter,
    MetaValue, Operation, Quantization, Record, RowMeta, Seq,
};

const DIMS: usize = 1536;

fn ops(n: usize) -> Vec<Operation> {
    (0..n)
        .map(|i| {
            Operation::upsert(
                Seq::from(i as u64),
                Record {
                    id: format!("IMAGE#{i:08}#RECEIPT#00001#LINE#{i:05}"),
                    embedding: Some(samples::vector(i as u64, DIMS)),
                    document: Some(format!("LINE {i} TOTAL 12.99")),
                    metadata: [
                        ("image_id".to_string(), MetaValue::Str(format!("{i:08}"))),
                        ("receipt_id".to_string(), MetaValue::Int(1)),
                        ("confidence".to_string(), MetaValue::Float(0.98)),
                    ]
                    .into_iter()
                    .collect(),
                },
            )
        })
        .collect()
}

fn delta(c: &mut Criterion) {
    let ops = ops(1000);
    let header = DeltaHeader {
        collection: "lines".into(),
        dims: DIMS as u32,
        producer: "bench".into(),
        first_seq: Seq::ZERO,
        created_ms: 0,
    };
    let encode = || {
        let mut w = DeltaWriter::new(&header).unwrap();
        for op in &ops {
            w.push(op).unwrap();
        }
        w.seal()
    };
    let bytes = encode();
    let mut g = c.benchmark_group("delta");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("encode 1000 x 1536", |b| b.iter(encode));
    g.bench_function("decode 1000 x 1536", |b| {
        b.iter(|| decode_delta(&bytes).unwrap())
    });
    g.finish();
}

fn segment(c: &mut Criterion) {
    let rows = 10_000;
    let vectors: Vec<Vec<f32>> = (0..rows).map(|i| samples::vector(i as u64, DIMS)).collect();
    let meta = RowMeta {
        metadata: [("receipt_id".to_string(), MetaValue::Int(1))]
            .into_iter()
            .collect(),
        key_seqs: vec![],
    };
    let write = |q: Quantization| {
        let mut w = SegmentWriter::new(Cursor::new(Vec::new()), DIMS as u32, q).unwrap();
        for (i, v) in vectors.iter().enumerate() {
            let id = format!("id-{i:08}");
            w.push(RowInput {
                id: &id,
                seq: Seq::from(i as u64),
                vector: v,
                document: None,
                meta: &meta,
            })
            .unwrap();
        }
        w.finish().unwrap().0.into_inner()
    };
    let mut g = c.benchmark_group("segment");
    g.sample_size(10);
    for q in [Quantization::None, Quantization::I8] {
        let bytes = write(q);
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_with_input(
            BenchmarkId::new("write 10k x 1536", q.name()),
            &q,
            |b, q| b.iter(|| write(*q)),
        );
        let buf = AlignedBuf::copy_from(&bytes);
        g.bench_with_input(
            BenchmarkId::new("open (header + table)", q.name()),
            &buf,
            |b, buf| b.iter(|| SegmentLayout::parse(buf.as_bytes()).unwrap()),
        );
        g.bench_with_input(
            BenchmarkId::new("verify (every crc)", q.name()),
            &buf,
            |b, buf| {
                let layout = SegmentLayout::parse(buf.as_bytes()).unwrap();
                b.iter(|| {
                    SegmentView::new(buf.as_bytes(), &layout)
                        .unwrap()
                        .verify()
                        .unwrap()
                })
            },
        );
    }
    g.finish();
}

fn version(c: &mut Criterion) {
    let record = samples::version_record();
    let bytes = encode_version(&record);
    let mut g = c.benchmark_group("version");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("encode", |b| b.iter(|| encode_version(&record)));
    g.bench_function("decode", |b| b.iter(|| decode_version(&bytes).unwrap()));
    g.finish();
}

criterion_group!(benches, delta, segment, version);
criterion_main!(benches);
