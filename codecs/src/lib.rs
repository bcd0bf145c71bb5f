//! The Qwen3-TTS speech tokenizers (audio codecs).
//!
//! * [`codec12`]: the 12 Hz, 16-codebook causal codec (`qwen3_tts_tokenizer_12hz`) of the
//!   Qwen3-TTS-12Hz models: encode 24 kHz audio to codes, decode codes to audio (offline in the
//!   reference's chunks, or incrementally).
//! * [`codec25`]: the 25 Hz single-codebook tokenizer (`qwen3_tts_tokenizer_25hz`): Whisper-VQ
//!   encoder, CAM++ x-vector, DiT flow-matching decoder and BigVGAN vocoder (its weights are not
//!   released; built from `config.json`).
//! * [`SpeechTokenizer`]: loads a speech tokenizer folder and picks the codec from the
//!   `model_type` in its `config.json`.

pub mod codec12;
pub mod codec25;
mod tokenizer;

pub use codec12::{Codec12, Codes, IncrementalDecoder};
pub use codec25::{Codec25, Encoded25, SpeakerConditioning};
pub use qwen3_speech_engine as engine;
pub use tokenizer::{SpeechTokenizer, find_tokenizer_dir};
