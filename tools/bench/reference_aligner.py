"""Speed of the PyTorch reference forced aligner (qwen-asr 0.0.6, transformers backend).

Measures, in float32 on CPU with a fixed number of torch threads, on the 60 s bench clip and its
transcript (`<model>/bench-audio/speech_60s.{wav,txt}`, from make_aligner_checkpoint.py), the
same quantities as `qwen3-speech bench align` (cli/src/bench.rs), the same way:

  align_60s_s            Qwen3ForcedAligner.align(audio=(wav, 16000), text=..., language="English"),
                         the user-facing call, end to end
  features_60s_s         what align() does before the model: encode_timestamp (segmentation +
                         prompt text) and the processor call (WhisperFeatureExtractor + prompt
                         tokenization), moved to float32
  features_encoder_60s_s the same + thinker.get_audio_features (sdpa: FULL attention over the clip)
  decoder_head_s         the rest of align()'s forward from the audio embeddings: embed +
                         masked_scatter + thinker forward (decoder + head at every position, as
                         align() does) + argmax + the <timestamp> positions picked out
  decoder_s              of which the decoder stack + final norm (thinker.model)
  decoder_half_s         the decoder stack + final norm over the first half of the prompt
                         (decoder_s - 2 decoder_half_s: the part that grows with the square of
                         the length, i.e. attention)
  head_s                 of which the head (thinker.lm_head) on every position's hidden state
  peak_rss_bytes         getrusage(RUSAGE_SELF).ru_maxrss of this process (whole run, load included)

Each timed quantity is run `--warmup` times untimed and `--repeat` times timed; the JSON keeps
every run, the median and the min. Human-readable progress goes to stderr, the JSON to --json
(or stdout).

    /work/venv-ref/bin/python tools/bench/reference_aligner.py --model bench-models/aligner-0.6b --json /tmp/ref.json
"""

from __future__ import annotations

import argparse
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

CLIP_WAV = "speech_60s.wav"
CLIP_TXT = "speech_60s.txt"
LANGUAGE = "English"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=REPO_ROOT / "bench-models" / "aligner-0.6b")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
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
    from qwen_asr.inference.qwen3_forced_aligner import Qwen3ForcedAligner

    model_dir = args.model.resolve()
    W, R = args.warmup, args.repeat
    metrics: dict = {}

    # ---------------- load
    t0 = time.perf_counter()
    aligner = Qwen3ForcedAligner.from_pretrained(str(model_dir), dtype=torch.float32)
    load_s = time.perf_counter() - t0
    model, processor, ap_text = aligner.model, aligner.processor, aligner.aligner_processor
    thinker = model.thinker
    assert next(model.parameters()).dtype == torch.float32
    assert thinker.config.model_type == "qwen3_forced_aligner", thinker.config.model_type
    assert thinker.lm_head.weight.shape[0] == thinker.config.classify_num
    attn = getattr(model.config, "_attn_implementation", None) or thinker.config._attn_implementation
    log(f"loaded in {load_s:.1f} s; torch {torch.__version__}, threads {torch.get_num_threads()}, attention {attn}")

    wav, sr = sf.read(str(model_dir / "bench-audio" / CLIP_WAV), dtype="float32")
    assert sr == 16000 and wav.ndim == 1, (sr, wav.shape)
    wav = np.ascontiguousarray(wav)
    text = (model_dir / "bench-audio" / CLIP_TXT).read_text(encoding="utf-8").strip()

    def prepare():
        word_list, input_text = ap_text.encode_timestamp(text, LANGUAGE)
        inputs = processor(text=[input_text], audio=[wav], return_tensors="pt", padding=True)
        return word_list, inputs.to(model.device).to(model.dtype)

    def encode(inputs):
        return thinker.get_audio_features(
            inputs["input_features"], feature_attention_mask=inputs["feature_attention_mask"]
        )

    with torch.inference_mode():
        word_list, inputs = prepare()
        ids, mask = inputs["input_ids"], inputs["attention_mask"]
        audio = encode(inputs)
        ts_mask = ids[0] == aligner.timestamp_token_id
        clip = {
            "samples": len(wav),
            "seconds": len(wav) / 16000,
            "mel_frames": int(inputs["feature_attention_mask"].sum()),
            "audio_tokens": int(audio.shape[0]),
            "prompt_tokens": int(ids.shape[1]),
            "words": len(word_list),
            "timestamp_tokens": int(ts_mask.sum()),
        }
        log(f"clip: {clip}")

        # ---------------- the parts
        metrics["features_60s_s"] = summary(measure("features (segmentation + processor)", prepare, W, R))
        metrics["features_encoder_60s_s"] = summary(
            measure("features + encoder", lambda: encode(prepare()[1]), W, R)
        )

        def embed():
            emb = thinker.get_input_embeddings()(ids)
            audio_mask = thinker.get_placeholder_mask(ids, inputs_embeds=emb)
            return emb.masked_scatter(audio_mask, audio.to(emb.dtype))

        def decoder_head():
            # align()'s thinker call, with the audio embeddings already computed.
            logits = thinker(input_ids=ids, inputs_embeds=embed(), attention_mask=mask).logits
            return logits.argmax(dim=-1)[0][ts_mask]

        metrics["decoder_head_s"] = summary(measure("decoder + head + argmax", decoder_head, W, R))

        position_ids, _ = thinker.get_rope_index(mask)
        emb_fixed = embed()
        hidden = thinker.model(inputs_embeds=emb_fixed, attention_mask=mask, position_ids=position_ids)[0]

        def decoder():
            return thinker.model(inputs_embeds=emb_fixed, attention_mask=mask, position_ids=position_ids)

        metrics["decoder_s"] = summary(measure("decoder stack + norm", decoder, W, R))

        # The first half of the prompt: T(L) - 2 T(L/2) isolates the length-quadratic part.
        half = int(ids.shape[1]) // 2
        emb_half, mask_half, pos_half = emb_fixed[:, :half], mask[:, :half], position_ids[..., :half]

        def decoder_half():
            return thinker.model(inputs_embeds=emb_half, attention_mask=mask_half, position_ids=pos_half)

        metrics["decoder_half_s"] = summary(measure(f"decoder stack + norm, first {half} tokens", decoder_half, W, R))
        metrics["head_s"] = summary(
            measure(f"head on all {hidden.shape[1]} positions", lambda: thinker.lm_head(hidden), W, R)
        )

    # ---------------- end to end: the user-facing call (inference_mode inside)
    results = []

    def align():
        results.append(aligner.align(audio=(wav, 16000), text=text, language=LANGUAGE))

    metrics["align_60s_s"] = summary(measure("align, end to end", align, W, R))
    items = results[-1][0].items
    assert len(items) == len(word_list), (len(items), len(word_list))
    first = [{"text": it.text, "start": it.start_time, "end": it.end_time} for it in items[:5]]

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
        "language": LANGUAGE,
        "repeat": R,
        "warmup": W,
        "clip": clip,
        "first_items": first,
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
