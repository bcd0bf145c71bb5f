//! The Qwen3 decoder shared by the ASR thinker, the forced aligner, the TTS talker and the TTS
//! code predictor: pre-RMSNorm layers with GQA attention, per-head q/k RMSNorm, rotate-half
//! RoPE and a SwiGLU MLP, plus the KV cache and attention masks they run with.

mod attention;
mod config;
mod decoder;
mod kv_cache;
mod mask;
mod rope;

pub use attention::Attention;
pub use attention::scaled_dot_product;
pub use config::{Qwen3Config, RopeScaling};
pub use decoder::{DecoderLayer, Mlp, Qwen3Decoder};
pub use kv_cache::{KvCache, LayerKvCache};
pub use mask::attention_mask;
pub use rope::{Positions, RopeTables, RotaryEmbedding};
