//! Autoregressive decoding of the thinker over a batch of prompts.
//!
//! Rows are left-padded to a common length, each row keeps its own positions (numbered from 0
//! at its first real token, as the reference's `cumsum(mask) - 1`), its own sampler and its own
//! token budget, and leaves the batch as soon as it stops. The result of a row is therefore the
//! same as decoding it alone (batch-size-1 semantics), up to float rounding.

use candle_core::{IndexOp, Tensor};

use qwen3_speech_engine::sampling::{Sampler, SamplingConfig, TokenConstraints};
use qwen3_speech_engine::transformer::Positions;
use qwen3_speech_engine::{Error, Result};

use super::thinker::Thinker;

/// One prompt: token ids (with `<|audio_pad|>` placeholders) and the audio embeddings that fill
/// them.
#[derive(Debug, Clone)]
pub struct DecodeRequest {
    pub prompt: Vec<u32>,
    pub audio: Option<Tensor>,
    /// Most tokens to generate for this row.
    pub max_new_tokens: usize,
}

/// Why a row stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// A stop token was produced.
    Stop,
    /// The token budget ran out first.
    Length,
}

/// Tokens generated for one row; the stop token itself is not included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    pub tokens: Vec<u32>,
    pub finish: FinishReason,
}

/// Decoding settings shared by the rows of a batch.
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    pub sampling: SamplingConfig,
    /// Tokens that end a row (`<|im_end|>`, `<|endoftext|>`).
    pub stop_ids: Vec<u32>,
    /// Id fed to left padding (never attended to).
    pub pad_id: u32,
}

/// Decodes every request; `on_token(row, token)` is called as tokens are produced.
pub fn generate(
    thinker: &Thinker,
    requests: &[DecodeRequest],
    options: &DecodeOptions,
    mut on_token: impl FnMut(usize, u32),
) -> Result<Vec<Generation>> {
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    if requests.iter().any(|r| r.prompt.is_empty()) {
        return Err(Error::InvalidArgument("empty prompt".into()));
    }
    let max_len = requests.iter().map(|r| r.prompt.len()).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(requests.len());
    let mut key_valid = Vec::with_capacity(requests.len());
    let mut positions = Vec::with_capacity(requests.len());
    for r in requests {
        let pad = max_len - r.prompt.len();
        let mut row = vec![options.pad_id; pad];
        row.extend_from_slice(&r.prompt);
        ids.push(row);
        let mut valid = vec![false; pad];
        valid.extend(std::iter::repeat_n(true, r.prompt.len()));
        key_valid.push(valid);
        let mut pos = vec![1u32; pad];
        pos.extend(0..r.prompt.len() as u32);
        positions.push(pos);
    }
    let audio: Vec<&Tensor> = requests.iter().filter_map(|r| r.audio.as_ref()).collect();
    let audio = if audio.is_empty() {
        None
    } else {
        Some(Tensor::cat(&audio, 0)?)
    };
    let embeds = thinker.embed_prompt(&ids, audio.as_ref())?;
    let any_pad = key_valid.iter().any(|r| r.iter().any(|v| !v));
    let mut cache = thinker.new_cache();
    let hidden = thinker.decode(
        &embeds,
        &Positions::from_rows(&positions)?,
        any_pad.then_some(key_valid.as_slice()),
        &mut cache,
    )?;
    let mut logits = thinker.logits(&hidden.i((.., max_len - 1, ..))?)?;

    // Rows still decoding: (request index, next position, sampler).
    let mut active: Vec<(usize, u32, Sampler)> = requests
        .iter()
        .enumerate()
        .map(|(i, r)| {
            Ok((
                i,
                r.prompt.len() as u32,
                Sampler::new(options.sampling.clone())?,
            ))
        })
        .collect::<Result<_>>()?;
    let mut out: Vec<Generation> = requests
        .iter()
        .map(|_| Generation {
            tokens: Vec::new(),
            finish: FinishReason::Length,
        })
        .collect();
    let constraints = TokenConstraints::default();
    let mut finished_rows = vec![false; requests.len()];
    for (i, r) in requests.iter().enumerate() {
        if r.max_new_tokens == 0 {
            finished_rows[i] = true;
        }
    }

    loop {
        let rows: Vec<Vec<f32>> = logits.to_vec2()?;
        let mut next = Vec::with_capacity(active.len());
        for (slot, (req, _, sampler)) in active.iter_mut().enumerate() {
            if finished_rows[*req] {
                next.push(None);
                continue;
            }
            let mut l = rows[slot].clone();
            let token = sampler.sample(&mut l, &out[*req].tokens, &constraints)?;
            if options.stop_ids.contains(&token) {
                out[*req].finish = FinishReason::Stop;
                finished_rows[*req] = true;
                next.push(None);
            } else {
                out[*req].tokens.push(token);
                on_token(*req, token);
                if out[*req].tokens.len() >= requests[*req].max_new_tokens {
                    finished_rows[*req] = true;
                    next.push(None);
                } else {
                    next.push(Some(token));
                }
            }
        }
        // Drop finished rows from the batch.
        let keep: Vec<usize> = (0..active.len()).filter(|&s| next[s].is_some()).collect();
        if keep.is_empty() {
            break;
        }
        if keep.len() != active.len() {
            let idx: Vec<u32> = keep.iter().map(|&s| s as u32).collect();
            cache.select_rows(&idx, logits.device())?;
            key_valid = keep.iter().map(|&s| key_valid[s].clone()).collect();
            let mut kept = Vec::with_capacity(keep.len());
            let mut kept_next = Vec::with_capacity(keep.len());
            for (s, a) in active.into_iter().enumerate() {
                if keep.contains(&s) {
                    kept.push(a);
                    kept_next.push(next[s]);
                }
            }
            active = kept;
            next = kept_next;
        }
        let step_ids: Vec<Vec<u32>> = next
            .iter()
            .map(|t| vec![t.unwrap_or(options.pad_id)])
            .collect();
        let step_pos: Vec<Vec<u32>> = active.iter().map(|(_, p, _)| vec![*p]).collect();
        for (_, p, _) in active.iter_mut() {
            *p += 1;
        }
        for v in key_valid.iter_mut() {
            v.push(true);
        }
        let any_pad = key_valid.iter().any(|r| r.iter().any(|v| !v));
        let embeds = thinker.embed_tokens(&step_ids)?;
        let hidden = thinker.decode(
            &embeds,
            &Positions::from_rows(&step_pos)?,
            any_pad.then_some(key_valid.as_slice()),
            &mut cache,
        )?;
        logits = thinker.logits(&hidden.i((.., 0, ..))?)?;
    }
    Ok(out)
}
