//! Talker prompts: the dual-track input vectors for every product and both text layouts
//! (tts.md §4), and the queue of text vectors fed one per generated frame.

use candle_core::Tensor;

use qwen3_speech_engine::tokenizer::Tokenizer;
use qwen3_speech_engine::{Error, Result};

use super::config::TtsConfig;
use super::talker::Talker;

/// The three formatted strings of the reference; they are tokenized whole and then sliced by
/// position, so a text starting with a newline merges with the role's newline exactly as there.
pub fn assistant_text(text: &str) -> String {
    format!("<|im_start|>assistant\n{text}<|im_end|>\n<|im_start|>assistant\n")
}

pub fn reference_text(text: &str) -> String {
    format!("<|im_start|>assistant\n{text}<|im_end|>\n")
}

pub fn instruct_text(instruct: &str) -> String {
    format!("<|im_start|>user\n{instruct}<|im_end|>\n")
}

/// What fills the speaker slot of the control prefix.
#[derive(Debug, Clone)]
pub enum SpeakerSlot {
    None,
    /// A named speaker's codec id (CustomVoice).
    Id(u32),
    /// A clone x-vector `[hidden]` (Base).
    Vector(Tensor),
}

/// Reference material of an in-context voice clone.
#[derive(Debug, Clone)]
pub struct IclReference {
    /// Token ids of `reference_text(ref_text)`.
    pub ref_ids: Vec<u32>,
    /// The reference clip's codec frames, `[M][G]`.
    pub ref_codes: Vec<Vec<u32>>,
}

/// Everything one prompt is built from (ids already tokenized, language and speaker resolved).
#[derive(Debug, Clone)]
pub struct PromptSpec {
    /// Token ids of `assistant_text(text)`.
    pub text_ids: Vec<u32>,
    /// Token ids of `instruct_text(instruct)`, if any.
    pub instruct_ids: Option<Vec<u32>>,
    /// Codec id of the language; `None` = "auto" (the no-think control prefix).
    pub language_id: Option<u32>,
    pub speaker: SpeakerSlot,
    pub icl: Option<IclReference>,
    /// `true`: the whole text is in the prompt (`non_streaming_mode=True`); `false`: one text
    /// token per frame.
    pub whole_text: bool,
}

/// A built prompt: input vectors `[len, hidden]` and the text vectors added to frame t's
/// feedback (`[n, hidden]`; after them the tts pad vector).
#[derive(Debug, Clone)]
pub struct TalkerPrompt {
    pub embeds: Tensor,
    pub trailing: Tensor,
}

/// Splits the ids of `assistant_text(..)` into (role, text): role = first 3, text = [3, len-5).
fn split_assistant(ids: &[u32]) -> Result<(&[u32], &[u32])> {
    if ids.len() < 9 {
        return Err(Error::InvalidArgument(
            "text is empty after tokenization".into(),
        ));
    }
    Ok((&ids[..3], &ids[3..ids.len() - 5]))
}

/// Builds one talker prompt as the reference's `generate` does.
pub fn build_prompt(talker: &Talker, cfg: &TtsConfig, spec: &PromptSpec) -> Result<TalkerPrompt> {
    let t = &cfg.talker_config;
    let (role, text) = split_assistant(&spec.text_ids)?;
    let specials = talker.text(&[
        cfg.tts_bos_token_id,
        cfg.tts_eos_token_id,
        cfg.tts_pad_token_id,
    ])?;
    let bos = specials.narrow(0, 0, 1)?;
    let eos = specials.narrow(0, 1, 1)?;
    let pad = specials.narrow(0, 2, 1)?;

    // Codec track of the control prefix: control ids, optional speaker, [pad, bos].
    let control: Vec<u32> = match spec.language_id {
        None => vec![
            t.codec_nothink_id,
            t.codec_think_bos_id,
            t.codec_think_eos_id,
        ],
        Some(lang) => vec![
            t.codec_think_id,
            t.codec_think_bos_id,
            lang,
            t.codec_think_eos_id,
        ],
    };
    let mut codec_parts = vec![talker.codec(&control)?];
    match &spec.speaker {
        SpeakerSlot::None => {}
        SpeakerSlot::Id(id) => codec_parts.push(talker.codec(&[*id])?),
        SpeakerSlot::Vector(v) => {
            let hidden = talker.hidden_size();
            if v.dims() != [hidden] {
                return Err(Error::InvalidArgument(format!(
                    "speaker vector has shape {:?}, the talker expects [{hidden}]",
                    v.dims()
                )));
            }
            codec_parts.push(v.to_dtype(talker.dtype())?.unsqueeze(0)?)
        }
    }
    codec_parts.push(talker.codec(&[t.codec_pad_id, t.codec_bos_id])?);
    let codec = Tensor::cat(&codec_parts, 0)?;
    let n = codec.dim(0)?;
    // Text track against all but the last codec vector: (n-2) x pad, then bos.
    let text_track = Tensor::cat(&[pad.repeat((n - 2, 1))?, bos.clone()], 0)?;
    let control_block = (text_track + codec.narrow(0, 0, n - 1)?)?;
    let codec_bos = codec.narrow(0, n - 1, 1)?;

    let mut parts = Vec::new();
    if let Some(ids) = &spec.instruct_ids {
        parts.push(talker.text(ids)?);
    }
    parts.push(talker.text(role)?);
    parts.push(control_block);

    let trailing;
    if let Some(icl) = &spec.icl {
        let ref_ids = &icl.ref_ids;
        if ref_ids.len() < 6 {
            return Err(Error::InvalidArgument(
                "reference text is empty after tokenization".into(),
            ));
        }
        let ref_text = &ref_ids[3..ref_ids.len() - 2];
        if icl.ref_codes.is_empty() {
            return Err(Error::InvalidArgument(
                "reference audio has no codec frames".into(),
            ));
        }
        let mut z_ids = ref_text.to_vec();
        z_ids.extend_from_slice(text);
        let z = Tensor::cat(&[talker.text(&z_ids)?, eos.clone()], 0)?;
        let y = Tensor::cat(
            &[codec_bos.clone(), talker.frame_embeddings(&icl.ref_codes)?],
            0,
        )?;
        let (zl, yl) = (z.dim(0)?, y.dim(0)?);
        if spec.whole_text {
            let pads = talker.codec(&vec![t.codec_pad_id; zl])?;
            parts.push((z + pads)?);
            parts.push(y.broadcast_add(&pad)?);
            trailing = pad.clone();
        } else if zl > yl {
            parts.push((z.narrow(0, 0, yl)? + y)?);
            trailing = z.narrow(0, yl, zl - yl)?;
        } else {
            let z = Tensor::cat(&[z, pad.repeat((yl - zl, 1))?], 0)?;
            parts.push((z + y)?);
            trailing = pad.clone();
        }
    } else if spec.whole_text {
        let pads = talker.codec(&vec![t.codec_pad_id; text.len() + 1])?;
        let text_vecs = Tensor::cat(&[talker.text(text)?, eos.clone()], 0)?;
        parts.push((text_vecs + pads)?);
        parts.push((pad.clone() + codec_bos)?);
        trailing = pad.clone();
    } else {
        parts.push((talker.text(&text[..1])? + codec_bos)?);
        trailing = Tensor::cat(&[talker.text(&text[1..])?, eos.clone()], 0)?;
    }
    Ok(TalkerPrompt {
        embeds: Tensor::cat(&parts, 0)?,
        trailing,
    })
}

/// Tokenizes the formatted strings of a request.
pub fn tokenize(tokenizer: &Tokenizer, formatted: &str) -> Result<Vec<u32>> {
    tokenizer.encode(formatted)
}
