//! The 12 Hz encoder (`encoder.*`): transformers' `MimiModel` without its decoder half.
//!
//! 1. SEANet: a causal conv (1 → `num_filters`), then per stride `r` of the reversed
//!    `upsampling_ratios`: residual block(s), ELU, a causal conv doubling the channels with kernel
//!    `2r` and stride `r`; then ELU and a conv to `hidden_size`. Every conv pads
//!    `k_eff - stride` zeros on the left and completes the last window on the right.
//! 2. The Mimi transformer over those frames (fully causal; see [`super::transformer`]).
//! 3. The downsample conv (kernel 4, stride 2, no bias, **replicate** padding) to the code rate.
//! 4. Split RVQ encode of the first `encoder_valid_num_quantizers` levels.
//!
//! Activations are `(time, channels)`.

use candle_core::{DType, Device, Tensor};

use qwen3_speech_engine::weights::Weights;
use qwen3_speech_engine::{Error, Result};

use super::config::EncoderConfig;
use super::conv::{CausalConv, Conv1d, PadMode, elu};
use super::quantizer::{QuantizerInputs, SplitRvqEncoder};
use super::transformer::{Transformer, TransformerSpec};

#[derive(Debug, Clone)]
struct ResBlock {
    convs: Vec<CausalConv>,
}

impl ResBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for c in &self.convs {
            h = c.forward(&elu(&h)?)?;
        }
        Ok((x + h)?)
    }
}

#[derive(Debug, Clone)]
enum SeanetLayer {
    Conv(CausalConv),
    Res(ResBlock),
    Elu,
}

/// Outputs of the SEANet's convolutions, for tests: the first conv, every strided conv, and the
/// whole stack.
pub struct SeanetTrace {
    pub conv0: Tensor,
    pub stages: Vec<Tensor>,
    pub out: Tensor,
}

/// Everything `encode` computes, for tests and inspection (`(time, channels)` each).
pub struct EncodeTrace {
    pub seanet: SeanetTrace,
    pub transformer_layer0: Tensor,
    pub transformer_out: Tensor,
    pub downsampled: Tensor,
    pub quantizer_inputs: QuantizerInputs,
    /// `[frame][level]`.
    pub codes: Vec<u32>,
}

/// The encoder half of the codec.
#[derive(Debug, Clone)]
pub struct Encoder {
    layers: Vec<SeanetLayer>,
    transformer: Transformer,
    downsample: Option<CausalConv>,
    quantizer: SplitRvqEncoder,
    device: Device,
}

impl Encoder {
    /// Loads `encoder.*` computing `levels` code levels.
    pub fn load(w: &Weights, cfg: &EncoderConfig, levels: usize) -> Result<Self> {
        let conv = |w: &Weights, cin, cout, k, stride, dilation, bias| -> Result<CausalConv> {
            CausalConv::new(
                Conv1d::load(&w.pp("conv"), cin, cout, k, stride, dilation, bias)?,
                PadMode::Zeros,
            )
        };
        let lw = w.pp("encoder.layers");
        let mut layers = Vec::new();
        let f = cfg.num_filters;
        layers.push(SeanetLayer::Conv(conv(
            &lw.pp(0),
            cfg.audio_channels,
            f,
            cfg.kernel_size,
            1,
            1,
            true,
        )?));
        let mut scale = 1;
        for &ratio in cfg.upsampling_ratios.iter().rev() {
            let c = scale * f;
            for j in 0..cfg.num_residual_layers {
                let bw = lw.pp(layers.len()).pp("block");
                let hidden = c / cfg.compress;
                let dilation = cfg.dilation_growth_rate.pow(j as u32);
                layers.push(SeanetLayer::Res(ResBlock {
                    convs: vec![
                        conv(
                            &bw.pp(1),
                            c,
                            hidden,
                            cfg.residual_kernel_size,
                            1,
                            dilation,
                            true,
                        )?,
                        conv(&bw.pp(3), hidden, c, 1, 1, 1, true)?,
                    ],
                }));
            }
            layers.push(SeanetLayer::Elu);
            layers.push(SeanetLayer::Conv(conv(
                &lw.pp(layers.len()),
                c,
                2 * c,
                2 * ratio,
                ratio,
                1,
                true,
            )?));
            scale *= 2;
        }
        layers.push(SeanetLayer::Elu);
        layers.push(SeanetLayer::Conv(conv(
            &lw.pp(layers.len()),
            scale * f,
            cfg.hidden_size,
            cfg.last_kernel_size,
            1,
            1,
            true,
        )?));

        let spec = TransformerSpec {
            hidden: cfg.hidden_size,
            heads: cfg.num_attention_heads,
            kv_heads: cfg.num_key_value_heads,
            head_dim: cfg.head_dim(),
            intermediate: cfg.intermediate_size,
            layers: cfg.num_hidden_layers,
            rope_theta: cfg.rope_theta,
            norm_eps: cfg.norm_eps,
            window: None,
        };
        let transformer = Transformer::load_mimi(&w.pp("encoder_transformer"), spec)?;
        let downsample = match cfg.downsample_kernel() {
            Some(k) => Some(CausalConv::new(
                Conv1d::load(
                    &w.pp("downsample.conv"),
                    cfg.hidden_size,
                    cfg.hidden_size,
                    k,
                    2,
                    1,
                    false,
                )?,
                PadMode::Replicate,
            )?),
            None => None,
        };
        let quantizer = SplitRvqEncoder::load(
            &w.pp("quantizer"),
            cfg.hidden_size,
            cfg.codebook_dim,
            cfg.codebook_size,
            cfg.num_semantic_quantizers,
            levels,
        )?;
        Ok(Encoder {
            layers,
            transformer,
            downsample,
            quantizer,
            device: w.device().clone(),
        })
    }

    /// Code levels per frame.
    pub fn levels(&self) -> usize {
        self.quantizer.levels()
    }

    /// Mono samples as a `(L, 1)` tensor on the encoder's device.
    pub fn waveform(&self, samples: &[f32]) -> Result<Tensor> {
        if samples.is_empty() {
            return Err(Error::Audio("cannot encode empty audio".into()));
        }
        if let Some(i) = samples.iter().position(|v| !v.is_finite()) {
            return Err(Error::Audio(format!(
                "audio sample {i} is not a finite number ({})",
                samples[i]
            )));
        }
        Ok(Tensor::from_slice(
            samples,
            (samples.len(), 1),
            &self.device,
        )?)
    }

    /// The SEANet over `(L, 1)` samples, with the outputs of its convolutions.
    pub fn seanet(&self, wave: &Tensor) -> Result<SeanetTrace> {
        let mut h = wave.to_dtype(DType::F32)?;
        let mut conv0 = None;
        let mut stages = Vec::new();
        let n = self.layers.len();
        for (i, layer) in self.layers.iter().enumerate() {
            h = match layer {
                SeanetLayer::Conv(c) => {
                    let y = c.forward(&h)?;
                    if i == 0 {
                        conv0 = Some(y.clone());
                    } else if i + 1 < n {
                        stages.push(y.clone());
                    }
                    y
                }
                SeanetLayer::Res(r) => r.forward(&h)?,
                SeanetLayer::Elu => elu(&h)?,
            };
        }
        Ok(SeanetTrace {
            conv0: conv0.ok_or_else(|| Error::Model("empty SEANet".into()))?,
            stages,
            out: h,
        })
    }

    /// The transformer's first `n_layers` layers over SEANet frames.
    pub fn transformer(&self, x: &Tensor, n_layers: usize) -> Result<Tensor> {
        self.transformer.forward_layers(x, n_layers)
    }

    /// The downsample to the code frame rate (identity when the config has none).
    pub fn downsample(&self, x: &Tensor) -> Result<Tensor> {
        match &self.downsample {
            Some(d) => d.forward(x),
            None => Ok(x.clone()),
        }
    }

    /// Both quantizer input projections of a code-rate latent.
    pub fn quantizer_inputs(&self, latent: &Tensor) -> Result<QuantizerInputs> {
        self.quantizer.project(latent)
    }

    /// Codes `[frame][level]` of a code-rate latent `(T, hidden)`.
    pub fn quantize(&self, latent: &Tensor) -> Result<Vec<u32>> {
        self.quantizer.encode(latent)
    }

    /// Codes `[frame][level]` of mono samples (all frames the convolutions produce).
    pub fn encode(&self, samples: &[f32]) -> Result<Vec<u32>> {
        let wave = self.waveform(samples)?;
        let h = self.seanet(&wave)?.out;
        let h = self.transformer.forward(&h)?;
        let h = self.downsample(&h)?;
        self.quantize(&h)
    }

    /// [`Encoder::encode`] keeping every intermediate.
    pub fn encode_trace(&self, samples: &[f32]) -> Result<EncodeTrace> {
        let wave = self.waveform(samples)?;
        let seanet = self.seanet(&wave)?;
        let transformer_layer0 = self.transformer.forward_layers(&seanet.out, 1)?;
        let transformer_out = self.transformer.forward(&seanet.out)?;
        let downsampled = self.downsample(&transformer_out)?;
        let quantizer_inputs = self.quantizer_inputs(&downsampled)?;
        let codes = self.quantize(&downsampled)?;
        Ok(EncodeTrace {
            seanet,
            transformer_layer0,
            transformer_out,
            downsampled,
            quantizer_inputs,
            codes,
        })
    }
}
