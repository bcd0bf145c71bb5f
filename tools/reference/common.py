"""Shared helpers for the reference-fixture generator (never run by CI).

Everything here is about making the fixture bytes deterministic and about
importing the reference packages (qwen-asr, transformers) in a controlled way.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import sys
import types
from pathlib import Path
from typing import Any, Dict

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "tests" / "fixtures"
REFPKGS = Path(os.environ.get("QWEN_REFPKGS", "/work/refpkgs"))
GGUF_VOCAB = Path(
    os.environ.get("QWEN2_VOCAB_GGUF", str(REFPKGS / "qwen2vocab" / "ggml-vocab-qwen2.gguf"))
)

# Notes collected while generating (stubs used, environment facts); the driver
# copies them into MANIFEST.json.
RUN_NOTES: Dict[str, Any] = {}


def setup_determinism() -> None:
    """Single-threaded, deterministic torch on CPU, no network."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("PYTHONHASHSEED", "0")
    import torch

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(0)
    import transformers

    transformers.logging.set_verbosity_error()


def ensure_nagisa() -> None:
    """qwen_asr imports `nagisa` at module level. Use the real package when it is
    installed; otherwise install a stub that only fails when actually called
    (the fixtures here never use the Japanese word segmenter)."""
    if "nagisa" in sys.modules:
        return
    try:
        importlib.import_module("nagisa")
        RUN_NOTES["nagisa"] = "real package"
        return
    except Exception as exc:  # pragma: no cover - depends on the venv
        stub = types.ModuleType("nagisa")

        def _tagging(*_a, **_k):
            raise RuntimeError("nagisa stub: Japanese segmentation is not available")

        stub.tagging = _tagging
        sys.modules["nagisa"] = stub
        RUN_NOTES["nagisa"] = f"stub module (import failed: {type(exc).__name__})"


def import_qwen_asr():
    ensure_nagisa()
    import qwen_asr  # registers the Auto* classes (qwen_asr.inference.qwen3_asr)

    return qwen_asr


def dump_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(obj, ensure_ascii=False, indent=1, sort_keys=False)
    path.write_text(text + "\n", encoding="utf-8")


def dump_json_compact(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    path.write_text(text, encoding="utf-8")


def save_tensors(path: Path, tensors: Dict[str, Any], metadata: Dict[str, str] | None = None) -> None:
    """Save a dict of torch tensors / numpy arrays as safetensors.

    Floats are stored as f32, integers as i64 (the fixture conventions)."""
    import numpy as np
    import torch
    from safetensors.torch import save_file

    out = {}
    for k, v in tensors.items():
        if isinstance(v, np.ndarray):
            v = torch.from_numpy(np.ascontiguousarray(v))
        elif not isinstance(v, torch.Tensor):
            v = torch.tensor(v)
        v = v.detach().cpu()
        if v.is_floating_point():
            v = v.to(torch.float32)
        elif v.dtype == torch.bool:
            v = v.to(torch.int64)
        else:
            v = v.to(torch.int64)
        out[k] = v.contiguous().clone()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(out, str(path), metadata=metadata or {"format": "pt"})
    os.chmod(path, 0o644)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tensor_summary(path: Path) -> Dict[str, Any]:
    from safetensors import safe_open

    out = {}
    with safe_open(str(path), framework="pt") as f:
        for k in f.keys():
            t = f.get_slice(k)
            out[k] = {"dtype": t.get_dtype(), "shape": list(t.get_shape())}
    return out


def check_close(name: str, a, b, rtol: float = 1e-5, atol: float = 1e-6) -> float:
    import torch

    a = torch.as_tensor(a).double()
    b = torch.as_tensor(b).double()
    if a.shape != b.shape:
        raise AssertionError(f"{name}: shape {tuple(a.shape)} != {tuple(b.shape)}")
    diff = (a - b).abs()
    tol = atol + rtol * b.abs()
    if not bool((diff <= tol).all()):
        raise AssertionError(f"{name}: max abs diff {diff.max().item():.3e}")
    return float(diff.max().item()) if diff.numel() else 0.0


def check_equal(name: str, a, b) -> None:
    if a != b:
        raise AssertionError(f"{name}: {a!r} != {b!r}")
