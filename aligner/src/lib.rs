//! Qwen3-ForcedAligner: word and character timestamps for a known transcript.
//!
//! * [`text`]: splitting a transcript into the units the aligner times (words for
//!   space-separated languages, single ideographs for Chinese, dictionary splits for Korean,
//!   morphological segmentation for Japanese).
//! * [`model`]: the aligner network and the decoding of its timestamp classes.
//! * [`timestamps`]: the reference's monotonic repair of predicted times.

pub use qwen3_speech_models as models;

pub mod japanese;
pub mod korean;
pub mod model;
pub mod text;
pub mod timestamps;

pub use model::{ALIGNER_LANGUAGES, AlignmentDetails, ForcedAligner, WordTiming};
