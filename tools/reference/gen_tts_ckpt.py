"""tests/fixtures/tts-tiny/: tokenizer and the three tiny Qwen3-TTS checkpoints.

Built with qwen_tts's own classes (`Qwen3TTSConfig`, `Qwen3TTSForConditionalGeneration`,
`save_pretrained`) in the released folder layout: config.json, generation_config.json,
model.safetensors, vocab.json / merges.txt / tokenizer_config.json and speech_tokenizer/
(the tiny 12 Hz codec of gen_codec12.build_tiny_codec12).

* `base/`          Tiny-A of tts.md §11.2 (Base: speaker encoder, small_to_mtp_projection, text hidden != talker hidden)
* `custom_voice/`  Tiny-B (0.6B-like CustomVoice: no speaker encoder, no projection, heads*head_dim != hidden,
                   named speakers incl. dialect speakers, dialect languages, EOS row of codec_head boosted)
* `voice_design/`  a VoiceDesign tiny config (1.7B-like)

The codec vocabulary layout is the released one shifted down to the tiny codebook K
(released K = 2048): audio codes 0..K-1, control ids K..K+1023 with the released offsets
(pad K+100, bos K+101, eos K+102, think K+106, ...), talker vocab K+1024. See CASES.md.
"""

from __future__ import annotations

import copy
import json
import shutil
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

from common import check_close, check_equal, dump_json

HERE = Path(__file__).resolve().parent
AREA_DIR = "tts-tiny"
KINDS = ["base", "custom_voice", "voice_design"]

# ----------------------------------------------------------------------------
# Tokenizer: tests/fixtures/tokenizer/tiny (256 bytes + first 2000 real Qwen2 merges) plus
# the two real merges that make "assistant" one token ("ist ant", "ass istant"; ranks
# 10946 and 76835 in Qwen2, appended in that order), then the 63 added tokens.
# The reference slices the formatted prompt positionally (role = ids[:3]), so "assistant"
# must be a single token, as it is in the real vocabulary (77091).
# ----------------------------------------------------------------------------

TINY_MERGES = 2000
EXTRA_WORDS = ["assistant"]


def _real_qwen2(fixtures: Path) -> Tuple[List[str], List[str]]:
    d = fixtures / "tokenizer" / "qwen2"
    vocab = json.loads((d / "vocab.json").read_text(encoding="utf-8"))
    tokens = [None] * len(vocab)
    for t, i in vocab.items():
        tokens[i] = t
    merges = (d / "merges.txt").read_text(encoding="utf-8").split("\n")
    assert merges[0].startswith("#version")
    merges = [m for m in merges[1:] if m]
    check_equal("qwen2 merges", len(merges), len(tokens) - 256)
    return tokens, merges


def _bpe_merges_used(word: str, merges: List[str]) -> List[int]:
    """Ranks of the merges that byte-level BPE applies to `word` (ASCII only here)."""
    rank = {tuple(m.split(" ")): i for i, m in enumerate(merges)}
    parts, used = list(word), []
    while len(parts) > 1:
        r, i = min((rank.get((parts[j], parts[j + 1]), 1 << 60), j) for j in range(len(parts) - 1))
        if r == 1 << 60:
            break
        used.append(r)
        a, b = parts[i], parts[i + 1]
        out, j = [], 0
        while j < len(parts):
            if j < len(parts) - 1 and parts[j] == a and parts[j + 1] == b:
                out.append(a + b)
                j += 2
            else:
                out.append(parts[j])
                j += 1
        parts = out
    check_equal(f"bpe({word})", parts, [word])
    return used


def tts_vocab(fixtures: Path) -> Tuple[List[str], List[str], List[int]]:
    tokens, merges = _real_qwen2(fixtures)
    t_tokens, t_merges = tokens[: 256 + TINY_MERGES], merges[:TINY_MERGES]
    extra = sorted({r for w in EXTRA_WORDS for r in _bpe_merges_used(w, merges) if r >= TINY_MERGES})
    for r in extra:
        t_merges.append(merges[r])
        t_tokens.append(tokens[256 + r])
    return t_tokens, t_merges, extra


def tts_tokenizer_config(first_added: int) -> Dict[str, Any]:
    from gen_tokenizer import tokenizer_config

    cfg = tokenizer_config(first_added)
    cfg["processor_class"] = "Qwen3TTSProcessor"
    return cfg


def build_tokenizer(fixtures: Path) -> Dict[str, Any]:
    """tests/fixtures/tts-tiny/tokenizer/{vocab.json,merges.txt,tokenizer_config.json,tokenizer.json}."""
    from transformers import AutoTokenizer

    from gen_tokenizer import ADDED_TOKENS, QWEN2_REGEX, added_token_ids, pretokenizer_regex

    out = fixtures / AREA_DIR / "tokenizer"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    t_tokens, t_merges, extra = tts_vocab(fixtures)
    vocab = {tok: i for i, tok in enumerate(t_tokens)}
    assert len(vocab) == len(t_tokens)
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(t_merges) + "\n", encoding="utf-8")
    first = len(t_tokens)
    dump_json(out / "tokenizer_config.json", tts_tokenizer_config(first))
    tok = AutoTokenizer.from_pretrained(str(out))
    check_equal("tts tokenizer class", type(tok).__name__, "Qwen2TokenizerFast")
    check_equal("tts tokenizer len", len(tok), first + len(ADDED_TOKENS))
    for content, tid in added_token_ids(first).items():
        check_equal(f"tts tokenizer id of {content}", tok.convert_tokens_to_ids(content), tid)
    check_equal("tts tokenizer regex", pretokenizer_regex(tok), QWEN2_REGEX)
    check_equal("assistant is one token", tok("assistant")["input_ids"], [vocab["assistant"]])
    check_equal("user is one token", tok("user")["input_ids"], [vocab["user"]])
    tok.backend_tokenizer.save(str(out / "tokenizer.json"))
    ids = added_token_ids(first)
    return {
        "regular_tokens": first,
        "merges": len(t_merges),
        "extra_merge_ranks_in_qwen2": extra,
        "extra_tokens": {t_tokens[256 + TINY_MERGES + i]: 256 + TINY_MERGES + i for i in range(len(extra))},
        "first_added_id": first,
        "total_ids": first + len(ADDED_TOKENS),
        "special_ids": ids,
    }


def special_ids(fixtures: Path) -> Dict[str, int]:
    cfg = json.loads((fixtures / AREA_DIR / "tokenizer" / "tokenizer_config.json").read_text())
    return {v["content"]: int(k) for k, v in cfg["added_tokens_decoder"].items()}


def text_vocab_size(fixtures: Path) -> int:
    n = max(special_ids(fixtures).values()) + 1
    return (n + 63) // 64 * 64


# ----------------------------------------------------------------------------
# Configurations. K = codec codebook size (read from the tiny codec), G = number of codebooks.
# ----------------------------------------------------------------------------

# Released offsets (id - 2048) of the control ids, languages and speakers (tts.md §2.2, §2.5).
CTRL_OFFSETS = dict(
    codec_pad_id=100, codec_bos_id=101, codec_eos_token_id=102,
    codec_think_id=106, codec_nothink_id=107, codec_think_bos_id=108, codec_think_eos_id=109,
)  # fmt: skip
LANG_OFFSETS = {
    "chinese": 7, "english": 2, "german": 5, "spanish": 6, "japanese": 10, "french": 13, "korean": 16,
    "russian": 21, "italian": 22, "portuguese": 23, "sichuan_dialect": 14, "beijing_dialect": 26,
}  # fmt: skip
SPK_OFFSETS = {
    "serena": 1018, "vivian": 1017, "uncle_fu": 962, "ryan": 1013, "aiden": 813, "ono_anna": 825,
    "sohee": 816, "eric": 827, "dylan": 830,
}  # fmt: skip
SPK_DIALECT = {"eric": "sichuan_dialect", "dylan": "beijing_dialect"}

ROPE_SCALING_TALKER = {"interleaved": True, "mrope_section": [4, 2, 2], "rope_type": "default"}

# Per-checkpoint architecture (tts.md §11.2).
ARCH: Dict[str, Dict[str, Any]] = {
    "base": dict(  # Tiny-A
        tts_model_size="1b7",
        talker=dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, head_dim=16, rope_theta=1000000, text_hidden_size=32),
        cp=dict(hidden_size=48, intermediate_size=80, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, head_dim=12, rope_theta=10000),
        languages=["chinese", "english", "japanese"],
        speakers=[],
        speaker_encoder=dict(mel_dim=128, enc_dim=64, enc_channels=[32, 32, 32, 32, 96],
                             enc_kernel_sizes=[5, 3, 3, 3, 1], enc_dilations=[1, 2, 3, 4, 1],
                             enc_attention_channels=16, enc_res2net_scale=4, enc_se_channels=8,
                             sample_rate=24000),
        seed=20260311,
        eos_row_scale=1.0,
    ),
    "custom_voice": dict(  # Tiny-B
        tts_model_size="0b6",
        talker=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, head_dim=16, rope_theta=1000000, text_hidden_size=24),
        cp=dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, head_dim=16, rope_theta=1000000),
        languages=["chinese", "english", "japanese", "sichuan_dialect", "beijing_dialect"],
        speakers=["vivian", "ryan", "eric", "dylan"],
        speaker_encoder=None,
        seed=20260352,
        matrix_scale=8.5,  # hidden 32: x6 * sqrt(2) keeps pre-activations comparable to Tiny-A
        eos_row_scale=None,  # set below (EOS_ROW_SCALE_CUSTOM_VOICE)
    ),
    "voice_design": dict(
        tts_model_size="1b7",
        talker=dict(hidden_size=48, intermediate_size=80, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, head_dim=12, rope_theta=1000000, text_hidden_size=32),
        cp=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                num_key_value_heads=1, head_dim=16, rope_theta=1000000),
        languages=["chinese", "english", "japanese"],
        speakers=[],
        speaker_encoder=None,
        seed=20260303,
        eos_row_scale=1.0,
    ),
}  # fmt: skip

# The custom_voice codec_head row of codec EOS is multiplied by this factor (like asr-tiny's
# <|im_end|> row) so that some greedy runs stop on EOS within 12 steps and others do not.
EOS_ROW_SCALE_CUSTOM_VOICE = 2.0
ARCH["custom_voice"]["eos_row_scale"] = EOS_ROW_SCALE_CUSTOM_VOICE

MATRIX_STD = 0.02
MATRIX_SCALE = 6.0  # 2-D non-speaker-encoder weights: N(0, 0.02) * 6 (tts.md §11.2)
BIAS_STD = 0.02
NORM_DELTA = 0.1  # RMSNorm weights 1 + U(-0.1, 0.1)
SPK_CONV_GAIN = 0.8  # speaker encoder convs (3-D): N(0, 0.8 / sqrt(fan_in)); x-vector norm ~5 (codec rows ~1)
SPK_BIAS_STD = 0.02

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


def codec_info(codec_dir: Path) -> Dict[str, int]:
    c = json.loads((codec_dir / "config.json").read_text())
    dec = c["decoder_config"]
    info = {
        "codebook_size": int(dec["codebook_size"]),
        "num_quantizers": int(dec["num_quantizers"]),
        "encoder_valid_num_quantizers": int(c["encoder_valid_num_quantizers"]),
        "decode_upsample_rate": int(c["decode_upsample_rate"]),
        "encode_downsample_rate": int(c["encode_downsample_rate"]),
        "output_sample_rate": int(c.get("output_sample_rate", 24000)),
        "input_sample_rate": int(c.get("input_sample_rate", 24000)),
    }
    check_equal("codec encoder/decoder quantizers", info["encoder_valid_num_quantizers"], info["num_quantizers"])
    return info


def config_dict(kind: str, fixtures: Path, cinfo: Dict[str, int]) -> Dict[str, Any]:
    """kwargs for Qwen3TTSConfig (what config.json holds, minus the save_pretrained extras)."""
    a = ARCH[kind]
    K, G = cinfo["codebook_size"], cinfo["num_quantizers"]
    sp = special_ids(fixtures)
    talker = dict(
        a["talker"],
        vocab_size=K + 1024,
        text_vocab_size=text_vocab_size(fixtures),
        num_code_groups=G,
        rope_scaling=copy.deepcopy(ROPE_SCALING_TALKER),
        max_position_embeddings=32768,
        rms_norm_eps=1e-06,
        hidden_act="silu",
        attention_bias=False,
        position_id_per_seconds=13,
        codec_language_id={k: K + LANG_OFFSETS[k] for k in a["languages"]},
        spk_id={k: K + SPK_OFFSETS[k] for k in a["speakers"]},
        spk_is_dialect={k: SPK_DIALECT.get(k, False) for k in a["speakers"]},
        code_predictor_config=dict(
            a["cp"], vocab_size=K, num_code_groups=G, max_position_embeddings=65536, rms_norm_eps=1e-06,
            hidden_act="silu", attention_bias=False, rope_scaling=None,
        ),
        **{k: K + v for k, v in CTRL_OFFSETS.items()},
    )
    cfg = dict(
        talker_config=talker,
        tokenizer_type="qwen3_tts_tokenizer_12hz",
        tts_model_size=a["tts_model_size"],
        tts_model_type=kind,
        im_start_token_id=sp["<|im_start|>"],
        im_end_token_id=sp["<|im_end|>"],
        tts_pad_token_id=sp["<tts_pad>"],
        tts_bos_token_id=sp["<tts_text_bos>"],
        tts_eos_token_id=sp["<tts_text_eod>"],
        assistant_token_id=json.loads((fixtures / AREA_DIR / "tokenizer" / "vocab.json").read_text())["assistant"],
    )
    if a["speaker_encoder"] is not None:
        cfg["speaker_encoder_config"] = dict(a["speaker_encoder"])
    return cfg


# ----------------------------------------------------------------------------
# Weights
# ----------------------------------------------------------------------------


def _is_norm(name: str) -> bool:
    return name.endswith(("layernorm.weight", "q_norm.weight", "k_norm.weight", "model.norm.weight"))


def init_weights(model, kind: str) -> Dict[str, Any]:
    """Deterministic re-initialisation (the reference's own _init_weights ran in post_init first).

    * RMSNorm weights: 1 + U(-0.1, 0.1)
    * every other non-speaker-encoder weight: N(0, 0.02), 2-D ones then x ARCH[kind]["matrix_scale"] (default 6)
    * biases (text_projection, small_to_mtp_projection): N(0, 0.02)
    * speaker encoder: conv weights N(0, SPK_CONV_GAIN / sqrt(fan_in)), biases N(0, 0.02)
    * custom_voice: codec_head row EOS x EOS_ROW_SCALE_CUSTOM_VOICE
    """
    import torch

    a = ARCH[kind]
    g = torch.Generator().manual_seed(a["seed"])
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("speaker_encoder."):
                if name.endswith(".bias"):
                    v = SPK_BIAS_STD * torch.randn(p.shape, generator=g)
                else:
                    fan_in = p.shape[1] * p.shape[2]
                    v = torch.randn(p.shape, generator=g) * (SPK_CONV_GAIN / fan_in**0.5)
            elif _is_norm(name):
                v = 1.0 + NORM_DELTA * (2.0 * torch.rand(p.shape, generator=g) - 1.0)
            elif name.endswith(".bias"):
                v = BIAS_STD * torch.randn(p.shape, generator=g)
            else:
                v = MATRIX_STD * torch.randn(p.shape, generator=g)
                if p.dim() == 2:
                    v = v * a.get("matrix_scale", MATRIX_SCALE)
            p.copy_(v.to(p.dtype))
        eos = model.config.talker_config.codec_eos_token_id
        if a["eos_row_scale"] != 1.0:
            model.talker.codec_head.weight[eos] *= a["eos_row_scale"]
    return {
        "seed": a["seed"],
        "matrix": f"N(0, {MATRIX_STD}) x {a.get('matrix_scale', MATRIX_SCALE)} for 2-D weights (not speaker encoder)",
        "bias": f"N(0, {BIAS_STD})",
        "rmsnorm_weight": f"1 + U(-{NORM_DELTA}, {NORM_DELTA})",
        "speaker_encoder": f"conv weights N(0, {SPK_CONV_GAIN}/sqrt(fan_in)), biases N(0, {SPK_BIAS_STD})",
        "codec_head_eos_row_scale": a["eos_row_scale"],
    }



# ----------------------------------------------------------------------------
# Codec (speech_tokenizer/): gen_codec12.build_tiny_codec12 from this folder, or from the
# codec work tree while it is not merged.
# ----------------------------------------------------------------------------

import os

CODEC_FALLBACK_DIRS = [Path(p) for p in os.environ.get("TTS_CODEC12_DIR", "").split(":") if p] + [
    HERE,
    Path("/work/wt-codec/tools/reference"),
]


def codec_builder():
    import importlib.util

    for d in CODEC_FALLBACK_DIRS:
        f = d / "gen_codec12.py"
        if f.exists():
            if str(d) not in sys.path:
                sys.path.append(str(d))
            spec = importlib.util.spec_from_file_location("gen_codec12", f)
            mod = importlib.util.module_from_spec(spec)
            sys.modules.setdefault("gen_codec12", mod)
            spec.loader.exec_module(mod)
            return mod.build_tiny_codec12, str(f)
    raise RuntimeError(
        "gen_codec12.py (build_tiny_codec12) not found in "
        + ", ".join(str(d) for d in CODEC_FALLBACK_DIRS)
        + "; the TTS checkpoints need the tiny 12 Hz codec for speech_tokenizer/"
    )


# ----------------------------------------------------------------------------
# Build + save
# ----------------------------------------------------------------------------

CKPT_FILES = {"config.json", "generation_config.json", "model.safetensors", "vocab.json", "merges.txt",
              "tokenizer_config.json"}  # fmt: skip


def build_checkpoint(kind: str, fixtures: Path, codec_src: Path) -> Dict[str, Any]:
    import torch
    from safetensors.torch import load_file

    from qwen_tts.core.models import Qwen3TTSConfig, Qwen3TTSForConditionalGeneration

    out = fixtures / AREA_DIR / kind
    if out.exists():
        for f in out.iterdir():  # keep expected/ only until it is rewritten
            if f.is_file():
                f.unlink()
            elif f.name == "speech_tokenizer":
                shutil.rmtree(f)
    out.mkdir(parents=True, exist_ok=True)
    cinfo = codec_info(codec_src)
    cfg_kwargs = config_dict(kind, fixtures, cinfo)
    config = Qwen3TTSConfig(**copy.deepcopy(cfg_kwargs))
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    model = Qwen3TTSForConditionalGeneration(config).eval()
    init_report = init_weights(model, kind)
    model.save_pretrained(str(out), safe_serialization=True)
    # config.json: save_pretrained writes "model_type": "" into speaker_encoder_config, which
    # Qwen3TTSSpeakerEncoderConfig(**kw) then rejects on load (TypeError). Released Base configs
    # carry only the encoder's own keys; CustomVoice/VoiceDesign carry no speaker_encoder_config.
    cj = json.loads((out / "config.json").read_text())
    quirk = cj.get("speaker_encoder_config", {}).get("model_type", None)
    if kind == "base":
        cj["speaker_encoder_config"] = dict(ARCH[kind]["speaker_encoder"])
    else:
        cj.pop("speaker_encoder_config", None)
    dump_json(out / "config.json", cj)
    dump_json(out / "generation_config.json", GENERATION_CONFIG)
    tokdir = fixtures / AREA_DIR / "tokenizer"
    for f in ["vocab.json", "merges.txt", "tokenizer_config.json"]:
        shutil.copy(tokdir / f, out / f)
    shutil.copytree(codec_src, out / "speech_tokenizer")
    for f in out.iterdir():
        if f.is_file() and f.name not in CKPT_FILES:
            f.unlink()
    # Stored tensors equal the in-memory model.
    stored = load_file(str(out / "model.safetensors"))
    sd = model.state_dict()
    check_equal(f"{kind} stored tensor names", sorted(stored), sorted(sd))
    for k, v in stored.items():
        check_close(f"{kind} stored {k}", v, sd[k], rtol=0, atol=0)
    n_params = int(sum(v.numel() for v in stored.values()))
    return {
        "config_kwargs": cfg_kwargs,
        "init": init_report,
        "n_tensors": len(stored),
        "n_params": n_params,
        "save_pretrained_speaker_encoder_model_type": quirk,
        "model": model,
    }


def load_wrapper(path: Path, attn: str = "eager"):
    """Load a saved tiny checkpoint exactly as users do: Qwen3TTSModel.from_pretrained(dir)."""
    import torch

    from qwen_tts import Qwen3TTSModel

    return Qwen3TTSModel.from_pretrained(str(path), dtype=torch.float32, attn_implementation=attn)
