//! The split residual vector quantizers of the 12 Hz codec.
//!
//! Codebook vectors are `embed_sum / max(cluster_usage, 1e-5)` (the reference's epsilon; entries
//! with a smaller usage get the clamped divisor, not their own).
//!
//! * **Encode** (`encoder.quantizer`, Mimi): the semantic branch projects the latent with its own
//!   `input_proj` and quantizes `n_semantic` levels; the acoustic branch projects the **same**
//!   latent with its `input_proj` (the semantic quantization is not subtracted) and runs residual
//!   VQ. Each level picks the nearest entry by Euclidean distance — one matrix product per level,
//!   `‖x‖² − 2x·e + ‖e‖²` clamped at 0, the first index winning ties (as `torch.cdist` + `argmin`)
//!   — then subtracts that entry from the residual.
//! * **Decode** (`decoder.quantizer`): each branch sums its levels' entries (semantic: the first
//!   level; acoustic: the rest, in order) and applies its `output_proj`; the result is their sum.

use candle_core::{DType, Tensor};

use qwen3_speech_engine::nn::{Linear, matmul};
use qwen3_speech_engine::weights::Weights;
use qwen3_speech_engine::{Error, Result};

/// The reference's `cluster_usage` clamp.
pub const USAGE_EPSILON: f32 = 1e-5;

/// `embed_sum / clamp(cluster_usage, 1e-5)` as a `(size, dim)` f32 tensor.
fn codebook(w: &Weights, sum_name: &str, size: usize, dim: usize) -> Result<Tensor> {
    let sum = w.get_as((size, dim), sum_name, DType::F32)?;
    let usage = w.get_as(size, "cluster_usage", DType::F32)?;
    Ok(sum.broadcast_div(&usage.clamp(USAGE_EPSILON, f32::MAX)?.unsqueeze(1)?)?)
}

/// One level for encoding: the entries, their transpose and squared norms.
#[derive(Debug, Clone)]
struct EncodeLevel {
    embed: Tensor,
    embed_t: Tensor,
    norms: Tensor,
}

impl EncodeLevel {
    fn new(embed: Tensor) -> Result<Self> {
        Ok(EncodeLevel {
            embed_t: embed.t()?.contiguous()?,
            norms: embed.sqr()?.sum(1)?.unsqueeze(0)?,
            embed,
        })
    }

    /// Nearest entries of `r` `(T, dim)`: the indices and the selected vectors.
    fn nearest(&self, r: &Tensor) -> Result<(Vec<u32>, Tensor)> {
        let rn = r.sqr()?.sum_keepdim(1)?;
        let dots = matmul(r, &self.embed_t)?;
        let d2 = (dots * -2.0)?
            .broadcast_add(&rn)?
            .broadcast_add(&self.norms)?;
        let d = d2.clamp(0f32, f32::MAX)?.sqrt()?;
        let (rows, size) = d.dims2()?;
        let dv = d.flatten_all()?.to_vec1::<f32>()?;
        let mut idx = Vec::with_capacity(rows);
        for row in dv.chunks(size) {
            let mut best = 0usize;
            for (j, &v) in row.iter().enumerate() {
                // Strictly smaller: the first of equal distances wins; NaN never wins.
                if v < row[best] || row[best].is_nan() && !v.is_nan() {
                    best = j;
                }
            }
            idx.push(best as u32);
        }
        let it = Tensor::new(idx.as_slice(), r.device())?;
        let chosen = self.embed.index_select(&it, 0)?;
        Ok((idx, chosen))
    }
}

/// Projections of the encoder's quantizer input, for tests and inspection.
pub struct QuantizerInputs {
    /// `(T, dim)` after the semantic `input_proj`.
    pub semantic: Tensor,
    /// `(T, dim)` after the acoustic `input_proj`.
    pub acoustic: Tensor,
}

/// `encoder.quantizer`: split RVQ encode, limited to the levels that are kept.
#[derive(Debug, Clone)]
pub struct SplitRvqEncoder {
    semantic_proj: Linear,
    acoustic_proj: Linear,
    semantic: Vec<EncodeLevel>,
    acoustic: Vec<EncodeLevel>,
}

impl SplitRvqEncoder {
    /// Loads the first `levels` levels (semantic ones first) of a quantizer with `n_semantic`
    /// semantic levels, codebooks `size × dim`, input width `latent`.
    pub fn load(
        w: &Weights,
        latent: usize,
        dim: usize,
        size: usize,
        n_semantic: usize,
        levels: usize,
    ) -> Result<Self> {
        let sem_w = w.pp("semantic_residual_vector_quantizer");
        let aco_w = w.pp("acoustic_residual_vector_quantizer");
        let load_levels = |rvq: &Weights, n: usize| -> Result<Vec<EncodeLevel>> {
            (0..n)
                .map(|j| {
                    EncodeLevel::new(codebook(
                        &rvq.pp("layers").pp(j).pp("codebook"),
                        "embed_sum",
                        size,
                        dim,
                    )?)
                })
                .collect()
        };
        let proj = |rvq: &Weights| -> Result<Linear> {
            let wt = rvq
                .pp("input_proj")
                .get_as((dim, latent, 1), "weight", DType::F32)?;
            Linear::from_tensors(wt.squeeze(2)?, None)
        };
        let n_sem = n_semantic.min(levels);
        Ok(SplitRvqEncoder {
            semantic_proj: proj(&sem_w)?,
            acoustic_proj: proj(&aco_w)?,
            semantic: load_levels(&sem_w, n_sem)?,
            acoustic: load_levels(&aco_w, levels.saturating_sub(n_semantic))?,
        })
    }

    /// Levels computed per frame.
    pub fn levels(&self) -> usize {
        self.semantic.len() + self.acoustic.len()
    }

    /// Both input projections of `latent` `(T, latent_dim)`.
    pub fn project(&self, latent: &Tensor) -> Result<QuantizerInputs> {
        Ok(QuantizerInputs {
            semantic: self.semantic_proj.forward(latent)?,
            acoustic: self.acoustic_proj.forward(latent)?,
        })
    }

    /// Codes `[frame][level]` of `latent` `(T, latent_dim)`.
    pub fn encode(&self, latent: &Tensor) -> Result<Vec<u32>> {
        let (t, _) = latent.dims2()?;
        let inputs = self.project(latent)?;
        let mut per_level: Vec<Vec<u32>> = Vec::with_capacity(self.levels());
        for (levels, x) in [
            (&self.semantic, inputs.semantic),
            (&self.acoustic, inputs.acoustic),
        ] {
            let mut residual = x;
            for level in levels.iter() {
                let (idx, chosen) = level.nearest(&residual)?;
                residual = (residual - chosen)?;
                per_level.push(idx);
            }
        }
        let q = per_level.len();
        let mut out = vec![0u32; t * q];
        for (l, codes) in per_level.iter().enumerate() {
            for (f, &c) in codes.iter().enumerate() {
                out[f * q + l] = c;
            }
        }
        Ok(out)
    }
}

/// `decoder.quantizer`: sums of codebook entries and the two output projections.
#[derive(Debug, Clone)]
pub struct SplitRvqDecoder {
    /// `(size, dim)` per level: the semantic level first.
    levels: Vec<Tensor>,
    first_proj: Linear,
    rest_proj: Linear,
    size: usize,
}

/// The decoder quantizer's two branches and their sum, `(T, out_dim)` each.
pub struct QuantizedParts {
    pub semantic: Tensor,
    pub acoustic: Tensor,
    pub sum: Tensor,
}

impl SplitRvqDecoder {
    /// `num_quantizers` levels (1 semantic) of `size × dim/2` entries, output width `dim`.
    pub fn load(w: &Weights, num_quantizers: usize, size: usize, dim: usize) -> Result<Self> {
        let half = dim / 2;
        let mut levels = Vec::with_capacity(num_quantizers);
        levels.push(codebook(
            &w.pp("rvq_first.vq.layers.0._codebook"),
            "embedding_sum",
            size,
            half,
        )?);
        for j in 0..num_quantizers - 1 {
            levels.push(codebook(
                &w.pp("rvq_rest.vq.layers").pp(j).pp("_codebook"),
                "embedding_sum",
                size,
                half,
            )?);
        }
        let proj = |name: &str| -> Result<Linear> {
            let wt = w
                .pp(name)
                .pp("output_proj")
                .get_as((dim, half, 1), "weight", DType::F32)?;
            Linear::from_tensors(wt.squeeze(2)?, None)
        };
        Ok(SplitRvqDecoder {
            levels,
            first_proj: proj("rvq_first")?,
            rest_proj: proj("rvq_rest")?,
            size,
        })
    }

    pub fn num_quantizers(&self) -> usize {
        self.levels.len()
    }

    pub fn codebook_size(&self) -> usize {
        self.size
    }

    /// `codes` `[frame][level]` (`frames × num_quantizers` values, checked) → both branches.
    pub fn decode_parts(&self, codes: &[u32], frames: usize) -> Result<QuantizedParts> {
        let q = self.levels.len();
        if codes.len() != frames * q {
            return Err(Error::InvalidArgument(format!(
                "{} code values for {frames} frames of {q} levels",
                codes.len()
            )));
        }
        if let Some(&bad) = codes.iter().find(|&&c| c as usize >= self.size) {
            return Err(Error::InvalidArgument(format!(
                "code {bad} is outside the codebooks of {} entries",
                self.size
            )));
        }
        let device = self.levels[0].device();
        let lookup = |l: usize| -> Result<Tensor> {
            let idx: Vec<u32> = (0..frames).map(|f| codes[f * q + l]).collect();
            Ok(self.levels[l].index_select(&Tensor::new(idx.as_slice(), device)?, 0)?)
        };
        let semantic = self.first_proj.forward(&lookup(0)?)?;
        let mut rest = lookup(1)?;
        for l in 2..q {
            rest = (rest + lookup(l)?)?;
        }
        let acoustic = self.rest_proj.forward(&rest)?;
        let sum = (&semantic + &acoustic)?;
        Ok(QuantizedParts {
            semantic,
            acoustic,
            sum,
        })
    }
}
