"""tests/fixtures/asr-tiny/: a tiny Qwen3-ASR checkpoint in the released layout.

Built with qwen_asr's own config/model classes, random weights (std 0.3 for
matrices, norm weights 1 +- 0.1, see asr.md §13), a reduced Qwen2 tokenizer
(tests/fixtures/tokenizer/tiny) and a stored `thinker.lm_head.weight` that
differs from the embedding (tied: the reference ignores it).
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any, Dict

from common import FIXTURES, RUN_NOTES, check_close, check_equal, dump_json, import_qwen_asr

SUPPORTED_LANGUAGES = [
    "Chinese", "English", "Cantonese", "Arabic", "German", "French", "Spanish", "Portuguese",
    "Indonesian", "Italian", "Korean", "Russian", "Thai", "Vietnamese", "Japanese", "Turkish",
    "Hindi", "Malay", "Dutch", "Swedish", "Danish", "Finnish", "Polish", "Czech", "Filipino",
    "Persian", "Greek", "Romanian", "Hungarian", "Macedonian",
]  # fmt: skip

# Chat template of the released Qwen3-ASR repos (chat_template.json), as copied
# verbatim by several third-party projects; the HF v5 converter calls its own
# ASR_CHAT_TEMPLATE an extension of this one.  Renders asr.md §5.3.
CHAT_TEMPLATE = """{%- set ns = namespace(system_text="") -%}
{%- for m in messages -%}
  {%- if m.role == 'system' -%}
    {%- if m.content is string -%}
      {%- set ns.system_text = ns.system_text + m.content -%}
    {%- else -%}
      {%- for c in m.content -%}
        {%- if c.type == 'text' and (c.text is defined) -%}
          {%- set ns.system_text = ns.system_text + c.text -%}
        {%- endif -%}
      {%- endfor -%}
    {%- endif -%}
  {%- endif -%}
{%- endfor -%}

{%- set ns2 = namespace(audio_tokens="") -%}
{%- for m in messages -%}
  {%- if m.content is not string -%}
    {%- for c in m.content -%}
      {%- if c.type == 'audio' or ('audio' in c) or ('audio_url' in c) -%}
        {%- set ns2.audio_tokens = ns2.audio_tokens + "<|audio_start|><|audio_pad|><|audio_end|>" -%}
      {%- endif -%}
    {%- endfor -%}
  {%- endif -%}
{%- endfor -%}

{{- '<|im_start|>system\\n' + (ns.system_text if ns.system_text is string else '') + '<|im_end|>\\n' -}}
{{- '<|im_start|>user\\n' + ns2.audio_tokens + '<|im_end|>\\n' -}}
{%- if add_generation_prompt -%}
{{- '<|im_start|>assistant\\n' -}}
{%- endif -%}"""

PREPROCESSOR_CONFIG = {
    "chunk_length": 30,
    "dither": 0.0,
    "feature_extractor_type": "WhisperFeatureExtractor",
    "feature_size": 128,
    "hop_length": 160,
    "n_fft": 400,
    "n_samples": 480000,
    "nb_max_frames": 3000,
    "padding_side": "right",
    "padding_value": 0.0,
    "processor_class": "Qwen3ASRProcessor",
    "return_attention_mask": True,
    "sampling_rate": 16000,
}

# ----------------------------------------------------------------------------
# Tiny configuration (asr.md §13 tiny-asr)
# ----------------------------------------------------------------------------

TINY_AUDIO = dict(
    num_mel_bins=128,
    d_model=32,
    encoder_layers=2,
    encoder_attention_heads=4,
    encoder_ffn_dim=64,
    downsample_hidden_size=8,
    output_dim=48,
    n_window=50,
    n_window_infer=200,
    conv_chunksize=2,
    max_source_positions=64,
)
TINY_TEXT = dict(
    hidden_size=48,
    intermediate_size=96,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    rope_theta=1000000,
    rope_scaling={
        "interleaved": True,
        "mrope_interleaved": True,
        "mrope_section": [4, 2, 2],
        "rope_type": "default",
        "type": "default",
    },
    rms_norm_eps=1e-06,
    max_position_embeddings=65536,
    tie_word_embeddings=True,
)
REAL_AUDIO = dict(
    num_mel_bins=128, d_model=896, encoder_layers=18, encoder_attention_heads=14, encoder_ffn_dim=3584,
    downsample_hidden_size=480, output_dim=1024, n_window=50, n_window_infer=800, conv_chunksize=500,
    max_source_positions=1500,
)  # fmt: skip
REAL_TEXT = dict(
    hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
    num_key_value_heads=8, head_dim=128, rope_theta=1000000,
    rope_scaling={"interleaved": True, "mrope_interleaved": True, "mrope_section": [24, 20, 20],
                  "rope_type": "default", "type": "default"},
    rms_norm_eps=1e-06, max_position_embeddings=65536, tie_word_embeddings=True,
)  # fmt: skip

def _audio_block(a: Dict[str, Any]) -> Dict[str, Any]:
    return {
        "_name_or_path": "",
        "activation_dropout": 0,
        "activation_function": "gelu",
        "add_cross_attention": False,
        "architectures": None,
        "attention_dropout": 0,
        "bad_words_ids": None,
        "begin_suppress_tokens": None,
        "bos_token_id": None,
        "chunk_size_feed_forward": 0,
        "conv_chunksize": a["conv_chunksize"],
        "cross_attention_hidden_size": None,
        "d_model": a["d_model"],
        "decoder_start_token_id": None,
        "diversity_penalty": 0.0,
        "do_sample": False,
        "downsample_hidden_size": a["downsample_hidden_size"],
        "dropout": 0,
        "dtype": None,
        "early_stopping": False,
        "encoder_attention_heads": a["encoder_attention_heads"],
        "encoder_ffn_dim": a["encoder_ffn_dim"],
        "encoder_layers": a["encoder_layers"],
        "encoder_no_repeat_ngram_size": 0,
        "eos_token_id": None,
        "exponential_decay_length_penalty": None,
        "finetuning_task": None,
        "forced_bos_token_id": None,
        "forced_eos_token_id": None,
        "id2label": {"0": "LABEL_0", "1": "LABEL_1"},
        "initializer_range": 0.02,
        "is_decoder": False,
        "is_encoder_decoder": False,
        "label2id": {"LABEL_0": 0, "LABEL_1": 1},
        "length_penalty": 1.0,
        "max_length": 20,
        "max_source_positions": a["max_source_positions"],
        "min_length": 0,
        "model_type": "qwen3_asr_audio_encoder",
        "n_window": a["n_window"],
        "n_window_infer": a["n_window_infer"],
        "no_repeat_ngram_size": 0,
        "num_beam_groups": 1,
        "num_beams": 1,
        "num_hidden_layers": a["encoder_layers"],
        "num_mel_bins": a["num_mel_bins"],
        "num_return_sequences": 1,
        "output_attentions": False,
        "output_dim": a["output_dim"],
        "output_hidden_states": False,
        "output_scores": False,
        "pad_token_id": None,
        "prefix": None,
        "problem_type": None,
        "pruned_heads": {},
        "remove_invalid_values": False,
        "repetition_penalty": 1.0,
        "return_dict": True,
        "return_dict_in_generate": False,
        "scale_embedding": False,
        "sep_token_id": None,
        "suppress_tokens": None,
        "task_specific_params": None,
        "temperature": 1.0,
        "tf_legacy_loss": False,
        "tie_encoder_decoder": False,
        "tie_word_embeddings": True,
        "tokenizer_class": None,
        "top_k": 50,
        "top_p": 1.0,
        "torchscript": False,
        "typical_p": 1.0,
        "use_bfloat16": False,
    }


def _text_block(t: Dict[str, Any], vocab_size: int) -> Dict[str, Any]:
    return {
        "_name_or_path": "",
        "add_cross_attention": False,
        "architectures": None,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bad_words_ids": None,
        "begin_suppress_tokens": None,
        "bos_token_id": None,
        "chunk_size_feed_forward": 0,
        "cross_attention_hidden_size": None,
        "decoder_start_token_id": None,
        "diversity_penalty": 0.0,
        "do_sample": False,
        "dtype": None,
        "early_stopping": False,
        "encoder_no_repeat_ngram_size": 0,
        "eos_token_id": None,
        "exponential_decay_length_penalty": None,
        "finetuning_task": None,
        "forced_bos_token_id": None,
        "forced_eos_token_id": None,
        "head_dim": t["head_dim"],
        "hidden_act": "silu",
        "hidden_size": t["hidden_size"],
        "id2label": {"0": "LABEL_0", "1": "LABEL_1"},
        "initializer_range": 0.02,
        "intermediate_size": t["intermediate_size"],
        "is_decoder": False,
        "is_encoder_decoder": False,
        "label2id": {"LABEL_0": 0, "LABEL_1": 1},
        "length_penalty": 1.0,
        "max_length": 20,
        "max_position_embeddings": t["max_position_embeddings"],
        "min_length": 0,
        "model_type": "qwen3",
        "no_repeat_ngram_size": 0,
        "num_attention_heads": t["num_attention_heads"],
        "num_beam_groups": 1,
        "num_beams": 1,
        "num_hidden_layers": t["num_hidden_layers"],
        "num_key_value_heads": t["num_key_value_heads"],
        "num_return_sequences": 1,
        "output_attentions": False,
        "output_hidden_states": False,
        "output_scores": False,
        "pad_token_id": None,
        "prefix": None,
        "problem_type": None,
        "pruned_heads": {},
        "remove_invalid_values": False,
        "repetition_penalty": 1.0,
        "return_dict": True,
        "return_dict_in_generate": False,
        "rms_norm_eps": t["rms_norm_eps"],
        "rope_scaling": copy.deepcopy(t["rope_scaling"]),
        "rope_theta": t["rope_theta"],
        "sep_token_id": None,
        "suppress_tokens": None,
        "task_specific_params": None,
        "temperature": 1.0,
        "tf_legacy_loss": False,
        "tie_encoder_decoder": False,
        "tie_word_embeddings": t["tie_word_embeddings"],
        "tokenizer_class": None,
        "top_k": 50,
        "top_p": 1.0,
        "torchscript": False,
        "typical_p": 1.0,
        "use_bfloat16": False,
        "use_cache": True,
        "vocab_size": vocab_size,
    }


def released_like_config_json(
    real_sizes: bool = False,
    vocab_size: int | None = None,
    audio_start: int = 151669,
    audio_end: int = 151670,
    audio_pad: int = 151676,
    dtype: str = "bfloat16",
) -> Dict[str, Any]:
    """config.json with the exact key layout of the released Qwen3-ASR-0.6B."""
    a = REAL_AUDIO if real_sizes else TINY_AUDIO
    t = REAL_TEXT if real_sizes else TINY_TEXT
    if vocab_size is None:
        vocab_size = 151936
    return {
        "architectures": ["Qwen3ASRForConditionalGeneration"],
        "model_type": "qwen3_asr",
        "support_languages": list(SUPPORTED_LANGUAGES),
        "thinker_config": {
            "model_type": "qwen3_asr",
            "architectures": ["Qwen3ASRForConditionalGeneration"],
            "audio_config": _audio_block(a),
            "audio_end_token_id": audio_end,
            "audio_start_token_id": audio_start,
            "audio_token_id": audio_pad,
            "dtype": dtype,
            "initializer_range": 0.02,
            "text_config": _text_block(t, vocab_size),
        },
        "transformers_version": "4.57.6",
    }


def write_processor_side_files(d: Path) -> None:
    dump_json(d / "preprocessor_config.json", PREPROCESSOR_CONFIG)
    dump_json(d / "chat_template.json", {"chat_template": CHAT_TEMPLATE})


# ----------------------------------------------------------------------------
# Weights
# ----------------------------------------------------------------------------

MATRIX_STD = 0.3
BIAS_STD = 0.1
LN_BIAS_STD = 0.05
NORM_DELTA = 0.1
SEED = 20240601
# Per-tensor std overrides (name suffix -> std), tuned so the tiny model is not
# degenerate: conv/conv_out output comparable to the per-chunk sinusoid, and
# greedy decoding varied (see check_not_degenerate).
STD_OVERRIDES: Dict[str, float] = {}
# Extra scale for the embedding (= tied head) row of <|im_end|>, to make EOS an
# occasional greedy choice.  1.0 = untouched.
IM_END_ROW_SCALE = 2.5


def _is_norm_weight(name: str) -> bool:
    return name.endswith(
        (
            "layer_norm.weight",
            "ln_post.weight",
            "input_layernorm.weight",
            "post_attention_layernorm.weight",
            "q_norm.weight",
            "k_norm.weight",
            "model.norm.weight",
        )
    )


def _is_layernorm_bias(name: str) -> bool:
    return name.endswith(("layer_norm.bias", "ln_post.bias"))


def init_weights(model, seed: int = SEED, im_end_id: int | None = None):
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():  # tied head listed once (as embed_tokens)
            if _is_norm_weight(name):
                v = 1.0 + NORM_DELTA * (2.0 * torch.rand(p.shape, generator=g) - 1.0)
            elif _is_layernorm_bias(name):
                v = LN_BIAS_STD * torch.randn(p.shape, generator=g)
            elif name.endswith(".bias"):
                v = BIAS_STD * torch.randn(p.shape, generator=g)
            else:
                std = MATRIX_STD
                for suf, s in STD_OVERRIDES.items():
                    if name.endswith(suf):
                        std = s
                v = std * torch.randn(p.shape, generator=g)
            p.copy_(v.to(p.dtype))
        emb = model.thinker.model.embed_tokens.weight
        if im_end_id is not None and IM_END_ROW_SCALE != 1.0:
            emb[im_end_id] *= IM_END_ROW_SCALE
        # Separate, different values for the stored (and ignored) lm_head.
        head = MATRIX_STD * torch.randn(emb.shape, generator=g)
    return head


# ----------------------------------------------------------------------------
# Build + save
# ----------------------------------------------------------------------------


def tiny_ids(fixtures: Path) -> Dict[str, int]:
    cfg = json.loads((fixtures / "tokenizer" / "tiny" / "tokenizer_config.json").read_text())
    return {v["content"]: int(k) for k, v in cfg["added_tokens_decoder"].items()}


def vocab_size_for(n_ids: int) -> int:
    return (n_ids + 63) // 64 * 64


def build(fixtures: Path = FIXTURES) -> Dict[str, Any]:
    import torch
    from safetensors.torch import save_file

    import_qwen_asr()
    from qwen_asr.core.transformers_backend import Qwen3ASRConfig, Qwen3ASRForConditionalGeneration

    out = fixtures / "asr-tiny"
    tokdir = fixtures / "tokenizer" / "tiny"
    if not (tokdir / "vocab.json").exists():
        raise RuntimeError("run the tokenizer area first (tests/fixtures/tokenizer/tiny is missing)")
    ids = tiny_ids(fixtures)
    n_ids = max(ids.values()) + 1
    vocab_size = vocab_size_for(n_ids)

    cfg_json = released_like_config_json(
        vocab_size=vocab_size,
        audio_start=ids["<|audio_start|>"],
        audio_end=ids["<|audio_end|>"],
        audio_pad=ids["<|audio_pad|>"],
        dtype="float32",
    )
    config = Qwen3ASRConfig(**copy.deepcopy({k: v for k, v in cfg_json.items() if k != "transformers_version"}))
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    model = Qwen3ASRForConditionalGeneration(config).eval()
    head = init_weights(model, im_end_id=ids["<|im_end|>"])
    assert model.thinker.lm_head.weight is model.thinker.model.embed_tokens.weight, "expected tied head"

    if out.exists():
        # Keep expected/ (written by other areas); replace the checkpoint files.
        for f in out.iterdir():
            if f.is_file():
                f.unlink()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    # Rewrite model.safetensors with every tensor, including a *different*
    # thinker.lm_head.weight (the released checkpoints store one too).
    sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    sd["thinker.lm_head.weight"] = head.clone().contiguous()
    assert not torch.equal(sd["thinker.lm_head.weight"], sd["thinker.model.embed_tokens.weight"])
    for f in out.glob("model*.safetensors*"):
        f.unlink()
    save_file(dict(sorted(sd.items())), str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "model.safetensors").chmod(0o644)
    dump_json(out / "config.json", cfg_json)
    dump_json(
        out / "generation_config.json",
        {
            "_from_model_config": True,
            "eos_token_id": [ids["<|endoftext|>"], ids["<|im_end|>"]],
            "pad_token_id": ids["<|endoftext|>"],
            "do_sample": False,
        },
    )
    for f in ["vocab.json", "merges.txt", "tokenizer_config.json"]:
        shutil.copy(tokdir / f, out / f)
    write_processor_side_files(out)
    # No stray files from save_pretrained.
    allowed = {
        "config.json", "generation_config.json", "model.safetensors", "vocab.json", "merges.txt",
        "tokenizer_config.json", "preprocessor_config.json", "chat_template.json",
    }  # fmt: skip
    for f in out.iterdir():
        if f.is_file() and f.name not in allowed:
            f.unlink()
    total = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    assert total < 3 * 1024 * 1024, f"asr-tiny checkpoint too big: {total}"
    return {
        "vocab_size": vocab_size,
        "n_token_ids": n_ids,
        "n_params_stored": int(sum(v.numel() for v in sd.values())),
        "checkpoint_bytes": total,
        "special_ids": {k: ids[k] for k in ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|audio_start|>",
                                             "<|audio_end|>", "<|audio_pad|>", "<asr_text>", "<timestamp>",
                                             "<non_speech>"]},
    }  # fmt: skip


def load_reference(fixtures: Path = FIXTURES, attn: str = "eager"):
    """Load the saved tiny checkpoint the way qwen_asr does (AutoModel/AutoProcessor)."""
    import torch

    import_qwen_asr()
    from transformers import AutoModel, AutoProcessor

    path = str(fixtures / "asr-tiny")
    model = AutoModel.from_pretrained(path, dtype=torch.float32, attn_implementation=attn).eval()
    processor = AutoProcessor.from_pretrained(path, fix_mistral_regex=True)
    return model, processor


def verify_reload(fixtures: Path = FIXTURES) -> Dict[str, Any]:
    """Reload with from_pretrained and check weights, tying and the processor."""
    import torch
    from safetensors.torch import load_file

    model, processor = load_reference(fixtures)
    stored = load_file(str(fixtures / "asr-tiny" / "model.safetensors"))
    sd = model.state_dict()
    for k, v in stored.items():
        if k == "thinker.lm_head.weight":
            continue
        check_close(f"reloaded {k}", sd[k], v, rtol=0, atol=0)
    emb = model.thinker.model.embed_tokens.weight
    assert model.thinker.lm_head.weight.data_ptr() == emb.data_ptr(), "head not tied after reload"
    assert not torch.equal(model.thinker.lm_head.weight, stored["thinker.lm_head.weight"])
    check_equal("processor class", type(processor).__name__, "Qwen3ASRProcessor")
    check_equal("tokenizer class", type(processor.tokenizer).__name__, "Qwen2TokenizerFast")
    check_equal("feature extractor", type(processor.feature_extractor).__name__, "WhisperFeatureExtractor")
    ids = tiny_ids(fixtures)
    check_equal("config audio_token_id", model.config.thinker_config.audio_token_id, ids["<|audio_pad|>"])
    check_equal("thinker model_type", model.thinker.config.model_type, "qwen3_asr")
    return {"tied_head_verified": True}


def main(fixtures: Path = FIXTURES) -> Dict[str, Any]:
    rep = build(fixtures)
    rep.update(verify_reload(fixtures))
    from gen_asr_goldens import check_not_degenerate

    rep["degeneracy_check"] = check_not_degenerate(fixtures)
    RUN_NOTES["asr_tiny_init"] = {
        "seed": SEED,
        "matrix_std": MATRIX_STD,
        "bias_std": BIAS_STD,
        "layernorm_bias_std": LN_BIAS_STD,
        "norm_weight": f"1 + U(-{NORM_DELTA}, {NORM_DELTA})",
        "std_overrides": STD_OVERRIDES,
        "im_end_row_scale": IM_END_ROW_SCALE,
    }
    return rep
