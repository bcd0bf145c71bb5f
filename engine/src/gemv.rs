//! Matrix-vector products for autoregressive decoding on the CPU.
//!
//! A decode step multiplies a handful of rows (one per sequence of the batch) with every weight
//! matrix of the model. candle's general matmul is tuned for large products and, with one row,
//! leaves much of the machine's memory bandwidth unused (see crates.md: 2.5x slower than
//! OpenBLAS for a 1x1024 by 1024x3072 product). The weights (2.4 GB for the 0.6B model in f32)
//! do not fit in any cache, so a decode step is bound by how fast they stream from memory: this
//! kernel reads each weight row exactly once, applies it to all input rows, and splits the
//! output across threads in blocks large enough to keep the hardware prefetchers busy.

use rayon::prelude::*;

/// Output rows per parallel task: 32 rows of a 1024-wide matrix are 128 KiB of weights.
const BLOCK: usize = 32;

/// Most input rows handled by one pass over the weights.
pub const MAX_ROWS: usize = 8;

/// `y[r, n] = Σ_k x[r, k] · w[n, k]` for `r < rows`, with `x` `[rows, k]`, `w` `[n, k]` and `y`
/// `[rows, n]`, all row-major f32. `rows` must be at most [`MAX_ROWS`].
pub fn gemv_f32(x: &[f32], rows: usize, w: &[f32], n: usize, k: usize, y: &mut [f32]) {
    assert!(
        (1..=MAX_ROWS).contains(&rows),
        "gemv: 1..={MAX_ROWS} rows, got {rows}"
    );
    assert_eq!(
        x.len(),
        rows * k,
        "gemv: x has {} values, expected {rows}x{k}",
        x.len()
    );
    assert_eq!(
        w.len(),
        n * k,
        "gemv: w has {} values, expected {n}x{k}",
        w.len()
    );
    assert_eq!(
        y.len(),
        rows * n,
        "gemv: y has {} values, expected {rows}x{n}",
        y.len()
    );
    // Compute into a [n, rows] scratch so each task owns a contiguous slice, then transpose.
    let mut out = vec![0f32; n * rows];
    out.par_chunks_mut(BLOCK * rows)
        .enumerate()
        .for_each(|(block, dst)| {
            let first = block * BLOCK;
            for (i, d) in dst.chunks_mut(rows).enumerate() {
                let row = &w[(first + i) * k..(first + i + 1) * k];
                dots(x, rows, k, row, d);
            }
        });
    for (nn, vals) in out.chunks(rows).enumerate() {
        for (r, &v) in vals.iter().enumerate() {
            y[r * n + nn] = v;
        }
    }
}

/// `out[r] = x[r] · row` for every input row.
#[inline]
fn dots(x: &[f32], rows: usize, k: usize, row: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked above).
            unsafe { dots_avx512(x, rows, k, row, out) };
            return;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports AVX2 and FMA (checked above).
            unsafe { dots_avx2(x, rows, k, row, out) };
            return;
        }
    }
    dots_portable(x, rows, k, row, out);
}

fn dots_portable(x: &[f32], rows: usize, k: usize, row: &[f32], out: &mut [f32]) {
    for r in 0..rows {
        let xr = &x[r * k..(r + 1) * k];
        let mut acc = [0f32; 8];
        let chunks = k / 8;
        for c in 0..chunks {
            for l in 0..8 {
                acc[l] += xr[c * 8 + l] * row[c * 8 + l];
            }
        }
        let mut s: f32 = acc.iter().sum();
        for i in chunks * 8..k {
            s += xr[i] * row[i];
        }
        out[r] = s;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dots_avx2(x: &[f32], rows: usize, k: usize, row: &[f32], out: &mut [f32]) {
    use std::arch::x86_64::*;
    let chunks = k / 8;
    let mut acc = [_mm256_setzero_ps(); MAX_ROWS];
    for c in 0..chunks {
        // SAFETY: c * 8 + 8 <= k and every slice holds k values per row.
        let wv = unsafe { _mm256_loadu_ps(row.as_ptr().add(c * 8)) };
        for (r, a) in acc.iter_mut().enumerate().take(rows) {
            let xv = unsafe { _mm256_loadu_ps(x.as_ptr().add(r * k + c * 8)) };
            *a = _mm256_fmadd_ps(xv, wv, *a);
        }
    }
    for r in 0..rows {
        let mut lanes = [0f32; 8];
        // SAFETY: lanes holds 8 f32.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc[r]) };
        let mut s: f32 = lanes.iter().sum();
        for i in chunks * 8..k {
            s += x[r * k + i] * row[i];
        }
        out[r] = s;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dots_avx512(x: &[f32], rows: usize, k: usize, row: &[f32], out: &mut [f32]) {
    use std::arch::x86_64::*;
    let chunks = k / 16;
    let mut acc = [_mm512_setzero_ps(); MAX_ROWS];
    for c in 0..chunks {
        // SAFETY: c * 16 + 16 <= k and every slice holds k values per row.
        let wv = unsafe { _mm512_loadu_ps(row.as_ptr().add(c * 16)) };
        for (r, a) in acc.iter_mut().enumerate().take(rows) {
            let xv = unsafe { _mm512_loadu_ps(x.as_ptr().add(r * k + c * 16)) };
            *a = _mm512_fmadd_ps(xv, wv, *a);
        }
    }
    for r in 0..rows {
        let mut s = _mm512_reduce_add_ps(acc[r]);
        for i in chunks * 16..k {
            s += x[r * k + i] * row[i];
        }
        out[r] = s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(x: &[f32], rows: usize, w: &[f32], n: usize, k: usize) -> Vec<f32> {
        let mut y = vec![0f32; rows * n];
        for r in 0..rows {
            for j in 0..n {
                y[r * n + j] = (0..k)
                    .map(|i| x[r * k + i] as f64 * w[j * k + i] as f64)
                    .sum::<f64>() as f32;
            }
        }
        y
    }

    #[test]
    fn matches_a_plain_product() {
        let mut seed = 3u32;
        let mut rnd = || {
            seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        for &(rows, n, k) in &[
            (1, 1, 1),
            (1, 70, 37),
            (3, 129, 1024),
            (8, 33, 100),
            (2, 5, 16),
        ] {
            let x: Vec<f32> = (0..rows * k).map(|_| rnd()).collect();
            let w: Vec<f32> = (0..n * k).map(|_| rnd()).collect();
            let mut y = vec![0f32; rows * n];
            gemv_f32(&x, rows, &w, n, k, &mut y);
            let e = reference(&x, rows, &w, n, k);
            for (a, b) in y.iter().zip(&e) {
                assert!(
                    (a - b).abs() < 1e-4 * (1.0 + b.abs()),
                    "{rows}x{n}x{k}: {a} vs {b}"
                );
            }
            let mut yp = vec![0f32; rows * n];
            for j in 0..n {
                let mut d = vec![0f32; rows];
                dots_portable(&x, rows, k, &w[j * k..(j + 1) * k], &mut d);
                for r in 0..rows {
                    yp[r * n + j] = d[r];
                }
            }
            for (a, b) in yp.iter().zip(&e) {
                assert!((a - b).abs() < 1e-4 * (1.0 + b.abs()));
            }
        }
    }
}
