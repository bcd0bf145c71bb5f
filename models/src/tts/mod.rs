//! Qwen3-TTS.

pub mod speaker_encoder;
