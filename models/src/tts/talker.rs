//! The talker (code 0 of every frame) and the code predictor (codes 1..G-1), tts.md §1.
//!
//! Both are plain Qwen3 decoders from the engine. What is particular to TTS lives here: the
//! dual-track input (a text vector and a codec vector summed at every position), the codec head,
//! the code predictor's per-step embedding/head pairs, and the frame feedback (the sum of a
//! frame's G code embeddings).
//!
//! G = 1 (a single-codebook talker for the 25 Hz tokenizer) runs through the same code: there is
//! no code predictor, a frame is code 0 alone and its feedback is `C(code0)`.

use candle_core::{D, DType, Device, IndexOp, Tensor};

use qwen3_speech_engine::nn::{Embedding, Linear, silu};
use qwen3_speech_engine::transformer::{KvCache, Positions, Qwen3Decoder};
use qwen3_speech_engine::weights::Weights;
use qwen3_speech_engine::{Error, Result};

use super::config::TalkerConfig;

/// `text_projection`: Linear (with bias) -> SiLU -> Linear (with bias), from the text width to
/// the talker width.
#[derive(Debug, Clone)]
struct TextProjection {
    fc1: Linear,
    fc2: Linear,
}

impl TextProjection {
    fn load(w: &Weights, text_hidden: usize, hidden: usize) -> Result<Self> {
        Ok(TextProjection {
            fc1: Linear::load(&w.pp("linear_fc1"), text_hidden, text_hidden, true)?,
            fc2: Linear::load(&w.pp("linear_fc2"), text_hidden, hidden, true)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&silu(&self.fc1.forward(x)?)?)
    }
}

/// The talker LM with its embeddings and heads (`talker.*`).
#[derive(Debug, Clone)]
pub struct Talker {
    text_embedding: Embedding,
    text_projection: TextProjection,
    codec_embedding: Embedding,
    decoder: Qwen3Decoder,
    codec_head: Linear,
    /// Codes 1..G-1; `None` for a single-codebook talker (G = 1).
    code_predictor: Option<CodePredictor>,
    cfg: TalkerConfig,
    device: Device,
    dtype: DType,
}

impl Talker {
    /// Loads `talker.*` from the checkpoint root view. A single-codebook talker loads no
    /// `talker.code_predictor.*` weights (any present are ignored).
    pub fn load(root: &Weights, cfg: &TalkerConfig) -> Result<Self> {
        let w = root.pp("talker");
        let hidden = cfg.decoder.hidden_size;
        let text_embedding = Embedding::load(
            &w.pp("model.text_embedding"),
            cfg.text_vocab_size,
            cfg.text_hidden_size,
        )?;
        let text_projection =
            TextProjection::load(&w.pp("text_projection"), cfg.text_hidden_size, hidden)?;
        let codec_embedding = Embedding::load(
            &w.pp("model.codec_embedding"),
            cfg.decoder.vocab_size,
            hidden,
        )?;
        let decoder = Qwen3Decoder::load(&w.pp("model"), &cfg.decoder)?;
        let codec_head = Linear::load(&w.pp("codec_head"), hidden, cfg.decoder.vocab_size, false)?;
        let code_predictor = match cfg.code_predictor() {
            Some(_) => Some(CodePredictor::load(&w.pp("code_predictor"), cfg)?),
            None => None,
        };
        Ok(Talker {
            text_embedding,
            text_projection,
            codec_embedding,
            decoder,
            codec_head,
            code_predictor,
            cfg: cfg.clone(),
            device: root.device().clone(),
            dtype: root.dtype(),
        })
    }

    pub fn config(&self) -> &TalkerConfig {
        &self.cfg
    }

    pub fn hidden_size(&self) -> usize {
        self.cfg.decoder.hidden_size
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn decoder(&self) -> &Qwen3Decoder {
        &self.decoder
    }

    /// The code predictor; `None` for a single-codebook talker.
    pub fn code_predictor(&self) -> Option<&CodePredictor> {
        self.code_predictor.as_ref()
    }

    /// Codes per frame (G).
    pub fn num_code_groups(&self) -> usize {
        self.cfg.num_code_groups
    }

    /// Codes 1..G-1 of a batch of frames whose code 0 is `code0` (one per row of `hidden`,
    /// the final-normed states that produced them); see [`CodePredictor::predict`]. With one
    /// codebook every row gets no further codes and `pick` is never called.
    pub fn predict_rest(
        &self,
        hidden: &Tensor,
        code0: &[u32],
        pick: impl FnMut(usize, usize, &mut [f32]) -> Result<u32>,
    ) -> Result<Vec<Vec<u32>>> {
        match &self.code_predictor {
            Some(cp) => cp.predict(hidden, &self.codec(code0)?, pick),
            None => Ok(vec![Vec::new(); code0.len()]),
        }
    }

    pub fn new_cache(&self) -> KvCache {
        self.decoder.new_cache()
    }

    /// Text-track vectors `T(id)` = text_projection(text_embedding(id)), `[ids.len(), hidden]`.
    pub fn text(&self, ids: &[u32]) -> Result<Tensor> {
        if ids.is_empty() {
            return Ok(Tensor::zeros(
                (0, self.hidden_size()),
                self.dtype,
                &self.device,
            )?);
        }
        let idx = Tensor::new(ids, &self.device)?;
        self.text_projection
            .forward(&self.text_embedding.forward(&idx)?)
    }

    /// Codec-track vectors `C(id)` (rows of the talker's codec embedding), `[ids.len(), hidden]`.
    pub fn codec(&self, ids: &[u32]) -> Result<Tensor> {
        if ids.is_empty() {
            return Ok(Tensor::zeros(
                (0, self.hidden_size()),
                self.dtype,
                &self.device,
            )?);
        }
        self.codec_embedding
            .forward(&Tensor::new(ids, &self.device)?)
    }

    /// The feedback vector of whole frames: `C(code0) + sum_g A_{g-1}(code_g)`, `[frames, hidden]`.
    pub fn frame_embeddings(&self, frames: &[Vec<u32>]) -> Result<Tensor> {
        let groups = self.cfg.num_code_groups;
        if let Some(bad) = frames.iter().find(|f| f.len() != groups) {
            return Err(Error::InvalidArgument(format!(
                "a frame has {} codes, the model uses {groups}",
                bad.len()
            )));
        }
        let code0: Vec<u32> = frames.iter().map(|f| f[0]).collect();
        let mut sum = self.codec(&code0)?;
        if let Some(cp) = &self.code_predictor {
            for g in 1..groups {
                let ids: Vec<u32> = frames.iter().map(|f| f[g]).collect();
                sum = (sum + cp.embed(g - 1, &ids)?)?;
            }
        }
        Ok(sum)
    }

    /// Runs the decoder over `embeds` `[b, len, hidden]`; returns final-normed hidden states.
    pub fn forward(
        &self,
        embeds: &Tensor,
        positions: &Positions,
        key_valid: Option<&[Vec<bool>]>,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        self.decoder.forward(embeds, positions, key_valid, cache)
    }

    /// Code-0 logits `[.., codec vocab]` in f32 from final-normed hidden states.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        Ok(self.codec_head.forward(hidden)?.to_dtype(DType::F32)?)
    }

    /// Bytes of weights one talker step reads (layers + codec head).
    pub fn step_weight_bytes(&self) -> usize {
        self.decoder.weight_bytes() + self.codec_head.weight_bytes()
    }
}

/// The code predictor (`talker.code_predictor.*`): per frame, a fresh 2-token prefill
/// `[h, C(code0)]` then one step per further code; head j predicts code j+1 and embedding
/// table j embeds code j+1 (tts.md §1.4).
#[derive(Debug, Clone)]
pub struct CodePredictor {
    /// `small_to_mtp_projection`, absent when the widths agree (0.6B models).
    projection: Option<Linear>,
    decoder: Qwen3Decoder,
    embeddings: Vec<Embedding>,
    heads: Vec<Linear>,
    device: Device,
    dtype: DType,
}

impl CodePredictor {
    fn load(w: &Weights, talker: &TalkerConfig) -> Result<Self> {
        let cfg = &talker
            .code_predictor()
            .ok_or_else(|| Error::Model("the talker config has no code predictor".into()))?
            .decoder;
        let groups = talker.num_code_groups;
        let hidden = cfg.hidden_size;
        let talker_hidden = talker.decoder.hidden_size;
        let projection = if hidden != talker_hidden {
            Some(Linear::load(
                &w.pp("small_to_mtp_projection"),
                talker_hidden,
                hidden,
                true,
            )?)
        } else {
            None
        };
        let decoder = Qwen3Decoder::load(&w.pp("model"), cfg)?;
        let embeddings = (0..groups - 1)
            .map(|g| {
                Embedding::load(
                    &w.pp("model.codec_embedding").pp(g),
                    cfg.vocab_size,
                    talker_hidden,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let heads = (0..groups - 1)
            .map(|g| Linear::load(&w.pp("lm_head").pp(g), hidden, cfg.vocab_size, false))
            .collect::<Result<Vec<_>>>()?;
        Ok(CodePredictor {
            projection,
            decoder,
            embeddings,
            heads,
            device: w.device().clone(),
            dtype: w.dtype(),
        })
    }

    /// The decoder stack (5 layers in the released models).
    pub fn decoder(&self) -> &Qwen3Decoder {
        &self.decoder
    }

    /// Codes predicted per frame (G-1).
    pub fn num_codes(&self) -> usize {
        self.heads.len()
    }

    /// Codebook size.
    pub fn codebook_size(&self) -> usize {
        self.heads.first().map_or(0, |h| h.out_dim())
    }

    /// Rows of embedding table `table` (which embeds code `table + 1`), `[ids.len(), talker hidden]`.
    pub fn embed(&self, table: usize, ids: &[u32]) -> Result<Tensor> {
        let e = self.embeddings.get(table).ok_or_else(|| {
            Error::InvalidArgument(format!("code predictor has no embedding table {table}"))
        })?;
        e.forward(&Tensor::new(ids, &self.device)?)
    }

    fn project(&self, x: &Tensor) -> Result<Tensor> {
        match &self.projection {
            Some(p) => p.forward(x),
            None => Ok(x.clone()),
        }
    }

    /// Predicts codes 1..G-1 for a batch of frames. `hidden` `[b, talker hidden]` is the
    /// talker's final-normed state that produced code 0, `code0` the codes themselves. `pick`
    /// chooses a code from the f32 logits of `(row, step)`; it is called for every row at every
    /// step (logits are processed in place). Returns `[b][G-1]` codes.
    pub fn predict(
        &self,
        hidden: &Tensor,
        code0: &Tensor,
        mut pick: impl FnMut(usize, usize, &mut [f32]) -> Result<u32>,
    ) -> Result<Vec<Vec<u32>>> {
        if self.host_path(hidden.dim(0)?) {
            return self.predict_host(hidden, code0, pick);
        }
        let (b, _) = hidden.dims2()?;
        let mut out = vec![Vec::with_capacity(self.heads.len()); b];
        let mut cache = self.decoder.new_cache();
        // Step 0: the 2-position prefill [h, C(code0)].
        let mut x = Tensor::stack(&[hidden, code0], 1)?.to_dtype(self.dtype)?;
        for (step, head) in self.heads.iter().enumerate() {
            let len = x.dim(1)?;
            let positions = Positions::contiguous(b, cache.len(), len);
            let h = self
                .decoder
                .forward(&self.project(&x)?, &positions, None, &mut cache)?;
            let last = h.i((.., len - 1, ..))?;
            let logits = head.forward(&last)?.to_dtype(DType::F32)?;
            let mut rows: Vec<Vec<f32>> = logits.to_vec2()?;
            let mut codes = Vec::with_capacity(b);
            for (r, l) in rows.iter_mut().enumerate() {
                let c = pick(r, step, l)?;
                out[r].push(c);
                codes.push(c);
            }
            if step + 1 < self.heads.len() {
                x = self.embed(step, &codes)?.unsqueeze(1)?;
            }
        }
        Ok(out)
    }

    /// Whether [`CodePredictor::predict`] runs on host buffers for a batch of `b` frames: f32
    /// on the CPU with every projection packed, and at most 2 positions per row within the
    /// matrix-vector kernels (the 2-position prefill of every frame included).
    fn host_path(&self, b: usize) -> bool {
        self.device.is_cpu()
            && self.dtype == DType::F32
            && self.decoder.uses_host_step(&self.device, self.dtype, b, 2)
            && self.heads.iter().all(Linear::is_packed)
            && self.projection.as_ref().is_none_or(Linear::is_packed)
    }

    /// [`CodePredictor::predict`] on host f32 buffers: the 15 sequential steps of a frame go
    /// straight through the packed kernels (the decoder's CPU step path, the heads' GEMV, the
    /// embedding rows) with no tensor operations between them. Bit-identical to the tensor
    /// path: the same kernels in the same order.
    fn predict_host(
        &self,
        hidden: &Tensor,
        code0: &Tensor,
        mut pick: impl FnMut(usize, usize, &mut [f32]) -> Result<u32>,
    ) -> Result<Vec<Vec<u32>>> {
        let (b, width) = hidden.dims2()?;
        let unpacked = || Error::InvalidArgument("code predictor: weights are not packed".into());
        let hidden: Vec<f32> = hidden.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let code0: Vec<f32> = code0.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        if code0.len() != hidden.len() {
            return Err(Error::InvalidArgument(format!(
                "code predictor: {} code-0 values for {b} hidden rows of {width}",
                code0.len()
            )));
        }
        // Step 0: the 2-position prefill [h, C(code0)] of every row.
        let mut x = Vec::with_capacity(2 * b * width);
        for (h, c) in hidden.chunks(width).zip(code0.chunks(width)) {
            x.extend_from_slice(h);
            x.extend_from_slice(c);
        }
        let mut out = vec![Vec::with_capacity(self.heads.len()); b];
        let mut cache = self.decoder.new_cache();
        let mut codes = vec![0u32; b];
        for (step, head) in self.heads.iter().enumerate() {
            let len = if step == 0 { 2 } else { 1 };
            let x_in = match &self.projection {
                Some(p) => p.forward_f32(&x, b * len)?.ok_or_else(unpacked)?,
                None => x,
            };
            let positions = Positions::contiguous(b, cache.len(), len);
            let h = self
                .decoder
                .forward_host(x_in, &positions, None, &mut cache)?
                .ok_or_else(unpacked)?;
            let dim = h.len() / (b * len);
            let last: Vec<f32> = h
                .chunks(dim * len)
                .flat_map(|row| row[(len - 1) * dim..].iter().copied())
                .collect();
            let mut logits = head.forward_f32(&last, b)?.ok_or_else(unpacked)?;
            let vocab = head.out_dim();
            for (r, l) in logits.chunks_mut(vocab).enumerate() {
                let c = pick(r, step, l)?;
                out[r].push(c);
                codes[r] = c;
            }
            x = if step + 1 < self.heads.len() {
                self.embeddings[step].rows_f32(&codes)?
            } else {
                Vec::new()
            };
        }
        Ok(out)
    }

    /// Logits of every step for given codes (teacher forcing); golden tests pin them.
    /// Returns `[b, G-1, codebook]`.
    pub fn logits_for(
        &self,
        hidden: &Tensor,
        code0: &Tensor,
        codes: &[Vec<u32>],
    ) -> Result<Tensor> {
        let mut all = Vec::new();
        self.predict(hidden, code0, |r, s, l| {
            if r == 0 {
                all.push(Vec::new());
            }
            all[s].push(l.to_vec());
            Ok(codes[r][s])
        })?;
        let steps: Vec<Tensor> = all
            .into_iter()
            .map(|rows| {
                let n = rows.len();
                let v = rows[0].len();
                Tensor::from_vec(rows.concat(), (n, v), &Device::Cpu)
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(Tensor::stack(&steps, 1)?)
    }

    /// Bytes of weights one frame reads (G-1 passes over the layers, each head once).
    pub fn frame_weight_bytes(&self) -> usize {
        let layers = self.decoder.weight_bytes();
        let proj = self.projection.as_ref().map_or(0, |p| p.weight_bytes());
        self.heads.len() * (layers + proj)
            + self.heads.iter().map(|h| h.weight_bytes()).sum::<usize>()
    }
}

/// Softmax-free helper: index of the row maximum of `[b, v]` f32 logits (used by tests).
pub fn row_argmax(logits: &Tensor) -> Result<Vec<u32>> {
    Ok(logits.argmax(D::Minus1)?.to_vec1()?)
}
