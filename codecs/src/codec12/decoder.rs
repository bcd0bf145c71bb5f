//! The 12 Hz decoder (`decoder.*`, Qwen3TTSTokenizerV2Decoder): fully causal, code frames to
//! `decode_upsample_rate` samples each.
//!
//! 1. Split RVQ decode (`decoder.quantizer`) to `codebook_dim` channels.
//! 2. `pre_conv`: causal conv k3 to `latent_dim`.
//! 3. `pre_transformer`: `input_proj`, RMSNorm/SwiGLU layers with LayerScale and a sliding window,
//!    final norm, `output_proj` back to `latent_dim`.
//! 4. `upsample`: per factor, a transposed conv (kernel = stride) and a ConvNeXt block (causal
//!    depthwise conv k7, LayerNorm ε 1e-6, Linear ×4, exact GELU, Linear, γ, residual).
//! 5. `decoder`: causal conv k7 to `decoder_dim`; per rate `r`, a block of SnakeBeta, causal
//!    transposed conv (kernel 2r, stride r, right trim r) halving the channels, and three residual
//!    units (SnakeBeta, conv k7 with dilation 1/3/9, SnakeBeta, conv k1, residual); SnakeBeta,
//!    causal conv k7 to 1 channel; clamp to [-1, 1].
//!
//! Every layer is causal and keeps a small input history, so [`Decoder::forward`] serves both a
//! whole chunk (fresh [`DecoderState`]) and streaming (the state carried between calls).
//! Activations are `(time, channels)`.

use candle_core::{DType, Tensor};

use qwen3_speech_engine::nn::{LayerNorm, Linear, RmsNorm, gelu_erf};
use qwen3_speech_engine::weights::Weights;
use qwen3_speech_engine::{Error, Result};

use super::config::DecoderConfig;
use super::conv::{
    CausalConv, Conv1d, ConvState, DepthwiseConv, PadMode, SnakeBeta, TransposedConv,
    scale_channels,
};
use super::quantizer::SplitRvqDecoder;
use super::transformer::{KvState, Transformer, TransformerSpec};

/// The carried state of a decoder run: every convolution's input history, the transformer's
/// key/value window and the position of the next frame.
#[derive(Debug, Clone, Default)]
pub struct DecoderState {
    convs: Vec<ConvState>,
    kv: Vec<KvState>,
    /// RoPE position of the next frame (frames since the last restart).
    position: usize,
}

impl DecoderState {
    /// Frames decoded since the state was fresh.
    pub fn position(&self) -> usize {
        self.position
    }
}

/// Hands out the convolution states in the fixed order the layers run.
struct Cursor<'a> {
    slots: &'a mut Vec<ConvState>,
    next: usize,
}

impl Cursor<'_> {
    fn slot(&mut self) -> &mut ConvState {
        if self.next == self.slots.len() {
            self.slots.push(ConvState::default());
        }
        self.next += 1;
        &mut self.slots[self.next - 1]
    }
}

/// Named intermediates of one decoder run (names as in the reference fixtures), for tests.
pub type DecodeTrace = Vec<(String, Tensor)>;

fn record(trace: &mut Option<&mut DecodeTrace>, name: impl Into<String>, t: &Tensor) {
    if let Some(tr) = trace {
        tr.push((name.into(), t.clone()));
    }
}

#[derive(Debug, Clone)]
struct ConvNeXt {
    dw: DepthwiseConv,
    norm: LayerNorm,
    pw1: Linear,
    pw2: Linear,
    gamma: Tensor,
}

impl ConvNeXt {
    fn load(w: &Weights, dim: usize) -> Result<Self> {
        Ok(ConvNeXt {
            dw: DepthwiseConv::load(&w.pp("dwconv.conv"), dim, 7)?,
            norm: LayerNorm::load(&w.pp("norm"), dim, 1e-6)?,
            pw1: Linear::load(&w.pp("pwconv1"), dim, 4 * dim, true)?,
            pw2: Linear::load(&w.pp("pwconv2"), 4 * dim, dim, true)?,
            gamma: w.get_as(dim, "gamma", DType::F32)?,
        })
    }

    fn forward(&self, x: &Tensor, c: &mut Cursor) -> Result<Tensor> {
        let h = self.dw.forward_stream(x, c.slot())?;
        let h = self.norm.forward(&h)?;
        let h = self.pw2.forward(&gelu_erf(&self.pw1.forward(&h)?)?)?;
        Ok((x + scale_channels(&h, &self.gamma)?)?)
    }
}

#[derive(Debug, Clone)]
struct ResidualUnit {
    act1: SnakeBeta,
    conv1: CausalConv,
    act2: SnakeBeta,
    conv2: CausalConv,
}

impl ResidualUnit {
    fn forward(&self, x: &Tensor, c: &mut Cursor) -> Result<Tensor> {
        let h = self
            .conv1
            .forward_stream(&self.act1.forward(x)?, c.slot())?;
        let h = self
            .conv2
            .forward_stream(&self.act2.forward(&h)?, c.slot())?;
        Ok((x + h)?)
    }
}

#[derive(Debug, Clone)]
struct DecoderBlock {
    snake: SnakeBeta,
    up: TransposedConv,
    units: Vec<ResidualUnit>,
}

fn causal(w: &Weights, cin: usize, cout: usize, k: usize, dilation: usize) -> Result<CausalConv> {
    CausalConv::new(
        Conv1d::load(&w.pp("conv"), cin, cout, k, 1, dilation, true)?,
        PadMode::Zeros,
    )
}

/// The decoder half of the codec.
#[derive(Debug, Clone)]
pub struct Decoder {
    quantizer: SplitRvqDecoder,
    pre_conv: CausalConv,
    input_proj: Linear,
    transformer: Transformer,
    norm: RmsNorm,
    output_proj: Linear,
    upsample: Vec<(TransposedConv, ConvNeXt)>,
    conv_in: CausalConv,
    blocks: Vec<DecoderBlock>,
    final_snake: SnakeBeta,
    conv_out: CausalConv,
    samples_per_frame: usize,
}

impl Decoder {
    /// Loads `decoder.*`.
    pub fn load(w: &Weights, cfg: &DecoderConfig) -> Result<Self> {
        let latent = cfg.latent_dim;
        let quantizer = SplitRvqDecoder::load(
            &w.pp("quantizer"),
            cfg.num_quantizers,
            cfg.codebook_size,
            cfg.codebook_dim,
        )?;
        let pre_conv = causal(&w.pp("pre_conv"), cfg.codebook_dim, latent, 3, 1)?;
        let tw = w.pp("pre_transformer");
        let spec = TransformerSpec {
            hidden: cfg.hidden_size,
            heads: cfg.num_attention_heads,
            kv_heads: cfg.num_key_value_heads,
            head_dim: cfg.head_dim(),
            intermediate: cfg.intermediate_size,
            layers: cfg.num_hidden_layers,
            rope_theta: cfg.rope_theta,
            norm_eps: cfg.rms_norm_eps,
            window: Some(cfg.sliding_window),
        };
        let transformer = Transformer::load_decoder(&tw, spec)?;
        let mut upsample = Vec::new();
        for (i, &f) in cfg.upsampling_ratios.iter().enumerate() {
            let uw = w.pp("upsample").pp(i);
            upsample.push((
                TransposedConv::load(&uw.pp("0.conv"), latent, latent, f, f)?,
                ConvNeXt::load(&uw.pp(1), latent)?,
            ));
        }
        let dw = w.pp("decoder");
        let conv_in = causal(&dw.pp(0), latent, cfg.decoder_dim, 7, 1)?;
        let mut blocks = Vec::new();
        for (i, &r) in cfg.upsample_rates.iter().enumerate() {
            let (cin, cout) = (cfg.decoder_dim >> i, cfg.decoder_dim >> (i + 1));
            let bw = dw.pp(i + 1).pp("block");
            let mut units = Vec::new();
            for (u, d) in [1usize, 3, 9].into_iter().enumerate() {
                let uw = bw.pp(u + 2);
                units.push(ResidualUnit {
                    act1: SnakeBeta::load(&uw.pp("act1"), cout)?,
                    conv1: causal(&uw.pp("conv1"), cout, cout, 7, d)?,
                    act2: SnakeBeta::load(&uw.pp("act2"), cout)?,
                    conv2: causal(&uw.pp("conv2"), cout, cout, 1, 1)?,
                });
            }
            blocks.push(DecoderBlock {
                snake: SnakeBeta::load(&bw.pp(0), cin)?,
                up: TransposedConv::load(&bw.pp("1.conv"), cin, cout, 2 * r, r)?,
                units,
            });
        }
        let n = cfg.upsample_rates.len();
        let out_dim = cfg.decoder_dim >> n;
        Ok(Decoder {
            quantizer,
            pre_conv,
            input_proj: Linear::load(&tw.pp("input_proj"), latent, cfg.hidden_size, true)?,
            transformer,
            norm: RmsNorm::load(&tw.pp("norm"), cfg.hidden_size, cfg.rms_norm_eps)?,
            output_proj: Linear::load(&tw.pp("output_proj"), cfg.hidden_size, latent, true)?,
            upsample,
            conv_in,
            blocks,
            final_snake: SnakeBeta::load(&dw.pp(n + 1), out_dim)?,
            conv_out: causal(&dw.pp(n + 2), out_dim, 1, 7, 1)?,
            samples_per_frame: cfg.total_upsample(),
        })
    }

    pub fn num_quantizers(&self) -> usize {
        self.quantizer.num_quantizers()
    }

    pub fn codebook_size(&self) -> usize {
        self.quantizer.codebook_size()
    }

    pub fn samples_per_frame(&self) -> usize {
        self.samples_per_frame
    }

    /// A fresh state (what a new chunk of the reference's chunked decode starts from).
    pub fn new_state(&self) -> DecoderState {
        DecoderState {
            convs: Vec::new(),
            kv: self.transformer.new_cache(),
            position: 0,
        }
    }

    /// Decodes `frames` code frames (`codes` `[frame][level]`) continuing `state`: returns
    /// `frames × samples_per_frame` samples.
    pub fn forward(
        &self,
        codes: &[u32],
        frames: usize,
        state: &mut DecoderState,
    ) -> Result<Vec<f32>> {
        let wav = self.run(codes, frames, state, None)?;
        Ok(wav.flatten_all()?.to_vec1::<f32>()?)
    }

    /// [`Decoder::forward`] from a fresh state, keeping every intermediate.
    pub fn forward_trace(&self, codes: &[u32], frames: usize) -> Result<DecodeTrace> {
        let mut trace = DecodeTrace::new();
        let mut state = self.new_state();
        self.run(codes, frames, &mut state, Some(&mut trace))?;
        Ok(trace)
    }

    fn run(
        &self,
        codes: &[u32],
        frames: usize,
        state: &mut DecoderState,
        mut trace: Option<&mut DecodeTrace>,
    ) -> Result<Tensor> {
        if frames == 0 {
            return Err(Error::InvalidArgument("no code frames to decode".into()));
        }
        if state.kv.len() != self.transformer.num_layers() {
            state.kv = self.transformer.new_cache();
        }
        let parts = self.quantizer.decode_parts(codes, frames)?;
        record(&mut trace, "quantizer_semantic", &parts.semantic);
        record(&mut trace, "quantizer_acoustic", &parts.acoustic);
        record(&mut trace, "quantizer_out", &parts.sum);
        let mut c = Cursor {
            slots: &mut state.convs,
            next: 0,
        };
        let h = self.pre_conv.forward_stream(&parts.sum, c.slot())?;
        record(&mut trace, "pre_conv_out", &h);
        let h = self.input_proj.forward(&h)?;
        record(&mut trace, "transformer_input_proj", &h);
        if trace.is_some() && state.position == 0 {
            for i in 0..self.transformer.num_layers() {
                let l = self.transformer.forward_layers(&h, i + 1)?;
                record(&mut trace, format!("transformer_layer{i}_out"), &l);
            }
        }
        let h = self
            .transformer
            .forward_cached(&h, state.position, &mut state.kv)?;
        state.position += frames;
        let h = self.norm.forward(&h)?;
        record(&mut trace, "transformer_norm_out", &h);
        let mut h = self.output_proj.forward(&h)?;
        record(&mut trace, "transformer_out", &h);
        for (i, (up, convnext)) in self.upsample.iter().enumerate() {
            h = up.forward_stream(&h, c.slot())?;
            record(&mut trace, format!("upsample{i}_transconv"), &h);
            h = convnext.forward(&h, &mut c)?;
            record(&mut trace, format!("upsample{i}_convnext"), &h);
        }
        h = self.conv_in.forward_stream(&h, c.slot())?;
        record(&mut trace, "decoder0_out", &h);
        for (i, b) in self.blocks.iter().enumerate() {
            h = b.up.forward_stream(&b.snake.forward(&h)?, c.slot())?;
            record(&mut trace, format!("block{i}_transconv"), &h);
            for u in &b.units {
                h = u.forward(&h, &mut c)?;
            }
            record(&mut trace, format!("block{i}_out"), &h);
        }
        h = self.final_snake.forward(&h)?;
        record(&mut trace, "final_snake", &h);
        h = self.conv_out.forward_stream(&h, c.slot())?;
        record(&mut trace, "pre_clamp", &h);
        let wav = h.clamp(-1f32, 1f32)?;
        record(&mut trace, "waveform", &wav);
        Ok(wav)
    }
}
