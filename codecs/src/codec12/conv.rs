//! Convolutions and activations of the 12 Hz codec, on channels-last activations.
//!
//! Every activation here is a 2-D `(time, channels)` tensor of one item. That is the layout the
//! transformers already use, per-channel parameters (SnakeBeta, biases) broadcast over rows, and a
//! convolution becomes one matrix product over im2col rows `[x[t·s], x[t·s+d], …]` (columns
//! ordered tap-major, then input channel).
//!
//! * On a CPU with the engine's packed kernels, im2col rows are built on the host in tiles and
//!   multiplied with the weight packed once at load time ([`PackedMatrix`]); tiles run in
//!   parallel. Depthwise convolutions and SnakeBeta are host loops.
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
        let (rows, cin) = dims(x)?;
        if cin != self.cin {
            return Err(Error::InvalidArgument(format!(
                "convolution expects {} input channels, got {cin}",
                self.cin
            )));
        }
        let out_rows = self.valid_len(rows);
        if out_rows == 0 {
            return Ok(Tensor::zeros((0, self.cout), DType::F32, x.device())?);
        }
        match &self.imp {
            ConvImpl::Packed { w, bias } => {
                let xv = host(x)?;
                let y = self.packed_forward(w, bias.as_deref(), &xv, out_rows);
                from_host(y?, out_rows, self.cout, x.device())
            }
            ConvImpl::Candle { w, bias } => {
                let xc = x.to_dtype(DType::F32)?.t()?.unsqueeze(0)?.contiguous()?;
                let y = xc.conv1d(w, 0, self.stride, self.dilation, 1)?;
                let y = y.squeeze(0)?.t()?.contiguous()?;
                Ok(match bias {
                    Some(b) => y.broadcast_add(b)?,
                    None => y,
                })
            }
        }
    }

    fn packed_forward(
        &self,
        w: &PackedMatrix,
        bias: Option<&[f32]>,
        x: &[f32],
        out_rows: usize,
    ) -> Result<Vec<f32>> {
        let (cin, cout, k, d, s) = (self.cin, self.cout, self.kernel, self.dilation, self.stride);
        let width = k * cin;
        let add_bias = |y: &mut [f32]| {
            if let Some(b) = bias {
                for row in y.chunks_mut(cout) {
                    row.iter_mut().zip(b).for_each(|(v, b)| *v += b);
                }
            }
        };
        if k == 1 && s == 1 {
            let mut y = w.matmul(&x[..out_rows * cin], out_rows)?;
            add_bias(&mut y);
            return Ok(y);
        }
        let tile = (TILE_BYTES / (4 * width)).clamp(16, 4096);
        let mut y = vec![0f32; out_rows * cout];
        y.par_chunks_mut(tile * cout)
            .enumerate()
            .try_for_each(|(ti, out)| -> Result<()> {
                let t0 = ti * tile;
                let n = out.len() / cout;
                let mut cols = vec![0f32; n * width];
                for (r, dst) in cols.chunks_mut(width).enumerate() {
                    let base = (t0 + r) * s;
                    for j in 0..k {
                        let src = (base + j * d) * cin;
                        dst[j * cin..(j + 1) * cin].copy_from_slice(&x[src..src + cin]);
                    }
                }
                let mut part = w.matmul(&cols, n)?;
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

    /// Stride-1 zero-padded causal convolution with the history carried in `state`
    /// (`None`: a fresh start, i.e. zero padding): the decoder's streaming form.
    pub fn forward_stream(&self, x: &Tensor, state: &mut ConvState) -> Result<Tensor> {
        stream(&self.conv, x, state, |xf| self.conv.forward_valid(xf))
    }
}

/// The input history of one causal convolution between calls: its last `k_eff - 1` rows.
#[derive(Debug, Clone, Default)]
pub struct ConvState {
    history: Option<Tensor>,
}

/// Prepends the history (or zeros), runs `valid`, keeps the new history.
fn stream(
    conv: &Conv1d,
    x: &Tensor,
    state: &mut ConvState,
    valid: impl FnOnce(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    if conv.stride() != 1 {
        return Err(Error::InvalidArgument(
            "streaming needs a stride-1 convolution".into(),
        ));
    }
    let keep = conv.effective_kernel() - 1;
    let (rows, _) = dims(x)?;
    let full = match (&state.history, keep) {
        (_, 0) => x.clone(),
        (Some(h), _) => Tensor::cat(&[h, x], 0)?,
        (None, _) => x.pad_with_zeros(0, keep, 0)?,
    };
    let total = rows + keep;
    if keep > 0 {
        state.history = Some(full.narrow(0, total - keep, keep)?.contiguous()?);
    }
    valid(&full)
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
        let y = stream(&self.conv, x, state, |xf| self.conv.forward_valid(xf))?;
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
        if x.device().is_cpu() {
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
        if x.device().is_cpu() {
            let mut v = host(x)?;
            let (a, ib) = (&self.alpha_host, &self.inv_beta_host);
            let chunk = (PARALLEL_MIN / c.max(1)).max(1) * c;
            v.par_chunks_mut(chunk).for_each(|part| {
                for row in part.chunks_mut(c) {
                    for ((x, &a), &ib) in row.iter_mut().zip(a).zip(ib) {
                        let s = (*x * a).sin();
                        *x += ib * (s * s);
                    }
                }
            });
            return from_host(v, rows, c, x.device());
        }
        let s = x.broadcast_mul(&self.alpha)?.sin()?;
        Ok((x + s.sqr()?.broadcast_mul(&self.inv_beta)?)?)
    }
}

/// ELU with α = 1 (`nn.ELU()`).
pub fn elu(x: &Tensor) -> Result<Tensor> {
    let (rows, c) = dims(x)?;
    if x.device().is_cpu() {
        let mut v = host(x)?;
        v.par_chunks_mut(PARALLEL_MIN).for_each(|part| {
            for x in part {
                if *x <= 0.0 {
                    *x = x.exp_m1();
                }
            }
        });
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
