//! The Qwen3-TTS speech tokenizers: the 12 Hz 16-codebook causal codec and the 25 Hz
//! single-codebook codec. (Filled in by the TTS and 25 Hz codec milestones.)

pub use qwen3_speech_engine as engine;
