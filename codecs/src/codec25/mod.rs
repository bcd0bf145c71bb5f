//! The Qwen3-TTS 25 Hz speech tokenizer (`qwen3_tts_tokenizer_25hz`, Qwen3TTSTokenizerV1).
//! Its weights are not released; everything is built from `config.json` (codecs.md §3).
//!
//! * [`Codec25::encode`]: 16 kHz mono audio → [`Encoded25`]: one code per 40 ms (Whisper-style
//!   encoder + VQ, [`encoder`]), the CAM++ x-vector (`campplus.onnx`, run by the built-in ONNX
//!   interpreter [`onnx`]) and the 80-bin reference mel ([`xvector`]).
//! * [`Codec25::decode`]: codes + x-vector + reference mel → mel by flow matching ([`dit`]) →
//!   waveform ([`bigvgan`]). The initial noise is an input ([`Codec25::decode_with_noise`]);
//!   [`Codec25::decode`] draws it with a torch-compatible seeded generator ([`rng`]).

pub mod bigvgan;
pub mod config;
pub mod dit;
pub mod encoder;
pub mod onnx;
pub mod ops;
pub mod rng;
pub mod xvector;

use std::path::Path;

use candle_core::{DType, Device, Tensor};

use qwen3_speech_engine::hub::ModelDir;
use qwen3_speech_engine::weights::Weights;
use qwen3_speech_engine::{Error, Result};

pub use bigvgan::BigVgan;
pub use config::{Codec25Config, MODEL_TYPE};
pub use dit::Dit;
pub use encoder::Encoder;
pub use xvector::XVectorExtractor;

/// The solver settings of the reference's `decode` (10 time points, CFG 0.5, sway −1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlowOptions {
    pub num_steps: usize,
    pub guidance_scale: f32,
    pub sway_coefficient: Option<f32>,
}

impl Default for FlowOptions {
    fn default() -> Self {
        FlowOptions {
            num_steps: 10,
            guidance_scale: 0.5,
            sway_coefficient: Some(-1.0),
        }
    }
}

/// The speaker side of an encoding (the reference's `xvectors` and `ref_mels` items).
#[derive(Debug, Clone, PartialEq)]
pub struct SpeakerConditioning {
    /// L2-normalised speaker embedding.
    pub xvector: Vec<f32>,
    /// Reference mel, `ref_mel_frames × mel_dim` row-major (natural-log amplitude).
    pub ref_mel: Vec<f32>,
    pub ref_mel_frames: usize,
}

/// What [`Codec25::encode`] returns for one utterance; decode needs all of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded25 {
    pub codes: Vec<u32>,
    pub speaker: SpeakerConditioning,
}

/// A loaded 25 Hz speech tokenizer.
#[derive(Debug, Clone)]
pub struct Codec25 {
    config: Codec25Config,
    encoder: Encoder,
    dit: Dit,
    bigvgan: BigVgan,
    xvector: Option<XVectorExtractor>,
    device: Device,
}

impl Codec25 {
    /// Loads a tokenizer folder: `config.json`, `model.safetensors` and (for encoding)
    /// `campplus.onnx`. Without `campplus.onnx` the codec decodes but cannot encode.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let dir = ModelDir::open(dir)?;
        let config = Codec25Config::from_file(&dir.file("config.json")?)?;
        let weights = Weights::from_safetensors(&dir.weight_files()?, device, DType::F32)?;
        let mut codec = Self::from_weights(config, &weights)?;
        if let Some(p) = dir.optional_file("campplus.onnx") {
            codec.xvector = Some(XVectorExtractor::load(&p, device)?);
        }
        Ok(codec)
    }

    /// Builds the codec from a parsed config and its weights (`encoder.*`, `decoder.*`).
    pub fn from_weights(config: Codec25Config, weights: &Weights) -> Result<Self> {
        let encoder = Encoder::load(&weights.pp("encoder.tokenizer"), &config.encoder_config)?;
        let dit = Dit::load(
            &weights.pp("decoder.dit"),
            &config.decoder_config.dit_config,
        )?;
        let bigvgan = BigVgan::load(
            &weights.pp("decoder.bigvgan"),
            &config.decoder_config.bigvgan_config,
        )?;
        Ok(Codec25 {
            config,
            encoder,
            dit,
            bigvgan,
            xvector: None,
            device: weights.device().clone(),
        })
    }

    pub fn config(&self) -> &Codec25Config {
        &self.config
    }
    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }
    pub fn dit(&self) -> &Dit {
        &self.dit
    }
    pub fn bigvgan(&self) -> &BigVgan {
        &self.bigvgan
    }
    pub fn xvector_extractor(&self) -> Option<&XVectorExtractor> {
        self.xvector.as_ref()
    }
    pub fn device(&self) -> &Device {
        &self.device
    }
    pub fn model_type(&self) -> &'static str {
        MODEL_TYPE
    }
    /// Rate of the audio [`Codec25::encode`] takes (16000).
    pub fn sample_rate(&self) -> u32 {
        self.config.input_sample_rate
    }
    /// Rate of the audio [`Codec25::decode`] returns.
    pub fn output_sample_rate(&self) -> u32 {
        self.config.output_sample_rate
    }
    /// Input samples per code.
    pub fn samples_per_code(&self) -> usize {
        self.config.samples_per_code()
    }
    /// Codes per second of input audio.
    pub fn frame_rate(&self) -> f64 {
        f64::from(self.sample_rate()) / self.samples_per_code() as f64
    }
    /// Output samples kept per code (`decode_upsample_rate`).
    pub fn decode_upsample_rate(&self) -> usize {
        self.config.decode_upsample_rate
    }

    /// Codes only (no x-vector model needed).
    pub fn encode_codes(&self, samples: &[f32]) -> Result<Vec<u32>> {
        self.encoder.encode(samples)
    }

    /// Codes, x-vector and reference mel of 16 kHz mono audio.
    pub fn encode(&self, samples: &[f32]) -> Result<Encoded25> {
        let xv = self.xvector.as_ref().ok_or_else(|| {
            Error::Model(
                "this 25 Hz tokenizer folder has no campplus.onnx: it can decode but not encode"
                    .into(),
            )
        })?;
        let codes = self.encoder.encode(samples)?;
        let (xvector, ref_mel, ref_mel_frames) = xv.extract(samples)?;
        Ok(Encoded25 {
            codes,
            speaker: SpeakerConditioning {
                xvector,
                ref_mel,
                ref_mel_frames,
            },
        })
    }

    /// Mel frames the decoder generates for `codes` codes.
    pub fn mel_frames(&self, codes: usize) -> usize {
        codes * self.config.decoder_config.dit_config.repeats
    }

    /// Decodes with noise from the torch-compatible generator seeded with `seed` (the
    /// reference draws `torch.randn` from the global CPU generator).
    pub fn decode(&self, enc: &Encoded25, seed: u64) -> Result<Vec<f32>> {
        let mel_dim = self.config.decoder_config.dit_config.mel_dim;
        let noise = rng::torch_randn(seed, self.mel_frames(enc.codes.len()) * mel_dim);
        self.decode_with_noise(enc, &noise, FlowOptions::default())
    }

    /// Decodes with the given initial noise (`mel_frames × mel_dim` row-major): the waveform,
    /// trimmed to `codes × decode_upsample_rate` samples as the reference does.
    pub fn decode_with_noise(
        &self,
        enc: &Encoded25,
        noise: &[f32],
        opts: FlowOptions,
    ) -> Result<Vec<f32>> {
        let mel = self.generate_mel(enc, noise, opts)?;
        let wav = self.vocode(&mel)?;
        let keep = enc.codes.len() * self.config.decode_upsample_rate;
        Ok(wav.into_iter().take(keep).collect())
    }

    /// The DiT's mel `(mel_dim, frames)` for injected noise.
    pub fn generate_mel(
        &self,
        enc: &Encoded25,
        noise: &[f32],
        opts: FlowOptions,
    ) -> Result<Tensor> {
        let c = &self.config.decoder_config.dit_config;
        let sp = &enc.speaker;
        if sp.xvector.len() != c.enc_emb_dim {
            return Err(Error::InvalidArgument(format!(
                "x-vector has {} values, the decoder takes {}",
                sp.xvector.len(),
                c.enc_emb_dim
            )));
        }
        if sp.ref_mel.len() != sp.ref_mel_frames * c.mel_dim || sp.ref_mel_frames == 0 {
            return Err(Error::InvalidArgument(format!(
                "reference mel has {} values for {} frames of {} bins",
                sp.ref_mel.len(),
                sp.ref_mel_frames,
                c.mel_dim
            )));
        }
        let frames = self.mel_frames(enc.codes.len());
        if noise.len() != frames * c.mel_dim {
            return Err(Error::InvalidArgument(format!(
                "initial noise has {} values, {} codes need {frames} x {}",
                noise.len(),
                enc.codes.len(),
                c.mel_dim
            )));
        }
        let dev = &self.device;
        let xv = Tensor::from_slice(&sp.xvector, c.enc_emb_dim, dev)?;
        let rm = Tensor::from_slice(&sp.ref_mel, (sp.ref_mel_frames, c.mel_dim), dev)?;
        let cond = self.dit.condition(&enc.codes, &xv, &rm)?;
        let x0 = Tensor::from_slice(noise, (frames, c.mel_dim), dev)?;
        let mel = self.dit.sample(
            &x0,
            &cond,
            opts.num_steps,
            opts.guidance_scale,
            opts.sway_coefficient,
        )?;
        Ok(mel.t()?.contiguous()?)
    }

    /// Waveform of a mel `(mel_dim, frames)` (untrimmed: `frames × hop` samples).
    pub fn vocode(&self, mel: &Tensor) -> Result<Vec<f32>> {
        let wav = self.bigvgan.forward(&mel.unsqueeze(0)?)?;
        Ok(wav.squeeze(0)?.to_vec1()?)
    }
}
