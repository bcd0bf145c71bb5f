//! The flow-matching mel generator of the 25 Hz decoder (`decoder.dit.*`): a DiT with AdaLN-Zero
//! layers, interleaved RoPE and block-banded attention, conditioned on the codes, the x-vector
//! and an ECAPA-TDNN summary of the reference mel; sampled with the reference's Euler solver
//! (sway-warped time grid, classifier-free guidance on a doubled batch).

use candle_core::{DType, Device, Tensor};

use qwen3_speech_engine::nn::{Embedding, Linear, silu};
use qwen3_speech_engine::weights::Weights;
use qwen3_speech_engine::{Error, Result};

use super::config::DitConfig;
use super::ops::{Conv1d, Pad, gelu_tanh, layer_norm_plain};

// ---------------------------------------------------------------------------------------------
// ECAPA-TDNN

fn tdnn(w: &Weights, cin: usize, cout: usize, k: usize, d: usize) -> Result<Conv1d> {
    Conv1d::load(
        &w.pp("conv"),
        cin,
        cout,
        k,
        1,
        d,
        true,
        Conv1d::same(d, k, Pad::Reflect),
    )
}

#[derive(Debug, Clone)]
struct SeRes2Net {
    tdnn1: Conv1d,
    res2net: Vec<Conv1d>,
    tdnn2: Conv1d,
    se1: Conv1d,
    se2: Conv1d,
    scale: usize,
}

impl SeRes2Net {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.tdnn1.forward(x)?.relu()?;
        let parts = h.chunk(self.scale, 1)?;
        let mut outs: Vec<Tensor> = Vec::with_capacity(self.scale);
        for (i, p) in parts.iter().enumerate() {
            let o = match i {
                0 => p.clone(),
                1 => self.res2net[0].forward(p)?.relu()?,
                _ => {
                    let prev = outs.last().ok_or_else(|| Error::Model("res2net".into()))?;
                    self.res2net[i - 1].forward(&(p + prev)?)?.relu()?
                }
            };
            outs.push(o);
        }
        let h = Tensor::cat(&outs, 1)?;
        let h = self.tdnn2.forward(&h)?.relu()?;
        let m = h.mean_keepdim(2)?;
        let s = candle_nn::ops::sigmoid(&self.se2.forward(&self.se1.forward(&m)?.relu()?)?)?;
        Ok((h.broadcast_mul(&s)? + x)?)
    }
}

/// The ECAPA-TDNN reference-mel encoder (`input_embed.spk_encoder`, no BatchNorm).
#[derive(Debug, Clone)]
pub struct Ecapa {
    first: Conv1d,
    blocks: Vec<SeRes2Net>,
    mfa: Conv1d,
    asp_tdnn: Conv1d,
    asp_conv: Conv1d,
    fc: Conv1d,
}

impl Ecapa {
    pub fn load(w: &Weights, c: &DitConfig) -> Result<Self> {
        let ch = &c.enc_channels;
        let n = ch.len();
        let first = tdnn(
            &w.pp("blocks.0"),
            c.mel_dim,
            ch[0],
            c.enc_kernel_sizes[0],
            c.enc_dilations[0],
        )?;
        let mut blocks = Vec::new();
        for i in 1..n - 1 {
            let b = w.pp(format!("blocks.{i}"));
            let (cin, cout, s) = (ch[i - 1], ch[i], c.enc_res2net_scale);
            if cin != cout {
                return Err(Error::Model(format!(
                    "ECAPA block {i}: residual needs equal channels, got {cin} -> {cout}"
                )));
            }
            let res2net = (0..s - 1)
                .map(|j| {
                    tdnn(
                        &b.pp(format!("res2net_block.blocks.{j}")),
                        cout / s,
                        cout / s,
                        c.enc_kernel_sizes[i],
                        c.enc_dilations[i],
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            blocks.push(SeRes2Net {
                tdnn1: tdnn(&b.pp("tdnn1"), cin, cout, 1, 1)?,
                res2net,
                tdnn2: tdnn(&b.pp("tdnn2"), cout, cout, 1, 1)?,
                se1: Conv1d::load(
                    &b.pp("se_block.conv1"),
                    cout,
                    c.enc_se_channels,
                    1,
                    1,
                    1,
                    true,
                    (0, 0, Pad::Zeros),
                )?,
                se2: Conv1d::load(
                    &b.pp("se_block.conv2"),
                    c.enc_se_channels,
                    cout,
                    1,
                    1,
                    1,
                    true,
                    (0, 0, Pad::Zeros),
                )?,
                scale: s,
            });
        }
        let last = ch[n - 1];
        let mfa = tdnn(
            &w.pp("mfa"),
            last,
            last,
            c.enc_kernel_sizes[n - 1],
            c.enc_dilations[n - 1],
        )?;
        let asp_tdnn = tdnn(&w.pp("asp.tdnn"), 3 * last, c.enc_attention_channels, 1, 1)?;
        let asp_conv = Conv1d::load(
            &w.pp("asp.conv"),
            c.enc_attention_channels,
            last,
            1,
            1,
            1,
            true,
            (0, 0, Pad::Zeros),
        )?;
        let fc = Conv1d::load(
            &w.pp("fc"),
            2 * last,
            c.enc_dim,
            1,
            1,
            1,
            true,
            (0, 0, Pad::Zeros),
        )?;
        Ok(Ecapa {
            first,
            blocks,
            mfa,
            asp_tdnn,
            asp_conv,
            fc,
        })
    }

    fn stats(x: &Tensor, weights: &Tensor) -> Result<(Tensor, Tensor)> {
        let mean = x.broadcast_mul(weights)?.sum(2)?; // (B, C)
        let dev = x.broadcast_sub(&mean.unsqueeze(2)?)?.sqr()?;
        let var = dev.broadcast_mul(weights)?.sum(2)?;
        let std = var.clamp(1e-12f32, f32::MAX)?.sqrt()?;
        Ok((mean, std))
    }

    /// `(B, T, mel)` → `(B, enc_dim)`.
    pub fn forward(&self, mel: &Tensor) -> Result<Tensor> {
        let mut h = self
            .first
            .forward(&mel.transpose(1, 2)?.contiguous()?)?
            .relu()?;
        let mut outs = Vec::new();
        for b in &self.blocks {
            h = b.forward(&h)?;
            outs.push(h.clone());
        }
        let h = self.mfa.forward(&Tensor::cat(&outs, 1)?)?.relu()?;
        let (b, c, t) = h.dims3()?;
        let uniform = Tensor::full(1f32 / t as f32, (b, 1, t), h.device())?;
        let (mean, std) = Self::stats(&h, &uniform)?;
        let att_in = Tensor::cat(
            &[
                h.clone(),
                mean.unsqueeze(2)?.broadcast_as((b, c, t))?.contiguous()?,
                std.unsqueeze(2)?.broadcast_as((b, c, t))?.contiguous()?,
            ],
            1,
        )?;
        let a = self
            .asp_conv
            .forward(&self.asp_tdnn.forward(&att_in)?.relu()?.tanh()?)?;
        let a = candle_nn::ops::softmax_last_dim(&a)?;
        let (mean, std) = Self::stats(&h, &a)?;
        let pooled = Tensor::cat(&[mean, std], 1)?.unsqueeze(2)?;
        Ok(self.fc.forward(&pooled)?.squeeze(2)?)
    }
}

// ---------------------------------------------------------------------------------------------
// DiT

#[derive(Debug, Clone)]
struct Layer {
    modulation: Linear,
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
    ff1: Linear,
    ff2: Linear,
    back: usize,
    ahead: usize,
}

/// The DiT network (`decoder.dit`).
#[derive(Debug, Clone)]
pub struct Dit {
    cfg: DitConfig,
    time1: Linear,
    time2: Linear,
    codec_embed: Embedding,
    proj: Linear,
    ecapa: Ecapa,
    inv_freq: Vec<f32>,
    layers: Vec<Layer>,
    norm_out: Linear,
    proj_out: Linear,
}

/// Per-utterance conditioning reused at every solver step.
pub struct Conditioning {
    /// `(2, T, mel + enc_dim + emb_dim + enc_emb_dim)` with the `x` columns zero.
    features: Tensor,
    cos: Tensor,
    sin: Tensor,
    /// One additive mask per distinct (look-back, look-ahead) kind, and each layer's index.
    masks: Vec<Tensor>,
    layer_mask: Vec<usize>,
    frames: usize,
}

const TIME_FREQ_DIM: usize = 256;

impl Dit {
    pub fn load(w: &Weights, c: &DitConfig) -> Result<Self> {
        let h = c.hidden_size;
        let inner = c.head_dim * c.num_attention_heads;
        let in_dim = c.mel_dim + c.enc_dim + c.emb_dim + c.enc_emb_dim;
        let layers = (0..c.num_hidden_layers)
            .map(|i| {
                let l = w.pp(format!("transformer_blocks.{i}"));
                Ok(Layer {
                    modulation: Linear::load(&l.pp("attn_norm.linear"), h, 6 * h, true)?,
                    to_q: Linear::load(&l.pp("attn.to_q"), h, inner, true)?,
                    to_k: Linear::load(&l.pp("attn.to_k"), h, inner, true)?,
                    to_v: Linear::load(&l.pp("attn.to_v"), h, inner, true)?,
                    to_out: Linear::load(&l.pp("attn.to_out.0"), inner, h, true)?,
                    ff1: Linear::load(&l.pp("ff.ff.0"), h, h * c.ff_mult, true)?,
                    ff2: Linear::load(&l.pp("ff.ff.3"), h * c.ff_mult, h, true)?,
                    back: usize::from(c.look_backward_layers.contains(&i)),
                    ahead: usize::from(c.look_ahead_layers.contains(&i)),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let inv_freq: Vec<f32> = w.get(c.head_dim / 2, "rotary_embed.inv_freq")?.to_vec1()?;
        Ok(Dit {
            cfg: c.clone(),
            time1: Linear::load(&w.pp("time_embed.time_mlp.0"), TIME_FREQ_DIM, h, true)?,
            time2: Linear::load(&w.pp("time_embed.time_mlp.2"), h, h, true)?,
            codec_embed: Embedding::load(
                &w.pp("text_embed.codec_embed"),
                c.num_embeds + 1,
                c.emb_dim,
            )?,
            proj: Linear::load(&w.pp("input_embed.proj"), in_dim, h, true)?,
            ecapa: Ecapa::load(&w.pp("input_embed.spk_encoder"), c)?,
            inv_freq,
            layers,
            norm_out: Linear::load(&w.pp("norm_out.linear"), h, 2 * h, true)?,
            proj_out: Linear::load(&w.pp("proj_out"), h, c.mel_dim, true)?,
        })
    }

    pub fn config(&self) -> &DitConfig {
        &self.cfg
    }

    pub fn ecapa(&self) -> &Ecapa {
        &self.ecapa
    }

    /// Codes with the largest index the embedding holds (`num_embeds`).
    pub fn max_code(&self) -> usize {
        self.cfg.num_embeds
    }

    /// Time embedding `(1, hidden)` of a scalar time.
    fn time_embedding(&self, t: f32, dev: &Device) -> Result<Tensor> {
        let half = TIME_FREQ_DIM / 2;
        let step = (10000f64.ln() / (half as f64 - 1.0)) as f32;
        let mut v = vec![0f32; TIME_FREQ_DIM];
        for i in 0..half {
            let f = ((i as f32) * -step).exp();
            let arg = 1000.0f32 * t * f;
            v[i] = arg.sin();
            v[half + i] = arg.cos();
        }
        let x = Tensor::from_vec(v, (1, TIME_FREQ_DIM), dev)?;
        self.time2.forward(&silu(&self.time1.forward(&x)?)?)
    }

    /// Builds the step-independent conditioning: codes `(T_codes)`, x-vector `(enc_emb_dim)`,
    /// reference mel `(T_ref, mel)`.
    pub fn condition(
        &self,
        codes: &[u32],
        xvector: &Tensor,
        ref_mel: &Tensor,
    ) -> Result<Conditioning> {
        let c = &self.cfg;
        let dev = ref_mel.device();
        if let Some(&bad) = codes.iter().find(|&&x| x as usize > c.num_embeds) {
            return Err(Error::InvalidArgument(format!(
                "code {bad} is outside the decoder's code embedding of {} entries",
                c.num_embeds + 1
            )));
        }
        if codes.is_empty() {
            return Err(Error::InvalidArgument("no codes to decode".into()));
        }
        let frames = codes.len() * c.repeats;
        let ids = Tensor::from_slice(codes, codes.len(), dev)?;
        let emb = self.codec_embed.forward(&ids)?; // (Tc, E)
        let emb = emb
            .unsqueeze(1)?
            .broadcast_as((codes.len(), c.repeats, c.emb_dim))?
            .reshape((frames, c.emb_dim))?;
        let emb0 = self
            .codec_embed
            .forward(&Tensor::zeros(1, DType::U32, dev)?)?
            .broadcast_as((frames, c.emb_dim))?;
        let ref_mel = ref_mel.unsqueeze(0)?;
        let spk_c = self.ecapa.forward(&ref_mel)?;
        let spk_u = self.ecapa.forward(&ref_mel.zeros_like()?)?;
        let xv = xvector
            .reshape((1, c.enc_emb_dim))?
            .broadcast_as((frames, c.enc_emb_dim))?;
        let zeros_x = Tensor::zeros((frames, c.mel_dim), DType::F32, dev)?;
        let half = |spk: &Tensor, emb: &Tensor, xv: &Tensor| -> Result<Tensor> {
            Ok(Tensor::cat(
                &[
                    zeros_x.clone(),
                    spk.broadcast_as((frames, c.enc_dim))?.contiguous()?,
                    emb.contiguous()?,
                    xv.contiguous()?,
                ],
                1,
            )?)
        };
        let features = Tensor::stack(
            &[
                half(&spk_c, &emb, &xv)?,
                half(&spk_u, &emb0, &xv.zeros_like()?)?,
            ],
            0,
        )?;
        // Interleaved RoPE tables (T, head_dim): [f0, f0, f1, f1, ...].
        let hd = c.head_dim;
        let mut cos = vec![0f32; frames * hd];
        let mut sin = vec![0f32; frames * hd];
        for p in 0..frames {
            for (i, &f) in self.inv_freq.iter().enumerate() {
                let a = p as f32 * f;
                for j in 0..2 {
                    cos[p * hd + 2 * i + j] = a.cos();
                    sin[p * hd + 2 * i + j] = a.sin();
                }
            }
        }
        let cos = Tensor::from_vec(cos, (1, 1, frames, hd), dev)?;
        let sin = Tensor::from_vec(sin, (1, 1, frames, hd), dev)?;
        // Additive masks per (back, ahead) kind, shared by the layers of that kind.
        let mut kinds: Vec<(usize, usize)> = Vec::new();
        let mut masks = Vec::new();
        let mut layer_mask = Vec::with_capacity(self.layers.len());
        for l in &self.layers {
            let kind = (l.back, l.ahead);
            if let Some(i) = kinds.iter().position(|&k| k == kind) {
                layer_mask.push(i);
                continue;
            }
            let mut m = vec![0f32; frames * frames];
            for i in 0..frames {
                let bi = (i / c.block_size) as i64;
                for j in 0..frames {
                    let d = (j / c.block_size) as i64 - bi;
                    if d < -(l.back as i64) || d > l.ahead as i64 {
                        m[i * frames + j] = f32::NEG_INFINITY;
                    }
                }
            }
            layer_mask.push(kinds.len());
            kinds.push(kind);
            masks.push(Tensor::from_vec(m, (1, 1, frames, frames), dev)?);
        }
        Ok(Conditioning {
            features,
            cos,
            sin,
            masks,
            layer_mask,
            frames,
        })
    }

    fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        let (b, h, t, d) = x.dims4()?;
        let pairs = x.reshape((b, h, t, d / 2, 2))?;
        let a = pairs.narrow(4, 0, 1)?;
        let bb = pairs.narrow(4, 1, 1)?;
        let rot = Tensor::cat(&[bb.neg()?, a], 4)?.reshape((b, h, t, d))?;
        Ok((x.broadcast_mul(cos)? + rot.broadcast_mul(sin)?)?)
    }

    /// One network evaluation on the doubled batch: `x` `(T, mel)` → `(2, T, mel)` velocities
    /// (conditional, unconditional).
    pub fn forward(&self, x: &Tensor, t: f32, cond: &Conditioning) -> Result<Tensor> {
        let c = &self.cfg;
        let dev = x.device();
        let frames = cond.frames;
        let temb = self.time_embedding(t, dev)?; // (1, H)
        let st = silu(&temb)?;
        let xin = x
            .pad_with_zeros(1, 0, c.enc_dim + c.emb_dim + c.enc_emb_dim)?
            .unsqueeze(0)?;
        let feats = cond.features.broadcast_add(&xin)?;
        let mut h = self.proj.forward(&feats)?; // (2, T, H)
        let heads = c.num_attention_heads;
        let hd = c.head_dim;
        let hid = c.hidden_size;
        for (l, &mi) in self.layers.iter().zip(&cond.layer_mask) {
            let mask = &cond.masks[mi];
            let m = l.modulation.forward(&st)?; // (1, 6H)
            let ch = |i: usize| -> Result<Tensor> { Ok(m.narrow(1, i * hid, hid)?.unsqueeze(1)?) };
            let (shift_msa, scale_msa, gate_msa) = (ch(0)?, ch(1)?, ch(2)?);
            let (shift_mlp, scale_mlp, gate_mlp) = (ch(3)?, ch(4)?, ch(5)?);
            let n = layer_norm_plain(&h, 1e-6)?
                .broadcast_mul(&(scale_msa + 1.0)?)?
                .broadcast_add(&shift_msa)?;
            let split = |t: Tensor| -> Result<Tensor> {
                Ok(t.reshape((2, frames, heads, hd))?
                    .transpose(1, 2)?
                    .contiguous()?)
            };
            let q = Self::rope(&split(l.to_q.forward(&n)?)?, &cond.cos, &cond.sin)?;
            let k = Self::rope(&split(l.to_k.forward(&n)?)?, &cond.cos, &cond.sin)?;
            let v = split(l.to_v.forward(&n)?)?;
            let scale = (hd as f64).powf(-0.5);
            let att =
                (q.matmul(&k.transpose(2, 3)?.contiguous()?)? * scale)?.broadcast_add(mask)?;
            let att = candle_nn::ops::softmax_last_dim(&att)?;
            let o = att
                .matmul(&v)?
                .transpose(1, 2)?
                .reshape((2, frames, heads * hd))?;
            let o = l.to_out.forward(&o)?;
            h = (h + o.broadcast_mul(&gate_msa)?)?;
            let n = layer_norm_plain(&h, 1e-6)?
                .broadcast_mul(&(scale_mlp + 1.0)?)?
                .broadcast_add(&shift_mlp)?;
            let f = l.ff2.forward(&gelu_tanh(&l.ff1.forward(&n)?)?)?;
            h = (h + f.broadcast_mul(&gate_mlp)?)?;
        }
        let m = self.norm_out.forward(&st)?;
        let scale = m.narrow(1, 0, hid)?.unsqueeze(1)?;
        let shift = m.narrow(1, hid, hid)?.unsqueeze(1)?;
        let n = layer_norm_plain(&h, 1e-6)?
            .broadcast_mul(&(scale + 1.0)?)?
            .broadcast_add(&shift)?;
        self.proj_out.forward(&n)
    }

    /// Euler flow-matching sampling from `noise` `(T, mel)` (T = codes × repeats): returns the
    /// mel `(T, mel)` (natural-log amplitude).
    pub fn sample(
        &self,
        noise: &Tensor,
        cond: &Conditioning,
        num_steps: usize,
        guidance_scale: f32,
        sway_coefficient: Option<f32>,
    ) -> Result<Tensor> {
        let (t, m) = noise.dims2()?;
        if t != cond.frames || m != self.cfg.mel_dim {
            return Err(Error::InvalidArgument(format!(
                "initial noise has shape ({t}, {m}), the decoder needs ({}, {})",
                cond.frames, self.cfg.mel_dim
            )));
        }
        if num_steps < 2 {
            return Err(Error::InvalidArgument(
                "the solver needs at least 2 time points".into(),
            ));
        }
        let grid = time_grid(num_steps, sway_coefficient);
        let mut x = noise.clone();
        for w in grid.windows(2) {
            let out = self.forward(&x, w[0], cond)?;
            let vc = out.get(0)?;
            let vu = out.get(1)?;
            let v = (&vc + ((&vc - &vu)? * f64::from(guidance_scale))?)?;
            let dt = w[1] - w[0];
            x = (x + (v * f64::from(dt))?)?;
        }
        Ok(x)
    }
}

/// The solver's time points: `torch.linspace(0, 1, n)` in float32 with the sway warp
/// `t + s (cos(π t / 2) − 1 + t)`.
pub fn time_grid(n: usize, sway: Option<f32>) -> Vec<f32> {
    let step = 1f32 / (n - 1) as f32;
    let half = n / 2;
    (0..n)
        .map(|i| {
            let t = if i < half {
                i as f32 * step
            } else {
                1f32 - (n - 1 - i) as f32 * step
            };
            match sway {
                Some(s) => {
                    let c = ((std::f32::consts::PI / 2.0) * t).cos();
                    t + s * (c - 1.0 + t)
                }
                None => t,
            }
        })
        .collect()
}
