//! The thinker: audio encoder + Qwen3 text decoder + output head, with the audio embeddings
//! spliced into the prompt at the `<|audio_pad|>` positions.

use candle_core::{DType, Tensor};

use qwen3_speech_engine::nn::{Embedding, Linear};
use qwen3_speech_engine::transformer::{KvCache, Positions, Qwen3Decoder};
use qwen3_speech_engine::weights::Weights;
use qwen3_speech_engine::{Error, Result};

use super::config::ThinkerConfig;
use super::encoder::{AudioEncoder, EncoderAttention};

/// The thinker of Qwen3-ASR (vocabulary head) or Qwen3-ForcedAligner (timestamp classifier).
#[derive(Debug, Clone)]
pub struct Thinker {
    audio_tower: AudioEncoder,
    embed_tokens: Embedding,
    decoder: Qwen3Decoder,
    head: Linear,
    audio_token_id: u32,
    cfg: ThinkerConfig,
    device: candle_core::Device,
}

impl Thinker {
    /// Loads `thinker.*` from the checkpoint root view.
    pub fn load(root: &Weights, cfg: &ThinkerConfig) -> Result<Self> {
        let w = root.pp("thinker");
        let text = &cfg.text_config;
        let audio_tower = AudioEncoder::load(&w.pp("audio_tower"), &cfg.audio_config)?;
        if cfg.audio_config.output_dim != text.hidden_size {
            return Err(Error::Model(format!(
                "audio encoder output_dim {} differs from the decoder hidden size {}",
                cfg.audio_config.output_dim, text.hidden_size
            )));
        }
        let embed_tokens = Embedding::load(
            &w.pp("model.embed_tokens"),
            text.vocab_size,
            text.hidden_size,
        )?;
        let decoder = Qwen3Decoder::load(&w.pp("model"), text)?;
        let head = if cfg.is_forced_aligner() {
            let classes = cfg.classify_num.ok_or_else(|| {
                Error::Model("forced aligner config lacks thinker_config.classify_num".into())
            })?;
            Linear::load(&w.pp("lm_head"), text.hidden_size, classes, false)?
        } else if text.tie_word_embeddings {
            // As transformers: a tied head *is* the embedding matrix; a stored lm_head is ignored.
            embed_tokens.as_linear()?
        } else {
            Linear::load(&w.pp("lm_head"), text.hidden_size, text.vocab_size, false)?
        };
        Ok(Thinker {
            audio_tower,
            embed_tokens,
            decoder,
            head,
            audio_token_id: cfg.audio_token_id,
            cfg: cfg.clone(),
            device: root.device().clone(),
        })
    }

    pub fn config(&self) -> &ThinkerConfig {
        &self.cfg
    }

    pub fn audio_encoder(&self) -> &AudioEncoder {
        &self.audio_tower
    }

    pub fn decoder(&self) -> &Qwen3Decoder {
        &self.decoder
    }

    pub fn audio_token_id(&self) -> u32 {
        self.audio_token_id
    }

    pub fn dtype(&self) -> DType {
        self.embed_tokens.dtype()
    }

    /// Encodes one clip's log-mel `(n_mels, T)` into `(N, hidden)` embeddings.
    pub fn encode_audio(&self, mel: &Tensor, mode: EncoderAttention) -> Result<Tensor> {
        let mel = mel.to_dtype(self.dtype())?;
        self.audio_tower.forward(&mel, mode)
    }

    /// Token embeddings of `ids` (`[batch][len]`), with the rows at `<|audio_pad|>` positions
    /// replaced, in order, by the rows of `audio` (all clips of the batch concatenated in
    /// batch order), like the reference's `masked_scatter`.
    pub fn embed_prompt(&self, ids: &[Vec<u32>], audio: Option<&Tensor>) -> Result<Tensor> {
        let batch = ids.len();
        let len = ids.first().map_or(0, |r| r.len());
        if batch == 0 || len == 0 || ids.iter().any(|r| r.len() != len) {
            return Err(Error::InvalidArgument(
                "prompt rows must be non-empty and of equal length".into(),
            ));
        }
        let device = &self.device;
        let flat: Vec<u32> = ids.concat();
        let ids_t = Tensor::new(flat.as_slice(), device)?;
        let embeds = self.embed_tokens.forward(&ids_t)?;
        let n_pads = flat.iter().filter(|&&t| t == self.audio_token_id).count();
        let n_audio = audio.map_or(Ok(0), |a| a.dim(0))?;
        if n_pads != n_audio {
            return Err(Error::InvalidArgument(format!(
                "the prompt holds {n_pads} audio placeholders but the audio gives {n_audio} embeddings"
            )));
        }
        let merged = match audio {
            Some(a) if n_audio > 0 => {
                let table = Tensor::cat(&[&embeds, &a.to_dtype(embeds.dtype())?], 0)?;
                let mut k = 0u32;
                let base = flat.len() as u32;
                let index: Vec<u32> = flat
                    .iter()
                    .enumerate()
                    .map(|(i, &t)| {
                        if t == self.audio_token_id {
                            k += 1;
                            base + k - 1
                        } else {
                            i as u32
                        }
                    })
                    .collect();
                table.index_select(&Tensor::new(index.as_slice(), device)?, 0)?
            }
            _ => embeds,
        };
        Ok(merged.reshape((batch, len, ()))?)
    }

    /// Embeddings of plain token ids `[batch][len]` (decode steps).
    pub fn embed_tokens(&self, ids: &[Vec<u32>]) -> Result<Tensor> {
        self.embed_prompt(ids, None)
    }

    /// Runs the decoder; returns final-normed hidden states `[b, len, hidden]`.
    pub fn decode(
        &self,
        embeds: &Tensor,
        positions: &Positions,
        key_valid: Option<&[Vec<bool>]>,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        self.decoder.forward(embeds, positions, key_valid, cache)
    }

    /// Head logits (f32) for hidden states `[..., hidden]`.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        Ok(self.head.forward(hidden)?.to_dtype(DType::F32)?)
    }

    /// Bytes of weights one decode step reads: every decoder projection and the output head,
    /// in the format they are stored in (bf16 checkpoints stay bf16 on the CPU).
    pub fn decode_weight_bytes(&self) -> usize {
        self.decoder.weight_bytes() + self.head.weight_bytes()
    }

    pub fn new_cache(&self) -> KvCache {
        self.decoder.new_cache()
    }
}
