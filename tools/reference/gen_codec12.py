"""tests/fixtures/codec12-tiny/: a tiny Qwen3-TTS 12 Hz speech tokenizer and its goldens.

The checkpoint is built with qwen_tts's own classes (`Qwen3TTSTokenizerV2Config`,
`Qwen3TTSTokenizerV2Model`, `save_pretrained`) plus the `EncodecFeatureExtractor` that
`Qwen3TTSTokenizer.from_pretrained` loads, so the folder has the files of a released
`speech_tokenizer/` folder: config.json, model.safetensors, preprocessor_config.json.

`build_tiny_codec12(out_dir)` is importable on its own (other generators put the same codec
into tiny TTS checkpoints as `speech_tokenizer/`); it needs neither espeak-ng nor the fixtures.

Tiny config (codecs.md §7.3, adapted so that every path of the released model runs):
* encoder (Mimi): 3 strided SEANet stages (strides 2, 3, 4; channels 4 -> 8 -> 16 -> 32),
  2 transformer layers with 4 heads x 16 (q/k/v width 64 != hidden 32) and 2 kv heads (GQA),
  a configured `sliding_window` of 16 that the reference ignores (fully causal attention),
  the k4/s2 replicate-padded downsample (hop 24 -> 48 samples per code frame), split RVQ with
  1 semantic + 5 acoustic levels of 64 x 8, of which `encoder_valid_num_quantizers` = 4 are kept;
* decoder: 4 quantizers, codebook_dim 16 (RVQ dim 8), pre_conv to latent 32, 2 transformer
  layers with hidden 24, 4 heads x 8, 2 kv heads, sliding window 6, 2 upsample stages (x2 x2,
  ConvNeXt), conv decoder 48 -> 24 -> 12 -> 6 channels with rates 2, 3, 2 (total 48).
So one code frame is 48 samples at 24 kHz (500 Hz frame rate) and the reference's chunked
decode (300 frames + 25 frames of left context) already runs 3 chunks on 1.5 s of audio.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from common import FIXTURES, RUN_NOTES, check_close, check_equal, dump_json, save_tensors

CODEC_DIR = "codec12-tiny"
SAMPLE_RATE = 24000
SEED = 20241212

ENCODER_CONFIG: Dict[str, Any] = {
    "sampling_rate": SAMPLE_RATE,
    "frame_rate": 500.0,  # stored as `_frame_rate`, as in the released config (12.5 there)
    "audio_channels": 1,
    "hidden_size": 32,
    "num_filters": 4,
    "num_residual_layers": 1,
    "upsampling_ratios": [4, 3, 2],
    "kernel_size": 7,
    "last_kernel_size": 3,
    "residual_kernel_size": 3,
    "dilation_growth_rate": 2,
    "use_causal_conv": True,
    "pad_mode": "constant",
    "compress": 2,
    "trim_right_ratio": 1.0,
    "codebook_size": 64,
    "codebook_dim": 8,
    "num_quantizers": 6,
    "use_conv_shortcut": False,
    "vector_quantization_hidden_dimension": 8,
    "num_semantic_quantizers": 1,
    "upsample_groups": 32,
    "num_hidden_layers": 2,
    "intermediate_size": 64,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "hidden_act": "gelu",
    "max_position_embeddings": 8000,
    "initializer_range": 0.02,
    "norm_eps": 1e-5,
    "use_cache": False,
    "rope_theta": 10000.0,
    "sliding_window": 16,
    "attention_dropout": 0.0,
    "layer_scale_initial_scale": 0.01,
    "attention_bias": False,
}

DECODER_CONFIG: Dict[str, Any] = {
    "attention_bias": False,
    "attention_dropout": 0.0,
    "latent_dim": 32,
    "codebook_dim": 16,
    "codebook_size": 64,
    "decoder_dim": 48,
    "hidden_act": "silu",
    "hidden_size": 24,
    "intermediate_size": 40,
    "layer_scale_initial_scale": 0.01,
    "max_position_embeddings": 8000,
    "head_dim": 8,
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "num_key_value_heads": 2,
    "num_quantizers": 4,
    "num_semantic_quantizers": 1,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000,
    "semantic_codebook_size": 128,  # present in the released JSON, ignored by the code
    "sliding_window": 6,
    "upsample_rates": [2, 3, 2],
    "upsampling_ratios": [2, 2],
    "vector_quantization_hidden_dimension": 16,  # present in the released JSON, ignored
}

TOP_CONFIG: Dict[str, Any] = {
    "encoder_valid_num_quantizers": 4,
    "input_sample_rate": SAMPLE_RATE,
    "output_sample_rate": SAMPLE_RATE,
    "decode_upsample_rate": 48,
    "encode_downsample_rate": 48,
}

SAMPLES_PER_FRAME = 48
# Codebook entries whose cluster_usage is below the 1e-5 clamp: a port that divides by the raw
# usage (or uses another epsilon) gets different vectors for them.
TINY_USAGE_ENTRY = 5


def _import_tokenizer_classes():
    from qwen_tts.core.tokenizer_12hz.configuration_qwen3_tts_tokenizer_v2 import Qwen3TTSTokenizerV2Config
    from qwen_tts.core.tokenizer_12hz.modeling_qwen3_tts_tokenizer_v2 import Qwen3TTSTokenizerV2Model

    return Qwen3TTSTokenizerV2Config, Qwen3TTSTokenizerV2Model


def tiny_config(attn: str = "eager"):
    Config, _ = _import_tokenizer_classes()
    cfg = Config(
        encoder_config=copy.deepcopy(ENCODER_CONFIG),
        decoder_config=copy.deepcopy(DECODER_CONFIG),
        **TOP_CONFIG,
    )
    cfg.architectures = ["Qwen3TTSTokenizerV2Model"]
    cfg._attn_implementation = attn
    cfg.encoder_config._attn_implementation = attn
    cfg.decoder_config._attn_implementation = attn
    return cfg


def calibration_signal(n: int, seed: int) -> np.ndarray:
    """A deterministic speech-like test signal (no espeak-ng needed): a few harmonic tones with
    moving pitch under a syllable-rate envelope, plus noise bursts."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SAMPLE_RATE
    f0 = 120 + 60 * np.sin(2 * np.pi * 1.3 * t + rng.uniform(0, 6))
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    x = sum(rng.uniform(0.2, 1.0) / k * np.sin(k * phase + rng.uniform(0, 6)) for k in range(1, 9))
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6)) ** 2
    noise = rng.standard_normal(n) * (np.sin(2 * np.pi * 2.7 * t) > 0.6)
    y = 0.3 * env * x + 0.05 * noise
    return (0.7 * y / np.abs(y).max()).astype(np.float32)


def _init_weights(model, seed: int) -> None:
    """Random weights scaled so that every branch matters: fan-in scaled matrices, non-trivial
    norms, layer scales, ConvNeXt gammas and SnakeBeta alpha/beta (zeros/0.01 at init would hide
    bugs), codebooks from data (below)."""
    import torch

    g = torch.Generator().manual_seed(seed)

    def normal(shape, std):
        return torch.randn(shape, generator=g) * std

    def uniform(shape, lo, hi):
        return lo + (hi - lo) * torch.rand(shape, generator=g)

    with torch.no_grad():
        owners = dict(model.named_modules())
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            owner_name, leaf = name.rsplit(".", 1)
            owner = owners[owner_name]
            if "codebook" in name:
                continue
            if leaf == "weight" and isinstance(owner, torch.nn.ConvTranspose1d):
                # (in, out, k): every output sample sees k / stride input frames
                fan_in = p.shape[0] * p.shape[2] // owner.stride[0]
                p.copy_(normal(p.shape, 1.0 / np.sqrt(fan_in)))
            elif leaf == "weight" and p.dim() >= 2:
                fan_in = p.shape[1] * (p.shape[2] if p.dim() == 3 else 1)
                p.copy_(normal(p.shape, 1.0 / np.sqrt(fan_in)))
            elif leaf == "bias":
                p.copy_(normal(p.shape, 0.1))
            elif leaf == "weight":  # LayerNorm / RMSNorm
                p.copy_(uniform(p.shape, 0.9, 1.1))
            elif leaf == "scale":  # LayerScale
                p.copy_(uniform(p.shape, 0.2, 0.8))
            elif leaf == "gamma":  # ConvNeXt
                p.copy_(uniform(p.shape, 0.2, 0.8))
            elif leaf in ("alpha", "beta"):  # SnakeBeta, log space
                p.copy_(normal(p.shape, 0.3))
            else:
                raise AssertionError(f"unhandled parameter {name}")
        for name, b in model.named_buffers():
            if name.endswith("initialized"):
                b.fill_(1.0)


def _init_codebooks(model, seed: int) -> Dict[str, Any]:
    """Codebooks from data, level by level (one k-means-style draw): each level's entries are
    residual vectors of a calibration signal at that level plus a little noise, stored as
    `embed_sum = vector * cluster_usage` with random usages (one below the 1e-5 clamp). The
    decoder's codebooks are the encoder's first levels (a consistent codec)."""
    import torch

    g = torch.Generator().manual_seed(seed + 1)
    enc = model.encoder
    x = torch.from_numpy(calibration_signal(3 * SAMPLE_RATE, seed + 2))[None, None]
    with torch.no_grad():
        emb = enc.encoder(x)
        emb = enc.encoder_transformer(emb.transpose(1, 2)).last_hidden_state.transpose(1, 2)
        emb = enc.downsample(emb)  # (1, D, T)
        q = enc.quantizer
        levels = []
        for rvq in (q.semantic_residual_vector_quantizer, q.acoustic_residual_vector_quantizer):
            residual = rvq.input_proj(emb)[0].T  # (T, d)
            for layer in rvq.layers:
                cb = layer.codebook
                n = cb.codebook_size
                pick = torch.randperm(residual.shape[0], generator=g)[:n]
                vecs = residual[pick] + 0.05 * residual.std() * torch.randn(n, residual.shape[1], generator=g)
                usage = 0.5 + 1.5 * torch.rand(n, generator=g)
                usage[TINY_USAGE_ENTRY] = 1e-7
                eff_usage = usage.clamp(min=1e-5)
                cb.embed_sum.copy_(vecs * eff_usage[:, None])
                cb.cluster_usage.copy_(usage)
                cb._embed = None
                levels.append((vecs.clone(), usage.clone()))
                d = torch.cdist(residual[None], cb.embed[None])[0]
                residual = residual - cb.embed[d.argmin(-1)]
        dec_q = model.decoder.quantizer
        dec_layers = list(dec_q.rvq_first.vq.layers) + list(dec_q.rvq_rest.vq.layers)
        n_sem = q.semantic_residual_vector_quantizer.num_quantizers
        order = [0] + [n_sem + i for i in range(len(dec_layers) - 1)]
        for layer, src in zip(dec_layers, order):
            vecs, usage = levels[src]
            cb = layer._codebook
            cb.embedding_sum.copy_(vecs * usage.clamp(min=1e-5)[:, None])
            cb.cluster_usage.copy_(usage)
    return {"levels": len(levels), "calibration_samples": int(x.shape[-1])}


def _scale_output(model, seed: int) -> float:
    """Rescale the last decoder conv so that decoded calibration audio has std ~0.25 (not ~0,
    not mostly clamped)."""
    import torch

    x = torch.from_numpy(calibration_signal(2 * SAMPLE_RATE, seed + 3))[None]
    with torch.no_grad():
        codes = model.encode(x, torch.ones_like(x, dtype=torch.long), return_dict=True).audio_codes[0]
        dec = model.decoder
        last = dec.decoder[-1]
        hidden = _decoder_until_last_conv(dec, codes.T[None])
        pre = last(hidden)
        factor = 0.25 / float(pre.std())
        last.conv.weight.mul_(factor)
        last.conv.bias.mul_(factor)
    return factor


def _decoder_until_last_conv(dec, codes):
    hidden = dec.quantizer.decode(codes)
    hidden = dec.pre_conv(hidden).transpose(1, 2)
    hidden = dec.pre_transformer(inputs_embeds=hidden).last_hidden_state.permute(0, 2, 1)
    for blocks in dec.upsample:
        for block in blocks:
            hidden = block(hidden)
    for block in dec.decoder[:-1]:
        hidden = block(hidden)
    return hidden


def build_tiny_codec12(out_dir: Path, seed: int = SEED) -> Dict[str, Any]:
    """Create the tiny random-weight 12 Hz tokenizer with the reference classes and save it in
    the layout of a released `speech_tokenizer/` folder (config.json, model.safetensors,
    preprocessor_config.json) under `out_dir`. Deterministic for a given seed. Returns a small
    report. Files already in `out_dir` are replaced; subfolders are kept."""
    import torch
    from safetensors.torch import load_file
    from transformers import EncodecFeatureExtractor

    _, Model = _import_tokenizer_classes()
    out_dir = Path(out_dir)
    torch.manual_seed(seed)
    model = Model(tiny_config("eager")).eval()
    _init_weights(model, seed)
    cb_report = _init_codebooks(model, seed)
    out_scale = _scale_output(model, seed)

    out_dir.mkdir(parents=True, exist_ok=True)
    for f in out_dir.iterdir():
        if f.is_file():
            f.unlink()
    model.save_pretrained(str(out_dir), safe_serialization=True)
    fe = EncodecFeatureExtractor(feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0)
    fe.save_pretrained(str(out_dir))
    # save_pretrained records the attention implementation we built with; the released
    # config has none (the tokenizer runs sdpa by default).
    cfg = json.loads((out_dir / "config.json").read_text())
    for sub in (cfg, cfg["encoder_config"], cfg["decoder_config"]):
        sub.pop("_attn_implementation_autoset", None)
        sub.pop("attn_implementation", None)
    dump_json(out_dir / "config.json", cfg)
    allowed = {"config.json", "model.safetensors", "preprocessor_config.json"}
    for f in out_dir.iterdir():
        if f.is_file() and f.name not in allowed:
            f.unlink()
        elif f.is_file():
            f.chmod(0o644)
    stored = load_file(str(out_dir / "model.safetensors"))
    sd = model.state_dict()
    check_equal("stored tensor names", sorted(stored), sorted(sd))
    for k, v in stored.items():
        check_equal(f"stored dtype {k}", v.dtype, torch.float32)
    total = sum(f.stat().st_size for f in out_dir.iterdir() if f.is_file())
    assert total < 1024 * 1024, f"tiny codec too big: {total} bytes"
    return {
        "seed": seed,
        "n_tensors": len(stored),
        "n_encoder_tensors": sum(k.startswith("encoder.") for k in stored),
        "n_decoder_tensors": sum(k.startswith("decoder.") for k in stored),
        "n_params_stored": int(sum(v.numel() for v in stored.values())),
        "checkpoint_bytes": total,
        "codebooks": cb_report,
        "output_conv_scale": out_scale,
    }
