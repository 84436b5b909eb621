//! The first pass of a quantized batch search: a group of queries scores each block of a
//! segment's rows from their codes while the block is in cache, so a batch reads the codes
//! once per group instead of once per query, and groups run on every core.
//!
//! Each query keeps every row whose score is among its `m` best, ties with the m-th
//! included ([`keep_best`]): a set that does not depend on how the rows were blocked, and so
//! the same candidates as the single-query pass (`search::scan_segment`) picks, whatever
//! the blocking; re-scoring them exactly gives the same answers.

use rayon::prelude::*;

use crate::topk::keep_best;

/// Code bytes per block: a block stays in a core's L2 cache while its group reads it.
const BLOCK_BYTES: usize = 256 * 1024;

/// Most queries in a group.
const GROUP_QUERIES: usize = 32;

/// Most bytes the candidate buffers of one group hold, in the common case (rows tied with
/// the m-th can take more, up to every row, as in the single-query pass).
const GROUP_BUFFER_BYTES: usize = 64 << 20;

/// The rows a pass scores: all `n` of a segment, or the listed ones (after a filter or
/// deletes).
#[derive(Clone, Copy)]
pub(crate) struct Rows<'a> {
    /// How many rows.
    pub(crate) n: usize,
    /// The row numbers, when not all of `0..n`.
    pub(crate) live: Option<&'a [u32]>,
}

impl Rows<'_> {
    /// The `i`-th row scored.
    pub(crate) fn at(&self, i: usize) -> u32 {
        self.live.map_or(i as u32, |r| r[i])
    }
}

/// For every scorer (one per query), the rows whose scores are among its `m` best (`m` ≥
/// 1), ties with the m-th included, as `(score, row)` in no particular order. `code_bytes`
/// is the size of one row's codes, which sets the block size.
pub(crate) fn candidates<S>(
    scorers: &[S],
    rows: Rows<'_>,
    m: usize,
    code_bytes: usize,
) -> Vec<Vec<(f32, u32)>>
where
    S: Fn(u32) -> f32 + Sync,
{
    assert!(m >= 1, "at least one candidate per query");
    let block_rows = (BLOCK_BYTES / code_bytes.max(1)).max(64);
    let buffer = rows.n.min(m.saturating_mul(2).saturating_add(block_rows));
    let threads = rayon::current_num_threads().max(1);
    let group = scorers
        .len()
        .div_ceil(threads)
        .min(GROUP_QUERIES)
        .min(GROUP_BUFFER_BYTES / (buffer.max(1) * 8))
        .max(1);
    scorers
        .par_chunks(group)
        .flat_map_iter(|g| group_candidates(g, rows, m, block_rows))
        .collect()
}

/// [`candidates`] for one group, block by block.
fn group_candidates<S>(
    group: &[S],
    rows: Rows<'_>,
    m: usize,
    block_rows: usize,
) -> Vec<Vec<(f32, u32)>>
where
    S: Fn(u32) -> f32,
{
    let first_limit = m.saturating_mul(2).saturating_add(block_rows);
    let mut best: Vec<Vec<(f32, u32)>> = vec![Vec::new(); group.len()];
    // When a buffer reaches its limit it is cut to its m best; a cut that keeps many ties
    // raises the limit, so cutting stays linear in the rows scored.
    let mut limits = vec![first_limit; group.len()];
    for start in (0..rows.n).step_by(block_rows) {
        let end = (start + block_rows).min(rows.n);
        for ((score, b), limit) in group.iter().zip(&mut best).zip(&mut limits) {
            b.extend((start..end).map(|i| {
                let r = rows.at(i);
                (score(r), r)
            }));
            if b.len() >= *limit {
                *b = keep_best(std::mem::take(b), m);
                *limit = (*limit).max(b.len().saturating_mul(2));
            }
        }
    }
    best.into_iter().map(|b| keep_best(b, m)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topk::sorted;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Whatever the block size and the rows listed, a query's candidates are the rows
        /// whose scores are at or below the m-th smallest score among all of them.
        #[test]
        fn candidates_are_the_m_best_with_ties(
            scores in proptest::collection::vec(0u8..20, 1..3000),
            queries in 1usize..5,
            m in 1usize..400,
            code_bytes in prop_oneof![Just(1usize), Just(192), Just(1536), Just(100_000)],
            every in 1usize..4,
        ) {
            let live: Vec<u32> = (0..scores.len() as u32).step_by(every).collect();
            let rows = Rows { n: live.len(), live: Some(&live) };
            // Query q scores row r as scores[(r + q) % len]: small integers, many ties.
            let scorers: Vec<_> = (0..queries)
                .map(|q| {
                    let scores = &scores;
                    move |r: u32| scores[(r as usize + q) % scores.len()] as f32
                })
                .collect();
            let got = candidates(&scorers, rows, m, code_bytes);
            prop_assert_eq!(got.len(), queries);
            for (q, got) in got.into_iter().enumerate() {
                let all: Vec<(f32, u32)> = live.iter().map(|&r| (scorers[q](r), r)).collect();
                let mut values: Vec<f32> = all.iter().map(|x| x.0).collect();
                values.sort_by(f32::total_cmp);
                let limit = values[m.min(values.len()) - 1];
                let want: Vec<(f32, u32)> = all.into_iter().filter(|x| x.0 <= limit).collect();
                prop_assert_eq!(sorted(got), sorted(want), "query {}", q);
            }
        }
    }

    #[test]
    fn all_rows_when_none_are_listed() {
        let scorers: [fn(u32) -> f32; 2] = [|r| r as f32, |r| -(r as f32)];
        let got = candidates(&scorers, Rows { n: 10, live: None }, 3, 1);
        assert_eq!(sorted(got[0].clone()), vec![(0.0, 0), (1.0, 1), (2.0, 2)]);
        assert_eq!(
            sorted(got[1].clone()),
            vec![(-9.0, 9), (-8.0, 8), (-7.0, 7)]
        );
        let none = candidates(&scorers, Rows { n: 0, live: None }, 3, 1);
        assert_eq!(none, vec![Vec::new(), Vec::new()]);
    }
}
