//! The Rust side of the Python binding's overhead measurement (`python/bench/bench.py`):
//! the same queries, on the same store, through the engine directly.
//!
//! `cargo run --release --example query_latency -- STORE COLLECTION QUERIES.f32 DIMS K [WHERE]`
//!
//! QUERIES.f32 holds the query vectors as little-endian f32, row after row. The store is
//! opened as a reader; each query runs `REPEAT` times after a warm-up, one at a time, as a
//! Rust caller runs one (the head snapshot, then the query, returning ids, distances,
//! documents and metadata: Chroma's default include), and the median latency is printed
//! in microseconds as `median_us=…`.

use std::time::Instant;

use strata::{Filter, Include, Query, ReadableStore, Reader};

const REPEAT: usize = 5;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [store, collection, file, dims, k, rest @ ..] = args.as_slice() else {
        return Err("usage: query_latency STORE COLLECTION QUERIES.f32 DIMS K [WHERE]".into());
    };
    let dims: usize = dims.parse()?;
    let k: usize = k.parse()?;
    let filter = rest.first().map(|w| Filter::parse(w)).transpose()?;
    let bytes = std::fs::read(file)?;
    let floats: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let queries: Vec<&[f32]> = floats.chunks_exact(dims).collect();
    let reader = Reader::open(store)?;
    let run = |v: &[f32]| {
        reader.snapshot(collection)?.query(&Query {
            vector: v,
            k,
            filter: filter.as_ref(),
            include: Include::default(),
        })
    };
    for q in &queries {
        run(q)?;
    }
    let mut times = Vec::with_capacity(queries.len() * REPEAT);
    for _ in 0..REPEAT {
        for q in &queries {
            let t = Instant::now();
            let hits = run(q)?;
            times.push(t.elapsed().as_secs_f64() * 1e6);
            std::hint::black_box(hits);
        }
    }
    times.sort_by(f64::total_cmp);
    println!("median_us={:.2}", times[times.len() / 2]);
    Ok(())
}
