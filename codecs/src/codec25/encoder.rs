//! The 25 Hz encoder (`encoder.tokenizer.*`, WhisperEncoderVQ up to its VQ layer): 16 kHz audio
//! → one code per `160 · 2 · audio_vq_ds_rate` samples.
//!
//! 1. [`utterance_mel`]: right-pad to a multiple of the code hop, Whisper log-mel (n_fft 400,
//!    hop 160, 128 librosa Slaney mels, drop the last STFT frame, floor at the *utterance* max
//!    − 8, `(x + 4) / 4`).
//! 2. Conv front end per chunk of `2 · n_window` mel frames (zero padding at each chunk edge):
//!    GELU(conv1 k3 p1), GELU(conv2 k3 s2 p1), plus sinusoid positions restarting per chunk.
//! 3. Pre-LN transformer blocks (query/value/out with bias, key without) with attention inside
//!    windows of `n_window` post-conv frames (the chunks), up to block `audio_vq_layers`.
//!    Reference quirk, reproduced: its fp32 attention pads every window to the longest one and
//!    builds the padding mask with `masked_fill` on a *boolean* tensor, so the mask is all true
//!    and only adds a constant 1 to every score. A shorter (last) window therefore also attends
//!    to the padding: zero keys (score 0) with zero values, which take part of the softmax mass.
//!    (In a batch the longest window spans all items; [`Encoder::encode`] is one utterance.)
//! 4. `audio_vq_downsample` (conv k = s = `audio_vq_ds_rate`) and the nearest codebook entry:
//!    `argmax(2 x·e − |e|²)` (the `|x|²` term is the same for every entry), one matmul, first
//!    maximum wins as in torch.

use std::sync::Arc;

use candle_core::Tensor;
use realfft::{RealFftPlanner, RealToComplex};

use qwen3_speech_engine::audio::mel::{WhisperFilterBank, WhisperMel, WhisperMelConfig};
use qwen3_speech_engine::nn::{LayerNorm, Linear, gelu_erf};
use qwen3_speech_engine::weights::Weights;
use qwen3_speech_engine::{Error, Result};

use super::config::EncoderConfig;
use super::ops::{Conv1d, Pad};

/// A real-input DFT of fixed size with f64 accumulation (one plan per size).
pub(crate) struct Dft {
    plan: Arc<dyn RealToComplex<f64>>,
    input: Vec<f64>,
    pub(crate) spectrum: Vec<realfft::num_complex::Complex<f64>>,
    scratch: Vec<realfft::num_complex::Complex<f64>>,
}

impl Dft {
    pub(crate) fn new(n: usize) -> Self {
        let plan = RealFftPlanner::<f64>::new().plan_fft_forward(n);
        let spectrum = plan.make_output_vec();
        let scratch = plan.make_scratch_vec();
        Dft {
            input: vec![0.0; n],
            plan,
            spectrum,
            scratch,
        }
    }

    /// Transforms `frame · window` (both of the plan's size).
    pub(crate) fn run(&mut self, frame: &[f32], window: &[f32]) -> Result<()> {
        for ((d, &x), &w) in self.input.iter_mut().zip(frame).zip(window) {
            *d = f64::from(x) * f64::from(w);
        }
        self.plan
            .process_with_scratch(&mut self.input, &mut self.spectrum, &mut self.scratch)
            .map_err(|e| Error::Audio(format!("FFT failed: {e}")))
    }
}

/// Reflect padding of a signal (numpy/torch "reflect": the edge sample is not repeated).
pub(crate) fn reflect_pad(x: &[f32], left: usize, right: usize) -> Result<Vec<f32>> {
    let n = x.len();
    if n <= left.max(right) {
        return Err(Error::Audio(format!(
            "audio of {n} samples is too short for reflect padding of {}",
            left.max(right)
        )));
    }
    let mut out = Vec::with_capacity(n + left + right);
    out.extend((1..=left).rev().map(|i| x[i]));
    out.extend_from_slice(x);
    out.extend((0..right).map(|i| x[n - 2 - i]));
    Ok(out)
}

/// The encoder's log-mel of one utterance, `(n_mels, frames)` row-major, `frames` = padded
/// length / 160. The audio is right-padded with zeros to a multiple of `pad_multiple`, then
/// goes through the engine's Whisper front end ([`WhisperMel`]) configured as the reference's
/// `get_mel_audio`: librosa's filter bank (its bundled `mel_filters.npz`), the STFT magnitude
/// rounded to f32 before squaring (torch's `stft.abs() ** 2`), and the floor at the
/// *utterance* maximum − 8.
pub fn utterance_mel(
    samples: &[f32],
    pad_multiple: usize,
    n_mels: usize,
) -> Result<(Vec<f32>, usize)> {
    if samples.is_empty() {
        return Err(Error::Audio("no audio samples to encode".into()));
    }
    if pad_multiple == 0 {
        return Err(Error::InvalidArgument(
            "the encoder's padding multiple must be positive".into(),
        ));
    }
    let padded_len = samples.len().div_ceil(pad_multiple) * pad_multiple;
    let mut wav = samples.to_vec();
    wav.resize(padded_len, 0.0);
    let mut front_end = WhisperMel::with_config(WhisperMelConfig {
        n_mels,
        filter_bank: WhisperFilterBank::Librosa,
        f32_magnitude: true,
    })?;
    let mel = front_end.compute(&wav)?;
    Ok((mel.data, mel.n_frames))
}

#[derive(Debug, Clone)]
struct Block {
    attn_ln: LayerNorm,
    query: Linear,
    key: Linear,
    value: Linear,
    out: Linear,
    mlp_ln: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

/// The encoder up to the VQ.
#[derive(Debug, Clone)]
pub struct Encoder {
    cfg: EncoderConfig,
    conv1: Conv1d,
    conv2: Conv1d,
    positions: Tensor,
    blocks: Vec<Block>,
    downsample: Conv1d,
    /// Codebook `(size, dim)` and `|e|²` `(size)`.
    codebook: Tensor,
    codebook_sq: Tensor,
}

impl Encoder {
    /// Loads `encoder.tokenizer.*` (pass `w` at that prefix).
    pub fn load(w: &Weights, cfg: &EncoderConfig) -> Result<Self> {
        let d = cfg.n_state;
        let conv1 = Conv1d::load(
            &w.pp("conv1"),
            cfg.n_mels,
            d,
            3,
            1,
            1,
            true,
            (1, 1, Pad::Zeros),
        )?;
        let conv2 = Conv1d::load(&w.pp("conv2"), d, d, 3, 2, 1, true, (1, 1, Pad::Zeros))?;
        let positions = w.get((cfg.n_ctx, d), "positional_embedding")?;
        let blocks = (0..cfg.audio_vq_layers)
            .map(|i| {
                let b = w.pp(format!("blocks.{i}"));
                Ok(Block {
                    attn_ln: LayerNorm::load(&b.pp("attn_ln"), d, 1e-5)?,
                    query: Linear::load(&b.pp("attn.query"), d, d, true)?,
                    key: Linear::load(&b.pp("attn.key"), d, d, false)?,
                    value: Linear::load(&b.pp("attn.value"), d, d, true)?,
                    out: Linear::load(&b.pp("attn.out"), d, d, true)?,
                    mlp_ln: LayerNorm::load(&b.pp("mlp_ln"), d, 1e-5)?,
                    fc1: Linear::load(&b.pp("mlp.0"), d, 4 * d, true)?,
                    fc2: Linear::load(&b.pp("mlp.2"), 4 * d, d, true)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let s = cfg.audio_vq_ds_rate;
        let downsample = Conv1d::load(
            &w.pp("audio_vq_downsample"),
            d,
            d,
            s,
            s,
            1,
            true,
            (0, 0, Pad::Zeros),
        )?;
        let codebook = w
            .get(
                (1, cfg.audio_vq_codebook_size, d),
                "audio_quantizer.rvqs.0.embed",
            )?
            .squeeze(0)?;
        let codebook_sq = codebook.sqr()?.sum(1)?;
        Ok(Encoder {
            cfg: cfg.clone(),
            conv1,
            conv2,
            positions,
            blocks,
            downsample,
            codebook,
            codebook_sq,
        })
    }

    /// Mel `(n_mels, frames)` → packed post-conv features `(N, D)` and the window lengths.
    pub fn front_end(&self, mel: &Tensor) -> Result<(Tensor, Vec<usize>)> {
        let frames = mel.dim(1)?;
        let chunk = 2 * self.cfg.n_window;
        let mut parts = Vec::new();
        let mut windows = Vec::new();
        let full = frames / chunk;
        let run = |x: &Tensor| -> Result<Tensor> {
            let h = gelu_erf(&self.conv1.forward(x)?)?;
            let h = gelu_erf(&self.conv2.forward(&h)?)?; // (n, D, c/2)
            let n = h.dim(2)?;
            if n > self.cfg.n_ctx {
                return Err(Error::Model(format!(
                    "a window of {n} frames exceeds the {} positions of the encoder",
                    self.cfg.n_ctx
                )));
            }
            Ok(h.transpose(1, 2)?
                .broadcast_add(&self.positions.narrow(0, 0, n)?.unsqueeze(0)?)?)
        };
        if full > 0 {
            let x = mel
                .narrow(1, 0, full * chunk)?
                .reshape((mel.dim(0)?, full, chunk))?
                .transpose(0, 1)?
                .contiguous()?;
            let h = run(&x)?; // (full, n_window, D)
            let n = h.dim(1)?;
            windows.extend(std::iter::repeat_n(n, full));
            parts.push(h.reshape((full * n, ()))?);
        }
        let rest = frames - full * chunk;
        if rest > 0 {
            let x = mel
                .narrow(1, full * chunk, rest)?
                .unsqueeze(0)?
                .contiguous()?;
            let h = run(&x)?.squeeze(0)?;
            let n = h.dim(0)?;
            // The reference cuts attention windows from the packed length, n_window at a time.
            windows.push(n);
            parts.push(h);
        }
        Ok((Tensor::cat(&parts, 0)?, windows))
    }

    fn attention(&self, b: &Block, x: &Tensor, windows: &[usize]) -> Result<Tensor> {
        let h = self.cfg.n_head;
        let d = self.cfg.n_state;
        let hd = d / h;
        let q = b.query.forward(x)?;
        let k = b.key.forward(x)?;
        let v = b.value.forward(x)?;
        let scale = (hd as f64).powf(-0.5);
        let longest = windows.iter().copied().max().unwrap_or(0);
        let mut outs = Vec::new();
        let mut start = 0;
        // Group equal windows into one batched product.
        let mut i = 0;
        while i < windows.len() {
            let w = windows[i];
            let mut j = i;
            while j < windows.len() && windows[j] == w {
                j += 1;
            }
            let nb = j - i;
            let split = |t: &Tensor| -> Result<Tensor> {
                Ok(t.narrow(0, start, nb * w)?
                    .reshape((nb, w, h, hd))?
                    .transpose(1, 2)?
                    .contiguous()?)
            };
            let (qs, ks, vs) = (split(&q)?, split(&k)?, split(&v)?);
            let mut att = (qs.matmul(&ks.transpose(2, 3)?.contiguous()?)? * scale)?;
            if w < longest {
                // The reference's padding mask is a no-op (see the module docs): a shorter window
                // also attends to `longest - w` zero keys (score 0) whose values are zero.
                let pad = Tensor::zeros((nb, h, w, longest - w), att.dtype(), att.device())?;
                att = Tensor::cat(&[&att, &pad], 3)?;
            }
            let att = candle_nn::ops::softmax_last_dim(&att)?;
            let att = if w < longest {
                att.narrow(3, 0, w)?.contiguous()?
            } else {
                att
            };
            let o = att.matmul(&vs)?.transpose(1, 2)?.reshape((nb * w, d))?;
            outs.push(o);
            start += nb * w;
            i = j;
        }
        b.out.forward(&Tensor::cat(&outs, 0)?)
    }

    /// Packed features through the blocks up to the VQ layer.
    pub fn blocks(&self, mut x: Tensor, windows: &[usize]) -> Result<Tensor> {
        for b in &self.blocks {
            let a = self.attention(b, &b.attn_ln.forward(&x)?, windows)?;
            x = (x + a)?;
            let m = b
                .fc2
                .forward(&gelu_erf(&b.fc1.forward(&b.mlp_ln.forward(&x)?)?)?)?;
            x = (x + m)?;
        }
        Ok(x)
    }

    /// `audio_vq_downsample` over the packed sequence: `(N, D)` → `(N / ds, D)`.
    pub fn downsample(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.downsample.forward(&x.t()?.unsqueeze(0)?)?;
        Ok(y.squeeze(0)?.t()?.contiguous()?)
    }

    /// Nearest codebook entries of `(N, D)` vectors: one matmul against the codebook per block
    /// of rows (bounded memory for long audio), first maximum wins.
    pub fn nearest(&self, x: &Tensor) -> Result<Vec<u32>> {
        const ROWS: usize = 256;
        let n = x.dim(0)?;
        let cb_t = self.codebook.t()?;
        let sq = self.codebook_sq.unsqueeze(0)?;
        let mut out = Vec::with_capacity(n);
        let mut start = 0;
        while start < n {
            let len = ROWS.min(n - start);
            let dots = x.narrow(0, start, len)?.matmul(&cb_t)?; // (len, size)
            let score = (dots * 2.0)?.broadcast_sub(&sq)?;
            for r in score.to_vec2::<f32>()? {
                let mut best = 0usize;
                for (i, &v) in r.iter().enumerate() {
                    if v > r[best] {
                        best = i;
                    }
                }
                out.push(best as u32);
            }
            start += len;
        }
        Ok(out)
    }

    /// Codes of one 16 kHz utterance: `ceil(len / samples_per_code)` codes.
    pub fn encode(&self, samples: &[f32]) -> Result<Vec<u32>> {
        let hop = 160 * 2 * self.cfg.audio_vq_ds_rate;
        let (mel, frames) = utterance_mel(samples, hop, self.cfg.n_mels)?;
        let dev = self.codebook.device();
        let mel = Tensor::from_vec(mel, (self.cfg.n_mels, frames), dev)?;
        self.encode_mel(&mel)
    }

    /// Codes from an encoder mel `(n_mels, frames)` (frames a multiple of `2 · ds_rate`).
    pub fn encode_mel(&self, mel: &Tensor) -> Result<Vec<u32>> {
        let (x, windows) = self.front_end(mel)?;
        let x = self.blocks(x, &windows)?;
        let n = x.dim(0)?;
        let ds = self.cfg.audio_vq_ds_rate;
        let x = x.narrow(0, 0, n / ds * ds)?;
        let y = self.downsample(&x)?;
        self.nearest(&y)
    }

    pub fn config(&self) -> &EncoderConfig {
        &self.cfg
    }
}
