//! Post-processing of the predicted times: the reference's monotonic repair
//! (`Qwen3ForceAlignProcessor.fix_timestamp`) and its millisecond → second rounding.

/// The reference's `fix_timestamp`: makes the predicted times (ms) non-decreasing.
///
/// 1. The longest non-decreasing subsequence is found by the O(n²) DP: `dp[i]` = 1 + the best
///    `dp[j]` over `j < i` with `v[j] <= v[i]`, the first such `j` reaching the best being the
///    parent (strict improvement). Backtracking starts at the first index with the maximal
///    `dp`. Its members are "normal".
/// 2. Each maximal run `[i, j)` of abnormal values takes its value from the nearest normal
///    values on the left (`i - 1`) and on the right (`j`), when they exist:
///    * runs of 1 or 2: position `k` takes the left value if `k - (i - 1) <= j - k`, else the
///      right one; with one side missing, the other;
///    * longer runs: with both sides, linear interpolation
///      `left + (right - left) / (len + 1) * (k - i + 1)` in double precision; with one side,
///      that side's value.
/// 3. Every value is truncated toward zero (Python's `int()`).
///
/// The values are compared and interpolated as `f64` (the reference turns its float32 array
/// into Python floats). An empty input gives an empty output (the reference raises
/// `ValueError` from `max([])`). NaN compares false everywhere as in Python, but becomes 0
/// where Python's `int()` would raise; values beyond the `i64` range saturate.
pub fn fix_timestamp(values: &[f32]) -> Vec<i64> {
    let n = values.len();
    if n == 0 {
        return Vec::new();
    }
    let data: Vec<f64> = values.iter().map(|&v| f64::from(v)).collect();

    let mut dp = vec![1usize; n];
    let mut parent: Vec<Option<usize>> = vec![None; n];
    for i in 1..n {
        for j in 0..i {
            if data[j] <= data[i] && dp[j] + 1 > dp[i] {
                dp[i] = dp[j] + 1;
                parent[i] = Some(j);
            }
        }
    }
    let best = *dp.iter().max().expect("non-empty");
    let mut idx = dp.iter().position(|&d| d == best);
    let mut normal = vec![false; n];
    while let Some(i) = idx {
        normal[i] = true;
        idx = parent[i];
    }

    let mut result = data.clone();
    let mut i = 0;
    while i < n {
        if normal[i] {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < n && !normal[j] {
            j += 1;
        }
        let count = j - i;
        // Normal values are never rewritten, so the nearest normal neighbours are simply the
        // indices i - 1 and j (the run is maximal).
        let left = (i > 0).then(|| data[i - 1]);
        let right = (j < n).then(|| data[j]);
        for (k, slot) in result.iter_mut().enumerate().take(j).skip(i) {
            let v = if count <= 2 {
                match (left, right) {
                    (None, r) => r,
                    (l, None) => l,
                    (Some(l), Some(r)) => Some(if k + 1 - i <= j - k { l } else { r }),
                }
            } else {
                match (left, right) {
                    (Some(l), Some(r)) => {
                        let step = (r - l) / (count + 1) as f64;
                        Some(l + step * (k - i + 1) as f64)
                    }
                    (l, r) => l.or(r),
                }
            };
            // Both sides missing only when nothing is normal, which cannot happen (n > 0).
            if let Some(v) = v {
                *slot = v;
            }
        }
        i = j;
    }
    // `as` truncates toward zero (and saturates), like int() for the finite values in range.
    result.into_iter().map(|v| v as i64).collect()
}

/// Python's `round(x, ndigits)` for a float: the decimal value with `ndigits` fractional
/// digits nearest to the exact binary value of `x`, ties to even, converted back to the
/// nearest float. Rust's fixed-precision formatting rounds the exact value the same way
/// (ties to even), so formatting and parsing back reproduces Python.
pub fn py_round(x: f64, ndigits: usize) -> f64 {
    if !x.is_finite() {
        return x;
    }
    format!("{x:.ndigits$}")
        .parse()
        .expect("a formatted finite float parses")
}

/// The reference's `round(ms / 1000.0, 3)`: milliseconds (after [`fix_timestamp`]) to seconds.
///
/// `ms / 1000` is the float nearest to the exact quotient, which is already the float nearest
/// to the 3-digit decimal, so the rounding never changes it for integer milliseconds (up to
/// 2^53); it is kept for exactness of intent.
pub fn ms_to_seconds(ms: i64) -> f64 {
    py_round(ms as f64 / 1000.0, 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_examples() {
        assert_eq!(fix_timestamp(&[80., 4000., 160., 240.]), [80, 80, 160, 240]);
        assert_eq!(fix_timestamp(&[80., 160., 0., 400.]), [80, 160, 160, 400]);
        assert_eq!(fix_timestamp(&[500., 80., 160.]), [80, 80, 160]);
        assert_eq!(fix_timestamp(&[5., 3.]), [5, 5]);
        assert_eq!(
            fix_timestamp(&[80., 160., 240., 320., 0., 0., 0., 800., 880., 960.]),
            [80, 160, 240, 320, 440, 560, 680, 800, 880, 960]
        );
    }

    #[test]
    fn edge_cases() {
        assert!(fix_timestamp(&[]).is_empty());
        assert_eq!(fix_timestamp(&[80.]), [80]);
        assert_eq!(fix_timestamp(&[400., 320., 240., 160., 80.]), [400; 5]);
        // Long run at the end copies the left side; truncation of fractional interpolation.
        assert_eq!(
            fix_timestamp(&[80., 160., 240., 320., 400., 0., 0., 0.]),
            [80, 160, 240, 320, 400, 400, 400, 400]
        );
        assert_eq!(fix_timestamp(&[0.5, 80.25, 79.75, 160.5]), [0, 80, 80, 160]);
        assert_eq!(
            fix_timestamp(&[100., 900., 800., 700., 600., 200., 300.]),
            [100, 120, 140, 160, 180, 200, 300]
        );
        // Ties: the first index with the longest chain starts the backtracking.
        assert_eq!(
            fix_timestamp(&[300., 400., 100., 200.]),
            [300, 400, 400, 400]
        );
    }

    #[test]
    fn rounding() {
        assert_eq!(py_round(0.0625, 3), 0.062);
        assert_eq!(py_round(0.1125, 3), 0.113);
        assert_eq!(py_round(2.5, 0), 2.0);
        assert_eq!(py_round(1.0005, 3), 1.0);
        assert_eq!(ms_to_seconds(1280), 1.28);
        assert_eq!(ms_to_seconds(-80), -0.08);
        // For integer milliseconds the rounding is the identity.
        for ms in (0..2_000_000).step_by(7).chain((0..5000).map(|c| c * 80)) {
            assert_eq!(ms_to_seconds(ms), ms as f64 / 1000.0, "{ms}");
        }
    }
}
