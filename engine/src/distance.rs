//! Distance kernels: simsimd (runtime CPU dispatch) for `l2` (squared), `cosine` (1 - cos)
//! and `ip` (1 - dot), with a scalar reference used by tests.

use simsimd::SpatialSimilarity;
use strata_formats::Metric;

/// Distance between two vectors of equal length, as Chroma reports it.
pub(crate) fn distance(metric: Metric, a: &[f32], b: &[f32]) -> f32 {
    let d = match metric {
        Metric::L2 => f32::sqeuclidean(a, b),
        Metric::Cosine => f32::cosine(a, b),
        Metric::Ip => f32::dot(a, b).map(|d| 1.0 - d),
    };
    d.map_or_else(|| scalar_distance(metric, a, b), |d| d as f32)
}

/// The scalar reference: plain loops in f64.
pub fn scalar_distance(metric: Metric, a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut aa, mut bb, mut l2) = (0f64, 0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        aa += x * x;
        bb += y * y;
        l2 += (x - y) * (x - y);
    }
    (match metric {
        Metric::L2 => l2,
        Metric::Ip => 1.0 - dot,
        Metric::Cosine => {
            if aa == 0.0 && bb == 0.0 {
                0.0
            } else if aa == 0.0 || bb == 0.0 {
                1.0
            } else {
                1.0 - dot / (aa.sqrt() * bb.sqrt())
            }
        }
    }) as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // Chroma's definitions to 1e-5 relative (absolute below a distance of 1, where
        // cosine and ip distances of near-identical vectors are differences of near-equal
        // numbers), up to the embedding widths in use.
        #[test]
        fn simd_matches_scalar(v in prop::collection::vec((-1f32..1.0, -1f32..1.0), 1..1600)) {
            let (a, b): (Vec<f32>, Vec<f32>) = v.into_iter().unzip();
            for metric in [Metric::L2, Metric::Cosine, Metric::Ip] {
                let fast = distance(metric, &a, &b);
                let slow = scalar_distance(metric, &a, &b);
                let tol = 1e-5 * slow.abs().max(1.0);
                prop_assert!((fast - slow).abs() <= tol, "{metric}: {fast} vs {slow}");
            }
        }
    }

    #[test]
    fn chroma_definitions() {
        let a = [1.0, 0.0];
        let b = [0.0, 1.0];
        assert!((distance(Metric::L2, &a, &b) - 2.0).abs() < 1e-6);
        assert!((distance(Metric::Cosine, &a, &b) - 1.0).abs() < 1e-6);
        assert!((distance(Metric::Ip, &a, &a) - 0.0).abs() < 1e-6);
    }
}
