"""Forward hooks that capture reference intermediates without re-implementing them."""

from __future__ import annotations

import contextlib
from typing import Any, Dict

import torch


@contextlib.contextmanager
def capture_decoder(thinker_text_model):
    """Capture, for one forward of Qwen3ASRThinkerTextModel (thinker.model):
    inputs_embeds/position_ids (as passed in), RoPE cos/sin, layer-0 q after
    q_norm (before RoPE), hidden after layer 0, final normed hidden."""
    caps: Dict[str, Any] = {}
    hs = []

    def pre_model(_m, args, kwargs):
        if "inputs_embeds" not in caps and kwargs.get("inputs_embeds") is not None:
            caps["inputs_embeds"] = kwargs["inputs_embeds"].detach().clone()
            pid = kwargs.get("position_ids")
            caps["position_ids"] = None if pid is None else pid.detach().clone()
            am = kwargs.get("attention_mask")
            caps["attention_mask"] = None if am is None else am.detach().clone()

    def once(key):
        def hook(_m, _i, o):
            if key not in caps:
                caps[key] = tuple(x.detach().clone() for x in o) if isinstance(o, tuple) else o.detach().clone()

        return hook

    hs.append(thinker_text_model.register_forward_pre_hook(pre_model, with_kwargs=True))
    hs.append(thinker_text_model.rotary_emb.register_forward_hook(once("rope")))
    hs.append(thinker_text_model.layers[0].self_attn.q_norm.register_forward_hook(once("layer0_q_normed")))
    hs.append(thinker_text_model.layers[0].register_forward_hook(once("layer0_out")))
    hs.append(thinker_text_model.norm.register_forward_hook(once("final_normed")))
    try:
        yield caps
    finally:
        for h in hs:
            h.remove()


@contextlib.contextmanager
def capture_encoder(tower, windowed: bool):
    """Capture encoder intermediates of Qwen3ASRAudioEncoder.forward.

    windowed=True injects the block-diagonal mask that the reference's own
    `_prepare_attention_mask(hidden, cu_seqlens)` builds from the cu_seqlens the
    forward computes (the reference only applies it with flash-attn; with
    eager/sdpa it attends over the whole audio)."""
    caps: Dict[str, Any] = {}
    hs = []

    def conv_out_hook(_m, _i, o):
        caps["conv_out"] = o.detach().clone()

    def layer0_pre(_m, args, kwargs):
        caps["after_pos_gather"] = args[0].detach().clone()
        caps["cu_seqlens"] = args[1].detach().clone()

    def layer0_post(_m, _i, o):
        caps["layer0_out"] = o[0].detach().clone()

    def ln_post_pre(_m, args):
        caps["last_layer_out"] = args[0].detach().clone()

    def inject(_m, args, kwargs):
        hidden, cu = args[0], args[1]
        mask = tower._prepare_attention_mask(hidden, cu)
        if mask is None:
            raise RuntimeError("windowed attention requested but backend builds no mask")
        kwargs = dict(kwargs)
        kwargs["attention_mask"] = mask
        caps["window_mask_applied"] = True
        return args, kwargs

    hs.append(tower.conv_out.register_forward_hook(conv_out_hook))
    hs.append(tower.layers[0].register_forward_pre_hook(layer0_pre, with_kwargs=True))
    hs.append(tower.layers[0].register_forward_hook(layer0_post))
    hs.append(tower.ln_post.register_forward_pre_hook(ln_post_pre))
    if windowed:
        for layer in tower.layers:
            hs.append(layer.register_forward_pre_hook(inject, with_kwargs=True))
    try:
        yield caps
    finally:
        for h in hs:
            h.remove()


def per_window_reference(tower, gathered: torch.Tensor, cu_seqlens: torch.Tensor) -> torch.Tensor:
    """Independent windowed computation: run every window alone (no mask) through
    the encoder layers and the head, then concatenate."""
    outs = []
    cu = cu_seqlens.tolist()
    for a, b in zip(cu[:-1], cu[1:]):
        h = gathered[a:b]
        local_cu = torch.tensor([0, b - a], dtype=torch.int32)
        for layer in tower.layers:
            h = layer(h, local_cu)[0]
        h = tower.ln_post(h)
        h = tower.proj2(tower.act(tower.proj1(h)))
        outs.append(h)
    return torch.cat(outs, 0)
