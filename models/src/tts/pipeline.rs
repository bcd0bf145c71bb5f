//! A loaded Qwen3-TTS checkpoint and the user-level synthesis request: validation of language,
//! speaker, instruction and voice-clone inputs as the reference's wrapper does (tts.md §7.1),
//! prompt building, the frame loop and the speech-tokenizer decode.

use candle_core::{DType, Device, Tensor};

use qwen3_speech_codecs::{Codes, SpeakerConditioning, SpeechTokenizer};
use qwen3_speech_engine::audio::resample;
use qwen3_speech_engine::hub::ModelDir;
use qwen3_speech_engine::tokenizer::Tokenizer;
use qwen3_speech_engine::weights::Weights;
use qwen3_speech_engine::{Error, Result};

use super::config::{TtsConfig, TtsGenerationConfig, TtsModelType};
use super::generate::{FrameSampling, FrameSession, FrameStop};
use super::prompt::{
    IclReference, PromptSpec, SpeakerSlot, TalkerPrompt, assistant_text, build_prompt,
    instruct_text, reference_text,
};
use super::speaker_encoder::{SpeakerEncoder, SpeakerEncoderConfig};
use super::talker::Talker;

/// How the text reaches the talker (the reference's `non_streaming_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextInput {
    /// The whole text in the prompt (`non_streaming_mode=True`).
    Whole,
    /// One text token per generated frame (`non_streaming_mode=False`).
    Streaming,
}

/// Rate of [`VoiceReference::samples_24k`] and [`SpeakRequest::codec_speaker`].
pub const REFERENCE_RATE: u32 = 24_000;

/// A reference voice for cloning (Base checkpoints).
#[derive(Debug, Clone)]
pub struct VoiceReference {
    /// Mono samples at 24 kHz.
    pub samples_24k: Vec<f32>,
    /// Transcript of the clip: in-context cloning. `None` (or `x_vector_only`) clones from the
    /// speaker embedding alone.
    pub text: Option<String>,
    pub x_vector_only: bool,
}

/// One thing to say.
#[derive(Debug, Clone)]
pub struct SpeakRequest {
    pub text: String,
    /// A language of the checkpoint or "auto" (default).
    pub language: Option<String>,
    /// A named speaker (CustomVoice).
    pub speaker: Option<String>,
    /// Style instruction (CustomVoice 1.7B) or voice description (VoiceDesign).
    pub instruct: Option<String>,
    /// Voice to clone (Base).
    pub reference: Option<VoiceReference>,
    /// `None`: the reference's default for the product (whole text, streaming for clones).
    pub text_input: Option<TextInput>,
    /// Mono 24 kHz audio of the voice the 25 Hz speech tokenizer's decoder renders (it decodes
    /// with the x-vector and reference mel of a recording). Needed by single-codebook (25 Hz)
    /// checkpoints when the request has no reference clip (named speakers, voice design);
    /// for a voice clone it replaces the clip in that role. Unused by the 12 Hz tokenizer.
    pub codec_speaker: Option<Vec<f32>>,
}

impl SpeakRequest {
    pub fn new(text: impl Into<String>) -> Self {
        SpeakRequest {
            text: text.into(),
            language: None,
            speaker: None,
            instruct: None,
            reference: None,
            text_input: None,
            codec_speaker: None,
        }
    }
}

/// Longest text accepted, in tokens (each text token costs at least one 80 ms frame of
/// context; beyond this the talker's position range and memory become the limit).
pub const MAX_TEXT_TOKENS: usize = 4096;

/// A loaded checkpoint.
pub struct TtsModel {
    config: TtsConfig,
    generation: TtsGenerationConfig,
    tokenizer: Tokenizer,
    talker: Talker,
    speaker_encoder: Option<SpeakerEncoder>,
    speech_tokenizer: SpeechTokenizer,
    device: Device,
}

/// A request turned into model inputs, plus what the caller should know about it.
pub struct PreparedRequest {
    pub prompt: TalkerPrompt,
    /// Reference frames decoded before the generated ones (ICL); their audio is cut off.
    pub reference_codes: Option<Vec<Vec<u32>>>,
    /// What the 25 Hz decoder renders the voice from (x-vector and reference mel); `None`
    /// with the 12 Hz tokenizer.
    pub codec_speaker: Option<SpeakerConditioning>,
    pub warnings: Vec<String>,
}

impl TtsModel {
    pub fn load(dir: &ModelDir, device: &Device, dtype: DType) -> Result<Self> {
        let config = TtsConfig::from_file(&dir.file("config.json")?)?;
        let generation = TtsGenerationConfig::from_dir(dir.path())?;
        let tokenizer = Tokenizer::from_dir(dir.path())?;
        let weights = Weights::from_safetensors(&dir.weight_files()?, device, dtype)?;
        let talker = Talker::load(&weights, &config.talker_config)?;
        let model_type = config.model_type().map_err(Error::Model)?;
        let speaker_encoder = if model_type == TtsModelType::Base {
            let cfg: SpeakerEncoderConfig = match &config.speaker_encoder_config {
                Some(v) => serde_json::from_value(v.clone()).map_err(|e| Error::Config {
                    path: dir.path().join("config.json"),
                    message: format!("speaker_encoder_config: {e}"),
                })?,
                None => SpeakerEncoderConfig::default(),
            };
            if cfg.enc_dim != talker.hidden_size() {
                return Err(Error::Model(format!(
                    "speaker encoder enc_dim {} differs from the talker width {}",
                    cfg.enc_dim,
                    talker.hidden_size()
                )));
            }
            // The speaker encoder runs in f32 whatever the talker's dtype (its input mel is
            // cast to the model dtype in the reference; f32 is the exact side of that).
            Some(SpeakerEncoder::load(
                &weights.pp("speaker_encoder").with_dtype(DType::F32),
                &cfg,
            )?)
        } else {
            None
        };
        let speech_tokenizer =
            SpeechTokenizer::load(dir.subdir("speech_tokenizer")?.path(), device)?;
        check_tokenizer(&config, &speech_tokenizer)?;
        Ok(TtsModel {
            config,
            generation,
            tokenizer,
            talker,
            speaker_encoder,
            speech_tokenizer,
            device: device.clone(),
        })
    }

    pub fn config(&self) -> &TtsConfig {
        &self.config
    }

    pub fn generation_config(&self) -> &TtsGenerationConfig {
        &self.generation
    }

    pub fn model_type(&self) -> TtsModelType {
        self.config
            .model_type()
            .expect("validated when the config was read")
    }

    pub fn talker(&self) -> &Talker {
        &self.talker
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn speech_tokenizer(&self) -> &SpeechTokenizer {
        &self.speech_tokenizer
    }

    pub fn speaker_encoder(&self) -> Option<&SpeakerEncoder> {
        self.speaker_encoder.as_ref()
    }

    /// Rate of the synthesized audio.
    pub fn sample_rate(&self) -> u32 {
        self.speech_tokenizer.output_sample_rate()
    }

    /// Audio samples per frame.
    pub fn samples_per_frame(&self) -> usize {
        self.speech_tokenizer.samples_per_frame()
    }

    /// Resolves the language: `None`/"auto" -> no language id; else a supported key.
    fn language_id(&self, language: Option<&str>, speaker: Option<&str>) -> Result<Option<u32>> {
        let t = &self.config.talker_config;
        let lang = language.unwrap_or("auto").trim().to_lowercase();
        let supported = self.config.supported_languages();
        if !supported.contains(&lang) {
            return Err(Error::InvalidArgument(format!(
                "unsupported language {:?}; this model supports: {}",
                language.unwrap_or(""),
                supported.join(", ")
            )));
        }
        let mut id = if lang == "auto" {
            None
        } else {
            Some(t.codec_language_id[&lang])
        };
        // A dialect speaker speaking Chinese (or "auto") uses its dialect (tts.md §4.2).
        if (lang == "chinese" || lang == "auto")
            && let Some(spk) = speaker
            && let Some(Some(dialect)) = t.spk_is_dialect.get(&spk.to_lowercase())
        {
            id = Some(t.codec_language_id[dialect]);
        }
        Ok(id)
    }

    /// Audio at [`REFERENCE_RATE`] resampled to the speech tokenizer's input rate.
    fn tokenizer_input(&self, samples_24k: &[f32]) -> Result<Vec<f32>> {
        let rate = self.speech_tokenizer.sample_rate();
        if rate == REFERENCE_RATE {
            Ok(samples_24k.to_vec())
        } else {
            resample(samples_24k, REFERENCE_RATE, rate)
        }
    }

    /// The x-vector and reference mel of a 24 kHz recording (25 Hz tokenizer only).
    fn codec_speaker_of(&self, samples_24k: &[f32]) -> Result<SpeakerConditioning> {
        let codec = self.speech_tokenizer.as_codec25().ok_or_else(|| {
            Error::Model("only the 25 Hz speech tokenizer decodes with a speaker recording".into())
        })?;
        let extractor = codec.xvector_extractor().ok_or_else(|| {
            Error::Model(
                "the 25 Hz speech tokenizer folder has no campplus.onnx, so it cannot take the \
                 voice of a recording"
                    .into(),
            )
        })?;
        let (xvector, ref_mel, ref_mel_frames) =
            extractor.extract(&self.tokenizer_input(samples_24k)?)?;
        Ok(SpeakerConditioning {
            xvector,
            ref_mel,
            ref_mel_frames,
        })
    }

    /// Validates a request and builds its prompt.
    pub fn prepare(&self, req: &SpeakRequest) -> Result<PreparedRequest> {
        let kind = self.model_type();
        let mut warnings = Vec::new();
        if req.text.trim().is_empty() {
            return Err(Error::InvalidArgument("text is empty".into()));
        }
        // The 25 Hz decoder renders a recorded voice: fail before any model work when the
        // request has none.
        let needs_codec_speaker = self.speech_tokenizer.needs_speaker();
        if needs_codec_speaker && req.codec_speaker.is_none() && req.reference.is_none() {
            return Err(Error::InvalidArgument(format!(
                "this checkpoint's speech tokenizer ({}) decodes codes with the voice of a \
                 recording (x-vector and reference mel), and a {} request has no reference clip: \
                 give a recording of the voice as `codec_speaker` (speak CLI: --codec-speaker FILE)",
                self.speech_tokenizer.model_type(),
                kind.as_str()
            )));
        }
        if !needs_codec_speaker && req.codec_speaker.is_some() {
            warnings.push(
                "codec_speaker is only used by the 25 Hz speech tokenizer; it was ignored".into(),
            );
        }
        let text_ids = self.tokenizer.encode(&assistant_text(&req.text))?;
        if text_ids.len() > MAX_TEXT_TOKENS {
            return Err(Error::InvalidArgument(format!(
                "text is too long: {} tokens (at most {MAX_TEXT_TOKENS}); split it into several requests",
                text_ids.len()
            )));
        }
        let speaker = req
            .speaker
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let instruct = req
            .instruct
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let mut slot = SpeakerSlot::None;
        let mut icl = None;
        let mut reference_codes = None;
        let mut codec_speaker = None;
        match kind {
            TtsModelType::CustomVoice => {
                if let Some(s) = speaker {
                    let id = self
                        .config
                        .talker_config
                        .spk_id
                        .get(&s.to_lowercase())
                        .ok_or_else(|| {
                            Error::InvalidArgument(format!(
                                "unknown speaker {s:?}; this model has: {}",
                                self.config.speakers().join(", ")
                            ))
                        })?;
                    slot = SpeakerSlot::Id(*id);
                }
                if req.reference.is_some() {
                    return Err(
                        self.unsupported("voice cloning from a reference clip (use a Base model)")
                    );
                }
            }
            TtsModelType::VoiceDesign => {
                if speaker.is_some() {
                    return Err(self.unsupported(
                        "named speakers (describe the voice with an instruction instead)",
                    ));
                }
                if req.reference.is_some() {
                    return Err(
                        self.unsupported("voice cloning from a reference clip (use a Base model)")
                    );
                }
                if instruct.is_none() {
                    // The reference accepts this (no instruction block); say what happens.
                    warnings.push(
                        "no voice description (instruct) was given: the model picks a voice".into(),
                    );
                }
            }
            TtsModelType::Base => {
                if speaker.is_some() {
                    return Err(self.unsupported(
                        "named speakers (clone a voice from a reference clip instead)",
                    ));
                }
                if instruct.is_some() {
                    return Err(self.unsupported("instructions"));
                }
                let r = req.reference.as_ref().ok_or_else(|| {
                    Error::InvalidArgument(
                        "a Base model clones a voice: give a reference clip (ref_audio)".into(),
                    )
                })?;
                let encoder = self.speaker_encoder.as_ref().ok_or_else(|| {
                    Error::Model("this Base checkpoint has no speaker encoder".into())
                })?;
                let xvec = encoder.embed(&r.samples_24k)?;
                slot =
                    SpeakerSlot::Vector(Tensor::from_vec(xvec.clone(), xvec.len(), &self.device)?);
                let ref_text = r.text.as_deref().map(str::trim).filter(|t| !t.is_empty());
                if !r.x_vector_only {
                    let ref_text = ref_text.ok_or_else(|| {
                        Error::InvalidArgument(
                            "in-context cloning needs the reference clip's transcript (ref_text); \
                             or clone from the speaker embedding only (x_vector_only)"
                                .into(),
                        )
                    })?;
                    // 12 Hz: (M, 16) codes of the 24 kHz clip; 25 Hz: (M, 1) codes of the clip
                    // at 16 kHz, plus the speaker conditioning of its decoder.
                    let (codes, speaker) = self
                        .speech_tokenizer
                        .encode_with_speaker(&self.tokenizer_input(&r.samples_24k)?)?;
                    if req.codec_speaker.is_none() {
                        codec_speaker = speaker;
                    }
                    let codes: Vec<Vec<u32>> = codes.iter_frames().map(<[u32]>::to_vec).collect();
                    if codes.is_empty() {
                        return Err(Error::Audio(
                            "the reference clip is too short to encode".into(),
                        ));
                    }
                    icl = Some(IclReference {
                        ref_ids: self.tokenizer.encode(&reference_text(ref_text))?,
                        ref_codes: codes.clone(),
                    });
                    reference_codes = Some(codes);
                }
            }
        }
        if needs_codec_speaker && codec_speaker.is_none() {
            let audio = req
                .codec_speaker
                .as_deref()
                .or(req.reference.as_ref().map(|r| r.samples_24k.as_slice()))
                .ok_or_else(|| {
                    Error::InvalidArgument("no recording for the 25 Hz decoder".into())
                })?;
            if audio.is_empty() {
                return Err(Error::InvalidArgument(
                    "the recording for the 25 Hz decoder (codec_speaker) is empty".into(),
                ));
            }
            codec_speaker = Some(self.codec_speaker_of(audio)?);
        }
        let instruct_ids = match instruct {
            Some(i) if kind != TtsModelType::Base => {
                if self.config.honours_instruct() {
                    Some(self.tokenizer.encode(&instruct_text(i))?)
                } else {
                    warnings.push(
                        "this model size ignores instructions (as the reference does); the instruction was dropped"
                            .into(),
                    );
                    None
                }
            }
            _ => None,
        };
        let language_id = self.language_id(req.language.as_deref(), speaker)?;
        let whole_text = match req.text_input {
            Some(TextInput::Whole) => true,
            Some(TextInput::Streaming) => false,
            // The reference wrapper's defaults: whole text, except for voice clones.
            None => kind != TtsModelType::Base,
        };
        let spec = PromptSpec {
            text_ids,
            instruct_ids,
            language_id,
            speaker: slot,
            icl,
            whole_text,
        };
        Ok(PreparedRequest {
            prompt: build_prompt(&self.talker, &self.config, &spec)?,
            reference_codes,
            codec_speaker,
            warnings,
        })
    }

    fn unsupported(&self, what: &str) -> Error {
        Error::InvalidArgument(format!(
            "this checkpoint ({}) does not support {what}",
            self.model_type().as_str()
        ))
    }

    /// Default sampling from generation_config.json with a seed.
    pub fn default_sampling(&self, seed: u64) -> FrameSampling {
        FrameSampling::from_generation_config(&self.generation, seed)
    }

    /// Starts generating frames for prepared requests (a left-padded batch).
    pub fn start<'a>(
        &'a self,
        prepared: &[&PreparedRequest],
        sampling: &FrameSampling,
    ) -> Result<FrameSession<'a>> {
        let prompts: Vec<TalkerPrompt> = prepared.iter().map(|p| p.prompt.clone()).collect();
        FrameSession::new(&self.talker, &self.config, &prompts, sampling)
    }

    /// Decodes generated frames to audio; for in-context clones the reference frames are
    /// decoded first and their share of the audio cut off, as the reference does. The 25 Hz
    /// tokenizer needs [`TtsModel::decode_prepared`] (its decoder takes the voice of a
    /// recording).
    pub fn decode(&self, frames: &[Vec<u32>], reference: Option<&[Vec<u32>]>) -> Result<Vec<f32>> {
        self.decode_with_speaker(frames, reference, None, 0)
    }

    /// [`TtsModel::decode`] of a prepared request's frames: its reference frames and, for
    /// the 25 Hz tokenizer, its speaker conditioning; `seed` draws the 25 Hz decoder's
    /// flow-matching noise (the 12 Hz decoder is deterministic).
    pub fn decode_prepared(
        &self,
        prepared: &PreparedRequest,
        frames: &[Vec<u32>],
        seed: u64,
    ) -> Result<Vec<f32>> {
        self.decode_with_speaker(
            frames,
            prepared.reference_codes.as_deref(),
            prepared.codec_speaker.as_ref(),
            seed,
        )
    }

    fn decode_with_speaker(
        &self,
        frames: &[Vec<u32>],
        reference: Option<&[Vec<u32>]>,
        speaker: Option<&SpeakerConditioning>,
        seed: u64,
    ) -> Result<Vec<f32>> {
        if frames.is_empty() {
            return Ok(Vec::new());
        }
        let tok = &self.speech_tokenizer;
        match reference {
            None => tok.decode_with_speaker(&Codes::from_frames(frames)?, speaker, seed),
            Some(r) => {
                let mut all = r.to_vec();
                all.extend_from_slice(frames);
                let wav = tok.decode_with_speaker(&Codes::from_frames(&all)?, speaker, seed)?;
                Ok(wav[icl_cut(r.len(), all.len(), wav.len())..].to_vec())
            }
        }
    }

    /// One request, start to end.
    pub fn speak(&self, req: &SpeakRequest, sampling: &FrameSampling) -> Result<Speech> {
        let prepared = self.prepare(req)?;
        let session = self.start(&[&prepared], sampling)?;
        let (frames, stop) = session
            .run_to_end()?
            .pop()
            .expect("one request gives one result");
        let samples = self.decode_prepared(&prepared, &frames, sampling.talker.seed)?;
        let mut warnings = prepared.warnings;
        if stop == FrameStop::MaxFrames {
            warnings.push(format!(
                "stopped at the frame limit ({} frames) before the model ended the speech; raise max frames",
                frames.len()
            ));
        }
        Ok(Speech {
            samples,
            sample_rate: self.sample_rate(),
            frames,
            stop,
            warnings,
        })
    }
}

/// The speech tokenizer must decode what the talker emits: as many codebooks per frame, and
/// every code the talker can produce.
fn check_tokenizer(config: &TtsConfig, tok: &SpeechTokenizer) -> Result<()> {
    let groups = config.talker_config.num_code_groups;
    if tok.num_quantizers() != groups {
        return Err(Error::Model(format!(
            "the speech tokenizer ({}) takes {} codebook(s) per frame, the talker emits {groups}; \
             a {groups}-codebook talker needs {}",
            tok.model_type(),
            tok.num_quantizers(),
            if groups == 1 {
                "the single-codebook 25 Hz tokenizer (qwen3_tts_tokenizer_25hz)".to_owned()
            } else {
                format!("a tokenizer with {groups} quantizers (the 12 Hz tokenizer has 16)")
            }
        )));
    }
    let talker_codes = config.codebook_size();
    if talker_codes > tok.codebook_size() {
        return Err(Error::Model(format!(
            "the talker emits codes below {talker_codes}, the speech tokenizer ({}) has {} per codebook",
            tok.model_type(),
            tok.codebook_size()
        )));
    }
    Ok(())
}

/// Samples to cut from the front of an ICL decode: `floor(M / (M+T) * n)` evaluated in double
/// precision in that order, as the reference (tts.md §5.4).
pub fn icl_cut(reference_frames: usize, total_frames: usize, samples: usize) -> usize {
    let cut = (reference_frames as f64 / total_frames.max(1) as f64 * samples as f64) as usize;
    cut.min(samples)
}

/// Synthesized speech.
#[derive(Debug, Clone)]
pub struct Speech {
    pub samples: Vec<f32>,
    pub sample_rate: u32,
    /// The generated codec frames.
    pub frames: Vec<Vec<u32>>,
    pub stop: FrameStop,
    pub warnings: Vec<String>,
}
