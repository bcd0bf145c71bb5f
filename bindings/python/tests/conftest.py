"""Shared helpers: fixture paths, a small safetensors and WAV reader (numpy only), and models
loaded once per session."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(
    os.environ.get(
        "QWEN3_SPEECH_FIXTURES",
        Path(__file__).resolve().parents[3] / "tests" / "fixtures",
    )
)

_DTYPES = {"F32": "<f4", "F64": "<f8", "I64": "<i8", "I32": "<i4", "I16": "<i2", "U8": "u1"}


def fixture(rel: str) -> str:
    p = FIXTURES / rel
    assert p.exists(), f"missing fixture {p} (set QWEN3_SPEECH_FIXTURES)"
    return str(p)


def load_json(rel: str):
    with open(fixture(rel), encoding="utf-8") as f:
        return json.load(f)


def load_tensors(rel: str) -> dict:
    """All tensors of a safetensors file as numpy arrays."""
    data = Path(fixture(rel)).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        a = np.frombuffer(data[base + start : base + end], dtype=_DTYPES[info["dtype"]])
        out[name] = a.reshape(info["shape"])
    return out


def read_wav(path: str):
    """(samples as stored, sample_rate, channels) of a PCM16/PCM24/float32 WAV file; samples
    are int16 for PCM16, float32 otherwise ((frames, channels) when several)."""
    data = Path(path).read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    pos = 12
    fmt = None
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = data[pos + 8 : pos + 8 + size]
        if cid == b"fmt ":
            tag, channels, rate = struct.unpack("<HHI", body[:8])
            bits = struct.unpack("<H", body[14:16])[0]
            if tag == 0xFFFE:
                tag = struct.unpack("<H", body[24:26])[0]
            fmt = (tag, channels, rate, bits)
        elif cid == b"data":
            tag, channels, rate, bits = fmt
            if tag == 1 and bits == 16:
                s = np.frombuffer(body, dtype="<i2").copy()
            elif tag == 1 and bits == 24:
                b = np.frombuffer(body, dtype="u1").reshape(-1, 3).astype(np.int32)
                v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
                v = np.where(v >= 1 << 23, v - (1 << 24), v)
                s = (v / float(1 << 23)).astype(np.float32)
            elif tag == 3 and bits == 32:
                s = np.frombuffer(body, dtype="<f4").copy()
            else:
                raise ValueError(f"unsupported WAV format {fmt}")
            if channels > 1:
                s = s.reshape(-1, channels)
            return s, rate, channels
        pos += 8 + size + (size & 1)
    raise ValueError("no data chunk")


@pytest.fixture(scope="session")
def asr():
    import qwen3_speech as qs

    return qs.Qwen3ASRModel.from_pretrained(
        fixture("asr-tiny"), max_new_tokens=32, attention="full", device="cpu", dtype="float32"
    )


@pytest.fixture(scope="session")
def tts_cv():
    import qwen3_speech as qs

    return qs.Qwen3TTSModel.from_pretrained(fixture("tts-tiny/custom_voice"), device_map="cpu")
