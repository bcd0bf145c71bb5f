//! Qwen3-ASR end to end on 16 kHz samples: long-audio splitting, features, encoder, prompt,
//! decoding, parsing and merging.

use candle_core::{DType, Device, Tensor};

use qwen3_speech_engine::audio::ASR_SAMPLE_RATE;
use qwen3_speech_engine::audio::mel::{WHISPER_MIN_SAMPLES, whisper_log_mel};
use qwen3_speech_engine::hub::ModelDir;
use qwen3_speech_engine::sampling::SamplingConfig;
use qwen3_speech_engine::tokenizer::Tokenizer;
use qwen3_speech_engine::weights::Weights;
use qwen3_speech_engine::{Error, Result};

use super::config::AsrConfig;
use super::encoder::EncoderAttention;
use super::generate::{DecodeOptions, DecodeRequest, FinishReason, generate};
use super::lengths::audio_token_count;
use super::prompt::{SpecialTokens, build_prompt};
use super::split::split_audio_into_chunks;
use super::text::{merge_languages, parse_asr_output, resolve_language};
use super::thinker::Thinker;

/// Longest piece the reference transcribes in one pass (20 minutes).
pub const MAX_CHUNK_SECONDS: f64 = 1200.0;

/// Options of a transcription.
#[derive(Debug, Clone)]
pub struct AsrOptions {
    /// Force the output language (a name like "English" or a code like "en"); `None` detects it.
    pub language: Option<String>,
    /// Free text put in the system turn: names, terms, domain hints.
    pub context: String,
    /// Token budget per piece; `None` scales it with the piece's duration.
    pub max_new_tokens: Option<usize>,
    pub attention: EncoderAttention,
    pub sampling: SamplingConfig,
    /// Long audio is cut into pieces of at most this many seconds.
    pub chunk_seconds: f64,
}

impl Default for AsrOptions {
    fn default() -> Self {
        AsrOptions {
            language: None,
            context: String::new(),
            max_new_tokens: None,
            attention: EncoderAttention::default(),
            sampling: SamplingConfig::greedy(),
            chunk_seconds: MAX_CHUNK_SECONDS,
        }
    }
}

/// Token budget for `seconds` of audio when the user sets none: generous for the fastest
/// speech (well above 10 tokens/s) so nothing is cut silently; a header of a few tokens extra.
pub fn default_token_budget(seconds: f64) -> usize {
    64 + (seconds.max(0.0) * 16.0).ceil() as usize
}

/// The transcription of one piece of a clip.
#[derive(Debug, Clone, PartialEq)]
pub struct PieceTranscription {
    pub offset_sec: f64,
    pub duration_sec: f64,
    /// Where the piece lies in the clip, in samples (before any padding of short pieces).
    pub samples: std::ops::Range<usize>,
    pub language: String,
    pub text: String,
    /// The decoded output before parsing.
    pub raw: String,
    pub tokens: Vec<u32>,
    /// True when the token budget ran out before the model stopped.
    pub truncated: bool,
}

/// The transcription of one clip.
#[derive(Debug, Clone, PartialEq)]
pub struct AsrTranscription {
    /// Detected (or forced) language; pieces in different languages are joined with ",".
    pub language: String,
    pub text: String,
    /// The model's decoded output before parsing (pieces concatenated).
    pub raw: String,
    pub duration_sec: f64,
    pub pieces: Vec<PieceTranscription>,
}

impl AsrTranscription {
    /// True when some piece hit its token budget.
    pub fn truncated(&self) -> bool {
        self.pieces.iter().any(|p| p.truncated)
    }
}

/// Progress of a transcription, reported after every piece.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub pieces_done: usize,
    pub pieces_total: usize,
    pub audio_seconds_done: f64,
    pub audio_seconds_total: f64,
}

/// A loaded Qwen3-ASR model.
pub struct AsrModel {
    thinker: Thinker,
    tokenizer: Tokenizer,
    special: SpecialTokens,
    config: AsrConfig,
    device: Device,
}

impl std::fmt::Debug for AsrModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsrModel")
            .field("config", &self.config)
            .finish()
    }
}

impl AsrModel {
    /// Loads a Qwen3-ASR checkpoint folder onto `device`, computing in `dtype`.
    pub fn load(dir: &ModelDir, device: &Device, dtype: DType) -> Result<Self> {
        let config: AsrConfig = qwen3_speech_engine::config::read_json(&dir.file("config.json")?)?;
        if config.thinker_config.is_forced_aligner() {
            return Err(Error::Model(format!(
                "{} is a forced aligner checkpoint, not a speech recognition model",
                dir.path().display()
            )));
        }
        let tokenizer = Tokenizer::from_dir(dir.path())?;
        let weights = Weights::from_safetensors(&dir.weight_files()?, device, dtype)?;
        let thinker = Thinker::load(&weights, &config.thinker_config)?;
        let special =
            SpecialTokens::from_tokenizer(&tokenizer, config.thinker_config.audio_token_id)?;
        if tokenizer.token_to_id("<|audio_pad|>") != Some(special.audio_pad) {
            return Err(Error::Model(
                "config.json's audio_token_id is not the tokenizer's <|audio_pad|>".into(),
            ));
        }
        Ok(AsrModel {
            thinker,
            tokenizer,
            special,
            config,
            device: device.clone(),
        })
    }

    pub fn config(&self) -> &AsrConfig {
        &self.config
    }

    pub fn thinker(&self) -> &Thinker {
        &self.thinker
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn special_tokens(&self) -> &SpecialTokens {
        &self.special
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Log-mel features `(128, T)` of 16 kHz samples, T = len / 160.
    pub fn features(&self, samples: &[f32]) -> Result<Tensor> {
        if samples.is_empty() {
            return Err(Error::Audio("the audio is empty".into()));
        }
        if samples.len() < WHISPER_MIN_SAMPLES {
            return Err(Error::Audio(format!(
                "audio is too short: {} samples ({:.1} ms at 16 kHz); at least {WHISPER_MIN_SAMPLES} are needed",
                samples.len(),
                samples.len() as f64 / 16.0
            )));
        }
        whisper_log_mel(samples)?.into_tensor(&self.device)
    }

    /// Audio embeddings `(N, hidden)` of 16 kHz samples.
    pub fn encode(&self, samples: &[f32], attention: EncoderAttention) -> Result<Tensor> {
        let mel = self.features(samples)?;
        self.thinker.encode_audio(&mel, attention)
    }

    /// Prompt ids for a clip with `audio_tokens` encoder outputs.
    pub fn prompt(
        &self,
        context: &str,
        language: Option<&str>,
        audio_tokens: usize,
    ) -> Result<Vec<u32>> {
        build_prompt(
            &self.tokenizer,
            &self.special,
            context,
            language,
            audio_tokens,
        )
    }

    /// Checks options and resolves the forced language to its canonical name.
    pub fn check_options(&self, options: &AsrOptions) -> Result<Option<String>> {
        options.sampling.validate()?;
        if !(options.chunk_seconds.is_finite() && options.chunk_seconds >= 1.0) {
            return Err(Error::InvalidArgument(format!(
                "chunk length must be at least 1 second, got {}",
                options.chunk_seconds
            )));
        }
        if options.chunk_seconds > MAX_CHUNK_SECONDS {
            return Err(Error::InvalidArgument(format!(
                "chunk length {} s exceeds the model's {} s",
                options.chunk_seconds, MAX_CHUNK_SECONDS
            )));
        }
        if options.max_new_tokens == Some(0) {
            return Err(Error::InvalidArgument(
                "max_new_tokens must be positive".into(),
            ));
        }
        if options.context.contains("<|audio_pad|>") || options.context.contains("<|im_start|>") {
            return Err(Error::InvalidArgument(
                "the context must not contain special tokens such as <|audio_pad|>".into(),
            ));
        }
        options
            .language
            .as_deref()
            .filter(|l| !l.trim().is_empty())
            .map(resolve_language)
            .transpose()
    }

    /// Transcribes clips of 16 kHz mono samples (already normalised, see
    /// `engine::audio::load_audio`). Pieces of all clips are decoded together in batches of
    /// `batch_size`; the result of every clip is the same as transcribing it alone.
    pub fn transcribe(
        &self,
        clips: &[&[f32]],
        options: &AsrOptions,
        batch_size: usize,
        mut on_progress: impl FnMut(Progress),
    ) -> Result<Vec<AsrTranscription>> {
        let language = self.check_options(options)?;
        let sr = ASR_SAMPLE_RATE as f64;
        for (i, c) in clips.iter().enumerate() {
            if c.is_empty() {
                return Err(Error::Audio(format!("clip {i}: the audio is empty")));
            }
            if c.len() < WHISPER_MIN_SAMPLES {
                return Err(Error::Audio(format!(
                    "clip {i}: audio is too short ({} samples); at least {WHISPER_MIN_SAMPLES} samples (12.6 ms) are needed",
                    c.len()
                )));
            }
        }
        // (clip, piece, sample range of the piece in the clip)
        let mut pieces = Vec::new();
        for (ci, clip) in clips.iter().enumerate() {
            let mut start = 0;
            for p in
                split_audio_into_chunks(clip, ASR_SAMPLE_RATE, options.chunk_seconds, 5.0, 100.0)
            {
                let range = start..start + p.original_len;
                start += p.original_len;
                pieces.push((ci, p, range));
            }
        }
        let total_sec: f64 = clips.iter().map(|c| c.len() as f64 / sr).sum();
        let mut done_sec = 0.0;
        let mut results: Vec<Vec<PieceTranscription>> = vec![Vec::new(); clips.len()];
        let batch_size = batch_size.max(1);
        let options_decode = DecodeOptions {
            sampling: options.sampling.clone(),
            stop_ids: self.special.stop_ids(),
            pad_id: self.special.endoftext,
        };
        for (bi, group) in pieces.chunks(batch_size).enumerate() {
            let mut requests = Vec::with_capacity(group.len());
            for (_, piece, _) in group {
                let audio = self.encode(&piece.samples, options.attention)?;
                let n = audio.dim(0)?;
                debug_assert_eq!(n, audio_token_count(piece.samples.len() / 160));
                let prompt = self.prompt(&options.context, language.as_deref(), n)?;
                let seconds = piece.samples.len() as f64 / sr;
                requests.push(DecodeRequest {
                    prompt,
                    audio: Some(audio),
                    max_new_tokens: options
                        .max_new_tokens
                        .unwrap_or_else(|| default_token_budget(seconds)),
                });
            }
            let generations = generate(&self.thinker, &requests, &options_decode, |_, _| {})?;
            for ((ci, piece, range), g) in group.iter().zip(generations) {
                let raw = self.tokenizer.decode(&g.tokens, true)?;
                let (lang, text) = parse_asr_output(&raw, language.as_deref());
                results[*ci].push(PieceTranscription {
                    offset_sec: piece.offset_sec,
                    duration_sec: piece.original_len as f64 / sr,
                    samples: range.clone(),
                    language: lang,
                    text,
                    raw,
                    tokens: g.tokens,
                    truncated: g.finish == FinishReason::Length,
                });
                done_sec += piece.original_len as f64 / sr;
            }
            on_progress(Progress {
                pieces_done: ((bi + 1) * batch_size).min(pieces.len()),
                pieces_total: pieces.len(),
                audio_seconds_done: done_sec,
                audio_seconds_total: total_sec,
            });
        }
        Ok(results
            .into_iter()
            .zip(clips)
            .map(|(pieces, clip)| {
                let langs: Vec<&str> = pieces.iter().map(|p| p.language.as_str()).collect();
                AsrTranscription {
                    language: merge_languages(&langs),
                    text: pieces.iter().map(|p| p.text.as_str()).collect(),
                    raw: pieces.iter().map(|p| p.raw.as_str()).collect(),
                    duration_sec: clip.len() as f64 / sr,
                    pieces,
                }
            })
            .collect())
    }
}
