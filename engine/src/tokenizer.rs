//! The Qwen2 byte-level BPE tokenizer used by every Qwen3 speech model.
//!
//! Released checkpoints ship `vocab.json` + `merges.txt` + `tokenizer_config.json` (added and
//! special tokens) and usually no `tokenizer.json`. We build exactly the fast tokenizer that
//! transformers derives from those files (NFC normaliser, the Qwen2 split regex, byte-level
//! mapping without prefix space, BPE without unknown token, byte-level decoder, the added tokens
//! at their configured ids) and hand it to the `tokenizers` crate; a `tokenizer.json`, when
//! present, is used as is.
//!
//! About the regex: transformers 4.57.3, asked for `fix_mistral_regex=True` (as the reference
//! wrappers do), swaps in a "Mistral" regex when the model is loaded from a local folder whose
//! config.json names a transformers version in (4.57.2, 5.0). Loading by hub id keeps the Qwen2
//! regex the models were trained with. We default to the Qwen2 regex and offer the other one as
//! [`PreTokenizerRegex::Mistral`] for bit-parity with such runs. The two differ only on text
//! with lower→upper case changes inside a word (camelCase) and combining marks.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::{Error, Result};

/// The pre-tokenizer split regex of Qwen2 models.
pub const QWEN2_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The regex transformers 4.57.3 substitutes when it applies `fix_mistral_regex`.
pub const MISTRAL_REGEX: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Which split regex to build the tokenizer with (only for vocab.json + merges.txt folders).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PreTokenizerRegex {
    #[default]
    Qwen2,
    Mistral,
}

/// One entry of `added_tokens_decoder` in tokenizer_config.json.
#[derive(Debug, Clone, Deserialize)]
struct AddedTokenConfig {
    content: String,
    #[serde(default)]
    lstrip: bool,
    #[serde(default)]
    rstrip: bool,
    #[serde(default)]
    normalized: bool,
    #[serde(default)]
    single_word: bool,
    #[serde(default)]
    special: bool,
}

#[derive(Debug, Clone, Deserialize, Default)]
struct TokenizerConfigFile {
    #[serde(default)]
    added_tokens_decoder: BTreeMap<String, AddedTokenConfig>,
}

/// A loaded tokenizer.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size())
            .finish()
    }
}

fn tok_err(what: impl std::fmt::Display) -> Error {
    Error::Tokenizer(what.to_string())
}

impl Tokenizer {
    /// Loads the tokenizer of a model folder: `tokenizer.json` if present, else
    /// `vocab.json` + `merges.txt` + `tokenizer_config.json`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        Self::from_dir_with(dir, PreTokenizerRegex::default())
    }

    /// Like [`Tokenizer::from_dir`] with a choice of split regex (ignored for tokenizer.json).
    pub fn from_dir_with(dir: &Path, regex: PreTokenizerRegex) -> Result<Self> {
        use crate::progress::{LoadStage, report};
        report(LoadStage::Tokenizer, 0.0, dir.display().to_string());
        let tokenizer = Self::read_dir(dir, regex)?;
        report(LoadStage::Tokenizer, 1.0, dir.display().to_string());
        Ok(tokenizer)
    }

    fn read_dir(dir: &Path, regex: PreTokenizerRegex) -> Result<Self> {
        let tj = dir.join("tokenizer.json");
        if tj.is_file() {
            let inner = tokenizers::Tokenizer::from_file(&tj)
                .map_err(|e| tok_err(format!("{}: {e}", tj.display())))?;
            return Ok(Tokenizer { inner });
        }
        let vocab = dir.join("vocab.json");
        let merges = dir.join("merges.txt");
        for f in [&vocab, &merges] {
            if !f.is_file() {
                return Err(Error::Model(format!(
                    "{} has no tokenizer.json and no {}: not a Qwen model folder?",
                    dir.display(),
                    f.file_name().and_then(|n| n.to_str()).unwrap_or("")
                )));
            }
        }
        let config = dir.join("tokenizer_config.json");
        Self::from_files(
            &vocab,
            &merges,
            config.is_file().then_some(config.as_path()),
            regex,
        )
    }

    /// Builds the tokenizer from its parts.
    pub fn from_files(
        vocab: &Path,
        merges: &Path,
        tokenizer_config: Option<&Path>,
        regex: PreTokenizerRegex,
    ) -> Result<Self> {
        let vocab_text = std::fs::read_to_string(vocab).map_err(|e| Error::io(vocab, e))?;
        let vocab_map: BTreeMap<String, u32> = serde_json::from_str(&vocab_text)
            .map_err(|e| tok_err(format!("{}: {e}", vocab.display())))?;
        let merges_text = std::fs::read_to_string(merges).map_err(|e| Error::io(merges, e))?;
        let merges_list = parse_merges(&merges_text)
            .map_err(|e| tok_err(format!("{}: {e}", merges.display())))?;
        let added = match tokenizer_config {
            Some(p) => {
                let cfg: TokenizerConfigFile = crate::config::read_json(p)?;
                let mut added = Vec::with_capacity(cfg.added_tokens_decoder.len());
                for (id, tok) in cfg.added_tokens_decoder {
                    let id: u32 = id.parse().map_err(|_| {
                        tok_err(format!(
                            "{}: added token id '{id}' is not a number",
                            p.display()
                        ))
                    })?;
                    added.push((id, tok));
                }
                added.sort_by_key(|(id, _)| *id);
                added
            }
            None => Vec::new(),
        };
        Self::build(vocab_map, merges_list, &added, regex)
    }

    fn build(
        mut vocab: BTreeMap<String, u32>,
        merges: Vec<(String, String)>,
        added: &[(u32, AddedTokenConfig)],
        regex: PreTokenizerRegex,
    ) -> Result<Self> {
        // Added tokens keep the ids tokenizer_config.json gives them: put them in the model's
        // vocabulary so the tokenizers crate reuses those ids instead of appending new ones.
        for (id, tok) in added {
            if let Some(&existing) = vocab.get(&tok.content)
                && existing != *id
            {
                return Err(tok_err(format!(
                    "added token '{}' has id {id} but vocab.json gives it {existing}",
                    tok.content
                )));
            }
            vocab.insert(tok.content.clone(), *id);
        }
        let pattern = match regex {
            PreTokenizerRegex::Qwen2 => QWEN2_REGEX,
            PreTokenizerRegex::Mistral => MISTRAL_REGEX,
        };
        let added_json: Vec<Value> = added
            .iter()
            .map(|(id, t)| {
                json!({
                    "id": id, "content": t.content, "single_word": t.single_word,
                    "lstrip": t.lstrip, "rstrip": t.rstrip, "normalized": t.normalized,
                    "special": t.special,
                })
            })
            .collect();
        let merges_json: Vec<Value> = merges.into_iter().map(|(a, b)| json!([a, b])).collect();
        let spec = json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added_json,
            "normalizer": {"type": "NFC"},
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": false},
                {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}
            ]},
            "post_processor": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
            "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
            "model": {
                "type": "BPE", "dropout": null, "unk_token": null,
                "continuing_subword_prefix": null, "end_of_word_suffix": null,
                "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                "vocab": vocab, "merges": merges_json
            }
        });
        let inner: tokenizers::Tokenizer = spec
            .to_string()
            .parse()
            .map_err(|e| tok_err(format!("cannot build the BPE tokenizer: {e}")))?;
        let tokenizer = Tokenizer { inner };
        for (id, tok) in added {
            if tokenizer.token_to_id(&tok.content) != Some(*id) {
                return Err(tok_err(format!(
                    "added token '{}' did not get its configured id {id}",
                    tok.content
                )));
            }
        }
        Ok(tokenizer)
    }

    /// Encodes text; special-token strings in it (e.g. `<|im_start|>`) become their ids, as in
    /// the reference.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| tok_err(format!("cannot encode text: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Decodes ids; invalid UTF-8 byte sequences become U+FFFD. `skip_special` drops tokens
    /// marked special (not `<asr_text>`, which is an ordinary added token).
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special)
            .map_err(|e| tok_err(format!("cannot decode ids: {e}")))
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The id of a token the model relies on, or an error naming it.
    pub fn require_token(&self, token: &str) -> Result<u32> {
        self.token_to_id(token)
            .ok_or_else(|| tok_err(format!("the tokenizer has no token '{token}'")))
    }

    /// Size of the vocabulary including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}

fn parse_merges(text: &str) -> std::result::Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with("#version") || line.is_empty() {
            continue;
        }
        let mut parts = line.split(' ');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(a), Some(b), None) => out.push((a.to_string(), b.to_string())),
            _ => return Err(format!("line {}: expected two tokens, got '{line}'", n + 1)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy byte-level vocabulary: the printable ASCII bytes, a few merges, two added tokens.
    fn toy(dir: &Path) {
        let mut vocab = BTreeMap::new();
        // GPT-2 byte-level alphabet for printable ASCII is the identity; space is 'Ġ'.
        for (i, c) in ('!'..='~').enumerate() {
            vocab.insert(c.to_string(), i as u32);
        }
        let n = vocab.len() as u32;
        vocab.insert("Ġ".into(), n);
        vocab.insert("he".into(), n + 1);
        vocab.insert("ll".into(), n + 2);
        vocab.insert("hell".into(), n + 3);
        vocab.insert("Ġw".into(), n + 4);
        std::fs::write(
            dir.join("vocab.json"),
            serde_json::to_string(&vocab).unwrap(),
        )
        .unwrap();
        std::fs::write(
            dir.join("merges.txt"),
            "#version: 0.2\nh e\nl l\nhe ll\nĠ w\n",
        )
        .unwrap();
        let cfg = json!({"added_tokens_decoder": {
            (n + 5).to_string(): {"content": "<|im_end|>", "special": true},
            (n + 6).to_string(): {"content": "<asr_text>", "special": false},
        }});
        std::fs::write(dir.join("tokenizer_config.json"), cfg.to_string()).unwrap();
    }

    #[test]
    fn builds_from_vocab_merges_and_config() {
        let dir = std::env::temp_dir().join(format!("q3s-tok-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        toy(&dir);
        let t = Tokenizer::from_dir(&dir).unwrap();
        let n = 94;
        let ids = t.encode("hello world<asr_text>hi<|im_end|>").unwrap();
        assert_eq!(ids[0], n + 3); // "hell"
        assert!(ids.contains(&(n + 4))); // "Ġw"
        assert!(ids.contains(&(n + 6)) && ids.ends_with(&[n + 5]));
        assert_eq!(
            t.decode(&ids, false).unwrap(),
            "hello world<asr_text>hi<|im_end|>"
        );
        assert_eq!(t.decode(&ids, true).unwrap(), "hello world<asr_text>hi");
        assert_eq!(t.require_token("<|im_end|>").unwrap(), n + 5);
        assert!(t.require_token("<|audio_pad|>").is_err());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn missing_files_and_bad_merges_are_errors() {
        let dir = std::env::temp_dir().join(format!("q3s-tok-missing-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let err = Tokenizer::from_dir(&dir).unwrap_err().to_string();
        assert!(err.contains("vocab.json"), "{err}");
        assert!(parse_merges("a b c\n").is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}
