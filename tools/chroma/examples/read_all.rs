//! Read every record of one collection of a Chroma persist directory (or `.tar.gz`) and
//! print how many, how fast: the reader's share of `strata import-chroma`.
//!
//!     cargo run --release -p strata-chroma --example read_all -- DIR [COLLECTION]

use std::time::Instant;

use strata_chroma::{ChromaDir, Limits};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(src) = args.first() else {
        return Err("usage: read_all DIR|FILE.tar.gz [COLLECTION]".into());
    };
    let start = Instant::now();
    let dir = if std::path::Path::new(src).is_dir() {
        ChromaDir::open(src)?
    } else {
        ChromaDir::from_tar_gz(&std::fs::read(src)?, &Limits::default())?
    };
    let coll = match args.get(1) {
        Some(name) => dir.collection(name)?,
        None => dir.only_collection()?,
    };
    let opened = start.elapsed().as_secs_f64();
    let (mut n, mut floats, mut keys) = (0u64, 0u64, 0u64);
    for r in coll.records() {
        let r = r?;
        n += 1;
        floats += r.embedding.len() as u64;
        keys += r.metadata.len() as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{n} records ({floats} floats, {keys} metadata values) of {} ({:?}, {:?} dims) in {secs:.2} s (open and checks {opened:.2} s): {:.0} records/s; {:?}",
        coll.name(),
        coll.metric(),
        coll.dimension(),
        n as f64 / secs,
        coll.stats()
    );
    Ok(())
}
