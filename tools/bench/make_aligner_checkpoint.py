"""Writes a full-size, random-weight Qwen3-ForcedAligner-0.6B checkpoint for speed benchmarks.

The folder has the released layout (asr.md §2.1, §3, §8, §10):

- `config.json` with the released aligner values: audio encoder d_model 1024, 24 layers,
  16 heads, ffn 4096, output 1024, n_window 50 / n_window_infer 800 (the 1.7B-sized encoder);
  text 1024 wide, 28 layers, 16 / 8 heads, head_dim 128, intermediate 3072, vocab 152064,
  untied, max_position_embeddings 8192; thinker_config.model_type "qwen3_forced_aligner",
  classify_num 5000; top-level timestamp_token_id 151705, timestamp_segment_time 80; the 11
  support_languages;
- one bf16 `model.safetensors` (918M parameters, ~1.84 GB) with the untied
  `thinker.lm_head.weight` [5000, 1024];
- the real Qwen2 tokenizer (`tests/fixtures/tokenizer/qwen2`, where `<timestamp>` is 151705)
  and the processor side files.

It is built with the reference classes (`qwen_asr` transformers backend) and `save_pretrained`.
`save_pretrained` writes `thinker_config.model_type` "qwen3_asr_thinker" (a class attribute),
and reloading that file builds a vocab-sized head, so `config.json` is rewritten afterwards
with the released layout, as `tools/reference/gen_aligner.py` does for the tiny fixture.

It also writes the benchmark clip `<out>/bench-audio/speech_60s.wav`: exactly 60 s (960 000
samples, 16 kHz, float32 WAV) of espeak-ng reading `speech_60s.txt` (the first six sentences of
the ASR bench passage, 159 words), normalised by the reference's `normalize_audio_input` and
padded with trailing silence to 60 s.

Weights are N(0, 0.02) for matrices, 0 for biases, 1 for norm weights: the activations stay
finite in f32 and bf16. Content does not matter for speed (the predicted timestamps are noise).

Idempotent: if `<out>/bench_checkpoint.json` exists with the same generator version and every
file is present, nothing is done (`--force` rebuilds).

    /work/venv-ref/bin/python tools/bench/make_aligner_checkpoint.py [--out bench-models/aligner-0.6b]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
sys.path.insert(0, str(REPO_ROOT / "tools" / "reference"))
sys.path.insert(0, str(HERE))

from common import dump_json, import_qwen_asr  # noqa: E402
from gen_asr_tiny import PREPROCESSOR_CONFIG, REAL_TEXT, _audio_block, _text_block  # noqa: E402
from make_asr_checkpoint import SPEECH_TEXT, _is_norm_weight  # noqa: E402

DEFAULT_OUT = REPO_ROOT / "bench-models" / "aligner-0.6b"
TOKENIZER_DIR = REPO_ROOT / "tests" / "fixtures" / "tokenizer" / "qwen2"

# Bump when the content of the checkpoint changes (forces a rebuild of old folders).
GENERATOR_VERSION = 1
SEED = 20250102
MATRIX_STD = 0.02
SAMPLE_RATE = 16000
CLIP_SAMPLES = 60 * SAMPLE_RATE
CLIP_WAV = "speech_60s.wav"
CLIP_TXT = "speech_60s.txt"

# Released Qwen3-ForcedAligner-0.6B values (asr.md §2.1, §3, §8, §10).
VOCAB_SIZE = 152064
CLASSIFY_NUM = 5000
TIMESTAMP_TOKEN_ID = 151705
TIMESTAMP_SEGMENT_TIME = 80
MAX_POSITION_EMBEDDINGS = 8192
AUDIO_START, AUDIO_END, AUDIO_PAD = 151669, 151670, 151676
ENDOFTEXT, IM_END = 151643, 151645
ALIGNER_AUDIO = dict(
    num_mel_bins=128, d_model=1024, encoder_layers=24, encoder_attention_heads=16, encoder_ffn_dim=4096,
    downsample_hidden_size=480, output_dim=1024, n_window=50, n_window_infer=800, conv_chunksize=500,
    max_source_positions=1500,
)  # fmt: skip
ALIGNER_TEXT = dict(REAL_TEXT, tie_word_embeddings=False, max_position_embeddings=MAX_POSITION_EMBEDDINGS)
SUPPORT_LANGUAGES = [
    "Chinese", "Cantonese", "English", "German", "Spanish", "French", "Italian", "Portuguese", "Russian",
    "Korean", "Japanese",
]  # fmt: skip

CHECKPOINT_FILES = [
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "vocab.json",
    "merges.txt",
    "tokenizer_config.json",
    "preprocessor_config.json",
]

# What espeak-ng reads: the first six sentences of the ASR bench passage (159 words, about
# 57.5 s at 160 words per minute).
TRANSCRIPT_SENTENCES = 6
TRANSCRIPT = " ".join(re.split(r"(?<=\.)\s+", SPEECH_TEXT)[:TRANSCRIPT_SENTENCES])
ESPEAK_SPEEDS = (160, 165, 170, 175, 180, 190, 200)


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
    files = CHECKPOINT_FILES + [f"bench-audio/{CLIP_WAV}", f"bench-audio/{CLIP_TXT}"]
    return all((out / f).is_file() for f in files)


# ----------------------------------------------------------------------------
# Config
# ----------------------------------------------------------------------------


def aligner_config_json() -> dict:
    """config.json with the key layout of the released Qwen3-ForcedAligner-0.6B
    (as tools/reference/gen_aligner.released_aligner_config_json, released sizes)."""
    audio = _audio_block(ALIGNER_AUDIO)
    audio["tie_word_embeddings"] = False  # as released for the aligner
    text = _text_block(ALIGNER_TEXT, VOCAB_SIZE)
    return {
        "architectures": ["Qwen3ASRForConditionalGeneration"],
        "timestamp_token_id": TIMESTAMP_TOKEN_ID,
        "timestamp_segment_time": TIMESTAMP_SEGMENT_TIME,
        "model_type": "qwen3_asr",
        "support_languages": list(SUPPORT_LANGUAGES),
        "thinker_config": {
            "model_type": "qwen3_forced_aligner",
            "classify_num": CLASSIFY_NUM,
            "architectures": ["Qwen3ASRForConditionalGeneration"],
            "audio_config": audio,
            "audio_end_token_id": AUDIO_END,
            "audio_start_token_id": AUDIO_START,
            "audio_token_id": AUDIO_PAD,
            "dtype": "bfloat16",
            "initializer_range": 0.02,
            "text_config": text,
        },
        "transformers_version": "4.57.6",
    }


def check_config(cfg_json: dict) -> None:
    tc = cfg_json["thinker_config"]
    a, t = tc["audio_config"], tc["text_config"]
    assert (a["d_model"], a["encoder_layers"], a["encoder_attention_heads"], a["encoder_ffn_dim"]) == (1024, 24, 16, 4096)
    assert (a["output_dim"], a["n_window"], a["n_window_infer"], a["downsample_hidden_size"]) == (1024, 50, 800, 480)
    assert (t["hidden_size"], t["num_hidden_layers"], t["num_attention_heads"], t["num_key_value_heads"]) == (1024, 28, 16, 8)
    assert (t["head_dim"], t["intermediate_size"], t["vocab_size"], t["rope_theta"]) == (128, 3072, 152064, 1000000)
    assert t["tie_word_embeddings"] is False and t["max_position_embeddings"] == 8192
    assert (tc["model_type"], tc["classify_num"]) == ("qwen3_forced_aligner", 5000)
    assert (cfg_json["timestamp_token_id"], cfg_json["timestamp_segment_time"]) == (151705, 80)
    assert len(cfg_json["support_languages"]) == 11


def check_tokenizer() -> None:
    cfg = json.loads((TOKENIZER_DIR / "tokenizer_config.json").read_text())
    got = {int(k): v["content"] for k, v in cfg["added_tokens_decoder"].items()}
    want = {TIMESTAMP_TOKEN_ID: "<timestamp>", AUDIO_START: "<|audio_start|>", AUDIO_END: "<|audio_end|>",
            AUDIO_PAD: "<|audio_pad|>", ENDOFTEXT: "<|endoftext|>", IM_END: "<|im_end|>"}  # fmt: skip
    for i, s in want.items():
        assert got.get(i) == s, f"{TOKENIZER_DIR}: id {i} is {got.get(i)!r}, expected {s!r}"


# ----------------------------------------------------------------------------
# Audio
# ----------------------------------------------------------------------------


def espeak_16k(text: str, speed: int):
    """espeak-ng (22.05 kHz) -> the reference's normalize_audio_input (16 kHz float32)."""
    import numpy as np
    import soundfile as sf
    from qwen_asr.inference.utils import normalize_audio_input

    with tempfile.TemporaryDirectory() as td:
        wav = Path(td) / "speech.wav"
        subprocess.run(
            ["espeak-ng", "-v", "en-us", "-s", str(speed), "-w", str(wav), text],
            check=True,
            capture_output=True,
        )
        x, sr = sf.read(str(wav), dtype="float32")
    y = normalize_audio_input((x, sr))
    return np.ascontiguousarray(y, dtype=np.float32)


def write_clip(out: Path) -> dict:
    """The 60 s clip (speech, then silence) and its transcript."""
    import numpy as np
    import soundfile as sf

    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is needed for the aligner bench clip (apt-get install espeak-ng)")
    version = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout.strip()
    # The slowest listed speed whose speech fits in 60 s (160 wpm gives ~57.5 s with 1.51).
    for speed in ESPEAK_SPEEDS:
        speech = espeak_16k(TRANSCRIPT, speed)
        if len(speech) <= CLIP_SAMPLES:
            break
    else:
        raise RuntimeError(f"espeak-ng speech is longer than 60 s even at {ESPEAK_SPEEDS[-1]} wpm")
    clip = np.zeros(CLIP_SAMPLES, dtype=np.float32)
    clip[: len(speech)] = speech
    d = out / "bench-audio"
    d.mkdir(parents=True, exist_ok=True)
    sf.write(str(d / CLIP_WAV), clip, SAMPLE_RATE, subtype="FLOAT")
    (d / CLIP_TXT).write_text(TRANSCRIPT + "\n", encoding="utf-8")
    return {
        "source": version,
        "espeak_speed_wpm": speed,
        "speech_seconds": len(speech) / SAMPLE_RATE,
        "clip": {"file": CLIP_WAV, "samples": CLIP_SAMPLES, "seconds": CLIP_SAMPLES / SAMPLE_RATE},
        "transcript": {"file": CLIP_TXT, "words": len(TRANSCRIPT.split()), "chars": len(TRANSCRIPT)},
    }


# ----------------------------------------------------------------------------
# Weights
# ----------------------------------------------------------------------------


def build_model(cfg_json: dict):
    import torch

    import_qwen_asr()
    from qwen_asr.core.transformers_backend import Qwen3ASRConfig, Qwen3ASRForConditionalGeneration

    config = Qwen3ASRConfig(**copy.deepcopy({k: v for k, v in cfg_json.items() if k != "transformers_version"}))
    assert config.thinker_config.model_type == "qwen3_forced_aligner"
    torch.manual_seed(0)
    model = Qwen3ASRForConditionalGeneration(config).eval()
    head = model.thinker.lm_head.weight
    assert list(head.shape) == [CLASSIFY_NUM, 1024], head.shape
    assert head.data_ptr() != model.thinker.model.embed_tokens.weight.data_ptr(), "the aligner head is untied"
    assert model.thinker.lm_head.bias is None

    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if _is_norm_weight(name):
                p.fill_(1.0)
            elif name.endswith(".bias"):
                p.zero_()
            else:
                p.normal_(0.0, MATRIX_STD, generator=g)
    return model.to(torch.bfloat16)


def sanity_check(model) -> dict:
    """A short random input through the bf16 model: finite outputs, head of 5000 classes."""
    import torch

    with torch.no_grad():
        audio = model.thinker.audio_tower(torch.randn(128, 300).to(torch.bfloat16), feature_lens=torch.tensor([300]))
        emb = audio.last_hidden_state
        ids = torch.tensor([[AUDIO_START, AUDIO_END, 9707, TIMESTAMP_TOKEN_ID, TIMESTAMP_TOKEN_ID]])
        out = model.thinker(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False)
        logits = out.logits[0].float()
    assert logits.shape[-1] == CLASSIFY_NUM, logits.shape
    assert torch.isfinite(emb).all() and torch.isfinite(logits).all(), "non-finite activations"
    return {
        "audio_embed_std": float(emb.float().std()),
        "logits_std": float(logits.std()),
        "argmax": logits.argmax(-1).tolist(),
    }


def write_checkpoint(out: Path) -> dict:
    from safetensors import safe_open

    t0 = time.time()
    cfg_json = aligner_config_json()
    check_config(cfg_json)
    check_tokenizer()
    model = build_model(cfg_json)
    checks = sanity_check(model)
    out.mkdir(parents=True, exist_ok=True)
    for f in out.glob("model*.safetensors*"):
        f.unlink()
    model.save_pretrained(str(out), safe_serialization=True, max_shard_size="10GB")
    saved = json.loads((out / "config.json").read_text())
    written_model_type = saved["thinker_config"].get("model_type")
    # save_pretrained's config.json would reload with a vocab-sized head: write the released one.
    dump_json(out / "config.json", cfg_json)
    dump_json(
        out / "generation_config.json",
        {"_from_model_config": True, "eos_token_id": [ENDOFTEXT, IM_END], "pad_token_id": ENDOFTEXT, "do_sample": False},
    )
    for f in ["vocab.json", "merges.txt", "tokenizer_config.json"]:
        shutil.copy(TOKENIZER_DIR / f, out / f)
    dump_json(out / "preprocessor_config.json", PREPROCESSOR_CONFIG)
    for f in out.iterdir():
        if f.is_file() and f.name not in CHECKPOINT_FILES and f.name != "bench_checkpoint.json":
            f.unlink()
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
        head_shape = st.get_slice("thinker.lm_head.weight").get_shape()
    assert list(head_shape) == [CLASSIFY_NUM, 1024], head_shape
    assert dtypes == {"BF16"}, dtypes
    assert not any("lm_head" in k and k != "thinker.lm_head.weight" for k in keys)
    del model
    return {
        "stored_parameters": n_params,
        "tensors": len(keys),
        "model_safetensors_bytes": (out / "model.safetensors").stat().st_size,
        "save_pretrained_thinker_model_type": written_model_type,
        "sanity": checks,
        "build_seconds": round(time.time() - t0, 1),
    }


def check_reload_config(out: Path) -> dict:
    """What the reference's from_pretrained will build from config.json (no weights loaded)."""
    import_qwen_asr()
    from qwen_asr.core.transformers_backend import Qwen3ASRConfig

    cfg = Qwen3ASRConfig.from_pretrained(str(out))
    tc = cfg.thinker_config
    assert tc.model_type == "qwen3_forced_aligner" and tc.classify_num == CLASSIFY_NUM, (tc.model_type, tc.classify_num)
    assert cfg.timestamp_token_id == TIMESTAMP_TOKEN_ID
    return {"thinker_model_type": tc.model_type, "classify_num": tc.classify_num}


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
    import_qwen_asr()
    (out / "bench_checkpoint.json").unlink(missing_ok=True)
    print(f"building the random-weight Qwen3-ForcedAligner-0.6B in {out} ...", flush=True)
    info = {"generator_version": GENERATOR_VERSION, "seed": SEED, "matrix_std": MATRIX_STD}
    info.update(write_checkpoint(out))
    info["reload_config"] = check_reload_config(out)
    info["audio"] = write_clip(out)
    info["versions"] = {"torch": torch.__version__, "transformers": transformers.__version__}
    dump_json(out / "bench_checkpoint.json", info)  # written last: marks the folder complete
    print(json.dumps(info, indent=1))


if __name__ == "__main__":
    main()
