"""Writes a full-size, random-weight Qwen3-ASR-0.6B checkpoint for speed benchmarks.

The folder has the released layout (asr.md §2.1, §3, §10): `config.json` with the released
0.6B values, one bf16 `model.safetensors` (938M stored parameters, ~1.88 GB, including a
`thinker.lm_head.weight` that equals the embedding, like the release stores it), the real
Qwen2 tokenizer files and the processor side files. It is built with the reference classes
(`qwen_asr` transformers backend) and `save_pretrained`, reusing the config builder of the
fixture generator (`tools/reference/gen_asr_tiny.py`, `released_like_config_json(real_sizes=True)`).

It also writes the benchmark clips to `<out>/bench-audio/`: exactly 10 s and 60 s of
espeak-ng speech (a synthetic speech-like signal when espeak-ng is missing) at 16 kHz, float32
WAV, normalised by the reference's `normalize_audio_input`. Both benches read these files.

Weights are N(0, 0.02) for matrices, 0 for biases, 1 for norm weights: the activations stay
finite in f32 and bf16. The rows of `<|endoftext|>` and `<|im_end|>` in the embedding (= the
tied head) are zero, so their logit is exactly 0 while the largest of the other 151934 random
logits is far above 0: greedy decoding never stops on its own. (The benches also force exactly
N new tokens.) Content does not matter for speed.

Idempotent: if `<out>/bench_checkpoint.json` exists with the same generator version and every
file is present, nothing is done (`--force` rebuilds).

    /work/venv-ref/bin/python tools/bench/make_asr_checkpoint.py [--out bench-models/asr-0.6b]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
sys.path.insert(0, str(REPO_ROOT / "tools" / "reference"))

from common import dump_json, import_qwen_asr  # noqa: E402
from gen_asr_tiny import released_like_config_json, write_processor_side_files  # noqa: E402

DEFAULT_OUT = REPO_ROOT / "bench-models" / "asr-0.6b"
TOKENIZER_DIR = REPO_ROOT / "tests" / "fixtures" / "tokenizer" / "qwen2"

# Bump when the content of the checkpoint changes (forces a rebuild of old folders).
GENERATOR_VERSION = 1
SEED = 20250101
MATRIX_STD = 0.02
VOCAB_SIZE = 151936
ENDOFTEXT, IM_END = 151643, 151645
AUDIO_START, AUDIO_END, AUDIO_PAD = 151669, 151670, 151676
SAMPLE_RATE = 16000
CLIPS = {"speech_10s.wav": 10 * SAMPLE_RATE, "speech_60s.wav": 60 * SAMPLE_RATE}

CHECKPOINT_FILES = [
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "vocab.json",
    "merges.txt",
    "tokenizer_config.json",
    "preprocessor_config.json",
    "chat_template.json",
]

# Long enough for a minute of speech at espeak-ng's 160 words per minute.
SPEECH_TEXT = (
    "The history of speech recognition begins with simple machines that could recognise a few "
    "spoken digits. Over the following decades, researchers built systems based on templates, then "
    "on hidden Markov models, and finally on neural networks trained on thousands of hours of "
    "recorded speech. Today a single model can transcribe many languages, identify which language "
    "is being spoken, and even follow hints about names and technical terms given in a short "
    "context. Running such a model efficiently on an ordinary laptop processor is a different "
    "problem from training it. The audio encoder turns a few seconds of sound into a sequence of "
    "embeddings, the text decoder reads them together with a short prompt, and then it writes the "
    "transcript one token at a time. Each new token needs every weight of the decoder to be read "
    "from memory once, so the speed of decoding is set by the memory bandwidth of the machine "
    "rather than by its arithmetic units. The encoder and the first pass over the prompt, on the "
    "other hand, do a lot of arithmetic on every weight they read, and they benefit from wide "
    "vector instructions and careful blocking of the matrix products. A good engine measures both "
    "regimes separately, compares them with what the hardware can deliver, and keeps a record of "
    "the numbers so that every change can be judged against the last one."
)


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
    files = CHECKPOINT_FILES + [f"bench-audio/{c}" for c in CLIPS]
    return all((out / f).is_file() for f in files)


# ----------------------------------------------------------------------------
# Audio
# ----------------------------------------------------------------------------


def espeak_speech() -> tuple["np.ndarray", str]:  # noqa: F821
    """espeak-ng speech normalised like the reference (16 kHz float32, peak rule)."""
    import numpy as np
    import soundfile as sf
    from qwen_asr.inference.utils import normalize_audio_input

    if shutil.which("espeak-ng") is None:
        return synthetic_speech(max(CLIPS.values())), "synthetic (espeak-ng not found)"
    with tempfile.TemporaryDirectory() as td:
        wav = Path(td) / "speech.wav"
        subprocess.run(
            ["espeak-ng", "-v", "en-us", "-s", "160", "-w", str(wav), SPEECH_TEXT],
            check=True,
            capture_output=True,
        )
        x, sr = sf.read(str(wav), dtype="float32")
    version = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout.strip()
    y = normalize_audio_input((x, sr))
    return np.ascontiguousarray(y, dtype=np.float32), version


def synthetic_speech(n: int, seed: int = 7) -> "np.ndarray":  # noqa: F821
    """Speech-like fallback: voiced syllables (harmonics of a drifting pitch) with pauses."""
    import numpy as np

    rng = np.random.default_rng(seed)
    t = np.arange(n) / SAMPLE_RATE
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    syllable = np.clip(np.sin(2 * np.pi * 4.0 * t), 0, None) * (np.sin(2 * np.pi * 0.3 * t) > -0.7)
    y = 0.5 * voiced * syllable + 0.01 * rng.standard_normal(n)
    return (y / np.abs(y).max() * 0.9).astype(np.float32)


def write_clips(out: Path) -> dict:
    import numpy as np
    import soundfile as sf

    speech, source = espeak_speech()
    need = max(CLIPS.values())
    reps = -(-need // len(speech))
    long = np.tile(speech, reps)[:need]
    d = out / "bench-audio"
    d.mkdir(parents=True, exist_ok=True)
    info = {"source": source, "speech_seconds": len(speech) / SAMPLE_RATE, "clips": {}}
    for name, n in CLIPS.items():
        clip = np.ascontiguousarray(long[:n])
        sf.write(str(d / name), clip, SAMPLE_RATE, subtype="FLOAT")
        info["clips"][name] = {"samples": n, "seconds": n / SAMPLE_RATE}
    return info


# ----------------------------------------------------------------------------
# Weights
# ----------------------------------------------------------------------------


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


def build_model():
    import torch

    import_qwen_asr()
    from qwen_asr.core.transformers_backend import Qwen3ASRConfig, Qwen3ASRForConditionalGeneration

    cfg_json = released_like_config_json(real_sizes=True, vocab_size=VOCAB_SIZE, dtype="bfloat16")
    tc = cfg_json["thinker_config"]
    assert (tc["audio_start_token_id"], tc["audio_end_token_id"], tc["audio_token_id"]) == (
        AUDIO_START,
        AUDIO_END,
        AUDIO_PAD,
    )
    a, t = tc["audio_config"], tc["text_config"]
    assert (a["d_model"], a["encoder_layers"], a["encoder_attention_heads"], a["encoder_ffn_dim"]) == (896, 18, 14, 3584)
    assert (a["output_dim"], a["n_window"], a["n_window_infer"], a["downsample_hidden_size"]) == (1024, 50, 800, 480)
    assert (t["hidden_size"], t["num_hidden_layers"], t["num_attention_heads"], t["num_key_value_heads"]) == (1024, 28, 16, 8)
    assert (t["head_dim"], t["intermediate_size"], t["vocab_size"], t["rope_theta"]) == (128, 3072, 151936, 1000000)
    assert t["tie_word_embeddings"] is True

    config = Qwen3ASRConfig(**copy.deepcopy({k: v for k, v in cfg_json.items() if k != "transformers_version"}))
    torch.manual_seed(0)
    model = Qwen3ASRForConditionalGeneration(config).eval()
    assert model.thinker.lm_head.weight is model.thinker.model.embed_tokens.weight, "expected a tied head"

    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, p in model.named_parameters():  # the tied head is listed once
            if _is_norm_weight(name):
                p.fill_(1.0)
            elif name.endswith(".bias"):
                p.zero_()
            else:
                p.normal_(0.0, MATRIX_STD, generator=g)
        emb = model.thinker.model.embed_tokens.weight
        emb[ENDOFTEXT].zero_()
        emb[IM_END].zero_()
    model = model.to(torch.bfloat16)
    return model, cfg_json


def sanity_check(model) -> dict:
    """A short random prompt through the bf16 model: finite outputs, no EOS at the argmax."""
    import torch

    with torch.no_grad():
        audio = model.thinker.audio_tower(torch.randn(128, 300).to(torch.bfloat16), feature_lens=torch.tensor([300]))
        emb = audio.last_hidden_state
        ids = torch.tensor([[151644, 8948, 198, 151645, 198]])
        out = model.thinker(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False)
        logits = out.logits[0, -1].float()
    top = int(logits.argmax())
    assert torch.isfinite(emb).all() and torch.isfinite(logits).all(), "non-finite activations"
    assert top not in (ENDOFTEXT, IM_END)
    return {
        "audio_embed_std": float(emb.float().std()),
        "last_logits_std": float(logits.std()),
        "last_logits_max": float(logits.max()),
        "argmax": top,
    }


def write_checkpoint(out: Path) -> dict:
    import torch
    from safetensors.torch import save_file

    t0 = time.time()
    model, cfg_json = build_model()
    checks = sanity_check(model)
    out.mkdir(parents=True, exist_ok=True)
    for f in out.glob("model*.safetensors*"):
        f.unlink()
    model.save_pretrained(str(out), safe_serialization=True)
    # Rewrite the weights with every tensor, the tied lm_head included, as the release does.
    sd = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    sd["thinker.lm_head.weight"] = sd["thinker.model.embed_tokens.weight"].clone()
    for f in out.glob("model*.safetensors*"):
        f.unlink()
    save_file(dict(sorted(sd.items())), str(out / "model.safetensors"), metadata={"format": "pt"})
    dump_json(out / "config.json", cfg_json)
    dump_json(
        out / "generation_config.json",
        {"_from_model_config": True, "eos_token_id": [ENDOFTEXT, IM_END], "pad_token_id": ENDOFTEXT, "do_sample": False},
    )
    for f in ["vocab.json", "merges.txt", "tokenizer_config.json"]:
        shutil.copy(TOKENIZER_DIR / f, out / f)
    write_processor_side_files(out)
    for f in out.iterdir():
        if f.is_file() and f.name not in CHECKPOINT_FILES and f.name != "bench_checkpoint.json":
            f.unlink()
    n_stored = int(sum(v.numel() for v in sd.values()))
    n_unique = n_stored - sd["thinker.lm_head.weight"].numel()
    assert all(v.dtype == torch.bfloat16 for v in sd.values())
    return {
        "stored_parameters": n_stored,
        "unique_parameters": n_unique,
        "model_safetensors_bytes": (out / "model.safetensors").stat().st_size,
        "sanity": checks,
        "build_seconds": round(time.time() - t0, 1),
    }


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
    print(f"building the random-weight Qwen3-ASR-0.6B in {out} ...", flush=True)
    info = {"generator_version": GENERATOR_VERSION, "seed": SEED, "matrix_std": MATRIX_STD}
    info.update(write_checkpoint(out))
    info["audio"] = write_clips(out)
    info["versions"] = {"torch": torch.__version__, "transformers": transformers.__version__}
    dump_json(out / "bench_checkpoint.json", info)  # written last: marks the folder complete
    print(json.dumps(info, indent=1))


if __name__ == "__main__":
    main()
