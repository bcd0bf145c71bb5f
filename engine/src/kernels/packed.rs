//! Weight matrices in a panel layout, and their products with activations.
//!
//! A weight `W` of shape `[n, k]` (PyTorch's `[out, in]`) is stored as `ceil(n / NR)` panels of
//! `NR` output features; panel `p` holds `W[p·NR + j][kk]` at `kk·NR + j`, zero-padded past `n`.
//! This is the layout a GEMM micro-kernel wants for its right-hand side, so a weight is packed
//! once, when the model loads, instead of on every product. The same layout also streams
//! perfectly for decoding: a matrix-vector product reads every panel front to back.
//!
//! Elements are f32, or bf16 when the checkpoint stores bf16: bf16 → f32 is exact, so keeping the
//! released bf16 values and widening them in registers gives bit-identical products to widening
//! the whole matrix first, with half the memory and half the memory traffic per decoded token.
//!
//! `y[m, n] = x[m, k] · Wᵀ` runs as
//! * a GEMV when `m <= GEMV_MAX_ROWS` (decode steps): each panel is read once for all rows;
//! * a GEMM otherwise: `x` is packed into panels of `MR` rows and an `MR × NR` register tile is
//!   accumulated over the whole `k` for every pair of panels.
//!
//! Both split the output panels across rayon's threads. The kernels need AVX-512F
//! ([`super::packed_kernels_available`]); callers fall back to candle elsewhere.

use half::bf16;
use rayon::prelude::*;

use crate::{Error, Result};

/// Output features per panel (two AVX-512 registers of f32).
pub const NR: usize = 32;
/// Activation rows per GEMM tile.
pub const MR: usize = 12;
/// Depth of a GEMM cache block.
const KC: usize = 256;
/// Row panels per GEMM cache block.
const MC_PANELS: usize = 16;
/// Most activation rows handled by the GEMV path.
pub const GEMV_MAX_ROWS: usize = 4;

/// Panel elements.
#[derive(Clone)]
enum PackedData {
    F32(Vec<f32>),
    Bf16(Vec<u16>),
}

/// A `[n, k]` weight matrix in panel layout.
#[derive(Clone)]
pub struct PackedMatrix {
    n: usize,
    k: usize,
    data: PackedData,
}

impl std::fmt::Debug for PackedMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedMatrix")
            .field("n", &self.n)
            .field("k", &self.k)
            .field("bf16", &self.is_bf16())
            .finish()
    }
}

/// Raw element access shared by the f32 and bf16 layouts.
trait Element: Copy + Send + Sync + Default {
    fn to_f32(self) -> f32;
}

impl Element for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
}

impl Element for u16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f32::from_bits((self as u32) << 16)
    }
}

fn pack<T: Element>(w: &[T], n: usize, k: usize) -> Vec<T> {
    let panels = n.div_ceil(NR);
    let mut out = vec![T::default(); panels * k * NR];
    out.par_chunks_mut(k * NR)
        .enumerate()
        .for_each(|(p, panel)| {
            for j in 0..NR {
                let row = p * NR + j;
                if row >= n {
                    break;
                }
                let src = &w[row * k..(row + 1) * k];
                for (kk, &v) in src.iter().enumerate() {
                    panel[kk * NR + j] = v;
                }
            }
        });
    out
}

impl PackedMatrix {
    /// Packs a row-major f32 `[n, k]` matrix.
    pub fn from_f32(w: &[f32], n: usize, k: usize) -> Result<Self> {
        check_len(w.len(), n, k)?;
        Ok(PackedMatrix {
            n,
            k,
            data: PackedData::F32(pack(w, n, k)),
        })
    }

    /// Packs a row-major bf16 `[n, k]` matrix, keeping bf16 storage.
    pub fn from_bf16(w: &[bf16], n: usize, k: usize) -> Result<Self> {
        check_len(w.len(), n, k)?;
        let bits: Vec<u16> = w.iter().map(|v| v.to_bits()).collect();
        Ok(PackedMatrix {
            n,
            k,
            data: PackedData::Bf16(pack(&bits, n, k)),
        })
    }

    /// Packs a 2-D CPU tensor: bf16 stays bf16, anything else becomes f32.
    pub fn from_tensor(t: &candle_core::Tensor) -> Result<Self> {
        let (n, k) = t.dims2()?;
        let t = t.to_device(&candle_core::Device::Cpu)?;
        if t.dtype() == candle_core::DType::BF16 {
            let v: Vec<bf16> = t.flatten_all()?.to_vec1()?;
            Self::from_bf16(&v, n, k)
        } else {
            let v: Vec<f32> = t
                .to_dtype(candle_core::DType::F32)?
                .flatten_all()?
                .to_vec1()?;
            Self::from_f32(&v, n, k)
        }
    }

    /// Output features (rows of the original matrix).
    pub fn n(&self) -> usize {
        self.n
    }

    /// Input features (columns of the original matrix).
    pub fn k(&self) -> usize {
        self.k
    }

    pub fn is_bf16(&self) -> bool {
        matches!(self.data, PackedData::Bf16(_))
    }

    /// Bytes of weight data (what a decode step streams).
    pub fn bytes(&self) -> usize {
        match &self.data {
            PackedData::F32(v) => v.len() * 4,
            PackedData::Bf16(v) => v.len() * 2,
        }
    }

    /// Copies row `r` of the original matrix into `out` (length `k`), e.g. an embedding lookup.
    pub fn row(&self, r: usize, out: &mut [f32]) -> Result<()> {
        if r >= self.n {
            return Err(Error::InvalidArgument(format!(
                "row {r} is outside a matrix of {} rows",
                self.n
            )));
        }
        if out.len() != self.k {
            return Err(Error::InvalidArgument(format!(
                "row buffer has {} values, expected {}",
                out.len(),
                self.k
            )));
        }
        let base = (r / NR) * self.k * NR + r % NR;
        match &self.data {
            PackedData::F32(d) => out
                .iter_mut()
                .enumerate()
                .for_each(|(kk, o)| *o = d[base + kk * NR]),
            PackedData::Bf16(d) => out
                .iter_mut()
                .enumerate()
                .for_each(|(kk, o)| *o = d[base + kk * NR].to_f32()),
        }
        Ok(())
    }

    /// `x` `[m, k]` (row-major f32) times the transpose of this matrix: `[m, n]`.
    pub fn matmul(&self, x: &[f32], m: usize) -> Result<Vec<f32>> {
        if x.len() != m * self.k {
            return Err(Error::InvalidArgument(format!(
                "matmul: input has {} values, expected {m}x{}",
                x.len(),
                self.k
            )));
        }
        if !super::packed_kernels_available() {
            return Err(Error::InvalidArgument(
                "packed kernels need a CPU with AVX-512".into(),
            ));
        }
        let mut y = vec![0f32; m * self.n];
        if m == 0 || self.n == 0 {
            return Ok(y);
        }
        match &self.data {
            PackedData::F32(d) => run(d, x, m, self.n, self.k, &mut y),
            PackedData::Bf16(d) => run(d, x, m, self.n, self.k, &mut y),
        }
        Ok(y)
    }
}

fn check_len(len: usize, n: usize, k: usize) -> Result<()> {
    if len != n * k {
        return Err(Error::InvalidArgument(format!(
            "matrix has {len} values, expected {n}x{k}"
        )));
    }
    Ok(())
}

/// A pointer that may be shared by tasks writing disjoint parts of one buffer.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
// SAFETY: tasks write disjoint columns of the output (one panel range each).
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// Pointer to element `offset` (a method, so closures capture the whole wrapper).
    fn at(&self, offset: usize) -> *mut f32 {
        // SAFETY: callers stay inside the output buffer.
        unsafe { self.0.add(offset) }
    }
}

/// Panels per task: enough tasks to balance the threads, few enough that each streams a long
/// stretch of memory and the scheduling cost stays small.
fn panels_per_task(panels: usize) -> usize {
    let tasks = (rayon::current_num_threads() * 4).max(1);
    panels.div_ceil(tasks).max(1)
}

fn run<T: Kernel>(w: &[T], x: &[f32], m: usize, n: usize, k: usize, y: &mut [f32]) {
    let panels = n.div_ceil(NR);
    let out = SharedOut(y.as_mut_ptr());
    let per = panels_per_task(panels);
    if m <= GEMV_MAX_ROWS {
        // Decode: one contiguous range of panels per thread of the spinning pool (long
        // sequential streams, no wake-up cost between the many small products of a step).
        let pool = super::pool::global();
        let parts = pool.threads().min(panels);
        let per = panels.div_ceil(parts);
        let group = if m <= 2 { 4 } else { 2 };
        pool.run(parts, &|t| {
            let end = ((t + 1) * per).min(panels);
            let mut p = t * per;
            while p < end {
                let g = group.min(end - p);
                let g = if g >= 4 {
                    4
                } else if g >= 2 {
                    2
                } else {
                    1
                };
                let mut tile = [[[0f32; NR]; GEMV_MAX_ROWS]; 4];
                // SAFETY: packed_kernels_available() was checked by the caller.
                unsafe {
                    T::gemv_panels(&w[p * k * NR..(p + g) * k * NR], x, m, k, &mut tile[..g])
                };
                for (i, t) in tile.iter().enumerate().take(g) {
                    let cols = NR.min(n - (p + i) * NR);
                    for (r, row) in t.iter().enumerate().take(m) {
                        // SAFETY: row r, columns of panel p+i are inside y and owned by this part.
                        unsafe {
                            std::ptr::copy_nonoverlapping(
                                row.as_ptr(),
                                out.at(r * n + (p + i) * NR),
                                cols,
                            )
                        };
                    }
                }
                p += g;
            }
        });
        return;
    }
    // GEMM: pack the activations into panels of MR rows, [k][MR] each, zero-padded.
    let row_panels = m.div_ceil(MR);
    let mut packed_x = vec![0f32; row_panels * k * MR];
    packed_x
        .par_chunks_mut(k * MR)
        .enumerate()
        .for_each(|(q, panel)| {
            for i in 0..MR.min(m - q * MR) {
                let src = &x[(q * MR + i) * k..(q * MR + i + 1) * k];
                for (kk, &v) in src.iter().enumerate() {
                    panel[kk * MR + i] = v;
                }
            }
        });
    // Cache blocking: a KC-deep slab of MC_PANELS row panels (~200 KB) stays in L2 while every
    // column panel of the task passes over it; each column slab (KC x NR) stays in L1 across
    // the row panels.
    (0..panels.div_ceil(per)).into_par_iter().for_each(|t| {
        let p_end = ((t + 1) * per).min(panels);
        for kc0 in (0..k).step_by(KC) {
            let kc = KC.min(k - kc0);
            for q0 in (0..row_panels).step_by(MC_PANELS) {
                for p in t * per..p_end {
                    let bslab = &w[p * k * NR + kc0 * NR..p * k * NR + (kc0 + kc) * NR];
                    let cols = NR.min(n - p * NR);
                    for q in q0..(q0 + MC_PANELS).min(row_panels) {
                        let aslab = &packed_x[q * k * MR + kc0 * MR..q * k * MR + (kc0 + kc) * MR];
                        let mut tile = [[0f32; NR]; MR];
                        // SAFETY: packed_kernels_available() was checked by the caller.
                        unsafe { T::gemm_tile(aslab, bslab, kc, &mut tile) };
                        for (i, row) in tile.iter().enumerate().take(MR.min(m - q * MR)) {
                            // SAFETY: row q*MR+i, columns p*NR..p*NR+cols belong to this task.
                            let dst = unsafe {
                                std::slice::from_raw_parts_mut(
                                    out.at((q * MR + i) * n + p * NR),
                                    cols,
                                )
                            };
                            if kc0 == 0 {
                                dst.copy_from_slice(&row[..cols]);
                            } else {
                                dst.iter_mut().zip(row).for_each(|(d, v)| *d += v);
                            }
                        }
                    }
                }
            }
        }
    });
}

/// The per-element-type micro-kernels.
trait Kernel: Element {
    /// `tile[p][r][j] = Σ_kk x[r][kk] · panels[p][kk][j]` for `r < m <= GEMV_MAX_ROWS`, over
    /// `tile.len()` consecutive panels.
    unsafe fn gemv_panels(
        panels: &[Self],
        x: &[f32],
        m: usize,
        k: usize,
        tile: &mut [[[f32; NR]; GEMV_MAX_ROWS]],
    );
    /// `tile[i][j] = Σ_kk a[kk][i] · panel[kk][j]`.
    unsafe fn gemm_tile(a: &[f32], panel: &[Self], k: usize, tile: &mut [[f32; NR]; MR]);
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// How many panel rows ahead the GEMV prefetches (each row is one or two cache lines).
    const PREFETCH_ROWS: usize = 32;

    /// 32 panel values at `p` as two f32 vectors.
    pub trait Load {
        unsafe fn load2(p: *const Self) -> (__m512, __m512);
    }

    impl Load for f32 {
        #[inline(always)]
        unsafe fn load2(p: *const f32) -> (__m512, __m512) {
            // SAFETY: the caller guarantees 32 readable values at p.
            unsafe { (_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16))) }
        }
    }

    impl Load for u16 {
        #[inline(always)]
        unsafe fn load2(p: *const u16) -> (__m512, __m512) {
            // SAFETY: the caller guarantees 32 readable values at p. bf16 -> f32 is a shift of
            // the bits into the upper half of each 32-bit lane.
            unsafe {
                let lo = _mm256_loadu_si256(p as *const __m256i);
                let hi = _mm256_loadu_si256(p.add(16) as *const __m256i);
                let lo = _mm512_slli_epi32(_mm512_cvtepu16_epi32(lo), 16);
                let hi = _mm512_slli_epi32(_mm512_cvtepu16_epi32(hi), 16);
                (_mm512_castsi512_ps(lo), _mm512_castsi512_ps(hi))
            }
        }
    }

    /// `tile[p][r][j] = Σ_kk x[r][kk] · panels[p][kk][j]` for `P` consecutive panels read side
    /// by side: several independent memory streams per thread get closer to the machine's read
    /// bandwidth than one, and give the FMA units independent chains.
    // Index loops over the register tile read like the math and keep the accumulators in
    // registers; iterator chains over three array levels obscure that.
    #[allow(clippy::needless_range_loop)]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn gemv_panels<T: Load, const P: usize>(
        panels: &[T],
        x: &[f32],
        m: usize,
        k: usize,
        tile: &mut [[[f32; super::NR]; super::GEMV_MAX_ROWS]],
    ) {
        let mut acc = [[[_mm512_setzero_ps(); 2]; super::GEMV_MAX_ROWS]; P];
        let base = panels.as_ptr();
        let stride = k * super::NR;
        for kk in 0..k {
            // Prefetch each stream a few cache lines ahead: the hardware prefetchers stop at
            // page boundaries and ramp up slowly on short streams.
            if kk + PREFETCH_ROWS < k {
                for p in 0..P {
                    // SAFETY: the address is inside the panel (kk + PREFETCH_ROWS < k).
                    unsafe {
                        _mm_prefetch::<_MM_HINT_T0>(
                            base.add(p * stride + (kk + PREFETCH_ROWS) * super::NR) as *const i8,
                        )
                    };
                }
            }
            let mut w = [(_mm512_setzero_ps(), _mm512_setzero_ps()); P];
            for (p, wp) in w.iter_mut().enumerate() {
                // SAFETY: panels holds P panels of k * NR values.
                *wp = unsafe { T::load2(base.add(p * stride + kk * super::NR)) };
            }
            for r in 0..m {
                // SAFETY: x holds m rows of k values.
                let xv = _mm512_set1_ps(unsafe { *x.get_unchecked(r * k + kk) });
                for p in 0..P {
                    acc[p][r][0] = _mm512_fmadd_ps(xv, w[p].0, acc[p][r][0]);
                    acc[p][r][1] = _mm512_fmadd_ps(xv, w[p].1, acc[p][r][1]);
                }
            }
        }
        for p in 0..P {
            for r in 0..m {
                // SAFETY: each tile row holds 32 f32.
                unsafe {
                    _mm512_storeu_ps(tile[p][r].as_mut_ptr(), acc[p][r][0]);
                    _mm512_storeu_ps(tile[p][r].as_mut_ptr().add(16), acc[p][r][1]);
                }
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn gemm_tile<T: Load>(
        a: &[f32],
        panel: &[T],
        k: usize,
        tile: &mut [[f32; super::NR]; super::MR],
    ) {
        let mut acc = [[_mm512_setzero_ps(); 2]; super::MR];
        let ap = a.as_ptr();
        let bp = panel.as_ptr();
        for kk in 0..k {
            // SAFETY: kk < k; a holds k * MR values and the panel k * NR.
            let (b0, b1) = unsafe { T::load2(bp.add(kk * super::NR)) };
            let arow = unsafe { ap.add(kk * super::MR) };
            for (i, c) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(unsafe { *arow.add(i) });
                c[0] = _mm512_fmadd_ps(av, b0, c[0]);
                c[1] = _mm512_fmadd_ps(av, b1, c[1]);
            }
        }
        for (i, c) in acc.iter().enumerate() {
            // SAFETY: each tile row holds 32 f32.
            unsafe {
                _mm512_storeu_ps(tile[i].as_mut_ptr(), c[0]);
                _mm512_storeu_ps(tile[i].as_mut_ptr().add(16), c[1]);
            }
        }
    }
}

macro_rules! impl_kernel {
    ($t:ty) => {
        impl Kernel for $t {
            #[inline]
            unsafe fn gemv_panels(
                panels: &[Self],
                x: &[f32],
                m: usize,
                k: usize,
                tile: &mut [[[f32; NR]; GEMV_MAX_ROWS]],
            ) {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: forwarded from the caller (AVX-512F available); the register budget
                // (P panels x m rows x 2 accumulators) stays within 32 vector registers.
                unsafe {
                    match (tile.len(), m) {
                        (4, 1..=2) => avx512::gemv_panels::<Self, 4>(panels, x, m, k, tile),
                        (2, _) => avx512::gemv_panels::<Self, 2>(panels, x, m, k, tile),
                        (1, _) => avx512::gemv_panels::<Self, 1>(panels, x, m, k, tile),
                        (p, _) => {
                            for (i, t) in tile.chunks_mut(1).enumerate() {
                                avx512::gemv_panels::<Self, 1>(&panels[i * k * NR..], x, m, k, t);
                            }
                            let _ = p;
                        }
                    }
                }
                #[cfg(not(target_arch = "x86_64"))]
                portable_gemv(panels, x, m, k, tile)
            }

            #[inline]
            unsafe fn gemm_tile(a: &[f32], panel: &[Self], k: usize, tile: &mut [[f32; NR]; MR]) {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: forwarded from the caller (AVX-512F available).
                unsafe {
                    avx512::gemm_tile(a, panel, k, tile)
                }
                #[cfg(not(target_arch = "x86_64"))]
                portable_gemm(a, panel, k, tile)
            }
        }
    };
}

impl_kernel!(f32);
impl_kernel!(u16);

#[cfg(not(target_arch = "x86_64"))]
fn portable_gemv<T: Element>(
    panels: &[T],
    x: &[f32],
    m: usize,
    k: usize,
    tile: &mut [[[f32; NR]; GEMV_MAX_ROWS]],
) {
    for (p, t) in tile.iter_mut().enumerate() {
        let panel = &panels[p * k * NR..(p + 1) * k * NR];
        for r in 0..m {
            for kk in 0..k {
                let xv = x[r * k + kk];
                for j in 0..NR {
                    t[r][j] += xv * panel[kk * NR + j].to_f32();
                }
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn portable_gemm<T: Element>(a: &[f32], panel: &[T], k: usize, tile: &mut [[f32; NR]; MR]) {
    for kk in 0..k {
        for i in 0..MR {
            let av = a[kk * MR + i];
            for j in 0..NR {
                tile[i][j] += av * panel[kk * NR + j].to_f32();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rnd(n: usize, seed: &mut u32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                *seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
                (*seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect()
    }

    fn reference(x: &[f32], m: usize, w: &[f32], n: usize, k: usize) -> Vec<f32> {
        let mut y = vec![0f32; m * n];
        for r in 0..m {
            for j in 0..n {
                y[r * n + j] = (0..k)
                    .map(|i| x[r * k + i] as f64 * w[j * k + i] as f64)
                    .sum::<f64>() as f32;
            }
        }
        y
    }

    #[test]
    fn products_match_a_plain_loop() {
        if !super::super::packed_kernels_available() {
            eprintln!("no AVX-512: packed kernels are not used on this CPU");
            return;
        }
        let mut seed = 7;
        for &(m, n, k) in &[
            (1, 1, 1),
            (1, 33, 17),
            (2, 64, 1024),
            (4, 100, 3),
            (5, 70, 37),
            (12, 32, 64),
            (13, 65, 129),
            (145, 96, 256),
            (1, 200, 50),
            (2, 300, 64),
            (3, 130, 20),
            (4, 161, 33),
            (13, 65, 600),
            (200, 40, 700),
        ] {
            let x = rnd(m * k, &mut seed);
            let w = rnd(n * k, &mut seed);
            let e = reference(&x, m, &w, n, k);
            let p = PackedMatrix::from_f32(&w, n, k).unwrap();
            let y = p.matmul(&x, m).unwrap();
            for (a, b) in y.iter().zip(&e) {
                assert!(
                    (a - b).abs() < 1e-4 * (1.0 + b.abs()),
                    "f32 {m}x{n}x{k}: {a} vs {b}"
                );
            }
            // bf16 storage: exact products of the bf16-rounded weights.
            let wb: Vec<bf16> = w.iter().map(|&v| bf16::from_f32(v)).collect();
            let wr: Vec<f32> = wb.iter().map(|v| v.to_f32()).collect();
            let e = reference(&x, m, &wr, n, k);
            let p = PackedMatrix::from_bf16(&wb, n, k).unwrap();
            assert!(p.is_bf16());
            let y = p.matmul(&x, m).unwrap();
            for (a, b) in y.iter().zip(&e) {
                assert!(
                    (a - b).abs() < 1e-4 * (1.0 + b.abs()),
                    "bf16 {m}x{n}x{k}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn rows_and_errors() {
        let mut seed = 1;
        let (n, k) = (70, 9);
        let w = rnd(n * k, &mut seed);
        let p = PackedMatrix::from_f32(&w, n, k).unwrap();
        let mut row = vec![0f32; k];
        for r in [0, 31, 32, 69] {
            p.row(r, &mut row).unwrap();
            assert_eq!(row, w[r * k..(r + 1) * k]);
        }
        assert!(p.row(70, &mut row).is_err());
        assert!(PackedMatrix::from_f32(&w, n, k + 1).is_err());
        assert!(p.matmul(&[0.0; 3], 1).is_err());
    }
}
