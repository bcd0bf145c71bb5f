//! Speech synthesis with Qwen3-TTS: [`Synthesizer`].

use std::path::Path;

use crate::codecs::{Codes, IncrementalDecoder};
use crate::engine::audio::{self, decode_file};
use crate::engine::device::{ComputeDType, DeviceSpec, Placement};
use crate::engine::hub::{self, FetchOptions, ModelDir, ModelSource};
use crate::engine::{Error, Result};
use crate::models::tts::pipeline::{PreparedRequest, TtsModel};
use crate::models::tts::{FrameSampling, FrameSession, FrameStop};
use crate::transcriber::AudioInput;

pub use crate::models::tts::TtsModelType;
pub use crate::models::tts::pipeline::{SpeakRequest, TextInput, VoiceReference};

/// Sample rate of the speaker encoder and of the 12 Hz speech tokenizer's input.
pub const REFERENCE_SAMPLE_RATE: u32 = 24_000;

/// How to load the TTS model.
#[derive(Debug, Clone)]
pub struct SynthesizerConfig {
    pub device: DeviceSpec,
    /// `None`: f32 on CPU, bf16 on CUDA.
    pub dtype: Option<ComputeDType>,
    pub fetch: FetchOptions,
}

impl Default for SynthesizerConfig {
    fn default() -> Self {
        SynthesizerConfig {
            device: DeviceSpec::Auto,
            dtype: None,
            fetch: FetchOptions::from_env(),
        }
    }
}

/// Sampling settings of one synthesis; `None` fields take the checkpoint's
/// generation_config.json value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SynthesisOptions {
    pub seed: u64,
    /// Argmax for both the talker and the code predictor.
    pub greedy: bool,
    pub temperature: Option<f32>,
    pub top_k: Option<usize>,
    pub top_p: Option<f32>,
    pub repetition_penalty: Option<f32>,
    /// Talker steps, as the reference's `max_new_tokens` (at most `max_frames - 1` frames).
    pub max_frames: Option<usize>,
}

/// Mono audio.
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    pub samples: Vec<f32>,
    pub sample_rate: u32,
}

impl Audio {
    pub fn duration_seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.sample_rate.max(1))
    }
}

/// The result of [`Synthesizer::speak`].
#[derive(Debug, Clone)]
pub struct Synthesis {
    pub audio: Audio,
    /// Codec frames (one per 80 ms with the 12 Hz tokenizer, one code per 40 ms with the
    /// 25 Hz one), `[frames][codebooks]`.
    pub frames: Vec<Vec<u32>>,
    /// True when generation stopped at the frame limit rather than at the end of speech.
    pub truncated: bool,
    pub warnings: Vec<String>,
}

/// A loaded Qwen3-TTS model (CustomVoice, VoiceDesign or Base).
pub struct Synthesizer {
    model: TtsModel,
    dir: ModelDir,
}

impl std::fmt::Debug for Synthesizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Synthesizer")
            .field("model", &self.dir.path())
            .finish()
    }
}

impl Synthesizer {
    /// Loads a model named by a local folder or a hub repo id.
    pub fn new(model: &str, config: SynthesizerConfig) -> Result<Self> {
        let dir = hub::resolve(&ModelSource::parse(model)?, &config.fetch)?;
        Self::from_dir(dir, config)
    }

    pub fn from_dir(dir: ModelDir, config: SynthesizerConfig) -> Result<Self> {
        let placement = Placement::new(config.device, config.dtype)?;
        let model = TtsModel::load(&dir, &placement.device, placement.dtype)?;
        Ok(Synthesizer { model, dir })
    }

    pub fn model(&self) -> &TtsModel {
        &self.model
    }

    pub fn model_dir(&self) -> &ModelDir {
        &self.dir
    }

    pub fn model_type(&self) -> TtsModelType {
        self.model.model_type()
    }

    pub fn sample_rate(&self) -> u32 {
        self.model.sample_rate()
    }

    /// Named speakers (lower-case), empty unless CustomVoice.
    pub fn speakers(&self) -> Vec<String> {
        self.model.config().speakers()
    }

    /// `auto` and the languages the model accepts.
    pub fn languages(&self) -> Vec<String> {
        self.model.config().supported_languages()
    }

    /// Turns options into the sampling of the frame loop.
    pub fn sampling(&self, o: &SynthesisOptions) -> FrameSampling {
        let mut s = self.model.default_sampling(o.seed);
        if let Some(t) = o.temperature {
            s.talker.temperature = t;
            s.code_predictor.temperature = t;
        }
        if let Some(k) = o.top_k {
            s.talker.top_k = k;
            s.code_predictor.top_k = k;
        }
        if let Some(p) = o.top_p {
            s.talker.top_p = p;
            s.code_predictor.top_p = p;
        }
        if let Some(r) = o.repetition_penalty {
            s.talker.repetition_penalty = r;
        }
        if let Some(m) = o.max_frames {
            s.max_new_tokens = m;
        }
        if o.greedy { s.greedy() } else { s }
    }

    /// Synthesizes one request.
    pub fn speak(&self, request: &SpeakRequest, options: &SynthesisOptions) -> Result<Synthesis> {
        let speech = self.model.speak(request, &self.sampling(options))?;
        Ok(Synthesis {
            audio: Audio {
                samples: speech.samples,
                sample_rate: speech.sample_rate,
            },
            frames: speech.frames,
            truncated: speech.stop == FrameStop::MaxFrames,
            warnings: speech.warnings,
        })
    }

    /// Starts a synthesis whose frames arrive one by one ([`FrameStream`]); decode them as
    /// they come (the streaming issue's incremental decoder) or collect them.
    pub fn frames(
        &self,
        request: &SpeakRequest,
        options: &SynthesisOptions,
    ) -> Result<FrameStream<'_>> {
        let prepared = self.model.prepare(request)?;
        let session = self.model.start(&[&prepared], &self.sampling(options))?;
        Ok(FrameStream {
            session,
            prepared,
            frames: Vec::new(),
        })
    }

    /// Synthesizes `request` as a stream of audio chunks produced while the frames are
    /// generated: the first chunk after `stream.first_chunk_frames` frames, then one every
    /// `stream.chunk_frames` frames. The 12 Hz decoder is causal, so each chunk is final; the
    /// concatenated chunks equal [`Synthesizer::speak`]'s audio (up to float rounding; for
    /// in-context clones the reference part is cut at exactly `M` frames where the offline
    /// decode's proportional cut can fall one sample earlier).
    ///
    /// The 25 Hz speech tokenizer (single-codebook checkpoints) is not incremental: its
    /// flow-matching decoder attends over the whole code sequence. Its stream generates every
    /// frame and then yields the whole audio as one chunk, equal to [`Synthesizer::speak`]'s
    /// (same seed); the chunk sizes are not used.
    pub fn speak_stream(
        &self,
        request: &SpeakRequest,
        options: &SynthesisOptions,
        stream: &StreamOptions,
    ) -> Result<AudioStream<'_>> {
        if stream.first_chunk_frames == 0 || stream.chunk_frames == 0 {
            return Err(Error::InvalidArgument(
                "audio chunks must hold at least one frame".into(),
            ));
        }
        let frames = self.frames(request, options)?;
        let decoder = match self.model.speech_tokenizer().as_codec12() {
            Some(codec) => {
                let mut decoder = codec.incremental_decoder();
                // In-context clones decode after their reference frames; that audio is not
                // output.
                if let Some(r) = frames.reference_frames() {
                    decoder.push(&Codes::from_frames(r)?)?;
                }
                ChunkDecoder::Incremental(decoder)
            }
            None => ChunkDecoder::Whole {
                model: &self.model,
                seed: options.seed,
            },
        };
        Ok(AudioStream {
            frames,
            decoder,
            options: stream.clone(),
            chunks: 0,
            sample_rate: self.sample_rate(),
        })
    }

    /// Loads a reference clip for cloning: any audio file or samples, mono at 24 kHz.
    pub fn load_reference(audio: AudioInput<'_>) -> Result<Vec<f32>> {
        match audio {
            AudioInput::Path(p) => load_reference_file(p),
            AudioInput::Samples {
                samples,
                sample_rate,
            } => {
                if sample_rate == 0 {
                    return Err(Error::InvalidArgument(
                        "sample rate must be positive".into(),
                    ));
                }
                if sample_rate == REFERENCE_SAMPLE_RATE {
                    Ok(samples.to_vec())
                } else {
                    audio::resample(samples, sample_rate, REFERENCE_SAMPLE_RATE)
                }
            }
        }
    }
}

/// A reference clip as the reference wrapper reads it: decoded, averaged to mono, resampled to
/// 24 kHz; no normalisation.
fn load_reference_file(path: &Path) -> Result<Vec<f32>> {
    let decoded = decode_file(path)?;
    let rate = decoded.sample_rate;
    let mono = decoded.into_mono();
    if mono.is_empty() {
        return Err(Error::Audio(format!(
            "{}: the reference clip is empty",
            path.display()
        )));
    }
    if rate == REFERENCE_SAMPLE_RATE {
        Ok(mono)
    } else {
        audio::resample(&mono, rate, REFERENCE_SAMPLE_RATE)
    }
}

/// Frames of one synthesis as they are generated.
pub struct FrameStream<'a> {
    session: FrameSession<'a>,
    prepared: PreparedRequest,
    frames: Vec<Vec<u32>>,
}

impl FrameStream<'_> {
    /// The next frame, or `None` at the end.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u32>>> {
        loop {
            if self.session.is_done() {
                return Ok(None);
            }
            if let Some((_, f)) = self.session.step()?.pop() {
                self.frames.push(f.clone());
                return Ok(Some(f));
            }
        }
    }

    /// True when the stream ended at the frame limit.
    pub fn truncated(&self) -> bool {
        self.session.stop_reason(0) == Some(FrameStop::MaxFrames)
    }

    /// Warnings about the request (e.g. a dropped instruction).
    pub fn warnings(&self) -> &[String] {
        &self.prepared.warnings
    }

    /// Reference frames an in-context clone decodes before its own (see
    /// [`TtsModel::decode`]).
    pub fn reference_frames(&self) -> Option<&[Vec<u32>]> {
        self.prepared.reference_codes.as_deref()
    }

    /// Frames produced so far.
    pub fn frames_so_far(&self) -> &[Vec<u32>] {
        &self.frames
    }
}

impl Iterator for FrameStream<'_> {
    type Item = Result<Vec<u32>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_frame().transpose()
    }
}

/// Chunking of [`Synthesizer::speak_stream`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamOptions {
    /// Frames (80 ms each) before the first chunk: lower means earlier audio.
    pub first_chunk_frames: usize,
    /// Frames per later chunk.
    pub chunk_frames: usize,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            first_chunk_frames: 2,
            chunk_frames: 4,
        }
    }
}

/// How [`AudioStream`] turns frames into audio.
enum ChunkDecoder<'a> {
    /// The 12 Hz decoder: causal, every chunk is final when decoded.
    Incremental(IncrementalDecoder<'a>),
    /// The 25 Hz decoder: one decode of the whole sequence after the last frame.
    Whole { model: &'a TtsModel, seed: u64 },
}

/// Audio chunks of one synthesis, decoded while it is generated ([`Synthesizer::speak_stream`]).
pub struct AudioStream<'a> {
    frames: FrameStream<'a>,
    decoder: ChunkDecoder<'a>,
    options: StreamOptions,
    chunks: usize,
    sample_rate: u32,
}

impl AudioStream<'_> {
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// The next chunk of samples, or `None` at the end.
    pub fn next_chunk(&mut self) -> Result<Option<Vec<f32>>> {
        if let ChunkDecoder::Whole { model, seed } = &self.decoder {
            if self.chunks > 0 {
                return Ok(None);
            }
            while self.frames.next_frame()?.is_some() {}
            self.chunks = 1;
            let frames = self.frames.frames_so_far();
            if frames.is_empty() {
                return Ok(None);
            }
            return model
                .decode_prepared(&self.frames.prepared, frames, *seed)
                .map(Some);
        }
        let want = if self.chunks == 0 {
            self.options.first_chunk_frames
        } else {
            self.options.chunk_frames
        };
        let mut pending = Vec::with_capacity(want);
        while pending.len() < want {
            match self.frames.next_frame()? {
                Some(f) => pending.push(f),
                None => break,
            }
        }
        if pending.is_empty() {
            return Ok(None);
        }
        self.chunks += 1;
        match &mut self.decoder {
            ChunkDecoder::Incremental(d) => Ok(Some(d.push(&Codes::from_frames(&pending)?)?)),
            ChunkDecoder::Whole { .. } => Err(Error::Model(
                "internal: the 25 Hz stream decodes in one chunk".into(),
            )),
        }
    }

    /// Frames generated so far.
    pub fn frames(&self) -> &[Vec<u32>] {
        self.frames.frames_so_far()
    }

    /// True when generation stopped at the frame limit.
    pub fn truncated(&self) -> bool {
        self.frames.truncated()
    }

    pub fn warnings(&self) -> &[String] {
        self.frames.warnings()
    }
}

impl Iterator for AudioStream<'_> {
    type Item = Result<Vec<f32>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_chunk().transpose()
    }
}
