//! The shared core of qwen3-speech.
//!
//! Everything that more than one model family needs lives here: device and dtype selection,
//! weight loading, the Qwen3 transformer blocks with their KV cache, sampling, the Qwen2 BPE
//! tokenizer, audio I/O (decode, resample, write) and the log-mel front ends, and fetching
//! model folders from local disk or the Hugging Face hub.

pub mod audio;
pub mod cancel;
pub mod config;
pub mod device;
pub mod error;
pub mod hub;
pub mod kernels;
pub mod nn;
pub mod progress;
pub mod sampling;
mod scoped;
pub mod tokenizer;
pub mod transformer;
pub mod weights;

pub use error::{Error, Result};
