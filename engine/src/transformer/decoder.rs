use candle_core::{DType, Tensor};

use super::attention::Attention;
use super::config::Qwen3Config;
use super::kv_cache::KvCache;
use super::mask::attention_mask;
use super::rope::{Positions, RotaryEmbedding};
use crate::Result;
use crate::nn::{Linear, RmsNorm, silu};
use crate::weights::Weights;

/// SwiGLU MLP: `down(silu(gate(x)) * up(x))`.
#[derive(Debug, Clone)]
pub struct Mlp {
    /// gate and up projections fused: outputs `[gate | up]`.
    gate_up_proj: Linear,
    down_proj: Linear,
    intermediate: usize,
}

impl Mlp {
    pub fn load(w: &Weights, hidden: usize, intermediate: usize) -> Result<Self> {
        Ok(Mlp {
            gate_up_proj: Linear::load_fused(
                &[w.pp("gate_proj"), w.pp("up_proj")],
                hidden,
                &[intermediate, intermediate],
                false,
            )?,
            down_proj: Linear::load(&w.pp("down_proj"), intermediate, hidden, false)?,
            intermediate,
        })
    }

    fn is_packed(&self) -> bool {
        self.gate_up_proj.is_packed() && self.down_proj.is_packed()
    }

    /// Bytes of projection weights.
    pub fn weight_bytes(&self) -> usize {
        self.gate_up_proj.weight_bytes() + self.down_proj.weight_bytes()
    }

    /// `rows` f32 rows on the host (see [`Attention::step_cpu`]); `None` when not packed.
    pub fn forward_rows_f32(&self, x: &[f32], rows: usize) -> Result<Option<Vec<f32>>> {
        let Some(gu) = self.gate_up_proj.forward_f32(x, rows)? else {
            return Ok(None);
        };
        let i = self.intermediate;
        let mut act = vec![0f32; rows * i];
        for (a, g) in act.chunks_mut(i).zip(gu.chunks(2 * i)) {
            for ((a, &gate), &up) in a.iter_mut().zip(&g[..i]).zip(&g[i..]) {
                *a = gate / (1.0 + (-gate).exp()) * up;
            }
        }
        self.down_proj.forward_f32(&act, rows)
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let gu = self.gate_up_proj.forward(x)?;
        let last = gu.rank() - 1;
        let gate = silu(&gu.narrow(last, 0, self.intermediate)?)?;
        let up = gu.narrow(last, self.intermediate, self.intermediate)?;
        self.down_proj.forward(&(gate * up)?)
    }
}

/// One pre-norm decoder layer.
#[derive(Debug, Clone)]
pub struct DecoderLayer {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: Mlp,
}

impl DecoderLayer {
    pub fn load(w: &Weights, cfg: &Qwen3Config) -> Result<Self> {
        Ok(DecoderLayer {
            input_layernorm: RmsNorm::load(
                &w.pp("input_layernorm"),
                cfg.hidden_size,
                cfg.rms_norm_eps,
            )?,
            self_attn: Attention::load(&w.pp("self_attn"), cfg)?,
            post_attention_layernorm: RmsNorm::load(
                &w.pp("post_attention_layernorm"),
                cfg.hidden_size,
                cfg.rms_norm_eps,
            )?,
            mlp: Mlp::load(&w.pp("mlp"), cfg.hidden_size, cfg.intermediate_size)?,
        })
    }

    fn is_packed(&self) -> bool {
        self.self_attn.is_packed() && self.mlp.is_packed()
    }

    /// Bytes of projection weights (what a decode step streams).
    pub fn weight_bytes(&self) -> usize {
        self.self_attn.weight_bytes() + self.mlp.weight_bytes()
    }

    pub fn attention(&self) -> &Attention {
        &self.self_attn
    }

    pub fn input_norm(&self) -> &RmsNorm {
        &self.input_layernorm
    }

    /// `l` positions per row on the host in f32 (see [`Attention::step_cpu`]); updates `x`
    /// (`(b·l) × hidden`) in place. Returns false when the weights are not packed.
    fn step_cpu(
        &self,
        x: &mut [f32],
        positions: &[u32],
        l: usize,
        rope: &RotaryEmbedding,
        key_valid: Option<&[Vec<bool>]>,
        cache: &mut super::kv_cache::LayerKvCache,
    ) -> Result<bool> {
        let rows = positions.len();
        let mut h = x.to_vec();
        self.input_layernorm.forward_rows_f32(&mut h);
        let Some(a) = self
            .self_attn
            .step_cpu(&h, positions, l, rope, key_valid, cache)?
        else {
            return Ok(false);
        };
        x.iter_mut().zip(&a).for_each(|(x, a)| *x += a);
        h.copy_from_slice(x);
        self.post_attention_layernorm.forward_rows_f32(&mut h);
        let Some(m) = self.mlp.forward_rows_f32(&h, rows)? else {
            return Ok(false);
        };
        x.iter_mut().zip(&m).for_each(|(x, m)| *x += m);
        Ok(true)
    }

    fn forward(
        &self,
        x: &Tensor,
        rope: &super::rope::RopeTables,
        mask: Option<&Tensor>,
        cache: &mut super::kv_cache::LayerKvCache,
    ) -> Result<Tensor> {
        let h = self.input_layernorm.forward(x)?;
        let x = (x + self.self_attn.forward(&h, rope, mask, cache)?)?;
        let h = self.post_attention_layernorm.forward(&x)?;
        Ok((&x + self.mlp.forward(&h)?)?)
    }
}

/// The stack of Qwen3 decoder layers and the final norm (`model.layers.*`, `model.norm`).
/// Token embeddings and output heads differ between the models that share this stack, so they
/// live with each model.
#[derive(Debug, Clone)]
pub struct Qwen3Decoder {
    layers: Vec<DecoderLayer>,
    /// Every projection uses the packed CPU kernels (enables the CPU decode step).
    packed: bool,
    norm: RmsNorm,
    rope: RotaryEmbedding,
    cfg: Qwen3Config,
}

impl Qwen3Decoder {
    /// Loads `layers.{i}.*` and `norm.weight` from the view `w` (e.g. `thinker.model`).
    pub fn load(w: &Weights, cfg: &Qwen3Config) -> Result<Self> {
        cfg.validate()?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| DecoderLayer::load(&w.pp("layers").pp(i), cfg))
            .collect::<Result<Vec<_>>>()?;
        let packed = layers.iter().all(|l| l.is_packed());
        Ok(Qwen3Decoder {
            layers,
            packed,
            norm: RmsNorm::load(&w.pp("norm"), cfg.hidden_size, cfg.rms_norm_eps)?,
            rope: RotaryEmbedding::new(cfg.head_dim(), cfg.rope_theta),
            cfg: cfg.clone(),
        })
    }

    pub fn config(&self) -> &Qwen3Config {
        &self.cfg
    }

    pub fn layers(&self) -> &[DecoderLayer] {
        &self.layers
    }

    pub fn rope(&self) -> &RotaryEmbedding {
        &self.rope
    }

    /// Bytes of weights one decode step reads (all layers' projections; norms are negligible).
    pub fn weight_bytes(&self) -> usize {
        self.layers.iter().map(|l| l.weight_bytes()).sum()
    }

    pub fn new_cache(&self) -> KvCache {
        KvCache::new(self.layers.len())
    }

    /// Runs `embeds` `[b, len, hidden]` at `positions` after what `cache` holds, appending to
    /// the cache; returns the final-normed hidden states `[b, len, hidden]`.
    pub fn forward(
        &self,
        embeds: &Tensor,
        positions: &Positions,
        key_valid: Option<&[Vec<bool>]>,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let mut hidden =
            self.forward_layers(embeds, positions, key_valid, cache, self.layers.len())?;
        hidden = self.norm.forward(&hidden)?;
        Ok(hidden)
    }

    /// Runs only the first `n` layers and returns the un-normed residual stream (golden tests
    /// pin the output of layer 0).
    pub fn forward_layers(
        &self,
        embeds: &Tensor,
        positions: &Positions,
        key_valid: Option<&[Vec<bool>]>,
        cache: &mut KvCache,
        n: usize,
    ) -> Result<Tensor> {
        let (b, l, _) = embeds.dims3()?;
        if positions.batch() != b || positions.len() != l {
            return Err(crate::Error::InvalidArgument(format!(
                "decoder: positions are {}x{}, embeddings {b}x{l}",
                positions.batch(),
                positions.len()
            )));
        }
        let dtype = embeds.dtype();
        let device = embeds.device();
        if self.uses_host_step(device, dtype, b, l) {
            // Decode step or tiny prefill: run the layers on host buffers (Attention::step_cpu).
            let x: Vec<f32> = embeds.flatten_all()?.to_vec1()?;
            let x = self.layers_host(x, positions, key_valid, cache, n)?;
            return Ok(Tensor::from_vec(x, embeds.dims(), device)?);
        }
        let kv_len = cache.len() + l;
        let mask = attention_mask(b, l, kv_len, key_valid, DType::F32, device)?;
        let rope = self.rope.tables(positions, dtype, device)?;
        let mut x = embeds.clone();
        for (i, layer) in self.layers.iter().take(n).enumerate() {
            x = layer.forward(&x, &rope, mask.as_ref(), cache.layer_mut(i))?;
        }
        Ok(x)
    }

    /// The final RMSNorm.
    pub fn norm(&self, x: &Tensor) -> Result<Tensor> {
        self.norm.forward(x)
    }

    /// Whether [`Qwen3Decoder::forward`] runs `b` rows of `l` positions on host buffers (the
    /// CPU step path): f32 on the CPU with packed weights, and few enough rows for the
    /// matrix-vector kernels (a decode step, or a prefill of a few positions such as the code
    /// predictor's 2 per frame).
    pub fn uses_host_step(
        &self,
        device: &candle_core::Device,
        dtype: DType,
        b: usize,
        l: usize,
    ) -> bool {
        self.packed
            && device.is_cpu()
            && dtype == DType::F32
            && (l == 1 || b * l <= crate::kernels::packed::GEMV_MAX_ROWS)
    }

    /// [`Qwen3Decoder::forward`] on host f32 rows (`b·l × hidden`, row-major by row then
    /// position) without tensors: the final-normed hidden states, or `None` when the host step
    /// path does not apply (see [`Qwen3Decoder::uses_host_step`]).
    pub fn forward_host(
        &self,
        x: Vec<f32>,
        positions: &Positions,
        key_valid: Option<&[Vec<bool>]>,
        cache: &mut KvCache,
    ) -> Result<Option<Vec<f32>>> {
        let (b, l) = (positions.batch(), positions.len());
        if x.len() != b * l * self.cfg.hidden_size {
            return Err(crate::Error::InvalidArgument(format!(
                "decoder: {} values for {b}x{l} positions of width {}",
                x.len(),
                self.cfg.hidden_size
            )));
        }
        if !self.uses_host_step(&candle_core::Device::Cpu, DType::F32, b, l) {
            return Ok(None);
        }
        let mut x = self.layers_host(x, positions, key_valid, cache, self.layers.len())?;
        // As `forward` applies it to the layers' output tensor: bit-identical results.
        self.norm.forward_rows_f32_exact(&mut x);
        Ok(Some(x))
    }

    fn layers_host(
        &self,
        mut x: Vec<f32>,
        positions: &Positions,
        key_valid: Option<&[Vec<bool>]>,
        cache: &mut KvCache,
        n: usize,
    ) -> Result<Vec<f32>> {
        let pos = positions.as_flat();
        for (i, layer) in self.layers.iter().take(n).enumerate() {
            if !layer.step_cpu(
                &mut x,
                pos,
                positions.len(),
                &self.rope,
                key_valid,
                cache.layer_mut(i),
            )? {
                return Err(crate::Error::InvalidArgument(
                    "decoder: weights are not packed for the CPU step".into(),
                ));
            }
        }
        Ok(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::MemorySource;
    use candle_core::Device;
    use std::sync::Arc;

    fn tiny() -> (Qwen3Config, Weights) {
        let cfg: Qwen3Config = serde_json::from_str(
            r#"{"vocab_size": 16, "hidden_size": 12, "intermediate_size": 20,
                "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                "head_dim": 6, "rope_theta": 10000.0}"#,
        )
        .unwrap();
        let dev = Device::Cpu;
        let mut s = MemorySource::new();
        let mut seed = 1u64;
        let mut rnd = |shape: &[usize]| {
            let n: usize = shape.iter().product();
            let v: Vec<f32> = (0..n)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((seed >> 33) as f32 / (1u64 << 31) as f32 - 0.5) * 0.8
                })
                .collect();
            Tensor::from_vec(v, shape, &dev).unwrap()
        };
        for i in 0..2 {
            let p = format!("layers.{i}");
            for (n, sh) in [
                ("self_attn.q_proj.weight", vec![24, 12]),
                ("self_attn.k_proj.weight", vec![12, 12]),
                ("self_attn.v_proj.weight", vec![12, 12]),
                ("self_attn.o_proj.weight", vec![12, 24]),
                ("mlp.gate_proj.weight", vec![20, 12]),
                ("mlp.up_proj.weight", vec![20, 12]),
                ("mlp.down_proj.weight", vec![12, 20]),
            ] {
                s.insert(format!("{p}.{n}"), rnd(&sh));
            }
            for (n, d) in [
                ("input_layernorm.weight", 12),
                ("post_attention_layernorm.weight", 12),
                ("self_attn.q_norm.weight", 6),
                ("self_attn.k_norm.weight", 6),
            ] {
                s.insert(
                    format!("{p}.{n}"),
                    Tensor::ones(d, DType::F32, &dev).unwrap(),
                );
            }
        }
        s.insert("norm.weight", Tensor::ones(12, DType::F32, &dev).unwrap());
        (cfg, Weights::new(Arc::new(s), &dev, DType::F32))
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn incremental_decoding_equals_full_pass() -> Result<()> {
        let (cfg, w) = tiny();
        let dec = Qwen3Decoder::load(&w, &cfg)?;
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (1, 7, 12), &dev)?;
        let mut full_cache = dec.new_cache();
        let full = dec.forward(&x, &Positions::contiguous(1, 0, 7), None, &mut full_cache)?;
        let mut cache = dec.new_cache();
        let mut parts = vec![dec.forward(
            &x.narrow(1, 0, 4)?,
            &Positions::contiguous(1, 0, 4),
            None,
            &mut cache,
        )?];
        for t in 4..7 {
            parts.push(dec.forward(
                &x.narrow(1, t, 1)?,
                &Positions::contiguous(1, t, 1),
                None,
                &mut cache,
            )?);
        }
        let inc = Tensor::cat(&parts, 1)?;
        assert!(max_diff(&full, &inc) < 1e-5);
        Ok(())
    }

    #[test]
    fn tiny_prefills_on_the_host_equal_the_tensor_path() -> Result<()> {
        let (cfg, w) = tiny();
        let dec = Qwen3Decoder::load(&w, &cfg)?;
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (2, 6, 12), &dev)?;
        // Rows 2x6 = 12 > GEMV_MAX_ROWS: the tensor path.
        let full = dec.forward(
            &x,
            &Positions::contiguous(2, 0, 6),
            None,
            &mut dec.new_cache(),
        )?;
        for l in [1usize, 2, 3] {
            if !dec.uses_host_step(&dev, DType::F32, 1, l) {
                continue; // no packed kernels on this CPU
            }
            // Row 1 alone: l positions, then the rest (host path), as the code predictor runs.
            let row = x.narrow(0, 1, 1)?;
            let mut cache = dec.new_cache();
            let mut parts = vec![dec.forward(
                &row.narrow(1, 0, l)?,
                &Positions::contiguous(1, 0, l),
                None,
                &mut cache,
            )?];
            let flat: Vec<f32> = row.narrow(1, l, 1)?.flatten_all()?.to_vec1()?;
            let host = dec
                .forward_host(flat, &Positions::contiguous(1, l, 1), None, &mut cache)?
                .expect("host path");
            parts.push(Tensor::from_vec(host, (1, 1, 12), &dev)?);
            let inc = Tensor::cat(&parts, 1)?;
            assert!(max_diff(&full.narrow(0, 1, 1)?.narrow(1, 0, l + 1)?, &inc) < 1e-5);
        }
        // A left-padded batch of 2 rows x 2 positions (4 rows: the host path).
        let a = x.narrow(0, 0, 1)?.narrow(1, 0, 2)?;
        let b1 = x.narrow(0, 1, 1)?.narrow(1, 0, 1)?;
        let pad = Tensor::zeros((1, 1, 12), DType::F32, &dev)?;
        let batch = Tensor::cat(&[a.clone(), Tensor::cat(&[&pad, &b1], 1)?], 0)?;
        let pos = Positions::from_rows(&[vec![0, 1], vec![0, 0]])?;
        let valid = vec![vec![true, true], vec![false, true]];
        let out = dec.forward(&batch, &pos, Some(&valid), &mut dec.new_cache())?;
        let single = |t: &Tensor, n: usize| {
            dec.forward(
                t,
                &Positions::contiguous(1, 0, n),
                None,
                &mut dec.new_cache(),
            )
        };
        assert!(max_diff(&out.narrow(0, 0, 1)?, &single(&a, 2)?) < 1e-5);
        assert!(max_diff(&out.narrow(0, 1, 1)?.narrow(1, 1, 1)?, &single(&b1, 1)?) < 1e-5);
        Ok(())
    }

    #[test]
    fn left_padded_batch_equals_single_rows() -> Result<()> {
        let (cfg, w) = tiny();
        let dec = Qwen3Decoder::load(&w, &cfg)?;
        let dev = Device::Cpu;
        let a = Tensor::randn(0f32, 1.0, (1, 5, 12), &dev)?;
        let b = Tensor::randn(0f32, 1.0, (1, 3, 12), &dev)?;
        let pad = Tensor::zeros((1, 2, 12), DType::F32, &dev)?;
        let batch = Tensor::cat(&[a.clone(), Tensor::cat(&[&pad, &b], 1)?], 0)?;
        let pos = Positions::from_rows(&[vec![0, 1, 2, 3, 4], vec![1, 1, 0, 1, 2]])?;
        let valid = vec![vec![true; 5], vec![false, false, true, true, true]];
        let mut cache = dec.new_cache();
        let out = dec.forward(&batch, &pos, Some(&valid), &mut cache)?;
        let single_b = dec.forward(
            &b,
            &Positions::contiguous(1, 0, 3),
            None,
            &mut dec.new_cache(),
        )?;
        let single_a = dec.forward(
            &a,
            &Positions::contiguous(1, 0, 5),
            None,
            &mut dec.new_cache(),
        )?;
        assert!(max_diff(&out.narrow(0, 0, 1)?, &single_a) < 1e-5);
        assert!(max_diff(&out.narrow(0, 1, 1)?.narrow(1, 2, 3)?, &single_b) < 1e-5);
        Ok(())
    }
}
