//! Exact batch k-NN as a blocked matrix product: for a block of rows and all the queries
//! of a batch, one GEMM (`matrixmultiply::sgemm`) gives every dot product; distances follow
//! from them and the norms (`‖q‖² + ‖x‖² − 2·q·x` for l2, `1 − q·x/(‖q‖‖x‖)` for cosine,
//! `1 − q·x` for ip). The GEMM sums in another order than the single-query kernel, so its
//! distances differ in the last bits: they only select candidates — every row whose
//! distance could be among the k best given a bound on the rounding error — and the
//! candidates are scored again with the single-query kernel ([`distance`]). Blocks are
//! taken in runs, and within a run a query's k-th best distance so far bounds the
//! candidates of the next block ([`BestRows`]), so past a run's first block few rows are
//! scored. The result is therefore exactly the single-query path's: the same rows, the
//! same distances, the same ties.

use strata_formats::Metric;

use crate::distance::distance;

/// Rows per block: a block of 1536-d rows is 6 MiB, the dot products 1024 × queries.
pub(crate) const BLOCK_ROWS: usize = 1024;

/// The queries of a batch as one row-major matrix, with their norms.
pub(crate) struct QueryMatrix {
    data: Vec<f32>,
    queries: usize,
    dims: usize,
    /// ‖q‖ per query.
    norms: Vec<f32>,
}

fn sq_norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum()
}

impl QueryMatrix {
    /// The matrix of `queries`, each `dims` long (checked by the caller).
    pub(crate) fn new(queries: &[Vec<f32>], dims: usize) -> QueryMatrix {
        let mut data = Vec::with_capacity(queries.len() * dims);
        for q in queries {
            data.extend_from_slice(q);
        }
        QueryMatrix {
            norms: queries.iter().map(|q| sq_norm(q).sqrt()).collect(),
            queries: queries.len(),
            dims,
            data,
        }
    }

    /// How many queries.
    pub(crate) fn len(&self) -> usize {
        self.queries
    }

    fn query(&self, i: usize) -> &[f32] {
        &self.data[i * self.dims..(i + 1) * self.dims]
    }
}

thread_local! {
    /// Each thread's buffer of dot products, reused from block to block (a fresh one
    /// per block spent its time zeroing new pages).
    static DOTS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `out[i * rows + j] = q_i · x_j` for the `rows` rows of `block` (row-major); `out` is
/// resized to queries × rows.
fn dots(qm: &QueryMatrix, block: &[f32], rows: usize, out: &mut Vec<f32>) {
    assert_eq!(block.len(), rows * qm.dims, "a block holds whole rows");
    assert_eq!(qm.data.len(), qm.queries * qm.dims);
    out.clear();
    out.resize(qm.queries * rows, 0.0);
    if rows == 0 || qm.queries == 0 || qm.dims == 0 {
        return;
    }
    let dims = qm.dims as isize;
    // SAFETY: sgemm computes C (m × n) = A (m × k) · B (k × n) reading A, B and writing C
    // through the strides given. A is the query matrix: m = queries, k = dims, row stride
    // dims, column stride 1, within `qm.data` (queries × dims elements, asserted). B is the
    // block transposed: element (i, j) = block[j * dims + i], row stride 1, column stride
    // dims, n = rows, within `block` (rows × dims elements, asserted). C is `out`: row
    // stride rows, column stride 1, queries × rows elements (resized above). The three
    // buffers are distinct allocations, so C aliases neither input; beta = 0 means C's
    // initial contents are not read for anything but scaling by zero.
    unsafe {
        matrixmultiply::sgemm(
            qm.queries,
            qm.dims,
            rows,
            1.0,
            qm.data.as_ptr(),
            dims,
            1,
            block.as_ptr(),
            1,
            dims,
            0.0,
            out.as_mut_ptr(),
            rows as isize,
            1,
        );
    }
}

/// Every row's lower and upper bound on its distance, in a loop the compiler can
/// vectorize (`f` is one metric's [`approx`], inlined).
#[inline(always)]
fn bounds(
    dots: &[f32],
    norms: &[f32],
    lower: &mut [f32],
    upper: &mut [f32],
    f: impl Fn(f32, f32) -> (f32, f32),
) {
    for (((&d, &xn), lo), up) in dots.iter().zip(norms).zip(lower).zip(upper) {
        let (a, b) = f(d, xn);
        *lo = a - b;
        *up = a + b;
    }
}

/// The approximate distance from a dot product and the norms, and a bound on how far it
/// can be from the single-query kernel's (both round; the bound covers both, generously).
#[inline(always)]
fn approx(metric: Metric, dot: f32, qn: f32, xn: f32, gamma: f32) -> (f32, f32) {
    let (a, b) = match metric {
        Metric::L2 => (qn * qn + xn * xn - 2.0 * dot, gamma * (qn + xn) * (qn + xn)),
        Metric::Ip => (1.0 - dot, gamma * (qn * xn + 1.0)),
        // A zero vector (0 / 0 below): the kernel's own rule decides, so the non-finite
        // result makes it a candidate.
        Metric::Cosine => (1.0 - dot / (qn * xn), 4.0 * gamma),
    };
    // Non-finite (overflow, 0 / 0): always a candidate (lower −∞, upper +∞). Written as
    // selects, so the loop stays vectorized.
    let finite = a.is_finite() & b.is_finite();
    (
        if finite { a } else { 0.0 },
        if finite { b } else { f32::INFINITY },
    )
}

/// The `k` best rows of a sequence of blocks for every query (plus rows tied with the k-th),
/// by the single-query kernel's distance. A query's k-th best distance so far bounds the
/// candidates of the blocks that follow: once it has `k` rows, only rows whose lower bound
/// is within it are scored again, so after the first block few rows are.
pub(crate) struct BestRows {
    k: usize,
    /// Per query: the rows kept (the k best so far and ties, and rows not yet cut).
    best: Vec<Vec<(f32, u32)>>,
    /// Per query: the k-th smallest distance kept (infinite while fewer than k are).
    kth: Vec<f32>,
}

impl BestRows {
    /// Nothing seen yet, for `queries` queries.
    pub(crate) fn new(queries: usize, k: usize) -> BestRows {
        BestRows {
            k,
            best: vec![Vec::new(); queries],
            kth: vec![f32::INFINITY; queries],
        }
    }

    /// Add a block: `block` holds the rows' vectors (row-major), `ids` their row numbers in
    /// the segment.
    pub(crate) fn add(&mut self, metric: Metric, qm: &QueryMatrix, block: &[f32], ids: &[u32]) {
        assert_eq!(self.best.len(), qm.queries, "one list per query");
        let rows = ids.len();
        DOTS.with_borrow_mut(|dots| {
            self::dots(qm, block, rows, dots);
            self.add_with_dots(metric, qm, block, ids, dots)
        })
    }

    /// The k best rows (and ties) of every block added, per query, in no particular order.
    pub(crate) fn finish(self) -> Vec<Vec<(f32, u32)>> {
        let k = self.k;
        self.best
            .into_iter()
            .map(|b| crate::topk::keep_best(b, k))
            .collect()
    }

    /// [`BestRows::add`] once the dot products are computed.
    fn add_with_dots(
        &mut self,
        metric: Metric,
        qm: &QueryMatrix,
        block: &[f32],
        ids: &[u32],
        dots: &[f32],
    ) {
        let rows = ids.len();
        let dims = qm.dims;
        if rows == 0 || self.k == 0 {
            return;
        }
        let norms: Vec<f32> = block
            .chunks_exact(dims)
            .map(|x| sq_norm(x).sqrt())
            .collect();
        // Rounding of a d-term dot product in f32 is within d·ε·Σ|q_i x_i| ≤ d·ε·‖q‖‖x‖;
        // four times that (and two more terms) covers the GEMM, the norms and the kernel.
        let gamma = 4.0 * (dims as f32 + 2.0) * f32::EPSILON;
        let mut lower = vec![0f32; rows];
        let mut upper = vec![0f32; rows];
        for qi in 0..qm.queries {
            let q = qm.query(qi);
            let qn = qm.norms[qi];
            let dots = &dots[qi * rows..(qi + 1) * rows];
            match metric {
                Metric::L2 => bounds(dots, &norms, &mut lower, &mut upper, |d, xn| {
                    approx(Metric::L2, d, qn, xn, gamma)
                }),
                Metric::Ip => bounds(dots, &norms, &mut lower, &mut upper, |d, xn| {
                    approx(Metric::Ip, d, qn, xn, gamma)
                }),
                Metric::Cosine => bounds(dots, &norms, &mut lower, &mut upper, |d, xn| {
                    approx(Metric::Cosine, d, qn, xn, gamma)
                }),
            }
            // A row of the k best has a distance at or below the k-th best kept so far, and
            // at or below the block's k-th smallest upper bound (at least k rows are there):
            // its lower bound is within both.
            let mut limit = self.kth[qi];
            if limit == f32::INFINITY {
                let mut uppers = SmallestK::new(self.k);
                for &u in &upper {
                    uppers.offer(u);
                }
                limit = uppers.kth();
            }
            let best = &mut self.best[qi];
            let before = best.len();
            best.extend(
                lower
                    .iter()
                    .enumerate()
                    .filter(|(_, &lo)| lo <= limit)
                    .map(|(j, _)| {
                        (
                            distance(metric, q, &block[j * dims..(j + 1) * dims]),
                            ids[j],
                        )
                    }),
            );
            if best.len() > before && best.len() >= self.k {
                *best = crate::topk::keep_best(std::mem::take(best), self.k);
                self.kth[qi] = best.iter().map(|x| x.0).fold(f32::NEG_INFINITY, f32::max);
            }
        }
    }
}

/// The `k` smallest of the values offered, kept sorted (a batch's k is small; past
/// [`SmallestK::SORTED_UP_TO`] they are collected and selected at the end).
struct SmallestK {
    k: usize,
    values: Vec<f32>,
}

impl SmallestK {
    const SORTED_UP_TO: usize = 64;

    fn new(k: usize) -> SmallestK {
        SmallestK {
            k,
            values: Vec::with_capacity(k.min(Self::SORTED_UP_TO) + 1),
        }
    }

    fn offer(&mut self, x: f32) {
        if self.k > Self::SORTED_UP_TO {
            self.values.push(x);
            return;
        }
        if self.values.len() == self.k {
            match self.values.last() {
                Some(&last) if x < last => {
                    self.values.pop();
                }
                _ => return,
            }
        }
        let at = self.values.partition_point(|&v| v <= x);
        self.values.insert(at, x);
    }

    /// The k-th smallest value offered (infinite if fewer than k were).
    fn kth(mut self) -> f32 {
        if self.values.len() < self.k || self.k == 0 {
            return f32::INFINITY;
        }
        if self.k > Self::SORTED_UP_TO {
            let (_, kth, _) = self
                .values
                .select_nth_unstable_by(self.k - 1, f32::total_cmp);
            return *kth;
        }
        self.values[self.k - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topk::sorted;
    use proptest::prelude::*;

    /// The single-query reference: every row scored with the kernel, the k best kept.
    fn reference(
        metric: Metric,
        q: &[f32],
        block: &[f32],
        dims: usize,
        k: usize,
    ) -> Vec<(f32, u32)> {
        let all = block
            .chunks_exact(dims)
            .enumerate()
            .map(|(j, x)| (distance(metric, q, x), j as u32))
            .collect();
        crate::topk::keep_best(all, k)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn blocks_give_the_single_query_answer(
            seed in any::<u64>(),
            dims in 1usize..80,
            rows in 1usize..300,
            queries in 1usize..9,
            k in 1usize..20,
            duplicates in any::<bool>(),
            split in prop_oneof![Just(1000usize), 1usize..100],
        ) {
            let mut block = strata_formats::samples::noise(seed, rows * dims);
            if duplicates {
                // Exact ties: every third row repeats the first.
                for j in (3..rows).step_by(3) {
                    let first = block[..dims].to_vec();
                    block[j * dims..(j + 1) * dims].copy_from_slice(&first);
                }
            }
            let qs: Vec<Vec<f32>> = (0..queries)
                .map(|i| strata_formats::samples::noise(seed ^ (i as u64 + 1), dims))
                .collect();
            let ids: Vec<u32> = (0..rows as u32).collect();
            let qm = QueryMatrix::new(&qs, dims);
            for metric in [Metric::L2, Metric::Cosine, Metric::Ip] {
                // The rows in blocks of `split` (one block when it is at least `rows`).
                let mut best = BestRows::new(qs.len(), k);
                for (b, ids) in ids.chunks(split).enumerate() {
                    let start = b * split * dims;
                    best.add(metric, &qm, &block[start..start + ids.len() * dims], ids);
                }
                let got = best.finish();
                for (qi, q) in qs.iter().enumerate() {
                    prop_assert_eq!(
                        sorted(got[qi].clone()),
                        sorted(reference(metric, q, &block, dims, k)),
                        "{} query {}", metric, qi
                    );
                }
            }
        }
    }

    #[test]
    fn smallest_k_is_the_kth_smallest() {
        for k in [1, 3, 64, 65, 200] {
            let values: Vec<f32> = (0..500).map(|i| ((i * 7919) % 500) as f32).collect();
            let mut s = SmallestK::new(k);
            for &v in &values {
                s.offer(v);
            }
            assert_eq!(s.kth(), (k - 1) as f32, "k = {k}");
        }
        let mut few = SmallestK::new(5);
        few.offer(1.0);
        assert_eq!(few.kth(), f32::INFINITY);
    }

    #[test]
    fn zero_vectors_fall_back_to_the_kernel() {
        let dims = 4;
        let block = vec![
            0.0, 0.0, 0.0, 0.0, // a zero row
            1e18, 1e18, 1e18, 1e18, // far away, large norms
            1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0,
        ];
        let ids = [10, 11, 12, 13];
        let qs = vec![vec![1.0, 0.0, 0.0, 0.0], vec![0.0; 4]];
        let qm = QueryMatrix::new(&qs, dims);
        for metric in [Metric::L2, Metric::Cosine, Metric::Ip] {
            let mut best = BestRows::new(qs.len(), 2);
            best.add(metric, &qm, &block, &ids);
            let got = best.finish();
            for (qi, q) in qs.iter().enumerate() {
                let want: Vec<(f32, u32)> = reference(metric, q, &block, dims, 2)
                    .into_iter()
                    .map(|(d, j)| (d, ids[j as usize]))
                    .collect();
                assert_eq!(sorted(got[qi].clone()), sorted(want), "{metric} query {qi}");
            }
        }
    }
}
