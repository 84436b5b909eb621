//! Exact k-NN equals a scalar brute-force reference (ids and distances), with and without
//! filters, across segments and deltas, after updates and deletes, for every metric.

use std::collections::BTreeMap;

use proptest::prelude::*;
use strata_engine::distance::scalar_distance;
use strata_engine::{Include, Query, Store, StoreOptions};
use strata_formats::{Filter, MetaValue, Metric, Op, Quantization, Record, Target};

fn vector(seed: u64, dims: usize) -> Vec<f32> {
    strata_formats::samples::vector(seed, dims)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn exact_query_matches_brute_force(
        seed in any::<u64>(),
        metric in prop_oneof![Just(Metric::L2), Just(Metric::Cosine), Just(Metric::Ip)],
        k in 1usize..12,
    ) {
        let dims = 24;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        store.create_collection("c", dims as u32, metric, Quantization::None).unwrap();
        let mut model: BTreeMap<String, (Vec<f32>, i64)> = BTreeMap::new();
        let mut s = seed;
        let mut next = || { s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407); s >> 33 };
        for round in 0..4 {
            let mut ops = Vec::new();
            for _ in 0..60 {
                let id = format!("r{:03}", next() % 150);
                match next() % 10 {
                    0 => { model.remove(&id); ops.push(Op::Delete(Target::Id(id))); }
                    _ => {
                        let v = vector(next(), dims);
                        let group = (next() % 3) as i64;
                        model.insert(id.clone(), (v.clone(), group));
                        ops.push(Op::Upsert(Record {
                            id,
                            embedding: Some(v),
                            document: None,
                            metadata: [("group".to_string(), MetaValue::Int(group))].into_iter().collect(),
                        }));
                    }
                }
            }
            store.write("c", ops).unwrap();
            // Leave the last round in a delta: results must merge segments and deltas.
            if round < 3 {
                store.compact("c").unwrap();
            }
        }
        let q = vector(next(), dims);
        let filter = Filter::parse(r#"{"group": {"$in": [0, 2]}}"#).unwrap();
        for f in [None, Some(&filter)] {
            let got = store.snapshot("c").unwrap().query(&Query { vector: &q, k, filter: f, include: Include::ids() }).unwrap();
            let mut want: Vec<(f32, String)> = model.iter()
                .filter(|(_, (_, g))| f.is_none() || *g != 1)
                .map(|(id, (v, _))| (scalar_distance(metric, &q, v), id.clone()))
                .collect();
            want.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap().then(a.1.cmp(&b.1)));
            want.truncate(k);
            prop_assert_eq!(got.len(), want.len());
            for (g, (d, id)) in got.iter().zip(&want) {
                let gd = g.distance.unwrap();
                prop_assert!((gd - d).abs() <= 1e-4 * d.abs().max(1.0), "{} vs {}", gd, d);
                // Ids agree unless two reference distances are within rounding of each other.
                if g.id != *id {
                    let other = want.iter().find(|(_, i)| *i == g.id).map(|(d2, _)| *d2);
                    prop_assert!(other.is_some_and(|d2| (d2 - d).abs() <= 1e-4), "{} vs {}", g.id, id);
                }
            }
        }
    }
}
