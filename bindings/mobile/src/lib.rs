//! Kotlin (Android) and Swift (iOS) bindings of qwen3-speech, generated with uniffi.
//!
//! The API mirrors the Rust facade for what a mobile app needs:
//!
//! * [`Transcriber`]: speech recognition of files or PCM buffers, with per-call options and word
//!   timestamps (when loaded with a forced aligner);
//! * [`StreamingSession`]: live recognition fed with PCM buffers from the platform's recorder;
//! * [`Synthesizer`]: speech synthesis, whole ([`Synthesizer::speak`]) or streamed to a
//!   [`SpeechListener`] chunk by chunk ([`Synthesizer::speak_stream`]);
//! * [`CancelToken`]: cancels a running call from any thread;
//! * [`LoadProgressListener`]: progress of model loading.
//!
//! Models load from local folders only (apps ship or download them themselves); nothing here
//! touches the network. Every object may be used from several threads: calls on one
//! [`Transcriber`] or [`Synthesizer`] run concurrently, calls on one [`StreamingSession`] are
//! serialised. Calls block: run them off the UI thread.

use std::path::Path;
use std::sync::Arc;

use qwen3_speech::engine::{cancel, progress};

mod asr;
mod error;
mod tts;

pub use asr::{
    EncoderAttention, Segment, StreamEvent, StreamingConfig, StreamingSession, TranscribeOptions,
    Transcriber, TranscriberConfig, Transcription, WordTiming,
};
pub use error::{Result, SpeechError};
pub use tts::{
    AudioChunk, ReferenceAudio, SpeakRequest, SpeechListener, SpeechStreamSummary, StreamChunking,
    Synthesis, SynthesisOptions, Synthesizer, TextMode, VoiceReference,
};

uniffi::setup_scaffolding!("qwen3speech");

/// The version of the engine inside the bindings.
#[uniffi::export]
pub fn engine_version() -> String {
    qwen3_speech::VERSION.to_string()
}

/// Converts float samples (`[-1, 1]`, clipped) to 16-bit PCM, e.g. for an `AudioTrack` in
/// `ENCODING_PCM_16BIT`.
#[uniffi::export]
pub fn pcm_f32_to_i16(samples: Vec<f32>) -> Vec<i16> {
    samples
        .iter()
        .map(|&s| {
            let s = if s.is_finite() {
                s.clamp(-1.0, 1.0)
            } else {
                0.0
            };
            (s * 32767.0).round() as i16
        })
        .collect()
}

/// Cancels calls from any thread: pass it to a call, then [`CancelToken::cancel`] makes the
/// call fail with `SpeechException.Cancelled` at its next checkpoint (between decoded tokens,
/// generated frames, audio chunks, loaded tensors). The object the call ran on stays usable.
/// A token stays cancelled until [`CancelToken::reset`].
#[derive(Debug, Default, uniffi::Object)]
pub struct CancelToken {
    inner: cancel::CancelToken,
}

#[uniffi::export]
impl CancelToken {
    #[uniffi::constructor]
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Requests cancellation of every call running (or started later) with this token.
    pub fn cancel(&self) {
        self.inner.cancel();
    }

    pub fn is_cancelled(&self) -> bool {
        self.inner.is_cancelled()
    }

    /// Clears the cancellation so the token can be used again.
    pub fn reset(&self) {
        self.inner.reset();
    }
}

/// Runs `f` under `token` (when given).
pub(crate) fn with_cancel<T>(
    token: Option<&Arc<CancelToken>>,
    f: impl FnOnce() -> qwen3_speech::Result<T>,
) -> Result<T> {
    let out = match token {
        Some(t) => t.inner.scope(f),
        None => f(),
    };
    out.map_err(SpeechError::from)
}

/// The part of a model load a [`LoadProgress`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum LoadStage {
    /// A JSON configuration file was read.
    Config,
    /// The tokenizer files are being read.
    Tokenizer,
    /// Tensors are being read from a set of weight files (`fraction` of its bytes).
    Weights,
    /// The model is loaded and usable (the last report, fraction 1).
    Ready,
}

/// One report of a model load.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct LoadProgress {
    pub stage: LoadStage,
    /// Fraction of the stage done, 0 to 1. For [`LoadStage::Weights`] it is the fraction of
    /// the bytes of the current set of weight files (a model can have several sets, e.g. a TTS
    /// model and its speech tokenizer, or an ASR model and its aligner; each starts at 0).
    pub fraction: f32,
    /// The file or folder the report is about; empty for [`LoadStage::Ready`].
    pub file: String,
}

impl From<&progress::LoadProgress> for LoadProgress {
    fn from(p: &progress::LoadProgress) -> Self {
        LoadProgress {
            stage: match p.stage {
                progress::LoadStage::Config => LoadStage::Config,
                progress::LoadStage::Tokenizer => LoadStage::Tokenizer,
                progress::LoadStage::Weights => LoadStage::Weights,
                progress::LoadStage::Ready => LoadStage::Ready,
            },
            fraction: p.fraction,
            file: p.file.clone(),
        }
    }
}

/// Receives the progress of a model load, on the thread that loads.
#[uniffi::export(with_foreign)]
pub trait LoadProgressListener: Send + Sync {
    fn on_progress(&self, progress: LoadProgress);
}

/// Loads with `listener` receiving the progress (ending with [`LoadStage::Ready`]) and `cancel`
/// able to stop the load.
pub(crate) fn load<T>(
    listener: Option<Arc<dyn LoadProgressListener>>,
    cancel: Option<&Arc<CancelToken>>,
    f: impl FnOnce() -> qwen3_speech::Result<T>,
) -> Result<T> {
    let Some(listener) = listener else {
        return with_cancel(cancel, f);
    };
    let l = Arc::clone(&listener);
    let out = progress::scope(move |p| l.on_progress(p.into()), || with_cancel(cancel, f))?;
    listener.on_progress(LoadProgress {
        stage: LoadStage::Ready,
        fraction: 1.0,
        file: String::new(),
    });
    Ok(out)
}

/// A model folder on local disk (never a hub id: mobile apps bring their own files).
pub(crate) fn local_dir(path: &str, what: &str) -> Result<qwen3_speech::ModelDir> {
    if path.trim().is_empty() {
        return Err(SpeechError::InvalidArgument(format!(
            "no {what} folder given"
        )));
    }
    let p = Path::new(path);
    if !p.is_dir() {
        return Err(SpeechError::Io(format!(
            "{what} folder {path} {}",
            if p.exists() {
                "is not a folder"
            } else {
                "does not exist"
            }
        )));
    }
    Ok(qwen3_speech::ModelDir::open(p)?)
}

/// Fetch options that never reach the network or read the environment.
pub(crate) fn offline_fetch() -> qwen3_speech::FetchOptions {
    qwen3_speech::FetchOptions::from_vars(|_| None)
        .with_offline(true)
        .with_progress(false)
}

pub(crate) fn to_usize(v: Option<u32>) -> Option<usize> {
    v.map(|v| v as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_the_facade_version() {
        assert_eq!(engine_version(), qwen3_speech::VERSION);
    }

    #[test]
    fn pcm_conversion_clips() {
        assert_eq!(
            pcm_f32_to_i16(vec![0.0, 1.0, -1.0, 2.0, f32::NAN, 0.5]),
            vec![0, 32767, -32767, 32767, 0, 16384]
        );
    }

    #[test]
    fn missing_folders_are_typed_errors() {
        assert!(matches!(
            local_dir("/no/such/folder", "model"),
            Err(SpeechError::Io(m)) if m.contains("does not exist")
        ));
        assert!(matches!(
            local_dir(" ", "model"),
            Err(SpeechError::InvalidArgument(_))
        ));
        // A hub-like id is not fetched: it is just a missing folder.
        assert!(matches!(
            local_dir("Qwen/Qwen3-ASR-0.6B", "model"),
            Err(SpeechError::Io(_))
        ));
    }
}
