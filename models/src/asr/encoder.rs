//! The Qwen3-ASR audio encoder (`thinker.audio_tower`): a Whisper-style transformer over
//! 100-frame mel chunks.
//!
//! 1. The (128, T) log-mel is cut into 100-frame chunks; the tail chunk is zero-padded to the
//!    longest chunk (this padding changes the tail outputs, so it is part of the model).
//! 2. Three 3×3 stride-2 conv2d + exact GELU per chunk, flatten (channel-major), `conv_out`.
//! 3. Sinusoidal positions restart at 0 in every chunk (0..12).
//! 4. The valid rows of all chunks are concatenated: 13 tokens per full chunk.
//! 5. Transformer layers with bidirectional attention, either within windows of
//!    `n_window_infer` frames (104 tokens = 8 s in the releases; what the models were trained
//!    with and what vLLM/flash-attention compute) or over the whole clip (what transformers'
//!    eager/sdpa path computes, because it never builds the window mask).
//! 6. `ln_post`, `proj1`, GELU, `proj2`: embeddings in the text decoder's width.

use candle_core::{D, DType, Device, Tensor};

use qwen3_speech_engine::nn::{LayerNorm, Linear, gelu_erf, use_packed};
use qwen3_speech_engine::transformer::scaled_dot_product;
use qwen3_speech_engine::weights::Weights;
use qwen3_speech_engine::{Error, Result};

use super::config::AudioEncoderConfig;
use super::conv_stem::PackedConvGelu;
use super::lengths::{chunk_lengths, chunk_output_len};

/// How the encoder's self-attention sees the clip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EncoderAttention {
    /// Bidirectional attention inside windows of `n_window_infer` mel frames (the default: how
    /// the released models are meant to run, and what vLLM computes).
    #[default]
    Windowed,
    /// Attention over the whole clip (what the transformers backend computes).
    Full,
}

impl std::str::FromStr for EncoderAttention {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "windowed" | "window" => Ok(EncoderAttention::Windowed),
            "full" => Ok(EncoderAttention::Full),
            other => Err(Error::InvalidArgument(format!(
                "unknown attention mode '{other}': expected windowed or full"
            ))),
        }
    }
}

#[derive(Debug, Clone)]
struct Conv2d {
    weight: Tensor,
    bias: Tensor,
}

impl Conv2d {
    fn load(w: &Weights, cin: usize, cout: usize) -> Result<Self> {
        Ok(Conv2d {
            weight: w.get((cout, cin, 3, 3), "weight")?,
            bias: w.get(cout, "bias")?.reshape((1, cout, 1, 1))?,
        })
    }

    /// 3×3, stride 2, padding 1 on both axes. (candle's CPU convolution has no bf16 kernel:
    /// bf16 runs in f32 there.)
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dtype = x.dtype();
        let y = if dtype == DType::BF16 && x.device().is_cpu() {
            x.to_dtype(DType::F32)?
                .conv2d(&self.weight.to_dtype(DType::F32)?, 1, 2, 1, 1)?
                .to_dtype(dtype)?
        } else {
            x.conv2d(&self.weight, 1, 2, 1, 1)?
        };
        Ok(y.broadcast_add(&self.bias)?)
    }
}

#[derive(Debug, Clone)]
struct EncoderLayer {
    self_attn_layer_norm: LayerNorm,
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    out_proj: Linear,
    final_layer_norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    num_heads: usize,
}

const LN_EPS: f64 = 1e-5;

impl EncoderLayer {
    fn load(w: &Weights, cfg: &AudioEncoderConfig) -> Result<Self> {
        let d = cfg.d_model;
        let a = w.pp("self_attn");
        Ok(EncoderLayer {
            self_attn_layer_norm: LayerNorm::load(&w.pp("self_attn_layer_norm"), d, LN_EPS)?,
            q_proj: Linear::load(&a.pp("q_proj"), d, d, true)?,
            k_proj: Linear::load(&a.pp("k_proj"), d, d, true)?,
            v_proj: Linear::load(&a.pp("v_proj"), d, d, true)?,
            out_proj: Linear::load(&a.pp("out_proj"), d, d, true)?,
            final_layer_norm: LayerNorm::load(&w.pp("final_layer_norm"), d, LN_EPS)?,
            fc1: Linear::load(&w.pp("fc1"), d, cfg.encoder_ffn_dim, true)?,
            fc2: Linear::load(&w.pp("fc2"), cfg.encoder_ffn_dim, d, true)?,
            num_heads: cfg.encoder_attention_heads,
        })
    }

    /// `x`: (N, d); `window`: tokens per attention window (N for full attention).
    fn forward(&self, x: &Tensor, window: usize) -> Result<Tensor> {
        let h = self.self_attn_layer_norm.forward(x)?;
        let attn = self.attention(&h, window)?;
        let x = (x + self.out_proj.forward(&attn)?)?;
        let h = self.final_layer_norm.forward(&x)?;
        let h = self.fc2.forward(&gelu_erf(&self.fc1.forward(&h)?)?)?;
        let mut x = (x + h)?;
        if x.dtype() == DType::F16 {
            // As the reference: keep f16 activations away from infinity.
            let limit = 65504.0 - 1000.0;
            x = x.clamp(-limit, limit)?;
        }
        Ok(x)
    }

    /// Attention within consecutive windows of `window` tokens (the last may be shorter).
    /// Full windows are batched into one matmul; the remainder runs on its own.
    fn attention(&self, h: &Tensor, window: usize) -> Result<Tensor> {
        let (n, d) = h.dims2()?;
        let heads = self.num_heads;
        let hd = d / heads;
        let q = self.q_proj.forward(h)?;
        let k = self.k_proj.forward(h)?;
        let v = self.v_proj.forward(h)?;
        let window = window.clamp(1, n.max(1));
        let full = n / window;
        let rest = n - full * window;
        let mut parts = Vec::with_capacity(2);
        for (start, count, len) in [
            (0, full, window),
            (full * window, usize::from(rest > 0), rest),
        ] {
            if count == 0 {
                continue;
            }
            let split = |t: &Tensor| -> Result<Tensor> {
                Ok(t.narrow(0, start, count * len)?
                    .reshape((count, len, heads, hd))?
                    .transpose(1, 2)?
                    .contiguous()?)
            };
            let o = scaled_dot_product(&split(&q)?, &split(&k)?, &split(&v)?, None)?;
            parts.push(o.transpose(1, 2)?.reshape((count * len, d))?);
        }
        Ok(Tensor::cat(&parts, 0)?)
    }
}

/// Sinusoidal table of the reference (`SinusoidsPositionEmbedding`): row p holds
/// `[sin(p·inv_0..), cos(p·inv_0..)]` with `inv_i = exp(-i·ln(10000)/(d/2-1))`, in f32.
fn sinusoid_table(length: usize, channels: usize, device: &Device) -> Result<Tensor> {
    let half = channels / 2;
    let inc = (10000f64.ln() / (half as f64 - 1.0).max(1.0)) as f32;
    let inv: Vec<f32> = (0..half).map(|i| (-inc * i as f32).exp()).collect();
    let mut data = Vec::with_capacity(length * channels);
    for p in 0..length {
        let p = p as f32;
        data.extend(inv.iter().map(|&f| (p * f).sin()));
        data.extend(inv.iter().map(|&f| (p * f).cos()));
    }
    Ok(Tensor::from_vec(data, (length, channels), device)?)
}

/// The conv stem for the packed CPU kernels.
#[derive(Debug, Clone)]
struct PackedStem {
    convs: [PackedConvGelu; 3],
    /// `conv_out` with its input columns reordered from (channel, frequency) to (frequency,
    /// channel), the order channels-last activations flatten in.
    conv_out: Linear,
}

/// The audio encoder.
#[derive(Debug, Clone)]
pub struct AudioEncoder {
    conv2d1: Conv2d,
    conv2d2: Conv2d,
    conv2d3: Conv2d,
    conv_out: Linear,
    /// The CPU stem (channels-last im2col + packed GEMM), when the packed kernels are in use.
    packed_stem: Option<PackedStem>,
    positions: Tensor,
    layers: Vec<EncoderLayer>,
    ln_post: LayerNorm,
    proj1: Linear,
    proj2: Linear,
    cfg: AudioEncoderConfig,
}

/// What the conv stem produced for one clip (exposed for golden tests).
pub struct StemOutput {
    /// `conv_out` output before the position add, `(n_chunks, max_chunk_tokens, d_model)`.
    pub conv_out: Tensor,
    /// Valid tokens per chunk.
    pub chunk_tokens: Vec<usize>,
    /// After the position add and the gather of valid rows, `(N, d_model)`.
    pub embedded: Tensor,
}

impl AudioEncoder {
    /// Loads from the `thinker.audio_tower` view.
    pub fn load(w: &Weights, cfg: &AudioEncoderConfig) -> Result<Self> {
        cfg.validate()?;
        let c = cfg.downsample_hidden_size;
        let d = cfg.d_model;
        let layers = (0..cfg.encoder_layers)
            .map(|i| EncoderLayer::load(&w.pp("layers").pp(i), cfg))
            .collect::<Result<Vec<_>>>()?;
        let conv2d1 = Conv2d::load(&w.pp("conv2d1"), 1, c)?;
        let conv2d2 = Conv2d::load(&w.pp("conv2d2"), c, c)?;
        let conv2d3 = Conv2d::load(&w.pp("conv2d3"), c, c)?;
        let f = cfg.freq_after_convs();
        let packed_stem = if use_packed(w.device()) {
            let conv_out = w
                .pp("conv_out")
                .get_as((d, c * f), "weight", DType::F32)?
                .reshape((d, c, f))?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((d, f * c))?;
            let packed =
                |conv: &Conv2d| PackedConvGelu::new(&conv.weight, &conv.bias.flatten_all()?);
            Some(PackedStem {
                convs: [packed(&conv2d1)?, packed(&conv2d2)?, packed(&conv2d3)?],
                conv_out: Linear::from_tensors(conv_out, None)?,
            })
        } else {
            None
        };
        Ok(AudioEncoder {
            conv2d1,
            conv2d2,
            conv2d3,
            conv_out: Linear::load(&w.pp("conv_out"), c * f, d, false)?,
            packed_stem,
            positions: sinusoid_table(cfg.max_source_positions, d, w.device())?,
            layers,
            ln_post: LayerNorm::load(&w.pp("ln_post"), d, LN_EPS)?,
            proj1: Linear::load(&w.pp("proj1"), d, d, true)?,
            proj2: Linear::load(&w.pp("proj2"), d, cfg.output_dim, true)?,
            cfg: cfg.clone(),
        })
    }

    pub fn config(&self) -> &AudioEncoderConfig {
        &self.cfg
    }

    /// Encodes a log-mel `(n_mels, T)` into `(N, output_dim)` audio embeddings.
    pub fn forward(&self, mel: &Tensor, mode: EncoderAttention) -> Result<Tensor> {
        let stem = self.stem(mel)?;
        let window = self.window_tokens(&stem.chunk_tokens, mode);
        let mut h = stem.embedded;
        for layer in &self.layers {
            h = layer.forward(&h, window)?;
        }
        self.head(&h)
    }

    /// Tokens per attention window for a clip whose chunks produced `chunk_tokens`.
    pub fn window_tokens(&self, chunk_tokens: &[usize], mode: EncoderAttention) -> usize {
        let total: usize = chunk_tokens.iter().sum();
        match mode {
            EncoderAttention::Full => total.max(1),
            EncoderAttention::Windowed => {
                // The reference scales the longest chunk's token count (13 unless the clip is
                // a single short chunk) by the chunks per window.
                let longest = chunk_tokens.iter().copied().max().unwrap_or(1);
                longest * (self.cfg.n_window_infer / self.cfg.chunk_frames())
            }
        }
    }

    /// Encodes a piece of a clip's log-mel that starts on a chunk boundary: chunks of
    /// `chunk_frames` from its first frame, each zero-padded to `pad_to` frames (the longest
    /// chunk of the *whole* clip, as [`AudioEncoder::stem`] pads), then the transformer layers
    /// with attention windows of `window` tokens counted from the piece's first token, and the
    /// head. On a piece that starts on an attention-window boundary this gives exactly the rows
    /// of the whole-clip encoding that belong to the piece (windows do not see each other),
    /// which is what the streaming encoder relies on.
    pub fn forward_segment(&self, mel: &Tensor, pad_to: usize, window: usize) -> Result<Tensor> {
        let stem = self.stem_padded(mel, Some(pad_to))?;
        self.forward_embedded(&stem.embedded, window)
    }

    /// The transformer layers (attention windows of `window` tokens) and the head on stem
    /// output rows (after the position add and gather).
    pub fn forward_embedded(&self, embedded: &Tensor, window: usize) -> Result<Tensor> {
        let mut h = embedded.clone();
        for layer in &self.layers {
            h = layer.forward(&h, window.max(1))?;
        }
        self.head(&h)
    }

    /// [`AudioEncoder::stem`] of a piece that starts on a chunk boundary, every chunk
    /// zero-padded to `pad_to` frames (the longest chunk of the whole clip).
    pub fn stem_segment(&self, mel: &Tensor, pad_to: usize) -> Result<StemOutput> {
        self.stem_padded(mel, Some(pad_to))
    }

    /// Runs the conv stem, position add and gather.
    pub fn stem(&self, mel: &Tensor) -> Result<StemOutput> {
        self.stem_padded(mel, None)
    }

    /// [`AudioEncoder::stem`] with every chunk zero-padded to `pad_to` frames (default: the
    /// longest chunk of `mel`).
    fn stem_padded(&self, mel: &Tensor, pad_to: Option<usize>) -> Result<StemOutput> {
        let (n_mels, frames) = mel.dims2()?;
        if n_mels != self.cfg.num_mel_bins {
            return Err(Error::InvalidArgument(format!(
                "audio encoder expects {} mel bins, got {n_mels}",
                self.cfg.num_mel_bins
            )));
        }
        if frames == 0 {
            return Err(Error::Audio("no feature frames to encode".into()));
        }
        let lens = chunk_lengths(frames, self.cfg.chunk_frames());
        let longest = lens.iter().copied().max().unwrap_or(0);
        let max_len = match pad_to {
            Some(p) if p < longest => {
                return Err(Error::InvalidArgument(format!(
                    "cannot pad chunks of {longest} frames to {p}"
                )));
            }
            Some(p) => p,
            None => longest,
        };
        let (conv_out, t) = match &self.packed_stem {
            Some(stem) => self.packed_conv_stem(stem, mel, &lens, max_len)?,
            None => self.candle_conv_stem(mel, &lens, max_len)?,
        };
        if t > self.positions.dim(0)? {
            return Err(Error::Model(format!(
                "max_source_positions {} is smaller than a chunk's {t} tokens",
                self.positions.dim(0)?
            )));
        }
        let pos = self.positions.narrow(0, 0, t)?.to_dtype(conv_out.dtype())?;
        let with_pos = conv_out.broadcast_add(&pos.unsqueeze(0)?)?;
        let chunk_tokens: Vec<usize> = lens.iter().map(|&l| chunk_output_len(l)).collect();
        let rows: Vec<Tensor> = chunk_tokens
            .iter()
            .enumerate()
            .map(|(i, &n)| with_pos.get(i)?.narrow(0, 0, n))
            .collect::<candle_core::Result<_>>()?;
        Ok(StemOutput {
            conv_out,
            chunk_tokens,
            embedded: Tensor::cat(&rows, 0)?,
        })
    }

    /// Chunks → convolutions → `conv_out` with candle's kernels: `(n_chunks, t, d_model)`.
    fn candle_conv_stem(
        &self,
        mel: &Tensor,
        lens: &[usize],
        max_len: usize,
    ) -> Result<(Tensor, usize)> {
        // (n_chunks, 1, n_mels, max_len), zero-padded tail.
        let mut chunks = Vec::with_capacity(lens.len());
        let mut start = 0;
        for &len in lens {
            let c = mel.narrow(1, start, len)?;
            let c = if len < max_len {
                c.pad_with_zeros(1, 0, max_len - len)?
            } else {
                c
            };
            chunks.push(c);
            start += len;
        }
        let batch = Tensor::stack(&chunks, 0)?.unsqueeze(1)?;
        let mut outs = Vec::new();
        let per = self.cfg.conv_chunksize;
        for s in (0..lens.len()).step_by(per) {
            let n = per.min(lens.len() - s);
            let x = batch.narrow(0, s, n)?;
            let x = gelu_erf(&self.conv2d1.forward(&x)?)?;
            let x = gelu_erf(&self.conv2d2.forward(&x)?)?;
            let x = gelu_erf(&self.conv2d3.forward(&x)?)?;
            outs.push(x);
        }
        let x = Tensor::cat(&outs, 0)?;
        let (b, c, f, t) = x.dims4()?;
        let x = x.permute((0, 3, 1, 2))?.reshape((b, t, c * f))?;
        Ok((self.conv_out.forward(&x)?, t))
    }

    /// The same with the packed CPU kernels on channels-last images.
    fn packed_conv_stem(
        &self,
        stem: &PackedStem,
        mel: &Tensor,
        lens: &[usize],
        max_len: usize,
    ) -> Result<(Tensor, usize)> {
        let n_mels = self.cfg.num_mel_bins;
        let frames = mel.dim(1)?;
        let m: Vec<f32> = mel.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let n = lens.len();
        // (n, n_mels, max_len, 1): image b holds frames b·chunk.. of every mel bin, zero-padded.
        let mut x = vec![0f32; n * n_mels * max_len];
        let chunk = self.cfg.chunk_frames();
        for (b, &len) in lens.iter().enumerate() {
            for f in 0..n_mels {
                let src = &m[f * frames + b * chunk..f * frames + b * chunk + len];
                x[(b * n_mels + f) * max_len..(b * n_mels + f) * max_len + len]
                    .copy_from_slice(src);
            }
        }
        let (mut h, mut w) = (n_mels, max_len);
        for conv in &stem.convs {
            let (y, ho, wo) = conv.forward(&x, n, h, w)?;
            x = y;
            (h, w) = (ho, wo);
        }
        // (n, f, t, c) -> (n, t, f·c)
        let c = stem.convs[2].out_channels();
        let (f, t) = (h, w);
        let mut flat = vec![0f32; n * t * f * c];
        for b in 0..n {
            for fi in 0..f {
                for ti in 0..t {
                    let src = ((b * f + fi) * t + ti) * c;
                    let dst = ((b * t + ti) * f + fi) * c;
                    flat[dst..dst + c].copy_from_slice(&x[src..src + c]);
                }
            }
        }
        let x = Tensor::from_vec(flat, (n, t, f * c), mel.device())?.to_dtype(mel.dtype())?;
        Ok((stem.conv_out.forward(&x)?, t))
    }

    /// Runs the first `n` transformer layers on stem output (golden tests pin layer 0).
    pub fn run_layers(&self, embedded: &Tensor, window: usize, n: usize) -> Result<Tensor> {
        let mut h = embedded.clone();
        for layer in self.layers.iter().take(n) {
            h = layer.forward(&h, window)?;
        }
        Ok(h)
    }

    /// `ln_post`, `proj1`, GELU, `proj2`.
    pub fn head(&self, h: &Tensor) -> Result<Tensor> {
        let h = self.ln_post.forward(h)?;
        let h = gelu_erf(&self.proj1.forward(&h)?)?;
        self.proj2.forward(&h)
    }

    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Output width (the text decoder's hidden size).
    pub fn output_dim(&self) -> usize {
        self.cfg.output_dim
    }
}

/// Maximum absolute value, for tests and diagnostics.
pub fn max_abs(t: &Tensor) -> Result<f32> {
    Ok(t.to_dtype(DType::F32)?
        .abs()?
        .flatten_all()?
        .max(D::Minus1)?
        .to_scalar::<f32>()?)
}
