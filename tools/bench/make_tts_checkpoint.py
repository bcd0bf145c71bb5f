"""Writes a full-size, random-weight Qwen3-TTS-12Hz-0.6B-CustomVoice checkpoint for speed benchmarks.

The folder has the released layout (tts.md §2, §2.6, §3; codecs.md §2.4, §2.5):

- `config.json` with the released 0.6B CustomVoice values: talker 1024 wide, 28 layers, 16 / 8
  heads, head_dim 128 (so q_proj is 1024 -> 2048), intermediate 3072, codec vocab 3072, text vocab
  151936 x 2048, 16 code groups, theta 1e6, the M-RoPE `rope_scaling` block; code predictor 1024
  wide, 5 layers, 16 / 8 heads, head_dim 128, intermediate 3072, vocab 2048, max_position 65536,
  no `small_to_mtp_projection` (widths agree); the released codec ids (pad 2148, bos 2149, eos
  2150, think 2154..2157), the 12 language ids (10 + 2 dialects), the 9 speakers with the dialect
  map; tts_model_type "custom_voice", tts_model_size "0b6"; the text-track specials 151671-151673;
- `generation_config.json` as released (sampling defaults, max_new_tokens 8192);
- one bf16 `model.safetensors` (905,788,672 parameters in 402 tensors, ~1.81 GB), as released;
- the real Qwen2 tokenizer (`tests/fixtures/tokenizer/qwen2`: 151,643 regular ids and the added
  tokens, among them `<tts_pad>` 151671, `<tts_text_bos>` 151672, `<tts_text_eod>` 151673, which
  the script checks), with `processor_class` set to the TTS processor;
- `speech_tokenizer/`: the 12 Hz codec with the full released config (Mimi encoder with 32 RVQ
  levels of which 16 are kept; decoder 512 wide, 8 layers, window 72, latent 1024, decoder_dim
  1536, upsampling 2x2 then 8x5x4x3 = 1920 samples per frame), float32 `model.safetensors`
  (170.56M parameters, 496 tensors) and `preprocessor_config.json`, as in every released repo.

Everything is built with the reference classes (`qwen_tts` 0.1.1: `Qwen3TTSConfig`,
`Qwen3TTSForConditionalGeneration`, `Qwen3TTSTokenizerV2Model`) and `save_pretrained`. As in
`tools/reference/gen_tts_ckpt.py`, `config.json` is rewritten without the
`speaker_encoder_config` block that save_pretrained adds (its "model_type" key makes the
reference's own loader fail; released CustomVoice configs have no such block).

Weights:
- talker and code predictor: matrices N(0, 0.02), biases 0, RMSNorm weights 1 (activations stay
  finite in f32 and bf16);
- **the EOS row (2150) of `talker.codec_head` is zero**, so the EOS logit is exactly 0 (also after
  the repetition penalty) while the largest of the 2048 audio-code logits is ~+2 (std ~0.6): EOS
  never wins the argmax, nor the top-50 of sampling. Both benches therefore generate exactly N
  frames (max_new_tokens = N + 1), and check it;
- codec: fan-in scaled N(0, 1/fan_in) matrices and convs, random codebooks with usage 1, norms 1,
  layer scales and ConvNeXt gammas 0.1, SnakeBeta alpha/beta 0 (log space), biases 0; the last
  conv is rescaled so decoded random codes have a std of ~0.25 (no NaN, no denormals, little
  clipping). Content does not matter for speed.

It also writes `bench_request.json` (text, speaker, language, frames) that both benches read.

Idempotent: if `<out>/bench_checkpoint.json` exists with the same generator version and every
file is present, nothing is done (`--force` rebuilds).

    /work/venv-ref/bin/python tools/bench/make_tts_checkpoint.py [--out bench-models/tts-0.6b]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
sys.path.insert(0, str(REPO_ROOT / "tools" / "reference"))

from common import dump_json  # noqa: E402

DEFAULT_OUT = REPO_ROOT / "bench-models" / "tts-0.6b"
TOKENIZER_DIR = REPO_ROOT / "tests" / "fixtures" / "tokenizer" / "qwen2"

# Bump when the content of the checkpoint changes (forces a rebuild of old folders).
GENERATOR_VERSION = 1
SEED = 20250103
CODEC_SEED = 20250104
MATRIX_STD = 0.02

# ---------------------------------------------------------------------------------------------
# Released values (tts.md §2.1-2.5)
# ---------------------------------------------------------------------------------------------

IM_START, IM_END, ASSISTANT = 151644, 151645, 77091
TTS_PAD, TTS_BOS, TTS_EOS = 151671, 151672, 151673
TEXT_VOCAB = 151936
CODEC_VOCAB = 3072
CODEC_PAD, CODEC_BOS, CODEC_EOS = 2148, 2149, 2150
CODEC_THINK, CODEC_NOTHINK, CODEC_THINK_BOS, CODEC_THINK_EOS = 2154, 2155, 2156, 2157
LANGUAGES = {
    "chinese": 2055, "english": 2050, "german": 2053, "spanish": 2054, "japanese": 2058,
    "french": 2061, "korean": 2064, "russian": 2069, "italian": 2070, "portuguese": 2071,
    "sichuan_dialect": 2062, "beijing_dialect": 2074,
}  # fmt: skip
SPEAKERS = {
    "serena": 3066, "vivian": 3065, "uncle_fu": 3010, "ryan": 3061, "aiden": 2861,
    "ono_anna": 2873, "sohee": 2864, "eric": 2875, "dylan": 2878,
}  # fmt: skip
DIALECTS = {"eric": "sichuan_dialect", "dylan": "beijing_dialect"}

TALKER = dict(
    hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
    num_key_value_heads=8, head_dim=128, vocab_size=CODEC_VOCAB, text_vocab_size=TEXT_VOCAB,
    text_hidden_size=2048, num_code_groups=16, rope_theta=1000000,
    rope_scaling={"interleaved": True, "mrope_section": [24, 20, 20], "rope_type": "default"},
    max_position_embeddings=32768, rms_norm_eps=1e-06, hidden_act="silu", attention_bias=False,
    position_id_per_seconds=13,
)  # fmt: skip
CODE_PREDICTOR = dict(
    hidden_size=1024, intermediate_size=3072, num_hidden_layers=5, num_attention_heads=16,
    num_key_value_heads=8, head_dim=128, vocab_size=2048, num_code_groups=16, rope_theta=1000000,
    rope_scaling=None, max_position_embeddings=65536, rms_norm_eps=1e-06, hidden_act="silu",
    attention_bias=False, layer_types=["full_attention"] * 5,
)  # fmt: skip

GENERATION_CONFIG = {
    "do_sample": True,
    "repetition_penalty": 1.05,
    "temperature": 0.9,
    "top_p": 1.0,
    "top_k": 50,
    "subtalker_dosample": True,
    "subtalker_temperature": 0.9,
    "subtalker_top_p": 1.0,
    "subtalker_top_k": 50,
    "max_new_tokens": 8192,
}

# Exact counts of the released 0.6B CustomVoice shapes (tts.md §0 item 10, §3).
EXPECTED_PARAMS = 905_788_672
EXPECTED_TENSORS = 402

# ---------------------------------------------------------------------------------------------
# Released 12 Hz codec config (codecs.md §2.4)
# ---------------------------------------------------------------------------------------------

CODEC_ENCODER = dict(
    sampling_rate=24000, frame_rate=12.5, audio_channels=1, hidden_size=512, num_filters=64,
    num_residual_layers=1, upsampling_ratios=[8, 6, 5, 4], kernel_size=7, last_kernel_size=3,
    residual_kernel_size=3, dilation_growth_rate=2, use_causal_conv=True, pad_mode="constant",
    compress=2, trim_right_ratio=1.0, codebook_size=2048, codebook_dim=256, num_quantizers=32,
    num_semantic_quantizers=1, vector_quantization_hidden_dimension=256, upsample_groups=512,
    num_hidden_layers=8, intermediate_size=2048, num_attention_heads=8, num_key_value_heads=8,
    head_dim=64, hidden_act="gelu", max_position_embeddings=8000, initializer_range=0.02,
    norm_eps=1e-05, use_cache=False, rope_theta=10000.0, sliding_window=250, attention_dropout=0.0,
    layer_scale_initial_scale=0.01, attention_bias=False, use_conv_shortcut=False,
)  # fmt: skip
CODEC_DECODER = dict(
    attention_bias=False, attention_dropout=0.0, latent_dim=1024, codebook_dim=512, codebook_size=2048,
    decoder_dim=1536, hidden_act="silu", hidden_size=512, intermediate_size=1024,
    layer_scale_initial_scale=0.01, max_position_embeddings=8000, head_dim=64, num_attention_heads=16,
    num_hidden_layers=8, num_key_value_heads=16, num_quantizers=16, num_semantic_quantizers=1,
    rms_norm_eps=1e-05, rope_theta=10000, semantic_codebook_size=4096, sliding_window=72,
    upsample_rates=[8, 5, 4, 3], upsampling_ratios=[2, 2], vector_quantization_hidden_dimension=512,
)  # fmt: skip
CODEC_TOP = dict(
    encoder_valid_num_quantizers=16, input_sample_rate=24000, output_sample_rate=24000,
    decode_upsample_rate=1920, encode_downsample_rate=1920,
)  # fmt: skip
CODEC_EXPECTED_PARAMS = 170_560_000  # codecs.md §6.1: 170.56 M (state dict, buffers included)
CODEC_EXPECTED_TENSORS = 496
CODEC_FILES = ["config.json", "model.safetensors", "preprocessor_config.json"]

# ---------------------------------------------------------------------------------------------
# What both benches synthesise: 4 s of speech = 50 frames of 80 ms.
# ---------------------------------------------------------------------------------------------

BENCH_REQUEST = {
    "text": "The quick brown fox jumps over the lazy dog, then rests in the shade of an old oak tree.",
    "speaker": "Ryan",
    "language": "English",
    "frames": 50,
    "seconds": 4.0,
    "note": "non_streaming_mode=True (the wrapper's default for CustomVoice), greedy (do_sample=False, "
    "subtalker_dosample=False, repetition_penalty 1.05), max_new_tokens = frames + 1",
}

CHECKPOINT_FILES = [
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "vocab.json",
    "merges.txt",
    "tokenizer_config.json",
    "bench_request.json",
] + [f"speech_tokenizer/{f}" for f in CODEC_FILES]


def is_complete(out: Path) -> bool:
    marker = out / "bench_checkpoint.json"
    if not marker.is_file():
        return False
    try:
        info = json.loads(marker.read_text())
    except ValueError:
        return False
    if info.get("generator_version") != GENERATOR_VERSION:
        return False
    return all((out / f).is_file() for f in CHECKPOINT_FILES)


# ---------------------------------------------------------------------------------------------
# Config and tokenizer
# ---------------------------------------------------------------------------------------------


def config_kwargs() -> dict:
    """kwargs of Qwen3TTSConfig = what config.json holds (minus save_pretrained's extras)."""
    talker = dict(
        copy.deepcopy(TALKER),
        codec_pad_id=CODEC_PAD, codec_bos_id=CODEC_BOS, codec_eos_token_id=CODEC_EOS,
        codec_think_id=CODEC_THINK, codec_nothink_id=CODEC_NOTHINK,
        codec_think_bos_id=CODEC_THINK_BOS, codec_think_eos_id=CODEC_THINK_EOS,
        codec_language_id=dict(LANGUAGES), spk_id=dict(SPEAKERS),
        spk_is_dialect={k: DIALECTS.get(k, False) for k in SPEAKERS},
        code_predictor_config=copy.deepcopy(CODE_PREDICTOR),
    )  # fmt: skip
    return dict(
        talker_config=talker,
        tokenizer_type="qwen3_tts_tokenizer_12hz",
        tts_model_size="0b6",
        tts_model_type="custom_voice",
        im_start_token_id=IM_START,
        im_end_token_id=IM_END,
        tts_pad_token_id=TTS_PAD,
        tts_bos_token_id=TTS_BOS,
        tts_eos_token_id=TTS_EOS,
        assistant_token_id=ASSISTANT,
    )


def check_tokenizer() -> dict:
    """The TTS specials must be added tokens of the real Qwen2 tokenizer (they are, since the
    Qwen3-Omni vocabulary: <tts_pad>, <tts_text_bos>, <tts_text_eod>)."""
    cfg = json.loads((TOKENIZER_DIR / "tokenizer_config.json").read_text())
    got = {int(k): v["content"] for k, v in cfg["added_tokens_decoder"].items()}
    want = {TTS_PAD: "<tts_pad>", TTS_BOS: "<tts_text_bos>", TTS_EOS: "<tts_text_eod>",
            IM_START: "<|im_start|>", IM_END: "<|im_end|>"}  # fmt: skip
    for i, s in want.items():
        assert got.get(i) == s, f"{TOKENIZER_DIR}: id {i} is {got.get(i)!r}, expected {s!r}"
    vocab = json.loads((TOKENIZER_DIR / "vocab.json").read_text(encoding="utf-8"))
    assert vocab.get("assistant") == ASSISTANT, vocab.get("assistant")
    assert max(got) < TEXT_VOCAB
    return {"regular_ids": len(vocab), "added_tokens": len(got), "tts_specials": {s: i for i, s in want.items()}}


def write_tokenizer(out: Path) -> None:
    for f in ["vocab.json", "merges.txt"]:
        shutil.copy(TOKENIZER_DIR / f, out / f)
    cfg = json.loads((TOKENIZER_DIR / "tokenizer_config.json").read_text())
    # The fixture is the ASR release's file; AutoProcessor picks the class named here.
    cfg["processor_class"] = "Qwen3TTSProcessor"
    dump_json(out / "tokenizer_config.json", cfg)


# ---------------------------------------------------------------------------------------------
# Talker + code predictor
# ---------------------------------------------------------------------------------------------


def _is_norm_weight(name: str) -> bool:
    return name.endswith(("layernorm.weight", "q_norm.weight", "k_norm.weight", "model.norm.weight"))


def build_model():
    import torch
    from qwen_tts.core.models import Qwen3TTSConfig, Qwen3TTSForConditionalGeneration

    config = Qwen3TTSConfig(**config_kwargs())
    torch.manual_seed(0)
    model = Qwen3TTSForConditionalGeneration(config).eval()
    assert model.speaker_encoder is None
    assert model.talker.code_predictor.small_to_mtp_projection.__class__.__name__ == "Identity", (
        "0.6B: no projection (talker width == code predictor width)"
    )
    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if _is_norm_weight(name):
                p.fill_(1.0)
            elif name.endswith(".bias"):
                p.zero_()
            else:
                p.normal_(0.0, MATRIX_STD, generator=g)
        # Greedy (and top-k sampling) never picks EOS: its logit is exactly 0.
        model.talker.codec_head.weight[CODEC_EOS].zero_()
    return model.to(torch.bfloat16)


def sanity_check(model) -> dict:
    """A short random prompt through the bf16 talker: finite, EOS logit 0, max audio logit > 0."""
    import torch

    t = model.talker
    with torch.no_grad():
        ids = torch.tensor([[IM_START, ASSISTANT, 198, 785, 3974, TTS_EOS]])
        emb = t.text_projection(t.get_text_embeddings()(ids)) + t.get_input_embeddings()(
            torch.tensor([[CODEC_PAD] * 5 + [CODEC_BOS]])
        )
        hidden = t.model(inputs_embeds=emb, use_cache=False).last_hidden_state
        logits = t.codec_head(hidden)[0, -1].float()
    assert torch.isfinite(hidden).all() and torch.isfinite(logits).all(), "non-finite activations"
    assert logits[CODEC_EOS] == 0.0, float(logits[CODEC_EOS])
    audio = logits[:2048]
    assert audio.max() > 0.5, float(audio.max())
    return {
        "hidden_std": float(hidden.float().std()),
        "audio_logits_std": float(audio.std()),
        "audio_logits_max": float(audio.max()),
        "eos_logit": float(logits[CODEC_EOS]),
    }


def write_checkpoint(out: Path) -> dict:
    from safetensors import safe_open

    t0 = time.time()
    model = build_model()
    checks = sanity_check(model)
    for f in out.glob("model*.safetensors*"):
        f.unlink()
    model.save_pretrained(str(out), safe_serialization=True, max_shard_size="10GB")
    cj = json.loads((out / "config.json").read_text())
    quirk = cj.pop("speaker_encoder_config", None)
    dump_json(out / "config.json", cj)
    dump_json(out / "generation_config.json", GENERATION_CONFIG)
    write_tokenizer(out)
    dump_json(out / "bench_request.json", BENCH_REQUEST)
    n_params, dtypes = 0, set()
    with safe_open(str(out / "model.safetensors"), framework="pt") as st:
        keys = list(st.keys())
        for k in keys:
            sl = st.get_slice(k)
            n = 1
            for s in sl.get_shape():
                n *= s
            n_params += n
            dtypes.add(sl.get_dtype())
        eos_row = st.get_slice("talker.codec_head.weight")[CODEC_EOS : CODEC_EOS + 1]
    assert dtypes == {"BF16"}, dtypes
    assert n_params == EXPECTED_PARAMS, (n_params, EXPECTED_PARAMS)
    assert len(keys) == EXPECTED_TENSORS, (len(keys), EXPECTED_TENSORS)
    assert not any(k.startswith("speaker_encoder.") for k in keys)
    assert float(eos_row.abs().max()) == 0.0
    del model
    return {
        "stored_parameters": n_params,
        "tensors": len(keys),
        "model_safetensors_bytes": (out / "model.safetensors").stat().st_size,
        "save_pretrained_speaker_encoder_config_dropped": quirk is not None,
        "sanity": checks,
        "build_seconds": round(time.time() - t0, 1),
    }


# ---------------------------------------------------------------------------------------------
# Speech tokenizer (12 Hz codec)
# ---------------------------------------------------------------------------------------------


def _init_codec(model) -> None:
    import numpy as np
    import torch

    g = torch.Generator().manual_seed(CODEC_SEED)
    owners = dict(model.named_modules())
    with torch.no_grad():
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            owner_name, leaf = name.rsplit(".", 1)
            owner = owners[owner_name]
            if leaf in ("embedding_sum", "embed_sum"):  # decoder codebooks are parameters
                p.copy_(torch.randn(p.shape, generator=g))
            elif leaf == "cluster_usage":
                p.fill_(1.0)
            elif leaf == "weight" and isinstance(owner, torch.nn.ConvTranspose1d):
                fan_in = p.shape[0] * p.shape[2] // owner.stride[0]
                p.copy_(torch.randn(p.shape, generator=g) / np.sqrt(fan_in))
            elif leaf == "weight" and p.dim() >= 2:
                fan_in = p.shape[1] * (p.shape[2] if p.dim() == 3 else 1)
                p.copy_(torch.randn(p.shape, generator=g) / np.sqrt(fan_in))
            elif leaf == "bias":
                p.zero_()
            elif leaf == "weight":  # LayerNorm / RMSNorm
                p.fill_(1.0)
            elif leaf in ("scale", "gamma"):  # LayerScale, ConvNeXt gamma
                p.fill_(0.1)
            elif leaf in ("alpha", "beta"):  # SnakeBeta, log space
                p.zero_()
            else:
                raise AssertionError(f"unhandled codec parameter {name}")
        for name, p in model.named_parameters():
            # Residual units add up: keep the conv decoder's activations near unit scale.
            if name.startswith("decoder.decoder.") and ".conv2.conv." in name:
                p.mul_(0.4)
        for name, b in model.named_buffers():
            if name.endswith("embed_sum") or name.endswith("embedding_sum"):
                b.copy_(torch.randn(b.shape, generator=g))
            elif name.endswith("cluster_usage"):
                b.fill_(1.0)
            elif name.endswith("initialized"):
                b.fill_(1.0)


def _random_codes(frames: int, seed: int):
    import torch

    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2048, (1, 16, frames), generator=g)


def write_codec(out: Path) -> dict:
    import torch
    from safetensors import safe_open
    from transformers import EncodecFeatureExtractor
    from qwen_tts.core.tokenizer_12hz.configuration_qwen3_tts_tokenizer_v2 import Qwen3TTSTokenizerV2Config
    from qwen_tts.core.tokenizer_12hz.modeling_qwen3_tts_tokenizer_v2 import Qwen3TTSTokenizerV2Model

    d = out / "speech_tokenizer"
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    cfg = Qwen3TTSTokenizerV2Config(
        encoder_config=copy.deepcopy(CODEC_ENCODER), decoder_config=copy.deepcopy(CODEC_DECODER), **CODEC_TOP
    )
    cfg.architectures = ["Qwen3TTSTokenizerV2Model"]
    torch.manual_seed(0)
    model = Qwen3TTSTokenizerV2Model(cfg).eval()
    _init_codec(model)
    dec = model.decoder
    with torch.no_grad():
        # Scale the last conv so that decoded random codes have std ~0.25 (the output is clamped
        # to [-1, 1]: measure the last conv's output, before the clamp).
        last = dec.decoder[-1]
        pre = {}
        h = last.register_forward_hook(lambda m, i, o: pre.setdefault("y", o))
        dec(_random_codes(25, CODEC_SEED + 1))
        h.remove()
        factor = 0.25 / float(pre["y"].std())
        last.conv.weight.mul_(factor)
        last.conv.bias.mul_(factor)
        wav = dec(_random_codes(50, CODEC_SEED + 2))[0, 0]
    assert torch.isfinite(wav).all()
    decoded = {
        "samples": int(wav.numel()),
        "std": float(wav.std()),
        "clipped_fraction": float((wav.abs() >= 1.0).float().mean()),
        "output_conv_scale": factor,
    }
    assert wav.numel() == 50 * 1920, wav.numel()
    model.save_pretrained(str(d), safe_serialization=True)
    EncodecFeatureExtractor(feature_size=1, sampling_rate=24000, padding_value=0.0).save_pretrained(str(d))
    cj = json.loads((d / "config.json").read_text())
    for sub in (cj, cj["encoder_config"], cj["decoder_config"]):
        sub.pop("_attn_implementation_autoset", None)
        sub.pop("attn_implementation", None)
    dump_json(d / "config.json", cj)
    for f in d.iterdir():
        if f.is_file() and f.name not in CODEC_FILES:
            f.unlink()
    n, dtypes = 0, set()
    with safe_open(str(d / "model.safetensors"), framework="pt") as st:
        keys = list(st.keys())
        for k in keys:
            sl = st.get_slice(k)
            m = 1
            for s in sl.get_shape():
                m *= s
            n += m
            dtypes.add(sl.get_dtype())
    assert dtypes == {"F32"}, dtypes
    assert len(keys) == CODEC_EXPECTED_TENSORS, len(keys)
    assert abs(n - CODEC_EXPECTED_PARAMS) < 0.006e6, n
    assert (cj["decoder_config"]["hidden_size"], cj["decoder_config"]["latent_dim"]) == (512, 1024)
    assert cj["encoder_config"]["num_quantizers"] == 32 and cj["encoder_valid_num_quantizers"] == 16
    return {
        "stored_parameters": n,
        "tensors": len(keys),
        "decoder_tensors": sum(k.startswith("decoder.") for k in keys),
        "model_safetensors_bytes": (d / "model.safetensors").stat().st_size,
        "decoded_random_codes": decoded,
    }


def check_reload(out: Path) -> dict:
    """What the reference's loaders build from the saved configs (no weights loaded)."""
    from qwen_tts.core.models import Qwen3TTSConfig
    from qwen_tts.core.tokenizer_12hz.configuration_qwen3_tts_tokenizer_v2 import Qwen3TTSTokenizerV2Config

    cfg = Qwen3TTSConfig.from_pretrained(str(out))
    t = cfg.talker_config
    assert (t.hidden_size, t.num_hidden_layers, t.head_dim, t.intermediate_size) == (1024, 28, 128, 3072)
    assert (t.num_code_groups, t.vocab_size, t.codec_eos_token_id) == (16, CODEC_VOCAB, CODEC_EOS)
    cp = t.code_predictor_config
    assert (cp.hidden_size, cp.num_hidden_layers, cp.vocab_size) == (1024, 5, 2048)
    assert cfg.tts_model_type == "custom_voice" and len(t.spk_id) == 9
    c = Qwen3TTSTokenizerV2Config.from_pretrained(str(out / "speech_tokenizer"))
    assert c.decode_upsample_rate == 1920 and c.decoder_config.sliding_window == 72
    return {"talker_layers": t.num_hidden_layers, "speakers": sorted(t.spk_id), "codec_model_type": c.model_type}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--force", action="store_true", help="rebuild even if the folder is complete")
    args = ap.parse_args()
    out: Path = args.out.resolve()
    if not args.force and is_complete(out):
        print(f"{out}: complete checkpoint already there (use --force to rebuild)")
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_checkpoint.json").unlink(missing_ok=True)
    print(f"building the random-weight Qwen3-TTS-12Hz-0.6B-CustomVoice in {out} ...", flush=True)
    info = {"generator_version": GENERATOR_VERSION, "seed": SEED, "matrix_std": MATRIX_STD}
    info["tokenizer"] = check_tokenizer()
    info.update(write_checkpoint(out))
    info["speech_tokenizer"] = write_codec(out)
    info["reload_config"] = check_reload(out)
    info["bench_request"] = BENCH_REQUEST
    info["versions"] = {"torch": torch.__version__, "transformers": transformers.__version__}
    for f in out.iterdir():
        if f.is_file() and f.name not in CHECKPOINT_FILES and f.name != "bench_checkpoint.json":
            f.unlink()
    dump_json(out / "bench_checkpoint.json", info)  # written last: marks the folder complete
    print(json.dumps(info, indent=1))


if __name__ == "__main__":
    main()
