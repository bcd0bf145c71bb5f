//! The Qwen3-TTS speaker encoder (`speaker_encoder.*`, Base checkpoints only): an ECAPA-TDNN
//! without BatchNorm that turns a 24 kHz reference clip into the x-vector the voice-clone prompt
//! places in the codec track.
//!
//! 1. Mel front end: [`SpeakerMel`] (n_fft 1024, hop 256, 128 Slaney mels up to 12 kHz, natural
//!    log), `(128, N / 256)`. It is fixed by the reference, not read from the config.
//! 2. `blocks.0`: TDNN (conv `mel_dim → C0`, kernel k0, dilation d0, ReLU).
//! 3. `blocks.1..n-2`: SE-Res2Net blocks with a residual: 1×1 TDNN, Res2Net (channel chunks
//!    0..s-1; chunk 0 passes, chunk 1 → conv, chunk i ≥ 2 → conv(chunk_i + previous output)),
//!    1×1 TDNN, squeeze-excitation (time mean → 1×1 + ReLU → 1×1 + sigmoid → channel scale).
//! 4. `mfa`: TDNN over the concatenated outputs of the SE-Res2Net blocks.
//! 5. `asp`: attentive statistics pooling: the attention sees each frame next to the clip's
//!    mean and std; softmax over time; attention-weighted mean and std, concatenated.
//! 6. `fc`: 1×1 conv `2·C_last → enc_dim`; the output (no normalisation) is the x-vector.
//!
//! Every convolution pads "same" by **reflecting** the signal: `d·(k−1)` frames, `⌊·/2⌋` on the
//! left and the rest on the right. Reflection needs the padding on each side to be shorter than
//! the clip, which gives the minimum length ([`SpeakerEncoderConfig::min_frames`]; 5 frames =
//! 1280 samples for the released dilations).
//!
//! Numerics: the network runs in float32 whatever the dtype of the checkpoint (the weights are
//! converted at load time; the encoder has ~20 M parameters and runs once per reference clip).
//! The reference casts the mel to the model dtype (bf16 in production); float32 is the value
//! that bf16 computation approximates, and what the golden tests compare against.

use candle_core::{D, DType, Device, Tensor};
use serde::Deserialize;

use qwen3_speech_engine::audio::mel::{
    SPEAKER_HOP, SPEAKER_MIN_SAMPLES, SPEAKER_N_MELS, SPEAKER_SAMPLE_RATE, SpeakerMel,
};
use qwen3_speech_engine::weights::Weights;
use qwen3_speech_engine::{Error, Result};

/// Floor of the variances in the statistics pooling (the reference's `eps`).
const STD_EPS: f64 = 1e-12;

/// `speaker_encoder_config` of a Qwen3-TTS `config.json` (`Qwen3TTSSpeakerEncoderConfig`).
/// Missing keys take the reference's defaults; the released Base configs set only `enc_dim`
/// (2048 for 1.7B, 1024 for 0.6B) and `sample_rate`. Unknown keys are ignored (the reference
/// rejects them).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct SpeakerEncoderConfig {
    /// Mel bins of the input (the front end produces 128).
    pub mel_dim: usize,
    /// Size of the x-vector (the talker's hidden size).
    pub enc_dim: usize,
    /// Output channels of the initial TDNN, of each SE-Res2Net block, and of the aggregation.
    pub enc_channels: Vec<usize>,
    pub enc_kernel_sizes: Vec<usize>,
    pub enc_dilations: Vec<usize>,
    /// Hidden channels of the pooling's attention.
    pub enc_attention_channels: usize,
    /// Number of Res2Net channel chunks.
    pub enc_res2net_scale: usize,
    /// Bottleneck channels of the squeeze-excitation.
    pub enc_se_channels: usize,
    /// Rate the reference audio is resampled to before the mel (must be 24 kHz).
    pub sample_rate: u32,
}

impl Default for SpeakerEncoderConfig {
    fn default() -> Self {
        SpeakerEncoderConfig {
            mel_dim: 128,
            enc_dim: 1024,
            enc_channels: vec![512, 512, 512, 512, 1536],
            enc_kernel_sizes: vec![5, 3, 3, 3, 1],
            enc_dilations: vec![1, 2, 3, 4, 1],
            enc_attention_channels: 128,
            enc_res2net_scale: 8,
            enc_se_channels: 128,
            sample_rate: SPEAKER_SAMPLE_RATE,
        }
    }
}

/// Frames of reflect padding `(left, right)` of a "same" convolution.
fn same_padding(kernel: usize, dilation: usize) -> (usize, usize) {
    let total = dilation * (kernel - 1);
    (total / 2, total - total / 2)
}

impl SpeakerEncoderConfig {
    /// Checks that the numbers describe a network the reference can build and run.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Model(format!("invalid speaker_encoder_config: {m}")));
        let n = self.enc_channels.len();
        if self.enc_kernel_sizes.len() != n || self.enc_dilations.len() != n {
            return bad(format!(
                "enc_channels, enc_kernel_sizes and enc_dilations have {n}, {} and {} entries; \
                 they must have the same length",
                self.enc_kernel_sizes.len(),
                self.enc_dilations.len()
            ));
        }
        if n < 3 {
            return bad(format!(
                "enc_channels has {n} entries; at least 3 are needed (initial TDNN, one \
                 SE-Res2Net block, aggregation)"
            ));
        }
        let zero = [
            ("mel_dim", self.mel_dim),
            ("enc_dim", self.enc_dim),
            ("enc_attention_channels", self.enc_attention_channels),
            ("enc_res2net_scale", self.enc_res2net_scale),
            ("enc_se_channels", self.enc_se_channels),
        ]
        .into_iter()
        .chain(self.enc_channels.iter().map(|&c| ("enc_channels", c)))
        .chain(
            self.enc_kernel_sizes
                .iter()
                .map(|&k| ("enc_kernel_sizes", k)),
        )
        .chain(self.enc_dilations.iter().map(|&d| ("enc_dilations", d)))
        .find(|(_, v)| *v == 0);
        if let Some((name, _)) = zero {
            return bad(format!("{name} must be positive"));
        }
        for i in 1..n - 1 {
            let (cin, cout) = (self.enc_channels[i - 1], self.enc_channels[i]);
            if cin != cout {
                return bad(format!(
                    "SE-Res2Net block {i} maps {cin} to {cout} channels, but its residual \
                     needs equal widths"
                ));
            }
            if !cout.is_multiple_of(self.enc_res2net_scale) {
                return bad(format!(
                    "{cout} channels cannot be split into {} Res2Net chunks",
                    self.enc_res2net_scale
                ));
            }
        }
        let concat: usize = self.enc_channels[1..n - 1].iter().sum();
        if concat != self.enc_channels[n - 1] {
            return bad(format!(
                "the aggregation takes the {concat} concatenated block channels, but \
                 enc_channels ends with {}",
                self.enc_channels[n - 1]
            ));
        }
        if self.sample_rate != SPEAKER_SAMPLE_RATE {
            return bad(format!(
                "sample_rate is {}, but the speaker mel front end is fixed at {SPEAKER_SAMPLE_RATE} Hz",
                self.sample_rate
            ));
        }
        Ok(())
    }

    /// Number of SE-Res2Net blocks.
    pub fn num_blocks(&self) -> usize {
        self.enc_channels.len().saturating_sub(2)
    }

    /// Fewest mel frames the network accepts: every reflect padding must be shorter than the
    /// clip (5 for the released config, set by the dilation-4 Res2Net convolution).
    pub fn min_frames(&self) -> usize {
        let n = self.enc_channels.len();
        let mut convs = Vec::new();
        if n >= 1 {
            convs.push(0);
            convs.push(n - 1);
        }
        if self.enc_res2net_scale > 1 {
            convs.extend(1..n.saturating_sub(1));
        }
        convs
            .into_iter()
            .filter_map(|i| {
                let (k, d) = (*self.enc_kernel_sizes.get(i)?, *self.enc_dilations.get(i)?);
                Some(same_padding(k.max(1), d).1 + 1)
            })
            .max()
            .unwrap_or(1)
            .max(1)
    }

    /// Fewest 24 kHz samples [`SpeakerEncoder::embed`] accepts (1280 for the released config).
    pub fn min_samples(&self) -> usize {
        (self.min_frames() * SPEAKER_HOP).max(SPEAKER_MIN_SAMPLES)
    }
}

/// Conv1d with bias and reflect "same" padding (`padding="same", padding_mode="reflect"`).
#[derive(Debug, Clone)]
struct Conv1d {
    /// `(out, in, k)`.
    weight: Tensor,
    /// `(out, 1)`, broadcast over time.
    bias: Tensor,
    dilation: usize,
    pad: (usize, usize),
}

impl Conv1d {
    fn load(w: &Weights, cin: usize, cout: usize, kernel: usize, dilation: usize) -> Result<Self> {
        Ok(Conv1d {
            weight: w.get_as((cout, cin, kernel), "weight", DType::F32)?,
            bias: w.get_as(cout, "bias", DType::F32)?.reshape((cout, 1))?,
            dilation,
            pad: same_padding(kernel, dilation),
        })
    }

    /// `x`: `(batch, in, frames)` → `(batch, out, frames)`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = reflect_pad(x, self.pad)?;
        Ok(x.conv1d(&self.weight, 0, 1, self.dilation, 1)?
            .broadcast_add(&self.bias)?)
    }
}

/// Reflect-pads the last dimension of `x` (`torch.nn.functional.pad(mode="reflect")`: the edge
/// frame is not repeated). Each side must be shorter than the signal.
fn reflect_pad(x: &Tensor, (left, right): (usize, usize)) -> Result<Tensor> {
    if left == 0 && right == 0 {
        return Ok(x.clone());
    }
    let t = x.dim(D::Minus1)?;
    if left >= t || right >= t {
        return Err(Error::Audio(format!(
            "speaker encoder: {t} mel frames are too few for a reflect padding of {left}+{right} \
             frames"
        )));
    }
    let index: Vec<u32> = (1..=left)
        .rev()
        .chain(0..t)
        .chain((t - 1 - right..t - 1).rev())
        .map(|i| i as u32)
        .collect();
    let index = Tensor::from_vec(index, left + t + right, x.device())?;
    // Res2Net chunks of a batch are strided views; index_select wants contiguous input.
    Ok(x.contiguous()?.index_select(&index, D::Minus1)?)
}

/// Conv1d + ReLU (`TimeDelayNetBlock`).
#[derive(Debug, Clone)]
struct Tdnn {
    conv: Conv1d,
}

impl Tdnn {
    fn load(w: &Weights, cin: usize, cout: usize, kernel: usize, dilation: usize) -> Result<Self> {
        Ok(Tdnn {
            conv: Conv1d::load(&w.pp("conv"), cin, cout, kernel, dilation)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.conv.forward(x)?.relu()?)
    }
}

/// TDNN → Res2Net → TDNN → squeeze-excitation, plus the input.
#[derive(Debug, Clone)]
struct SeRes2NetBlock {
    tdnn1: Tdnn,
    /// One TDNN per chunk after the first (`scale − 1`).
    res2net: Vec<Tdnn>,
    tdnn2: Tdnn,
    se_conv1: Conv1d,
    se_conv2: Conv1d,
    scale: usize,
}

impl SeRes2NetBlock {
    fn load(w: &Weights, cfg: &SpeakerEncoderConfig, i: usize) -> Result<Self> {
        let c = cfg.enc_channels[i];
        let (k, d, s) = (
            cfg.enc_kernel_sizes[i],
            cfg.enc_dilations[i],
            cfg.enc_res2net_scale,
        );
        let part = c / s;
        let res2net = (0..s - 1)
            .map(|j| Tdnn::load(&w.pp("res2net_block.blocks").pp(j), part, part, k, d))
            .collect::<Result<_>>()?;
        let se = w.pp("se_block");
        Ok(SeRes2NetBlock {
            tdnn1: Tdnn::load(&w.pp("tdnn1"), cfg.enc_channels[i - 1], c, 1, 1)?,
            res2net,
            tdnn2: Tdnn::load(&w.pp("tdnn2"), c, c, 1, 1)?,
            se_conv1: Conv1d::load(&se.pp("conv1"), c, cfg.enc_se_channels, 1, 1)?,
            se_conv2: Conv1d::load(&se.pp("conv2"), cfg.enc_se_channels, c, 1, 1)?,
            scale: s,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.tdnn1.forward(x)?;
        let chunks = h.chunk(self.scale, 1)?;
        // Each chunk after the second also sees the previous chunk's output: the receptive field
        // grows chunk by chunk (the "multi-scale" of Res2Net).
        let mut outs: Vec<Tensor> = Vec::with_capacity(self.scale);
        for (i, chunk) in chunks.iter().enumerate() {
            let out = match i {
                0 => chunk.clone(),
                1 => self.res2net[0].forward(chunk)?,
                _ => self.res2net[i - 1].forward(&(chunk + &outs[i - 1])?)?,
            };
            outs.push(out);
        }
        let h = self.tdnn2.forward(&Tensor::cat(&outs, 1)?)?;
        // Squeeze-excitation: one gate per channel from the clip's mean activation.
        let gate = h.mean_keepdim(2)?;
        let gate = self.se_conv1.forward(&gate)?.relu()?;
        let gate = candle_nn::ops::sigmoid(&self.se_conv2.forward(&gate)?)?;
        Ok((h.broadcast_mul(&gate)? + x)?)
    }
}

/// Attentive statistics pooling (`asp`), without a padding mask (the reference always passes
/// full-length clips).
#[derive(Debug, Clone)]
struct AttentiveStatsPool {
    tdnn: Tdnn,
    conv: Conv1d,
}

impl AttentiveStatsPool {
    fn load(w: &Weights, channels: usize, attention: usize) -> Result<Self> {
        Ok(AttentiveStatsPool {
            tdnn: Tdnn::load(&w.pp("tdnn"), 3 * channels, attention, 1, 1)?,
            conv: Conv1d::load(&w.pp("conv"), attention, channels, 1, 1)?,
        })
    }

    /// `x`: `(batch, C, frames)` → `(batch, 2C, 1)` = `[weighted mean; weighted std]`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let t = x.dim(2)?;
        // Global context: every frame's attention also sees the clip's plain mean and std.
        let uniform = Tensor::full(1.0 / t as f32, (1, 1, t), x.device())?;
        let (mean, std) = weighted_stats(x, &uniform)?;
        let context = Tensor::cat(
            &[
                x.clone(),
                mean.broadcast_as(x.shape())?,
                std.broadcast_as(x.shape())?,
            ],
            1,
        )?;
        let scores = self.conv.forward(&self.tdnn.forward(&context)?.tanh()?)?;
        let weights = candle_nn::ops::softmax_last_dim(&scores)?;
        let (mean, std) = weighted_stats(x, &weights)?;
        Ok(Tensor::cat(&[mean, std], 1)?)
    }
}

/// Mean `Σ w·x` and std `√max(Σ w·(x − mean)², eps)` over time (weights sum to 1), each
/// `(batch, C, 1)`.
fn weighted_stats(x: &Tensor, w: &Tensor) -> Result<(Tensor, Tensor)> {
    let mean = x.broadcast_mul(w)?.sum_keepdim(2)?;
    let centred = x.broadcast_sub(&mean)?;
    let var = centred.sqr()?.broadcast_mul(w)?.sum_keepdim(2)?;
    let std = var.clamp(STD_EPS, f64::INFINITY)?.sqrt()?;
    Ok((mean, std))
}

/// Every stage's output, for debugging and golden tests. Shapes `(batch, channels, frames)`
/// unless noted.
#[derive(Debug, Clone)]
pub struct SpeakerEncoderTrace {
    /// After the initial TDNN (`blocks.0`).
    pub tdnn: Tensor,
    /// After each SE-Res2Net block (`blocks.1..`).
    pub blocks: Vec<Tensor>,
    /// After the multi-layer aggregation (`mfa`).
    pub mfa: Tensor,
    /// After the attentive statistics pooling, `(batch, 2·C_last, 1)`.
    pub pooled: Tensor,
    /// The x-vectors, `(batch, enc_dim)`.
    pub embedding: Tensor,
}

/// The speaker encoder, float32 on the device of its weights.
#[derive(Debug, Clone)]
pub struct SpeakerEncoder {
    config: SpeakerEncoderConfig,
    tdnn: Tdnn,
    blocks: Vec<SeRes2NetBlock>,
    mfa: Tdnn,
    asp: AttentiveStatsPool,
    fc: Conv1d,
    device: Device,
}

impl SpeakerEncoder {
    /// Builds the encoder from `w`, a view at the `speaker_encoder` prefix of a Base checkpoint
    /// (`SpeakerEncoder::load(&weights.pp("speaker_encoder"), &cfg)`).
    pub fn load(w: &Weights, config: &SpeakerEncoderConfig) -> Result<Self> {
        config.validate()?;
        let c = &config.enc_channels;
        let (k, d) = (&config.enc_kernel_sizes, &config.enc_dilations);
        let n = c.len();
        let blocks = (1..n - 1)
            .map(|i| SeRes2NetBlock::load(&w.pp("blocks").pp(i), config, i))
            .collect::<Result<_>>()?;
        let last = c[n - 1];
        Ok(SpeakerEncoder {
            tdnn: Tdnn::load(&w.pp("blocks.0"), config.mel_dim, c[0], k[0], d[0])?,
            blocks,
            mfa: Tdnn::load(&w.pp("mfa"), last, last, k[n - 1], d[n - 1])?,
            asp: AttentiveStatsPool::load(&w.pp("asp"), last, config.enc_attention_channels)?,
            fc: Conv1d::load(&w.pp("fc"), 2 * last, config.enc_dim, 1, 1)?,
            config: config.clone(),
            device: w.device().clone(),
        })
    }

    pub fn config(&self) -> &SpeakerEncoderConfig {
        &self.config
    }

    /// Size of the x-vector.
    pub fn dim(&self) -> usize {
        self.config.enc_dim
    }

    /// The encoder's input for a 24 kHz mono clip: the speaker mel as `(1, frames, 128)`
    /// (the reference's `mel_spectrogram(...).transpose(1, 2)`), float32.
    pub fn features(&self, samples_24k: &[f32]) -> Result<Tensor> {
        self.check_clip(samples_24k)?;
        let mel = SpeakerMel::new().compute(samples_24k)?;
        Ok(mel.into_tensor(&self.device)?.t()?.unsqueeze(0)?)
    }

    /// The x-vector of a 24 kHz mono clip (`Qwen3TTSForConditionalGeneration
    /// .extract_speaker_embedding`). Errors on an empty, too short (under
    /// [`SpeakerEncoderConfig::min_samples`]) or non-finite clip.
    pub fn embed(&self, samples_24k: &[f32]) -> Result<Vec<f32>> {
        let mel = self.features(samples_24k)?;
        let x = self.forward_mel(&mel)?;
        Ok(x.squeeze(0)?.to_vec1::<f32>()?)
    }

    /// `mel`: `(batch, frames, mel_dim)` (the reference's `forward` input) → `(batch, enc_dim)`.
    /// A batch must hold clips of equal length (there is no padding mask).
    pub fn forward_mel(&self, mel: &Tensor) -> Result<Tensor> {
        Ok(self.forward_mel_traced(mel)?.embedding)
    }

    /// [`SpeakerEncoder::forward_mel`], keeping every stage's output.
    pub fn forward_mel_traced(&self, mel: &Tensor) -> Result<SpeakerEncoderTrace> {
        let x = self.check_mel(mel)?;
        let tdnn = self.tdnn.forward(&x)?;
        let mut blocks = Vec::with_capacity(self.blocks.len());
        let mut h = tdnn.clone();
        for block in &self.blocks {
            h = block.forward(&h)?;
            blocks.push(h.clone());
        }
        // Multi-layer feature aggregation: the SE-Res2Net outputs side by side (not the TDNN's).
        let mfa = self.mfa.forward(&Tensor::cat(&blocks, 1)?)?;
        let pooled = self.asp.forward(&mfa)?;
        let embedding = self.fc.forward(&pooled)?.squeeze(2)?;
        Ok(SpeakerEncoderTrace {
            tdnn,
            blocks,
            mfa,
            pooled,
            embedding,
        })
    }

    /// Validates a mel batch and returns it as float32 `(batch, mel_dim, frames)`.
    fn check_mel(&self, mel: &Tensor) -> Result<Tensor> {
        let (b, t, m) = mel.dims3().map_err(|_| {
            Error::InvalidArgument(format!(
                "speaker encoder: expected a mel of shape (batch, frames, {}), got {:?}",
                self.config.mel_dim,
                mel.dims()
            ))
        })?;
        if m != self.config.mel_dim {
            return Err(Error::InvalidArgument(format!(
                "speaker encoder: the mel has {m} bins, the model expects {}",
                self.config.mel_dim
            )));
        }
        if b == 0 {
            return Err(Error::InvalidArgument(
                "speaker encoder: empty batch".into(),
            ));
        }
        let min = self.config.min_frames();
        if t < min {
            return Err(Error::Audio(format!(
                "reference audio is too short for the speaker encoder: {t} mel frames, at least \
                 {min} are needed"
            )));
        }
        Ok(mel
            .to_device(&self.device)?
            .to_dtype(DType::F32)?
            .transpose(1, 2)?
            .contiguous()?)
    }

    fn check_clip(&self, samples: &[f32]) -> Result<()> {
        if self.config.mel_dim != SPEAKER_N_MELS {
            return Err(Error::Model(format!(
                "speaker encoder: mel_dim is {}, but the speaker mel front end produces \
                 {SPEAKER_N_MELS} bins",
                self.config.mel_dim
            )));
        }
        if samples.is_empty() {
            return Err(Error::Audio(
                "the reference audio for the speaker encoder is empty".into(),
            ));
        }
        let min = self.config.min_samples();
        if samples.len() < min {
            return Err(Error::Audio(format!(
                "reference audio is too short for the speaker encoder: {} samples ({:.1} ms at \
                 24 kHz), at least {min} ({:.1} ms) are needed",
                samples.len(),
                samples.len() as f64 / 24.0,
                min as f64 / 24.0
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_pad_matches_torch() {
        // torch.nn.functional.pad(arange(5), (2, 3), mode="reflect") = [2,1,0,1,2,3,4,3,2,1]
        let x = Tensor::arange(0f32, 5.0, &Device::Cpu)
            .unwrap()
            .reshape((1, 1, 5))
            .unwrap();
        let y = reflect_pad(&x, (2, 3)).unwrap();
        let y: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(y, [2., 1., 0., 1., 2., 3., 4., 3., 2., 1.]);
        assert!(reflect_pad(&x, (5, 0)).is_err());
        assert!(reflect_pad(&x, (0, 5)).is_err());
        assert!(reflect_pad(&x, (4, 4)).is_ok());
    }

    #[test]
    fn same_padding_splits_like_torch() {
        assert_eq!(same_padding(5, 1), (2, 2));
        assert_eq!(same_padding(3, 3), (3, 3));
        assert_eq!(same_padding(4, 1), (1, 2));
        assert_eq!(same_padding(1, 7), (0, 0));
    }

    #[test]
    fn default_config_is_valid_with_reference_limits() {
        let cfg = SpeakerEncoderConfig::default();
        cfg.validate().unwrap();
        assert_eq!(cfg.num_blocks(), 3);
        assert_eq!(cfg.min_frames(), 5);
        assert_eq!(cfg.min_samples(), 1280);
    }

    #[test]
    fn released_config_fragment_parses_with_defaults() {
        let cfg: SpeakerEncoderConfig =
            serde_json::from_str(r#"{"enc_dim": 2048, "sample_rate": 24000}"#).unwrap();
        assert_eq!(cfg.enc_dim, 2048);
        assert_eq!(
            cfg,
            SpeakerEncoderConfig {
                enc_dim: 2048,
                ..Default::default()
            }
        );
    }

    /// The 76 tensors of a released 0.6B-Base speaker encoder (tts.md §3), random values.
    fn released_shapes() -> Vec<(String, Vec<usize>)> {
        let mut t = vec![("blocks.0.conv".to_string(), vec![512, 128, 5])];
        for b in 1..=3 {
            t.push((format!("blocks.{b}.tdnn1.conv"), vec![512, 512, 1]));
            for j in 0..7 {
                t.push((
                    format!("blocks.{b}.res2net_block.blocks.{j}.conv"),
                    vec![64, 64, 3],
                ));
            }
            t.push((format!("blocks.{b}.tdnn2.conv"), vec![512, 512, 1]));
            t.push((format!("blocks.{b}.se_block.conv1"), vec![128, 512, 1]));
            t.push((format!("blocks.{b}.se_block.conv2"), vec![512, 128, 1]));
        }
        t.push(("mfa.conv".into(), vec![1536, 1536, 1]));
        t.push(("asp.tdnn.conv".into(), vec![128, 4608, 1]));
        t.push(("asp.conv".into(), vec![1536, 128, 1]));
        t.push(("fc".into(), vec![1024, 3072, 1]));
        t
    }

    #[test]
    fn released_shapes_load_and_run() {
        use qwen3_speech_engine::weights::MemorySource;
        let dev = Device::Cpu;
        let mut src = MemorySource::new();
        let mut count = 0;
        for (name, shape) in released_shapes() {
            let fan_in = (shape[1] * shape[2]) as f64;
            let w = Tensor::randn(0f32, (1.0 / fan_in).sqrt() as f32, shape.as_slice(), &dev);
            src.insert(format!("speaker_encoder.{name}.weight"), w.unwrap());
            let b = Tensor::randn(0f32, 0.1, shape[0], &dev).unwrap();
            src.insert(format!("speaker_encoder.{name}.bias"), b);
            count += 2;
        }
        assert_eq!(count, 76);
        let w = Weights::new(std::sync::Arc::new(src), &dev, DType::BF16);
        let cfg: SpeakerEncoderConfig = serde_json::from_str(r#"{"enc_dim": 1024}"#).unwrap();
        let enc = SpeakerEncoder::load(&w.pp("speaker_encoder"), &cfg).unwrap();
        let samples: Vec<f32> = (0..24_000)
            .map(|i| 0.3 * (i as f32 * 0.05).sin() + 0.1 * (i as f32 * 0.31).sin())
            .collect();
        let x = enc.embed(&samples).unwrap();
        assert_eq!(x.len(), 1024);
        assert!(x.iter().all(|v| v.is_finite()));
        assert!(enc.embed(&samples[..1279]).is_err());
        assert_eq!(enc.embed(&samples[..1280]).unwrap().len(), 1024);
    }

    #[test]
    fn inconsistent_configs_are_rejected() {
        let base = SpeakerEncoderConfig::default();
        let cases = [
            SpeakerEncoderConfig {
                enc_dilations: vec![1, 2, 3],
                ..base.clone()
            },
            SpeakerEncoderConfig {
                enc_channels: vec![512, 512, 512, 512, 1024],
                ..base.clone()
            },
            SpeakerEncoderConfig {
                enc_res2net_scale: 7,
                ..base.clone()
            },
            SpeakerEncoderConfig {
                enc_kernel_sizes: vec![5, 0, 3, 3, 1],
                ..base.clone()
            },
            SpeakerEncoderConfig {
                sample_rate: 16000,
                ..base.clone()
            },
            SpeakerEncoderConfig {
                enc_channels: vec![512, 512],
                enc_kernel_sizes: vec![5, 1],
                enc_dilations: vec![1, 1],
                ..base
            },
        ];
        for cfg in cases {
            let err = cfg.validate().unwrap_err().to_string();
            assert!(err.contains("speaker_encoder_config"), "{err}");
        }
    }
}
