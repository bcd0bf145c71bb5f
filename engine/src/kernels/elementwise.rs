//! Element-wise activations over large buffers, split across threads.

use rayon::prelude::*;

/// Below this many elements the work is done on the calling thread.
const PARALLEL_MIN: usize = 1 << 15;

/// Dot product in f32 with 16 independent partial sums, so the compiler vectorises it (a plain
/// `zip().sum()` is a serial chain: float addition is not reassociated automatically).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; 16];
    let chunks = n / 16;
    for c in 0..chunks {
        let (x, y) = (&a[c * 16..c * 16 + 16], &b[c * 16..c * 16 + 16]);
        for l in 0..16 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for i in chunks * 16..n {
        s += a[i] * b[i];
    }
    s
}

/// Exact GELU, `x · (1 + erf(x / √2)) / 2`, in place (as `torch.nn.functional.gelu`).
pub fn gelu_erf_inplace(x: &mut [f32]) {
    let f = |v: &mut f32| {
        *v =
            (candle_core::cpu::erf::erf_f32(*v * std::f32::consts::FRAC_1_SQRT_2) + 1.0) * 0.5 * *v;
    };
    if x.len() < PARALLEL_MIN {
        x.iter_mut().for_each(f);
    } else {
        x.par_chunks_mut(PARALLEL_MIN / 4)
            .for_each(|c| c.iter_mut().for_each(f));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gelu_matches_definition() {
        let mut v: Vec<f32> = (0..100_000)
            .map(|i| (i as f32 - 50_000.0) / 5_000.0)
            .collect();
        let orig = v.clone();
        gelu_erf_inplace(&mut v);
        for (y, x) in v.iter().zip(&orig) {
            let e = 0.5 * (*x as f64) * (1.0 + libm_erf(*x as f64 / std::f64::consts::SQRT_2));
            assert!((*y as f64 - e).abs() < 1e-5, "{x}: {y} vs {e}");
        }
    }

    #[test]
    fn dot_matches_serial_sum() {
        let a: Vec<f32> = (0..131).map(|i| i as f32 * 0.25 - 3.0).collect();
        let b: Vec<f32> = (0..131).map(|i| (i as f32).sin()).collect();
        let e: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
        assert!((dot(&a, &b) as f64 - e).abs() < 1e-3);
        assert_eq!(dot(&[], &[]), 0.0);
    }

    fn libm_erf(x: f64) -> f64 {
        candle_core::cpu::erf::erf_f64(x)
    }
}
