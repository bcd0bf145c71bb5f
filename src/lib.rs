//! qwen3-speech: a native Rust speech engine for Qwen3-ASR, Qwen3-ForcedAligner and Qwen3-TTS.
//!
//! This facade is the one public Rust API; the CLI and the Python and mobile bindings are built
//! on it. The lower crates are re-exported for advanced use:
//!
//! * [`engine`]: devices, weights, the Qwen3 transformer core, sampling, tokenizer, audio I/O and
//!   features, model fetching.
//! * [`codecs`]: the Qwen3-TTS speech tokenizers.
//! * [`models`]: the ASR and TTS architectures and pipelines.
//! * [`aligner`]: the forced aligner.

pub use qwen3_speech_aligner as aligner;
pub use qwen3_speech_codecs as codecs;
pub use qwen3_speech_engine as engine;
pub use qwen3_speech_models as models;

mod alignment;
pub mod streaming;
pub mod subtitles;
pub mod synthesizer;
mod transcriber;

pub use aligner::WordTiming;
pub use alignment::{Aligner, AlignerConfig, DEFAULT_ALIGNER};
pub use engine::device::{ComputeDType, DeviceSpec};
pub use engine::hub::{FetchOptions, ModelDir, ModelSource};
pub use engine::{Error, Result};
pub use models::asr::{EncoderAttention, StreamMode, StreamOptions};
pub use streaming::{StreamEvent, StreamingConfig, StreamingTranscriber};
/// Chunking of [`Synthesizer::speak_stream`] (`synthesizer::StreamOptions`; the root name
/// `StreamOptions` is the streaming transcriber's).
pub use synthesizer::StreamOptions as SpeechStreamOptions;
pub use synthesizer::{
    Audio, AudioStream, SpeakRequest, Synthesis, SynthesisOptions, Synthesizer, SynthesizerConfig,
    TextInput, VoiceReference,
};
pub use transcriber::{
    AudioInput, Segment, TranscribeOptions, Transcriber, TranscriberConfig, Transcription,
    load_input,
};

/// The version of this library.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
