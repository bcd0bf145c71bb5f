"""Speed of the PyTorch reference 25 Hz speech tokenizer (qwen-tts 0.1.1) on the bench checkpoint.

Measures, in float32 on CPU with a fixed number of torch threads, on the first S seconds of
`<model>/bench-audio/speech_30s.wav` (from make_codec25_checkpoint.py), the same quantities as
`qwen3-speech bench codec25` (cli/src/bench/codec25.rs), the same way:

  encode_codes_{S}s_s    codes only: model.encoder.quantize_speech([wav]) (Whisper log-mel,
                         conv front end, 6 transformer blocks, VQ downsample, nearest of 32768
                         codebook entries, plus the reference's dead post-VQ compute)
  xvector_{S}s_s         speaker side: model.encoder_xvector_extractor.extract_code(wav) (sox
                         norm -6 dB, kaldi fbank + CMN, CAM++ in onnxruntime with the 1 intra-op
                         thread the reference hard-codes, L2 norm, the 80-bin reference mel)
  encode_{S}s_s          the user-facing call Qwen3TTSTokenizer.encode(wav, sr=16000): feature
                         extractor, codes, x-vector and reference mel
  decode_{S}s_s          the user-facing call Qwen3TTSTokenizer.decode({codes, xvector, ref_mel})
                         after torch.manual_seed(seed): DiT flow matching with the reference's
                         defaults (10 time points = 9 Euler steps, CFG 0.5 as one doubled batch,
                         sway -1) on codes x repeats mel frames, then BigVGAN, trim
  decode_dit_{S}s_s      of which the DiT sampling (dit.sample)
  decode_bigvgan_{S}s_s  of which BigVGAN (bigvgan.forward)
  load_s                 Qwen3TTSTokenizer.from_pretrained(dir, dtype=float32), campplus.onnx included
  peak_rss_bytes         getrusage(RUSAGE_SELF).ru_maxrss of this process (whole run, load included)

Each timed quantity is run `--warmup` times untimed and `--repeat` times timed; the JSON keeps
every run, the median and the min. It also records the codes, the x-vector and the first second
of the decoded waveform, so the Rust bench can print how well the engines agree. Human-readable
progress goes to stderr, the JSON to --json (or stdout).

    /work/venv-ref/bin/python tools/bench/reference_codec25.py --model bench-models/codec25 --json /tmp/ref.json
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

from reference_asr import MachineWatch, _version, log, measure, status_bytes, summary  # noqa: E402

AUDIO_FILE = "bench-audio/speech_30s.wav"
SAMPLE_RATE = 16000


def seconds_list(text: str) -> list[int]:
    out = [int(x) for x in text.split(",") if x.strip()]
    if not out or any(s <= 0 for s in out):
        raise argparse.ArgumentTypeError(f"expected positive whole seconds, got {text!r}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=REPO_ROOT / "bench-models" / "codec25")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--encode-seconds", type=seconds_list, default=[10, 30])
    ap.add_argument("--decode-seconds", type=seconds_list, default=[10])
    ap.add_argument("--seed", type=int, default=1234, help="torch.manual_seed before every decode")
    ap.add_argument("--json", type=Path, default=None, help="write the JSON here (default: stdout)")
    args = ap.parse_args()

    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
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
    torch.set_grad_enabled(False)
    from qwen_tts.inference.qwen3_tts_tokenizer import Qwen3TTSTokenizer

    model_dir = args.model.resolve()
    speech, sr = sf.read(str(model_dir / AUDIO_FILE), dtype="float32")
    assert sr == SAMPLE_RATE, sr
    for s in args.encode_seconds + args.decode_seconds:
        if s * SAMPLE_RATE > len(speech):
            ap.error(f"{s} s is longer than {AUDIO_FILE} ({len(speech) / SAMPLE_RATE:.0f} s)")
    W, R = args.warmup, args.repeat
    metrics: dict = {}

    t0 = time.perf_counter()
    tok = Qwen3TTSTokenizer.from_pretrained(str(model_dir), dtype=torch.float32)
    load_s = time.perf_counter() - t0
    model = tok.model.eval()
    assert tok.get_model_type() == "qwen3_tts_tokenizer_25hz"
    assert model.dtype == torch.float32, model.dtype
    xv = model.encoder_xvector_extractor
    dit, bigvgan = model.decoder.dit, model.decoder.bigvgan
    repeats = model.config.decoder_config.dit_config.repeats
    log(f"loaded in {load_s:.1f} s; torch {torch.__version__}, threads {torch.get_num_threads()}")

    codes_out: dict = {}
    xvectors: dict = {}
    encoded: dict = {}
    for s in args.encode_seconds:
        wav = np.ascontiguousarray(speech[: s * SAMPLE_RATE])
        key = f"{s}s"

        def codes_only():
            idx, lens = model.encoder.quantize_speech([torch.from_numpy(wav)])
            return idx[0][: lens[0]]

        metrics[f"encode_codes_{key}_s"] = summary(measure(f"codes only, {key}", codes_only, W, R))
        metrics[f"xvector_{key}_s"] = summary(measure(f"x-vector + ref mel, {key}", lambda: xv.extract_code(wav), W, R))
        metrics[f"encode_{key}_s"] = summary(
            measure(f"encode (user-facing), {key}", lambda: tok.encode(wav, sr=SAMPLE_RATE), W, R)
        )
        enc = tok.encode(wav, sr=SAMPLE_RATE)
        codes = enc.audio_codes[0]
        assert codes.shape == (s * SAMPLE_RATE // 640,), codes.shape
        assert torch.equal(codes, codes_only()), "codes-only path differs from encode"
        codes_out[key] = codes.tolist()
        xvectors[key] = enc.xvectors[0].tolist()
        encoded[key] = enc

    # Decode: the user-facing call, with the DiT and BigVGAN timed inside it.
    parts: dict = {"dit": [], "bigvgan": []}
    inner_sample, inner_vocode = dit.sample, bigvgan.forward

    @functools.wraps(inner_sample)
    def sample(*a, **kw):
        t = time.perf_counter()
        out = inner_sample(*a, **kw)
        parts["dit"].append(time.perf_counter() - t)
        return out

    @functools.wraps(inner_vocode)
    def vocode(*a, **kw):
        t = time.perf_counter()
        out = inner_vocode(*a, **kw)
        parts["bigvgan"].append(time.perf_counter() - t)
        return out

    dit.sample, bigvgan.forward = sample, vocode
    audio: dict = {}
    for s in args.decode_seconds:
        key = f"{s}s"
        enc = encoded.get(key)
        if enc is None:
            enc = tok.encode(np.ascontiguousarray(speech[: s * SAMPLE_RATE]), sr=SAMPLE_RATE)
            codes_out[key] = enc.audio_codes[0].tolist()
            xvectors[key] = enc.xvectors[0].tolist()
        request = {"audio_codes": [enc.audio_codes[0]], "xvectors": [enc.xvectors[0]], "ref_mels": [enc.ref_mels[0]]}
        result = {}

        def decode():
            torch.manual_seed(args.seed)
            wavs, out_sr = tok.decode(request)
            result["wav"], result["sr"] = wavs[0], out_sr

        parts["dit"].clear()
        parts["bigvgan"].clear()
        metrics[f"decode_{key}_s"] = summary(measure(f"decode (user-facing), {key}", decode, W, R))
        metrics[f"decode_dit_{key}_s"] = summary(parts["dit"][W:])
        metrics[f"decode_bigvgan_{key}_s"] = summary(parts["bigvgan"][W:])
        w = result["wav"]
        n_codes = len(codes_out[key])
        assert w.shape[0] == n_codes * repeats * 240, (w.shape, n_codes)
        audio[key] = {
            "samples": int(w.shape[0]),
            "sample_rate": int(result["sr"]),
            "mel_frames": n_codes * repeats,
            "std": float(np.std(w)),
            "first_second": [float(x) for x in w[: int(result["sr"])]],
        }
    dit.sample, bigvgan.forward = inner_sample, inner_vocode

    result = {
        "engine": "pytorch",
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "qwen_tts": _version("qwen-tts"),
            "onnxruntime": _version("onnxruntime"),
            "numpy": np.__version__,
        },
        "model": str(model_dir),
        "dtype": "float32",
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "repeat": R,
        "warmup": W,
        "encode_seconds": args.encode_seconds,
        "decode_seconds": args.decode_seconds,
        "seed": args.seed,
        "codes": codes_out,
        "xvectors": xvectors,
        "audio": audio,
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
