use candle_core::{D, DType, Tensor};

use super::config::Qwen3Config;
use super::kv_cache::LayerKvCache;
use super::rope::{RopeTables, RotaryEmbedding};
use crate::Result;
use crate::nn::{Linear, RmsNorm, matmul};
use crate::weights::Weights;

/// Qwen3 self-attention: GQA with per-head RMSNorm on q and k before RoPE.
#[derive(Debug, Clone)]
pub struct Attention {
    /// q, k and v projections fused into one: outputs `[q | k | v]`.
    qkv_proj: Linear,
    o_proj: Linear,
    q_norm: RmsNorm,
    k_norm: RmsNorm,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    pub fn load(w: &Weights, cfg: &Qwen3Config) -> Result<Self> {
        let (h, nh, nkv, hd) = (
            cfg.hidden_size,
            cfg.num_attention_heads,
            cfg.num_kv_heads(),
            cfg.head_dim(),
        );
        let bias = cfg.attention_bias;
        Ok(Attention {
            qkv_proj: Linear::load_fused(
                &[w.pp("q_proj"), w.pp("k_proj"), w.pp("v_proj")],
                h,
                &[nh * hd, nkv * hd, nkv * hd],
                bias,
            )?,
            o_proj: Linear::load(&w.pp("o_proj"), nh * hd, h, bias)?,
            q_norm: RmsNorm::load(&w.pp("q_norm"), hd, cfg.rms_norm_eps)?,
            k_norm: RmsNorm::load(&w.pp("k_norm"), hd, cfg.rms_norm_eps)?,
            num_heads: nh,
            num_kv_heads: nkv,
            head_dim: hd,
        })
    }

    /// Queries after q_norm, before RoPE, `[b, heads, len, head_dim]` (exposed for golden tests).
    pub fn normed_queries(&self, x: &Tensor) -> Result<Tensor> {
        let (b, l, _) = x.dims3()?;
        let q = self
            .qkv_proj
            .forward(x)?
            .narrow(2, 0, self.num_heads * self.head_dim)?
            .reshape((b, l, self.num_heads, self.head_dim))?;
        Ok(self.q_norm.forward(&q)?.transpose(1, 2)?)
    }

    /// `x`: `[b, len, hidden]`; `mask`: additive `[b, 1, len, kv_len]` or `None`.
    pub fn forward(
        &self,
        x: &Tensor,
        rope: &RopeTables,
        mask: Option<&Tensor>,
        cache: &mut LayerKvCache,
    ) -> Result<Tensor> {
        let (b, l, _) = x.dims3()?;
        let (nh, nkv, hd) = (self.num_heads, self.num_kv_heads, self.head_dim);

        let qkv = self.qkv_proj.forward(x)?;
        let q = qkv.narrow(2, 0, nh * hd)?.reshape((b, l, nh, hd))?;
        let k = qkv.narrow(2, nh * hd, nkv * hd)?.reshape((b, l, nkv, hd))?;
        let v = qkv
            .narrow(2, (nh + nkv) * hd, nkv * hd)?
            .reshape((b, l, nkv, hd))?;
        let q = self.q_norm.forward(&q)?.transpose(1, 2)?;
        let k = self.k_norm.forward(&k)?.transpose(1, 2)?;
        let v = v.transpose(1, 2)?.contiguous()?;
        let q = RotaryEmbedding::apply(&q, rope)?;
        let k = RotaryEmbedding::apply(&k, rope)?;

        let (k, v) = cache.append(&k, &v)?;
        let kv_len = k.dim(2)?;

        // GQA without copying keys: query head h uses kv head h / n_rep, so fold the n_rep query
        // heads of each kv head into the row dimension: [b, nkv, n_rep * l, hd].
        let n_rep = nh / nkv;
        let q = q.reshape((b, nkv, n_rep * l, hd))?;
        let scale = 1.0 / (hd as f64).sqrt();
        let scores = (matmul(&q, &k.t()?)? * scale)?;
        let scores = scores.to_dtype(DType::F32)?;
        let scores = match mask {
            Some(m) => scores
                .reshape((b, nkv, n_rep, l, kv_len))?
                .broadcast_add(&m.to_dtype(DType::F32)?.unsqueeze(1)?)?
                .reshape((b, nkv, n_rep * l, kv_len))?,
            None => scores,
        };
        // Softmax in f32 (as the reference's eager path), then back to the activation dtype.
        let probs = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(v.dtype())?;
        let out = matmul(&probs, &v)?; // [b, nkv, n_rep * l, hd]
        let out = out
            .reshape((b, nh, l, hd))?
            .transpose(1, 2)?
            .reshape((b, l, nh * hd))?;
        self.o_proj.forward(&out)
    }
}

/// Scaled dot-product attention over full heads with an optional additive mask, for encoders.
/// `q`, `k`, `v`: `[b, heads, len, head_dim]`.
pub fn scaled_dot_product(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
) -> Result<Tensor> {
    let hd = q.dim(D::Minus1)?;
    let scores = (matmul(q, &k.t()?)? * (1.0 / (hd as f64).sqrt()))?.to_dtype(DType::F32)?;
    let scores = match mask {
        Some(m) => scores.broadcast_add(&m.to_dtype(DType::F32)?)?,
        None => scores,
    };
    let probs = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(v.dtype())?;
    matmul(&probs, v)
}
