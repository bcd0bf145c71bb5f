//! Live speech recognition: [`StreamingTranscriber`].
//!
//! Push audio as it arrives (any sample rate, `f32` or `i16`, mono); every time a chunk of
//! audio is complete the model decodes and an event reports the transcript so far: the part
//! that is final, the tail that may still change, and the language. [`finish`] decodes the
//! rest and returns the final transcript.
//!
//! The algorithm and its result are the reference's streaming (`Qwen3ASRModel.
//! streaming_transcribe`, see [`crate::models::asr::streaming`]); the default
//! [`StreamMode::Incremental`] computes it without re-encoding the whole stream at every chunk.
//!
//! ```no_run
//! use qwen3_speech::{StreamingConfig, StreamingTranscriber};
//! # fn main() -> qwen3_speech::Result<()> {
//! let mut st = StreamingTranscriber::new("Qwen/Qwen3-ASR-0.6B", StreamingConfig::default())?;
//! # let pieces: Vec<Vec<i16>> = Vec::new();
//! for piece in pieces {
//!     for event in st.push_i16(&piece, 48_000)? {
//!         println!("{} [{}]", event.fixed, event.unfixed);
//!     }
//! }
//! println!("{}", st.finish()?.text);
//! # Ok(()) }
//! ```
//!
//! [`finish`]: StreamingTranscriber::finish

use std::sync::Arc;

use crate::engine::audio::ASR_SAMPLE_RATE;
use crate::engine::audio::resample::StreamingResampler;
use crate::engine::device::{ComputeDType, DeviceSpec, Placement};
use crate::engine::hub::{self, FetchOptions, ModelDir, ModelSource};
use crate::engine::{Error, Result};
use crate::models::asr::streaming::{StepStats, StreamUpdate};
use crate::models::asr::{AsrModel, AsrStream, StreamMode, StreamOptions};

/// How to load a model and stream with it.
#[derive(Debug, Clone)]
pub struct StreamingConfig {
    /// Chunk size, unfixed chunks, rollback tokens, mode, language, context, token budget.
    pub options: StreamOptions,
    pub device: DeviceSpec,
    /// `None`: f32 on CPU, bf16 on CUDA.
    pub dtype: Option<ComputeDType>,
    pub fetch: FetchOptions,
}

impl Default for StreamingConfig {
    fn default() -> Self {
        StreamingConfig {
            options: StreamOptions::default(),
            device: DeviceSpec::Auto,
            dtype: None,
            fetch: FetchOptions::from_env(),
        }
    }
}

/// The transcript after a decode.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEvent {
    /// The whole transcript so far (`fixed + unfixed`).
    pub text: String,
    /// The start of the transcript that is settled: the model is given it as a forced prefix
    /// from now on. (It can only move back in a rare case: when a decode produces fewer new
    /// tokens than the rollback, the reference rolls back further.)
    pub fixed: String,
    /// The tail that the next decodes may still change.
    pub unfixed: String,
    /// Detected (or forced) language; empty while unknown.
    pub language: String,
    /// True for the event of [`StreamingTranscriber::finish`]: `fixed` is then all the text.
    pub is_final: bool,
    /// Index of the decode (one per chunk).
    pub chunk: usize,
    /// Index of the segment (a long stream is cut into segments of at most
    /// `StreamOptions::max_segment_seconds`, each with its own prompt).
    pub segment: usize,
    /// True for the decode that ended a segment: all of `text` is then final.
    pub segment_closed: bool,
    /// Seconds of audio the decode covered.
    pub audio_seconds: f64,
    /// The model's raw output before parsing.
    pub raw: String,
    /// Work done by the decode, and its wall times.
    pub stats: StepStats,
}

impl From<StreamUpdate> for StreamEvent {
    fn from(u: StreamUpdate) -> Self {
        StreamEvent {
            text: u.text,
            fixed: u.fixed,
            unfixed: u.unfixed,
            language: u.language,
            is_final: u.is_final,
            chunk: u.chunk,
            segment: u.segment,
            segment_closed: u.segment_closed,
            audio_seconds: u.audio_samples as f64 / f64::from(ASR_SAMPLE_RATE),
            raw: u.raw,
            stats: u.stats,
        }
    }
}

/// A live transcription session (one stream at a time; [`reset`](Self::reset) starts another
/// with the same model).
pub struct StreamingTranscriber {
    model: Arc<AsrModel>,
    stream: AsrStream,
    /// Set by the first push: the input rate and its converter to 16 kHz.
    input: Option<(u32, StreamingResampler)>,
    dir: Option<ModelDir>,
}

impl std::fmt::Debug for StreamingTranscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamingTranscriber")
            .field("model", &self.dir.as_ref().map(|d| d.path().to_path_buf()))
            .field("stream", &self.stream)
            .field("input_rate", &self.input.as_ref().map(|(r, _)| *r))
            .finish()
    }
}

impl StreamingTranscriber {
    /// Loads a model named by a local folder or a hub repo id (downloading it if needed).
    pub fn new(model: &str, config: StreamingConfig) -> Result<Self> {
        let source = ModelSource::parse(model)?;
        config.options.validate()?;
        let dir = hub::resolve(&source, &config.fetch)?;
        Self::from_dir(dir, config)
    }

    /// Loads a model from an already resolved folder.
    pub fn from_dir(dir: ModelDir, config: StreamingConfig) -> Result<Self> {
        config.options.validate()?;
        let placement = Placement::new(config.device, config.dtype)?;
        let model = AsrModel::load(&dir, &placement.device, placement.dtype)?;
        let mut st = Self::with_model(Arc::new(model), config.options)?;
        st.dir = Some(dir);
        Ok(st)
    }

    /// A session on an already loaded model (shared, e.g. with a [`crate::Transcriber`]).
    pub fn with_model(model: Arc<AsrModel>, options: StreamOptions) -> Result<Self> {
        let stream = AsrStream::new(&model, options)?;
        Ok(StreamingTranscriber {
            model,
            stream,
            input: None,
            dir: None,
        })
    }

    /// The model folder, when the session loaded it.
    pub fn model_dir(&self) -> Option<&ModelDir> {
        self.dir.as_ref()
    }

    pub fn model(&self) -> &Arc<AsrModel> {
        &self.model
    }

    pub fn options(&self) -> &StreamOptions {
        self.stream.options()
    }

    pub fn mode(&self) -> StreamMode {
        self.stream.options().mode
    }

    /// The transcript after the last decode.
    pub fn text(&self) -> &str {
        self.stream.text()
    }

    /// The language after the last decode.
    pub fn language(&self) -> &str {
        self.stream.language()
    }

    /// Seconds of 16 kHz audio received (decoded or buffered).
    pub fn audio_seconds(&self) -> f64 {
        (self.stream.stream_samples() + self.stream.buffered_samples()) as f64
            / f64::from(ASR_SAMPLE_RATE)
    }

    /// Pushes mono `f32` samples at `sample_rate` (any rate; the first push fixes it for the
    /// session). Returns one event per chunk completed by these samples.
    pub fn push_f32(&mut self, samples: &[f32], sample_rate: u32) -> Result<Vec<StreamEvent>> {
        let resampled = self.resample(samples, sample_rate)?;
        let updates = self.stream.push(&self.model, &resampled)?;
        Ok(updates.into_iter().map(StreamEvent::from).collect())
    }

    /// `samples` at `sample_rate` converted to 16 kHz by the session's resampler.
    fn resample(&mut self, samples: &[f32], sample_rate: u32) -> Result<Vec<f32>> {
        if sample_rate == 0 {
            return Err(Error::InvalidArgument(
                "sample rate must be positive".into(),
            ));
        }
        let resampler = match &mut self.input {
            Some((rate, r)) => {
                if *rate != sample_rate {
                    return Err(Error::InvalidArgument(format!(
                        "the stream started at {rate} Hz; got samples at {sample_rate} Hz \
                         (reset the session to change the rate)"
                    )));
                }
                r
            }
            None => {
                let r = StreamingResampler::new(sample_rate, ASR_SAMPLE_RATE)?;
                &mut self.input.insert((sample_rate, r)).1
            }
        };
        let mut out = Vec::with_capacity(samples.len());
        resampler.push_into(samples, &mut out)?;
        Ok(out)
    }

    /// Pushes mono 16-bit samples (converted as the reference does: `x / 32768`).
    pub fn push_i16(&mut self, samples: &[i16], sample_rate: u32) -> Result<Vec<StreamEvent>> {
        let f: Vec<f32> = samples.iter().map(|&s| f32::from(s) / 32768.0).collect();
        self.push_f32(&f, sample_rate)
    }

    /// Ends the stream: decodes what is buffered and returns the final transcript
    /// (`is_final`). The session then needs [`reset`](Self::reset) before new audio.
    pub fn finish(&mut self) -> Result<StreamEvent> {
        if let Some((_, r)) = &mut self.input {
            let mut tail = Vec::new();
            r.flush_into(&mut tail)?;
            if !tail.is_empty() {
                // Whole chunks in the resampler's tail are decoded as chunks first (their
                // events are folded into the final one).
                self.stream.push(&self.model, &tail)?;
            }
        }
        Ok(self.stream.finish(&self.model)?.into())
    }

    /// Ends the stream with one last decode over what is buffered plus `samples` (at the
    /// session's rate; the first rate if nothing was pushed yet), without a decode per chunk
    /// in between: what a live session that fell behind wants when it is stopped. Equal to
    /// pushing `samples` and [`finish`](Self::finish) when they complete no chunk.
    pub fn finish_with_f32(&mut self, samples: &[f32], sample_rate: u32) -> Result<StreamEvent> {
        let mut tail = self.resample(samples, sample_rate)?;
        if let Some((_, r)) = &mut self.input {
            r.flush_into(&mut tail)?;
        }
        Ok(self.stream.finish_with(&self.model, &tail)?.into())
    }

    /// Starts a new stream with the same model and options.
    pub fn reset(&mut self) {
        self.stream.reset();
        self.input = None;
    }
}
