//! The 25 Hz decoder's vocoder (`decoder.bigvgan.*`): a BigVGAN variant with anti-aliased
//! SnakeBeta activations and AMP blocks whose first two stages are causal ("type 2": a
//! symmetric pre-conv and pre-activation, causal second convs) and whose later stages have
//! symmetric second convs ("type 1"). Mel `(mel, T)` → waveform of `T · Π upsample_rates`.

use candle_core::Tensor;

use qwen3_speech_engine::Result;
use qwen3_speech_engine::weights::Weights;

use super::config::BigVganConfig;
use super::ops::{AntiAliasedSnake, Conv1d, ConvTranspose1d, Pad};

#[derive(Debug, Clone)]
struct Amp {
    pre: Option<(Conv1d, AntiAliasedSnake)>,
    convs1: Vec<Conv1d>,
    convs2: Vec<Conv1d>,
    acts: Vec<AntiAliasedSnake>,
}

impl Amp {
    fn load(w: &Weights, ch: usize, k: usize, dil: &[usize], causal_second: bool) -> Result<Self> {
        let convs1 = (0..3)
            .map(|p| {
                Conv1d::load(
                    &w.pp(format!("convs1.{p}")),
                    ch,
                    ch,
                    k,
                    1,
                    dil[p],
                    true,
                    Conv1d::causal(dil[p], k),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let pad2 = if causal_second {
            Conv1d::causal(1, k)
        } else {
            Conv1d::sym(1, k)
        };
        let convs2 = (0..3)
            .map(|p| Conv1d::load(&w.pp(format!("convs2.{p}")), ch, ch, k, 1, 1, true, pad2))
            .collect::<Result<Vec<_>>>()?;
        let acts = (0..6)
            .map(|q| AntiAliasedSnake::load(&w.pp(format!("activations.{q}")), ch))
            .collect::<Result<Vec<_>>>()?;
        let pre = if causal_second {
            Some((
                Conv1d::load(&w.pp("pre_conv"), ch, ch, k, 1, 1, true, Conv1d::sym(1, k))?,
                AntiAliasedSnake::load(&w.pp("pre_act"), ch)?,
            ))
        } else {
            None
        };
        Ok(Amp {
            pre,
            convs1,
            convs2,
            acts,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = match &self.pre {
            Some((conv, act)) => act.forward(&conv.forward(x)?)?,
            None => x.clone(),
        };
        let mut x = x.clone();
        for p in 0..3 {
            h = self.acts[2 * p].forward(&h)?;
            h = self.convs1[p].forward(&h)?;
            h = self.acts[2 * p + 1].forward(&h)?;
            h = self.convs2[p].forward(&h)?;
            x = (x + &h)?;
        }
        Ok(x)
    }
}

#[derive(Debug, Clone)]
struct Stage {
    up: ConvTranspose1d,
    blocks: Vec<Amp>,
}

/// The vocoder.
#[derive(Debug, Clone)]
pub struct BigVgan {
    conv_pre: Conv1d,
    stages: Vec<Stage>,
    act_post: AntiAliasedSnake,
    conv_post: Conv1d,
}

impl BigVgan {
    pub fn load(w: &Weights, c: &BigVganConfig) -> Result<Self> {
        let c0 = c.upsample_initial_channel;
        let conv_pre = Conv1d::load(
            &w.pp("conv_pre"),
            c.mel_dim,
            c0,
            5,
            1,
            1,
            true,
            (2, 2, Pad::Zeros),
        )?;
        let nk = c.resblock_kernel_sizes.len();
        let mut stages = Vec::new();
        for (i, (&rate, &k)) in c
            .upsample_rates
            .iter()
            .zip(&c.upsample_kernel_sizes)
            .enumerate()
        {
            let cin = c0 >> i;
            let cout = c0 >> (i + 1);
            let up = ConvTranspose1d::load(&w.pp(format!("ups.{i}.0")), cin, cout, k, rate)?;
            let blocks = c
                .resblock_kernel_sizes
                .iter()
                .zip(&c.resblock_dilation_sizes)
                .enumerate()
                .map(|(j, (&rk, dil))| {
                    Amp::load(
                        &w.pp(format!("resblocks.{}", i * nk + j)),
                        cout,
                        rk,
                        dil,
                        i <= 1,
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            stages.push(Stage { up, blocks });
        }
        let last = c0 >> c.upsample_rates.len();
        Ok(BigVgan {
            conv_pre,
            stages,
            act_post: AntiAliasedSnake::load(&w.pp("activation_post"), last)?,
            conv_post: Conv1d::load(
                &w.pp("conv_post"),
                last,
                1,
                7,
                1,
                1,
                false,
                (3, 3, Pad::Zeros),
            )?,
        })
    }

    /// The reference's mel preprocessing: natural-log amplitude → dB (floor −115 dB, −20 dB
    /// offset) → `[-1, 1]`.
    pub fn process_mel(mel: &Tensor) -> Result<Tensor> {
        let min_level = (-115f64 / 20.0 * 10f64.ln()).exp() as f32;
        let amp = mel.exp()?.clamp(min_level, f32::MAX)?;
        let db = ((amp.log()? * (20.0 / 10f64.ln()))? - 20.0)?;
        Ok(((((db + 115.0)? / 115.0)? * 2.0)? - 1.0)?.clamp(-1f32, 1f32)?)
    }

    /// Mel `(B, mel, T)` → waveform `(B, T · hop)` in `[-1, 1]`.
    pub fn forward(&self, mel: &Tensor) -> Result<Tensor> {
        let mut h = self.conv_pre.forward(&Self::process_mel(mel)?)?;
        for s in &self.stages {
            h = s.up.forward(&h)?;
            let mut sum = s.blocks[0].forward(&h)?;
            for b in &s.blocks[1..] {
                sum = (sum + b.forward(&h)?)?;
            }
            h = (sum / s.blocks.len() as f64)?;
        }
        let h = self.act_post.forward(&h)?;
        let y = self.conv_post.forward(&h)?;
        Ok(y.clamp(-1f32, 1f32)?.squeeze(1)?)
    }
}
