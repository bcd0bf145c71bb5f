"""Re-check the saved fixture files against a fresh reference run.

Everything is reloaded from disk (tokenizers from their folders, the model with
from_pretrained, inputs from the saved safetensors/JSON) and recomputed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

from common import FIXTURES, check_close, check_equal, import_qwen_asr


def verify_tokenizers(fixtures: Path) -> Dict[str, Any]:
    from transformers import AutoTokenizer

    n = 0
    for name in ["qwen2", "tiny"]:
        d = fixtures / "tokenizer" / name
        tok = AutoTokenizer.from_pretrained(str(d))
        cases = json.loads((d / "cases.json").read_text(encoding="utf-8"))
        for c in cases["cases"]:
            check_equal(f"{name}/{c['name']} ids", tok(c["text"])["input_ids"], c["ids"])
            check_equal(f"{name}/{c['name']} decode", tok.decode(c["ids"]), c["decode"])
            check_equal(
                f"{name}/{c['name']} decode skip", tok.decode(c["ids"], skip_special_tokens=True), c["decode_skip_special"]
            )
            n += 1
        for c in cases["partial_utf8_decode"]:
            check_equal(f"{name} partial decode {c['ids']}", tok.decode(c["ids"]), c["decode"])
    return {"tokenizer_cases_rechecked": n}


def verify_thinker_text(fixtures: Path, model) -> Dict[str, Any]:
    import torch
    from safetensors.torch import load_file

    from gen_asr_goldens import eos_ids
    from gen_asr_tiny import tiny_ids

    t = load_file(str(fixtures / "asr-tiny" / "expected" / "thinker_text.safetensors"))
    ids = t["single_input_ids"][None]
    with torch.no_grad():
        out = model.thinker(input_ids=ids)
        check_close("thinker_text single_logits", out.logits[0], t["single_logits"], rtol=1e-5, atol=1e-5)
        ob = model.thinker(input_ids=t["batch_input_ids"], attention_mask=t["batch_attention_mask"])
        m = t["batch_attention_mask"].bool()
        check_close("thinker_text batch_logits", ob.logits[m], t["batch_logits"][m], rtol=1e-5, atol=1e-5)
        g = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=10,
                           eos_token_id=eos_ids(tiny_ids(fixtures)))  # fmt: skip
    check_equal("thinker_text greedy", g.sequences[0, ids.shape[1] :].tolist(), t["single_greedy_ids"].tolist())
    return {"thinker_text": "ok"}


def verify_asr(fixtures: Path, model, processor) -> Dict[str, Any]:
    import torch
    from safetensors.torch import load_file

    from gen_asr_goldens import eos_ids
    from gen_asr_tiny import tiny_ids
    from hooks import capture_encoder

    exp = fixtures / "asr-tiny" / "expected"
    wavs = {}
    for f in sorted(exp.glob("clip_*.safetensors")):
        name = f.stem[len("clip_") :]
        t = load_file(str(f))
        wav = t["waveform"].numpy()
        wavs[name] = wav
        feats = processor(text=["<|audio_start|><|audio_pad|><|audio_end|>"], audio=[wav], return_tensors="pt",
                          padding=True)["input_features"][0]  # fmt: skip
        check_close(f"{name} mel", feats, t["mel"], rtol=0, atol=0)
        tower = model.thinker.audio_tower
        for variant, windowed in [("full", False), ("windowed", True)]:
            with torch.no_grad(), capture_encoder(tower, windowed):
                out = tower(t["mel"], feature_lens=torch.tensor([t["mel"].shape[1]])).last_hidden_state
            check_close(f"{name} {variant}", out, t[f"{variant}_audio_embeds"], rtol=1e-5, atol=1e-5)
    doc = json.loads((exp / "asr_generate.json").read_text(encoding="utf-8"))
    eos = eos_ids(tiny_ids(fixtures))
    n = 0
    for cname, c in doc["cases"].items():
        inputs = processor(text=c["prompt_texts"], audio=[wavs[x] for x in c["clips"]], return_tensors="pt",
                           padding=True)  # fmt: skip
        check_equal(f"{cname} input_ids", inputs["input_ids"].tolist(), c["input_ids"])
        with torch.no_grad():
            g = model.generate(**inputs, max_new_tokens=doc["max_new_tokens"], eos_token_id=eos)
        gen = g.sequences[:, inputs["input_ids"].shape[1] :].tolist()
        check_equal(f"{cname} generated_ids", gen, c["generated_ids"])
        n += 1
    return {"asr_cases_rechecked": n, "clips_rechecked": len(wavs)}


def main(fixtures: Path = FIXTURES) -> Dict[str, Any]:
    from gen_asr_tiny import load_reference

    import_qwen_asr()
    rep = verify_tokenizers(fixtures)
    model, processor = load_reference(fixtures, attn="sdpa")
    rep.update(verify_thinker_text(fixtures, model))
    rep.update(verify_asr(fixtures, model, processor))
    return rep
