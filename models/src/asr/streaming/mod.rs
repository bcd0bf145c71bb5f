//! Streaming speech recognition: the reference's algorithm (`Qwen3ASRModel.init_streaming_state`
//! / `streaming_transcribe` / `finish_streaming_transcribe`, asr.md §7), with a cost per chunk
//! that does not grow with the whole stream.
//!
//! # The algorithm (as the reference)
//!
//! 16 kHz samples are buffered; every time a chunk of `chunk_seconds` is complete it is appended
//! to the stream and the model decodes greedily with the prompt of the whole stream:
//!
//! ```text
//! <|im_start|>system\n{context}<|im_end|>\n<|im_start|>user\n<|audio_start|>{N × audio}
//! <|audio_end|><|im_end|>\n<|im_start|>assistant\n[language X<asr_text>]{prefix}
//! ```
//!
//! `prefix` is empty for the first `unfixed_chunks` chunks. After that it is the previous raw
//! output with its last `rollback_tokens` tokens removed (re-tokenized, and rolled back further
//! while the cut falls inside a multi-byte character). The new raw output is `prefix +
//! generated`, parsed into (language, text). [`AsrStream::finish`] decodes once more with the
//! buffered tail of any length (rolling back `max(1, len - k)` tokens, without the U+FFFD
//! retry, exactly as the reference) — or not at all when nothing is buffered.
//!
//! Feature semantics are the reference streaming backend's (vLLM): the audio is zero-padded to
//! a multiple of 160 samples (`ceil(L / 160)` mel frames) and the encoder attends within
//! windows of `n_window_infer` frames.
//!
//! # Two ways to compute it ([`StreamMode`])
//!
//! * [`StreamMode::Exact`]: like the reference, every chunk recomputes the features and
//!   re-encodes the whole stream, then runs the decoder over the whole prompt. The cost of a
//!   chunk grows with the stream, so the total is quadratic.
//! * [`StreamMode::Incremental`] (default): the features of final frames are kept
//!   ([`features::StreamFeatures`]); the encoder outputs of complete attention windows are kept
//!   and only the open window is encoded ([`encoder::IncrementalEncoder`]); and the decoder's KV
//!   cache is kept for the part of the prompt that did not change: the system/user head and
//!   the audio of complete windows (their positions never move, since audio tokens only get
//!   appended). Everything after them (the open window's audio, the assistant header, the
//!   prefix text, the generated tokens) is recomputed, because it sits after audio that
//!   changed. The result is the same computation, up to float rounding.
//!
//! # Long streams: segments ([`StreamOptions::max_segment_seconds`])
//!
//! The reference's prompt carries the transcript *after* the audio, so even the incremental
//! mode re-runs the whole carried transcript at every chunk (it follows audio that changed),
//! and a chunk's cost grows with the stream. To keep the cost of a live stream flat, a stream
//! is cut into segments of about `max_segment_seconds` (default 30 s, give or take a chunk):
//! when a chunk would take the segment past that length, the segment ends at the quietest
//! point of that chunk
//! (the quietest sample of its quietest 100 ms, the rule the reference uses to cut long
//! audio), is decoded once more exactly as [`AsrStream::finish`] would decode a stream that
//! ends there, and its text becomes final. The rest of the chunk starts the next segment,
//! which is a new stream of the same algorithm (unfixed first chunks included). A stream that
//! never exceeds `max_segment_seconds` is the reference's stream exactly; `None` never cuts.
//! Segment texts are joined like the offline long-audio path's pieces, with a space between
//! them where the script separates words with spaces.

pub mod encoder;
pub mod features;

use std::time::Instant;

use candle_core::{IndexOp, Tensor};

use qwen3_speech_engine::audio::ASR_SAMPLE_RATE;
use qwen3_speech_engine::audio::mel::WHISPER_MIN_SAMPLES;
use qwen3_speech_engine::sampling::argmax;
use qwen3_speech_engine::transformer::{KvCache, Positions};
use qwen3_speech_engine::{Error, Result};

use super::encoder::EncoderAttention;
use super::pipeline::{AsrModel, default_token_budget};
use super::prompt::{prompt_prefix, prompt_suffix};
use super::split::quietest_point;
use super::text::{parse_asr_output, resolve_language};
use encoder::IncrementalEncoder;
use features::StreamFeatures;

/// How a stream is computed (same algorithm and result, different cost).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StreamMode {
    /// Re-encode the whole stream and re-run the whole prompt at every chunk, as the reference.
    Exact,
    /// Keep final features, complete encoder windows and the decoder cache of the unchanged
    /// prompt head; compute only what changed.
    #[default]
    Incremental,
}

impl std::str::FromStr for StreamMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "exact" => Ok(StreamMode::Exact),
            "incremental" => Ok(StreamMode::Incremental),
            other => Err(Error::InvalidArgument(format!(
                "unknown streaming mode '{other}': expected exact or incremental"
            ))),
        }
    }
}

impl std::fmt::Display for StreamMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StreamMode::Exact => "exact",
            StreamMode::Incremental => "incremental",
        })
    }
}

/// Settings of a stream (the reference's `init_streaming_state` arguments, plus the mode).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamOptions {
    /// Audio per decode step, seconds (reference default 2.0; its web demo uses 1.0).
    pub chunk_seconds: f64,
    /// The first this many chunks are decoded without a prefix (reference default 2; demo 4).
    pub unfixed_chunks: usize,
    /// Tokens of the previous output rolled back before it is used as the prefix (default 5).
    pub rollback_tokens: usize,
    pub mode: StreamMode,
    /// Force the language (name or code); `None` detects it.
    pub language: Option<String>,
    /// Context for the system turn.
    pub context: String,
    /// Token budget per decode; `None`: generous, scaled with the audio the decode has to
    /// cover (the whole stream while there is no prefix, one chunk after that).
    pub max_new_tokens: Option<usize>,
    /// Segment length, seconds (see the module docs; a segment ends within the chunk that
    /// takes it past this length); `None`: one segment however long the
    /// stream (the reference's behaviour, with a cost per chunk that grows with the stream).
    pub max_segment_seconds: Option<f64>,
}

/// Default [`StreamOptions::max_segment_seconds`].
pub const DEFAULT_MAX_SEGMENT_SECONDS: f64 = 30.0;

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            chunk_seconds: 2.0,
            unfixed_chunks: 2,
            rollback_tokens: 5,
            mode: StreamMode::default(),
            language: None,
            context: String::new(),
            max_new_tokens: None,
            max_segment_seconds: Some(DEFAULT_MAX_SEGMENT_SECONDS),
        }
    }
}

impl StreamOptions {
    /// Checks the options; returns the forced language's canonical name.
    pub fn validate(&self) -> Result<Option<String>> {
        if !(self.chunk_seconds.is_finite() && self.chunk_seconds > 0.0) {
            return Err(Error::InvalidArgument(format!(
                "chunk_seconds must be > 0, got {}",
                self.chunk_seconds
            )));
        }
        if self.chunk_seconds > 1200.0 {
            return Err(Error::InvalidArgument(format!(
                "chunk_seconds {} exceeds the model's 1200 s",
                self.chunk_seconds
            )));
        }
        if self.max_new_tokens == Some(0) {
            return Err(Error::InvalidArgument(
                "max_new_tokens must be positive".into(),
            ));
        }
        if let Some(seg) = self.max_segment_seconds
            && !(seg.is_finite() && seg >= self.chunk_seconds && seg <= 1200.0)
        {
            return Err(Error::InvalidArgument(format!(
                "max_segment_seconds must be between the chunk length ({} s) and 1200 s, got {seg}",
                self.chunk_seconds
            )));
        }
        if self.context.contains("<|audio_pad|>") || self.context.contains("<|im_start|>") {
            return Err(Error::InvalidArgument(
                "the context must not contain special tokens such as <|audio_pad|>".into(),
            ));
        }
        self.language
            .as_deref()
            .filter(|l| !l.trim().is_empty())
            .map(resolve_language)
            .transpose()
    }

    /// Samples per chunk at 16 kHz: `max(1, round(chunk_seconds · 16000))`.
    pub fn chunk_samples(&self) -> usize {
        ((self.chunk_seconds * f64::from(ASR_SAMPLE_RATE)).round() as usize).max(1)
    }

    /// Longest segment in 16 kHz samples (at least one chunk); `None`: unbounded.
    pub fn segment_samples(&self) -> Option<usize> {
        self.max_segment_seconds
            .map(|s| ((s * f64::from(ASR_SAMPLE_RATE)).round() as usize).max(self.chunk_samples()))
    }
}

/// What one decode step computed (for benchmarks and diagnostics).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepStats {
    /// Audio tokens in the prompt.
    pub audio_tokens: usize,
    /// Audio encoder tokens computed by this step.
    pub encoder_tokens: usize,
    /// Complete windows encoded again because the features' floor moved.
    pub reencoded_windows: usize,
    /// Prompt positions whose decoder cache was reused.
    pub reused_positions: usize,
    /// Prompt positions run through the decoder.
    pub prefill_positions: usize,
    /// Tokens generated (without the stop token).
    pub generated_tokens: usize,
    /// The token budget ran out before the model stopped.
    pub truncated: bool,
    /// Wall time of the features and the audio encoder, seconds.
    pub encode_seconds: f64,
    /// Wall time of the prompt through the decoder (up to the first token's logits), seconds.
    pub prefill_seconds: f64,
    /// Wall time of the token-by-token decoding, seconds.
    pub decode_seconds: f64,
}

impl StepStats {
    /// The same counts with the wall times zeroed (to compare two runs).
    pub fn without_times(mut self) -> Self {
        self.encode_seconds = 0.0;
        self.prefill_seconds = 0.0;
        self.decode_seconds = 0.0;
        self
    }

    /// Wall time of the whole step, seconds.
    pub fn total_seconds(&self) -> f64 {
        self.encode_seconds + self.prefill_seconds + self.decode_seconds
    }
}

/// The state after a decode step (or after [`AsrStream::finish`]).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamUpdate {
    /// Detected (or forced) language; empty when unknown.
    pub language: String,
    /// The whole transcript so far.
    pub text: String,
    /// The start of `text` that the next decode is given as a forced prefix: it stays unless a
    /// later decode produces fewer than `rollback_tokens` new tokens (then the reference rolls
    /// back further). All of `text` once `is_final`.
    pub fixed: String,
    /// The rest of `text`, which the next decode may still change.
    pub unfixed: String,
    /// The raw model output (`prefix + generated`) before parsing.
    pub raw: String,
    /// Index of this decode in the stream (0 for the first chunk).
    pub chunk: usize,
    /// 16 kHz samples in the stream when this decode ran.
    pub audio_samples: usize,
    /// True for the result of [`AsrStream::finish`].
    pub is_final: bool,
    /// Index of the segment this decode belongs to (see [`StreamOptions::max_segment_seconds`]).
    pub segment: usize,
    /// True for the decode that ended its segment: all of `text` is then final.
    pub segment_closed: bool,
    pub stats: StepStats,
}

/// One stream being transcribed. The model is passed to every call (the stream holds no
/// reference to it); use the same model for the whole stream.
pub struct AsrStream {
    options: StreamOptions,
    forced: Option<String>,
    chunk_samples: usize,
    buffer: Vec<f32>,
    features: StreamFeatures,
    encoder: IncrementalEncoder,
    /// Prompt ids before the audio.
    head: Vec<u32>,
    /// Prompt text after the audio, before the prefix.
    suffix: String,
    /// Longest segment, samples (`None`: unbounded).
    segment_limit: Option<usize>,
    /// Index of the current segment, and the stream samples before it.
    segment: usize,
    segment_start: usize,
    /// The text of the closed segments, joined.
    committed: String,
    /// Decodes done in the whole stream.
    decodes: usize,
    /// Decodes done in the current segment (the reference's `chunk_id`).
    chunk_id: usize,
    /// The current segment's raw output and its parse.
    raw: String,
    segment_language: String,
    segment_text: String,
    /// Last known language (of the current segment, else of an earlier one), and the whole
    /// transcript (`committed` joined with `segment_text`).
    language: String,
    text: String,
    /// Incremental mode: the decoder cache of the last decode, and the ids of the complete
    /// windows whose audio it holds right after the head.
    kv: Option<KvCache>,
    kv_windows: Vec<u64>,
    /// The prefix the next decode will use (computed after each decode for `fixed`).
    next_prefix: Option<String>,
    finished: bool,
}

impl std::fmt::Debug for AsrStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsrStream")
            .field("options", &self.options)
            .field("segment", &self.segment)
            .field("chunk_id", &self.chunk_id)
            .field("samples", &self.stream_samples())
            .field("buffered", &self.buffer.len())
            .finish()
    }
}

impl AsrStream {
    /// A new stream for `model` (the model is used to tokenize the prompt).
    pub fn new(model: &AsrModel, options: StreamOptions) -> Result<Self> {
        let forced = options.validate()?;
        let head = model.tokenizer().encode(&prompt_prefix(&options.context))?;
        let suffix = prompt_suffix(forced.as_deref());
        Ok(AsrStream {
            chunk_samples: options.chunk_samples(),
            segment_limit: options.segment_samples(),
            options,
            forced,
            buffer: Vec::new(),
            features: StreamFeatures::new(),
            encoder: IncrementalEncoder::new(),
            head,
            suffix,
            segment: 0,
            segment_start: 0,
            committed: String::new(),
            decodes: 0,
            chunk_id: 0,
            raw: String::new(),
            segment_language: String::new(),
            segment_text: String::new(),
            language: String::new(),
            text: String::new(),
            kv: None,
            kv_windows: Vec::new(),
            next_prefix: None,
            finished: false,
        })
    }

    pub fn options(&self) -> &StreamOptions {
        &self.options
    }

    /// Switches how the next decodes are computed (the result is the same either way; the
    /// kept work is dropped when switching to [`StreamMode::Exact`]).
    pub fn set_mode(&mut self, mode: StreamMode) {
        self.options.mode = mode;
        if mode == StreamMode::Exact {
            self.encoder.reset();
            self.kv = None;
            self.kv_windows.clear();
        }
    }

    /// Changes the token budget of the next decodes.
    pub fn set_max_new_tokens(&mut self, max_new_tokens: Option<usize>) -> Result<()> {
        if max_new_tokens == Some(0) {
            return Err(Error::InvalidArgument(
                "max_new_tokens must be positive".into(),
            ));
        }
        self.options.max_new_tokens = max_new_tokens;
        Ok(())
    }

    /// The forced language's canonical name, if any.
    pub fn forced_language(&self) -> Option<&str> {
        self.forced.as_deref()
    }

    /// Latest parsed language.
    pub fn language(&self) -> &str {
        &self.language
    }

    /// Latest parsed transcript.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Latest raw output (`prefix + generated`) of the current segment.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// Decodes done so far in the current segment (the reference's `chunk_id`: the first
    /// `unfixed_chunks` of a segment have no prefix).
    pub fn chunk_id(&self) -> usize {
        self.chunk_id
    }

    /// Decodes done so far in the whole stream.
    pub fn decodes(&self) -> usize {
        self.decodes
    }

    /// Index of the current segment.
    pub fn segment(&self) -> usize {
        self.segment
    }

    /// Samples of the current segment (decoded at least once).
    pub fn segment_samples(&self) -> usize {
        self.features.samples().len()
    }

    /// Samples per chunk.
    pub fn chunk_samples(&self) -> usize {
        self.chunk_samples
    }

    /// Samples waiting for a full chunk.
    pub fn buffered_samples(&self) -> usize {
        self.buffer.len()
    }

    /// Samples already in the stream (decoded at least once).
    pub fn stream_samples(&self) -> usize {
        self.segment_start + self.features.samples().len()
    }

    /// True after [`finish`](Self::finish).
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Adds 16 kHz mono samples; decodes once per completed chunk and returns one update per
    /// decode (none while the chunk is not complete).
    pub fn push(&mut self, model: &AsrModel, samples: &[f32]) -> Result<Vec<StreamUpdate>> {
        if self.finished {
            return Err(Error::InvalidArgument(
                "the stream is finished; start a new one".into(),
            ));
        }
        if let Some(i) = samples.iter().position(|x| !x.is_finite()) {
            return Err(Error::Audio(format!("sample {i} is not a finite number")));
        }
        self.buffer.extend_from_slice(samples);
        let mut updates = Vec::new();
        while self.buffer.len() >= self.chunk_samples {
            let chunk: Vec<f32> = self.buffer.drain(..self.chunk_samples).collect();
            let held = self.features.samples().len();
            if self
                .segment_limit
                .is_some_and(|limit| held + chunk.len() > limit)
            {
                // The segment would grow past its limit: end it inside this chunk, at its
                // quietest point, and give the rest of the chunk to the next segment.
                let cut = segment_cut(&chunk);
                self.features.extend(&chunk[..cut]);
                self.buffer.splice(0..0, chunk[cut..].iter().copied());
                let prefix = self.final_prefix(model)?;
                updates.push(self.step(model, prefix, Close::Segment)?);
                self.start_segment();
                continue;
            }
            self.features.extend(&chunk);
            let prefix = if self.chunk_id < self.options.unfixed_chunks {
                String::new()
            } else {
                match self.next_prefix.take() {
                    Some(p) => p,
                    None => rollback_prefix(model, &self.raw, self.options.rollback_tokens)?,
                }
            };
            updates.push(self.step(model, prefix, Close::No)?);
        }
        Ok(updates)
    }

    /// The prefix of a stream's last decode, as the reference's `finish_streaming_transcribe`:
    /// none within the unfixed chunks, else the raw output without its last `rollback_tokens`
    /// tokens but keeping at least one, without the U+FFFD retry.
    fn final_prefix(&self, model: &AsrModel) -> Result<String> {
        if self.chunk_id < self.options.unfixed_chunks {
            return Ok(String::new());
        }
        let tok = model.tokenizer();
        let ids = tok.encode(&self.raw)?;
        let end = ids
            .len()
            .saturating_sub(self.options.rollback_tokens)
            .max(1)
            .min(ids.len());
        tok.decode(&ids[..end], false)
    }

    /// Makes the current segment's text final and starts an empty segment after it.
    fn start_segment(&mut self) {
        self.committed = self.text.clone();
        self.segment += 1;
        self.segment_start += self.features.samples().len();
        self.features = StreamFeatures::new();
        self.encoder.reset();
        self.chunk_id = 0;
        self.raw.clear();
        self.segment_language.clear();
        self.segment_text.clear();
        self.kv = None;
        self.kv_windows.clear();
        self.next_prefix = None;
    }

    /// Ends the stream: decodes once more with the buffered tail (of any length) and returns
    /// the final state. With nothing buffered there is no decode (as the reference); the
    /// update then repeats the last state. A stream too short for the front end (under 201
    /// samples in all) is not decoded either (the reference would fail).
    pub fn finish(&mut self, model: &AsrModel) -> Result<StreamUpdate> {
        if self.finished {
            return Err(Error::InvalidArgument(
                "the stream is already finished".into(),
            ));
        }
        self.finished = true;
        let total = self.features.samples().len() + self.buffer.len();
        if self.buffer.is_empty() || total < WHISPER_MIN_SAMPLES {
            return Ok(self.update(StepStats::default(), Close::Stream));
        }
        let tail = std::mem::take(&mut self.buffer);
        self.features.extend(&tail);
        let prefix = self.final_prefix(model)?;
        self.step(model, prefix, Close::Stream)
    }

    /// Ends the stream after appending `samples` to what is buffered, with a single decode
    /// over all of it (no decode per completed chunk). When the buffered samples plus
    /// `samples` fit in one chunk this is exactly `push` + `finish`; with more it skips the
    /// intermediate decodes, which is what stopping a live stream that fell behind wants.
    pub fn finish_with(&mut self, model: &AsrModel, samples: &[f32]) -> Result<StreamUpdate> {
        if self.finished {
            return Err(Error::InvalidArgument(
                "the stream is already finished".into(),
            ));
        }
        if let Some(i) = samples.iter().position(|x| !x.is_finite()) {
            return Err(Error::Audio(format!("sample {i} is not a finite number")));
        }
        self.buffer.extend_from_slice(samples);
        self.finish(model)
    }

    /// Forgets the audio and the transcript (same options, same model).
    pub fn reset(&mut self) {
        self.buffer.clear();
        self.features = StreamFeatures::new();
        self.encoder.reset();
        self.segment = 0;
        self.segment_start = 0;
        self.committed.clear();
        self.decodes = 0;
        self.chunk_id = 0;
        self.raw.clear();
        self.segment_language.clear();
        self.segment_text.clear();
        self.language.clear();
        self.text.clear();
        self.kv = None;
        self.kv_windows.clear();
        self.next_prefix = None;
        self.finished = false;
    }

    /// One decode over the current segment with `prefix`.
    fn step(&mut self, model: &AsrModel, prefix: String, close: Close) -> Result<StreamUpdate> {
        let (generated, stats) = self.decode(model, &prefix)?;
        self.raw = prefix + &generated;
        let (language, text) = parse_asr_output(&self.raw, self.forced.as_deref());
        if !language.is_empty() {
            self.language = language.clone();
        }
        self.segment_language = language;
        self.segment_text = text;
        self.text = join_segments(&self.committed, &self.segment_text);
        self.chunk_id += 1;
        self.decodes += 1;
        self.next_prefix = None;
        if close == Close::No && self.chunk_id >= self.options.unfixed_chunks {
            self.next_prefix = Some(rollback_prefix(
                model,
                &self.raw,
                self.options.rollback_tokens,
            )?);
        }
        Ok(self.update(stats, close))
    }

    fn update(&self, stats: StepStats, close: Close) -> StreamUpdate {
        let fixed = if close != Close::No {
            self.text.clone()
        } else {
            match &self.next_prefix {
                Some(p) if !p.is_empty() => {
                    let (_, settled) = parse_asr_output(p, self.forced.as_deref());
                    let settled = common_prefix(&self.segment_text, &settled);
                    join_segments(&self.committed, settled)
                }
                _ => self.committed.clone(),
            }
        };
        let unfixed = self.text[fixed.len()..].to_string();
        StreamUpdate {
            language: self.language.clone(),
            text: self.text.clone(),
            fixed,
            unfixed,
            raw: self.raw.clone(),
            chunk: self.decodes.saturating_sub(1),
            audio_samples: self.stream_samples(),
            is_final: close == Close::Stream,
            segment: self.segment,
            segment_closed: close == Close::Segment,
            stats,
        }
    }

    /// Encodes the stream and decodes greedily after `prompt head + audio + suffix + prefix`.
    /// Returns the generated text (special tokens removed).
    fn decode(&mut self, model: &AsrModel, prefix: &str) -> Result<(String, StepStats)> {
        let thinker = model.thinker();
        let device = model.device();
        let dtype = thinker.dtype();
        let incremental = self.options.mode == StreamMode::Incremental;
        let mut stats = StepStats::default();
        let t0 = Instant::now();
        // Features and audio embeddings of the whole stream.
        self.features.update()?;
        let (audio, window, complete) = if incremental {
            let enc =
                self.encoder
                    .encode(thinker.audio_encoder(), &self.features, dtype, device)?;
            stats.encoder_tokens = enc.computed_tokens;
            stats.reencoded_windows = enc.reencoded_windows;
            (enc.embeds, enc.window_tokens, enc.complete)
        } else {
            let mel = self.features.mel_from_scratch(device)?;
            let embeds = thinker.encode_audio(&mel, EncoderAttention::Windowed)?;
            stats.encoder_tokens = embeds.dim(0)?;
            (embeds, 0, Vec::new())
        };
        let n_audio = audio.dim(0)?;
        stats.audio_tokens = n_audio;
        stats.encode_seconds = t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let tok = model.tokenizer();
        let special = model.special_tokens();
        let mut ids = self.head.clone();
        ids.extend(std::iter::repeat_n(special.audio_pad, n_audio));
        ids.extend(tok.encode(&format!("{}{prefix}", self.suffix))?);

        // The decoder cache: keep the head and the audio of the complete windows that the last
        // decode saw unchanged.
        let head = self.head.len();
        let mut kv = match self.kv.take() {
            Some(kv) if incremental && kv.len() >= head => kv,
            _ => thinker.new_cache(),
        };
        let reuse = if kv.is_empty() {
            0
        } else {
            let same = self
                .kv_windows
                .iter()
                .zip(&complete)
                .take_while(|(a, b)| a == b)
                .count();
            (head + same * window).min(kv.len())
        };
        kv.truncate(reuse);
        self.kv_windows.clear();
        let audio_done = reuse.saturating_sub(head);
        let rest = &ids[reuse..];
        let audio_rest = if audio_done < n_audio {
            Some(audio.narrow(0, audio_done, n_audio - audio_done)?)
        } else {
            None
        };
        stats.reused_positions = reuse;
        stats.prefill_positions = rest.len();
        let x = thinker.embed_prompt(&[rest.to_vec()], audio_rest.as_ref())?;
        let hidden = thinker.decode(
            &x,
            &Positions::contiguous(1, reuse, rest.len()),
            None,
            &mut kv,
        )?;
        let mut logits = thinker.logits(&hidden.i((.., rest.len() - 1, ..))?)?;
        let row: Vec<f32> = logits.flatten_all()?.to_vec1()?;
        stats.prefill_seconds = t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let mut row = Some(row);

        let budget = self.options.max_new_tokens.unwrap_or_else(|| {
            let sr = f64::from(ASR_SAMPLE_RATE);
            if prefix.is_empty() {
                default_token_budget(self.features.samples().len() as f64 / sr)
            } else {
                self.options.rollback_tokens + default_token_budget(self.options.chunk_seconds)
            }
        });
        let stop = special.stop_ids();
        let mut tokens: Vec<u32> = Vec::new();
        let mut stopped = false;
        loop {
            let row: Vec<f32> = match row.take() {
                Some(r) => r,
                None => logits.flatten_all()?.to_vec1()?,
            };
            let t = argmax(&row)?;
            if stop.contains(&t) {
                stopped = true;
                break;
            }
            tokens.push(t);
            if tokens.len() >= budget {
                break;
            }
            let x = thinker.embed_tokens(&[vec![t]])?;
            let pos = ids.len() + tokens.len() - 1;
            let h = thinker.decode(&x, &Positions::contiguous(1, pos, 1), None, &mut kv)?;
            logits = thinker.logits(&h.i((.., 0, ..))?)?;
        }
        stats.generated_tokens = tokens.len();
        stats.truncated = !stopped;
        stats.decode_seconds = t0.elapsed().as_secs_f64();
        if incremental {
            self.kv = Some(kv);
            self.kv_windows = complete;
        }
        Ok((tok.decode(&tokens, true)?, stats))
    }

    /// The audio embeddings of the stream so far as the stream's mode computes them (for
    /// tests: the incremental encoder must equal the whole-stream windowed encoder). Does not
    /// change the transcript.
    pub fn audio_embeddings(&mut self, model: &AsrModel) -> Result<Tensor> {
        self.features.update()?;
        let thinker = model.thinker();
        match self.options.mode {
            StreamMode::Incremental => Ok(self
                .encoder
                .encode(
                    thinker.audio_encoder(),
                    &self.features,
                    thinker.dtype(),
                    model.device(),
                )?
                .embeds),
            StreamMode::Exact => {
                let mel = self.features.mel_from_scratch(model.device())?;
                thinker.encode_audio(&mel, EncoderAttention::Windowed)
            }
        }
    }
}

/// What a decode ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    /// Nothing: more chunks follow in this segment.
    No,
    /// The segment (the stream goes on in a new one).
    Segment,
    /// The stream.
    Stream,
}

/// Where a segment that must end within `chunk` ends: the quietest sample of the chunk's
/// quietest 100 ms (the whole chunk when it is that short). Never at the chunk's start, so
/// the segment's last decode always has new audio, as the reference's `finish` with a
/// non-empty buffer.
fn segment_cut(chunk: &[f32]) -> usize {
    let win = (ASR_SAMPLE_RATE / 10) as usize;
    if chunk.len() <= win + 1 {
        return chunk.len();
    }
    1 + quietest_point(&chunk[1..], win)
}

/// `a` followed by `b`, with a space between them when both sides of the seam are letters or
/// digits of a script that separates words with spaces (none for Chinese, Japanese, Thai...).
pub fn join_segments(a: &str, b: &str) -> String {
    let (Some(x), Some(y)) = (a.chars().next_back(), b.chars().next()) else {
        return format!("{a}{b}");
    };
    let spaced = |c: char| !c.is_whitespace() && !unspaced_script(c);
    if spaced(x) && spaced(y) && !matches!(y, ',' | '.' | '!' | '?' | ';' | ':') {
        format!("{a} {b}")
    } else {
        format!("{a}{b}")
    }
}

/// Characters of scripts written without spaces between words (and their punctuation).
fn unspaced_script(c: char) -> bool {
    matches!(c as u32,
        0x0E00..=0x0EFF      // Thai, Lao
        | 0x1000..=0x109F    // Myanmar
        | 0x1780..=0x17FF    // Khmer
        | 0x2E80..=0x2FFF    // CJK radicals
        | 0x3000..=0x30FF    // CJK punctuation, Hiragana, Katakana
        | 0x3100..=0x31FF    // Bopomofo, Katakana extensions
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xF900..=0xFAFF    // CJK compatibility ideographs
        | 0xFF00..=0xFFEF    // full-width forms
        | 0x20000..=0x3FFFF) // CJK extensions B..
}

/// The reference's prefix for a chunk after the unfixed ones: the raw output re-tokenized,
/// without its last `k` tokens, rolled back one more token while the cut leaves a U+FFFD
/// (a multi-byte character cut in half); empty when nothing is left.
pub fn rollback_prefix(model: &AsrModel, raw: &str, k: usize) -> Result<String> {
    let tok = model.tokenizer();
    let ids = tok.encode(raw)?;
    let mut k = k;
    loop {
        let end = ids.len().saturating_sub(k);
        if end == 0 {
            return Ok(String::new());
        }
        let prefix = tok.decode(&ids[..end], false)?;
        if !prefix.contains('\u{FFFD}') {
            return Ok(prefix);
        }
        k += 1;
    }
}

/// The longest common prefix of two strings, on a character boundary.
fn common_prefix<'a>(a: &'a str, b: &str) -> &'a str {
    let mut end = 0;
    for ((i, ca), cb) in a.char_indices().zip(b.chars()) {
        if ca != cb {
            break;
        }
        end = i + ca.len_utf8();
    }
    &a[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        let o = StreamOptions::default();
        assert_eq!(o.chunk_samples(), 32000);
        assert_eq!(o.validate().unwrap(), None);
        let o = StreamOptions {
            chunk_seconds: 0.7731,
            language: Some("en".into()),
            ..StreamOptions::default()
        };
        assert_eq!(o.chunk_samples(), 12370);
        assert_eq!(o.validate().unwrap().as_deref(), Some("English"));
        let tiny = StreamOptions {
            chunk_seconds: 1e-9,
            ..StreamOptions::default()
        };
        assert_eq!(tiny.chunk_samples(), 1);
        for bad in [0.0, -1.0, f64::NAN, 5000.0] {
            let o = StreamOptions {
                chunk_seconds: bad,
                ..StreamOptions::default()
            };
            assert!(o.validate().is_err(), "{bad}");
        }
        assert!("exact".parse::<StreamMode>().unwrap() == StreamMode::Exact);
        assert!("Incremental".parse::<StreamMode>().unwrap() == StreamMode::Incremental);
        assert!("fast".parse::<StreamMode>().is_err());
    }

    #[test]
    fn segment_texts_join_with_a_space_only_between_spaced_scripts() {
        assert_eq!(join_segments("", "hello"), "hello");
        assert_eq!(join_segments("hello", ""), "hello");
        assert_eq!(
            join_segments("hello world", "how are you"),
            "hello world how are you"
        );
        assert_eq!(join_segments("Hallo.", "Wie geht's"), "Hallo. Wie geht's");
        assert_eq!(join_segments("one ", "two"), "one two");
        assert_eq!(join_segments("one", ", two"), "one, two");
        assert_eq!(join_segments("你好", "世界"), "你好世界");
        assert_eq!(join_segments("今日は。", "Hello"), "今日は。Hello");
        assert_eq!(join_segments("สวัสดี", "ครับ"), "สวัสดีครับ");
    }

    #[test]
    fn segments_end_at_the_quietest_point_of_the_chunk() {
        // A loud chunk with a 150 ms pause: the cut falls in the pause.
        let mut chunk: Vec<f32> = (0..32000).map(|i| (i as f32 * 0.3).sin() * 0.5).collect();
        for x in &mut chunk[20000..22400] {
            *x *= 0.001;
        }
        let cut = segment_cut(&chunk);
        assert!((20000..22400).contains(&cut), "{cut}");
        // Silence everywhere: never at the very start; a short chunk ends whole.
        assert_eq!(segment_cut(&[0.0; 32000]), 1);
        assert_eq!(segment_cut(&[0.5; 1000]), 1000);
        let o = StreamOptions {
            max_segment_seconds: Some(1.0),
            ..StreamOptions::default()
        };
        assert!(o.validate().is_err(), "a segment shorter than a chunk");
        let o = StreamOptions {
            max_segment_seconds: None,
            ..StreamOptions::default()
        };
        assert_eq!(o.segment_samples(), None);
        assert_eq!(StreamOptions::default().segment_samples(), Some(480_000));
    }

    #[test]
    fn common_prefix_on_char_boundaries() {
        assert_eq!(common_prefix("héllo", "hélp"), "hél");
        assert_eq!(common_prefix("é", "è"), "");
        assert_eq!(common_prefix("abc", ""), "");
        assert_eq!(common_prefix("ab", "abc"), "ab");
    }
}
