use serde::Deserialize;

use crate::{Error, Result};

/// The text-decoder part of a Qwen3-family `config.json` (the ASR `thinker_config.text_config`,
/// the TTS `talker_config`, ...). Field names mirror the released files; unknown keys are ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct Qwen3Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Explicit head size; Qwen3 sets it independently of `hidden_size / num_attention_heads`.
    #[serde(default)]
    pub head_dim: Option<usize>,
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    #[serde(default = "default_rms_norm_eps")]
    pub rms_norm_eps: f64,
    #[serde(default)]
    pub max_position_embeddings: Option<usize>,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default = "default_hidden_act")]
    pub hidden_act: String,
    #[serde(default)]
    pub rope_scaling: Option<RopeScaling>,
}

fn default_rope_theta() -> f64 {
    10_000.0
}
fn default_rms_norm_eps() -> f64 {
    1e-6
}
fn default_hidden_act() -> String {
    "silu".into()
}

/// `rope_scaling` as released: `{"rope_type": "default", "mrope_section": [24, 20, 20],
/// "interleaved": true, ...}`. With the identical temporal/height/width positions these models
/// always use, multimodal RoPE reduces exactly to 1-D rotate-half RoPE, so only the type matters.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct RopeScaling {
    #[serde(default)]
    pub rope_type: Option<String>,
    /// Older spelling of `rope_type`; released files carry both.
    #[serde(default, rename = "type")]
    pub legacy_type: Option<String>,
    #[serde(default)]
    pub mrope_section: Option<Vec<usize>>,
    #[serde(default)]
    pub interleaved: Option<bool>,
    #[serde(default)]
    pub mrope_interleaved: Option<bool>,
}

impl Qwen3Config {
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    pub fn num_kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Checks the values the decoder relies on; errors say which field is wrong.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Model(format!("invalid decoder config: {m}")));
        if self.num_attention_heads == 0 || self.num_kv_heads() == 0 {
            return bad("num_attention_heads and num_key_value_heads must be positive".into());
        }
        if !self.num_attention_heads.is_multiple_of(self.num_kv_heads()) {
            return bad(format!(
                "num_attention_heads ({}) is not a multiple of num_key_value_heads ({})",
                self.num_attention_heads,
                self.num_kv_heads()
            ));
        }
        if self.head_dim() == 0 || !self.head_dim().is_multiple_of(2) {
            return bad(format!("head_dim {} must be even", self.head_dim()));
        }
        if self.hidden_act != "silu" {
            return bad(format!(
                "hidden_act '{}' is not supported (silu)",
                self.hidden_act
            ));
        }
        if let Some(rs) = &self.rope_scaling {
            match rs.rope_type.as_deref().or(rs.legacy_type.as_deref()) {
                None | Some("default") | Some("mrope") => {}
                Some(other) => {
                    return bad(format!("rope_scaling type '{other}' is not supported"));
                }
            }
            // `mrope_section` is not checked against head_dim: the three position streams are
            // always identical, so any split selects the same angles (the reference runs the
            // tiny TTS checkpoints whose sections do not cover their head size).
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_released_text_config() {
        let json = r#"{
            "vocab_size": 151936, "hidden_size": 1024, "intermediate_size": 3072,
            "num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 8,
            "head_dim": 128, "rope_theta": 1000000, "rms_norm_eps": 1e-06,
            "max_position_embeddings": 65536, "tie_word_embeddings": true,
            "rope_scaling": {"rope_type": "default", "type": "default", "mrope_section": [24, 20, 20],
                             "interleaved": true, "mrope_interleaved": true},
            "attention_bias": false, "hidden_act": "silu", "use_cache": true,
            "model_type": "qwen3_asr_text"
        }"#;
        let c: Qwen3Config = serde_json::from_str(json).unwrap();
        c.validate().unwrap();
        assert_eq!(c.head_dim(), 128);
        assert_eq!(c.num_kv_heads(), 8);
        assert!(c.tie_word_embeddings);
        assert_eq!(c.rope_theta, 1e6);

        let mut bad = c.clone();
        bad.num_key_value_heads = Some(5);
        assert!(bad.validate().unwrap_err().to_string().contains("multiple"));
        let mut bad = c.clone();
        bad.rope_scaling.as_mut().unwrap().rope_type = Some("yarn".into());
        assert!(bad.validate().is_err());
    }
}
