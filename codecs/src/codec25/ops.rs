//! Building blocks of the 25 Hz codec on channels-first `(B, C, T)` tensors: 1-D convolutions
//! with zero, reflect or replicate padding, transposed convolutions with symmetric padding,
//! SnakeBeta and the anti-aliased (kaiser-sinc up/down-sampled) activation of BigVGAN.

use candle_core::{D, DType, Device, Tensor};

use qwen3_speech_engine::weights::Weights;
use qwen3_speech_engine::{Error, Result};

/// How a convolution pads its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pad {
    Zeros,
    Reflect,
    Replicate,
}

/// Pads the last axis of `x` by `left`/`right` values.
pub fn pad_time(x: &Tensor, left: usize, right: usize, mode: Pad) -> Result<Tensor> {
    if left == 0 && right == 0 {
        return Ok(x.clone());
    }
    let t = x.dim(D::Minus1)?;
    Ok(match mode {
        Pad::Zeros => x.pad_with_zeros(D::Minus1, left, right)?,
        Pad::Replicate => x.pad_with_same(D::Minus1, left, right)?,
        Pad::Reflect => {
            if left >= t || right >= t {
                return Err(Error::InvalidArgument(format!(
                    "reflect padding of {left}/{right} needs more than {t} frames"
                )));
            }
            let mut idx: Vec<u32> = (1..=left).rev().map(|i| i as u32).collect();
            idx.extend((0..t).map(|i| i as u32));
            idx.extend((0..right).map(|i| (t - 2 - i) as u32));
            let idx = Tensor::from_vec(idx, left + t + right, x.device())?;
            x.index_select(&idx, x.rank() - 1)?
        }
    })
}

/// A 1-D convolution (`nn.Conv1d` weight `(out, in / groups, k)`), padding applied explicitly.
#[derive(Debug, Clone)]
pub struct Conv1d {
    weight: Tensor,
    bias: Option<Tensor>,
    pub kernel: usize,
    pub stride: usize,
    pub dilation: usize,
    pub groups: usize,
    pub pad_left: usize,
    pub pad_right: usize,
    pub pad_mode: Pad,
}

impl Conv1d {
    /// Loads `weight`/`bias` under `w`; the padding is given as (left, right, mode).
    #[allow(clippy::too_many_arguments)]
    pub fn load(
        w: &Weights,
        cin: usize,
        cout: usize,
        kernel: usize,
        stride: usize,
        dilation: usize,
        bias: bool,
        pad: (usize, usize, Pad),
    ) -> Result<Self> {
        let weight = w.get((cout, cin, kernel), "weight")?;
        let bias = if bias {
            Some(w.get(cout, "bias")?)
        } else {
            None
        };
        Ok(Conv1d {
            weight,
            bias,
            kernel,
            stride,
            dilation,
            groups: 1,
            pad_left: pad.0,
            pad_right: pad.1,
            pad_mode: pad.2,
        })
    }

    /// "same" padding of PyTorch for stride 1: `d (k - 1)` split with the extra value right.
    pub fn same(dilation: usize, kernel: usize, mode: Pad) -> (usize, usize, Pad) {
        let total = dilation * (kernel - 1);
        (total / 2, total - total / 2, mode)
    }

    /// Symmetric zero padding `(k - 1) d / 2`.
    pub fn sym(dilation: usize, kernel: usize) -> (usize, usize, Pad) {
        let p = dilation * (kernel - 1) / 2;
        (p, p, Pad::Zeros)
    }

    /// Causal zero padding `d (k - 1)` on the left.
    pub fn causal(dilation: usize, kernel: usize) -> (usize, usize, Pad) {
        (dilation * (kernel - 1), 0, Pad::Zeros)
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = pad_time(x, self.pad_left, self.pad_right, self.pad_mode)?;
        let y = if self.kernel == 1 && self.stride == 1 && self.groups == 1 {
            // Pointwise: a matmul (B, Cout, Cin) x (B, Cin, T).
            let (b, _, _) = x.dims3()?;
            let w = self.weight.squeeze(2)?;
            w.unsqueeze(0)?
                .broadcast_as((b, w.dim(0)?, w.dim(1)?))?
                .contiguous()?
                .matmul(&x.contiguous()?)?
        } else {
            x.contiguous()?
                .conv1d(&self.weight, 0, self.stride, self.dilation, self.groups)?
        };
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(&b.reshape((1, (), 1))?)?,
            None => y,
        })
    }
}

/// `nn.ConvTranspose1d(cin, cout, k, stride, padding=(k - stride) / 2)`: output `L * stride`
/// when `k - stride` is even.
#[derive(Debug, Clone)]
pub struct ConvTranspose1d {
    weight: Tensor,
    bias: Tensor,
    stride: usize,
    padding: usize,
}

impl ConvTranspose1d {
    pub fn load(
        w: &Weights,
        cin: usize,
        cout: usize,
        kernel: usize,
        stride: usize,
    ) -> Result<Self> {
        if kernel < stride {
            return Err(Error::Model(format!(
                "transposed conv kernel {kernel} is smaller than its stride {stride}"
            )));
        }
        Ok(ConvTranspose1d {
            weight: w.get((cin, cout, kernel), "weight")?,
            bias: w.get(cout, "bias")?,
            stride,
            padding: (kernel - stride) / 2,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // Unpadded, then cropped by `padding` at each end: the same output as torch's padded
        // transposed conv. (candle's padded output length underflows when
        // `(L - 1) * stride < 2 * padding`, i.e. for one- or two-code inputs.)
        let full = x
            .contiguous()?
            .conv_transpose1d(&self.weight, 0, 0, self.stride, 1, 1)?;
        let len = full.dim(2)? - 2 * self.padding;
        let y = full.narrow(2, self.padding, len)?;
        Ok(y.broadcast_add(&self.bias.reshape((1, (), 1))?)?)
    }
}

/// SnakeBeta with log-scale parameters: `x + sin^2(x e^alpha) / (e^beta + 1e-9)`.
#[derive(Debug, Clone)]
pub struct SnakeBeta {
    alpha: Tensor,
    inv_beta: Tensor,
}

impl SnakeBeta {
    pub fn load(w: &Weights, channels: usize) -> Result<Self> {
        let alpha = w.get(channels, "alpha")?.exp()?.reshape((1, channels, 1))?;
        let beta = w.get(channels, "beta")?.exp()?;
        let inv_beta = ((beta + 1e-9)?.recip()?).reshape((1, channels, 1))?;
        Ok(SnakeBeta { alpha, inv_beta })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let s = x.broadcast_mul(&self.alpha)?.sin()?.sqr()?;
        Ok((x + s.broadcast_mul(&self.inv_beta)?)?)
    }
}

/// The 12-tap kaiser-windowed sinc of BigVGAN's ×2 resampling filters (`kaiser_sinc_filter1d(
/// cutoff 0.25, half_width 0.3, 12)`), computed as the reference does (float32 result).
pub fn kaiser_sinc_taps(cutoff: f64, half_width: f64, kernel: usize) -> Vec<f32> {
    let even = kernel.is_multiple_of(2);
    let half = (kernel / 2) as f64;
    let delta_f = 4.0 * half_width;
    let attenuation = 2.285 * (half - 1.0) * std::f64::consts::PI * delta_f + 7.95;
    let beta = if attenuation > 50.0 {
        0.1102 * (attenuation - 8.7)
    } else if attenuation >= 21.0 {
        0.5842 * (attenuation - 21.0).powf(0.4) + 0.07886 * (attenuation - 21.0)
    } else {
        0.0
    };
    // torch.kaiser_window(N, periodic=False): I0(beta sqrt(1 - (2n/(N-1) - 1)^2)) / I0(beta).
    let n1 = (kernel - 1) as f64;
    let window: Vec<f64> = (0..kernel)
        .map(|n| {
            let r = 2.0 * n as f64 / n1 - 1.0;
            bessel_i0(beta * (1.0 - r * r).max(0.0).sqrt()) / bessel_i0(beta)
        })
        .collect();
    let taps: Vec<f64> = (0..kernel)
        .map(|i| {
            let t = if even {
                i as f64 - half + 0.5
            } else {
                i as f64 - half
            };
            let x = 2.0 * cutoff * t;
            let sinc = if x == 0.0 {
                1.0
            } else {
                (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x)
            };
            2.0 * cutoff * window[i] * sinc
        })
        .collect();
    let sum: f64 = taps.iter().sum();
    taps.iter().map(|v| (v / sum) as f32).collect()
}

fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let q = x * x / 4.0;
    for k in 1..200 {
        term *= q / ((k * k) as f64);
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

/// BigVGAN's anti-aliased activation (`TorchActivation1d`): ×2 kaiser-sinc upsampling
/// (replicate-pad 5, `2 · conv_transpose(stride 2)`, crop 15 each side), SnakeBeta, ×2
/// kaiser-sinc downsampling (replicate-pad 5 left / 6 right, stride-2 FIR). Fused per channel
/// row (one pass, rows in parallel) instead of three grouped convolutions.
#[derive(Debug, Clone)]
pub struct AntiAliasedSnake {
    alpha: Vec<f32>,
    inv_beta: Vec<f32>,
    taps: Vec<f32>,
}

impl AntiAliasedSnake {
    pub fn load(w: &Weights, channels: usize) -> Result<Self> {
        let a = w.pp("act");
        let alpha: Vec<f32> = a.get(channels, "alpha")?.exp()?.to_vec1()?;
        let beta: Vec<f32> = a.get(channels, "beta")?.exp()?.to_vec1()?;
        Ok(AntiAliasedSnake {
            alpha,
            inv_beta: beta.iter().map(|b| 1.0 / (b + 1e-9)).collect(),
            taps: kaiser_sinc_taps(0.25, 0.3, 12),
        })
    }

    fn row(&self, x: &[f32], out: &mut [f32], ch: usize, up: &mut Vec<f32>) {
        let l = x.len();
        let k = self.taps.len(); // 12
        let pad = k / 2 - 1; // 5
        let h = &self.taps;
        let xp = |i: usize| x[i.saturating_sub(pad).min(l - 1)];
        let (alpha, inv_beta) = (self.alpha[ch], self.inv_beta[ch]);
        up.clear();
        let crop = pad * 2 + (k - 2) / 2; // 15
        for kk in 0..2 * l {
            let n = kk + crop;
            let lo = (n + 1 - k).div_ceil(2);
            let hi = n / 2;
            let mut acc = 0f32;
            for i in lo..=hi {
                acc += xp(i) * h[n - 2 * i];
            }
            let u = 2.0 * acc;
            let s = (u * alpha).sin();
            up.push(u + inv_beta * s * s);
        }
        let m = up.len();
        let vp = |i: usize| up[i.saturating_sub(pad).min(m - 1)];
        for (o, y) in out.iter_mut().enumerate() {
            let mut acc = 0f32;
            for (j, &t) in h.iter().enumerate() {
                acc += vp(2 * o + j) * t;
            }
            *y = acc;
        }
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        use rayon::prelude::*;
        let (b, c, l) = x.dims3()?;
        if c != self.alpha.len() {
            return Err(Error::Model(format!(
                "anti-aliased activation of {} channels applied to {c}",
                self.alpha.len()
            )));
        }
        if l == 0 {
            return Ok(x.clone());
        }
        let data: Vec<f32> = x.flatten_all()?.to_vec1()?;
        let mut out = vec![0f32; b * c * l];
        out.par_chunks_mut(l)
            .zip(data.par_chunks(l))
            .enumerate()
            .for_each_init(Vec::new, |up, (row, (o, xi))| self.row(xi, o, row % c, up));
        Ok(Tensor::from_vec(out, (b, c, l), x.device())?)
    }
}

/// LayerNorm over the last axis without affine parameters.
pub fn layer_norm_plain(x: &Tensor, eps: f64) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    Ok(xc.broadcast_div(&(var + eps)?.sqrt()?)?)
}

/// Tanh-approximated GELU (`nn.GELU(approximate="tanh")`).
pub fn gelu_tanh(x: &Tensor) -> Result<Tensor> {
    Ok(x.gelu()?)
}

/// A float tensor from a slice on `device`.
pub fn tensor(v: &[f32], shape: &[usize], device: &Device) -> Result<Tensor> {
    Ok(Tensor::from_slice(v, shape, device)?.to_dtype(DType::F32)?)
}
