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
use super::conv::{CausalConv, Conv1d, ConvState, PadMode, elu};
use super::quantizer::{QuantizerInputs, SplitRvqEncoder};
use super::transformer::{Transformer, TransformerSpec};

/// Audio is run through the SEANet in pieces of about this many seconds (whole hops), with
/// every convolution's history carried over: exact, and long inputs never hold the wide early
/// activations of the whole clip at once.
const SEANET_PIECE_SECONDS: usize = 20;

#[derive(Debug, Clone)]
struct ResBlock {
    convs: Vec<CausalConv>,
}

/// Hands out convolution states in the fixed order the layers run.
struct States<'a> {
    slots: &'a mut Vec<ConvState>,
    next: usize,
}

impl States<'_> {
    fn slot(&mut self) -> &mut ConvState {
        if self.next == self.slots.len() {
            self.slots.push(ConvState::default());
        }
        self.next += 1;
        &mut self.slots[self.next - 1]
    }
}

/// A causal convolution of one piece: the last piece gets the reference's right padding.
fn piece_conv(conv: &CausalConv, x: &Tensor, st: &mut States, last: bool) -> Result<Tensor> {
    if last {
        conv.forward_stream_last(x, st.slot())
    } else {
        conv.forward_stream(x, st.slot())
    }
}

impl ResBlock {
    fn forward(&self, x: &Tensor, st: &mut States, last: bool) -> Result<Tensor> {
        let mut h = x.clone();
        for c in &self.convs {
            h = piece_conv(c, &elu(&h)?, st, last)?;
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
    /// Samples per SEANet piece (a multiple of the hop).
    piece: usize,
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
        let hop = cfg.hop_length().max(1);
        let piece = (SEANET_PIECE_SECONDS * cfg.sampling_rate as usize / hop).max(1) * hop;
        Ok(Encoder {
            layers,
            transformer,
            downsample,
            quantizer,
            device: w.device().clone(),
            piece,
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
        self.seanet_pieces(wave, self.piece, true)
    }

    /// The SEANet run over pieces of `piece` samples (rounded down to whole hops, at least one)
    /// with the convolution states carried between them: the same result as one pass. Only the
    /// final output is kept unless `trace`.
    pub fn seanet_pieces(&self, wave: &Tensor, piece: usize, trace: bool) -> Result<SeanetTrace> {
        let (len, _) = wave.dims2()?;
        if len == 0 {
            return Err(Error::Audio("cannot encode empty audio".into()));
        }
        // Whole hops: every stride divides the length of every piece but the last.
        let base = self.hop();
        let step = (piece / base).max(1) * base;
        let mut slots = Vec::new();
        let (mut conv0, mut stages, mut out) = (Vec::new(), Vec::<Vec<Tensor>>::new(), Vec::new());
        let n = self.layers.len();
        let mut start = 0;
        while start < len {
            qwen3_speech_engine::cancel::checkpoint()?;
            let end = (start + step).min(len);
            let last = end == len;
            let mut st = States {
                slots: &mut slots,
                next: 0,
            };
            let mut h = wave.narrow(0, start, end - start)?.to_dtype(DType::F32)?;
            let mut stage = 0;
            for (i, layer) in self.layers.iter().enumerate() {
                h = match layer {
                    SeanetLayer::Conv(c) => {
                        let y = piece_conv(c, &h, &mut st, last)?;
                        if trace && i == 0 {
                            conv0.push(y.clone());
                        } else if trace && i + 1 < n {
                            if stages.len() <= stage {
                                stages.push(Vec::new());
                            }
                            stages[stage].push(y.clone());
                            stage += 1;
                        }
                        y
                    }
                    SeanetLayer::Res(r) => r.forward(&h, &mut st, last)?,
                    SeanetLayer::Elu => elu(&h)?,
                };
            }
            out.push(h);
            start = end;
        }
        let cat = |v: Vec<Tensor>| -> Result<Tensor> {
            Ok(if v.len() == 1 {
                v.into_iter().next().expect("one piece")
            } else {
                Tensor::cat(&v, 0)?
            })
        };
        let out = cat(out)?;
        Ok(SeanetTrace {
            conv0: if trace { cat(conv0)? } else { out.clone() },
            stages: stages.into_iter().map(cat).collect::<Result<_>>()?,
            out,
        })
    }

    /// Input samples per SEANet frame (the product of the strides).
    fn hop(&self) -> usize {
        self.layers
            .iter()
            .filter_map(|l| match l {
                SeanetLayer::Conv(c) => Some(c.conv().stride()),
                _ => None,
            })
            .product()
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
        let h = self.seanet_pieces(&wave, self.piece, false)?.out;
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
