"""Qwen3 text-decoder (thinker) golden on text-only prompts, float32, eager attention.

Writes tests/fixtures/asr-tiny/expected/thinker_text.{safetensors,json}.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

from common import FIXTURES, check_close, check_equal, dump_json, save_tensors
from hooks import capture_decoder

PROMPT_A = "<|im_start|>user\nHello world, 你好?<|im_end|>\n<|im_start|>assistant\n"
PROMPT_B = "<|im_start|>user\nHello world<|im_end|>\n"
N_CONTINUE = 10


def manual_greedy(thinker, ids: List[int], n: int, eos: List[int]) -> List[int]:
    """Greedy decoding by full recomputation (no KV cache)."""
    import torch

    cur = list(ids)
    out = []
    for _ in range(n):
        with torch.no_grad():
            logits = thinker(input_ids=torch.tensor([cur])).logits[0, -1].float()
        t = int(torch.argmax(logits))
        out.append(t)
        cur.append(t)
        if t in eos:
            break
    return out


def main(fixtures: Path = FIXTURES) -> Dict[str, Any]:
    import torch

    from gen_asr_goldens import eos_ids
    from gen_asr_tiny import load_reference, tiny_ids

    model, processor = load_reference(fixtures, attn="eager")
    tok = processor.tokenizer
    ids = tiny_ids(fixtures)
    eos = eos_ids(ids)
    thinker = model.thinker
    a = tok(PROMPT_A)["input_ids"]
    b = tok(PROMPT_B)["input_ids"]
    assert 18 <= len(a) <= 24, len(a)
    assert len(b) < len(a)
    L = len(a)

    # ---- single prompt ------------------------------------------------------
    ia = torch.tensor([a])
    with torch.no_grad(), capture_decoder(thinker.model) as ca:
        out_a = thinker(input_ids=ia, attention_mask=torch.ones_like(ia))
    with torch.no_grad():
        out_a_nomask = thinker(input_ids=ia)
    check_close("single: mask vs no mask", out_a_nomask.logits, out_a.logits, rtol=1e-6, atol=1e-6)
    cos, sin = ca["rope"]
    sel = [0, 1, 2, 3, L - 1]
    # Tied head: logits == final_normed @ embed^T (the stored lm_head is ignored).
    emb = thinker.model.embed_tokens.weight
    check_close("tied head", ca["final_normed"][0] @ emb.T, out_a.logits[0], rtol=1e-5, atol=1e-5)
    check_equal("single position ids", ca["position_ids"][0, 0].tolist(), list(range(L)))

    # ---- left-padded batch --------------------------------------------------
    tok.padding_side = "left"
    batch = tok([PROMPT_A, PROMPT_B], padding=True, return_tensors="pt")
    check_equal("pad id", tok.pad_token_id, ids["<|endoftext|>"])
    with torch.no_grad(), capture_decoder(thinker.model) as cb:
        out_b = thinker(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    rope_deltas = out_b.rope_deltas.clone()
    pos_b = cb["position_ids"]
    assert torch.equal(pos_b[0], pos_b[1]) and torch.equal(pos_b[0], pos_b[2])
    # Row 0 (no padding) equals the single run; row 1's valid part equals B alone.
    check_close("batch row0 == single", out_b.logits[0], out_a.logits[0], rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        out_bs = thinker(input_ids=torch.tensor([b]))
    m = batch["attention_mask"][1].bool()
    check_close("batch row1 valid == single B", out_b.logits[1][m], out_bs.logits[0], rtol=1e-4, atol=1e-5)

    # ---- greedy continuation with KV cache ---------------------------------
    with torch.no_grad():
        g = model.generate(input_ids=ia, attention_mask=torch.ones_like(ia), max_new_tokens=N_CONTINUE, eos_token_id=eos)
    cont = g.sequences[0, L:].tolist()
    man = manual_greedy(thinker, a, N_CONTINUE, eos)
    check_equal("greedy KV-cache vs full recompute", cont[: len(man)], man)
    with torch.no_grad():
        gb = model.generate(**batch, max_new_tokens=N_CONTINUE, eos_token_id=eos)
    cont_b = gb.sequences[:, batch["input_ids"].shape[1] :].tolist()
    check_equal("batched greedy row0 == single", cont_b[0][: len(cont)], cont)
    man_b = manual_greedy(thinker, b, N_CONTINUE, eos)
    check_equal("batched greedy row1 == single B", cont_b[1][: len(man_b)], man_b)
    assert len(set(cont)) > 2, f"degenerate continuation {cont}"

    t = {
        "single_input_ids": ia[0],
        "single_position_ids": ca["position_ids"][0, 0].long(),  # reference computes them as float
        "rope_positions": torch.tensor(sel),
        "rope_cos": cos[0, sel],
        "rope_sin": sin[0, sel],
        "single_inputs_embeds": ca["inputs_embeds"][0],
        "single_layer0_q_normed": ca["layer0_q_normed"][0],
        "single_layer0_out": ca["layer0_out"][0],
        "single_final_normed": ca["final_normed"][0],
        "single_logits": out_a.logits[0],
        "single_greedy_ids": torch.tensor(cont),
        "batch_input_ids": batch["input_ids"],
        "batch_attention_mask": batch["attention_mask"],
        "batch_position_ids": pos_b[0].long(),
        "batch_rope_deltas": rope_deltas.reshape(-1).long(),
        "batch_layer0_out": cb["layer0_out"],
        "batch_final_normed": cb["final_normed"],
        "batch_logits": out_b.logits,
        "batch_greedy_ids": torch.tensor(cont_b),
    }
    out_dir = fixtures / "asr-tiny" / "expected"
    save_tensors(out_dir / "thinker_text.safetensors", t)
    size = (out_dir / "thinker_text.safetensors").stat().st_size
    assert size < 1024 * 1024, size
    doc = {
        "description": "Text-only thinker forward (no audio), float32, attn_implementation='eager', "
        "model loaded with AutoModel.from_pretrained(tests/fixtures/asr-tiny). Positions where "
        "batch_attention_mask == 0 hold values of fully masked rows and must not be compared.",
        "prompt_a": PROMPT_A,
        "prompt_b": PROMPT_B,
        "prompt_a_ids": a,
        "prompt_b_ids": b,
        "single_greedy_ids": cont,
        "batch_greedy_ids": cont_b,
        "greedy": f"model.generate(input_ids, attention_mask, max_new_tokens={N_CONTINUE}, do_sample=False, "
        f"eos_token_id={eos}) with DynamicCache; equals full-recompute greedy",
        "padding": "left, pad id = <|endoftext|> = %d" % ids["<|endoftext|>"],
        "position_ids_rule": "cumsum(attention_mask)-1, padded positions set to 1 (get_rope_index); "
        "rope_deltas = max_pos+1-valid_len - n_pads",
        "rope_note": "rope_cos/rope_sin rows are for positions rope_positions of the single prompt; "
        "shape (5, head_dim); M-RoPE sections are degenerate (text positions identical on all 3 axes)",
        "layer0_q_normed": "q_proj(input_layernorm(x)).view(L, heads, head_dim) after q_norm, before RoPE",
        "tensors": {k: list(v.shape) for k, v in t.items()},
    }
    dump_json(out_dir / "thinker_text.json", doc)
    return {"prompt_a_len": L, "prompt_b_len": len(b), "greedy": cont, "batch_greedy": cont_b}
