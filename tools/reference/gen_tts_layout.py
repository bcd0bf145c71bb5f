"""Symbolic description of the talker prompt (tts.md §4), checked against the reference.

The reference builds the prompt embeddings inside `Qwen3TTSForConditionalGeneration.generate`.
The fixtures store those tensors as recorded; in addition each case gets a symbolic layout
(which text id and which codec id are summed at each position) built here from the ids the
reference was given. `check_layout` evaluates the symbolic layout with the reference's own
modules and requires it to equal the recorded tensors, so the description is verified, not
assumed.

Position format (JSON): [text, codec]
  text  : int text-token id (the vector is text_projection(text_embedding(id)); tts_pad/bos/eos
          are ids too) or null
  codec : int talker codec id (row of talker.model.codec_embedding), "xvector" (the Base
          speaker embedding), ["ref_frame", j] (sum of the G embeddings of reference frame j:
          codec_embedding[c0] + sum_g code_predictor.codec_embedding[g-1][c_g]) or null
Trailing queue: list of text ids (one vector consumed per generated frame, then tts_pad).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import torch


def resolve_language(cfg, language: str, speaker: Optional[str]) -> Optional[int]:
    t = cfg.talker_config
    lang = language.lower()
    lang_id = None if lang == "auto" else t.codec_language_id[lang]
    if lang in ["chinese", "auto"] and speaker not in ("", None) and t.spk_is_dialect[speaker.lower()] is not False:
        lang_id = t.codec_language_id[t.spk_is_dialect[speaker.lower()]]
    return lang_id


def build_layout(
    cfg,
    input_ids: List[int],
    language: str,
    speaker: Optional[str] = None,
    speaker_slot: Optional[str] = None,  # "speaker" (CustomVoice row), "xvector" or None
    instruct_ids: Optional[List[int]] = None,
    ref_ids: Optional[List[int]] = None,
    n_ref_frames: Optional[int] = None,
    non_streaming: bool = False,
) -> Dict[str, Any]:
    t = cfg.talker_config
    P, B, E = cfg.tts_pad_token_id, cfg.tts_bos_token_id, cfg.tts_eos_token_id
    pos: List[list] = []
    if instruct_ids:
        pos += [[i, None] for i in instruct_ids]
    pos += [[i, None] for i in input_ids[:3]]
    lang_id = resolve_language(cfg, language, speaker)
    if lang_id is None:
        codec = [t.codec_nothink_id, t.codec_think_bos_id, t.codec_think_eos_id]
    else:
        codec = [t.codec_think_id, t.codec_think_bos_id, lang_id, t.codec_think_eos_id]
    if speaker_slot == "speaker":
        codec.append(t.spk_id[speaker.lower()])
    elif speaker_slot == "xvector":
        codec.append("xvector")
    codec += [t.codec_pad_id, t.codec_bos_id]
    n = len(codec)
    pos += [[P, codec[j]] for j in range(n - 2)] + [[B, codec[n - 2]]]
    text = input_ids[3:-5]
    if ref_ids is not None:
        z = list(ref_ids[3:-2]) + list(text) + [E]
        y: List[Any] = [t.codec_bos_id] + [["ref_frame", j] for j in range(n_ref_frames)]
        if non_streaming:
            pos += [[zi, t.codec_pad_id] for zi in z] + [[P, yi] for yi in y]
            trailing = [P]
        elif len(z) > len(y):
            pos += [[zi, yi] for zi, yi in zip(z[: len(y)], y)]
            trailing = z[len(y) :]
        else:
            z = z + [P] * (len(y) - len(z))
            pos += [[zi, yi] for zi, yi in zip(z, y)]
            trailing = [P]
    elif non_streaming:
        pos += [[i, t.codec_pad_id] for i in text] + [[E, t.codec_pad_id], [P, t.codec_bos_id]]
        trailing = [P]
    else:
        pos += [[input_ids[3], t.codec_bos_id]]
        trailing = list(input_ids[4:-5]) + [E]
    return {"positions": pos, "trailing": trailing, "language_id": lang_id, "codec_prefix": codec}


@torch.no_grad()
def evaluate_layout(model, layout, xvector=None, ref_codes=None):
    talker = model.talker
    emb_t = talker.get_text_embeddings()
    proj = talker.text_projection
    emb_c = talker.get_input_embeddings()
    cp_emb = talker.code_predictor.get_input_embeddings()

    def T(i):
        return proj(emb_t(torch.tensor([i])))[0]

    def C(c):
        if c is None:
            return 0
        if c == "xvector":
            return xvector
        if isinstance(c, list):
            codes = ref_codes[c[1]]
            v = emb_c(codes[:1])[0]
            for g in range(1, codes.shape[0]):
                v = v + cp_emb[g - 1](codes[g : g + 1])[0]
            return v
        return emb_c(torch.tensor([c]))[0]

    rows = []
    for text, codec in layout["positions"]:
        v = (T(text) if text is not None else 0) + C(codec)
        rows.append(v)
    prompt = torch.stack(rows, 0)
    trailing = torch.stack([T(i) for i in layout["trailing"]], 0)
    return prompt, trailing


def check_layout(name, model, layout, prompt, trailing, xvector=None, ref_codes=None, atol=1e-5):
    """prompt (L, H) / trailing (Tq, H) as recorded for one sample (pads removed)."""
    from common import check_close

    p, tq = evaluate_layout(model, layout, xvector=xvector, ref_codes=ref_codes)
    check_close(f"{name} symbolic prompt layout", p, prompt, rtol=1e-5, atol=atol)
    check_close(f"{name} symbolic trailing queue", tq, trailing, rtol=1e-5, atol=atol)
    return float((p - prompt).abs().max())
