"""Area `tts`: tests/fixtures/tts-tiny/ (tiny Qwen3-TTS checkpoints + expected outputs).

Checkpoints and tokenizer: gen_tts_ckpt.py. Observers: gen_tts_record.py. Symbolic prompt
layouts: gen_tts_layout.py. This file runs the cases through the reference (the saved folders
loaded with `Qwen3TTSModel.from_pretrained`, float32, eager attention, CPU) and writes
`<checkpoint>/expected/*` plus `tts-tiny/CASES.md` (gen_tts_doc.py).

Everything expected comes from the reference's own code paths: the wrapper's
generate_custom_voice / generate_voice_design / generate_voice_clone / create_voice_clone_prompt,
`Qwen3TTSForConditionalGeneration.generate`, the talker's own LogitsProcessorList,
`code_predictor.generate`, `extract_speaker_embedding`, the module-level `mel_spectrogram`,
and the speech tokenizer's encode/decode. Intermediates are recorded by observers (forward
hooks and pass-through wrappers) during those calls.
"""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from common import FIXTURES, RUN_NOTES, check_close, check_equal, save_tensors
from gen_tts_ckpt import AREA_DIR, KINDS, build_checkpoint, build_tokenizer, codec_builder, codec_info, load_wrapper

def _fmt(obj, ind: int = 0) -> str:
    """JSON with one key per line but lists of scalars (and lists of such lists, e.g. layouts and
    code frames) on one line: readable and compact."""
    pad = " " * (ind + 1)

    def flat(v):
        return v is None or isinstance(v, (int, float, str, bool)) or (
            isinstance(v, list) and all(flat(x) and not isinstance(x, dict) for x in v)
        ) and not (isinstance(v, list) and any(isinstance(x, list) and any(isinstance(y, list) for y in x) for x in v))

    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{pad}{json.dumps(str(k), ensure_ascii=False)}: {_fmt(v, ind + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * ind + "}"
    if isinstance(obj, list) and not flat(obj):
        if not obj:
            return "[]"
        return "[\n" + ",\n".join(pad + _fmt(v, ind + 1) for v in obj) + "\n" + " " * ind + "]"
    return json.dumps(obj, ensure_ascii=False, separators=(", ", ": "))


def dump_json_tts(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = _fmt(json.loads(json.dumps(obj, ensure_ascii=False)))
    check_equal(f"{path.name} round trip", json.loads(text), json.loads(json.dumps(obj, ensure_ascii=False)))
    path.write_text(text + "\n", encoding="utf-8")


GREEDY = dict(do_sample=False, subtalker_dosample=False, repetition_penalty=1.05, max_new_tokens=12)
SAMPLED_MAX_NEW = 6

# ----------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------

TEXT_HELLO = "Hello world."
TEXT_FOX = "The quick brown fox jumps over the lazy dog."
TEXT_MORNING = "Good morning, how are you?"
TEXT_ZH = "你好，世界。"
TEXT_ZH2 = "今天天气很好。"
TEXT_NEWLINE_CAMEL = "\nMy iPhone is new."
TEXT_SHORT = "Hi."
TEXT_BATCH_LONG = "This second sentence is a good deal longer than the first one."
INSTRUCT_CV = "Speak slowly and calmly."
INSTRUCT_VD = "A deep male voice, slow and warm."
REF_TEXT = "This is the reference voice."
# Long enough that (ref text + text + tts_eos) exceeds the reference frames + 1 (built in main).
TEXT_ICL_LONG_UNIT = "then the talker reads on, word after word"

TOKENIZATION_TEXTS = {
    "hello": TEXT_HELLO,
    "fox": TEXT_FOX,
    "chinese": TEXT_ZH,
    "newline_camel": TEXT_NEWLINE_CAMEL,
    "empty": "",
    "digits_symbols": "Call 555-0123 at 9:30, ok?",
    "im_end_literal": "a<|im_end|>b",
}

REF_CLIP_SAMPLES = 2100  # 24 kHz; 8 mel frames (>= 5 needed by the ECAPA reflect pads)
REF_CLIP_SEED = 7


def ref_clip() -> np.ndarray:
    """Deterministic 24 kHz test signal: a gliding harmonic tone (110 -> 330 Hz) with an envelope."""
    n = REF_CLIP_SAMPLES
    t = np.arange(n, dtype=np.float64) / 24000.0
    f = 110.0 + 220.0 * t / t[-1]
    phase = 2 * np.pi * np.cumsum(f) / 24000.0
    rng = np.random.default_rng(REF_CLIP_SEED)
    x = sum((0.6 / k) * np.sin(k * phase + rng.uniform(0, 2 * np.pi)) for k in range(1, 6))
    env = np.sin(np.pi * (t / t[-1])) ** 0.5
    y = 0.8 * env * x / np.abs(x).max() + 0.01 * rng.standard_normal(n)
    return np.clip(y, -0.95, 0.95).astype(np.float32)


# ----------------------------------------------------------------------------
# Case table
# ----------------------------------------------------------------------------


def cv_cases() -> List[Dict[str, Any]]:
    c = []

    def add(name, purpose, detail=False, **kw):
        c.append(dict(name=name, api="generate_custom_voice", purpose=purpose, detail=detail,
                      kwargs=dict(kw), settings=dict(GREEDY)))  # fmt: skip

    add("cv_ryan_en_stream", "streaming text layout (speaker row, language); the waveform case",
        detail=True, text=TEXT_HELLO, speaker="Ryan", language="English", non_streaming_mode=False)
    add("cv_ryan_en_nonstream", "non-streaming text layout", detail=True,
        text=TEXT_HELLO, speaker="Ryan", language="English", non_streaming_mode=True)
    add("cv_min_new_tokens", "greedy would pick EOS at step 1 (boosted EOS row) but min_length/min_new_tokens mask it",
        detail=True, text="No.", speaker="Ryan", language="English", non_streaming_mode=False)
    add("cv_vivian_zh", "Chinese text (byte-level tokens)", detail=True, text=TEXT_ZH, speaker="Vivian", language="Chinese", non_streaming_mode=True)
    add("cv_vivian_auto_stream", "language Auto, non-dialect speaker: nothink control prefix",
        text=TEXT_HELLO, speaker="vivian", language="Auto", non_streaming_mode=False)
    add("cv_dylan_auto_dialect", "dialect override under Auto (beijing_dialect id)",
        text=TEXT_MORNING, speaker="Dylan", language="Auto", non_streaming_mode=True)
    add("cv_eric_chinese_dialect", "dialect override under Chinese (sichuan_dialect id), streaming",
        text=TEXT_ZH2, speaker="Eric", language="chinese", non_streaming_mode=False)
    add("cv_dylan_english_nodialect", "dialect speaker with English: no override",
        text=TEXT_MORNING, speaker="Dylan", language="English", non_streaming_mode=True)
    add("cv_instruct_dropped_0b6", "tts_model_size 0b6: the wrapper silently drops instruct (== cv_ryan_en_nonstream)",
        text=TEXT_HELLO, speaker="Ryan", language="English", instruct=INSTRUCT_CV, non_streaming_mode=True)
    add("cv_newline_camel_stream", "text starting with a newline (merges with the role's newline) and camelCase",
        text=TEXT_NEWLINE_CAMEL, speaker="Ryan", language="English", non_streaming_mode=False)
    add("cv_empty_text_stream", "empty text, streaming: the first 'text' token is <|im_end|> (positional slicing)",
        text="", speaker="Ryan", language="English", non_streaming_mode=False)
    add("cv_batch", "batch of two prompts, streaming text: prompt lengths differ by the control prefix (left pad), "
        "trailing queues of different lengths (right-padded with tts_pad)", detail=True,
        text=[TEXT_SHORT, TEXT_BATCH_LONG], speaker=["Ryan", "Vivian"], language=["English", "Auto"],
        non_streaming_mode=False)
    add("cv_batch_item0", "cv_batch item 0 alone", text=TEXT_SHORT, speaker="Ryan", language="English",
        non_streaming_mode=False)
    add("cv_batch_item1", "cv_batch item 1 alone", text=TEXT_BATCH_LONG, speaker="Vivian", language="Auto",
        non_streaming_mode=False)
    add("cv_batch_nonstream", "batch of cv_ryan_en_nonstream and cv_vivian_zh (non-streaming: left pad = text "
        "length difference)", detail=True, text=[TEXT_HELLO, TEXT_ZH], speaker=["Ryan", "Vivian"],
        language=["English", "Chinese"], non_streaming_mode=True)
    # Instruct with a CustomVoice speaker, the way the 1.7B CustomVoice wrapper passes it
    # (the 0b6 wrapper drops it): model.generate(input_ids, instruct_ids, ...) with the wrapper's own ids.
    c.append(dict(name="cv_instruct_lowlevel", api="model.generate", purpose="instruction block (user role) + speaker, "
                  "as a 1.7B CustomVoice wrapper would pass it", detail=False,
                  kwargs=dict(text=TEXT_HELLO, speaker="Ryan", language="English", instruct=INSTRUCT_CV,
                              non_streaming_mode=True), settings=dict(GREEDY)))  # fmt: skip
    # Sampling (seeded), injected-noise records.
    c.append(dict(name="cv_sampled_default", api="generate_custom_voice", detail=False, seed=1234,
                  purpose="sampling with the generation_config.json defaults (temperature 0.9, top-k 50, sub-talker "
                          "sampling); every multinomial draw recorded (p, Exp(1) noise q, id)",
                  kwargs=dict(text=TEXT_HELLO, speaker="Ryan", language="English", non_streaming_mode=True),
                  settings=dict(max_new_tokens=SAMPLED_MAX_NEW)))  # fmt: skip
    c.append(dict(name="cv_sampled_topp", api="generate_custom_voice", detail=False, seed=4321,
                  purpose="sampling with top-p and non-default sub-talker settings, streaming text",
                  kwargs=dict(text=TEXT_MORNING, speaker="Vivian", language="English", non_streaming_mode=False),
                  settings=dict(do_sample=True, temperature=0.7, top_k=20, top_p=0.8, repetition_penalty=1.1,
                                subtalker_dosample=True, subtalker_temperature=1.3, subtalker_top_k=5,
                                subtalker_top_p=0.9, max_new_tokens=SAMPLED_MAX_NEW)))  # fmt: skip
    return c


def vd_cases() -> List[Dict[str, Any]]:
    c = []

    def add(name, purpose, detail=False, **kw):
        c.append(dict(name=name, api="generate_voice_design", purpose=purpose, detail=detail,
                      kwargs=dict(kw), settings=dict(GREEDY)))  # fmt: skip

    add("vd_nonstream", "instruction block + non-streaming text (wrapper default)", detail=True,
        text=TEXT_FOX, instruct=INSTRUCT_VD, language="English", non_streaming_mode=True)
    add("vd_stream", "instruction block + streaming text", text=TEXT_FOX, instruct=INSTRUCT_VD,
        language="English", non_streaming_mode=False)
    add("vd_no_instruct_auto", "empty instruct (no instruction block), language Auto", text=TEXT_HELLO,
        instruct="", language="Auto", non_streaming_mode=True)
    return c


def base_cases(text_icl_long: str) -> List[Dict[str, Any]]:
    c = []

    def add(name, purpose, detail=False, **kw):
        c.append(dict(name=name, api="generate_voice_clone", purpose=purpose, detail=detail,
                      kwargs=dict(kw), settings=dict(GREEDY)))  # fmt: skip

    add("base_xvec_stream", "x-vector-only clone, streaming text (wrapper default)", detail=True,
        text=TEXT_HELLO, language="English", voice_clone_prompt="xvec", non_streaming_mode=False)
    add("base_xvec_nonstream", "x-vector-only clone, non-streaming text", text=TEXT_HELLO, language="English",
        voice_clone_prompt="xvec", non_streaming_mode=True)
    add("base_icl_stream_long", "ICL streaming, text longer than the reference frames (trailing = rest of text)",
        detail=True, text=text_icl_long, language="English", voice_clone_prompt="icl", non_streaming_mode=False)
    add("base_icl_stream_short", "ICL streaming, text shorter than the reference frames (text padded with tts_pad); "
        "called with ref_audio=(wav, 24000) + ref_text", text=TEXT_SHORT, language="Auto", ref_audio="ref_clip",
        ref_text=REF_TEXT, x_vector_only_mode=False, non_streaming_mode=False)
    add("base_icl_nonstream", "ICL non-streaming", text=TEXT_HELLO, language="English", voice_clone_prompt="icl",
        non_streaming_mode=True)
    add("base_batch_mixed", "batch: x-vector item + ICL item (left-padded prompts)", text=[TEXT_HELLO, TEXT_SHORT],
        language=["English", "Auto"], voice_clone_prompt=["xvec", "icl"], non_streaming_mode=False)
    return c


# ----------------------------------------------------------------------------
# Running one case
# ----------------------------------------------------------------------------


def _as_list(x):
    return x if isinstance(x, list) else [x]


def run_case(w, case: Dict[str, Any], prompts: Dict[str, Any]):
    """Run a case through the reference with the observers on. Returns (Recorder, wavs, sr)."""
    import torch

    from gen_tts_record import Recorder

    kw = copy.deepcopy(case["kwargs"])
    settings = dict(case["settings"])
    torch.manual_seed(case.get("seed", 0))
    with Recorder(w) as rec:
        if case["api"] == "generate_custom_voice":
            wavs, sr = w.generate_custom_voice(**kw, **settings)
        elif case["api"] == "generate_voice_design":
            wavs, sr = w.generate_voice_design(**kw, **settings)
        elif case["api"] == "generate_voice_clone":
            if "voice_clone_prompt" in kw:
                v = kw["voice_clone_prompt"]
                kw["voice_clone_prompt"] = [prompts[x] for x in _as_list(v)]
            if kw.get("ref_audio") == "ref_clip":
                kw["ref_audio"] = (prompts["ref_clip"], 24000)
            wavs, sr = w.generate_voice_clone(**kw, **settings)
        elif case["api"] == "model.generate":
            input_ids = w._tokenize_texts([w._build_assistant_text(kw["text"])])
            instruct_ids = [w._tokenize_texts([w._build_instruct_text(kw["instruct"])])[0]]
            gen = w._merge_generate_kwargs(**settings)
            with torch.no_grad():
                codes, _ = w.model.generate(input_ids=input_ids, instruct_ids=instruct_ids,
                                            languages=[kw["language"]], speakers=[kw["speaker"]],
                                            non_streaming_mode=kw["non_streaming_mode"], **gen)  # fmt: skip
            wavs, sr = None, None
        else:
            raise KeyError(case["api"])
    return rec, wavs, sr


def _ids(t) -> Optional[List[int]]:
    if t is None:
        return None
    return [int(v) for v in t.reshape(-1).tolist()]


def summarize_case(w, case, rec, wavs, sr, prompts, tensors: Dict[str, Any]) -> Dict[str, Any]:
    """Write the case's tensors into `tensors` and return its JSON record (also runs the symbolic
    layout check)."""
    import torch

    from gen_tts_layout import build_layout, check_layout

    name = case["name"]
    cfg = w.model.config
    check_equal(f"{name}: one model.generate call", len(rec.model_generate_calls), 1)
    check_equal(f"{name}: one talker.generate call", len(rec.talker_calls), 1)
    mg = rec.model_generate_calls[0]["kwargs"]
    tc = rec.talker_calls[0]
    emb = tc["inputs_embeds"]
    mask = tc["attention_mask"]
    trailing = tc["trailing_text_hidden"]
    B, L, H = emb.shape
    seq = tc["sequences"]  # (B, S) code-0 ids incl. EOS / padding after EOS
    S = seq.shape[1]
    eos = cfg.talker_config.codec_eos_token_id
    codes = rec.model_generate_calls[0]["codes"]
    pos_ids = rec.talker_position_ids[tc["first_input"]]
    tensors[f"{name}.prompt_embeds"] = emb
    tensors[f"{name}.attention_mask"] = mask
    tensors[f"{name}.position_ids"] = pos_ids[0] if pos_ids is not None else torch.zeros(0)
    tensors[f"{name}.trailing_text"] = trailing
    tensors[f"{name}.tts_pad_embed"] = tc["tts_pad_embed"].reshape(-1)
    tensors[f"{name}.code0"] = seq
    for b in range(B):
        tensors[f"{name}.codes.{b}"] = codes[b]
    if case.get("detail"):
        K = cfg.talker_config.vocab_size - 1024
        lg = tc["logits"]  # (S, B, V) raw codec_head logits; keep the K audio codes + the EOS column
        tensors[f"{name}.talker_logits"] = torch.cat([lg[..., :K], lg[..., eos : eos + 1]], dim=-1)
        ins = rec.talker_inputs[tc["first_input"] + 1 : tc["last_input"]]
        if ins:
            tensors[f"{name}.step_inputs"] = torch.stack([x[:, 0] for x in ins], 0)  # (S-1, B, H)
            pids = rec.talker_position_ids[tc["first_input"] + 1 : tc["last_input"]]
            tensors[f"{name}.step_position_ids"] = torch.stack([p[0, :, 0] for p in pids], 0)  # (S-1, B)
        normed = rec.talker_normed[tc["first_input"] : tc["last_input"]]
        tensors[f"{name}.talker_hidden"] = torch.stack([x[:, -1] for x in normed], 0)  # (S, B, H)
        cps = rec.cp_calls[tc["first_cp"] : tc["last_cp"]]
        if cps:
            tensors[f"{name}.cp_inputs"] = torch.stack([c["inputs_embeds"] for c in cps], 0)  # (S-1, B, 2, H)
            tensors[f"{name}.cp_logits"] = torch.stack([c["logits"] for c in cps], 0)  # (S-1, G-1, B, K)
            tensors[f"{name}.cp_codes"] = torch.stack([c["sequences"] for c in cps], 0)  # (S-1, B, G-1)
    # Per sample facts + symbolic layout.
    samples = []
    lens = mask.sum(1).tolist()
    vcp = mg.get("voice_clone_prompt")
    for b in range(B):
        input_ids = _ids(mg["input_ids"][b])
        instruct_ids = _ids(mg["instruct_ids"][b]) if mg.get("instruct_ids") is not None else None
        ref_ids = _ids(mg["ref_ids"][b]) if mg.get("ref_ids") is not None and mg["ref_ids"][b] is not None else None
        language = mg["languages"][b]
        speaker = mg["speakers"][b] if mg.get("speakers") is not None else None
        xvec, ref_codes = None, None
        if vcp is not None:
            slot = "xvector" if (vcp["x_vector_only_mode"][b] or vcp["icl_mode"][b]) else None
            xvec = vcp["ref_spk_embedding"][b]
            if vcp["ref_code"] is not None and vcp["icl_mode"][b]:
                ref_codes = vcp["ref_code"][b]
            else:
                ref_ids = None
        else:
            slot = "speaker" if speaker not in (None, "") else None
        lay = build_layout(cfg, input_ids, language, speaker=speaker, speaker_slot=slot, instruct_ids=instruct_ids,
                           ref_ids=ref_ids, n_ref_frames=None if ref_codes is None else ref_codes.shape[0],
                           non_streaming=bool(mg["non_streaming_mode"]))  # fmt: skip
        n = int(lens[b])
        tq_len = len(lay["trailing"])
        err = check_layout(f"{name}[{b}]", w.model, lay, emb[b, L - n :], trailing[b, :tq_len], xvector=xvec,
                           ref_codes=ref_codes)
        # Padding: zeros on the left, tts_pad on the right of the trailing queue.
        if n < L:
            check_equal(f"{name}[{b}] left pads are zero", bool((emb[b, : L - n] == 0).all()), True)
        if tq_len < trailing.shape[1]:
            pad = tc["tts_pad_embed"].reshape(-1)
            check_equal(f"{name}[{b}] trailing pads are tts_pad", bool((trailing[b, tq_len:] == pad).all()), True)
        row = seq[b].tolist()
        stop = row.index(eos) if eos in row else None
        frames = codes[b].shape[0]
        check_equal(f"{name}[{b}] frames", frames, stop if stop is not None else S - 1)
        samples.append(dict(
            input_ids=input_ids, instruct_ids=instruct_ids, ref_ids=ref_ids,
            language=language, speaker=speaker, resolved_language_id=lay["language_id"],
            speaker_slot=slot, prompt_len=n, left_pad=L - n, trailing_len=tq_len,
            layout=lay["positions"], trailing=lay["trailing"], codec_prefix=lay["codec_prefix"],
            layout_max_abs_diff=err,
            code0=row, frames=frames, stop="eos" if stop is not None else "max_new_tokens",
            eos_step=stop, codes=codes[b].tolist(),
            n_ref_frames=None if ref_codes is None else int(ref_codes.shape[0]),
            wav_len=None if wavs is None else int(wavs[b].shape[0]),
        ))  # fmt: skip
    merged = _jsonable(tc["settings"])
    V = cfg.talker_config.vocab_size
    check_equal(f"{name}: suppress_tokens", merged["suppress_tokens"], [i for i in range(V - 1024, V) if i != eos])
    merged["suppress_tokens"] = f"range({V - 1024}, {V}) minus {eos} (codec EOS)"
    return dict(
        name=name, api=case["api"], purpose=case["purpose"], inputs=_json_inputs(case), settings=case["settings"],
        seed=case.get("seed", 0), merged_generate_kwargs=merged,
        batch=B, prompt_len=L, steps=S, sample_rate=sr, samples=samples, detail=bool(case.get("detail")),
    )  # fmt: skip


def _json_inputs(case):
    kw = dict(case["kwargs"])
    if kw.get("ref_audio") == "ref_clip":
        kw["ref_audio"] = "speaker.safetensors:ref_wav (24000 Hz, passed as (ndarray, 24000))"
    if "voice_clone_prompt" in kw:
        kw["voice_clone_prompt"] = [f"prompt item '{x}'" for x in _as_list(kw["voice_clone_prompt"])]
    return kw


def _jsonable(d):
    out = {}
    for k, v in d.items():
        if isinstance(v, (int, float, str, bool)) or v is None:
            out[k] = v
        elif isinstance(v, (list, tuple)) and all(isinstance(x, (int, float, str, bool)) for x in v):
            out[k] = list(v)
    return out


# ----------------------------------------------------------------------------
# Unit-level expected values
# ----------------------------------------------------------------------------

ROPE_POSITIONS = [0, 1, 2, 5, 17, 100, 1000]


def _keep_first(caps: Dict[str, Any], key: str):
    """Forward hook that stores the first output under `key` (returns None: output unchanged)."""

    def hook(_m, _i, o):
        if key not in caps:
            caps[key] = (o[0] if isinstance(o, tuple) else o).detach().clone()

    return hook


def unit_tensors(w) -> Dict[str, Any]:
    """text_projection of the tts special ids (exactly the call generate() makes), RoPE tables."""
    import torch

    m = w.model
    cfg = m.config
    talker = m.talker
    ids = torch.tensor([[cfg.tts_bos_token_id, cfg.tts_eos_token_id, cfg.tts_pad_token_id]])
    caps = {}
    h = talker.text_projection.linear_fc1.register_forward_hook(_keep_first(caps, "fc1"))
    with torch.no_grad():
        raw = talker.get_text_embeddings()(ids)
        proj = talker.text_projection(raw)
    h.remove()
    out = {
        "text_special_ids": ids[0],
        "text_embedding_specials": raw[0],
        "text_proj_fc1_specials": caps["fc1"][0],
        "text_proj_specials": proj[0],
    }
    pos = torch.tensor(ROPE_POSITIONS)
    x = torch.zeros(1, dtype=torch.float32)
    with torch.no_grad():
        cos, sin = talker.model.rotary_emb(x, pos.view(1, 1, -1).expand(3, 1, -1))
        for s in range(1, 3):
            check_equal("M-RoPE streams identical (cos)", bool(torch.equal(cos[s], cos[0])), True)
        # What the attention actually multiplies by (after the interleaved M-RoPE section pick).
        from qwen_tts.core.models.modeling_qwen3_tts import apply_multimodal_rotary_pos_emb

        hd = cos.shape[-1]
        eye = torch.eye(hd).view(1, 1, hd, hd).expand(1, 1, hd, hd)  # (b, heads, "seq"=hd, hd)
        rs = talker.config.rope_scaling
        # q = 0 -> only the sin/cos pick matters; use q = basis vectors at a single position p per call
        eff_cos, eff_sin = [], []
        for j in range(len(ROPE_POSITIONS)):
            c = cos[:, :, j : j + 1].expand(3, 1, hd, hd)
            s_ = sin[:, :, j : j + 1].expand(3, 1, hd, hd)
            qe, _ = apply_multimodal_rotary_pos_emb(eye, eye, c, s_, rs["mrope_section"], rs["interleaved"])
            # qe[..., i, :] = e_i * cos + rotate_half(e_i) * sin; diagonal = cos
            eff_cos.append(torch.diagonal(qe[0, 0]).clone())
        eff_cos = torch.stack(eff_cos, 0)
        check_close("M-RoPE effective cos == plain RoPE cos", eff_cos, cos[0, 0], rtol=0, atol=0)
        cp_rot = talker.code_predictor.model.rotary_emb
        cpos = torch.arange(0, talker.config.num_code_groups + 1).view(1, -1)
        ccos, csin = cp_rot(x, cpos)
    out.update({
        "rope_positions": pos,
        "talker_rope_cos": cos[0, 0],
        "talker_rope_sin": sin[0, 0],
        "cp_rope_positions": cpos[0],
        "cp_rope_cos": ccos[0],
        "cp_rope_sin": csin[0],
    })  # fmt: skip
    return out


def prefill_tensors(w, case_json, tensors_case) -> Dict[str, Any]:
    """One talker prefill on a recorded prompt, with forward hooks on layer 0 and the final norm."""
    import torch

    name = case_json["name"]
    talker = w.model.talker
    emb = tensors_case[f"{name}.prompt_embeds"]
    mask = tensors_case[f"{name}.attention_mask"]
    caps: Dict[str, Any] = {}
    layer0 = talker.model.layers[0]

    def keep(key):
        return _keep_first(caps, key)

    def pre(_m, _a, kw):
        if "position_ids" not in caps:
            caps["position_ids"] = kw["position_ids"].clone()

    hs = [
        layer0.self_attn.q_norm.register_forward_hook(keep("q_normed")),
        layer0.self_attn.k_norm.register_forward_hook(keep("k_normed")),
        layer0.self_attn.register_forward_hook(keep("attn_out")),
        layer0.register_forward_hook(keep("layer0_out")),
        talker.model.norm.register_forward_hook(keep("final_normed")),
        talker.model.register_forward_pre_hook(pre, with_kwargs=True),
    ]
    talker.rope_deltas = None
    with torch.no_grad():
        out = talker(inputs_embeds=emb, attention_mask=mask, use_cache=True)
    for h in hs:
        h.remove()
    talker.rope_deltas = None
    logits = out.logits[0, -1]
    K = talker.config.vocab_size - 1024
    eos = talker.config.codec_eos_token_id
    sel = torch.cat([logits[:K], logits[eos : eos + 1]])
    check_close(f"{name}: prefill logits == generate step-0 logits", sel, tensors_case[f"{name}.talker_logits"][0, 0],
                rtol=0, atol=1e-6)  # fmt: skip
    check_close(f"{name}: prefill past_hidden == final_normed[-1]", out.past_hidden[0, 0], caps["final_normed"][0, -1],
                rtol=0, atol=0)  # fmt: skip
    return {
        "prefill.inputs_embeds": emb[0],
        "prefill.position_ids": caps["position_ids"][0, 0],
        "prefill.layer0_q_normed": caps["q_normed"][0],
        "prefill.layer0_k_normed": caps["k_normed"][0],
        "prefill.layer0_attn_out": caps["attn_out"][0],
        "prefill.layer0_out": caps["layer0_out"][0],
        "prefill.final_normed": caps["final_normed"][0],
        "prefill.last_hidden": caps["final_normed"][0, -1],
        "prefill.logits_last": logits,
    }


def code_predictor_tensors(w, case_json, tensors_case) -> Dict[str, Any]:
    """The sub-talker on (h, code0) of frame 0 of a recorded greedy case, called directly the way
    talker.forward calls it, with hooks on the input projection and the final norm."""
    import torch

    name = case_json["name"]
    talker = w.model.talker
    cp = talker.code_predictor
    G = talker.config.num_code_groups
    h = tensors_case[f"{name}.talker_hidden"][0, 0]  # final-normed hidden that produced code0 of frame 0
    code0 = int(tensors_case[f"{name}.code0"][0, 0])
    caps = {"proj": [], "normed": []}
    hs = [cp.small_to_mtp_projection.register_forward_hook(lambda _m, _i, o: caps["proj"].append(o.detach().clone())),
          cp.model.norm.register_forward_hook(lambda _m, _i, o: caps["normed"].append(o.detach().clone()))]  # fmt: skip
    with torch.no_grad():
        x = torch.cat((h.view(1, 1, -1), talker.get_input_embeddings()(torch.tensor([[code0]]))), dim=1)
        res = cp.generate(inputs_embeds=x, max_new_tokens=G - 1, do_sample=False, top_p=1.0, top_k=50,
                          temperature=0.9, output_hidden_states=True, return_dict_in_generate=True,
                          output_logits=True)  # fmt: skip
    for hk in hs:
        hk.remove()
    logits = torch.stack([lg[0] for lg in res.logits], 0)
    codes = res.sequences[0]
    check_equal(f"{name}: direct code predictor codes == recorded frame 0", codes.tolist(),
                tensors_case[f"{name}.cp_codes"][0, 0].tolist())  # fmt: skip
    check_close(f"{name}: direct code predictor logits == recorded", logits, tensors_case[f"{name}.cp_logits"][0, :, 0],
                rtol=0, atol=1e-6)  # fmt: skip
    check_close(f"{name}: cp input == recorded", x[0], tensors_case[f"{name}.cp_inputs"][0, 0], rtol=0, atol=0)
    check_equal(f"{name}: greedy codes are argmax of logits", codes.tolist(), logits.argmax(-1).tolist())
    out = {
        "cp.h": h,
        "cp.code0": torch.tensor(code0),
        "cp.inputs_embeds": x[0],
        "cp.projected_prefill": caps["proj"][0][0],
        "cp.normed_last": torch.stack([n[0, -1] for n in caps["normed"]], 0),
        "cp.codes": codes,
        "cp.logits": logits,
    }
    # Frame feedback: the talker input of step 1 = sum of the G embeddings of frame 0 + trailing[0].
    frame = tensors_case[f"{name}.codes.0"][0]
    with torch.no_grad():
        parts = [talker.get_input_embeddings()(frame[:1].view(1, 1))]
        parts += [cp.get_input_embeddings()[g](frame[g + 1 : g + 2].view(1, 1)) for g in range(G - 1)]
        codec_sum = torch.cat(parts, dim=1).sum(1)[0]
    trailing = tensors_case[f"{name}.trailing_text"][0]
    tq = trailing[0] if trailing.shape[0] > 0 else tensors_case[f"{name}.tts_pad_embed"]
    step1 = tensors_case[f"{name}.step_inputs"][0, 0]
    check_close(f"{name}: feedback == codec_sum + trailing[0]", codec_sum + tq, step1, rtol=0, atol=1e-6)
    out.update({"feedback.frame_codes": frame, "feedback.codec_sum": codec_sum, "feedback.trailing_0": tq,
                "feedback.step1_input": step1})  # fmt: skip
    return out


# ----------------------------------------------------------------------------
# Logits processing (code 0) and sampling
# ----------------------------------------------------------------------------


def replay_processors(procs, history: List[int], raw):
    """Apply the talker's own LogitsProcessorList stage by stage. Returns [(class name, scores)]."""
    import torch

    ids = torch.tensor([history], dtype=torch.long).reshape(1, len(history))
    x = raw.clone().view(1, -1)
    stages = []
    for p in procs:
        x = p(ids, x)
        stages.append((type(p).__name__, x[0].clone()))
    return stages


def processor_description(procs) -> List[Dict[str, Any]]:
    out = []
    for p in procs:
        d = {"class": type(p).__name__}
        for k in ["penalty", "min_length", "min_new_tokens", "prompt_length_to_skip", "temperature", "top_k", "top_p",
                  "filter_value", "min_tokens_to_keep"]:  # fmt: skip
            if hasattr(p, k):
                v = getattr(p, k)
                d[k] = v if isinstance(v, (int, float, str, bool)) else str(v)
        for k in ["eos_token_id", "suppress_tokens"]:
            if hasattr(p, k):
                v = getattr(p, k)
                d[k] = v.tolist() if hasattr(v, "tolist") else v
        out.append(d)
    return out


def check_recorded_scores(name, procs, rec_call):
    """The processed scores HF returned == the captured processors replayed on (history, raw logits)."""
    import torch

    seq, logits, scores = rec_call["sequences"], rec_call["logits"], rec_call["scores"]
    for t in range(logits.shape[0]):
        for b in range(logits.shape[1]):
            st = replay_processors(procs, seq[b, :t].tolist(), logits[t, b])
            check_equal(f"{name} step {t} row {b} replayed processors", bool(torch.equal(st[-1][1], scores[t, b])), True)



def logits_processing(w, procs_greedy, procs_sampled, procs_topp, raw, name_src) -> (Dict[str, Any], Dict[str, Any]):
    """Processed code-0 logits for fixed histories, stage by stage, with the talker's own
    processor lists (captured from the greedy, sampled-default and sampled-top-p runs)."""
    import torch

    cfg = w.model.config.talker_config
    K = cfg.vocab_size - 1024
    eos = cfg.codec_eos_token_id
    codes = raw[:K]
    a = int(codes.argmax())
    neg = [int(i) for i in torch.argsort(codes) if codes[i] < 0]
    pos = [int(i) for i in torch.argsort(codes, descending=True) if codes[i] > 0 and int(i) != a]
    assert neg and pos, "need both signs among the code logits"
    b, c = neg[0], pos[0]
    histories = {"h0": [], "h1": [a], "h4": [a, b, c, a], "h3_eos": [c, eos, b]}
    tensors: Dict[str, Any] = {"raw": raw}
    info: Dict[str, Any] = {
        "raw_logits_source": f"{name_src}: talker step-0 raw codec_head logits, all V ids (cases.safetensors "
                             f"{name_src}.talker_logits[0, 0] holds its first K entries + EOS)",
        "histories": histories,
        "history_logit_signs": {str(i): ("negative" if float(raw[i]) < 0 else "positive") for i in sorted({a, b, c, eos})},
        "lists": {},
    }
    stored: Dict[str, Any] = {}
    for lname, procs in [("greedy", procs_greedy), ("sampled_default", procs_sampled), ("sampled_topp", procs_topp)]:
        info["lists"][lname] = processor_description(procs)
        for hname, hist in histories.items():
            stages = replay_processors(procs, hist, raw)
            if lname == "sampled_topp" and hname not in ("h1", "h4"):
                continue
            for i, (cls, x) in enumerate(stages):
                key = f"{lname}.{hname}.stage{i}"
                if lname == "sampled_default" and i < len(procs_greedy):
                    # identical processors to the greedy list: stored once (greedy.*), checked here
                    check_equal(f"{key} == greedy", bool(torch.equal(x, tensors[f"greedy.{hname}.stage{i}"])), True)
                    stored[key] = f"greedy.{hname}.stage{i}"
                    continue
                tensors[key] = x
            if lname != "greedy":
                tensors[f"{lname}.{hname}.probs"] = torch.softmax(stages[-1][1], dim=-1)
            else:
                tensors[f"{lname}.{hname}.argmax"] = torch.tensor(int(stages[-1][1].argmax()))
            by = {cls: x for cls, x in stages}
            for pname in ["MinLengthLogitsProcessor", "MinNewTokensLengthLogitsProcessor"]:
                check_equal(f"{lname}/{hname}: EOS masked by {pname} iff len(history) < 2",
                            bool(torch.isneginf(by[pname][eos])), len(hist) < 2)  # fmt: skip
            sup = by["SuppressTokensLogitsProcessor"][K:].clone()
            sup[eos - K] = float("-inf")
            check_equal(f"{lname}/{hname}: ids K..V-1 except EOS suppressed", bool(torch.isneginf(sup).all()), True)
    # Repetition penalty sign rule, checked on the reference output.
    rp = dict(tensors.items())[f"greedy.h4.stage0"]
    for i in sorted({a, b, c}):
        want = raw[i] * 1.05 if raw[i] < 0 else raw[i] / 1.05
        check_close(f"repetition penalty id {i}", rp[i], want, rtol=0, atol=0)
    info["stage_names"] = {lname: [d["class"] for d in info["lists"][lname]] for lname in info["lists"]}
    info["aliases"] = stored
    info["sampled_topp_histories"] = ["h1", "h4"]
    return tensors, info


def sampling_records(name, rec, tensors) -> Dict[str, Any]:
    """Every multinomial draw of a sampled run, in call order: p (probabilities after the
    processors + softmax), q (the Exp(1) noise the CPU kernel consumed), id = argmax(p / q)."""
    import torch

    draws = []
    tc = rec.talker_calls[0]
    V = tc["logits"].shape[-1]
    t_step, cp_step = 0, 0
    for i, d in enumerate(rec.draws):
        kind = "talker" if d["p"].shape[-1] == V else "code_predictor"
        tensors[f"{name}.draw{i}.p"] = d["p"]
        tensors[f"{name}.draw{i}.q"] = d["q"]
        tensors[f"{name}.draw{i}.id"] = d["id"][:, 0]
        if kind == "talker":
            entry = {"index": i, "kind": kind, "talker_step": t_step}
            t_step += 1
            cp_step = 0
        else:
            entry = {"index": i, "kind": kind, "frame": t_step - 1, "sub_step": cp_step,
                     "predicts_codebook": cp_step + 1}  # fmt: skip
            cp_step += 1
        entry["id"] = d["id"][:, 0].tolist()
        draws.append(entry)
        # The processed scores recorded by HF for talker steps give the same p.
        if kind == "talker":
            p = torch.softmax(tc["scores"][entry["talker_step"]], dim=-1)
            check_close(f"{name} draw {i} p == softmax(scores)", d["p"], p, rtol=0, atol=0)
    return {"draw_order": draws, "n_draws": len(draws)}


# ----------------------------------------------------------------------------
# Speaker encoder, ICL trim, waveform
# ----------------------------------------------------------------------------


def speaker_tensors(w, wav: np.ndarray, prompts) -> Dict[str, Any]:
    import torch

    from qwen_tts.core.models.modeling_qwen3_tts import mel_spectrogram

    m = w.model
    mel = mel_spectrogram(torch.from_numpy(wav).unsqueeze(0), n_fft=1024, num_mels=128, sampling_rate=24000,
                          hop_size=256, win_size=1024, fmin=0, fmax=12000).transpose(1, 2)  # fmt: skip
    check_equal("mel frames = floor(N/256)", mel.shape[1], wav.shape[0] // 256)
    caps: Dict[str, Any] = {}
    enc = m.speaker_encoder
    hs = []
    for i, blk in enumerate(enc.blocks):
        hs.append(blk.register_forward_hook(_keep_first(caps, f"block{i}")))
    for nm in ["mfa", "asp", "fc"]:
        hs.append(getattr(enc, nm).register_forward_hook(_keep_first(caps, nm)))
    xv = m.extract_speaker_embedding(audio=wav, sr=24000)
    for h in hs:
        h.remove()
    for key in ["xvec", "icl"]:
        check_close(f"prompt item {key} x-vector == extract_speaker_embedding", prompts[key + "_item"].ref_spk_embedding,
                    xv, rtol=0, atol=0)  # fmt: skip
    icl = prompts["icl_item"]
    out = {
        "ref_wav": torch.from_numpy(wav),
        "mel": mel[0],
        "xvector": xv,
        "ref_codes": icl.ref_code,
    }
    for k, v in caps.items():
        out[f"ecapa.{k}"] = v[0]
    return out


def icl_cut(ref_len: int, total_len: int, n_samples: int) -> int:
    """The reference's expression (Qwen3TTSModel.generate_voice_clone), evaluated the same way."""
    return int(ref_len / max(total_len, 1) * n_samples)


def icl_trim_table(upsample: int) -> Dict[str, Any]:
    rows = []
    pairs = [(44, 11), (44, 1), (1, 1), (3, 7), (10, 3), (29, 11), (100, 37), (150, 13)]
    # Find pairs where float rounding makes the cut differ from M * upsample (for both rates).
    for rate in [upsample, 1920]:
        found = []
        for M in range(1, 400):
            for T in range(1, 60):
                n = (M + T) * rate
                if icl_cut(M, M + T, n) != M * rate:
                    found.append((M, T))
                    if len(found) >= 4:
                        break
            if len(found) >= 4:
                break
        pairs += found
    for M, T in pairs:
        for rate in sorted({upsample, 1920}):
            n = (M + T) * rate
            cut = icl_cut(M, M + T, n)
            rows.append({"M": M, "T": T, "samples_per_frame": rate, "n_samples": n, "cut": cut,
                         "kept": n - cut, "cut_minus_M_times_rate": cut - M * rate})  # fmt: skip
    return {"formula": "cut = int(ref_len / max(total_len, 1) * wav.shape[0]) (Python floats: IEEE double); "
                       "ref_len = M reference frames, total_len = M + T, wav = decode(concat(ref_codes, codes)); "
                       "returned wav = wav[cut:]",
            "rows": rows}  # fmt: skip


# ----------------------------------------------------------------------------
# Config facts and tokenization
# ----------------------------------------------------------------------------


def config_facts(w, ck_report) -> Dict[str, Any]:
    m = w.model
    cfg = m.config
    t = cfg.talker_config
    cp = m.talker.code_predictor
    import torch

    attn = m.talker.model.layers[0].self_attn
    cattn = cp.model.layers[0].self_attn
    V = t.vocab_size
    return {
        "tts_model_type": cfg.tts_model_type,
        "tts_model_size": cfg.tts_model_size,
        "tokenizer_type": cfg.tokenizer_type,
        "tts_special_text_ids": {"tts_pad": cfg.tts_pad_token_id, "tts_bos": cfg.tts_bos_token_id,
                                 "tts_eos": cfg.tts_eos_token_id, "im_start": cfg.im_start_token_id,
                                 "im_end": cfg.im_end_token_id},  # fmt: skip
        "talker": {
            "hidden_size": t.hidden_size, "intermediate_size": t.intermediate_size,
            "num_hidden_layers": t.num_hidden_layers, "num_attention_heads": t.num_attention_heads,
            "num_key_value_heads": t.num_key_value_heads, "head_dim_used": attn.head_dim,
            "q_proj_out": attn.q_proj.out_features, "heads_times_head_dim_equals_hidden":
                attn.head_dim * t.num_attention_heads == t.hidden_size,
            "vocab_size": V, "text_vocab_size": t.text_vocab_size, "text_hidden_size": t.text_hidden_size,
            "num_code_groups": t.num_code_groups, "rope_theta": t.rope_theta, "rope_scaling": t.rope_scaling,
            "rms_norm_eps": t.rms_norm_eps,
        },
        "code_predictor": {
            "hidden_size": cp.config.hidden_size, "intermediate_size": cp.config.intermediate_size,
            "num_hidden_layers": cp.config.num_hidden_layers, "num_attention_heads": cp.config.num_attention_heads,
            "num_key_value_heads": cp.config.num_key_value_heads, "head_dim_used": cattn.head_dim,
            "vocab_size": cp.config.vocab_size, "rope_theta": cp.config.rope_theta,
            "n_codec_embeddings": len(cp.model.codec_embedding), "n_lm_heads": len(cp.lm_head),
            "small_to_mtp_projection": type(cp.small_to_mtp_projection).__name__,
        },
        "speaker_encoder_present": m.speaker_encoder is not None,
        "speaker_encoder_enc_dim": cfg.speaker_encoder_config.enc_dim if m.speaker_encoder is not None else None,
        "codec_ids": {k: getattr(t, k) for k in ["codec_pad_id", "codec_bos_id", "codec_eos_token_id", "codec_think_id",
                                                 "codec_nothink_id", "codec_think_bos_id", "codec_think_eos_id"]},
        "codec_language_id": t.codec_language_id,
        "spk_id": t.spk_id,
        "spk_is_dialect": t.spk_is_dialect,
        "supported_languages_wrapper": w.get_supported_languages(),
        "supported_speakers_wrapper": w.get_supported_speakers(),
        "suppress_tokens": {"rule": "range(V - 1024, V) minus codec_eos_token_id", "first": V - 1024, "last": V - 1,
                            "except": t.codec_eos_token_id},  # fmt: skip
        "min_new_tokens": 2,
        "wrapper_generate_defaults": w._merge_generate_kwargs(),
        "generation_config_json": w.generate_defaults,
        "speech_tokenizer": {"model_type": w.model.speech_tokenizer.get_model_type(),
                             "output_sample_rate": w.model.speech_tokenizer.get_output_sample_rate(),
                             "decode_upsample_rate": w.model.speech_tokenizer.get_decode_upsample_rate(),
                             "encode_downsample_rate": w.model.speech_tokenizer.get_encode_downsample_rate()},
        "n_tensors": ck_report["n_tensors"],
        "n_params": ck_report["n_params"],
        "init": ck_report["init"],
        "tokenizer_regex_after_wrapper_load": _regex_name(w.processor.tokenizer),
    }


def _regex_name(tok) -> str:
    from gen_tokenizer import MISTRAL_REGEX, QWEN2_REGEX, pretokenizer_regex

    r = pretokenizer_regex(tok)
    return "qwen2" if r == QWEN2_REGEX else ("mistral" if r == MISTRAL_REGEX else r)


def tokenization_cases(w) -> List[Dict[str, Any]]:
    out = []
    for name, text in TOKENIZATION_TEXTS.items():
        a = w._build_assistant_text(text)
        r = w._build_ref_text(text)
        i = w._build_instruct_text(text)
        ia, ir, ii = (_ids(w._tokenize_texts([s])[0]) for s in (a, r, i))
        out.append({
            "name": name, "text": text,
            "assistant_string": a, "assistant_ids": ia,
            "assistant_slices": {"role": ia[:3], "text": ia[3:-5], "first_text_token": ia[3:4], "rest": ia[4:-5],
                                 "tail": ia[-5:]},
            "ref_string": r, "ref_ids": ir, "ref_text_slice": ir[3:-2],
            "instruct_string": i, "instruct_ids": ii,
            "tokens": w.processor.tokenizer.convert_ids_to_tokens(ia),
        })  # fmt: skip
    return out


# ----------------------------------------------------------------------------
# Per checkpoint
# ----------------------------------------------------------------------------

UNIT_SOURCE = {"custom_voice": "cv_ryan_en_stream", "voice_design": "vd_nonstream", "base": "base_xvec_stream"}
WAVEFORM_CASE = "cv_ryan_en_stream"


def make_prompts(w) -> Dict[str, Any]:
    wav = ref_clip()
    icl = w.create_voice_clone_prompt(ref_audio=(wav, 24000), ref_text=REF_TEXT, x_vector_only_mode=False)[0]
    xv = w.create_voice_clone_prompt(ref_audio=(wav, 24000), x_vector_only_mode=True)[0]
    check_equal("x-vector item has no ref_code", xv.ref_code, None)
    return {"xvec": xv, "icl": icl, "xvec_item": xv, "icl_item": icl, "ref_clip": wav}


def icl_long_text(w, n_ref_frames: int) -> str:
    """Repeat TEXT_ICL_LONG_UNIT until ref text + text + tts_eos exceeds the n_ref_frames + 1
    codec positions by at least 5 (so that the trailing queue holds >= 5 text vectors)."""
    ref_n = len(_ids(w._tokenize_texts([w._build_ref_text(REF_TEXT)])[0])) - 5
    n_units = 1
    while True:
        text = ", ".join([TEXT_ICL_LONG_UNIT] * n_units)
        text = text[0].upper() + text[1:] + "."
        n = len(_ids(w._tokenize_texts([w._build_assistant_text(text)])[0])) - 8
        if ref_n + n + 1 >= n_ref_frames + 1 + 5:
            return text
        n_units += 1


def cases_for(kind: str, w, prompts) -> List[Dict[str, Any]]:
    if kind == "custom_voice":
        return cv_cases()
    if kind == "voice_design":
        return vd_cases()
    return base_cases(icl_long_text(w, prompts["icl"].ref_code.shape[0]))


def generate_expected(kind: str, fixtures: Path, ck_report: Dict[str, Any]) -> Dict[str, Any]:
    import torch

    d = fixtures / AREA_DIR / kind
    exp = d / "expected"
    if exp.exists():
        shutil.rmtree(exp)
    exp.mkdir(parents=True)
    w = load_wrapper(d, "eager")
    prompts = make_prompts(w) if kind == "base" else {}
    cases = cases_for(kind, w, prompts)
    tensors: Dict[str, Any] = {}
    samp_tensors: Dict[str, Any] = {}
    case_jsons: Dict[str, Dict[str, Any]] = {}
    procs: Dict[str, Any] = {}
    recs = {}
    extra: Dict[str, Any] = {}
    for case in cases:
        rec, wavs, sr = run_case(w, case, prompts)
        cj = summarize_case(w, case, rec, wavs, sr, prompts, tensors)
        procs[case["name"]] = rec.logits_processors[0]
        if not case["name"].startswith("cv_sampled"):
            cj["eos_masked_by_min_new_tokens"] = eos_masked_steps(
                rec.logits_processors[0], rec.talker_calls[0], w.model.config.talker_config.codec_eos_token_id)
        if case["name"].startswith("cv_sampled"):
            cj["sampling"] = sampling_records(case["name"], rec, samp_tensors)
            check_recorded_scores(case["name"], rec.logits_processors[0], rec.talker_calls[0])
        else:
            check_equal(f"{case['name']}: greedy run draws nothing", len(rec.draws), 0)
            check_recorded_scores(case["name"], rec.logits_processors[0], rec.talker_calls[0])
        if wavs is not None:
            dc = rec.decode_calls[-1]
            for b, s in enumerate(cj["samples"]):
                full = dc["wavs"][b].shape[0]
                s["decoded_frames"] = int(dc["codes"][b].shape[0])
                s["decoded_samples"] = int(full)
                if s["n_ref_frames"]:
                    cut = icl_cut(s["n_ref_frames"], s["decoded_frames"], full)
                    check_equal(f"{case['name']}[{b}] ICL trim", s["wav_len"], full - cut)
                    check_equal(f"{case['name']}[{b}] decode input = ref + generated", dc["codes"][b].tolist(),
                                prompts["icl"].ref_code.tolist() + s["codes"])  # fmt: skip
                    s["icl_cut"] = cut
                else:
                    check_equal(f"{case['name']}[{b}] wav_len", s["wav_len"], full)
                check_equal(f"{case['name']}[{b}] decoded samples", full,
                            s["decoded_frames"] * w.model.speech_tokenizer.get_decode_upsample_rate())  # fmt: skip
        if case["name"] == WAVEFORM_CASE:
            extra["waveform"] = {"codes": rec.model_generate_calls[0]["codes"][0], "wav": torch.from_numpy(wavs[0])}
            wav2, sr2 = w.model.speech_tokenizer.decode([{"audio_codes": extra["waveform"]["codes"]}])
            check_close("waveform: direct speech_tokenizer.decode", wav2[0], wavs[0], rtol=0, atol=0)
            check_equal("wrapper sample rate", sr, 24000)
        if case["name"] == "base_icl_stream_short":
            check_equal("ref_audio path encodes the same ref codes", rec.encode_calls[0]["codes"][0].tolist(),
                        prompts["icl"].ref_code.tolist())  # fmt: skip
        case_jsons[case["name"]] = cj
        recs[case["name"]] = rec
    checks = self_checks(kind, case_jsons)
    save_tensors(exp / "cases.safetensors", tensors)
    if samp_tensors:
        save_tensors(exp / "sampling.safetensors", samp_tensors)
    # Unit-level tensors from one detailed greedy case.
    src = UNIT_SOURCE[kind]
    unit = unit_tensors(w)
    unit.update(prefill_tensors(w, case_jsons[src], tensors))
    unit.update(code_predictor_tensors(w, case_jsons[src], tensors))
    save_tensors(exp / "talker_unit.safetensors", unit)
    unit_json = {"source_case": src, "rope_positions": ROPE_POSITIONS}
    if kind == "custom_voice":
        lp_t, lp_info = logits_processing(w, procs["cv_ryan_en_stream"], procs["cv_sampled_default"],
                                          procs["cv_sampled_topp"], recs["cv_ryan_en_stream"].talker_calls[0]["logits"][0, 0],
                                          "cv_ryan_en_stream")  # fmt: skip
        save_tensors(exp / "logits_processing.safetensors", lp_t)
        dump_json_tts(exp / "logits_processing.json", lp_info)
        save_tensors(exp / "waveform.safetensors", extra["waveform"])
    if kind == "base":
        save_tensors(exp / "speaker.safetensors", speaker_tensors(w, prompts["ref_clip"], prompts))
        dump_json_tts(exp / "icl_trim.json", icl_trim_table(w.model.speech_tokenizer.get_decode_upsample_rate()))
    facts = config_facts(w, ck_report)
    dump_json_tts(exp / "config_facts.json", facts)
    dump_json_tts(exp / "cases.json", {"checkpoint": f"tests/fixtures/{AREA_DIR}/{kind}", "unit": unit_json,
                                   "cases": list(case_jsons.values())})  # fmt: skip
    masked = {n: c["eos_masked_by_min_new_tokens"] for n, c in case_jsons.items() if c.get("eos_masked_by_min_new_tokens")}
    return {"cases": len(case_jsons), "checks": checks, "tokenization": tokenization_cases(w), "eos_masked": masked}


def self_checks(kind: str, cj: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    """Batch rows == single runs, 0b6 instruct dropped, non-degeneracy, EOS/max coverage."""
    out: Dict[str, Any] = {}
    greedy = {k: v for k, v in cj.items() if not k.startswith("cv_sampled")}
    for name, c in greedy.items():
        for b, s in enumerate(c["samples"]):
            if s["frames"] >= 6:
                distinct = len(set(s["code0"][: s["frames"]]))
                if distinct < 3:
                    raise AssertionError(f"{name}[{b}]: degenerate code-0 sequence {s['code0']}")
            if s["frames"] < 2:
                raise AssertionError(f"{name}[{b}]: stops after {s['frames']} frames")
    if kind == "custom_voice":
        for batch, singles in [("cv_batch", ["cv_batch_item0", "cv_batch_item1"]),
                               ("cv_batch_nonstream", ["cv_ryan_en_nonstream", "cv_vivian_zh"])]:  # fmt: skip
            for b, single in enumerate(singles):
                check_equal(f"{batch} row {b} == {single}", cj[batch]["samples"][b]["codes"],
                            cj[single]["samples"][0]["codes"])  # fmt: skip
            assert cj[batch]["samples"][1]["left_pad"] + cj[batch]["samples"][0]["left_pad"] > 0, batch
        check_equal("0b6 drops instruct", cj["cv_instruct_dropped_0b6"]["samples"][0]["codes"],
                    cj["cv_ryan_en_nonstream"]["samples"][0]["codes"])  # fmt: skip

        out["batch_stop_steps"] = {n: [s["eos_step"] for s in cj[n]["samples"]] for n in ["cv_batch", "cv_batch_nonstream"]}

        def one_first(v):
            return v[0] != v[1] and (v[0] is not None or v[1] is not None)

        if not any(one_first(v) for v in out["batch_stop_steps"].values()):
            raise AssertionError(f"no custom_voice batch where one sample stops before the other: {out['batch_stop_steps']}")
        stops = {n: c["samples"][0]["stop"] for n, c in greedy.items()}
        assert any(v == "max_new_tokens" for v in stops.values()), stops
        assert any(v == "eos" for v in stops.values()), stops
        out["stops"] = stops
    if kind == "base":
        check_equal("base_batch_mixed row 0 == base_xvec_stream", cj["base_batch_mixed"]["samples"][0]["codes"],
                    cj["base_xvec_stream"]["samples"][0]["codes"])  # fmt: skip
        check_equal("base_batch_mixed row 1 == base_icl_stream_short", cj["base_batch_mixed"]["samples"][1]["codes"],
                    cj["base_icl_stream_short"]["samples"][0]["codes"])  # fmt: skip
        lay = {n: (c["samples"][0]["trailing_len"], c["samples"][0]["n_ref_frames"]) for n, c in cj.items()}
        assert lay["base_icl_stream_long"][0] >= 5, lay
        out["icl_trailing_len_long"] = lay["base_icl_stream_long"][0]
    out["frames"] = {n: [s["frames"] for s in c["samples"]] for n, c in cj.items()}
    return out


def eos_masked_steps(procs, rec_call, eos: int) -> List[List[int]]:
    """[row, step] where, without the two min-length processors, greedy would have picked EOS
    (all other processors of the talker's own list applied to the recorded raw logits)."""
    others = [p for p in procs if type(p).__name__ not in ("MinLengthLogitsProcessor", "MinNewTokensLengthLogitsProcessor")]
    seq, logits = rec_call["sequences"], rec_call["logits"]
    out = []
    for t in range(min(2, logits.shape[0])):
        for b in range(logits.shape[1]):
            st = replay_processors(others, seq[b, :t].tolist(), logits[t, b])
            if int(st[-1][1].argmax()) == eos:
                out.append([b, t])
    return out


# ----------------------------------------------------------------------------
# Re-check from disk (fresh load, eager and sdpa)
# ----------------------------------------------------------------------------


def recheck(fixtures: Path, kind: str, attn: str) -> Dict[str, Any]:
    import torch
    from safetensors.torch import load_file

    d = fixtures / AREA_DIR / kind
    w = load_wrapper(d, attn)
    exp = d / "expected"
    cj = json.loads((exp / "cases.json").read_text())
    t = load_file(str(exp / "cases.safetensors"))
    prompts = {}
    if kind == "base":
        sp = load_file(str(exp / "speaker.safetensors"))
        wav = sp["ref_wav"].numpy()
        check_equal("stored ref clip == generator", bool(np.array_equal(wav, ref_clip())), True)
        prompts = make_prompts(w)
        check_close("reload x-vector", prompts["xvec"].ref_spk_embedding, sp["xvector"], rtol=0, atol=1e-6)
        check_equal("reload ref codes", prompts["icl"].ref_code.tolist(), sp["ref_codes"].tolist())
    cases = {c["name"]: c for c in cases_for(kind, w, prompts)}
    n = 0
    for c in cj["cases"]:
        case = cases[c["name"]]
        if c["name"].startswith("cv_sampled") and attn != "eager":
            continue
        rec, wavs, sr = run_case(w, case, prompts)
        tc = rec.talker_calls[0]
        atol = 0 if attn == "eager" else 1e-5
        check_close(f"{attn} {c['name']} prompt", tc["inputs_embeds"], t[f"{c['name']}.prompt_embeds"], rtol=0, atol=atol)
        check_close(f"{attn} {c['name']} trailing", tc["trailing_text_hidden"], t[f"{c['name']}.trailing_text"],
                    rtol=0, atol=atol)  # fmt: skip
        codes = rec.model_generate_calls[0]["codes"]
        for b, s in enumerate(c["samples"]):
            check_equal(f"{attn} {c['name']}[{b}] codes", codes[b].tolist(), s["codes"])
        if c["detail"]:
            K = w.model.config.talker_config.vocab_size - 1024
            eos = w.model.config.talker_config.codec_eos_token_id
            lg = torch.cat([tc["logits"][..., :K], tc["logits"][..., eos : eos + 1]], dim=-1)
            check_close(f"{attn} {c['name']} talker logits", lg, t[f"{c['name']}.talker_logits"],
                        rtol=1e-5 if atol else 0, atol=atol)  # fmt: skip
        n += 1
    if kind == "custom_voice" and attn == "eager":
        wf = load_file(str(exp / "waveform.safetensors"))
        wav2, _ = w.model.speech_tokenizer.decode([{"audio_codes": wf["codes"]}])
        check_close("reload waveform", torch.from_numpy(wav2[0]), wf["wav"], rtol=0, atol=0)
    return {f"{attn}_cases_rechecked": n}


# ----------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------


def main(fixtures: Path = FIXTURES) -> Dict[str, Any]:
    import torch

    root = fixtures / AREA_DIR
    root.mkdir(parents=True, exist_ok=True)
    report: Dict[str, Any] = {}
    report["tokenizer"] = build_tokenizer(fixtures)
    build, codec_src_file = codec_builder()
    with tempfile.TemporaryDirectory() as td:
        codec_dir = Path(td) / "speech_tokenizer"
        report["codec"] = {"builder": "gen_codec12.build_tiny_codec12", "report": _jsonable(build(codec_dir)),
                           "info": codec_info(codec_dir)}  # fmt: skip
        ck_reports = {}
        for kind in KINDS:
            r = build_checkpoint(kind, fixtures, codec_dir)
            r.pop("model")
            ck_reports[kind] = r
    RUN_NOTES["tts_codec_source"] = codec_src_file.replace(str(Path.cwd()) + "/", "")
    tok_cases = None
    for kind in KINDS:
        res = generate_expected(kind, fixtures, ck_reports[kind])
        if tok_cases is None:
            tok_cases = res["tokenization"]
        else:
            check_equal(f"{kind}: tokenization identical across checkpoints", res["tokenization"], tok_cases)
        report[kind] = {"n_tensors": ck_reports[kind]["n_tensors"], "n_params": ck_reports[kind]["n_params"],
                        "cases": res["cases"], "checks": res["checks"], "eos_masked": res["eos_masked"],
                        "speaker_encoder_config_quirk": ck_reports[kind]["save_pretrained_speaker_encoder_model_type"]}
    tokdir = root / "tokenizer"
    from tokenizers import Tokenizer

    raw_tok = Tokenizer.from_file(str(tokdir / "tokenizer.json"))
    for c in tok_cases:
        for key in ["assistant", "ref", "instruct"]:
            check_equal(f"tokenizer.json {c['name']} {key}", raw_tok.encode(c[f"{key}_string"]).ids, c[f"{key}_ids"])
    dump_json_tts(tokdir / "cases.json", {
        "note": "Formatted with Qwen3TTSModel._build_assistant_text/_build_ref_text/_build_instruct_text and tokenized "
                "with Qwen3TTSModel._tokenize_texts (the processor loaded from the checkpoint, fix_mistral_regex=True: "
                "no effect, vocabulary < 100000). Same ids from all three checkpoints.",
        "tiny_layout": {k: v for k, v in report["tokenizer"].items() if k != "special_ids"},
        "special_token_ids": report["tokenizer"]["special_ids"],
        "cases": tok_cases,
    })  # fmt: skip
    report["eos_masked_by_min_new_tokens"] = {k: v for kind in KINDS for k, v in report[kind]["eos_masked"].items()}
    if not any(n.startswith("cv_") for n in report["eos_masked_by_min_new_tokens"]):
        raise AssertionError("no greedy custom_voice case where min_new_tokens masks an EOS argmax at step 0/1")
    # Fresh reload from disk, eager (bit-exact) and sdpa (same codes).
    for kind in KINDS:
        report[kind].update(recheck(fixtures, kind, "eager"))
        report[kind].update(recheck(fixtures, kind, "sdpa"))
    from gen_tts_doc import write_cases_md

    write_cases_md(fixtures, report)
    for p in root.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    sizes = {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()}
    total = sum(sizes.values())
    big = {k: v for k, v in sizes.items() if v > 3 * 1024 * 1024}
    assert not big, f"files over 3 MB: {big}"
    assert total < 8 * 1024 * 1024, f"tts-tiny is {total} bytes (limit 8 MB)"
    report["bytes_total"] = total
    report["largest_files"] = dict(sorted(sizes.items(), key=lambda kv: -kv[1])[:6])
    return report
