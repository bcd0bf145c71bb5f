//! `config.json` and `generation_config.json` of Qwen3-TTS checkpoints (tts.md §2, §5.1).
//!
//! The class defaults of the reference are not a usable model (codec ids beyond the vocabulary,
//! no speakers), so every id comes from the file; nothing here falls back to a released value.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Deserializer};

use qwen3_speech_engine::config::read_json;
use qwen3_speech_engine::transformer::Qwen3Config;
use qwen3_speech_engine::{Error, Result};

/// Top level (`model_type: "qwen3_tts"`).
#[derive(Debug, Clone, Deserialize)]
pub struct TtsConfig {
    pub talker_config: TalkerConfig,
    /// `"custom_voice"`, `"voice_design"` or `"base"`.
    #[serde(default)]
    pub tts_model_type: Option<String>,
    /// `"1b7"` or `"0b6"`; the 0.6B CustomVoice model ignores instructions.
    #[serde(default)]
    pub tts_model_size: Option<String>,
    /// `"qwen3_tts_tokenizer_12hz"` (informational: the codec reads its own config).
    #[serde(default)]
    pub tokenizer_type: Option<String>,
    #[serde(default = "default_tts_pad")]
    pub tts_pad_token_id: u32,
    #[serde(default = "default_tts_bos")]
    pub tts_bos_token_id: u32,
    #[serde(default = "default_tts_eos")]
    pub tts_eos_token_id: u32,
    /// Base checkpoints only.
    #[serde(default)]
    pub speaker_encoder_config: Option<serde_json::Value>,
}

fn default_tts_pad() -> u32 {
    151671
}
fn default_tts_bos() -> u32 {
    151672
}
fn default_tts_eos() -> u32 {
    151673
}

/// `talker_config`: the Qwen3 decoder of code 0 plus the dual-track vocabulary.
#[derive(Debug, Clone, Deserialize)]
pub struct TalkerConfig {
    /// The transformer shape (`hidden_size`, layers, heads, `head_dim`, RoPE, ...); `vocab_size`
    /// is the codec vocabulary (audio codes + control ids).
    #[serde(flatten)]
    pub decoder: Qwen3Config,
    pub text_vocab_size: usize,
    #[serde(default = "default_text_hidden")]
    pub text_hidden_size: usize,
    /// Codes per frame: 16 in the released 12 Hz models; 1 for a single-codebook (25 Hz)
    /// talker, which has no code predictor.
    pub num_code_groups: usize,
    /// The code predictor of codes 1..G-1. Required when `num_code_groups >= 2`; with one
    /// group it is not used: absent, or present with `num_code_groups: 1` and ignored (as are
    /// any `talker.code_predictor.*` weights); one that says another count is an error.
    #[serde(default)]
    pub code_predictor_config: Option<CodePredictorConfig>,
    pub codec_eos_token_id: u32,
    pub codec_think_id: u32,
    pub codec_nothink_id: u32,
    pub codec_think_bos_id: u32,
    pub codec_think_eos_id: u32,
    pub codec_pad_id: u32,
    pub codec_bos_id: u32,
    #[serde(default)]
    pub codec_language_id: BTreeMap<String, u32>,
    /// Named speakers (CustomVoice). Released files write an id either as a number or as a
    /// one-element list.
    #[serde(default, deserialize_with = "speaker_ids")]
    pub spk_id: BTreeMap<String, u32>,
    /// Speaker -> dialect language key, for speakers that speak a dialect (`false` otherwise).
    #[serde(default, deserialize_with = "dialects")]
    pub spk_is_dialect: BTreeMap<String, Option<String>>,
}

impl TalkerConfig {
    /// The code predictor's config when the talker uses one (`num_code_groups >= 2`).
    pub fn code_predictor(&self) -> Option<&CodePredictorConfig> {
        if self.num_code_groups >= 2 {
            self.code_predictor_config.as_ref()
        } else {
            None
        }
    }
}

fn default_text_hidden() -> usize {
    2048
}

/// `talker_config.code_predictor_config`: the 5-layer decoder of codes 1..G-1.
#[derive(Debug, Clone, Deserialize)]
pub struct CodePredictorConfig {
    #[serde(flatten)]
    pub decoder: Qwen3Config,
    pub num_code_groups: usize,
}

fn speaker_ids<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<BTreeMap<String, u32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        One(u32),
        List(Vec<u32>),
    }
    let raw: Option<BTreeMap<String, Id>> = Option::deserialize(d)?;
    let mut out = BTreeMap::new();
    for (name, id) in raw.unwrap_or_default() {
        let id = match id {
            Id::One(i) => i,
            Id::List(v) if v.len() == 1 => v[0],
            Id::List(v) => {
                return Err(serde::de::Error::custom(format!(
                    "spk_id[{name:?}] must be one id, got {v:?}"
                )));
            }
        };
        out.insert(name.to_lowercase(), id);
    }
    Ok(out)
}

fn dialects<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<BTreeMap<String, Option<String>>, D::Error> {
    let raw: Option<BTreeMap<String, serde_json::Value>> = Option::deserialize(d)?;
    Ok(raw
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| {
            let dialect = match v {
                serde_json::Value::String(s) if !s.is_empty() => Some(s),
                _ => None,
            };
            (k.to_lowercase(), dialect)
        })
        .collect())
}

/// Which of the three products a checkpoint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtsModelType {
    /// Named speakers (and instructions on the 1.7B model).
    CustomVoice,
    /// A voice described in words.
    VoiceDesign,
    /// Voice cloning from a reference clip.
    Base,
}

impl TtsModelType {
    pub fn as_str(self) -> &'static str {
        match self {
            TtsModelType::CustomVoice => "custom_voice",
            TtsModelType::VoiceDesign => "voice_design",
            TtsModelType::Base => "base",
        }
    }
}

impl TtsConfig {
    pub fn from_file(path: &Path) -> Result<Self> {
        let cfg: TtsConfig = read_json(path)?;
        cfg.validate().map_err(|message| Error::Config {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(cfg)
    }

    pub fn model_type(&self) -> std::result::Result<TtsModelType, String> {
        match self.tts_model_type.as_deref() {
            Some("custom_voice") => Ok(TtsModelType::CustomVoice),
            Some("voice_design") => Ok(TtsModelType::VoiceDesign),
            Some("base") => Ok(TtsModelType::Base),
            Some(other) => Err(format!("unknown tts_model_type {other:?}")),
            None => Err("tts_model_type is missing".into()),
        }
    }

    /// The 0.6B CustomVoice model drops instructions (the reference discards them silently; we
    /// warn).
    pub fn honours_instruct(&self) -> bool {
        !(self.model_type() == Ok(TtsModelType::CustomVoice)
            && self.tts_model_size.as_deref() == Some("0b6"))
    }

    fn validate(&self) -> std::result::Result<(), String> {
        self.model_type()?;
        let t = &self.talker_config;
        let v = t.decoder.vocab_size as u32;
        let ids = [
            ("codec_eos_token_id", t.codec_eos_token_id),
            ("codec_think_id", t.codec_think_id),
            ("codec_nothink_id", t.codec_nothink_id),
            ("codec_think_bos_id", t.codec_think_bos_id),
            ("codec_think_eos_id", t.codec_think_eos_id),
            ("codec_pad_id", t.codec_pad_id),
            ("codec_bos_id", t.codec_bos_id),
        ];
        for (name, id) in ids {
            if id >= v {
                return Err(format!(
                    "talker_config.{name} = {id} is outside the codec vocabulary ({v})"
                ));
            }
        }
        for (name, id) in t.codec_language_id.iter().chain(t.spk_id.iter()) {
            if *id >= v {
                return Err(format!(
                    "id {id} of {name:?} is outside the codec vocabulary ({v})"
                ));
            }
        }
        for (spk, dialect) in &t.spk_is_dialect {
            if let Some(d) = dialect
                && !t.codec_language_id.contains_key(d)
            {
                return Err(format!(
                    "speaker {spk:?} speaks dialect {d:?}, which codec_language_id lacks"
                ));
            }
        }
        if t.num_code_groups == 0 {
            return Err("talker_config.num_code_groups = 0 (at least 1 codebook is needed)".into());
        }
        // A predictor config that contradicts the group count is an error even where it is
        // not used (one group: present and consistent, it is ignored).
        if let Some(cp) = &t.code_predictor_config
            && cp.num_code_groups != t.num_code_groups
        {
            return Err(format!(
                "code_predictor_config.num_code_groups {} differs from talker_config.num_code_groups {}",
                cp.num_code_groups, t.num_code_groups
            ));
        }
        if let Some(cp) = t.code_predictor() {
            cp.decoder.validate().map_err(|e| e.to_string())?;
        } else if t.num_code_groups >= 2 {
            return Err(format!(
                "talker_config.num_code_groups = {} needs a code_predictor_config (codes 1..{})",
                t.num_code_groups,
                t.num_code_groups - 1
            ));
        }
        let audio = self.codebook_size();
        if audio == 0 || audio as u32 > t.codec_eos_token_id {
            return Err(format!(
                "codec vocabulary {v} leaves no audio codes below the control ids"
            ));
        }
        if t.text_vocab_size as u32
            <= self
                .tts_eos_token_id
                .max(self.tts_bos_token_id)
                .max(self.tts_pad_token_id)
        {
            return Err(format!(
                "tts special ids are outside the text vocabulary ({})",
                t.text_vocab_size
            ));
        }
        t.decoder.validate().map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Audio codes per codebook (2048 in the releases): the code predictor's vocabulary; for a
    /// single-codebook talker the ids code 0 may take below the control block, i.e. the codec
    /// vocabulary minus its top 1024 ids (the same split as [`TtsConfig::suppressed_ids`]).
    pub fn codebook_size(&self) -> usize {
        let t = &self.talker_config;
        match t.code_predictor() {
            Some(cp) => cp.decoder.vocab_size,
            None => t.decoder.vocab_size.saturating_sub(1024),
        }
    }

    /// The ids code 0 may never take: the top 1024 ids of the codec vocabulary except EOS
    /// (tts.md §5.1: `[V-1024, V)` minus EOS, whatever the codebook size).
    pub fn suppressed_ids(&self) -> Vec<u32> {
        let t = &self.talker_config;
        let v = t.decoder.vocab_size as u32;
        (v.saturating_sub(1024)..v)
            .filter(|&i| i != t.codec_eos_token_id)
            .collect()
    }

    /// Languages a user may ask for: `auto` plus every language key that is not a dialect.
    pub fn supported_languages(&self) -> Vec<String> {
        let mut out = vec!["auto".to_owned()];
        out.extend(
            self.talker_config
                .codec_language_id
                .keys()
                .filter(|k| !k.to_lowercase().contains("dialect"))
                .cloned(),
        );
        out
    }

    /// Named speakers, lower-case, sorted.
    pub fn speakers(&self) -> Vec<String> {
        self.talker_config.spk_id.keys().cloned().collect()
    }
}

/// `generation_config.json` (tts.md §5.1): per-call value -> this file -> the wrapper's defaults.
#[derive(Debug, Clone, Deserialize)]
pub struct TtsGenerationConfig {
    #[serde(default = "yes")]
    pub do_sample: bool,
    #[serde(default = "default_temperature")]
    pub temperature: f32,
    #[serde(default = "default_top_k")]
    pub top_k: usize,
    #[serde(default = "default_top_p")]
    pub top_p: f32,
    #[serde(default = "default_repetition_penalty")]
    pub repetition_penalty: f32,
    #[serde(default = "yes")]
    pub subtalker_dosample: bool,
    #[serde(default = "default_temperature")]
    pub subtalker_temperature: f32,
    #[serde(default = "default_top_k")]
    pub subtalker_top_k: usize,
    #[serde(default = "default_top_p")]
    pub subtalker_top_p: f32,
    /// Talker steps (code-0 samples); at most `max_new_tokens - 1` frames come out.
    #[serde(default = "default_max_new_tokens")]
    pub max_new_tokens: usize,
}

fn yes() -> bool {
    true
}
fn default_temperature() -> f32 {
    0.9
}
fn default_top_k() -> usize {
    50
}
fn default_top_p() -> f32 {
    1.0
}
fn default_repetition_penalty() -> f32 {
    1.05
}
fn default_max_new_tokens() -> usize {
    2048
}

impl Default for TtsGenerationConfig {
    fn default() -> Self {
        serde_json::from_str("{}").expect("all fields have defaults")
    }
}

impl TtsGenerationConfig {
    /// Reads `dir/generation_config.json`, or the wrapper's defaults when the file is absent.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("generation_config.json");
        if path.is_file() {
            read_json(&path)
        } else {
            Ok(Self::default())
        }
    }
}
