//! Choosing the next token from logits.
//!
//! The processors run in the order transformers 4.57 applies them (see tts.md §5.3):
//! repetition penalty → minimum new tokens (ban end-of-sequence ids) → token suppression →
//! then, when sampling, temperature → top-k → top-p → softmax → multinomial draw. Greedy
//! decoding is the argmax after the first three steps (the first maximum wins ties, like
//! `torch.argmax`). All processing happens on f32 logits on the CPU.

use std::collections::HashSet;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::{Error, Result};

/// How to pick tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingConfig {
    /// Sample (true) or take the argmax (false).
    pub do_sample: bool,
    /// Divides logits before sampling; ignored by greedy decoding. Must be > 0.
    pub temperature: f32,
    /// Keep only the `k` most likely tokens (0 = off).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches `top_p` (1.0 = off).
    pub top_p: f32,
    /// > 1 discourages tokens already generated (1.0 = off).
    pub repetition_penalty: f32,
    /// Seed of the random generator; the same seed gives the same samples.
    pub seed: u64,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        SamplingConfig::greedy()
    }
}

impl SamplingConfig {
    pub fn greedy() -> Self {
        SamplingConfig {
            do_sample: false,
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            repetition_penalty: 1.0,
            seed: 0,
        }
    }

    pub fn validate(&self) -> Result<()> {
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(Error::InvalidArgument(format!(
                "temperature must be a positive number, got {}",
                self.temperature
            )));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(Error::InvalidArgument(format!(
                "top_p must be in (0, 1], got {}",
                self.top_p
            )));
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return Err(Error::InvalidArgument(format!(
                "repetition_penalty must be positive, got {}",
                self.repetition_penalty
            )));
        }
        Ok(())
    }
}

/// Constraints that depend on the decoding state rather than on the user's taste.
#[derive(Debug, Clone, Default)]
pub struct TokenConstraints {
    /// Ids that can never be produced.
    pub suppress: Vec<u32>,
    /// End-of-sequence ids, banned until `min_new_tokens` tokens were generated.
    pub eos: Vec<u32>,
    pub min_new_tokens: usize,
}

/// A token picker with its own seeded random generator.
#[derive(Debug, Clone)]
pub struct Sampler {
    config: SamplingConfig,
    rng: StdRng,
}

impl Sampler {
    pub fn new(config: SamplingConfig) -> Result<Self> {
        config.validate()?;
        let rng = StdRng::seed_from_u64(config.seed);
        Ok(Sampler { config, rng })
    }

    pub fn config(&self) -> &SamplingConfig {
        &self.config
    }

    /// Picks the next token. `generated` are the tokens produced so far for this sequence (the
    /// repetition penalty and the minimum length look at them, not at the prompt).
    pub fn sample(
        &mut self,
        logits: &mut [f32],
        generated: &[u32],
        constraints: &TokenConstraints,
    ) -> Result<u32> {
        process_logits(
            logits,
            generated,
            constraints,
            self.config.repetition_penalty,
        );
        if !self.config.do_sample {
            return argmax(logits);
        }
        let probs = warp_to_probs(logits, &self.config);
        let u: f64 = self.rng.random();
        pick_by_uniform(&probs, u)
    }

    /// Like [`Sampler::sample`], but the random draw from the final probabilities is made by
    /// `draw` instead of this sampler's generator (golden tests replay the reference's draws;
    /// greedy decoding never calls it).
    pub fn sample_with(
        &mut self,
        logits: &mut [f32],
        generated: &[u32],
        constraints: &TokenConstraints,
        draw: &mut dyn FnMut(&[f32]) -> Result<u32>,
    ) -> Result<u32> {
        process_logits(
            logits,
            generated,
            constraints,
            self.config.repetition_penalty,
        );
        if !self.config.do_sample {
            return argmax(logits);
        }
        draw(&warp_to_probs(logits, &self.config))
    }
}

/// Steps 1-3: repetition penalty, minimum length, suppression. In place.
pub fn process_logits(
    logits: &mut [f32],
    generated: &[u32],
    constraints: &TokenConstraints,
    repetition_penalty: f32,
) {
    if repetition_penalty != 1.0 {
        let seen: HashSet<u32> = generated.iter().copied().collect();
        for id in seen {
            if let Some(l) = logits.get_mut(id as usize) {
                *l = if *l < 0.0 {
                    *l * repetition_penalty
                } else {
                    *l / repetition_penalty
                };
            }
        }
    }
    if generated.len() < constraints.min_new_tokens {
        for &id in &constraints.eos {
            if let Some(l) = logits.get_mut(id as usize) {
                *l = f32::NEG_INFINITY;
            }
        }
    }
    for &id in &constraints.suppress {
        if let Some(l) = logits.get_mut(id as usize) {
            *l = f32::NEG_INFINITY;
        }
    }
}

/// Index of the first maximum; an error if every logit is NaN or the slice is empty.
pub fn argmax(logits: &[f32]) -> Result<u32> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &l) in logits.iter().enumerate() {
        if l.is_nan() {
            continue;
        }
        match best {
            Some((_, b)) if l <= b => {}
            _ => best = Some((i, l)),
        }
    }
    best.map(|(i, _)| i as u32)
        .ok_or_else(|| Error::InvalidArgument("no valid logits to pick a token from".into()))
}

/// Temperature → top-k → top-p → softmax, as probabilities over the whole vocabulary.
pub fn warp_to_probs(logits: &[f32], cfg: &SamplingConfig) -> Vec<f32> {
    let mut l: Vec<f32> = logits.to_vec();
    if cfg.temperature != 1.0 {
        l.iter_mut().for_each(|x| *x /= cfg.temperature);
    }
    if cfg.top_k > 0 && cfg.top_k < l.len() {
        let mut sorted: Vec<f32> = l.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let kth = sorted[cfg.top_k - 1];
        // Ties with the k-th value are kept, like transformers' TopKLogitsWarper.
        l.iter_mut()
            .filter(|x| **x < kth)
            .for_each(|x| *x = f32::NEG_INFINITY);
    }
    if cfg.top_p < 1.0 {
        // transformers: sort ascending, drop tokens whose cumulative probability is
        // <= 1 - top_p, always keeping the most likely token.
        let probs = softmax(&l);
        let mut order: Vec<usize> = (0..l.len()).collect();
        order.sort_by(|&a, &b| l[a].total_cmp(&l[b]).then(a.cmp(&b)));
        let mut cum = 0f32;
        let last = order.len() - 1;
        for (rank, &i) in order.iter().enumerate() {
            cum += probs[i];
            if cum <= 1.0 - cfg.top_p && rank != last {
                l[i] = f32::NEG_INFINITY;
            }
        }
    }
    softmax(&l)
}

/// Numerically stable softmax in f32.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return vec![0.0; logits.len()];
    }
    let exps: Vec<f32> = logits.iter().map(|&x| (x - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// Inverse-CDF draw: the first token whose cumulative probability exceeds `u` ∈ [0, 1).
/// Exposed so tests can inject the uniform number instead of comparing RNG streams.
pub fn pick_by_uniform(probs: &[f32], u: f64) -> Result<u32> {
    let total: f64 = probs.iter().map(|&p| p as f64).sum();
    if total.is_nan() || total <= 0.0 || !total.is_finite() {
        return Err(Error::InvalidArgument(
            "every token was filtered out: nothing left to sample".into(),
        ));
    }
    let target = u.clamp(0.0, 1.0) * total;
    let mut cum = 0f64;
    let mut last_nonzero = 0;
    for (i, &p) in probs.iter().enumerate() {
        if p > 0.0 {
            cum += p as f64;
            last_nonzero = i;
            if cum > target {
                return Ok(i as u32);
            }
        }
    }
    Ok(last_nonzero as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processors_in_reference_order() {
        let mut l = vec![2.0, -1.0, 0.5, 3.0, 1.0];
        let c = TokenConstraints {
            suppress: vec![4],
            eos: vec![3],
            min_new_tokens: 2,
        };
        process_logits(&mut l, &[0, 1, 0], &c, 2.0);
        // penalty: positive divided, negative multiplied, once per distinct id
        assert_eq!(l[0], 1.0);
        assert_eq!(l[1], -2.0);
        // 3 generated >= min 2: eos allowed
        assert_eq!(l[3], 3.0);
        assert_eq!(l[4], f32::NEG_INFINITY);
        let mut l2 = vec![0.0, 5.0];
        let c2 = TokenConstraints {
            eos: vec![1],
            min_new_tokens: 1,
            ..Default::default()
        };
        process_logits(&mut l2, &[], &c2, 1.0);
        assert_eq!(argmax(&l2).unwrap(), 0);
    }

    #[test]
    fn argmax_first_wins_and_nan_safe() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0]).unwrap(), 1);
        assert_eq!(argmax(&[f32::NAN, 0.5]).unwrap(), 1);
        assert!(argmax(&[]).is_err());
    }

    #[test]
    fn top_k_keeps_ties_and_top_p_keeps_best() {
        let cfg = SamplingConfig {
            do_sample: true,
            top_k: 2,
            ..SamplingConfig::greedy()
        };
        let p = warp_to_probs(&[1.0, 3.0, 3.0, 0.0], &cfg);
        assert_eq!(p[0], 0.0);
        assert!((p[1] - 0.5).abs() < 1e-6 && (p[2] - 0.5).abs() < 1e-6);
        let cfg = SamplingConfig {
            do_sample: true,
            top_p: 0.5,
            ..SamplingConfig::greedy()
        };
        let p = warp_to_probs(&[0.0, 4.0, 1.0], &cfg);
        assert!((p[1] - 1.0).abs() < 1e-6, "{p:?}");
        let cfg = SamplingConfig {
            do_sample: true,
            temperature: 2.0,
            ..SamplingConfig::greedy()
        };
        let p = warp_to_probs(&[0.0, 2.0f32.ln() * 2.0], &cfg);
        assert!((p[1] - 2.0 / 3.0).abs() < 1e-6);
    }

    #[test]
    fn inverse_cdf_and_seeded_sampling() {
        let probs = [0.1, 0.0, 0.6, 0.3];
        assert_eq!(pick_by_uniform(&probs, 0.05).unwrap(), 0);
        assert_eq!(pick_by_uniform(&probs, 0.1).unwrap(), 2);
        assert_eq!(pick_by_uniform(&probs, 0.99).unwrap(), 3);
        assert!(pick_by_uniform(&[0.0, 0.0], 0.5).is_err());
        let cfg = SamplingConfig {
            do_sample: true,
            seed: 42,
            ..SamplingConfig::greedy()
        };
        let draw = |cfg: &SamplingConfig| {
            let mut s = Sampler::new(cfg.clone()).unwrap();
            (0..20)
                .map(|_| {
                    s.sample(&mut [0.0, 0.1, 0.2, 0.3], &[], &TokenConstraints::default())
                        .unwrap()
                })
                .collect::<Vec<_>>()
        };
        let a = draw(&cfg);
        assert_eq!(a, draw(&cfg));
        assert!(a.iter().collect::<HashSet<_>>().len() > 1);
        // Frequencies follow the distribution.
        let mut s = Sampler::new(cfg).unwrap();
        let n = 20000;
        let hits = (0..n)
            .filter(|_| {
                s.sample(&mut [0.0, (3.0f32).ln()], &[], &TokenConstraints::default())
                    .unwrap()
                    == 1
            })
            .count();
        assert!((hits as f64 / n as f64 - 0.75).abs() < 0.02);
    }

    #[test]
    fn invalid_configs_are_rejected() {
        for bad in [
            SamplingConfig {
                temperature: 0.0,
                ..SamplingConfig::greedy()
            },
            SamplingConfig {
                top_p: 0.0,
                ..SamplingConfig::greedy()
            },
            SamplingConfig {
                repetition_penalty: -1.0,
                ..SamplingConfig::greedy()
            },
        ] {
            assert!(Sampler::new(bad).is_err());
        }
    }
}
