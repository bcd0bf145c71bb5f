//! The two small transformers of the 12 Hz codec, on `(time, hidden)` activations.
//!
//! Both are pre-norm stacks with rotate-half RoPE (θ from the config, positions from 0), GQA
//! attention without biases, and LayerScale on both residual branches:
//!
//! * the encoder's (`encoder.encoder_transformer`, Mimi): LayerNorm with bias, an exact-GELU MLP
//!   (`fc1`, `fc2`), **fully causal** attention (the configured `sliding_window` is ignored by
//!   the reference's eager/sdpa path), no final norm;
//! * the decoder's (`decoder.pre_transformer`): RMSNorm, SwiGLU MLP, causal attention limited to
//!   a window of `sliding_window` keys (query `q` sees keys `q-W < k <= q`), `input_proj`, a
//!   final norm and `output_proj`.
//!
//! Attention runs in tiles of query rows so that long inputs (the encoder sees a whole clip)
//! never hold a full `T × T` score matrix. The decoder can also run incrementally: each layer
//! keeps the keys and values of the last `W - 1` positions ([`KvState`]).

use candle_core::{DType, Tensor};

use qwen3_speech_engine::nn::{LayerNorm, Linear, RmsNorm, gelu_erf, matmul};
use qwen3_speech_engine::transformer::{Mlp, Positions, RotaryEmbedding};
use qwen3_speech_engine::weights::Weights;
use qwen3_speech_engine::{Error, Result};

use super::conv::scale_channels;

/// Scores per attention tile (heads × query rows × keys), in f32 values.
const TILE_SCORES: usize = 8 << 20;

#[derive(Debug, Clone)]
enum Norm {
    Layer(LayerNorm),
    Rms(RmsNorm),
}

impl Norm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Norm::Layer(n) => n.forward(x),
            Norm::Rms(n) => n.forward(x),
        }
    }
}

#[derive(Debug, Clone)]
enum FeedForward {
    /// `fc2(gelu(fc1(x)))`, no biases (Mimi).
    Gelu { fc1: Linear, fc2: Linear },
    /// `down(silu(gate(x)) · up(x))`.
    SwiGlu(Mlp),
}

impl FeedForward {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            FeedForward::Gelu { fc1, fc2 } => fc2.forward(&gelu_erf(&fc1.forward(x)?)?),
            FeedForward::SwiGlu(m) => m.forward(x),
        }
    }
}

/// Shapes and options of one of the two transformers.
#[derive(Debug, Clone)]
pub struct TransformerSpec {
    pub hidden: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub intermediate: usize,
    pub layers: usize,
    pub rope_theta: f64,
    pub norm_eps: f64,
    /// `Some(W)`: keys `q-W < k <= q`; `None`: fully causal.
    pub window: Option<usize>,
}

/// The cached keys and values of one layer (after RoPE), `(1, kv_heads, len, head_dim)`.
#[derive(Debug, Clone, Default)]
pub struct KvState {
    k: Option<Tensor>,
    v: Option<Tensor>,
}

#[derive(Debug, Clone)]
struct Layer {
    input_norm: Norm,
    post_norm: Norm,
    qkv: Linear,
    o_proj: Linear,
    attn_scale: Tensor,
    mlp_scale: Tensor,
    mlp: FeedForward,
}

/// A stack of codec transformer layers (without the decoder's input/output projections).
#[derive(Debug, Clone)]
pub struct Transformer {
    spec: TransformerSpec,
    layers: Vec<Layer>,
    rope: RotaryEmbedding,
}

impl Transformer {
    /// The encoder's Mimi layers under `w` (`layers.i.*`).
    pub fn load_mimi(w: &Weights, spec: TransformerSpec) -> Result<Self> {
        Self::load(w, spec, true)
    }

    /// The decoder's layers under `w` (`layers.i.*`).
    pub fn load_decoder(w: &Weights, spec: TransformerSpec) -> Result<Self> {
        Self::load(w, spec, false)
    }

    fn load(w: &Weights, spec: TransformerSpec, mimi: bool) -> Result<Self> {
        let (h, nh, nkv, hd) = (spec.hidden, spec.heads, spec.kv_heads, spec.head_dim);
        if nkv == 0 || nh % nkv != 0 || hd % 2 != 0 {
            return Err(Error::Model(format!(
                "transformer with {nh} heads, {nkv} kv heads of {hd} dims is not supported"
            )));
        }
        let mut layers = Vec::with_capacity(spec.layers);
        for i in 0..spec.layers {
            let l = w.pp("layers").pp(i);
            let a = l.pp("self_attn");
            let norm = |name: &str| -> Result<Norm> {
                Ok(if mimi {
                    Norm::Layer(LayerNorm::load(&l.pp(name), h, spec.norm_eps)?)
                } else {
                    Norm::Rms(RmsNorm::load(&l.pp(name), h, spec.norm_eps)?)
                })
            };
            let mlp = if mimi {
                FeedForward::Gelu {
                    fc1: Linear::load(&l.pp("mlp").pp("fc1"), h, spec.intermediate, false)?,
                    fc2: Linear::load(&l.pp("mlp").pp("fc2"), spec.intermediate, h, false)?,
                }
            } else {
                FeedForward::SwiGlu(Mlp::load(&l.pp("mlp"), h, spec.intermediate)?)
            };
            layers.push(Layer {
                input_norm: norm("input_layernorm")?,
                post_norm: norm("post_attention_layernorm")?,
                qkv: Linear::load_fused(
                    &[a.pp("q_proj"), a.pp("k_proj"), a.pp("v_proj")],
                    h,
                    &[nh * hd, nkv * hd, nkv * hd],
                    false,
                )?,
                o_proj: Linear::load(&a.pp("o_proj"), nh * hd, h, false)?,
                attn_scale: l
                    .pp("self_attn_layer_scale")
                    .get_as(h, "scale", DType::F32)?,
                mlp_scale: l.pp("mlp_layer_scale").get_as(h, "scale", DType::F32)?,
                mlp,
            });
        }
        Ok(Transformer {
            rope: RotaryEmbedding::new(hd, spec.rope_theta),
            spec,
            layers,
        })
    }

    pub fn spec(&self) -> &TransformerSpec {
        &self.spec
    }

    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Fresh per-layer caches for [`Transformer::forward_cached`].
    pub fn new_cache(&self) -> Vec<KvState> {
        vec![KvState::default(); self.layers.len()]
    }

    /// The first `n_layers` layers over `x` `(T, hidden)` at positions `0..T`.
    pub fn forward_layers(&self, x: &Tensor, n_layers: usize) -> Result<Tensor> {
        let mut cache = self.new_cache();
        self.run(x, 0, &mut cache, n_layers.min(self.layers.len()), false)
    }

    /// All layers over `x` at positions `0..T`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_layers(x, self.layers.len())
    }

    /// All layers over new rows at positions `start..start+T`, attending to the cached keys of
    /// earlier rows; the caches keep what the window needs for later rows.
    pub fn forward_cached(
        &self,
        x: &Tensor,
        start: usize,
        cache: &mut [KvState],
    ) -> Result<Tensor> {
        if cache.len() != self.layers.len() {
            return Err(Error::InvalidArgument(
                "transformer cache of the wrong size".into(),
            ));
        }
        self.run(x, start, cache, self.layers.len(), true)
    }

    fn run(
        &self,
        x: &Tensor,
        start: usize,
        cache: &mut [KvState],
        n_layers: usize,
        keep: bool,
    ) -> Result<Tensor> {
        let (t, h) = x.dims2()?;
        if h != self.spec.hidden {
            return Err(Error::InvalidArgument(format!(
                "transformer expects width {}, got {h}",
                self.spec.hidden
            )));
        }
        let positions = Positions::contiguous(1, start, t);
        let rope = self.rope.tables(&positions, DType::F32, x.device())?;
        let mut x = x.to_dtype(DType::F32)?;
        for (layer, kv) in self.layers[..n_layers].iter().zip(cache.iter_mut()) {
            let hn = layer.input_norm.forward(&x)?;
            let a = self.attention(layer, &hn, &rope, kv, keep)?;
            x = (x + scale_channels(&a, &layer.attn_scale)?)?;
            let hn = layer.post_norm.forward(&x)?;
            let m = layer.mlp.forward(&hn)?;
            x = (x + scale_channels(&m, &layer.mlp_scale)?)?;
        }
        Ok(x)
    }

    fn attention(
        &self,
        layer: &Layer,
        x: &Tensor,
        rope: &qwen3_speech_engine::transformer::RopeTables,
        kv: &mut KvState,
        keep: bool,
    ) -> Result<Tensor> {
        let s = &self.spec;
        let (t, _) = x.dims2()?;
        let (nh, nkv, hd) = (s.heads, s.kv_heads, s.head_dim);
        let qkv = layer.qkv.forward(x)?;
        let heads = |off: usize, n: usize| -> Result<Tensor> {
            Ok(qkv
                .narrow(1, off, n * hd)?
                .reshape((t, n, hd))?
                .transpose(0, 1)?
                .unsqueeze(0)?
                .contiguous()?)
        };
        let q = RotaryEmbedding::apply(&heads(0, nh)?, rope)?;
        let k = RotaryEmbedding::apply(&heads(nh * hd, nkv)?, rope)?;
        let v = heads((nh + nkv) * hd, nkv)?;
        let (k, v) = match (&kv.k, &kv.v) {
            (Some(pk), Some(pv)) => (Tensor::cat(&[pk, &k], 2)?, Tensor::cat(&[pv, &v], 2)?),
            _ => (k, v),
        };
        let total = k.dim(2)?;
        let offset = total - t;
        if keep {
            // Keys that a later query can still see: the last W - 1 (all of them when causal).
            let n = match s.window {
                Some(w) => (w - 1).min(total),
                None => total,
            };
            kv.k = Some(k.narrow(2, total - n, n)?.contiguous()?);
            kv.v = Some(v.narrow(2, total - n, n)?.contiguous()?);
        }
        let out = attend(&q, &k, &v, offset, s.window, nh, nkv)?; // (t, nh·hd)
        layer.o_proj.forward(&out)
    }
}

/// Causal (optionally windowed) attention of `q` `(1, nh, T, hd)` over `k`, `v`
/// `(1, nkv, S, hd)`, where query `i` sits at key index `offset + i`. Returns `(T, nh·hd)`.
fn attend(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    offset: usize,
    window: Option<usize>,
    nh: usize,
    nkv: usize,
) -> Result<Tensor> {
    let (_, _, t, hd) = q.dims4()?;
    let total = k.dim(2)?;
    let n_rep = nh / nkv;
    let scale = 1.0 / (hd as f64).sqrt();
    let rows_per_tile = (TILE_SCORES / (nh * total).max(1)).clamp(1, t.max(1));
    let mut outs = Vec::new();
    let mut a = 0;
    while a < t {
        let r = rows_per_tile.min(t - a);
        // Keys this tile can see: [lo, hi).
        let hi = offset + a + r;
        let lo = match window {
            Some(w) => (offset + a + 1).saturating_sub(w),
            None => 0,
        };
        let kt = k.narrow(2, lo, hi - lo)?;
        let vt = v.narrow(2, lo, hi - lo)?;
        let s_len = hi - lo;
        // GQA without copies: the n_rep query heads of each kv head become extra rows.
        let qt = q
            .narrow(2, a, r)?
            .reshape((1, nkv, n_rep, r, hd))?
            .reshape((1, nkv, n_rep * r, hd))?;
        let scores = (matmul(&qt, &kt.t()?)? * scale)?;
        let mut mask = vec![0f32; r * s_len];
        for i in 0..r {
            let qi = offset + a + i;
            for (j, m) in mask[i * s_len..(i + 1) * s_len].iter_mut().enumerate() {
                let kj = lo + j;
                let visible = kj <= qi && window.is_none_or(|w| kj + w > qi);
                if !visible {
                    *m = f32::NEG_INFINITY;
                }
            }
        }
        let mask = Tensor::from_vec(mask, (r, s_len), q.device())?;
        let scores = scores
            .reshape((1, nkv, n_rep, r, s_len))?
            .broadcast_add(&mask)?
            .reshape((1, nkv, n_rep * r, s_len))?;
        let probs = candle_nn::ops::softmax_last_dim(&scores.contiguous()?)?;
        let o = matmul(&probs, &vt.contiguous()?)?; // (1, nkv, n_rep·r, hd)
        let o = o
            .reshape((nh, r, hd))?
            .transpose(0, 1)?
            .reshape((r, nh * hd))?;
        outs.push(o);
        a += r;
    }
    Ok(if outs.len() == 1 {
        outs.pop().expect("one tile")
    } else {
        Tensor::cat(&outs, 0)?
    })
}
