"""Conversion of audio inputs and outputs between Python and the native module.

Accepted audio (everywhere a model takes audio):

* ``str`` or ``os.PathLike``: a local audio file (WAV, FLAC, MP3, OGG Vorbis, AAC/M4A, ...).
* ``bytes`` / ``bytearray`` / ``memoryview``: an encoded audio file held in memory.
* ``(samples, sample_rate)``: a numpy array (or any sequence of numbers) and its rate, as in
  the reference packages. Float arrays are taken as they are; integer arrays are scaled by
  their full range (``int16 / 32768``); 2-D arrays are averaged to mono (``(frames,
  channels)``, or ``(channels, frames)`` when the first axis is short, as the reference).
"""

from __future__ import annotations

import array
import os
import sys
from typing import Any, Tuple, Union

NativeAudio = Union[str, bytes, Tuple[bytes, int]]


def _numpy() -> Any:
    try:
        import numpy
    except ImportError as e:  # pragma: no cover - exercised by the no-deps venv test
        raise ImportError(
            "numpy is needed for array inputs and outputs: pip install numpy"
        ) from e
    return numpy


def _has_numpy() -> bool:
    return "numpy" in sys.modules or _importable("numpy")


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def samples_to_bytes(samples: Any) -> bytes:
    """Mono little-endian float32 bytes of ``samples`` (see the module docstring)."""
    if isinstance(samples, array.array) and samples.typecode == "f":
        if sys.byteorder != "little":  # pragma: no cover
            samples = array.array("f", samples)
            samples.byteswap()
        return samples.tobytes()
    if not _has_numpy():
        # Without numpy: plain sequences of floats.
        out = array.array("f", (float(x) for x in samples))
        if sys.byteorder != "little":  # pragma: no cover
            out.byteswap()
        return out.tobytes()
    np = _numpy()
    a = np.asarray(samples)
    if a.dtype == np.bool_ or a.dtype.kind not in "iuf":
        raise TypeError(f"audio samples must be numbers, got an array of {a.dtype}")
    if a.dtype.kind == "i":
        a = a.astype(np.float64) / float(2 ** (8 * a.dtype.itemsize - 1))
    elif a.dtype.kind == "u":
        half = float(2 ** (8 * a.dtype.itemsize - 1))
        a = (a.astype(np.float64) - half) / half
    if a.ndim == 2:
        # As the reference's to_mono: (frames, channels), or (channels, frames) when short.
        if a.shape[0] <= 8 and a.shape[1] > a.shape[0]:
            a = a.T
        a = a.mean(axis=-1)
    elif a.ndim != 1:
        raise ValueError(
            f"audio samples must be 1-D (mono) or 2-D (with channels), got shape {a.shape}"
        )
    return np.ascontiguousarray(a, dtype="<f4").tobytes()


def to_native(audio: Any, sample_rate: Any = None) -> NativeAudio:
    """One audio input as the native module takes it."""
    if isinstance(audio, (str, os.PathLike)):
        path = os.fspath(audio)
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if path.startswith(("http://", "https://")):
            raise ValueError(
                f"URLs are not fetched ({path}); download the file and pass its path or bytes"
            )
        return path
    if isinstance(audio, (bytes, bytearray, memoryview)):
        data = bytes(audio)
        if not data:
            raise ValueError("the audio bytes are empty")
        return data
    if isinstance(audio, tuple) and len(audio) == 2 and not isinstance(audio[0], str):
        samples, rate = audio
        if sample_rate is not None and int(sample_rate) != int(rate):
            raise ValueError("the sample rate is given twice, with different values")
        return (samples_to_bytes(samples), _rate(rate))
    if sample_rate is not None:
        return (samples_to_bytes(audio), _rate(sample_rate))
    if hasattr(audio, "__array__") or isinstance(audio, (list, array.array)):
        raise ValueError(
            "audio samples need their sample rate: pass (samples, sample_rate)"
        )
    raise TypeError(
        "audio must be a path, the bytes of an audio file, or (samples, sample_rate); "
        f"got {type(audio).__name__}"
    )


def _rate(rate: Any) -> int:
    try:
        r = int(rate)
    except (TypeError, ValueError):
        raise TypeError(f"sample rate must be an integer, got {rate!r}") from None
    if r <= 0 or r != rate:
        raise ValueError(f"sample rate must be a positive integer, got {rate!r}")
    return r


def is_single_audio(audio: Any) -> bool:
    """True when ``audio`` is one input rather than a list of inputs."""
    return not isinstance(audio, list)


def to_array(buffer: bytearray) -> Any:
    """A float32 numpy array over a native sample buffer (no copy)."""
    np = _numpy()
    return np.frombuffer(buffer, dtype="<f4")
