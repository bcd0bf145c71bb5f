//! Qwen3-ForcedAligner: word and character timestamps. (Filled in by the aligner milestone.)

pub use qwen3_speech_models as models;
