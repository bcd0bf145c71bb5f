//! Qwen3-ASR and Qwen3-TTS model architectures and their pipelines, built on the shared
//! transformer core of `qwen3-speech-engine` and the codecs of `qwen3-speech-codecs`.

pub mod asr;
pub mod tts;

pub use qwen3_speech_codecs as codecs;
pub use qwen3_speech_engine as engine;
