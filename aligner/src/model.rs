//! The Qwen3-ForcedAligner model: one forward pass of the ASR architecture with a timestamp
//! classifier head.
//!
//! The prompt is the audio followed by the words of the transcript, each followed by two
//! `<timestamp>` tokens: `<|audio_start|>{audio}<|audio_end|>w1<ts><ts>w2<ts><ts>…wN<ts><ts>`.
//! The head predicts a class at every position; at the `<timestamp>` positions the class times
//! `timestamp_segment_time` (80 ms) is the start (first) and end (second) of the word before.
//! Predictions are made monotonic with the reference's `fix_timestamp`.

use std::ops::Range;

use candle_core::{DType, Device, IndexOp, Tensor};

use qwen3_speech_engine::audio::ASR_SAMPLE_RATE;
use qwen3_speech_engine::audio::mel::{WHISPER_MIN_SAMPLES, whisper_log_mel};
use qwen3_speech_engine::hub::ModelDir;
use qwen3_speech_engine::tokenizer::Tokenizer;
use qwen3_speech_engine::transformer::Positions;
use qwen3_speech_engine::weights::Weights;
use qwen3_speech_engine::{Error, Result};
use qwen3_speech_models::asr::lengths::audio_token_count;
use qwen3_speech_models::asr::text::{
    normalize_language_name, resolve_language as resolve_asr_language,
};
use qwen3_speech_models::asr::{AsrConfig, EncoderAttention, Thinker};

use crate::text::{Word, segment};
use crate::timestamps::{fix_timestamp, ms_to_seconds};

/// Languages the released aligner supports (its config's `support_languages`).
pub const ALIGNER_LANGUAGES: [&str; 11] = [
    "Chinese",
    "Cantonese",
    "English",
    "German",
    "Spanish",
    "French",
    "Italian",
    "Portuguese",
    "Russian",
    "Korean",
    "Japanese",
];

/// One aligned word (or character, for Chinese and Japanese ideographs).
#[derive(Debug, Clone, PartialEq)]
pub struct WordTiming {
    /// The word as aligned (punctuation removed, as the reference segments it).
    pub text: String,
    /// Start and end in seconds, rounded to milliseconds.
    pub start: f64,
    pub end: f64,
    /// Byte range of the word's source characters in the text that was aligned.
    pub span: Range<usize>,
}

/// Everything one alignment computed, for inspection and golden tests.
#[derive(Debug, Clone)]
pub struct AlignmentDetails {
    pub prompt: Vec<u32>,
    /// Prompt positions of the `<timestamp>` tokens (two per word).
    pub timestamp_positions: Vec<usize>,
    /// Head logits at those positions, `[2N, classes]` (f32).
    pub timestamp_logits: Tensor,
    /// Argmax class per position.
    pub classes: Vec<u32>,
    /// Milliseconds before and after the monotonic repair.
    pub ms_raw: Vec<f32>,
    pub ms_fixed: Vec<i64>,
    pub words: Vec<WordTiming>,
}

/// A loaded Qwen3-ForcedAligner.
pub struct ForcedAligner {
    thinker: Thinker,
    tokenizer: Tokenizer,
    config: AsrConfig,
    timestamp_id: u32,
    segment_ms: f32,
    classes: usize,
    device: Device,
}

impl std::fmt::Debug for ForcedAligner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForcedAligner")
            .field("classes", &self.classes)
            .field("segment_ms", &self.segment_ms)
            .finish()
    }
}

impl ForcedAligner {
    /// Loads a Qwen3-ForcedAligner checkpoint folder.
    pub fn load(dir: &ModelDir, device: &Device, dtype: DType) -> Result<Self> {
        let config: AsrConfig = qwen3_speech_engine::config::read_json(&dir.file("config.json")?)?;
        let (Some(timestamp_id), Some(segment_ms), Some(classes)) = (
            config.timestamp_token_id,
            config.timestamp_segment_time,
            config.thinker_config.classify_num,
        ) else {
            return Err(Error::Model(format!(
                "{} is not a forced aligner checkpoint (config.json lacks timestamp_token_id, \
                 timestamp_segment_time or thinker_config.classify_num)",
                dir.path().display()
            )));
        };
        let mut thinker_config = config.thinker_config.clone();
        if !thinker_config.is_forced_aligner() {
            // transformers' save_pretrained rewrites the thinker's model_type; the classifier
            // fields above are what identifies an aligner.
            thinker_config.model_type = Some("qwen3_forced_aligner".into());
        }
        let tokenizer = Tokenizer::from_dir(dir.path())?;
        if tokenizer.token_to_id("<timestamp>") != Some(timestamp_id) {
            return Err(Error::Model(format!(
                "config.json's timestamp_token_id {timestamp_id} is not the tokenizer's <timestamp>"
            )));
        }
        let weights = Weights::from_safetensors(&dir.weight_files()?, device, dtype)?;
        let thinker = Thinker::load(&weights, &thinker_config)?;
        Ok(ForcedAligner {
            thinker,
            tokenizer,
            config,
            timestamp_id,
            segment_ms: segment_ms as f32,
            classes,
            device: device.clone(),
        })
    }

    /// Languages this checkpoint aligns (config `support_languages`, else the release's list).
    pub fn supported_languages(&self) -> Vec<String> {
        if self.config.support_languages.is_empty() {
            ALIGNER_LANGUAGES.iter().map(|s| s.to_string()).collect()
        } else {
            self.config.support_languages.clone()
        }
    }

    /// Longest audio the head can place timestamps in: classes × segment time (400 s for the
    /// release, 5000 classes of 80 ms).
    pub fn max_seconds(&self) -> f64 {
        self.classes as f64 * self.segment_ms as f64 / 1000.0
    }

    /// The canonical name of a supported language ("english", "en" → "English").
    pub fn resolve_language(&self, language: &str) -> Result<String> {
        // Codes and spellings as the ASR side accepts them; then the aligner's own list.
        let name = match resolve_asr_language(language) {
            Ok(name) => name,
            Err(_) => normalize_language_name(language)?,
        };
        let supported = self.supported_languages();
        if supported.iter().any(|s| s == &name) {
            Ok(name)
        } else {
            Err(Error::InvalidArgument(format!(
                "the forced aligner does not support '{}'; supported: {}",
                language.trim(),
                supported.join(", ")
            )))
        }
    }

    /// Aligns `text` to 16 kHz mono `samples`: checks the language, the text and the length,
    /// segments the text as the reference does and returns one timing per word.
    pub fn align(
        &self,
        samples: &[f32],
        text: &str,
        language: &str,
        attention: EncoderAttention,
    ) -> Result<Vec<WordTiming>> {
        let language = self.resolve_language(language)?;
        let words = segment(text, &language.to_lowercase())?;
        if words.is_empty() {
            return Err(Error::InvalidArgument(
                "the text has no words to align (empty, or only punctuation)".into(),
            ));
        }
        let seconds = samples.len() as f64 / ASR_SAMPLE_RATE as f64;
        if seconds > self.max_seconds() {
            return Err(Error::InvalidArgument(format!(
                "the audio lasts {seconds:.1} s but the aligner can place timestamps only within \
                 {:.1} s; split it (transcribe --timestamps splits long audio automatically)",
                self.max_seconds()
            )));
        }
        Ok(self.align_words(samples, &words, attention)?.words)
    }

    /// The model part for already segmented words, without the length check (the reference
    /// has none; predictions past the last class are clamped by the head's range).
    pub fn align_words(
        &self,
        samples: &[f32],
        words: &[Word],
        attention: EncoderAttention,
    ) -> Result<AlignmentDetails> {
        if samples.len() < WHISPER_MIN_SAMPLES {
            return Err(Error::Audio(format!(
                "audio is too short: {} samples; at least {WHISPER_MIN_SAMPLES} are needed",
                samples.len()
            )));
        }
        let mel = whisper_log_mel(samples)?.into_tensor(&self.device)?;
        let audio = self.thinker.encode_audio(&mel, attention)?;
        let n_audio = audio.dim(0)?;
        debug_assert_eq!(n_audio, audio_token_count(samples.len() / 160));
        let prompt = self.prompt(words, n_audio)?;
        let timestamp_positions: Vec<usize> = prompt
            .iter()
            .enumerate()
            .filter(|(_, t)| **t == self.timestamp_id)
            .map(|(i, _)| i)
            .collect();
        let embeds = self
            .thinker
            .embed_prompt(std::slice::from_ref(&prompt), Some(&audio))?;
        let mut cache = self.thinker.new_cache();
        let hidden = self.thinker.decode(
            &embeds,
            &Positions::contiguous(1, 0, prompt.len()),
            None,
            &mut cache,
        )?;
        let idx: Vec<u32> = timestamp_positions.iter().map(|&p| p as u32).collect();
        let rows = hidden
            .i(0)?
            .index_select(&Tensor::new(idx.as_slice(), &self.device)?, 0)?;
        let timestamp_logits = self.thinker.logits(&rows)?;
        let classes: Vec<u32> = timestamp_logits.argmax(1)?.to_vec1()?;
        let ms_raw: Vec<f32> = classes
            .iter()
            .map(|&c| c as f32 * self.segment_ms)
            .collect();
        let ms_fixed = fix_timestamp(&ms_raw);
        let words = words
            .iter()
            .enumerate()
            .map(|(i, w)| WordTiming {
                text: w.text.clone(),
                start: ms_to_seconds(ms_fixed[2 * i]),
                end: ms_to_seconds(ms_fixed[2 * i + 1]),
                span: w.span.clone(),
            })
            .collect();
        Ok(AlignmentDetails {
            prompt,
            timestamp_positions,
            timestamp_logits,
            classes,
            ms_raw,
            ms_fixed,
            words,
        })
    }

    /// `<|audio_start|>{pads}<|audio_end|>w1<ts><ts>…wN<ts><ts>` as token ids. Special tokens
    /// delimit every piece, so tokenizing piece by piece equals tokenizing the whole string.
    pub fn prompt(&self, words: &[Word], audio_tokens: usize) -> Result<Vec<u32>> {
        let audio_pad = self.thinker.audio_token_id();
        let mut ids = self.tokenizer.encode("<|audio_start|>")?;
        ids.extend(std::iter::repeat_n(audio_pad, audio_tokens));
        ids.extend(self.tokenizer.encode("<|audio_end|>")?);
        for w in words {
            ids.extend(self.tokenizer.encode(&w.text)?);
            ids.extend([self.timestamp_id, self.timestamp_id]);
        }
        if words.is_empty() {
            ids.extend([self.timestamp_id, self.timestamp_id]);
        }
        Ok(ids)
    }

    pub fn thinker(&self) -> &Thinker {
        &self.thinker
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }
}
