//! Convolutions and activations of the 12 Hz codec, on channels-last activations.
//!
//! Every activation here is a 2-D `(time, channels)` tensor of one item. That is the layout the
//! transformers already use, per-channel parameters (SnakeBeta, biases) broadcast over rows, and a
//! convolution becomes one matrix product over im2col rows `[x[t·s], x[t·s+d], …]` (columns
//! ordered tap-major, then input channel).
//!
//! * On a CPU with the engine's packed kernels, im2col rows are built on the host in tiles and
//!   multiplied with the weight packed once at load time ([`PackedMatrix`]); tiles run in
//!   parallel. Depthwise convolutions, SnakeBeta (with a vectorisable sine) and ELU are host
//!   loops.
//! * Elsewhere (CUDA, other CPUs), candle's `conv1d` and tensor ops do the same arithmetic.
//!
//! Transposed convolutions whose kernel is a multiple of the stride (all of this codec's) are
//! rewritten as a causal convolution over input frames that outputs `stride` samples per frame
//! (see [`TransposedConv`]); so every decoder layer is a causal convolution with a small history,
//! and streaming is the same code with the history carried over ([`ConvState`]).

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

use qwen3_speech_engine::kernels::PackedMatrix;
use qwen3_speech_engine::nn::use_packed;
use qwen3_speech_engine::weights::Weights;
use qwen3_speech_engine::{Error, Result};

/// im2col tiles are at most this many bytes.
const TILE_BYTES: usize = 4 << 20;
/// Host loops below this many values stay on the calling thread.
const PARALLEL_MIN: usize = 1 << 14;

/// `(rows, cols)` of a channels-last activation.
fn dims(x: &Tensor) -> Result<(usize, usize)> {
    Ok(x.dims2()?)
}

/// The host copy of a channels-last f32 tensor.
pub(crate) fn host(x: &Tensor) -> Result<Vec<f32>> {
    Ok(x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
}

/// A `(rows, cols)` tensor from host values.
pub(crate) fn from_host(v: Vec<f32>, rows: usize, cols: usize, device: &Device) -> Result<Tensor> {
    Ok(Tensor::from_vec(v, (rows, cols), device)?)
}

// Host loops (im2col, depthwise, SnakeBeta, ELU) run where the packed kernels do, so
// `QWEN3_SPEECH_KERNELS=candle` exercises every tensor-op fallback on the CPU too.

/// A dense 1-D convolution (no padding: callers pad), weight `(cout, cin, k)`.
#[derive(Debug, Clone)]
pub struct Conv1d {
    cin: usize,
    cout: usize,
    kernel: usize,
    dilation: usize,
    stride: usize,
    imp: ConvImpl,
}

#[derive(Debug, Clone)]
enum ConvImpl {
    /// `(cout, k·cin)` panels, columns tap-major; host bias.
    Packed {
        w: Arc<PackedMatrix>,
        bias: Option<Vec<f32>>,
    },
    /// candle `conv1d` weight `(cout, cin, k)` and bias `(cout)`.
    Candle { w: Tensor, bias: Option<Tensor> },
}

impl Conv1d {
    /// From a PyTorch weight `(cout, cin, k)` and optional bias `(cout)`.
    pub fn new(
        weight: Tensor,
        bias: Option<Tensor>,
        stride: usize,
        dilation: usize,
    ) -> Result<Self> {
        let (cout, cin, kernel) = weight.dims3()?;
        if stride == 0 || dilation == 0 || kernel == 0 {
            return Err(Error::Model(
                "convolution with a zero kernel, stride or dilation".into(),
            ));
        }
        let weight = weight.to_dtype(DType::F32)?;
        let bias = bias.map(|b| b.to_dtype(DType::F32)).transpose()?;
        let imp = if use_packed(weight.device()) {
            let w = weight
                .permute((0, 2, 1))?
                .contiguous()?
                .reshape((cout, kernel * cin))?;
            ConvImpl::Packed {
                w: Arc::new(PackedMatrix::from_tensor(&w)?),
                bias: bias.as_ref().map(host).transpose()?,
            }
        } else {
            ConvImpl::Candle { w: weight, bias }
        };
        Ok(Conv1d {
            cin,
            cout,
            kernel,
            dilation,
            stride,
            imp,
        })
    }

    /// Loads `conv.weight` `(cout, cin, k)` (and `conv.bias`) under `w`.
    pub fn load(
        w: &Weights,
        cin: usize,
        cout: usize,
        kernel: usize,
        stride: usize,
        dilation: usize,
        bias: bool,
    ) -> Result<Self> {
        let weight = w.get_as((cout, cin, kernel), "weight", DType::F32)?;
        let bias = if bias {
            Some(w.get_as(cout, "bias", DType::F32)?)
        } else {
            None
        };
        Self::new(weight, bias, stride, dilation)
    }

    pub fn in_channels(&self) -> usize {
        self.cin
    }

    pub fn out_channels(&self) -> usize {
        self.cout
    }

    pub fn stride(&self) -> usize {
        self.stride
    }

    /// `(k - 1)·dilation + 1`.
    pub fn effective_kernel(&self) -> usize {
        (self.kernel - 1) * self.dilation + 1
    }

    /// Output rows of a valid convolution over `rows` input rows.
    pub fn valid_len(&self, rows: usize) -> usize {
        let k = self.effective_kernel();
        if rows < k {
            0
        } else {
            (rows - k) / self.stride + 1
        }
    }

    /// The convolution without padding: `x` `(rows, cin)` → `(valid_len(rows), cout)`.
    pub fn forward_valid(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_prefixed(None, x)
    }

    /// [`Conv1d::forward_valid`] over the rows of `prefix` followed by the rows of `x`, without
    /// concatenating them on the packed path (streaming histories, causal zero padding).
    pub fn forward_prefixed(&self, prefix: Option<&Tensor>, x: &Tensor) -> Result<Tensor> {
        let (rows, cin) = dims(x)?;
        let pre_rows = match prefix {
            Some(p) => {
                let (r, c) = dims(p)?;
                if c != cin {
                    return Err(Error::InvalidArgument(
                        "convolution history of another width".into(),
                    ));
                }
                r
            }
            None => 0,
        };
        if cin != self.cin {
            return Err(Error::InvalidArgument(format!(
                "convolution expects {} input channels, got {cin}",
                self.cin
            )));
        }
        let out_rows = self.valid_len(pre_rows + rows);
        if out_rows == 0 {
            return Ok(Tensor::zeros((0, self.cout), DType::F32, x.device())?);
        }
        match &self.imp {
            ConvImpl::Packed { w, bias } => {
                let y = with_host(x, |xv| match prefix {
                    Some(p) => with_host(p, |pv| {
                        self.packed_forward(w, bias.as_deref(), pv, xv, out_rows)
                    })?,
                    None => self.packed_forward(w, bias.as_deref(), &[], xv, out_rows),
                })??;
                from_host(y, out_rows, self.cout, x.device())
            }
            ConvImpl::Candle { w, bias } => {
                let full = match prefix {
                    Some(p) => Tensor::cat(&[p, x], 0)?,
                    None => x.clone(),
                };
                let xc = full.to_dtype(DType::F32)?.t()?.unsqueeze(0)?.contiguous()?;
                let y = xc.conv1d(w, 0, self.stride, self.dilation, 1)?;
                let y = y.squeeze(0)?.t()?.contiguous()?;
                Ok(match bias {
                    Some(b) => y.broadcast_add(b)?,
                    None => y,
                })
            }
        }
    }

    /// im2col in tiles of output rows (in parallel) and the packed GEMM; input row `r` is row
    /// `r` of `pre` when `r` is below its length, else a row of `x`.
    fn packed_forward(
        &self,
        w: &PackedMatrix,
        bias: Option<&[f32]>,
        pre: &[f32],
        x: &[f32],
        out_rows: usize,
    ) -> Result<Vec<f32>> {
        let (cin, cout, k, d, s) = (self.cin, self.cout, self.kernel, self.dilation, self.stride);
        let width = k * cin;
        let pre_rows = pre.len() / cin;
        let row = |r: usize| -> &[f32] {
            if r < pre_rows {
                &pre[r * cin..(r + 1) * cin]
            } else {
                &x[(r - pre_rows) * cin..(r - pre_rows + 1) * cin]
            }
        };
        let add_bias = |y: &mut [f32]| {
            if let Some(b) = bias {
                for row in y.chunks_mut(cout) {
                    row.iter_mut().zip(b).for_each(|(v, b)| *v += b);
                }
            }
        };
        if k == 1 && s == 1 && pre_rows == 0 {
            let mut y = w.matmul(&x[..out_rows * cin], out_rows)?;
            add_bias(&mut y);
            return Ok(y);
        }
        let im2col = |t0: usize, n: usize| -> Vec<f32> {
            let mut cols = Vec::with_capacity(n * width);
            for r in t0..t0 + n {
                for j in 0..k {
                    cols.extend_from_slice(row(r * s + j * d));
                }
            }
            cols
        };
        let tile = (TILE_BYTES / (4 * width)).clamp(16, 4096);
        if out_rows <= tile {
            let mut y = w.matmul(&im2col(0, out_rows), out_rows)?;
            add_bias(&mut y);
            return Ok(y);
        }
        let mut y = vec![0f32; out_rows * cout];
        y.par_chunks_mut(tile * cout)
            .enumerate()
            .try_for_each(|(ti, out)| -> Result<()> {
                let n = out.len() / cout;
                let mut part = w.matmul(&im2col(ti * tile, n), n)?;
                add_bias(&mut part);
                out.copy_from_slice(&part);
                Ok(())
            })?;
        Ok(y)
    }
}

/// How a Mimi convolution pads (`MimiConv1d.pad_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PadMode {
    Zeros,
    /// Copies of the first/last row (the encoder's downsample).
    Replicate,
}

/// `MimiConv1d` with causal padding: `k_eff - stride` rows on the left and the extra rows on the
/// right that complete the last window (zeros or copies), so the output has `ceil(T / stride)`
/// rows.
#[derive(Debug, Clone)]
pub struct CausalConv {
    conv: Conv1d,
    pad: PadMode,
}

impl CausalConv {
    pub fn new(conv: Conv1d, pad: PadMode) -> Result<Self> {
        if conv.effective_kernel() < conv.stride() {
            return Err(Error::Model(format!(
                "causal convolution with kernel {} below its stride {}",
                conv.effective_kernel(),
                conv.stride()
            )));
        }
        Ok(CausalConv { conv, pad })
    }

    pub fn conv(&self) -> &Conv1d {
        &self.conv
    }

    /// Left and right padding for `rows` input rows (the reference's
    /// `_get_extra_padding_for_conv1d`). With `left = k_eff - stride` its formula reduces to
    /// `right = ceil(rows / stride)·stride - rows`.
    pub fn padding(&self, rows: usize) -> (usize, usize) {
        let (k, s) = (self.conv.effective_kernel(), self.conv.stride());
        (k - s, rows.div_ceil(s) * s - rows)
    }

    /// The whole (offline) convolution of `x` `(rows, cin)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (rows, _) = dims(x)?;
        if rows == 0 {
            return Err(Error::InvalidArgument(
                "convolution of an empty input".into(),
            ));
        }
        let (left, right) = self.padding(rows);
        let xp = match self.pad {
            PadMode::Zeros => x.pad_with_zeros(0, left, right)?,
            PadMode::Replicate => x.pad_with_same(0, left, right)?,
        };
        self.conv.forward_valid(&xp)
    }

    /// The zero-padded causal convolution with the history carried in `state` (a fresh state
    /// is the left zero padding): the streaming form. With stride `s`, `x` needs a multiple of
    /// `s` rows.
    pub fn forward_stream(&self, x: &Tensor, state: &mut ConvState) -> Result<Tensor> {
        if self.pad != PadMode::Zeros {
            return Err(Error::InvalidArgument(
                "only zero-padded convolutions stream".into(),
            ));
        }
        stream(&self.conv, x, state)
    }

    /// The last piece of a stream: `x` (any number of rows) is completed with the reference's
    /// extra right zero padding to a whole number of windows.
    pub fn forward_stream_last(&self, x: &Tensor, state: &mut ConvState) -> Result<Tensor> {
        let (rows, _) = dims(x)?;
        let s = self.conv.stride();
        let extra = rows.div_ceil(s) * s - rows;
        if extra == 0 {
            return self.forward_stream(x, state);
        }
        self.forward_stream(&x.pad_with_zeros(0, 0, extra)?, state)
    }
}

/// The input history of one causal convolution between calls: its last `k_eff - stride` rows.
#[derive(Debug, Clone, Default)]
pub struct ConvState {
    history: Option<Tensor>,
}

/// Runs a causal convolution over the history (zeros on a fresh start, i.e. the reference's
/// left padding of `k_eff - stride` rows) followed by `x`, and keeps the last `k_eff - stride`
/// input rows as the new history. With stride `s`, `x` must hold a multiple of `s` rows (the
/// next window then starts right after it); the output has `rows / s` rows.
fn stream(conv: &Conv1d, x: &Tensor, state: &mut ConvState) -> Result<Tensor> {
    let s = conv.stride();
    let keep = conv.effective_kernel() - s;
    let (rows, cin) = dims(x)?;
    if !rows.is_multiple_of(s) {
        return Err(Error::InvalidArgument(format!(
            "streaming a stride-{s} convolution needs a multiple of {s} rows, got {rows}"
        )));
    }
    if keep == 0 {
        return conv.forward_valid(x);
    }
    let history = match state.history.take() {
        Some(h) => h,
        None => Tensor::zeros((keep, cin), DType::F32, x.device())?,
    };
    let y = conv.forward_prefixed(Some(&history), x)?;
    state.history = Some(if rows >= keep {
        x.narrow(0, rows - keep, keep)?.contiguous()?
    } else {
        Tensor::cat(&[&history.narrow(0, rows, keep - rows)?, x], 0)?
    });
    Ok(y)
}

/// Runs `f` on the values of `x` (f32), without a copy when it is a contiguous CPU tensor.
fn with_host<R>(x: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    if x.dtype() == DType::F32 {
        let (storage, layout) = x.storage_and_layout();
        if let (candle_core::Storage::Cpu(cpu), Some((a, b))) =
            (&*storage, layout.contiguous_offsets())
        {
            return Ok(f(&cpu.as_slice::<f32>()?[a..b]));
        }
    }
    let v = host(x)?;
    Ok(f(&v))
}

/// A transposed convolution with kernel `m·stride` and the causal right trim of
/// `kernel - stride` samples (`Qwen3TTSTokenizerV2CausalTransConvNet`), computed as a causal
/// convolution over input frames: output samples `t·s + i` (`i < s`) are
/// `b + Σ_{j<m} x[t-j] · W[:, :, j·s + i]`, i.e. a `m`-tap convolution to `s·cout` channels
/// followed by interleaving.
#[derive(Debug, Clone)]
pub struct TransposedConv {
    conv: Conv1d,
    stride: usize,
    cout: usize,
}

impl TransposedConv {
    /// Loads a `ConvTranspose1d` weight `(cin, cout, kernel)` and bias `(cout)`.
    pub fn load(
        w: &Weights,
        cin: usize,
        cout: usize,
        kernel: usize,
        stride: usize,
    ) -> Result<Self> {
        let weight = w.get_as((cin, cout, kernel), "weight", DType::F32)?;
        let bias = w.get_as(cout, "bias", DType::F32)?;
        Self::new(&weight, &bias, stride)
    }

    pub fn new(weight: &Tensor, bias: &Tensor, stride: usize) -> Result<Self> {
        let (cin, cout, kernel) = weight.dims3()?;
        if stride == 0 || kernel % stride != 0 {
            return Err(Error::Model(format!(
                "transposed convolution with kernel {kernel} and stride {stride}: the kernel \
                 must be a multiple of the stride"
            )));
        }
        let m = kernel / stride;
        // (cin, cout, m, s) -> taps reversed (tap q uses x[t - (m-1-q)]) -> (s, cout, cin, m).
        let w4 = weight.reshape((cin, cout, m, stride))?;
        let rev: Vec<u32> = (0..m as u32).rev().collect();
        let rev = Tensor::new(rev.as_slice(), weight.device())?;
        let w4 = w4.index_select(&rev, 2)?;
        let w_eq = w4
            .permute((3, 1, 0, 2))?
            .contiguous()?
            .reshape((stride * cout, cin, m))?;
        let b_eq = bias.unsqueeze(0)?.repeat((stride, 1))?.flatten_all()?;
        Ok(TransposedConv {
            conv: Conv1d::new(w_eq, Some(b_eq), 1, 1)?,
            stride,
            cout,
        })
    }

    /// `x` `(T, cin)` → `(T·stride, cout)`, with the input history in `state`.
    pub fn forward_stream(&self, x: &Tensor, state: &mut ConvState) -> Result<Tensor> {
        let (t, _) = dims(x)?;
        let y = stream(&self.conv, x, state)?;
        Ok(y.reshape((t * self.stride, self.cout))?)
    }
}

/// A depthwise causal convolution (`groups = channels`), weight `(C, 1, k)`, with bias.
#[derive(Debug, Clone)]
pub struct DepthwiseConv {
    channels: usize,
    kernel: usize,
    /// `(k, C)`: tap-major.
    taps: Tensor,
    taps_host: Vec<f32>,
    bias: Tensor,
    bias_host: Vec<f32>,
}

impl DepthwiseConv {
    pub fn load(w: &Weights, channels: usize, kernel: usize) -> Result<Self> {
        let weight = w.get_as((channels, 1, kernel), "weight", DType::F32)?;
        let bias = w.get_as(channels, "bias", DType::F32)?;
        let taps = weight.squeeze(1)?.t()?.contiguous()?;
        Ok(DepthwiseConv {
            channels,
            kernel,
            taps_host: host(&taps)?,
            taps,
            bias_host: host(&bias)?,
            bias,
        })
    }

    fn valid(&self, x: &Tensor) -> Result<Tensor> {
        let (rows, c) = dims(x)?;
        let k = self.kernel;
        let out_rows = rows + 1 - k;
        if use_packed(x.device()) {
            let xv = host(x)?;
            let mut y = vec![0f32; out_rows * c];
            let chunk = (PARALLEL_MIN / c.max(1)).max(1) * c;
            y.par_chunks_mut(chunk).enumerate().for_each(|(ci, out)| {
                let r0 = ci * chunk / c;
                for (r, row) in out.chunks_mut(c).enumerate() {
                    row.copy_from_slice(&self.bias_host);
                    for j in 0..k {
                        let src = &xv[(r0 + r + j) * c..(r0 + r + j + 1) * c];
                        let w = &self.taps_host[j * c..(j + 1) * c];
                        for ((o, &v), &w) in row.iter_mut().zip(src).zip(w) {
                            *o += v * w;
                        }
                    }
                }
            });
            return from_host(y, out_rows, c, x.device());
        }
        let mut acc = self
            .bias
            .unsqueeze(0)?
            .broadcast_as((out_rows, c))?
            .contiguous()?;
        for j in 0..k {
            let tap = self.taps.narrow(0, j, 1)?;
            acc = (acc + x.narrow(0, j, out_rows)?.broadcast_mul(&tap)?)?;
        }
        Ok(acc)
    }

    /// Causal: `k - 1` rows of history (zeros on a fresh start).
    pub fn forward_stream(&self, x: &Tensor, state: &mut ConvState) -> Result<Tensor> {
        let keep = self.kernel - 1;
        let (rows, c) = dims(x)?;
        if c != self.channels {
            return Err(Error::InvalidArgument(format!(
                "depthwise convolution expects {} channels, got {c}",
                self.channels
            )));
        }
        let full = match &state.history {
            Some(h) => Tensor::cat(&[h, x], 0)?,
            None => x.pad_with_zeros(0, keep, 0)?,
        };
        if keep > 0 {
            state.history = Some(full.narrow(0, rows, keep)?.contiguous()?);
        }
        self.valid(&full)
    }
}

/// SnakeBeta with log-space parameters: `x + sin²(x·e^α) / (e^β + 1e-9)`, per channel.
#[derive(Debug, Clone)]
pub struct SnakeBeta {
    alpha: Tensor,
    inv_beta: Tensor,
    alpha_host: Vec<f32>,
    inv_beta_host: Vec<f32>,
}

impl SnakeBeta {
    pub fn load(w: &Weights, channels: usize) -> Result<Self> {
        let alpha = w.get_as(channels, "alpha", DType::F32)?;
        let beta = w.get_as(channels, "beta", DType::F32)?;
        // The reference computes exp(alpha), exp(beta) and 1 / (exp(beta) + 1e-9) in f32.
        let alpha_host: Vec<f32> = host(&alpha)?.into_iter().map(f32::exp).collect();
        let inv_beta_host: Vec<f32> = host(&beta)?
            .into_iter()
            .map(|b| 1.0f32 / (b.exp() + 1e-9f32))
            .collect();
        let device = alpha.device().clone();
        Ok(SnakeBeta {
            alpha: Tensor::new(alpha_host.as_slice(), &device)?.unsqueeze(0)?,
            inv_beta: Tensor::new(inv_beta_host.as_slice(), &device)?.unsqueeze(0)?,
            alpha_host,
            inv_beta_host,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (rows, c) = dims(x)?;
        if use_packed(x.device()) {
            let mut v = host(x)?;
            let (a, ib) = (&self.alpha_host, &self.inv_beta_host);
            let chunk = (PARALLEL_MIN / c.max(1)).max(1) * c;
            v.par_chunks_mut(chunk)
                .for_each(|part| snake_rows(part, c, a, ib));
            return from_host(v, rows, c, x.device());
        }
        let s = x.broadcast_mul(&self.alpha)?.sin()?;
        Ok((x + s.sqr()?.broadcast_mul(&self.inv_beta)?)?)
    }
}

/// Largest |x·α| the fast sine below handles; larger arguments use `f32::sin`.
const FAST_SIN_MAX: f32 = 8192.0;

/// `sin²(y)` for `|y| <= FAST_SIN_MAX`, written so the compiler vectorises it: `y = kπ + r` with
/// a four-part π (Cody–Waite, exact products for `|k| < 2^12`), then the degree-11 Taylor
/// polynomial of `sin r` on `|r| <= π/2` (truncation error below 6e-8). The sign of `sin` is
/// irrelevant for its square. Differs from a correctly rounded `sin` by a few ulp.
#[inline(always)]
fn sin_sq_reduced(y: f32) -> f32 {
    const INV_PI: f32 = std::f32::consts::FRAC_1_PI;
    const PI_A: f32 = 3.140625;
    const PI_B: f32 = 1014.0 / 1_048_576.0;
    const PI_C: f32 = 2696.0 / 4_294_967_296.0;
    const PI_D: f32 = 1.215_420_1e-10;
    // Round to nearest (ties to even) with the 1.5·2^23 trick: vectorises without SSE4.1.
    const ROUND: f32 = 12_582_912.0;
    let k = (y * INV_PI + ROUND) - ROUND;
    let r = (((y - k * PI_A) - k * PI_B) - k * PI_C) - k * PI_D;
    let r2 = r * r;
    let p = -2.505_210_8e-8f32;
    let p = p * r2 + 2.755_731_9e-6;
    let p = p * r2 - 1.984_127e-4;
    let p = p * r2 + 8.333_333e-3;
    let p = p * r2 - 1.666_666_7e-1;
    let s = r + r * r2 * p;
    s * s
}

/// One row of SnakeBeta in place: `x + inv_beta · sin²(x·α)`.
#[inline(always)]
fn snake_row(row: &mut [f32], alpha: &[f32], inv_beta: &[f32]) {
    let peak = row
        .iter()
        .zip(alpha)
        .fold(0f32, |m, (x, a)| m.max((x * a).abs()));
    if peak <= FAST_SIN_MAX {
        for ((x, &a), &ib) in row.iter_mut().zip(alpha).zip(inv_beta) {
            *x += ib * sin_sq_reduced(*x * a);
        }
    } else {
        // Huge (or non-finite) arguments: the libm sine.
        for ((x, &a), &ib) in row.iter_mut().zip(alpha).zip(inv_beta) {
            let s = (*x * a).sin();
            *x += ib * (s * s);
        }
    }
}

/// SnakeBeta over rows of `c` channels, compiled for AVX-512 (the host paths only run where the
/// packed kernels do, which need it).
fn snake_rows(part: &mut [f32], c: usize, alpha: &[f32], inv_beta: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        fn rows(part: &mut [f32], c: usize, alpha: &[f32], inv_beta: &[f32]) {
            for row in part.chunks_mut(c) {
                snake_row(row, alpha, inv_beta);
            }
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked just above).
            unsafe { rows(part, c, alpha, inv_beta) };
            return;
        }
    }
    for row in part.chunks_mut(c) {
        snake_row(row, alpha, inv_beta);
    }
}

/// `exp(x) - 1` for `x <= 0`, vectorisable: `exp(x) = 2^n · e^r` with `n = round(x·log2 e)`,
/// `r = x - n·ln 2` (two-part ln 2), a degree-7 polynomial for `e^r - 1` on `|r| <= ln2/2`, and
/// `2^n` from the exponent bits. Absolute error below 1e-7 (the reference's `exp(x) - 1` in f32 has
/// the same order); `x < -87` gives -1.
#[inline(always)]
fn expm1_nonpositive(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUND: f32 = 12_582_912.0;
    let x = x.max(-87.0);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    // e^r - 1 = r + r²/2 + r³/6 + … (Taylor to r^7 on |r| <= 0.347: error < 2e-9).
    let p = 1.0 / 5040.0f32;
    let p = p * r + 1.0 / 720.0;
    let p = p * r + 1.0 / 120.0;
    let p = p * r + 1.0 / 24.0;
    let p = p * r + 1.0 / 6.0;
    let p = p * r + 0.5;
    let em1 = r + r * r * p;
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    // 2^n·(e^r - 1) + (2^n - 1)
    em1 * scale + (scale - 1.0)
}

fn elu_slice(part: &mut [f32]) {
    #[inline(always)]
    fn body(part: &mut [f32]) {
        for x in part {
            let e = expm1_nonpositive(x.min(0.0));
            *x = if *x > 0.0 { *x } else { e };
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        fn wide(part: &mut [f32]) {
            body(part)
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked just above).
            unsafe { wide(part) };
            return;
        }
    }
    body(part)
}

/// ELU with α = 1 (`nn.ELU()`).
pub fn elu(x: &Tensor) -> Result<Tensor> {
    let (rows, c) = dims(x)?;
    if use_packed(x.device()) {
        let mut v = host(x)?;
        v.par_chunks_mut(PARALLEL_MIN).for_each(elu_slice);
        return from_host(v, rows, c, x.device());
    }
    Ok(x.elu(1.0)?)
}

/// Channel-wise scale (`LayerScale`, ConvNeXt `gamma`): `x · scale` over rows.
pub fn scale_channels(x: &Tensor, scale: &Tensor) -> Result<Tensor> {
    Ok(x.broadcast_mul(&scale.unsqueeze(0)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn rand(shape: (usize, usize, usize), seed: u64) -> Tensor {
        let n = shape.0 * shape.1 * shape.2;
        let v: Vec<f32> = (0..n)
            .map(|i| (((i as u64 * 2654435761 + seed * 97) % 1000) as f32 / 500.0) - 1.0)
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        assert_eq!(a.dims(), b.dims());
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    /// candle's channels-first conv1d on a channels-last input, as the reference computes it.
    fn reference_conv(
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        stride: usize,
        dilation: usize,
    ) -> Tensor {
        let y = x
            .t()
            .unwrap()
            .unsqueeze(0)
            .unwrap()
            .contiguous()
            .unwrap()
            .conv1d(w, 0, stride, dilation, 1)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .t()
            .unwrap();
        y.broadcast_add(b).unwrap()
    }

    #[test]
    fn im2col_conv_matches_candle() {
        for (cin, cout, k, stride, dilation, rows) in [
            (3, 5, 7, 1, 1, 40),
            (4, 6, 3, 1, 3, 50),
            (2, 9, 8, 4, 1, 37),
            (5, 4, 1, 1, 1, 11),
        ] {
            let w = rand((cout, cin, k), 1);
            let b = rand((1, 1, cout), 2).flatten_all().unwrap();
            let x = rand((1, rows, cin), 3).squeeze(0).unwrap();
            let conv = Conv1d::new(w.clone(), Some(b.clone()), stride, dilation).unwrap();
            let y = conv.forward_valid(&x).unwrap();
            let e = reference_conv(&x, &w, &b, stride, dilation);
            assert!(max_diff(&y, &e) < 1e-4, "k{k} s{stride} d{dilation}");
        }
    }

    #[test]
    fn mimi_padding_rule() {
        // k = 2s with stride s: left s, right completes ceil(T/s) windows.
        let w = rand((2, 1, 8), 1);
        let conv = CausalConv::new(Conv1d::new(w, None, 4, 1).unwrap(), PadMode::Zeros).unwrap();
        assert_eq!(conv.padding(10), (4, 2));
        assert_eq!(conv.padding(12), (4, 0));
        assert_eq!(conv.padding(1), (4, 3));
        let x = rand((1, 10, 1), 4).squeeze(0).unwrap();
        assert_eq!(conv.forward(&x).unwrap().dims(), &[3, 2]);
        // stride 1, dilation 3, k3: left 6, right 0.
        let conv = CausalConv::new(
            Conv1d::new(rand((2, 1, 3), 1), None, 1, 3).unwrap(),
            PadMode::Zeros,
        )
        .unwrap();
        assert_eq!(conv.padding(5), (6, 0));
    }

    #[test]
    fn transposed_conv_matches_definition() {
        let (cin, cout, s) = (3, 2, 3);
        for m in [1, 2] {
            let k = m * s;
            let w = rand((cin, cout, k), 5);
            let b = rand((1, 1, cout), 6).flatten_all().unwrap();
            let x = rand((1, 7, cin), 7).squeeze(0).unwrap();
            let tc = TransposedConv::new(&w, &b, s).unwrap();
            let y = tc.forward_stream(&x, &mut ConvState::default()).unwrap();
            // Direct definition: full transposed conv, then drop the last k - s samples.
            let xv = x.to_vec2::<f32>().unwrap();
            let wv = w.to_vec3::<f32>().unwrap();
            let bv = b.to_vec1::<f32>().unwrap();
            let full = (7 - 1) * s + k;
            let mut e = vec![vec![0f32; cout]; full];
            for (t, row) in xv.iter().enumerate() {
                for (ci, &v) in row.iter().enumerate() {
                    for co in 0..cout {
                        for kk in 0..k {
                            e[t * s + kk][co] += v * wv[ci][co][kk];
                        }
                    }
                }
            }
            let yv = y.to_vec2::<f32>().unwrap();
            assert_eq!(yv.len(), 7 * s);
            for (t, row) in yv.iter().enumerate() {
                for co in 0..cout {
                    assert!((row[co] - e[t][co] - bv[co]).abs() < 1e-5, "m{m} t{t}");
                }
            }
        }
    }

    #[test]
    fn streaming_equals_offline() {
        let w = rand((4, 3, 7), 8);
        let b = rand((1, 1, 4), 9).flatten_all().unwrap();
        let conv = CausalConv::new(Conv1d::new(w, Some(b), 1, 3).unwrap(), PadMode::Zeros).unwrap();
        let x = rand((1, 30, 3), 10).squeeze(0).unwrap();
        let full = conv.forward(&x).unwrap();
        let mut st = ConvState::default();
        let mut parts = Vec::new();
        for (a, n) in [(0, 1), (1, 13), (14, 2), (16, 14)] {
            parts.push(
                conv.forward_stream(&x.narrow(0, a, n).unwrap(), &mut st)
                    .unwrap(),
            );
        }
        let streamed = Tensor::cat(&parts, 0).unwrap();
        assert!(max_diff(&full, &streamed) < 1e-5);
    }

    #[test]
    fn fast_sine_square() {
        let mut worst = 0f64;
        for i in -200_000..200_000 {
            let y = i as f32 * 0.0407;
            let e = (y as f64).sin().powi(2);
            worst = worst.max((sin_sq_reduced(y) as f64 - e).abs());
        }
        assert!(worst < 4e-7, "worst {worst:e}");
        // Large and non-finite arguments take the libm path.
        let mut row = [1.0e6f32, 2.0, f32::NAN];
        snake_row(&mut row, &[1.0, 1.0, 1.0], &[1.0, 1.0, 1.0]);
        assert_eq!(row[0], 1.0e6 + (1.0e6f32).sin().powi(2));
        assert!((row[1] - (2.0 + 2f32.sin().powi(2))).abs() < 1e-6);
        assert!(row[2].is_nan());
    }

    #[test]
    fn fast_expm1() {
        let mut worst = 0f64;
        for i in 0..100_000 {
            let x = -(i as f32) * 0.001;
            let e = (x as f64).exp_m1();
            worst = worst.max((expm1_nonpositive(x) as f64 - e).abs());
        }
        assert!(worst < 2e-7, "worst {worst:e}");
        assert_eq!(expm1_nonpositive(-1000.0), -1.0);
        assert_eq!(expm1_nonpositive(0.0), 0.0);
        let mut v = vec![1.5f32, -0.25, 0.0, -3.0];
        elu_slice(&mut v);
        assert_eq!(v[0], 1.5);
        assert!((v[1] - (-0.25f32).exp_m1()).abs() < 1e-7);
        assert!((v[3] - (-3f32).exp_m1()).abs() < 1e-7);
    }

    #[test]
    fn strided_streaming_equals_offline() {
        let w = rand((3, 2, 8), 11);
        let b = rand((1, 1, 3), 12).flatten_all().unwrap();
        let conv = CausalConv::new(Conv1d::new(w, Some(b), 4, 1).unwrap(), PadMode::Zeros).unwrap();
        let x = rand((1, 37, 2), 13).squeeze(0).unwrap();
        let full = conv.forward(&x).unwrap();
        let mut st = ConvState::default();
        let mut parts = vec![
            conv.forward_stream(&x.narrow(0, 0, 8).unwrap(), &mut st)
                .unwrap(),
            conv.forward_stream(&x.narrow(0, 8, 24).unwrap(), &mut st)
                .unwrap(),
        ];
        assert!(
            conv.forward_stream(&x.narrow(0, 32, 5).unwrap(), &mut st.clone())
                .is_err()
        );
        parts.push(
            conv.forward_stream_last(&x.narrow(0, 32, 5).unwrap(), &mut st)
                .unwrap(),
        );
        let streamed = Tensor::cat(&parts, 0).unwrap();
        assert_eq!(streamed.dims(), full.dims());
        assert!(max_diff(&full, &streamed) < 1e-5);
    }

    #[test]
    fn snake_and_elu() {
        let dev = Device::Cpu;
        let mut src = qwen3_speech_engine::weights::MemorySource::new();
        src.insert("alpha", Tensor::new(&[0.5f32, -0.3], &dev).unwrap());
        src.insert("beta", Tensor::new(&[0.1f32, 0.2], &dev).unwrap());
        let w = Weights::new(Arc::new(src), &dev, DType::F32);
        let snake = SnakeBeta::load(&w, 2).unwrap();
        let x = Tensor::new(&[[1.5f32, -2.0], [0.0, 3.0]], &dev).unwrap();
        let y = snake.forward(&x).unwrap().to_vec2::<f32>().unwrap();
        let f = |x: f32, a: f32, b: f32| x + (x * a.exp()).sin().powi(2) / (b.exp() + 1e-9);
        assert!((y[0][0] - f(1.5, 0.5, 0.1)).abs() < 1e-6);
        assert!((y[1][1] - f(3.0, -0.3, 0.2)).abs() < 1e-6);
        let e = elu(&x).unwrap().to_vec2::<f32>().unwrap();
        assert!((e[0][1] - ((-2.0f32).exp() - 1.0)).abs() < 1e-6);
        assert_eq!(e[0][0], 1.5);
    }
}
