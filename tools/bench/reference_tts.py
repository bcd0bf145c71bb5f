"""Speed of the PyTorch reference Qwen3-TTS (qwen-tts 0.1.1, transformers 4.57.3) on the bench checkpoint.

Measures, in float32 on CPU with a fixed number of torch threads, on the request of
`<model>/bench_request.json` (from make_tts_checkpoint.py: one English sentence, speaker Ryan,
4 s = 50 frames), the same quantities as `qwen3-speech bench tts` (cli/src/bench/tts.rs), the
same way. Everything is greedy (do_sample=False, subtalker_dosample=False, repetition penalty
1.05 from generation_config.json) and produces exactly N = 50 frames (max_new_tokens = N + 1;
the checkpoint's EOS logit is 0, below every audio code's; every run is checked):

  e2e_4s_s                 Qwen3TTSModel.generate_custom_voice(text, speaker, language,
                           max_new_tokens=N+1): prompt, talker prefill, N frames, speech
                           tokenizer decode of the N frames (the user-facing call)
  prefill_s                from the start of that call to the start of the first frame step:
                           validation, tokenization, prompt embeddings, talker prefill over the
                           prompt, codec head, code 0 of frame 0 (logits processors + argmax)
  frame_s                  one frame in steady state: the interval between the starts of
                           consecutive frame steps (talker.forward in decode mode: the code
                           predictor's 15 steps, the sum of the 16 code embeddings + text vector,
                           one talker step over the 28 layers, codec head; then generate's logits
                           processing and argmax of the next code 0). Per run: the median over
                           its N - 1 frame intervals
  frame_code_predictor_s   of which the code predictor (its own HF generate call), per-run median
  frame_talker_s           of which the talker's 28 layers + final norm (talker.model), per-run median
  codec_decode_4s_s        model.speech_tokenizer.decode([{"audio_codes": codes}]) of the N frames
                           the last e2e run generated (the wrapper's decode: chunked decode, clamp)
  peak_rss_bytes           getrusage(RUSAGE_SELF).ru_maxrss of this process (whole run, load included)

Each timed quantity is run `--warmup` times untimed and `--repeat` times timed; the JSON keeps
every run, the median and the min (for frame_s: every run's per-frame times too). Human-readable
progress goes to stderr, the JSON to --json (or stdout).

    /work/venv-ref/bin/python tools/bench/reference_tts.py --model bench-models/tts-0.6b --json /tmp/ref.json
"""

from __future__ import annotations

import argparse
import functools
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
sys.path.insert(0, str(HERE))

from reference_asr import MachineWatch, _version, log, measure, status_bytes, summary  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=REPO_ROOT / "bench-models" / "tts-0.6b")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--frames", type=int, default=None, help="frames per run (default: bench_request.json)")
    ap.add_argument("--json", type=Path, default=None, help="write the JSON here (default: stdout)")
    args = ap.parse_args()

    # Before torch is imported: the OpenMP / MKL pools read these.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    watch = MachineWatch()

    import numpy as np
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    from qwen_tts import Qwen3TTSModel

    model_dir = args.model.resolve()
    request = json.loads((model_dir / "bench_request.json").read_text())
    n_frames = args.frames or int(request["frames"])
    if n_frames < 3:
        ap.error("--frames must be at least 3")
    text, speaker, language = request["text"], request["speaker"], request["language"]
    W, R = args.warmup, args.repeat
    metrics: dict = {}

    # ---------------- load (the wrapper, as users load it)
    t0 = time.perf_counter()
    tts = Qwen3TTSModel.from_pretrained(str(model_dir), dtype=torch.float32)
    load_s = time.perf_counter() - t0
    model = tts.model
    talker = model.talker
    codec = model.speech_tokenizer
    assert next(model.parameters()).dtype == torch.float32
    assert codec.model.dtype == torch.float32, codec.model.dtype
    attn = getattr(talker.config, "_attn_implementation", None)
    log(f"loaded in {load_s:.1f} s; torch {torch.__version__}, threads {torch.get_num_threads()}, attention {attn}")

    # ---------------- instrumentation: when each talker step starts, time inside the parts
    events: dict = {}

    def reset_events():
        events.update(call_start=None, steps=[], prefill_len=None, cp=[], layers=[], decode=[])

    reset_events()
    inner_forward = talker.forward
    inner_cp_generate = talker.code_predictor.generate
    inner_layers = talker.model.forward
    inner_decode = codec.decode

    @functools.wraps(inner_forward)
    def forward(*a, **kw):
        emb = kw.get("inputs_embeds")
        if emb is not None and emb.shape[1] > 1:
            events["prefill_len"] = int(emb.shape[1])
        else:
            events["steps"].append(time.perf_counter())
        return inner_forward(*a, **kw)

    @functools.wraps(inner_cp_generate)
    def cp_generate(*a, **kw):
        t = time.perf_counter()
        out = inner_cp_generate(*a, **kw)
        events["cp"].append(time.perf_counter() - t)
        return out

    @functools.wraps(inner_layers)
    def layers(*a, **kw):
        t = time.perf_counter()
        out = inner_layers(*a, **kw)
        emb = kw.get("inputs_embeds")
        if emb is not None and emb.shape[1] == 1:
            events["layers"].append(time.perf_counter() - t)
        return out

    @functools.wraps(inner_decode)
    def decode(*a, **kw):
        t = time.perf_counter()
        out = inner_decode(*a, **kw)
        events["decode"].append(time.perf_counter() - t)
        return out

    # functools.wraps keeps the signatures: transformers' generate validates its kwargs against
    # inspect.signature(model.forward).
    talker.forward = forward
    talker.code_predictor.generate = cp_generate
    talker.model.forward = layers
    codec.decode = decode

    # The codes of each run (the talker's output, before decode).
    produced: list = []
    inner_model_generate = model.generate

    @functools.wraps(inner_model_generate)
    def model_generate(*a, **kw):
        codes, hiddens = inner_model_generate(*a, **kw)
        produced.append(codes[0].cpu().numpy())
        return codes, hiddens

    model.generate = model_generate

    def speak():
        reset_events()
        events["call_start"] = time.perf_counter()
        wavs, sr = tts.generate_custom_voice(
            text=text,
            speaker=speaker,
            language=language,
            do_sample=False,
            subtalker_dosample=False,
            max_new_tokens=n_frames + 1,
        )
        return wavs, sr

    e2e, prefill, frame, frame_cp, frame_layers, frame_runs, decode_in_e2e = [], [], [], [], [], [], []
    samples = None
    for i in range(W + R):
        t0 = time.perf_counter()
        wavs, sr = speak()
        dt = time.perf_counter() - t0
        codes = produced[-1]
        if codes.shape != (n_frames, 16):
            raise SystemExit(f"generate produced {codes.shape} codes, expected ({n_frames}, 16)")
        steps = events["steps"]
        assert len(steps) == n_frames, (len(steps), n_frames)
        intervals = [b - a for a, b in zip(steps, steps[1:])]
        if i >= W:
            e2e.append(dt)
            prefill.append(steps[0] - events["call_start"])
            frame.append(statistics.median(intervals))
            frame_runs.append(intervals)
            frame_cp.append(statistics.median(events["cp"]))
            frame_layers.append(statistics.median(events["layers"]))
            decode_in_e2e.append(events["decode"][-1])
        samples = wavs[0]
        log(
            f"run {i + 1}/{W + R}{' (warm-up)' if i < W else ''}: e2e {dt:.3f} s, prefill "
            f"{steps[0] - events['call_start']:.3f} s, frame median {statistics.median(intervals) * 1e3:.1f} ms "
            f"(code predictor {statistics.median(events['cp']) * 1e3:.1f} ms, talker layers "
            f"{statistics.median(events['layers']) * 1e3:.1f} ms), decode {events['decode'][-1]:.3f} s"
        )
    assert sr == 24000 and samples.shape == (n_frames * 1920,), (sr, samples.shape)
    metrics["e2e_4s_s"] = summary(e2e)
    metrics["prefill_s"] = summary(prefill)
    metrics["frame_s"] = summary(frame)
    metrics["frame_s"]["per_frame_runs"] = frame_runs
    metrics["frame_code_predictor_s"] = summary(frame_cp)
    metrics["frame_talker_s"] = summary(frame_layers)
    metrics["codec_decode_in_e2e_s"] = summary(decode_in_e2e)

    # ---------------- the wrapper's decode alone, on the frames the last run generated
    codes = produced[-1]
    codes_t = torch.from_numpy(codes).long()

    def decode_only():
        wavs, _ = codec.decode([{"audio_codes": codes_t}])
        assert wavs[0].shape == (n_frames * 1920,)

    metrics["codec_decode_4s_s"] = summary(measure(f"codec decode, {n_frames} frames", decode_only, W, R))

    talker.forward = inner_forward
    talker.code_predictor.generate = inner_cp_generate
    talker.model.forward = inner_layers
    codec.decode = inner_decode
    model.generate = inner_model_generate

    result = {
        "engine": "pytorch",
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "qwen_tts": _version("qwen-tts"),
            "numpy": np.__version__,
        },
        "model": str(model_dir),
        "dtype": "float32",
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "attention": attn,
        "repeat": R,
        "warmup": W,
        "frames": n_frames,
        "request": {"text": text, "speaker": speaker, "language": language, "text_input": "whole"},
        "prompt_positions": events["prefill_len"],
        "codes": codes.tolist(),
        "audio": {"samples": int(samples.shape[0]), "sample_rate": sr, "std": float(np.std(samples))},
        "metrics": metrics,
        "values": {
            "load_s": load_s,
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "rss_end_bytes": status_bytes("VmRSS"),
        },
        "machine": watch.report(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }
    text_out = json.dumps(result, indent=1)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text_out + "\n")
        log(f"wrote {args.json}")
    else:
        print(text_out)


if __name__ == "__main__":
    main()
