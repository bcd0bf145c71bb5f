//! Speech synthesis: [`Synthesizer`].

use std::sync::Arc;

use qwen3_speech as q;

use crate::error::Result;
use crate::{CancelToken, LoadProgressListener, load, local_dir, to_usize};

/// How the text is given to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, uniffi::Enum)]
pub enum TextMode {
    /// The reference's default for the model (whole text; streamed for voice clones).
    #[default]
    Auto,
    /// The whole text in the prompt.
    Whole,
    /// One text token per generated frame.
    Streaming,
}

/// The audio of a voice to clone.
#[derive(Debug, Clone, PartialEq, uniffi::Enum)]
pub enum ReferenceAudio {
    /// An audio file (any supported format).
    File { path: String },
    /// Mono float PCM at any sample rate.
    Pcm { samples: Vec<f32>, sample_rate: u32 },
}

/// A voice to clone (Base checkpoints).
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct VoiceReference {
    pub audio: ReferenceAudio,
    /// Transcript of the clip (in-context cloning); `null` clones from the speaker embedding.
    #[uniffi(default = None)]
    pub text: Option<String>,
    /// Clone from the speaker embedding only, even with a transcript.
    #[uniffi(default = false)]
    pub x_vector_only: bool,
}

/// One thing to say.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct SpeakRequest {
    pub text: String,
    /// A language of the model or "auto" (`null`).
    #[uniffi(default = None)]
    pub language: Option<String>,
    /// A named speaker (CustomVoice models; see [`Synthesizer::speakers`]).
    #[uniffi(default = None)]
    pub speaker: Option<String>,
    /// Style instruction (CustomVoice 1.7B) or voice description (VoiceDesign).
    #[uniffi(default = None)]
    pub instruct: Option<String>,
    /// Voice to clone (Base models).
    #[uniffi(default = None)]
    pub reference: Option<VoiceReference>,
    #[uniffi(default = None)]
    pub text_mode: Option<TextMode>,
}

impl SpeakRequest {
    fn to_facade(&self) -> Result<q::SpeakRequest> {
        let reference = match &self.reference {
            None => None,
            Some(r) => {
                let samples_24k = match &r.audio {
                    ReferenceAudio::File { path } => {
                        q::Synthesizer::load_reference(q::AudioInput::Path(path.as_ref()))?
                    }
                    ReferenceAudio::Pcm {
                        samples,
                        sample_rate,
                    } => q::Synthesizer::load_reference(q::AudioInput::Samples {
                        samples,
                        sample_rate: *sample_rate,
                    })?,
                };
                Some(q::VoiceReference {
                    samples_24k,
                    text: r.text.clone(),
                    x_vector_only: r.x_vector_only,
                })
            }
        };
        let mut req = q::SpeakRequest::new(self.text.clone());
        req.language = self.language.clone();
        req.speaker = self.speaker.clone();
        req.instruct = self.instruct.clone();
        req.reference = reference;
        req.text_input = match self.text_mode.unwrap_or_default() {
            TextMode::Auto => None,
            TextMode::Whole => Some(q::TextInput::Whole),
            TextMode::Streaming => Some(q::TextInput::Streaming),
        };
        Ok(req)
    }
}

/// Sampling settings of one synthesis; `null` fields take the model's
/// generation_config.json value.
#[derive(Debug, Clone, Default, PartialEq, uniffi::Record)]
pub struct SynthesisOptions {
    /// The same seed (and settings) gives the same audio.
    #[uniffi(default = 0)]
    pub seed: u64,
    /// Always take the most likely code (deterministic, no sampling).
    #[uniffi(default = false)]
    pub greedy: bool,
    #[uniffi(default = None)]
    pub temperature: Option<f32>,
    #[uniffi(default = None)]
    pub top_k: Option<u32>,
    #[uniffi(default = None)]
    pub top_p: Option<f32>,
    #[uniffi(default = None)]
    pub repetition_penalty: Option<f32>,
    /// Generation steps (80 ms of audio each); `null`: the model's limit.
    #[uniffi(default = None)]
    pub max_frames: Option<u32>,
}

impl From<&SynthesisOptions> for q::SynthesisOptions {
    fn from(o: &SynthesisOptions) -> Self {
        q::SynthesisOptions {
            seed: o.seed,
            greedy: o.greedy,
            temperature: o.temperature,
            top_k: to_usize(o.top_k),
            top_p: o.top_p,
            repetition_penalty: o.repetition_penalty,
            max_frames: to_usize(o.max_frames),
        }
    }
}

/// The result of [`Synthesizer::speak`].
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Synthesis {
    /// Mono float PCM (`[-1, 1]`).
    pub samples: Vec<f32>,
    pub sample_rate: u32,
    /// The generated codec frames (one per 80 ms), each with one code per codebook.
    pub frames: Vec<Vec<u32>>,
    /// True when generation stopped at the frame limit rather than at the end of speech.
    pub truncated: bool,
    pub warnings: Vec<String>,
}

/// How [`Synthesizer::speak_stream`] cuts the audio into chunks.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct StreamChunking {
    /// Frames (80 ms each) before the first chunk: lower gives earlier audio.
    #[uniffi(default = 2)]
    pub first_chunk_frames: u32,
    /// Frames per later chunk.
    #[uniffi(default = 4)]
    pub chunk_frames: u32,
}

/// A piece of streamed speech.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct AudioChunk {
    /// Index of the chunk, from 0.
    pub index: u32,
    /// Mono float PCM; the chunks of a synthesis concatenated are its audio.
    pub samples: Vec<f32>,
    pub sample_rate: u32,
}

/// Receives streamed speech on the thread that called [`Synthesizer::speak_stream`].
#[uniffi::export(with_foreign)]
pub trait SpeechListener: Send + Sync {
    /// A chunk is ready (write it to an `AudioTrack`, an `AVAudioPlayerNode`...). Return
    /// `false` to stop the synthesis after this chunk.
    fn on_chunk(&self, chunk: AudioChunk) -> bool;
}

/// What a streamed synthesis produced.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct SpeechStreamSummary {
    pub chunks: u32,
    pub samples: u64,
    pub frames: u32,
    /// True when generation stopped at the frame limit.
    pub truncated: bool,
    /// True when the listener asked to stop.
    pub stopped: bool,
    pub warnings: Vec<String>,
}

/// A loaded Qwen3-TTS model (CustomVoice, VoiceDesign or Base). Calls may run concurrently
/// from several threads.
#[derive(Debug, uniffi::Object)]
pub struct Synthesizer {
    inner: q::Synthesizer,
}

#[uniffi::export]
impl Synthesizer {
    /// Loads the model in folder `model_dir` (with its `speech_tokenizer/` subfolder, as
    /// released). `listener` receives the load progress; `cancel` stops the load.
    #[uniffi::constructor(default(listener = None, cancel = None))]
    pub fn new(
        model_dir: String,
        listener: Option<Arc<dyn LoadProgressListener>>,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<Arc<Self>> {
        let dir = local_dir(&model_dir, "model")?;
        let config = q::SynthesizerConfig {
            device: q::DeviceSpec::Cpu,
            dtype: Some(q::ComputeDType::F32),
            fetch: crate::offline_fetch(),
        };
        let inner = load(listener, cancel.as_ref(), || {
            q::Synthesizer::from_dir(dir, config)
        })?;
        Ok(Arc::new(Synthesizer { inner }))
    }

    /// Synthesizes `request` and returns all of its audio.
    #[uniffi::method(default(cancel = None))]
    pub fn speak(
        &self,
        request: SpeakRequest,
        options: SynthesisOptions,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<Synthesis> {
        let req = request.to_facade()?;
        let opts = (&options).into();
        let s = crate::with_cancel(cancel.as_ref(), || self.inner.speak(&req, &opts))?;
        Ok(Synthesis {
            samples: s.audio.samples,
            sample_rate: s.audio.sample_rate,
            frames: s.frames,
            truncated: s.truncated,
            warnings: s.warnings,
        })
    }

    /// Synthesizes `request`, handing the audio to `listener` chunk by chunk while it is
    /// generated (the first chunk after `chunking.first_chunk_frames` frames). Returns when
    /// the synthesis ends, the listener returns `false`, or `cancel` fires
    /// (`SpeechException.Cancelled`).
    #[uniffi::method(default(cancel = None))]
    pub fn speak_stream(
        &self,
        request: SpeakRequest,
        options: SynthesisOptions,
        chunking: StreamChunking,
        listener: Arc<dyn SpeechListener>,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<SpeechStreamSummary> {
        let req = request.to_facade()?;
        let opts = (&options).into();
        let chunking = q::SpeechStreamOptions {
            first_chunk_frames: chunking.first_chunk_frames as usize,
            chunk_frames: chunking.chunk_frames as usize,
        };
        crate::with_cancel(cancel.as_ref(), || {
            let mut stream = self.inner.speak_stream(&req, &opts, &chunking)?;
            let mut summary = SpeechStreamSummary {
                chunks: 0,
                samples: 0,
                frames: 0,
                truncated: false,
                stopped: false,
                warnings: stream.warnings().to_vec(),
            };
            while let Some(samples) = stream.next_chunk()? {
                summary.samples += samples.len() as u64;
                let go_on = listener.on_chunk(AudioChunk {
                    index: summary.chunks,
                    samples,
                    sample_rate: stream.sample_rate(),
                });
                summary.chunks += 1;
                if !go_on {
                    summary.stopped = true;
                    break;
                }
            }
            summary.frames = stream.frames().len() as u32;
            summary.truncated = !summary.stopped && stream.truncated();
            Ok(summary)
        })
    }

    /// Output sample rate (24 kHz for the released models).
    pub fn sample_rate(&self) -> u32 {
        self.inner.sample_rate()
    }

    /// Named speakers (lower-case); empty unless CustomVoice.
    pub fn speakers(&self) -> Vec<String> {
        self.inner.speakers()
    }

    /// "auto" and the languages the model accepts.
    pub fn languages(&self) -> Vec<String> {
        self.inner.languages()
    }

    /// "custom_voice", "voice_design" or "base".
    pub fn model_type(&self) -> String {
        self.inner.model_type().as_str().to_string()
    }

    pub fn model_dir(&self) -> String {
        self.inner.model_dir().path().display().to_string()
    }
}
