//! Qwen3-ASR: speech recognition with language identification, context biasing and long audio.

pub mod config;
pub mod conv_stem;
pub mod encoder;
pub mod generate;
pub mod lengths;
pub mod pipeline;
pub mod prompt;
pub mod split;
pub mod streaming;
pub mod text;
pub mod thinker;

pub use config::{AsrConfig, AudioEncoderConfig, ThinkerConfig};
pub use encoder::{AudioEncoder, EncoderAttention};
pub use pipeline::{AsrModel, AsrOptions, AsrTranscription, PieceTranscription, Progress};
pub use streaming::{
    AsrStream, DEFAULT_MAX_SEGMENT_SECONDS, StreamMode, StreamOptions, StreamUpdate,
};
pub use thinker::Thinker;
