//! Speech recognition: [`Transcriber`] and live [`StreamingSession`]s.

use std::sync::{Arc, Mutex, MutexGuard};

use qwen3_speech as q;

use crate::error::Result;
use crate::{CancelToken, LoadProgressListener, load, local_dir, offline_fetch, to_usize};

/// How the audio encoder's attention sees the clip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, uniffi::Enum)]
pub enum EncoderAttention {
    /// Inside windows (how the released models are meant to run; the default).
    #[default]
    Windowed,
    /// Over the whole clip (what the reference's transformers backend computes).
    Full,
}

impl From<EncoderAttention> for q::EncoderAttention {
    fn from(a: EncoderAttention) -> Self {
        match a {
            EncoderAttention::Windowed => q::EncoderAttention::Windowed,
            EncoderAttention::Full => q::EncoderAttention::Full,
        }
    }
}

/// How to load a [`Transcriber`]. Every field has a default.
#[derive(Debug, Clone, uniffi::Record)]
pub struct TranscriberConfig {
    /// Force a language ("English", "en", ...); `null` detects it.
    #[uniffi(default = None)]
    pub language: Option<String>,
    /// Context for the model: names, terms, the topic.
    #[uniffi(default = "")]
    pub context: String,
    /// Token budget per piece of audio; `null` scales it with the duration.
    #[uniffi(default = None)]
    pub max_new_tokens: Option<u32>,
    /// A forced aligner's folder: loads it to time every word.
    #[uniffi(default = None)]
    pub aligner_dir: Option<String>,
    #[uniffi(default = None)]
    pub attention: Option<EncoderAttention>,
    /// Long audio is split into pieces of at most this many seconds; `null`: the default.
    #[uniffi(default = None)]
    pub chunk_seconds: Option<f64>,
    /// Pieces decoded together; `null`: the default.
    #[uniffi(default = None)]
    pub batch_size: Option<u32>,
}

impl TranscriberConfig {
    fn to_facade(&self) -> Result<q::TranscriberConfig> {
        let defaults = q::TranscriberConfig::default();
        let aligner = match self.aligner_dir.as_deref() {
            // Checked here so that a missing folder is never taken for a hub id.
            Some(dir) => Some(local_dir(dir, "aligner")?.path().display().to_string()),
            None => None,
        };
        Ok(q::TranscriberConfig {
            language: self.language.clone().filter(|l| !l.trim().is_empty()),
            context: self.context.clone(),
            max_new_tokens: to_usize(self.max_new_tokens),
            attention: self.attention.map(Into::into).unwrap_or(defaults.attention),
            device: q::DeviceSpec::Cpu,
            dtype: Some(q::ComputeDType::F32),
            chunk_seconds: self.chunk_seconds.unwrap_or(defaults.chunk_seconds),
            batch_size: self
                .batch_size
                .map(|b| b as usize)
                .unwrap_or(defaults.batch_size),
            fetch: offline_fetch(),
            aligner,
            ..defaults
        })
    }
}

/// Per-call options of [`Transcriber`]; every `null` keeps the loaded configuration.
#[derive(Debug, Clone, Default, uniffi::Record)]
pub struct TranscribeOptions {
    /// Force a language for this call; `""` or `"auto"` detects it.
    #[uniffi(default = None)]
    pub language: Option<String>,
    #[uniffi(default = None)]
    pub context: Option<String>,
    #[uniffi(default = None)]
    pub max_new_tokens: Option<u32>,
    /// Time the words of this call. `null`: when an aligner is loaded; `true` without one is an
    /// error.
    #[uniffi(default = None)]
    pub word_timestamps: Option<bool>,
}

impl From<&TranscribeOptions> for q::TranscribeOptions {
    fn from(o: &TranscribeOptions) -> Self {
        q::TranscribeOptions {
            language: o.language.clone(),
            context: o.context.clone(),
            max_new_tokens: to_usize(o.max_new_tokens),
            sampling: None,
            word_timestamps: o.word_timestamps,
        }
    }
}

/// A piece of the transcript with its place in the audio (seconds).
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Segment {
    pub start: f64,
    pub end: f64,
    pub text: String,
    pub language: String,
}

/// A timed word.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct WordTiming {
    /// The word as aligned (punctuation removed).
    pub text: String,
    /// Start and end, seconds.
    pub start: f64,
    pub end: f64,
    /// Where the word's characters are in the transcript's `text`, in UTF-16 code units (the
    /// index of Kotlin/Java strings and of `NSString`/`NSRange`): `text.substring(textStart,
    /// textEnd)`.
    pub text_start: u32,
    pub text_end: u32,
}

/// The result of a transcription.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Transcription {
    /// Detected or forced language (empty when no speech was found).
    pub language: String,
    pub text: String,
    /// The model's output before parsing.
    pub raw: String,
    pub duration_seconds: f64,
    /// True when the token budget ran out before the model finished.
    pub truncated: bool,
    pub segments: Vec<Segment>,
    /// Word times, when the call timed words.
    pub words: Option<Vec<WordTiming>>,
    pub warnings: Vec<String>,
}

/// UTF-16 length of `text[..byte]` (clamped to a character boundary).
fn utf16_offset(text: &str, byte: usize) -> u32 {
    let mut b = byte.min(text.len());
    while !text.is_char_boundary(b) {
        b -= 1;
    }
    text[..b].encode_utf16().count() as u32
}

impl From<q::Transcription> for Transcription {
    fn from(t: q::Transcription) -> Self {
        let words = t.words.map(|ws| {
            ws.into_iter()
                .map(|w| WordTiming {
                    text_start: utf16_offset(&t.text, w.span.start),
                    text_end: utf16_offset(&t.text, w.span.end),
                    text: w.text,
                    start: w.start,
                    end: w.end,
                })
                .collect()
        });
        Transcription {
            language: t.language,
            text: t.text,
            raw: t.raw,
            duration_seconds: t.duration,
            truncated: t.truncated,
            segments: t
                .segments
                .into_iter()
                .map(|s| Segment {
                    start: s.start,
                    end: s.end,
                    text: s.text,
                    language: s.language,
                })
                .collect(),
            words,
            warnings: t.warnings,
        }
    }
}

/// A loaded Qwen3-ASR model (and optionally a forced aligner). Calls may run concurrently
/// from several threads.
#[derive(Debug, uniffi::Object)]
pub struct Transcriber {
    inner: q::Transcriber,
}

#[uniffi::export]
impl Transcriber {
    /// Loads the model in folder `model_dir` (config.json, tokenizer files, safetensors
    /// weights, as released). `listener` receives the load progress; `cancel` stops the load.
    #[uniffi::constructor(default(listener = None, cancel = None))]
    pub fn new(
        model_dir: String,
        config: TranscriberConfig,
        listener: Option<Arc<dyn LoadProgressListener>>,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<Arc<Self>> {
        let dir = local_dir(&model_dir, "model")?;
        let config = config.to_facade()?;
        let inner = load(listener, cancel.as_ref(), || {
            q::Transcriber::from_dir(dir, config)
        })?;
        Ok(Arc::new(Transcriber { inner }))
    }

    /// Transcribes an audio file (WAV, FLAC, MP3, OGG Vorbis, AAC/M4A, ...).
    #[uniffi::method(default(cancel = None))]
    pub fn transcribe_file(
        &self,
        path: String,
        options: TranscribeOptions,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<Transcription> {
        let options = (&options).into();
        crate::with_cancel(cancel.as_ref(), || {
            self.inner
                .transcribe_with(q::AudioInput::Path(path.as_ref()), &options)
        })
        .map(Into::into)
    }

    /// Transcribes mono float PCM (`[-1, 1]`) at any sample rate.
    #[uniffi::method(default(cancel = None))]
    pub fn transcribe_pcm_f32(
        &self,
        samples: Vec<f32>,
        sample_rate: u32,
        options: TranscribeOptions,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<Transcription> {
        let options = (&options).into();
        crate::with_cancel(cancel.as_ref(), || {
            self.inner.transcribe_with(
                q::AudioInput::Samples {
                    samples: &samples,
                    sample_rate,
                },
                &options,
            )
        })
        .map(Into::into)
    }

    /// Transcribes mono 16-bit PCM at any sample rate (what `AudioRecord` gives).
    #[uniffi::method(default(cancel = None))]
    pub fn transcribe_pcm_i16(
        &self,
        samples: Vec<i16>,
        sample_rate: u32,
        options: TranscribeOptions,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<Transcription> {
        self.transcribe_pcm_f32(i16_to_f32(&samples), sample_rate, options, cancel)
    }

    /// Starts a live session sharing this transcriber's model.
    pub fn start_stream(&self, config: StreamingConfig) -> Result<Arc<StreamingSession>> {
        let st = self.inner.stream(config.to_facade())?;
        Ok(Arc::new(StreamingSession::wrap(st)))
    }

    /// True when a forced aligner is loaded (word timestamps are available).
    pub fn has_aligner(&self) -> bool {
        self.inner.aligner().is_some()
    }

    pub fn model_dir(&self) -> String {
        self.inner.model_dir().path().display().to_string()
    }
}

fn i16_to_f32(samples: &[i16]) -> Vec<f32> {
    samples.iter().map(|&s| f32::from(s) / 32768.0).collect()
}

/// Options of a live session. Every field has a default (the reference's).
#[derive(Debug, Clone, uniffi::Record)]
pub struct StreamingConfig {
    /// Audio per decode, seconds.
    #[uniffi(default = 2.0)]
    pub chunk_seconds: f64,
    /// The first this many chunks are decoded without a fixed prefix.
    #[uniffi(default = 2)]
    pub unfixed_chunks: u32,
    /// Tokens of the previous output rolled back at each decode.
    #[uniffi(default = 5)]
    pub rollback_tokens: u32,
    /// Force the language; `null` detects it.
    #[uniffi(default = None)]
    pub language: Option<String>,
    #[uniffi(default = "")]
    pub context: String,
    /// Token budget per decode; `null`: scaled with the audio.
    #[uniffi(default = None)]
    pub max_new_tokens: Option<u32>,
    /// Longest segment, seconds: a longer stream is cut at a quiet point into segments with
    /// their own prompt, which keeps the cost per chunk flat; 0: never cut.
    #[uniffi(default = 30.0)]
    pub max_segment_seconds: f64,
}

impl StreamingConfig {
    fn to_facade(&self) -> q::StreamOptions {
        q::StreamOptions {
            chunk_seconds: self.chunk_seconds,
            unfixed_chunks: self.unfixed_chunks as usize,
            rollback_tokens: self.rollback_tokens as usize,
            language: self.language.clone().filter(|l| !l.trim().is_empty()),
            context: self.context.clone(),
            max_new_tokens: to_usize(self.max_new_tokens),
            max_segment_seconds: (self.max_segment_seconds != 0.0)
                .then_some(self.max_segment_seconds),
            ..q::StreamOptions::default()
        }
    }
}

/// The transcript of a live session after a decode.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct StreamEvent {
    /// The whole transcript so far (`fixed + unfixed`).
    pub text: String,
    /// The settled start of the transcript.
    pub fixed: String,
    /// The tail that later decodes may still change.
    pub unfixed: String,
    /// Detected or forced language; empty while unknown.
    pub language: String,
    /// True for the event of [`StreamingSession::finish`].
    pub is_final: bool,
    /// Index of the decode (one per chunk of audio).
    pub chunk: u32,
    /// Seconds of audio the decode covered.
    pub audio_seconds: f64,
    /// Index of the segment (see `StreamingConfig.max_segment_seconds`).
    pub segment: u32,
    /// True for the decode that ended a segment: all of `text` is then settled.
    pub segment_closed: bool,
}

impl From<q::StreamEvent> for StreamEvent {
    fn from(e: q::StreamEvent) -> Self {
        StreamEvent {
            text: e.text,
            fixed: e.fixed,
            unfixed: e.unfixed,
            language: e.language,
            is_final: e.is_final,
            chunk: e.chunk as u32,
            audio_seconds: e.audio_seconds,
            segment: e.segment as u32,
            segment_closed: e.segment_closed,
        }
    }
}

/// A live transcription: push PCM buffers from the recorder as they come; every completed
/// chunk of audio is decoded and reported. Calls from several threads are serialised.
#[derive(Debug, uniffi::Object)]
pub struct StreamingSession {
    inner: Mutex<q::StreamingTranscriber>,
}

impl StreamingSession {
    fn wrap(st: q::StreamingTranscriber) -> Self {
        StreamingSession {
            inner: Mutex::new(st),
        }
    }

    fn lock(&self) -> MutexGuard<'_, q::StreamingTranscriber> {
        // A panic while holding the lock cannot leave the session in a state worse than a
        // failed call does; keep it usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[uniffi::export]
impl StreamingSession {
    /// Loads the ASR model in `model_dir` for one live session (to share one model between
    /// file transcription and sessions, use [`Transcriber::start_stream`]).
    #[uniffi::constructor(default(listener = None, cancel = None))]
    pub fn new(
        model_dir: String,
        config: StreamingConfig,
        listener: Option<Arc<dyn LoadProgressListener>>,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<Arc<Self>> {
        let dir = local_dir(&model_dir, "model")?;
        let config = q::StreamingConfig {
            options: config.to_facade(),
            device: q::DeviceSpec::Cpu,
            dtype: Some(q::ComputeDType::F32),
            fetch: offline_fetch(),
        };
        let st = load(listener, cancel.as_ref(), || {
            q::StreamingTranscriber::from_dir(dir, config)
        })?;
        Ok(Arc::new(Self::wrap(st)))
    }

    /// Pushes mono float PCM at `sample_rate` (the first push fixes the rate until
    /// [`StreamingSession::reset`]). Returns one event per chunk these samples completed.
    #[uniffi::method(default(cancel = None))]
    pub fn push_f32(
        &self,
        samples: Vec<f32>,
        sample_rate: u32,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<Vec<StreamEvent>> {
        let mut st = self.lock();
        let events = crate::with_cancel(cancel.as_ref(), || st.push_f32(&samples, sample_rate))?;
        Ok(events.into_iter().map(Into::into).collect())
    }

    /// Pushes mono 16-bit PCM (what `AudioRecord` / `AVAudioEngine` converters give).
    #[uniffi::method(default(cancel = None))]
    pub fn push_i16(
        &self,
        samples: Vec<i16>,
        sample_rate: u32,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<Vec<StreamEvent>> {
        self.push_f32(i16_to_f32(&samples), sample_rate, cancel)
    }

    /// Ends the stream: decodes what is buffered and returns the final transcript. Call
    /// [`StreamingSession::reset`] before pushing new audio.
    #[uniffi::method(default(cancel = None))]
    pub fn finish(&self, cancel: Option<Arc<CancelToken>>) -> Result<StreamEvent> {
        let mut st = self.lock();
        crate::with_cancel(cancel.as_ref(), || st.finish()).map(Into::into)
    }

    /// Starts a new stream with the same model and options (also after a cancelled call).
    pub fn reset(&self) {
        self.lock().reset();
    }

    /// The transcript after the last decode.
    pub fn text(&self) -> String {
        self.lock().text().to_string()
    }

    /// The language after the last decode (empty while unknown).
    pub fn language(&self) -> String {
        self.lock().language().to_string()
    }

    /// Seconds of audio received so far.
    pub fn audio_seconds(&self) -> f64 {
        self.lock().audio_seconds()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SpeechError;

    #[test]
    fn utf16_offsets() {
        let t = "héllo 你好 𝄞x";
        assert_eq!(utf16_offset(t, 0), 0);
        assert_eq!(utf16_offset(t, "hé".len()), 2);
        assert_eq!(utf16_offset(t, "héllo 你".len()), 7);
        // A supplementary-plane character counts two units.
        assert_eq!(utf16_offset(t, t.len()), 12);
        // Inside a character: clamped to its start; past the end: the end.
        assert_eq!(utf16_offset(t, 2), 1);
        assert_eq!(utf16_offset(t, 1000), 12);
    }

    #[test]
    fn configuration_errors_are_typed() {
        let cfg = TranscriberConfig {
            language: None,
            context: String::new(),
            max_new_tokens: None,
            aligner_dir: Some("/no/such/aligner".into()),
            attention: None,
            chunk_seconds: None,
            batch_size: None,
        };
        assert!(matches!(cfg.to_facade(), Err(SpeechError::Io(_))));
    }
}
