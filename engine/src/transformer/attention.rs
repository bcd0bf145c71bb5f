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

    pub(crate) fn is_packed(&self) -> bool {
        self.qkv_proj.is_packed() && self.o_proj.is_packed()
    }

    /// Bytes of projection weights.
    pub fn weight_bytes(&self) -> usize {
        self.qkv_proj.weight_bytes() + self.o_proj.weight_bytes()
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
        let scale = 1.0 / (hd as f64).sqrt();
        if let Some(out) = host_attention(&q, &k, &v, mask, scale as f32)? {
            let out = out.transpose(1, 2)?.reshape((b, l, nh * hd))?;
            return self.o_proj.forward(&out);
        }

        // GQA without copying keys: query head h uses kv head h / n_rep, so fold the n_rep query
        // heads of each kv head into the row dimension: [b, nkv, n_rep * l, hd].
        let n_rep = nh / nkv;
        let q = q.reshape((b, nkv, n_rep * l, hd))?;
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

/// Below this many (query row, head, key) triples the host attention runs on the calling thread:
/// waking the thread pool costs more than the work (e.g. the code predictor's 16 heads over at
/// most 16 positions, or a talker step at a short context).
const SERIAL_ATTENTION_WORK: usize = 16 * 1024;

impl Attention {
    /// `l` consecutive positions per row on the CPU in f32, on host buffers: `x` is
    /// `(b·l) × hidden` (already normed, row-major by row then position), `positions[r·l + j]`
    /// the RoPE position of position `j` of row `r`; the new keys and values are appended to
    /// `cache` and position `j` attends causally to the cached history and to positions `0..=j`.
    /// Returns `(b·l) × hidden`, or `None` when the weights are not packed for the CPU kernels.
    /// Same math as [`Attention::forward`], without the dozens of small tensor operations per
    /// layer that dominate the overhead of a decode step (`l == 1`) or of a tiny prefill (the
    /// code predictor's 2 positions per frame).
    pub fn step_cpu(
        &self,
        x: &[f32],
        positions: &[u32],
        l: usize,
        rope: &RotaryEmbedding,
        key_valid: Option<&[Vec<bool>]>,
        cache: &mut LayerKvCache,
    ) -> Result<Option<Vec<f32>>> {
        let rows = positions.len();
        let l = l.max(1);
        let b = rows / l;
        if b * l != rows {
            return Err(crate::Error::InvalidArgument(format!(
                "attention step: {rows} positions are not {l} per row"
            )));
        }
        let (nh, nkv, hd) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let Some(qkv) = self.qkv_proj.forward_f32(x, rows)? else {
            return Ok(None);
        };
        let width = (nh + 2 * nkv) * hd;
        let half = hd / 2;
        let mut q = vec![0f32; rows * nh * hd];
        // Keys and values in the cache layout [b, kv heads, l, head_dim].
        let mut k = vec![0f32; rows * nkv * hd];
        let mut v = vec![0f32; rows * nkv * hd];
        let mut cos = vec![0f32; half];
        let mut sin = vec![0f32; half];
        let mut kr = vec![0f32; nkv * hd];
        for (ri, &pos) in positions.iter().enumerate() {
            let (bi, j) = (ri / l, ri % l);
            let row = &qkv[ri * width..(ri + 1) * width];
            for ((c, s), &f) in cos.iter_mut().zip(sin.iter_mut()).zip(rope.inv_freq()) {
                let a = pos as f32 * f;
                (*c, *s) = (a.cos(), a.sin());
            }
            let rotate = |head: &mut [f32]| {
                for i in 0..half {
                    let (a, c) = (head[i], head[i + half]);
                    head[i] = a * cos[i] - c * sin[i];
                    head[i + half] = c * cos[i] + a * sin[i];
                }
            };
            let qd = &mut q[ri * nh * hd..(ri + 1) * nh * hd];
            qd.copy_from_slice(&row[..nh * hd]);
            self.q_norm.forward_rows_f32(qd);
            qd.chunks_mut(hd).for_each(rotate);
            kr.copy_from_slice(&row[nh * hd..(nh + nkv) * hd]);
            self.k_norm.forward_rows_f32(&mut kr);
            kr.chunks_mut(hd).for_each(rotate);
            let vr = &row[(nh + nkv) * hd..];
            for g in 0..nkv {
                let dst = ((bi * nkv + g) * l + j) * hd;
                k[dst..dst + hd].copy_from_slice(&kr[g * hd..(g + 1) * hd]);
                v[dst..dst + hd].copy_from_slice(&vr[g * hd..(g + 1) * hd]);
            }
        }
        let n_rep = nh / nkv;
        let scale = 1.0 / (hd as f32).sqrt();
        let mut out = vec![0f32; rows * nh * hd];
        cache.append_and_read_f32(k, v, (b, nkv, l, hd), |kc, vc, cap, len| {
            use rayon::prelude::*;
            let first_new = len - l;
            let head = |(idx, o): (usize, &mut [f32])| {
                let (ri, h) = (idx / nh, idx % nh);
                let (bi, j) = (ri / l, ri % l);
                // Causal: the cached history and the new positions up to this one.
                let visible = first_new + j + 1;
                let g = h / n_rep;
                let qh = &q[(ri * nh + h) * hd..(ri * nh + h + 1) * hd];
                let base = (bi * nkv + g) * cap * hd;
                let valid = |t: usize| key_valid.is_none_or(|kv| kv[bi][t]);
                let mut scores: Vec<f32> = (0..visible)
                    .map(|t| {
                        if valid(t) {
                            let kt = &kc[base + t * hd..base + (t + 1) * hd];
                            crate::kernels::elementwise::dot(qh, kt) * scale
                        } else {
                            f32::NEG_INFINITY
                        }
                    })
                    .collect();
                let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0f32;
                for s in &mut scores {
                    *s = (*s - max).exp();
                    sum += *s;
                }
                o.fill(0.0);
                for (t, &p) in scores.iter().enumerate() {
                    if p > 0.0 {
                        let w = p / sum;
                        let vt = &vc[base + t * hd..base + (t + 1) * hd];
                        o.iter_mut().zip(vt).for_each(|(o, v)| *o += w * v);
                    }
                }
            };
            if rows * nh * len < SERIAL_ATTENTION_WORK {
                out.chunks_mut(hd).enumerate().for_each(head);
            } else {
                out.par_chunks_mut(hd).enumerate().for_each(head);
            }
        })?;
        self.o_proj.forward_f32(&out, rows)
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
    if let Some(out) = host_attention(q, k, v, mask, 1.0 / (hd as f32).sqrt())? {
        return Ok(out);
    }
    let scores = (matmul(q, &k.t()?)? * (1.0 / (hd as f64).sqrt()))?.to_dtype(DType::F32)?;
    let scores = match mask {
        Some(m) => scores.broadcast_add(&m.to_dtype(DType::F32)?)?,
        None => scores,
    };
    let probs = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(v.dtype())?;
    matmul(&probs, v)
}

/// Below this many score entries per head (`queries × keys`) the tensor path is used: the host
/// kernel's packing and copies only pay off on long sequences (prefills, encoder windows).
const HOST_ATTENTION_MIN_SCORES: usize = 64 * 64;

/// Mask values below this are "masked" (the masks use `f32::MIN`).
const MASKED_BELOW: f32 = f32::MIN / 2.0;
/// Query positions per block of the host attention: each block reads keys only up to the last
/// one its queries may see.
const QUERY_BLOCK: usize = 128;

/// Softmax of one row in f32 (max-subtracted exponentials, as candle's); a row masked entirely
/// with -inf becomes uniform rather than NaN.
fn softmax_in_place(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        let u = 1.0 / row.len() as f32;
        row.fill(u);
        return;
    }
    let mut sum = 0f32;
    for s in row.iter_mut() {
        *s = (*s - max).exp();
        sum += *s;
    }
    let inv = 1.0 / sum;
    row.iter_mut().for_each(|s| *s *= inv);
}

/// `softmax(q·kᵀ·scale + mask)·v` on the CPU with the packed GEMM, or `None` when it does not
/// apply (not on the CPU, not f32, no AVX-512, or too little work to pay for the packing).
///
/// `q`: `[b, heads, lq, hd]`; `k`, `v`: `[b, kv_heads, lk, hd]` (query head `h` uses kv head
/// `h / (heads / kv_heads)`); `mask`: additive, broadcastable to `[b, 1, lq, lk]`. Returns
/// `[b, heads, lq, hd]`.
///
/// Why: on long sequences candle's CPU path spends most of its time in passes over the
/// `[heads, lq, lk]` score tensor (scale, mask add, softmax, copies for strided operands), each
/// single-threaded or strided; an aligner prefill of 1280 tokens spent ~2/3 of its decoder time
/// there. Here both products run on the packed GEMM (the keys and the transposed values are
/// packed once per kv head, like weights) and the scale, mask and softmax are one fused,
/// multi-threaded pass per row. The softmax is the same f32 math (max-subtracted exponentials).
pub fn host_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    scale: f32,
) -> Result<Option<Tensor>> {
    use crate::kernels::packed::PackedMatrix;
    use rayon::prelude::*;

    if !q.device().is_cpu()
        || q.dtype() != DType::F32
        || k.dtype() != DType::F32
        || v.dtype() != DType::F32
        || !crate::kernels::packed_kernels_available()
    {
        return Ok(None);
    }
    let (b, nh, lq, hd) = q.dims4()?;
    let (kb, nkv, lk, khd) = k.dims4()?;
    if kb != b || khd != hd || v.dims4()? != (b, nkv, lk, hd) || nkv == 0 || nh % nkv != 0 {
        return Ok(None);
    }
    if lq * lk < HOST_ATTENTION_MIN_SCORES {
        return Ok(None);
    }
    let mask = match mask {
        // A per-head mask is left to the tensor path.
        Some(m) => match m.broadcast_as((b, 1, lq, lk)) {
            Ok(m) => Some(
                m.to_dtype(DType::F32)?
                    .contiguous()?
                    .flatten_all()?
                    .to_vec1::<f32>()?,
            ),
            Err(_) => return Ok(None),
        },
        None => None,
    };
    let qh = (q * f64::from(scale))?
        .contiguous()?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let kh = k.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
    // Values transposed per kv head: `[b, kv_heads, hd, lk]`, the layout the second product wants.
    let vt = v
        .transpose(2, 3)?
        .contiguous()?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let n_rep = nh / nkv;
    let mut out = vec![0f32; b * nh * lq * hd];
    for bi in 0..b {
        let mask_b = mask
            .as_deref()
            .map(|m| &m[bi * lq * lk..(bi + 1) * lq * lk]);
        // Keys each query needs: up to its last unmasked key. Keys after it carry a mask of
        // about f32::MIN, whose softmax weight is exactly 0 in f32, so leaving them out changes
        // nothing; for a causal prefill it halves the work. A query with every key masked keeps
        // all of them (a uniform row, as the tensor path gives).
        let need: Vec<usize> = (0..lq)
            .map(|i| match mask_b {
                None => lk,
                Some(m) => m[i * lk..(i + 1) * lk]
                    .iter()
                    .rposition(|&x| x > MASKED_BELOW)
                    .map_or(lk, |j| j + 1),
            })
            .collect();
        let blocks: Vec<(usize, usize)> = if mask_b.is_none() {
            vec![(0, lq)]
        } else {
            (0..lq)
                .step_by(QUERY_BLOCK)
                .map(|i0| (i0, (i0 + QUERY_BLOCK).min(lq)))
                .collect()
        };
        for g in 0..nkv {
            let kv = (bi * nkv + g) * lk * hd;
            let k_g = &kh[kv..kv + lk * hd];
            let vt_g = &vt[kv..kv + hd * lk];
            for &(i0, i1) in &blocks {
                let bl = i1 - i0;
                let nk = need[i0..i1].iter().copied().max().unwrap_or(lk);
                // The block's queries of the n_rep heads that share this kv head: [n_rep · bl, hd].
                let mut qb = Vec::with_capacity(n_rep * bl * hd);
                for r in 0..n_rep {
                    let h0 = ((bi * nh + g * n_rep + r) * lq + i0) * hd;
                    qb.extend_from_slice(&qh[h0..h0 + bl * hd]);
                }
                let keys = PackedMatrix::from_f32(&k_g[..nk * hd], nk, hd)?;
                let mut scores = keys.matmul(&qb, n_rep * bl)?;
                scores.par_chunks_mut(nk).enumerate().for_each(|(r, row)| {
                    if let Some(m) = mask_b {
                        let i = i0 + r % bl;
                        row.iter_mut()
                            .zip(&m[i * lk..i * lk + nk])
                            .for_each(|(s, m)| *s += m);
                    }
                    softmax_in_place(row);
                });
                let vt_b: Vec<f32> = if nk == lk {
                    vt_g.to_vec()
                } else {
                    vt_g.chunks_exact(lk)
                        .flat_map(|d| &d[..nk])
                        .copied()
                        .collect()
                };
                let values = PackedMatrix::from_f32(&vt_b, hd, nk)?;
                let o = values.matmul(&scores, n_rep * bl)?;
                for r in 0..n_rep {
                    let h0 = ((bi * nh + g * n_rep + r) * lq + i0) * hd;
                    out[h0..h0 + bl * hd].copy_from_slice(&o[r * bl * hd..(r + 1) * bl * hd]);
                }
            }
        }
    }
    Ok(Some(Tensor::from_vec(out, (b, nh, lq, hd), q.device())?))
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::*;
    use crate::transformer::mask::attention_mask;

    /// The tensor path of [`scaled_dot_product`] with GQA (keys repeated per query head).
    fn reference(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Tensor {
        let (_, nh, _, hd) = q.dims4().unwrap();
        let n_rep = nh / k.dim(1).unwrap();
        let rep = |t: &Tensor| {
            let (b, g, l, d) = t.dims4().unwrap();
            t.unsqueeze(2)
                .unwrap()
                .broadcast_as((b, g, n_rep, l, d))
                .unwrap()
                .reshape((b, g * n_rep, l, d))
                .unwrap()
        };
        let scores =
            (q.matmul(&rep(k).t().unwrap()).unwrap() * (1.0 / (hd as f64).sqrt())).unwrap();
        let scores = match mask {
            Some(m) => scores.broadcast_add(m).unwrap(),
            None => scores,
        };
        candle_nn::ops::softmax_last_dim(&scores)
            .unwrap()
            .matmul(&rep(v))
            .unwrap()
    }

    #[test]
    fn host_attention_matches_the_tensor_path() {
        if !crate::kernels::packed_kernels_available() {
            eprintln!("SKIPPED: no AVX-512 here; the host attention is not used on this CPU");
            return;
        }
        let dev = Device::Cpu;
        // Batch 2, GQA 4 query heads over 2 kv heads, a prefill of 300 new positions (three
        // query blocks) after 30 cached ones, causal mask with padded keys in the second row.
        let (b, nh, nkv, lq, lk, hd) = (2, 4, 2, 300, 330, 64);
        let q = Tensor::randn(0f32, 1.0, (b, nh, lq, hd), &dev).unwrap();
        let k = Tensor::randn(0f32, 1.0, (b, nkv, lk, hd), &dev).unwrap();
        let v = Tensor::randn(0f32, 1.0, (b, nkv, lk, hd), &dev).unwrap();
        let mut valid = vec![vec![true; lk]; b];
        valid[1][..5].iter_mut().for_each(|x| *x = false);
        let mask = attention_mask(b, lq, lk, Some(&valid), DType::F32, &dev)
            .unwrap()
            .unwrap();
        for m in [Some(&mask), None] {
            let want = reference(&q, &k, &v, m);
            let got = host_attention(&q, &k, &v, m, 1.0 / (hd as f32).sqrt())
                .unwrap()
                .expect("the host path applies");
            let err = (got - &want)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(err < 1e-5, "max abs difference {err}");
        }
        // Too little work, another dtype, a per-head mask: the tensor path is used.
        let small = q.narrow(2, 0, 8).unwrap();
        let ks = k.narrow(2, 0, 8).unwrap();
        let vs = v.narrow(2, 0, 8).unwrap();
        assert!(
            host_attention(&small, &ks, &vs, None, 1.0)
                .unwrap()
                .is_none()
        );
        let q16 = q.to_dtype(DType::BF16).unwrap();
        assert!(host_attention(&q16, &k, &v, None, 1.0).unwrap().is_none());
        let per_head = Tensor::zeros((b, nh, lq, lk), DType::F32, &dev).unwrap();
        assert!(
            host_attention(&q, &k, &v, Some(&per_head), 1.0)
                .unwrap()
                .is_none()
        );
    }
}
