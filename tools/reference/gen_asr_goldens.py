"""ASR goldens for the tiny checkpoint: front end, encoder (full and windowed),
prompts, greedy generation, parsing.  Writes tests/fixtures/asr-tiny/expected/.
"""

from __future__ import annotations

import functools
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from common import FIXTURES, RUN_NOTES, check_close, check_equal, dump_json, import_qwen_asr, save_tensors
from hooks import capture_decoder, capture_encoder, per_window_reference

SR = 16000
MAX_NEW_TOKENS = 32

ESPEAK_SOURCES = {
    "a": dict(voice="en-us", speed=160, text="Mister Quilter is the apostle of the middle classes, "
              "and we are glad to welcome his gospel."),
    "b": dict(voice="en-us", speed=165, text="The quick brown fox jumps over the lazy dog."),
}  # fmt: skip

# name -> (espeak source, start sample at 16 kHz, length in samples)
CLIPS = {
    "speech_5p3s": ("a", 0, 84800),  # T=530: chunks 5x100 + 30, N=69, windows 26/26/17
    "speech_3p0s": ("b", 0, 48000),  # T=300: T mod 100 == 0, N=39, windows 26/13
    "speech_0p35s": ("a", 16000, 5600),  # T=35: one short chunk, N=5
    "speech_250samples": ("b", 8000, 250),  # T=1: one frame, N=1
}

CONTEXT = "Hotwords: Quilter, apostle, gospel. 你好"


# ----------------------------------------------------------------------------
# Audio
# ----------------------------------------------------------------------------


def espeak_version() -> str:
    return subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True).stdout.strip()


@functools.lru_cache(maxsize=None)
def espeak_16k(key: str) -> np.ndarray:
    """espeak-ng (22.05 kHz) -> reference normalize_audio_input (librosa soxr_hq
    resample to 16 kHz, float32, peak rule)."""
    import soundfile as sf

    import_qwen_asr()
    from qwen_asr.inference.utils import normalize_audio_input

    src = ESPEAK_SOURCES[key]
    with tempfile.TemporaryDirectory() as td:
        wav = Path(td) / "x.wav"
        subprocess.run(
            ["espeak-ng", "-v", src["voice"], "-s", str(src["speed"]), "-w", str(wav), src["text"]],
            check=True,
            capture_output=True,
        )
        x, sr = sf.read(str(wav), dtype="float32")
    y = normalize_audio_input((x, sr))
    assert y.dtype == np.float32 and y.ndim == 1
    return y


def make_clips() -> Dict[str, np.ndarray]:
    out = {}
    for name, (src, start, length) in CLIPS.items():
        full = espeak_16k(src)
        assert len(full) >= start + length, (name, len(full))
        clip = np.ascontiguousarray(full[start : start + length]).astype(np.float32)
        assert np.abs(clip).max() > 0.01, f"{name} is silent"
        out[name] = clip
    RUN_NOTES["espeak"] = {"version": espeak_version(), "sources": ESPEAK_SOURCES, "clips": CLIPS}
    return out


# ----------------------------------------------------------------------------
# Encoder bookkeeping (mirrors Qwen3ASRAudioEncoder.forward, asserted below)
# ----------------------------------------------------------------------------


def encoder_bookkeeping(T: int, n_window: int, n_window_infer: int) -> Dict[str, Any]:
    import torch

    import_qwen_asr()
    from qwen_asr.core.transformers_backend.modeling_qwen3_asr import _get_feat_extract_output_lengths as L

    C = 2 * n_window
    n = -(-T // C)
    chunk_lengths = [C] * n
    chunk_lengths[-1] = T % C if T % C else C
    after = [int(L(torch.tensor(c))) for c in chunk_lengths]
    N = int(L(torch.tensor(T)))
    assert sum(after) == N, (T, after, N)
    window = max(after) * (n_window_infer // C)
    wins = [window] * (N // window) + ([N % window] if N % window else [])
    cu = np.cumsum([0] + wins).tolist()
    return {
        "T": T,
        "n_chunks": n,
        "chunk_lengths": chunk_lengths,
        "padded_chunk_length": max(chunk_lengths),
        "chunk_lengths_after_cnn": after,
        "N": N,
        "window_tokens": window,
        "window_lengths": wins,
        "cu_seqlens": cu,
    }


# ----------------------------------------------------------------------------
# Per-clip front end + encoder
# ----------------------------------------------------------------------------


def features_for(processor, wav: np.ndarray, prompt: str):
    inputs = processor(text=[prompt], audio=[wav], return_tensors="pt", padding=True)
    return inputs


def encoder_golden(model_sdpa, model_eager, processor, name: str, wav: np.ndarray, out_dir: Path) -> Dict[str, Any]:
    import torch

    acfg = model_sdpa.config.thinker_config.audio_config
    prompt = "<|audio_start|><|audio_pad|><|audio_end|>"
    inputs = features_for(processor, wav, prompt)
    feats = inputs["input_features"][0]  # (128, T) f32
    flen = int(inputs["feature_attention_mask"].sum())
    T = feats.shape[1]
    check_equal(f"{name} T", T, len(wav) // 160)
    check_equal(f"{name} feature len", flen, T)
    book = encoder_bookkeeping(T, acfg.n_window, acfg.n_window_infer)
    # The processor expands the pad to N placeholders.
    npads = int((inputs["input_ids"][0] == model_sdpa.config.thinker_config.audio_token_id).sum())
    check_equal(f"{name} N placeholders", npads, book["N"])

    tensors: Dict[str, Any] = {"waveform": torch.from_numpy(wav), "mel": feats}
    results = {}
    for variant, windowed in [("full", False), ("windowed", True)]:
        outs = {}
        for tag, model in [("sdpa", model_sdpa), ("eager", model_eager)]:
            tower = model.thinker.audio_tower
            with torch.no_grad(), capture_encoder(tower, windowed) as caps:
                out = tower(feats, feature_lens=torch.tensor([T])).last_hidden_state
            outs[tag] = (out, dict(caps))
        out, caps = outs["sdpa"]
        check_close(f"{name} {variant} sdpa vs eager", outs["eager"][0], out, rtol=1e-4, atol=1e-5)
        check_equal(f"{name} cu_seqlens", caps["cu_seqlens"].tolist(), book["cu_seqlens"])
        check_equal(f"{name} N", out.shape[0], book["N"])
        if windowed:
            assert caps.get("window_mask_applied")
            ind = per_window_reference(model_sdpa.thinker.audio_tower, caps["after_pos_gather"], caps["cu_seqlens"])
            err = check_close(f"{name} windowed vs per-window", out, ind, rtol=1e-4, atol=1e-5)
            results["windowed_vs_independent_max_abs_diff"] = err
        else:
            # The thinker's own entry point (get_audio_features) gives the same.
            with torch.no_grad():
                via = model_sdpa.thinker.get_audio_features(
                    inputs["input_features"], feature_attention_mask=inputs["feature_attention_mask"]
                )
            check_close(f"{name} get_audio_features", via, out, rtol=0, atol=0)
            tensors["conv_out"] = caps["conv_out"]
            tensors["after_pos_gather"] = caps["after_pos_gather"]
        if variant == "windowed":
            # Before the first layer nothing depends on the attention pattern.
            check_close(f"{name} gathered equal", caps["after_pos_gather"], tensors["after_pos_gather"], rtol=0, atol=0)
        tensors[f"{variant}_layer0_out"] = caps["layer0_out"]
        tensors[f"{variant}_last_layer_out"] = caps["last_layer_out"]
        tensors[f"{variant}_audio_embeds"] = out
    # Position table rows added per chunk (first rows of the sinusoid table).
    tower = model_sdpa.thinker.audio_tower
    tensors["positional_embedding_rows"] = tower.positional_embedding.positional_embedding[: tensors["conv_out"].shape[1]]
    check_close(
        f"{name} pos add",
        (tensors["conv_out"] + tensors["positional_embedding_rows"][None])[
            torch.nn.utils.rnn.pad_sequence(
                [torch.ones(n, dtype=torch.bool) for n in book["chunk_lengths_after_cnn"]], batch_first=True
            )
        ],
        tensors["after_pos_gather"],
        rtol=0,
        atol=0,
    )
    diff = (tensors["full_audio_embeds"] - tensors["windowed_audio_embeds"]).abs().max().item()
    results["full_vs_windowed_max_abs_diff"] = diff
    tensors["chunk_lengths"] = torch.tensor(book["chunk_lengths"])
    tensors["chunk_lengths_after_cnn"] = torch.tensor(book["chunk_lengths_after_cnn"])
    tensors["cu_seqlens"] = torch.tensor(book["cu_seqlens"])
    fname = f"clip_{name}.safetensors"
    save_tensors(out_dir / fname, tensors)
    size = (out_dir / fname).stat().st_size
    assert size < 1024 * 1024, f"{fname} too big ({size})"
    meta = {
        "file": fname,
        "num_samples": len(wav),
        "duration_s": len(wav) / SR,
        "source": {"espeak": CLIPS[name][0], "start_sample_16k": CLIPS[name][1]},
        "feature_attention_mask_sum": flen,
        **book,
        **results,
        "tensors": {k: list(v.shape) for k, v in tensors.items()},
    }
    return meta


# ----------------------------------------------------------------------------
# Generation
# ----------------------------------------------------------------------------


def eos_ids(ids: Dict[str, int]) -> List[int]:
    # Same order as the reference default [151645, 151643] (<|im_end|>, <|endoftext|>).
    return [ids["<|im_end|>"], ids["<|endoftext|>"]]


def normalize_languages(languages):
    from qwen_asr.inference.utils import normalize_language_name, validate_language

    out = []
    for l in languages:
        if l is None or str(l).strip() == "":
            out.append(None)
        else:
            ln = normalize_language_name(str(l))
            validate_language(ln)
            out.append(ln)
    return out


def run_generate(model, processor, asr, ids, wavs, contexts, languages, want_logits=False):
    import torch

    languages = normalize_languages(languages)
    prompts = [asr._build_text_prompt(context=c, force_language=l) for c, l in zip(contexts, languages)]
    inputs = processor(text=prompts, audio=list(wavs), return_tensors="pt", padding=True)
    inputs = inputs.to(model.device).to(model.dtype)
    with torch.no_grad():
        g = model.generate(
            **inputs,
            max_new_tokens=MAX_NEW_TOKENS,
            eos_token_id=eos_ids(ids),
            output_logits=want_logits,
        )
    L = inputs["input_ids"].shape[1]
    gen = g.sequences[:, L:]
    decoded = processor.batch_decode(gen, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    return prompts, inputs, g, gen, decoded


def trimmed(seq: List[int], eos: List[int]) -> List[int]:
    for i, t in enumerate(seq):
        if t in eos:
            return seq[: i + 1]
    return seq


def generation_case(model, processor, asr, ids, clips, clip_names, contexts, languages, want_logits=False):
    from qwen_asr.inference.utils import parse_asr_output

    prompts, inputs, g, gen, decoded = run_generate(
        model, processor, asr, ids, [clips[n] for n in clip_names], contexts, languages, want_logits
    )
    eos = eos_ids(ids)
    am = inputs["attention_mask"]
    langs_norm = normalize_languages(languages)
    case: Dict[str, Any] = {
        "clips": clip_names,
        "contexts": contexts,
        "languages": languages,
        "languages_normalized": langs_norm,
        "prompt_texts": prompts,
        "input_ids": inputs["input_ids"].tolist(),
        "attention_mask": am.tolist(),
        "prompt_ids": [row[m.bool()].tolist() for row, m in zip(inputs["input_ids"], am)],
        "feature_attention_mask_sum": inputs["feature_attention_mask"].sum(-1).tolist(),
        "num_audio_tokens": (inputs["input_ids"] == ids["<|audio_pad|>"]).sum(-1).tolist(),
        "generated_ids": gen.tolist(),
        "generated_ids_trimmed": [trimmed(r, eos) for r in gen.tolist()],
        "stopped_on_eos": [any(t in eos for t in r) for r in gen.tolist()],
        "raw_decoded": decoded,
        "parsed": [list(parse_asr_output(d, user_language=l)) for d, l in zip(decoded, langs_norm)],
    }
    # The reference end-to-end API gives the same (generate patched only to pass
    # the tiny checkpoint's EOS ids; see README "EOS ids").
    res = asr.transcribe(
        audio=[(clips[n], SR) for n in clip_names],
        context=list(contexts),
        language=list(languages),
    )
    case["transcribe"] = [{"language": r.language, "text": r.text} for r in res]
    for r, p in zip(case["transcribe"], case["parsed"]):
        check_equal("transcribe vs parse", [r["language"], r["text"]], p)
    return case, inputs, g


def make_asr_api(model, processor, ids):
    import_qwen_asr()
    from qwen_asr.inference.qwen3_asr import Qwen3ASRModel

    asr = Qwen3ASRModel(
        backend="transformers",
        model=model,
        processor=processor,
        max_inference_batch_size=-1,
        max_new_tokens=MAX_NEW_TOKENS,
    )
    orig = model.generate

    @functools.wraps(orig)
    def gen_with_tiny_eos(*a, **k):
        k.setdefault("eos_token_id", eos_ids(ids))
        return orig(*a, **k)

    asr.model = model
    asr._orig_generate = orig
    model.generate = gen_with_tiny_eos
    return asr


def prefill_golden(model, inputs, out_path: Path) -> Dict[str, Any]:
    """Decoder prefill intermediates for one single-item ASR prompt."""
    import torch

    with torch.no_grad(), capture_decoder(model.thinker.model) as caps:
        out = model.thinker(
            input_ids=inputs["input_ids"],
            input_features=inputs["input_features"],
            attention_mask=inputs["attention_mask"],
            feature_attention_mask=inputs["feature_attention_mask"],
        )
    L = inputs["input_ids"].shape[1]
    cos, sin = caps["rope"]
    sel = [0, 1, 2, 3, L - 1]
    t = {
        "input_ids": inputs["input_ids"][0],
        "position_ids": caps["position_ids"][0, 0].long(),  # float in the reference (cumsum of a float mask)
        "inputs_embeds": caps["inputs_embeds"][0],
        "rope_cos": cos[0, sel],
        "rope_sin": sin[0, sel],
        "rope_positions": torch.tensor(sel),
        "layer0_q_normed": caps["layer0_q_normed"][0],
        "layer0_out": caps["layer0_out"][0],
        "final_normed": caps["final_normed"][0],
        "last_logits": out.logits[0, -1],
    }
    save_tensors(out_path, t)
    return {k: list(v.shape) for k, v in t.items()}


def main(fixtures: Path = FIXTURES) -> Dict[str, Any]:
    import torch

    from gen_asr_tiny import load_reference, tiny_ids

    import_qwen_asr()
    out_dir = fixtures / "asr-tiny" / "expected"
    out_dir.mkdir(parents=True, exist_ok=True)
    ids = tiny_ids(fixtures)
    model, processor = load_reference(fixtures, attn="sdpa")
    model_eager, _ = load_reference(fixtures, attn="eager")
    clips = make_clips()

    report: Dict[str, Any] = {"clips": {}}
    for name, wav in clips.items():
        report["clips"][name] = encoder_golden(model, model_eager, processor, name, wav, out_dir)

    asr = make_asr_api(model, processor, ids)
    cases: Dict[str, Any] = {}
    for name in clips:
        cases[f"auto_{name}"], inputs, g = generation_case(
            model, processor, asr, ids, clips, [name], [""], [None], want_logits=(name == "speech_5p3s")
        )
        if name == "speech_5p3s":
            shapes = prefill_golden(model, inputs, out_dir / "asr_prefill_speech_5p3s.safetensors")
            with torch.no_grad():
                fwd = model.thinker(**{k: inputs[k] for k in
                                       ["input_ids", "input_features", "attention_mask", "feature_attention_mask"]})
            check_close("first-step logits (generate vs forward)", g.logits[0][0], fwd.logits[0, -1], rtol=1e-5, atol=1e-5)
            cases[f"auto_{name}"]["first_step_logits_file"] = "asr_prefill_speech_5p3s.safetensors:last_logits"
            cases[f"auto_{name}"]["first_step_top5"] = torch.topk(fwd.logits[0, -1], 5).indices.tolist()
            report["prefill"] = shapes
    # The eager backend gives the same greedy ids as sdpa (the reference default).
    asr_e = make_asr_api(model_eager, processor, ids)
    _, _, _, gen_e, _ = run_generate(model_eager, processor, asr_e, ids, [clips["speech_5p3s"]], [""], [None])
    check_equal("eager vs sdpa greedy ids", gen_e[0].tolist(), cases["auto_speech_5p3s"]["generated_ids"][0])
    cases["forced_english_speech_5p3s"], _, _ = generation_case(
        model, processor, asr, ids, clips, ["speech_5p3s"], [""], ["English"])
    cases["context_speech_5p3s"], _, _ = generation_case(
        model, processor, asr, ids, clips, ["speech_5p3s"], [CONTEXT], [None])
    cases["context_forced_speech_3p0s"], _, _ = generation_case(
        model, processor, asr, ids, clips, ["speech_3p0s"], [CONTEXT], ["english"])

    # Batches: batched ids and batch-size-1 ids per item.
    batches = {
        # 250 samples is not a multiple of 160: batched (right-padded waveform)
        # it gets ceil(250/160)=2 frames instead of 1 (asr.md §0 item 7).
        "batch_5p3s_250samples": (["speech_5p3s", "speech_250samples"], ["", ""], [None, None]),
        # Different prompt lengths (context vs forced language) -> left padding.
        "batch_3p0s_ctx_0p35s_forced": (["speech_3p0s", "speech_0p35s"], [CONTEXT, ""], [None, "English"]),
    }  # fmt: skip
    for bname, (cn, ctx, lang) in batches.items():
        case, _, _ = generation_case(model, processor, asr, ids, clips, cn, ctx, lang)
        singles = []
        for i in range(len(cn)):
            s, _, _ = generation_case(model, processor, asr, ids, clips, [cn[i]], [ctx[i]], [lang[i]])
            singles.append({k: s[k][0] for k in ["prompt_ids", "feature_attention_mask_sum", "num_audio_tokens",
                                                 "generated_ids", "generated_ids_trimmed", "stopped_on_eos",
                                                 "raw_decoded", "parsed"]})  # fmt: skip
        case["batch_size_1"] = singles
        case["batched_equals_batch_size_1"] = [
            case["generated_ids_trimmed"][i] == singles[i]["generated_ids_trimmed"] for i in range(len(cn))
        ]
        cases[bname] = case

    gen_doc = {
        "description": "Greedy generation with the tiny checkpoint (float32, sdpa attention = reference default; "
        "audio encoder with FULL attention, as the reference computes it without flash-attn). "
        f"max_new_tokens={MAX_NEW_TOKENS}, do_sample=False, eos_token_id={eos_ids(ids)} "
        "(tiny <|im_end|>, <|endoftext|>; the reference wrapper hard-codes [151645, 151643]). "
        "generated_ids are sequences[:, prompt_len:] (finished rows padded with the first eos id); "
        "raw_decoded = batch_decode(generated_ids, skip_special_tokens=True, clean_up_tokenization_spaces=False); "
        "parsed = parse_asr_output(raw_decoded, user_language=normalized forced language); "
        "transcribe = Qwen3ASRModel.transcribe() end-to-end result.",
        "eos_token_ids": eos_ids(ids),
        "reference_default_eos_token_ids": [151645, 151643],
        "pad_token_id_used_for_finished_rows": eos_ids(ids)[0],
        "max_new_tokens": MAX_NEW_TOKENS,
        "cases": cases,
    }
    dump_json(out_dir / "asr_generate.json", gen_doc)
    dump_json(out_dir / "clips.json", {"espeak": RUN_NOTES.get("espeak"), "clips": report["clips"]})
    report["cases"] = {k: {"stopped_on_eos": v["stopped_on_eos"],
                           "n_generated": [len(x) for x in v["generated_ids_trimmed"]]} for k, v in cases.items()}  # fmt: skip
    # Front-end constants.
    fe = processor.feature_extractor
    save_tensors(
        out_dir / "frontend.safetensors",
        {"mel_filters": torch.from_numpy(np.asarray(fe.mel_filters, dtype=np.float32)),
         "hann_window": torch.hann_window(400)},
    )  # fmt: skip
    return report


# ----------------------------------------------------------------------------
# Degeneracy check used while building the checkpoint
# ----------------------------------------------------------------------------


def check_not_degenerate(fixtures: Path = FIXTURES) -> Dict[str, Any]:
    import torch

    from gen_asr_tiny import load_reference, tiny_ids

    model, processor = load_reference(fixtures, attn="sdpa")
    ids = tiny_ids(fixtures)
    clips = make_clips()
    asr = make_asr_api(model, processor, ids)
    tower = model.thinker.audio_tower
    rep: Dict[str, Any] = {}
    inputs = features_for(processor, clips["speech_5p3s"], "<|audio_start|><|audio_pad|><|audio_end|>")
    feats = inputs["input_features"][0]
    with torch.no_grad(), capture_encoder(tower, False) as caps:
        full = tower(feats, feature_lens=torch.tensor([feats.shape[1]])).last_hidden_state
    with torch.no_grad(), capture_encoder(tower, True):
        win = tower(feats, feature_lens=torch.tensor([feats.shape[1]])).last_hidden_state
    pos = tower.positional_embedding.positional_embedding[:13]
    rep["conv_out_std"] = caps["conv_out"].std().item()
    rep["sinusoid_std"] = pos.std().item()
    rep["full_vs_windowed_rel_diff"] = ((full - win).norm() / full.norm()).item()
    assert 0.5 < rep["conv_out_std"] / rep["sinusoid_std"] < 20, rep
    assert rep["full_vs_windowed_rel_diff"] > 0.05, rep
    gens = []
    for lang in [None, "English"]:
        for ctx in ["", CONTEXT]:
            _, _, _, gen, _ = run_generate(model, processor, asr, ids, [clips["speech_5p3s"]], [ctx], [lang])
            gens.append(gen[0].tolist())
    rep["distinct_tokens_per_generation"] = [len(set(g)) for g in gens]
    for g in gens:
        assert g[0] not in eos_ids(ids), "first generated token is EOS"
        assert len(set(g)) >= 5, f"degenerate generation {g}"
    assert len({tuple(g) for g in gens}) == len(gens), "prompts do not change the output"
    return rep
