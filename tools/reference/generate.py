#!/usr/bin/env python
"""Regenerate the reference fixtures under tests/fixtures/ (never run by CI).

    python tools/reference/generate.py                       # everything
    python tools/reference/generate.py --only tokenizer,asr_tiny
    python tools/reference/generate.py --list

Areas (in dependency order):
  audio         tools/reference/gen_audio.py main(out_dir) if that file exists (owned elsewhere)
  tokenizer     tests/fixtures/tokenizer/{qwen2,tiny}/
  asr_tiny      tests/fixtures/asr-tiny/ checkpoint (needs tokenizer)
  thinker_text  tests/fixtures/asr-tiny/expected/thinker_text.*  (needs asr_tiny)
  asr           tests/fixtures/asr-tiny/expected/{clip_*,asr_*,clips.json,frontend.safetensors} (needs asr_tiny)
  asr_real      tests/fixtures/asr-real/ real audio files + end-to-end goldens (needs asr_tiny)
  asr_stream    tests/fixtures/asr-stream/ reference streaming runs (needs asr_tiny, asr_real)
  aligner       tests/fixtures/aligner-tiny/ checkpoint + expected/ goldens (needs tokenizer)
  codec12       tests/fixtures/codec12-tiny/ tiny 12 Hz speech tokenizer + expected/ goldens
  codec25       tests/fixtures/codec25-tiny/ tiny 25 Hz speech tokenizer (+ tiny campplus.onnx) + expected/
  tts           tests/fixtures/tts-tiny/ tiny Qwen3-TTS checkpoints + expected/ (needs tokenizer, gen_codec12.py)
  tts_speaker   tests/fixtures/tts-speaker/ tiny Qwen3-TTS speaker encoder + goldens (needs espeak-ng)
  pure          tests/fixtures/asr-tiny/expected/pure_functions.json
  verify        reload every saved tokenizer/model/golden file and recompute it (writes nothing)

Writes tests/fixtures/MANIFEST.json (versions, date, per-area file hashes).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import inspect
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import FIXTURES, REPO_ROOT, RUN_NOTES, setup_determinism, sha256_file  # noqa: E402

AREAS = [
    "audio", "tokenizer", "asr_tiny", "thinker_text", "asr", "asr_real", "asr_stream", "aligner", "codec12", "codec25", "tts_speaker", "tts",
    "pure", "verify",
]  # fmt: skip


def area_files(area: str, fixtures: Path):
    exp = fixtures / "asr-tiny" / "expected"
    if area == "audio":
        return sorted(p for p in (fixtures / "audio").rglob("*") if p.is_file())
    if area == "tokenizer":
        return sorted(p for p in (fixtures / "tokenizer").rglob("*") if p.is_file())
    if area == "asr_tiny":
        d = fixtures / "asr-tiny"
        return sorted(p for p in d.iterdir() if p.is_file()) if d.exists() else []
    if area == "thinker_text":
        return sorted(exp.glob("thinker_text.*"))
    if area == "asr":
        return sorted(
            list(exp.glob("clip_*"))
            + list(exp.glob("asr_*"))
            + [p for p in [exp / "clips.json", exp / "frontend.safetensors"] if p.exists()]
        )
    if area == "asr_real":
        return sorted(p for p in (fixtures / "asr-real").glob("*") if p.is_file())
    if area == "asr_stream":
        return sorted(p for p in (fixtures / "asr-stream").glob("*") if p.is_file())
    if area == "aligner":
        return sorted(p for p in (fixtures / "aligner-tiny").rglob("*") if p.is_file())
    if area == "codec12":
        return sorted(p for p in (fixtures / "codec12-tiny").rglob("*") if p.is_file())
    if area == "codec25":
        return sorted(p for p in (fixtures / "codec25-tiny").rglob("*") if p.is_file())
    if area == "tts":
        return sorted(p for p in (fixtures / "tts-tiny").rglob("*") if p.is_file())
    if area == "tts_speaker":
        return sorted(p for p in (fixtures / "tts-speaker").glob("*") if p.is_file())
    if area == "pure":
        return sorted(exp.glob("pure_functions.json"))
    if area == "verify":
        return []
    raise KeyError(area)


def run_area(area: str, fixtures: Path):
    if area == "audio":
        path = HERE / "gen_audio.py"
        if not path.exists():
            return {"skipped": "tools/reference/gen_audio.py not present"}
        spec = importlib.util.spec_from_file_location("gen_audio", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        out_dir = fixtures / "audio"
        params = inspect.signature(mod.main).parameters
        res = mod.main(out_dir) if params else mod.main()
        try:
            shown = out_dir.relative_to(REPO_ROOT)
        except ValueError:
            shown = out_dir
        return res if isinstance(res, dict) else {"ran": f"gen_audio.main({shown})"}
    if area == "tokenizer":
        import gen_tokenizer

        return gen_tokenizer.main(fixtures)
    if area == "asr_tiny":
        import gen_asr_tiny

        return gen_asr_tiny.main(fixtures)
    if area == "thinker_text":
        import gen_thinker_text

        return gen_thinker_text.main(fixtures)
    if area == "asr":
        import gen_asr_goldens

        return gen_asr_goldens.main(fixtures)
    if area == "asr_real":
        import gen_asr_real

        return gen_asr_real.main(fixtures)
    if area == "asr_stream":
        import gen_asr_stream

        return gen_asr_stream.main(fixtures)
    if area == "aligner":
        import gen_aligner

        return gen_aligner.main(fixtures)
    if area == "codec12":
        import gen_codec12

        return gen_codec12.main(fixtures)
    if area == "codec25":
        import gen_codec25

        return gen_codec25.main(fixtures)
    if area == "tts":
        import gen_tts

        return gen_tts.main(fixtures)
    if area == "tts_speaker":
        import gen_tts_speaker

        return gen_tts_speaker.main(fixtures)
    if area == "pure":
        import gen_pure

        return gen_pure.main(fixtures)
    if area == "verify":
        import gen_verify

        return gen_verify.main(fixtures)
    raise KeyError(area)


def versions():
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ["torch", "transformers", "accelerate", "tokenizers", "qwen-asr", "qwen-tts", "numpy", "librosa",
                "soundfile", "soxr", "safetensors", "gguf", "nagisa", "soynlp", "onnx", "onnxruntime"]:  # fmt: skip
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    import torch

    out["torch_build"] = torch.__version__  # computations ran on CPU
    try:
        out["espeak-ng"] = subprocess.run(
            ["espeak-ng", "--version"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except Exception:
        out["espeak-ng"] = None
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(AREAS), help="comma-separated areas (default: all)")
    ap.add_argument("--fixtures", default=str(FIXTURES), help="output root (default tests/fixtures)")
    ap.add_argument("--list", action="store_true", help="list areas and exit")
    args = ap.parse_args(argv)
    if args.list:
        print("\n".join(AREAS))
        return 0
    fixtures = Path(args.fixtures).resolve()
    areas = [a.strip() for a in args.only.split(",") if a.strip()]
    for a in areas:
        if a not in AREAS:
            ap.error(f"unknown area {a!r}; choose from {AREAS}")
    areas = [a for a in AREAS if a in areas]  # dependency order
    if "asr_tiny" in areas:
        for dep in ["thinker_text", "asr", "asr_real", "asr_stream"]:
            if dep not in areas:
                print(f"warning: asr_tiny regenerated without {dep}; its goldens may be stale", file=sys.stderr)

    setup_determinism()
    manifest_path = fixtures / "MANIFEST.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest.setdefault("areas", {})
    today = _dt.datetime.now(_dt.timezone.utc).date().isoformat()

    for area in areas:
        t0 = time.time()
        print(f"== {area}", flush=True)
        report = run_area(area, fixtures)
        files = {
            str(p.relative_to(fixtures)): {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
            for p in area_files(area, fixtures)
        }
        manifest["areas"][area] = {"generated_on": today, "files": files, "report": report}
        print(f"   {len(files)} files, {time.time() - t0:.1f}s", flush=True)

    manifest["generator"] = "tools/reference/generate.py"
    manifest["generated_on"] = today
    manifest["versions"] = versions()
    manifest["notes"] = {**manifest.get("notes", {}), **json.loads(json.dumps(RUN_NOTES, default=str))}
    manifest["areas"] = {k: manifest["areas"][k] for k in AREAS if k in manifest["areas"]}
    manifest = {k: manifest[k] for k in ["generator", "generated_on", "versions", "notes", "areas"]}
    manifest_path.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    mine = [p for a in AREAS if a != "audio" for p in area_files(a, fixtures)]
    if "verify" not in areas:
        print("note: run --only verify to recheck the saved files", file=sys.stderr)
    total = sum(p.stat().st_size for p in mine)
    print(f"total size of generated fixtures (excluding audio/): {total / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
