//! Keeping the k best `(distance, row)` pairs of a scan, ties with the k-th included (ids
//! break ties later): shared by the single-query and the batch search.

use std::cmp::Ordering;

/// Order by distance (incomparable distances compare equal).
pub(crate) fn by_dist(a: &(f32, u32), b: &(f32, u32)) -> Ordering {
    a.0.partial_cmp(&b.0).unwrap_or(Ordering::Equal)
}

/// Keep the `k` smallest distances, plus every row tied with the k-th (ids break ties later).
pub(crate) fn keep_best(mut v: Vec<(f32, u32)>, k: usize) -> Vec<(f32, u32)> {
    if v.len() > k {
        v.select_nth_unstable_by(k - 1, by_dist);
        let t = v[k - 1].0;
        v.retain(|(d, _)| *d <= t);
    }
    v
}

/// Pairs in one order (distance, then row), to compare sets of them in tests.
#[cfg(test)]
pub(crate) fn sorted(mut v: Vec<(f32, u32)>) -> Vec<(f32, u32)> {
    v.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_best_keeps_ties() {
        let v = vec![(3.0, 0), (1.0, 1), (2.0, 2), (2.0, 3), (5.0, 4)];
        let mut kept = keep_best(v, 2);
        kept.sort_by_key(|x| x.1);
        assert_eq!(kept, vec![(1.0, 1), (2.0, 2), (2.0, 3)]);
    }
}
