"""Speed of the PyTorch reference (qwen-asr 0.0.6, transformers backend) on the bench checkpoint.

Measures, in float32 on CPU with a fixed number of torch threads, the same quantities as
`qwen3-speech bench asr` (cli/src/bench.rs), the same way:

  features_{10s,60s}_s           processor call (WhisperFeatureExtractor + prompt tokenization)
  features_encoder_{10s,60s}_s   the same + thinker.get_audio_features (sdpa = full attention)
  prefill_s                      10 s prompt: embed + audio scatter + thinker forward
                                 (logits at every position, as the reference's generate does)
                                 + float32 last row + argmax
  prefill_decoder_s              of which the decoder stack + final norm (no head)
  ttft_s                         T(1): model.generate(**inputs) producing 1 token (encoder +
                                 prefill + first token)
  decode_per_token_s             (T(N) - T(1)) / (N - 1), T(N) the same call producing exactly
                                 N tokens (min_new_tokens = max_new_tokens = N), greedy, KV
                                 cache; T(1) and T(N) are timed in pairs
  lm_head_1tok_s                 the tied head on one hidden row (1 x 1024 -> 151936)
  e2e_10s_s                      Qwen3ASRModel.transcribe((wav, 16000)) producing exactly N tokens
  peak_rss_bytes                 getrusage(RUSAGE_SELF).ru_maxrss of this process (whole run)

Each timed quantity is run `--warmup` times untimed and `--repeat` times timed; the JSON keeps
every run, the median and the min. Human-readable progress goes to stderr, the JSON to --json
(or stdout).

    /work/venv-ref/bin/python tools/bench/reference_asr.py --model bench-models/asr-0.6b --json /tmp/ref.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
CLIPS = {"10s": "speech_10s.wav", "60s": "speech_60s.wav"}


def log(msg: str) -> None:
    print(f"[pytorch] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------
# Machine state
# ----------------------------------------------------------------------------


def cpu_busy_seconds() -> float:
    """Busy CPU time of the whole machine (all cores) from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            parts = f.readline().split()[1:]
        v = [int(x) for x in parts]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (v + [0] * 8)[:8]
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return float("nan")


def own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def status_bytes(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class MachineWatch:
    """How busy the rest of the machine was while we ran (other processes' CPU, in cores)."""

    def __init__(self) -> None:
        self.wall0 = time.perf_counter()
        self.busy0 = cpu_busy_seconds()
        self.own0 = own_cpu_seconds()
        self.load0 = os.getloadavg()

    def report(self) -> dict:
        wall = time.perf_counter() - self.wall0
        other = (cpu_busy_seconds() - self.busy0) - (own_cpu_seconds() - self.own0)
        return {
            "cpus": os.cpu_count(),
            "cpu_model": cpu_model(),
            "loadavg_start": [round(x, 2) for x in self.load0],
            "loadavg_end": [round(x, 2) for x in os.getloadavg()],
            "background_cpu_cores": round(max(other, 0.0) / wall, 3) if wall > 0 else None,
            "wall_s": round(wall, 1),
        }


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


# ----------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------


def summary(runs: list[float], unit: str = "s") -> dict:
    return {"median": statistics.median(runs), "min": min(runs), "runs": runs, "unit": unit}


def measure(name: str, fn, warmup: int, repeat: int) -> list[float]:
    """`warmup` untimed calls of fn(), then `repeat` timed ones (wall time of each call)."""
    for _ in range(warmup):
        fn()
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    log(f"{name}: median {statistics.median(runs):.4f}  min {min(runs):.4f}  runs {[round(x, 4) for x in runs]}")
    return runs


# ----------------------------------------------------------------------------
# Bench
# ----------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=REPO_ROOT / "bench-models" / "asr-0.6b")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--new-tokens", type=int, default=40)
    ap.add_argument("--json", type=Path, default=None, help="write the JSON here (default: stdout)")
    args = ap.parse_args()
    if args.new_tokens < 2:
        ap.error("--new-tokens must be at least 2")

    # Before torch is imported: the OpenMP / MKL pools read these.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    watch = MachineWatch()

    import numpy as np
    import soundfile as sf
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    sys.path.insert(0, str(REPO_ROOT / "tools" / "reference"))
    from common import import_qwen_asr

    import_qwen_asr()
    from qwen_asr import Qwen3ASRModel
    from transformers import DynamicCache

    model_dir = args.model.resolve()
    n_new = args.new_tokens
    W, R = args.warmup, args.repeat
    metrics: dict = {}

    # ---------------- load
    t0 = time.perf_counter()
    asr = Qwen3ASRModel.from_pretrained(str(model_dir), dtype=torch.float32, max_new_tokens=n_new)
    load_s = time.perf_counter() - t0
    model, processor = asr.model, asr.processor
    thinker = model.thinker
    assert next(model.parameters()).dtype == torch.float32
    attn = getattr(model.config, "_attn_implementation", None) or thinker.config._attn_implementation
    log(f"loaded in {load_s:.1f} s; torch {torch.__version__}, threads {torch.get_num_threads()}, attention {attn}")

    wavs = {}
    for key, name in CLIPS.items():
        x, sr = sf.read(str(model_dir / "bench-audio" / name), dtype="float32")
        assert sr == 16000 and x.ndim == 1, (name, sr, x.shape)
        wavs[key] = np.ascontiguousarray(x)
    prompt_text = asr._build_text_prompt(context="", force_language=None)

    def prepare(wav):
        inputs = processor(text=[prompt_text], audio=[wav], return_tensors="pt", padding=True)
        return inputs.to(model.device).to(model.dtype)

    def encode(inputs):
        return thinker.get_audio_features(
            inputs["input_features"], feature_attention_mask=inputs["feature_attention_mask"]
        )

    clips = {}
    with torch.no_grad():
        # ---------------- (a) features + encoder
        for key, wav in wavs.items():
            inputs = prepare(wav)
            n_audio = int(encode(inputs).shape[0])
            clips[key] = {
                "samples": len(wav),
                "mel_frames": int(inputs["feature_attention_mask"].sum()),
                "audio_tokens": n_audio,
                "prompt_tokens": int(inputs["input_ids"].shape[1]),
            }
            metrics[f"features_{key}_s"] = summary(measure(f"features {key}", lambda w=wav: prepare(w), W, R))
            metrics[f"features_encoder_{key}_s"] = summary(
                measure(f"features+encoder {key}", lambda w=wav: encode(prepare(w)), W, R)
            )

        # ---------------- (b) prefill of the 10 s prompt
        inputs = prepare(wavs["10s"])
        ids, mask = inputs["input_ids"], inputs["attention_mask"]
        L = int(ids.shape[1])
        audio = encode(inputs)

        def embed():
            emb = thinker.get_input_embeddings()(ids)
            audio_mask = thinker.get_placeholder_mask(ids, inputs_embeds=emb)
            return emb.masked_scatter(audio_mask, audio.to(emb.dtype))

        def prefill():
            out = thinker(
                input_ids=ids,
                inputs_embeds=embed(),
                attention_mask=mask,
                use_cache=True,
                past_key_values=DynamicCache(),
                cache_position=torch.arange(L),
            )
            return int(out.logits[:, -1, :].to(torch.float32).argmax(-1))

        metrics["prefill_s"] = summary(measure("prefill", prefill, W, R))

        position_ids, _ = thinker.get_rope_index(mask)
        emb_fixed = embed()

        def prefill_decoder():
            thinker.model(
                inputs_embeds=emb_fixed,
                attention_mask=mask,
                position_ids=position_ids,
                use_cache=True,
                past_key_values=DynamicCache(),
                cache_position=torch.arange(L),
            )

        metrics["prefill_decoder_s"] = summary(measure("prefill, decoder only", prefill_decoder, W, R))

        # ---------------- (c) generate(): T(1) and T(n_new), timed in pairs from the processed
        # inputs (the encoder runs inside generate). ttft = T(1); per token =
        # (T(n_new) - T(1)) / (n_new - 1). Whole-call wall times only, as on the Rust side.
        def run_generate(tokens: int) -> float:
            t0 = time.perf_counter()
            out = model.generate(**inputs, max_new_tokens=tokens, min_new_tokens=tokens)
            dt = time.perf_counter() - t0
            produced = int(out.sequences.shape[1]) - L
            assert produced == tokens, f"generated {produced} tokens, wanted {tokens}"
            return dt

        ttft, per_tok = [], []
        for i in range(W + R):
            t1 = run_generate(1)
            tn = run_generate(n_new)
            if i >= W:
                ttft.append(t1)
                per_tok.append((tn - t1) / (n_new - 1))
        log(f"ttft: median {statistics.median(ttft):.4f}; decode per token: median {statistics.median(per_tok) * 1e3:.2f} ms  runs {[round(x * 1e3, 2) for x in per_tok]}")
        metrics["ttft_s"] = summary(ttft)
        metrics["decode_per_token_s"] = summary(per_tok)

        h = torch.randn(1, 1, thinker.config.text_config.hidden_size)
        metrics["lm_head_1tok_s"] = summary(measure("lm_head, one row", lambda: thinker.lm_head(h), W + 2, max(R, 10)))

        # ---------------- (d) end to end: Qwen3ASRModel.transcribe with exactly n_new tokens
        produced: list[int] = []
        inner_generate = model.generate

        def forced_generate(*a, **kw):
            kw["min_new_tokens"] = n_new
            out = inner_generate(*a, **kw)
            produced.append(int(out.sequences.shape[1]) - int(kw["input_ids"].shape[1]))
            return out

        model.generate = forced_generate
        try:
            metrics["e2e_10s_s"] = summary(
                measure("end to end 10 s", lambda: asr.transcribe(audio=(wavs["10s"], 16000)), W, R)
            )
        finally:
            model.generate = inner_generate
        assert all(p == n_new for p in produced), f"transcribe produced {produced} tokens"

    result = {
        "engine": "pytorch",
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "qwen_asr": _version("qwen-asr"),
            "numpy": np.__version__,
        },
        "model": str(model_dir),
        "dtype": "float32",
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "attention": f"{attn} (encoder: full attention over the clip)",
        "repeat": R,
        "warmup": W,
        "new_tokens": n_new,
        "clips": clips,
        "prompt_tokens": L,
        "metrics": metrics,
        "values": {
            "load_s": load_s,
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "rss_end_bytes": status_bytes("VmRSS"),
        },
        "machine": watch.report(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }
    text = json.dumps(result, indent=1)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
        log(f"wrote {args.json}")
    else:
        print(text)


def _version(dist: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:
        return None


if __name__ == "__main__":
    main()
