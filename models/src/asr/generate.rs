//! Autoregressive decoding of the thinker over a batch of prompts.
//!
//! Rows are left-padded to a common length, each row keeps its own positions (numbered from 0
//! at its first real token, as the reference's `cumsum(mask) - 1`), its own sampler and its own
//! token budget, and leaves the batch as soon as it stops. The result of a row is therefore the
//! same as decoding it alone (batch-size-1 semantics), up to float rounding.
//!
//! [`DecodeSession`] exposes decoding as steps (one token per active row per step), which is
//! what streaming front ends build on; [`generate`] runs a session to the end.

use candle_core::{IndexOp, Tensor};

use qwen3_speech_engine::sampling::{Sampler, SamplingConfig, TokenConstraints};
use qwen3_speech_engine::transformer::{KvCache, Positions};
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

/// A row still decoding.
struct ActiveRow {
    request: usize,
    next_position: u32,
    sampler: Sampler,
    budget: usize,
}

/// A batch being decoded, one step at a time.
pub struct DecodeSession<'a> {
    thinker: &'a Thinker,
    options: DecodeOptions,
    cache: KvCache,
    active: Vec<ActiveRow>,
    /// Per active row: which cached positions are real tokens (false for left padding).
    key_valid: Vec<Vec<bool>>,
    /// Logits `[active rows, vocab]` for the next token of every active row.
    logits: Tensor,
    outputs: Vec<Generation>,
}

impl<'a> DecodeSession<'a> {
    /// Runs the prompts (prefill) and prepares the first step.
    pub fn new(
        thinker: &'a Thinker,
        requests: &[DecodeRequest],
        options: &DecodeOptions,
    ) -> Result<Self> {
        if requests.is_empty() {
            return Err(Error::InvalidArgument("nothing to decode".into()));
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
        let mut cache = thinker.new_cache();
        let any_pad = key_valid.iter().any(|r| r.iter().any(|v| !v));
        let hidden = thinker.decode(
            &embeds,
            &Positions::from_rows(&positions)?,
            any_pad.then_some(key_valid.as_slice()),
            &mut cache,
        )?;
        // Only the last position's logits are needed (the reference computes all of them).
        let logits = thinker.logits(&hidden.i((.., max_len - 1, ..))?)?;
        let active = requests
            .iter()
            .enumerate()
            .map(|(i, r)| {
                Ok(ActiveRow {
                    request: i,
                    next_position: r.prompt.len() as u32,
                    sampler: Sampler::new(options.sampling.clone())?,
                    budget: r.max_new_tokens,
                })
            })
            .collect::<Result<_>>()?;
        Ok(DecodeSession {
            thinker,
            options: options.clone(),
            cache,
            active,
            key_valid,
            logits,
            outputs: vec![
                Generation {
                    tokens: Vec::new(),
                    finish: FinishReason::Length,
                };
                requests.len()
            ],
        })
    }

    /// True when every row has stopped.
    pub fn is_done(&self) -> bool {
        self.active.is_empty()
    }

    /// Tokens generated so far for request `i`.
    pub fn tokens(&self, i: usize) -> &[u32] {
        &self.outputs[i].tokens
    }

    /// Picks one token for every active row and feeds it back. Returns the `(request, token)`
    /// pairs emitted in this step (stop tokens are not emitted).
    pub fn step(&mut self) -> Result<Vec<(usize, u32)>> {
        if self.active.is_empty() {
            return Ok(Vec::new());
        }
        qwen3_speech_engine::cancel::checkpoint()?;
        let rows: Vec<Vec<f32>> = self.logits.to_vec2()?;
        let constraints = TokenConstraints::default();
        let mut emitted = Vec::new();
        let mut keep = Vec::with_capacity(self.active.len());
        let mut next_tokens = Vec::with_capacity(self.active.len());
        for (slot, row) in self.active.iter_mut().enumerate() {
            let out = &mut self.outputs[row.request];
            if row.budget == 0 {
                continue;
            }
            let mut l = rows[slot].clone();
            let token = row.sampler.sample(&mut l, &out.tokens, &constraints)?;
            if self.options.stop_ids.contains(&token) {
                out.finish = FinishReason::Stop;
                continue;
            }
            out.tokens.push(token);
            emitted.push((row.request, token));
            if out.tokens.len() < row.budget {
                keep.push(slot);
                next_tokens.push(token);
            }
        }
        if keep.is_empty() {
            self.active.clear();
            return Ok(emitted);
        }
        if keep.len() != self.active.len() {
            // Drop finished rows from the batch and its cache.
            let idx: Vec<u32> = keep.iter().map(|&s| s as u32).collect();
            self.cache.select_rows(&idx, self.logits.device())?;
            let mut active = std::mem::take(&mut self.active);
            let mut valid = std::mem::take(&mut self.key_valid);
            let mut slot = 0;
            active.retain(|_| {
                slot += 1;
                keep.contains(&(slot - 1))
            });
            let mut slot = 0;
            valid.retain(|_| {
                slot += 1;
                keep.contains(&(slot - 1))
            });
            self.active = active;
            self.key_valid = valid;
        }
        let step_ids: Vec<Vec<u32>> = next_tokens.iter().map(|&t| vec![t]).collect();
        let step_pos: Vec<Vec<u32>> = self.active.iter().map(|r| vec![r.next_position]).collect();
        for r in &mut self.active {
            r.next_position += 1;
        }
        for v in &mut self.key_valid {
            v.push(true);
        }
        let any_pad = self.key_valid.iter().any(|r| r.iter().any(|v| !v));
        let embeds = self.thinker.embed_tokens(&step_ids)?;
        let hidden = self.thinker.decode(
            &embeds,
            &Positions::from_rows(&step_pos)?,
            any_pad.then_some(self.key_valid.as_slice()),
            &mut self.cache,
        )?;
        self.logits = self.thinker.logits(&hidden.i((.., 0, ..))?)?;
        Ok(emitted)
    }

    /// The results, one per request, in request order.
    pub fn into_outputs(self) -> Vec<Generation> {
        self.outputs
    }
}

/// Decodes every request to the end; `on_token(request, token)` is called as tokens appear.
pub fn generate(
    thinker: &Thinker,
    requests: &[DecodeRequest],
    options: &DecodeOptions,
    mut on_token: impl FnMut(usize, u32),
) -> Result<Vec<Generation>> {
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    let mut session = DecodeSession::new(thinker, requests, options)?;
    while !session.is_done() {
        for (row, token) in session.step()? {
            on_token(row, token);
        }
    }
    Ok(session.into_outputs())
}
