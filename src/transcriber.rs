//! Speech recognition: [`Transcriber`].

use std::path::Path;
use std::sync::Arc;

use crate::aligner::WordTiming;
use crate::alignment::{Aligner, AlignerConfig};
use crate::engine::audio::{self, ASR_SAMPLE_RATE};
use crate::engine::device::{ComputeDType, DeviceSpec, Placement};
use crate::engine::hub::{self, FetchOptions, ModelDir, ModelSource};
use crate::engine::sampling::SamplingConfig;
use crate::engine::{Error, Result};
use crate::models::asr::{AsrModel, AsrOptions, AsrTranscription, EncoderAttention, Progress};

/// Longest piece transcribed in one pass when word times are wanted (the reference's limit).
pub const MAX_ALIGNED_PIECE_SECONDS: f64 = 180.0;

fn round_ms(t: f64) -> f64 {
    (t * 1000.0).round() / 1000.0
}

/// How to load a model and transcribe with it.
#[derive(Debug, Clone)]
pub struct TranscriberConfig {
    /// Force the language ("English", "en", ...); `None` lets the model detect it.
    pub language: Option<String>,
    /// Context for the system turn: names, terms, the topic.
    pub context: String,
    /// Token budget per 20-minute piece; `None` scales with duration (nothing is cut silently).
    pub max_new_tokens: Option<usize>,
    pub attention: EncoderAttention,
    pub device: DeviceSpec,
    /// `None`: f32 on CPU, bf16 on CUDA.
    pub dtype: Option<ComputeDType>,
    pub sampling: SamplingConfig,
    /// Long audio is split into pieces of at most this many seconds.
    pub chunk_seconds: f64,
    /// Pieces decoded together.
    pub batch_size: usize,
    /// Where and how to fetch hub models.
    pub fetch: FetchOptions,
    /// A forced aligner (local folder or hub id) to time every word; `None`: no word times.
    /// With an aligner, long audio is split into pieces of at most 180 s, as the reference.
    pub aligner: Option<String>,
}

impl Default for TranscriberConfig {
    fn default() -> Self {
        let asr = AsrOptions::default();
        TranscriberConfig {
            language: None,
            context: String::new(),
            max_new_tokens: None,
            attention: asr.attention,
            device: DeviceSpec::Auto,
            dtype: None,
            sampling: asr.sampling,
            chunk_seconds: asr.chunk_seconds,
            batch_size: 4,
            fetch: FetchOptions::from_env(),
            aligner: None,
        }
    }
}

impl TranscriberConfig {
    /// Checks the options that do not need the model (language, sampling, batch size).
    pub fn validate(&self) -> Result<()> {
        if let Some(l) = self.language.as_deref().filter(|l| !l.trim().is_empty()) {
            crate::models::asr::text::resolve_language(l)?;
        }
        self.sampling.validate()?;
        if self.batch_size == 0 {
            return Err(Error::InvalidArgument(
                "batch size must be at least 1".into(),
            ));
        }
        if !(self.chunk_seconds.is_finite() && (1.0..=1200.0).contains(&self.chunk_seconds)) {
            return Err(Error::InvalidArgument(format!(
                "chunk length must be between 1 and 1200 seconds, got {}",
                self.chunk_seconds
            )));
        }
        if self.max_new_tokens == Some(0) {
            return Err(Error::InvalidArgument(
                "max_new_tokens must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// Per-call overrides of a [`Transcriber`]'s configuration; every `None` keeps the configured
/// value. Lets one loaded model serve calls in different languages or with different context
/// (as the reference's `transcribe(audio, context, language, return_time_stamps)`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TranscribeOptions {
    /// Force a language for this call; `Some("")` (or `"auto"`) detects it even when the
    /// configuration forces one.
    pub language: Option<String>,
    /// Context for the system turn of this call.
    pub context: Option<String>,
    pub max_new_tokens: Option<usize>,
    pub sampling: Option<SamplingConfig>,
    /// Word times for this call. `None`: when an aligner is loaded; `Some(true)` without an
    /// aligner is an error.
    pub word_timestamps: Option<bool>,
}

/// Audio to transcribe.
#[derive(Debug, Clone, Copy)]
pub enum AudioInput<'a> {
    /// A file in any supported format (WAV, FLAC, MP3, OGG Vorbis, AAC/M4A, ...).
    Path(&'a Path),
    /// Samples at a rate; several channels interleaved are not accepted here, downmix first.
    Samples {
        samples: &'a [f32],
        sample_rate: u32,
    },
}

/// A piece of the transcript with its place in the audio.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub start: f64,
    pub end: f64,
    pub text: String,
    pub language: String,
}

/// The result of transcribing one input.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcription {
    /// Detected or forced language ("English"; "Chinese,English" when it changes between
    /// pieces; empty when no speech was found).
    pub language: String,
    pub text: String,
    /// The model's decoded output before parsing (e.g. `language English<asr_text>...`).
    pub raw: String,
    /// Duration of the audio, seconds.
    pub duration: f64,
    /// True when the token budget ran out before the model finished a piece.
    pub truncated: bool,
    /// One segment per piece of long audio (one for audio up to the piece length).
    pub segments: Vec<Segment>,
    /// Word times, when the transcriber has a forced aligner. Spans index into `text`.
    pub words: Option<Vec<WordTiming>>,
    /// Things the user should know about this result (e.g. pieces left without word times).
    pub warnings: Vec<String>,
}

impl From<AsrTranscription> for Transcription {
    fn from(t: AsrTranscription) -> Self {
        let truncated = t.truncated();
        Transcription {
            language: t.language,
            text: t.text,
            raw: t.raw,
            duration: t.duration_sec,
            truncated,
            segments: t
                .pieces
                .into_iter()
                .map(|p| Segment {
                    start: p.offset_sec,
                    end: p.offset_sec + p.duration_sec,
                    text: p.text,
                    language: p.language,
                })
                .collect(),
            words: None,
            warnings: Vec::new(),
        }
    }
}

/// A loaded Qwen3-ASR model with its options.
pub struct Transcriber {
    model: Arc<AsrModel>,
    config: TranscriberConfig,
    dir: ModelDir,
    aligner: Option<Aligner>,
}

impl std::fmt::Debug for Transcriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcriber")
            .field("model", &self.dir.path())
            .field("config", &self.config)
            .finish()
    }
}

impl Transcriber {
    /// Loads a model named by a local folder or a hub repo id (downloading it if needed).
    pub fn new(model: &str, config: TranscriberConfig) -> Result<Self> {
        let source = ModelSource::parse(model)?;
        // Check what can be checked before a possibly long download.
        config.validate()?;
        let dir = hub::resolve(&source, &config.fetch)?;
        Self::from_dir(dir, config)
    }

    /// Loads a model from an already resolved folder.
    pub fn from_dir(dir: ModelDir, config: TranscriberConfig) -> Result<Self> {
        config.validate()?;
        let placement = Placement::new(config.device, config.dtype)?;
        let model = AsrModel::load(&dir, &placement.device, placement.dtype)?;
        let aligner = match &config.aligner {
            Some(name) => Some(Aligner::new(
                name,
                AlignerConfig {
                    device: config.device,
                    dtype: config.dtype,
                    attention: config.attention,
                    fetch: config.fetch.clone(),
                },
            )?),
            None => None,
        };
        Ok(Transcriber {
            model: Arc::new(model),
            config,
            dir,
            aligner,
        })
    }

    pub fn config(&self) -> &TranscriberConfig {
        &self.config
    }

    pub fn model_dir(&self) -> &ModelDir {
        &self.dir
    }

    /// The underlying model, for incremental use (streaming, custom pipelines).
    pub fn model(&self) -> &AsrModel {
        &self.model
    }

    /// A live transcription session sharing this transcriber's model (see
    /// [`StreamingTranscriber`](crate::StreamingTranscriber)).
    pub fn stream(&self, options: crate::StreamOptions) -> Result<crate::StreamingTranscriber> {
        crate::StreamingTranscriber::with_model(Arc::clone(&self.model), options)
    }

    /// The forced aligner, when word times were asked for.
    pub fn aligner(&self) -> Option<&Aligner> {
        self.aligner.as_ref()
    }

    /// The ASR options of a call, and whether it times words.
    fn call_options(&self, o: &TranscribeOptions) -> Result<(AsrOptions, bool)> {
        let words = match o.word_timestamps {
            Some(true) if self.aligner.is_none() => {
                return Err(Error::InvalidArgument(
                    "word timestamps need a forced aligner (load the transcriber with one)".into(),
                ));
            }
            Some(w) => w,
            None => self.aligner.is_some(),
        };
        let chunk_seconds = if words {
            self.config.chunk_seconds.min(MAX_ALIGNED_PIECE_SECONDS)
        } else {
            self.config.chunk_seconds
        };
        let language = match o.language.as_deref().map(str::trim) {
            None => self.config.language.clone(),
            Some("") => None,
            Some(l) if l.eq_ignore_ascii_case("auto") => None,
            Some(l) => {
                crate::models::asr::text::resolve_language(l)?;
                Some(l.to_string())
            }
        };
        if o.max_new_tokens == Some(0) {
            return Err(Error::InvalidArgument(
                "max_new_tokens must be positive".into(),
            ));
        }
        let sampling = o
            .sampling
            .clone()
            .unwrap_or_else(|| self.config.sampling.clone());
        sampling.validate()?;
        let options = AsrOptions {
            language,
            context: o
                .context
                .clone()
                .unwrap_or_else(|| self.config.context.clone()),
            max_new_tokens: o.max_new_tokens.or(self.config.max_new_tokens),
            attention: self.config.attention,
            sampling,
            chunk_seconds,
        };
        Ok((options, words))
    }

    /// Converts a clip's ASR result, timing its words when asked to.
    fn finish(&self, samples: &[f32], t: AsrTranscription, words: bool) -> Transcription {
        let Some(aligner) = self.aligner.as_ref().filter(|_| words) else {
            return t.into();
        };
        let split = t.pieces.len() > 1;
        let mut words = Vec::new();
        let mut warnings = Vec::new();
        let mut text_offset = 0;
        for p in &t.pieces {
            if !p.text.trim().is_empty() {
                // As the reference: the piece's audio (short pieces of a split clip padded to
                // 0.5 s), its text and its language.
                let mut audio = samples[p.samples.clone()].to_vec();
                if split && audio.len() < 8000 {
                    audio.resize(8000, 0.0);
                }
                let language = if p.language.is_empty() {
                    t.language.split(',').next().unwrap_or("").to_string()
                } else {
                    p.language.clone()
                };
                match aligner.align_samples_16k(&audio, &p.text, &language) {
                    Ok(ws) => words.extend(ws.into_iter().map(|w| WordTiming {
                        start: round_ms(w.start + p.offset_sec),
                        end: round_ms(w.end + p.offset_sec),
                        span: w.span.start + text_offset..w.span.end + text_offset,
                        text: w.text,
                    })),
                    Err(e) => warnings.push(format!(
                        "no word times for {:.1}-{:.1} s: {e}",
                        p.offset_sec,
                        p.offset_sec + p.duration_sec
                    )),
                }
            }
            text_offset += p.text.len();
        }
        let mut out: Transcription = t.into();
        out.words = Some(words);
        out.warnings = warnings;
        out
    }

    /// Transcribes a file.
    pub fn transcribe_file(&self, path: impl AsRef<Path>) -> Result<Transcription> {
        self.transcribe(AudioInput::Path(path.as_ref()))
    }

    /// Transcribes mono samples at any rate.
    pub fn transcribe_samples(&self, samples: &[f32], sample_rate: u32) -> Result<Transcription> {
        self.transcribe(AudioInput::Samples {
            samples,
            sample_rate,
        })
    }

    /// Transcribes one input.
    pub fn transcribe(&self, input: AudioInput<'_>) -> Result<Transcription> {
        self.transcribe_with(input, &TranscribeOptions::default())
    }

    /// Transcribes one input with per-call options.
    pub fn transcribe_with(
        &self,
        input: AudioInput<'_>,
        options: &TranscribeOptions,
    ) -> Result<Transcription> {
        self.transcribe_batch_with(&[input], options, |_, _| {})
            .pop()
            .expect("one result per input")
    }

    /// Transcribes several inputs, decoding them together. Every input gets its own result: one
    /// unreadable file does not affect the others. `on_progress(input, progress)` reports
    /// after each decoded batch of pieces.
    pub fn transcribe_batch(
        &self,
        inputs: &[AudioInput<'_>],
        on_progress: impl FnMut(usize, Progress),
    ) -> Vec<Result<Transcription>> {
        self.transcribe_batch_with(inputs, &TranscribeOptions::default(), on_progress)
    }

    /// [`Transcriber::transcribe_batch`] with per-call options (the same for every input).
    pub fn transcribe_batch_with(
        &self,
        inputs: &[AudioInput<'_>],
        options: &TranscribeOptions,
        mut on_progress: impl FnMut(usize, Progress),
    ) -> Vec<Result<Transcription>> {
        let (options, words) = match self.call_options(options) {
            Ok(o) => o,
            Err(e) => {
                let message = e.to_string();
                return inputs
                    .iter()
                    .map(|_| Err(Error::InvalidArgument(message.clone())))
                    .collect();
            }
        };
        let mut results: Vec<Option<Result<Transcription>>> = Vec::with_capacity(inputs.len());
        let mut loaded: Vec<(usize, Vec<f32>)> = Vec::new();
        for (i, input) in inputs.iter().enumerate() {
            match load_input(input) {
                Ok(samples) => {
                    results.push(None);
                    loaded.push((i, samples));
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        // Decode inputs one at a time when they are long (their pieces batch among themselves),
        // several short ones together otherwise.
        let mut start = 0;
        while start < loaded.len() {
            if crate::engine::cancel::checkpoint().is_err() {
                // Cancelled: every input not yet decoded reports it.
                for (i, _) in &loaded[start..] {
                    results[*i] = Some(Err(Error::Cancelled));
                }
                break;
            }
            let mut end = start + 1;
            while end < loaded.len() && end - start < self.config.batch_size {
                end += 1;
            }
            let group = &loaded[start..end];
            let clips: Vec<&[f32]> = group.iter().map(|(_, s)| s.as_slice()).collect();
            let first = group[0].0;
            match self
                .model
                .transcribe(&clips, &options, self.config.batch_size, |p| {
                    on_progress(first, p)
                }) {
                Ok(out) => {
                    for ((i, samples), t) in group.iter().zip(out) {
                        results[*i] = Some(Ok(self.finish(samples, t, words)));
                    }
                }
                Err(Error::Cancelled) => {
                    for (i, _) in &loaded[start..] {
                        results[*i] = Some(Err(Error::Cancelled));
                    }
                    break;
                }
                Err(e) => {
                    // Retry one by one so a single bad clip does not fail its neighbours.
                    if group.len() > 1 {
                        for (i, s) in group {
                            results[*i] = Some(
                                self.model
                                    .transcribe(
                                        &[s.as_slice()],
                                        &options,
                                        self.config.batch_size,
                                        |p| on_progress(*i, p),
                                    )
                                    .map(|mut v| self.finish(s, v.remove(0), words)),
                            );
                        }
                    } else {
                        results[first] = Some(Err(e));
                    }
                }
            }
            start = end;
        }
        results
            .into_iter()
            .map(|r| r.expect("every input has a result"))
            .collect()
    }
}

/// Decodes (if needed), downmixes, resamples to 16 kHz and peak-normalises an input.
pub fn load_input(input: &AudioInput<'_>) -> Result<Vec<f32>> {
    match input {
        AudioInput::Path(p) => audio::load_audio(p, ASR_SAMPLE_RATE),
        AudioInput::Samples {
            samples,
            sample_rate,
        } => {
            if *sample_rate == 0 {
                return Err(Error::InvalidArgument(
                    "sample rate must be positive".into(),
                ));
            }
            let mut out = if *sample_rate == ASR_SAMPLE_RATE {
                samples.to_vec()
            } else {
                audio::resample(samples, *sample_rate, ASR_SAMPLE_RATE)?
            };
            audio::peak_normalize(&mut out);
            Ok(out)
        }
    }
}
