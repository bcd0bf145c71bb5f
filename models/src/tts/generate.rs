//! The frame loop (tts.md §5.2): talker prefill, then per frame the code predictor and one
//! talker step. Frames come out one call at a time so callers can decode and play audio while
//! the rest is generated.

use candle_core::{IndexOp, Tensor};

use qwen3_speech_engine::sampling::{Sampler, SamplingConfig, TokenConstraints};
use qwen3_speech_engine::transformer::{KvCache, Positions};
use qwen3_speech_engine::{Error, Result};

use super::config::{TtsConfig, TtsGenerationConfig};
use super::prompt::TalkerPrompt;
use super::talker::Talker;

/// Sampling of the talker (code 0) and of the code predictor (codes 1..G-1).
#[derive(Debug, Clone, PartialEq)]
pub struct FrameSampling {
    pub talker: SamplingConfig,
    pub code_predictor: SamplingConfig,
    /// Talker steps (code-0 samples), as the reference's `max_new_tokens`: at most
    /// `max_new_tokens - 1` frames come out.
    pub max_new_tokens: usize,
}

impl FrameSampling {
    /// The checkpoint's defaults (generation_config.json) with a seed.
    pub fn from_generation_config(g: &TtsGenerationConfig, seed: u64) -> Self {
        FrameSampling {
            talker: SamplingConfig {
                do_sample: g.do_sample,
                temperature: g.temperature,
                top_k: g.top_k,
                top_p: g.top_p,
                repetition_penalty: g.repetition_penalty,
                seed,
            },
            code_predictor: SamplingConfig {
                do_sample: g.subtalker_dosample,
                temperature: g.subtalker_temperature,
                top_k: g.subtalker_top_k,
                top_p: g.subtalker_top_p,
                repetition_penalty: 1.0,
                seed: seed.wrapping_add(0x9E37_79B9_7F4A_7C15),
            },
            max_new_tokens: g.max_new_tokens,
        }
    }

    /// Argmax everywhere; the repetition penalty still applies to code 0, as in the reference
    /// (greedy there means `do_sample=False` with the other settings unchanged).
    pub fn greedy(mut self) -> Self {
        self.talker.do_sample = false;
        self.code_predictor.do_sample = false;
        self
    }
}

/// Why a sample's generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameStop {
    /// The talker produced end-of-speech.
    Eos,
    /// `max_new_tokens` was reached first: the speech may be cut off.
    MaxFrames,
}

struct Row {
    code0_history: Vec<u32>,
    finished: Option<FrameStop>,
    next_position: u32,
    trailing: Tensor,
    talker_sampler: Sampler,
    predictor_sampler: Sampler,
}

/// Which sampler a replayed draw is for ([`FrameSession::replay_draws`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrawSite {
    /// Code 0 of sample `row`.
    Talker { row: usize },
    /// Code `step + 1` of sample `row`.
    CodePredictor { row: usize, step: usize },
}

/// Makes a sampled draw from final probabilities instead of the samplers' own generators.
pub type DrawFn<'a> = Box<dyn FnMut(DrawSite, &[f32]) -> Result<u32> + 'a>;

/// A batch of samples being generated, one frame per [`FrameSession::step`].
pub struct FrameSession<'a> {
    talker: &'a Talker,
    cache: KvCache,
    rows: Vec<Row>,
    key_valid: Vec<Vec<bool>>,
    any_padding: bool,
    /// Final-normed hidden state `[b, hidden]` that produced `pending`.
    hidden: Tensor,
    /// Code 0 of the next frame of every row (EOS for finished rows).
    pending: Vec<u32>,
    /// Code-0 samples drawn so far (the reference's new-token count).
    steps: usize,
    max_new_tokens: usize,
    constraints: TokenConstraints,
    eos: u32,
    pad_vector: Tensor,
    done: bool,
    draw: Option<DrawFn<'a>>,
}

impl<'a> FrameSession<'a> {
    /// Prefills the talker with the prompts (left-padded into one batch) and samples code 0
    /// of the first frame.
    pub fn new(
        talker: &'a Talker,
        cfg: &TtsConfig,
        prompts: &[TalkerPrompt],
        sampling: &FrameSampling,
    ) -> Result<Self> {
        Self::new_with_draws(talker, cfg, prompts, sampling, None)
    }

    /// [`FrameSession::new`] whose sampled draws (talker and code predictor, in generation
    /// order) are made by `draw`: golden tests replay the reference's random draws with it.
    pub fn new_with_draws(
        talker: &'a Talker,
        cfg: &TtsConfig,
        prompts: &[TalkerPrompt],
        sampling: &FrameSampling,
        draw: Option<DrawFn<'a>>,
    ) -> Result<Self> {
        if prompts.is_empty() {
            return Err(Error::InvalidArgument("nothing to synthesize".into()));
        }
        if sampling.max_new_tokens == 0 {
            return Err(Error::InvalidArgument(
                "max frames must be at least 1".into(),
            ));
        }
        sampling.talker.validate()?;
        sampling.code_predictor.validate()?;
        let hidden_size = talker.hidden_size();
        let lens: Vec<usize> = prompts
            .iter()
            .map(|p| p.embeds.dim(0))
            .collect::<candle_core::Result<_>>()?;
        let max_len = *lens.iter().max().unwrap_or(&0);
        let mut rows_embeds = Vec::with_capacity(prompts.len());
        let mut key_valid = Vec::with_capacity(prompts.len());
        let mut positions = Vec::with_capacity(prompts.len());
        for (p, &len) in prompts.iter().zip(&lens) {
            let pad = max_len - len;
            let e = p.embeds.to_dtype(talker.dtype())?;
            rows_embeds.push(if pad > 0 {
                let zeros = Tensor::zeros((pad, hidden_size), e.dtype(), e.device())?;
                Tensor::cat(&[zeros, e], 0)?
            } else {
                e
            });
            let mut valid = vec![false; pad];
            valid.extend(std::iter::repeat_n(true, len));
            key_valid.push(valid);
            let mut pos = vec![0u32; pad];
            pos.extend(0..len as u32);
            positions.push(pos);
        }
        let any_padding = lens.iter().any(|&l| l != max_len);
        let embeds = Tensor::stack(&rows_embeds, 0)?;
        let mut cache = talker.new_cache();
        let hidden = talker.forward(
            &embeds,
            &Positions::from_rows(&positions)?,
            any_padding.then_some(key_valid.as_slice()),
            &mut cache,
        )?;
        let hidden = hidden.i((.., max_len - 1, ..))?.contiguous()?;
        let t = &cfg.talker_config;
        let constraints = TokenConstraints {
            suppress: cfg.suppressed_ids(),
            eos: vec![t.codec_eos_token_id],
            min_new_tokens: 2,
        };
        let pad_vector = talker.text(&[cfg.tts_pad_token_id])?;
        let rows = prompts
            .iter()
            .zip(&lens)
            .enumerate()
            .map(|(i, (p, &len))| {
                let mut ts = sampling.talker.clone();
                ts.seed = ts.seed.wrapping_add(i as u64);
                let mut ps = sampling.code_predictor.clone();
                ps.seed = ps.seed.wrapping_add(i as u64);
                Ok(Row {
                    code0_history: Vec::new(),
                    finished: None,
                    next_position: len as u32,
                    trailing: p.trailing.to_dtype(talker.dtype())?,
                    talker_sampler: Sampler::new(ts)?,
                    predictor_sampler: Sampler::new(ps)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut session = FrameSession {
            talker,
            cache,
            rows,
            key_valid,
            any_padding,
            hidden,
            pending: Vec::new(),
            steps: 0,
            max_new_tokens: sampling.max_new_tokens,
            constraints,
            eos: t.codec_eos_token_id,
            pad_vector,
            done: false,
            draw,
        };
        session.sample_code0()?;
        Ok(session)
    }

    /// Samples code 0 of every row from the current hidden state.
    fn sample_code0(&mut self) -> Result<()> {
        let logits = self.talker.logits(&self.hidden)?;
        let mut logits: Vec<Vec<f32>> = logits.to_vec2()?;
        let mut pending = Vec::with_capacity(self.rows.len());
        for (i, (row, l)) in self.rows.iter_mut().zip(logits.iter_mut()).enumerate() {
            let code = if row.finished.is_some() {
                // As transformers: finished rows are fed the pad id (= EOS) until all stop.
                self.eos
            } else {
                let c = match self.draw.as_mut() {
                    None => row
                        .talker_sampler
                        .sample(l, &row.code0_history, &self.constraints)?,
                    Some(d) => row.talker_sampler.sample_with(
                        l,
                        &row.code0_history,
                        &self.constraints,
                        &mut |p| d(DrawSite::Talker { row: i }, p),
                    )?,
                };
                row.code0_history.push(c);
                if c == self.eos {
                    row.finished = Some(FrameStop::Eos);
                }
                c
            };
            pending.push(code);
        }
        self.pending = pending;
        self.steps += 1;
        Ok(())
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Number of samples in the batch.
    pub fn batch_size(&self) -> usize {
        self.rows.len()
    }

    /// How sample `i` ended (`None` while it runs).
    pub fn stop_reason(&self, i: usize) -> Option<FrameStop> {
        self.rows.get(i).and_then(|r| r.finished)
    }

    /// Generates the next frame of every running sample: `(sample, codes[G])` pairs. An empty
    /// result means the session is done (every sample reached EOS or the frame limit; see
    /// [`FrameSession::stop_reason`]).
    pub fn step(&mut self) -> Result<Vec<(usize, Vec<u32>)>> {
        if self.done {
            return Ok(Vec::new());
        }
        qwen3_speech_engine::cancel::checkpoint()?;
        if self.rows.iter().all(|r| r.finished.is_some()) {
            self.done = true;
            return Ok(Vec::new());
        }
        if self.steps >= self.max_new_tokens {
            // The last code 0 is never expanded into a frame (as the reference).
            for r in &mut self.rows {
                r.finished.get_or_insert(FrameStop::MaxFrames);
            }
            self.done = true;
            return Ok(Vec::new());
        }
        let talker = self.talker;
        let rows = &mut self.rows;
        let draw = &mut self.draw;
        let none = TokenConstraints::default();
        // Codes 1..G-1 (none for a single-codebook talker).
        let rest = talker.predict_rest(&self.hidden, &self.pending, |r, step, logits| {
            let sampler = &mut rows[r].predictor_sampler;
            match draw.as_mut() {
                None => sampler.sample(logits, &[], &none),
                Some(d) => sampler.sample_with(logits, &[], &none, &mut |p| {
                    d(DrawSite::CodePredictor { row: r, step }, p)
                }),
            }
        })?;
        let frames: Vec<Vec<u32>> = self
            .pending
            .iter()
            .zip(rest)
            .map(|(&c0, mut rest)| {
                rest.insert(0, c0);
                rest
            })
            .collect();
        // Emit frames of rows whose code 0 is an audio code (a row that just drew EOS ends
        // here; its frame is computed for the batch but discarded, as the reference's trim).
        let out: Vec<(usize, Vec<u32>)> = frames
            .iter()
            .enumerate()
            .filter(|(i, f)| f[0] != self.eos && self.rows[*i].finished.is_none())
            .map(|(i, f)| (i, f.clone()))
            .collect();

        // Next talker input: frame feedback + the next queued text vector (or the pad vector).
        let feedback = talker.frame_embeddings(&frames)?;
        let step_index = self.steps - 1;
        let mut text_vecs = Vec::with_capacity(self.rows.len());
        for r in &self.rows {
            let n = r.trailing.dim(0)?;
            text_vecs.push(if step_index < n {
                r.trailing.narrow(0, step_index, 1)?
            } else {
                self.pad_vector.clone()
            });
        }
        let input = (feedback + Tensor::cat(&text_vecs, 0)?)?.unsqueeze(1)?;
        let positions: Vec<Vec<u32>> = self.rows.iter().map(|r| vec![r.next_position]).collect();
        for (r, valid) in self.rows.iter_mut().zip(self.key_valid.iter_mut()) {
            r.next_position += 1;
            valid.push(true);
        }
        let hidden = talker.forward(
            &input,
            &Positions::from_rows(&positions)?,
            self.any_padding.then_some(self.key_valid.as_slice()),
            &mut self.cache,
        )?;
        self.hidden = hidden.i((.., 0, ..))?.contiguous()?;
        self.sample_code0()?;
        Ok(out)
    }

    /// Runs to the end; returns every sample's frames and why it stopped.
    pub fn run_to_end(mut self) -> Result<Vec<(Vec<Vec<u32>>, FrameStop)>> {
        let mut frames = vec![Vec::new(); self.rows.len()];
        loop {
            let out = self.step()?;
            if out.is_empty() && self.done {
                break;
            }
            for (i, f) in out {
                frames[i].push(f);
            }
        }
        Ok(frames
            .into_iter()
            .enumerate()
            .map(|(i, f)| (f, self.rows[i].finished.unwrap_or(FrameStop::MaxFrames)))
            .collect())
    }
}
