//! Qwen3-TTS: the talker LM, the code predictor, prompts for the three products and the frame
//! loop (tts.md). Codes go to the speech tokenizers of `qwen3-speech-codecs`.

pub mod config;
pub mod generate;
pub mod pipeline;
pub mod prompt;
pub mod speaker_encoder;
pub mod talker;

pub use config::{TalkerConfig, TtsConfig, TtsGenerationConfig, TtsModelType};
pub use generate::{DrawFn, DrawSite, FrameSampling, FrameSession, FrameStop};
pub use prompt::{IclReference, PromptSpec, SpeakerSlot, TalkerPrompt, build_prompt};
pub use talker::{CodePredictor, Talker};
