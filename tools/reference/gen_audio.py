#!/usr/bin/env python3
"""Generate the audio front-end golden fixtures used by the Rust tests.

Writes into ``tests/fixtures/audio/`` (or the folder given on the command line):

* small test clips (each at most 1 s) in every container/codec the engine decodes:
  16-bit PCM WAV, 32-bit float WAV, 24-bit PCM WAV, stereo 44.1 kHz FLAC, MP3, OGG Vorbis and
  AAC in M4A. Lossless clips are written with soundfile, lossy ones with the ffmpeg CLI, from a
  synthetic signal or from espeak-ng speech;
* for each clip, the samples that the reference loader produces:
  ``librosa.load(path, sr=None, mono=False)``, which is what ``qwen_asr`` calls for a path;
* the output of ``qwen_asr.inference.utils.normalize_audio_input`` (mono, soxr_hq resample to
  16 kHz, peak normalise) for the stereo 44.1 kHz FLAC and the 48 kHz 24-bit WAV;
* Whisper log-mel features from ``transformers.WhisperFeatureExtractor`` configured as the
  Qwen3-ASR preprocessor (128 mels, n_fft 400, hop 160, torch path) for: espeak-ng speech at
  16 kHz, a clip whose length is not a multiple of 160, a 250-sample clip and exactly 3.0 s;
* the 201x128 Slaney filter bank of that extractor (float64, as computed by transformers) and torch's float32 Hann windows;
* the 24 kHz speaker-encoder mel of ``qwen_tts`` (``modeling_qwen3_tts.mel_spectrogram`` with the
  arguments used by ``extract_speaker_embedding``) on a 24 kHz speech clip;
* ``manifest.json`` describing every tensor file (shapes, rates, lengths, reference function).

Each mel fixture also holds ``mel_f64``: the same formula evaluated in float64 with numpy (same
float32 window and filter bank, result rounded to float32). The gap between ``mel`` and
``mel_f64`` is the reference's own float32 rounding; a port computing in float64 should match
``mel_f64`` closely.

Tensors are stored as safetensors (float32 unless noted). No file exceeds 1 MB.

Run with the reference virtual environment::

    /work/venv-ref/bin/python tools/reference/gen_audio.py [out_dir]

The qwen_asr / qwen_tts packages are looked up on PYTHONPATH and, failing that, in
``/work/refpkgs``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

REFPKGS = Path(os.environ.get("QWEN_REFPKGS", "/work/refpkgs"))
for sub in ("qwen_asr", "qwen_tts"):
    p = REFPKGS / sub
    if p.is_dir() and str(p) not in sys.path:
        sys.path.append(str(p))

SPEECH_TEXT = "The quick brown fox jumps over the lazy dog, twice."
SHORT_TEXT = "Hello world."


def _run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _espeak(text: str, path: Path) -> tuple[np.ndarray, int]:
    """Synthesise ``text`` with espeak-ng (22.05 kHz mono 16-bit) and read it back as float32."""
    import soundfile as sf

    _run(["espeak-ng", "-v", "en-us", "-s", "165", "-w", str(path), text])
    audio, sr = sf.read(str(path), dtype="float32")
    return audio, int(sr)


def _synthetic(sr: int, seconds: float, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A deterministic test signal: two tones, a chirp and a little noise, peak about 0.6.

    Returns (frames,) for mono or (frames, channels) otherwise, float32.
    """
    rng = np.random.default_rng(seed)
    n = int(round(sr * seconds))
    t = np.arange(n, dtype=np.float64) / sr
    out = []
    for ch in range(channels):
        f0 = 220.0 * (1 + ch)
        x = 0.25 * np.sin(2 * np.pi * f0 * t)
        x += 0.15 * np.sin(2 * np.pi * 1375.0 * t + 0.3 * ch)
        # linear chirp 100 Hz -> 0.4*sr
        f1 = 0.4 * sr
        x += 0.1 * np.sin(2 * np.pi * (100.0 * t + (f1 - 100.0) * t**2 / (2 * seconds)))
        x += 0.02 * rng.standard_normal(n)
        # short fade in/out so lossy encoders do not see a click
        fade = min(n // 10, int(0.01 * sr))
        if fade > 0:
            ramp = np.linspace(0.0, 1.0, fade)
            x[:fade] *= ramp
            x[-fade:] *= ramp[::-1]
        out.append(x)
    arr = np.stack(out, axis=-1).astype(np.float32)
    return arr[:, 0] if channels == 1 else arr


def _save_st(path: Path, tensors: dict[str, np.ndarray]) -> None:
    from safetensors.numpy import save_file

    clean = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    save_file(clean, str(path))
    os.chmod(path, 0o644)
    size = path.stat().st_size
    if size > 1_000_000:
        raise RuntimeError(f"{path} is {size} bytes, over the 1 MB fixture limit")


def _stft_frames_f64(x: np.ndarray, window: np.ndarray, pad: int, hop: int) -> np.ndarray:
    """Reflect-pad by ``pad``, frame with ``hop`` (len(window) per frame, no centring), window and
    real-FFT in float64. Returns the complex spectrum (n_fft // 2 + 1, frames)."""
    y = np.pad(x.astype(np.float64), (pad, pad), mode="reflect")
    n_fft = len(window)
    n_frames = (len(y) - n_fft) // hop + 1
    idx = np.arange(n_fft)[:, None] + hop * np.arange(n_frames)[None, :]
    return np.fft.rfft(y[idx] * window[:, None], axis=0)


def _whisper_f64(x: np.ndarray, filters_f32: np.ndarray, window_f32: np.ndarray) -> np.ndarray:
    """The WhisperFeatureExtractor torch-path formula evaluated in float64 (same f32 window and
    f32 filter bank), to separate the reference's float32 rounding from port errors."""
    spec = _stft_frames_f64(x, window_f32.astype(np.float64), 200, 160)[:, :-1]
    power = spec.real**2 + spec.imag**2
    log_spec = np.log10(np.maximum(filters_f32.astype(np.float64).T @ power, 1e-10))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return ((log_spec + 4.0) / 4.0).astype(np.float32)


def _speaker_f64(x: np.ndarray, filters_f32: np.ndarray, window_f32: np.ndarray) -> np.ndarray:
    """qwen_tts mel_spectrogram evaluated in float64 (same f32 window and filter bank)."""
    spec = _stft_frames_f64(x, window_f32.astype(np.float64), 384, 256)
    mag = np.sqrt(spec.real**2 + spec.imag**2 + 1e-9)
    return np.log(np.maximum(filters_f32.astype(np.float64) @ mag, 1e-5)).astype(np.float32)


def _librosa_load(path: Path) -> tuple[np.ndarray, int, str]:
    """librosa.load(path, sr=None, mono=False), plus which backend decoded it."""
    import librosa
    import soundfile as sf

    backend = "soundfile"
    try:
        sf.info(str(path))
    except Exception:  # noqa: BLE001 - soundfile cannot open it: librosa falls back to audioread
        backend = "audioread"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        y, sr = librosa.load(str(path), sr=None, mono=False)
    if backend == "audioread":
        import audioread

        backend = "audioread/" + audioread.available_backends()[0].__name__
    return np.asarray(y, dtype=np.float32), int(sr), backend


def main(out_dir: str | os.PathLike[str] | None = None) -> None:
    import librosa
    import scipy.io.wavfile
    import soundfile as sf
    import torch
    import transformers
    from transformers import WhisperFeatureExtractor

    from qwen_asr.inference.utils import normalize_audio_input
    from qwen_tts.core.models.modeling_qwen3_tts import mel_spectrogram

    if shutil.which("ffmpeg") is None or shutil.which("espeak-ng") is None:
        raise SystemExit("ffmpeg and espeak-ng are required")

    root = Path(__file__).resolve().parents[2]
    out = Path(out_dir) if out_dir is not None else root / "tests" / "fixtures" / "audio"
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():
        if old.is_file():
            old.unlink()

    manifest: dict = {
        "generator": "tools/reference/gen_audio.py",
        "versions": {
            "librosa": librosa.__version__,
            "soundfile": sf.__version__,
            "libsndfile": sf.__libsndfile_version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "numpy": np.__version__,
            "ffmpeg": subprocess.run(
                ["ffmpeg", "-version"], capture_output=True, text=True
            ).stdout.splitlines()[0],
        },
        "decode": [],
        "pipeline": [],
        "resample": [],
        "whisper_mel": [],
        "speaker_mel": [],
    }

    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        speech, speech_sr = _espeak(SPEECH_TEXT, tmp / "speech.wav")  # 22050 Hz
        short, short_sr = _espeak(SHORT_TEXT, tmp / "short.wav")
        assert speech_sr == 22050 and short_sr == 22050

        # ---------------------------------------------------------------- decode clips
        clips = []

        x = _synthetic(16000, 0.5, 1, seed=1)
        p = out / "pcm16_16k_mono.wav"
        sf.write(str(p), x, 16000, subtype="PCM_16")
        clips.append((p, "wav", "PCM_16", "synthetic"))

        x = short[: int(0.9 * 22050)] * 0.9
        p = out / "float32_22k_mono.wav"
        # scipy writes a plain IEEE-float WAV; libsndfile would add a PEAK chunk with a
        # timestamp, which makes the fixture change on every run.
        scipy.io.wavfile.write(str(p), 22050, x.astype(np.float32))
        clips.append((p, "wav", "FLOAT", "espeak-ng"))

        x = _synthetic(48000, 0.3, 2, seed=2)
        p = out / "pcm24_48k_stereo.wav"
        sf.write(str(p), x, 48000, subtype="PCM_24")
        clips.append((p, "wav", "PCM_24", "synthetic"))

        x = _synthetic(44100, 0.5, 2, seed=3)
        p = out / "stereo_44k.flac"
        sf.write(str(p), x, 44100, subtype="PCM_16", format="FLAC")
        clips.append((p, "flac", "PCM_16", "synthetic"))

        # lossy: encode with ffmpeg from a float WAV source
        lossy_src = tmp / "lossy_src.wav"
        sf.write(str(lossy_src), short[: int(0.9 * 22050)] * 0.9, 22050, subtype="FLOAT")
        p = out / "speech_22k_mono.mp3"
        _run(["ffmpeg", "-y", "-loglevel", "error", "-i", str(lossy_src),
              "-fflags", "+bitexact", "-flags:a", "+bitexact", "-c:a", "libmp3lame",
              "-b:a", "64k", str(p)])
        clips.append((p, "mp3", "libmp3lame 64k", "espeak-ng"))

        p = out / "speech_22k_mono.ogg"
        _run(["ffmpeg", "-y", "-loglevel", "error", "-i", str(lossy_src),
              "-fflags", "+bitexact", "-flags:a", "+bitexact", "-c:a", "libvorbis",
              "-q:a", "4", str(p)])
        clips.append((p, "ogg", "libvorbis q4", "espeak-ng"))

        stereo_src = tmp / "stereo_src.wav"
        sf.write(str(stereo_src), _synthetic(44100, 0.3, 2, seed=4), 44100, subtype="FLOAT")
        p = out / "tone_44k_stereo.m4a"
        _run(["ffmpeg", "-y", "-loglevel", "error", "-i", str(stereo_src),
              "-fflags", "+bitexact", "-flags:a", "+bitexact", "-c:a", "aac",
              "-b:a", "128k", str(p)])
        clips.append((p, "m4a", "ffmpeg aac 128k", "synthetic"))

        for path, ext, codec, source in clips:
            if ext in ("mp3", "ogg", "m4a"):
                src = stereo_src if ext == "m4a" else lossy_src
            else:
                src = path
            source_frames = int(sf.info(str(src)).frames)
            y, sr, backend = _librosa_load(path)
            y2 = y if y.ndim == 2 else y[None, :]
            ref = out / (path.stem + "." + ext + ".ref.safetensors")
            _save_st(ref, {"samples": y2})
            manifest["decode"].append({
                "file": path.name,
                "format": ext,
                "codec": codec,
                "source": source,
                "source_frames": source_frames,
                "reference": ref.name,
                "tensor": "samples",
                "shape": list(y2.shape),
                "channels": int(y2.shape[0]),
                "frames": int(y2.shape[1]),
                "sample_rate": sr,
                "reference_function": "librosa.load(path, sr=None, mono=False)",
                "reference_backend": backend,
            })

        # ---------------------------------------------------------------- full pipeline
        for name in ("stereo_44k.flac", "pcm24_48k_stereo.wav", "float32_22k_mono.wav"):
            y = normalize_audio_input(str(out / name))
            ref = out / (name + ".pipeline16k.safetensors")
            _save_st(ref, {"samples": y.astype(np.float32)})
            manifest["pipeline"].append({
                "file": name,
                "reference": ref.name,
                "tensor": "samples",
                "len": int(y.shape[0]),
                "sample_rate": 16000,
                "reference_function": "qwen_asr.inference.utils.normalize_audio_input(path)",
            })

        # ---------------------------------------------------------------- resample (soxr_hq)
        # A 22.05 kHz -> 24 kHz case (the TTS path) on speech.
        x = speech[: int(0.6 * 22050)].astype(np.float32)
        y = librosa.resample(x, orig_sr=22050, target_sr=24000, res_type="soxr_hq")
        ref = out / "resample_22k_to_24k.safetensors"
        _save_st(ref, {"input": x, "output": y.astype(np.float32)})
        manifest["resample"].append({
            "reference": ref.name,
            "from": 22050,
            "to": 24000,
            "input_len": int(x.shape[0]),
            "output_len": int(y.shape[0]),
            "reference_function": "librosa.resample(x, orig_sr, target_sr, res_type='soxr_hq')",
        })

        # ---------------------------------------------------------------- Whisper log-mel
        fe = WhisperFeatureExtractor(
            feature_size=128, sampling_rate=16000, hop_length=160, chunk_length=30, n_fft=400,
            padding_value=0.0, dither=0.0, return_attention_mask=True,
        )
        whisper_window = torch.hann_window(400).numpy()
        filters32 = np.asarray(fe.mel_filters, dtype=np.float32)
        _save_st(out / "whisper_mel_filters.safetensors",
                 {"filters_f64": np.asarray(fe.mel_filters, dtype=np.float64),
                  "hann_400": whisper_window,
                  "hann_1024": torch.hann_window(1024).numpy()})
        manifest["whisper_filters"] = {
            "reference": "whisper_mel_filters.safetensors",
            "tensor": "filters_f64",
            "dtype": "float64",
            "shape": list(fe.mel_filters.shape),
            "reference_function": "WhisperFeatureExtractor(feature_size=128).mel_filters "
                                  "(transformers.audio_utils.mel_filter_bank, slaney/slaney)",
            "windows": "hann_400 / hann_1024: torch.hann_window(N) (periodic, float32)",
        }

        speech16 = librosa.resample(speech, orig_sr=22050, target_sr=16000, res_type="soxr_hq")
        speech16 = speech16[: int(2.5 * 16000) + 123].astype(np.float32)
        rng = np.random.default_rng(7)
        mel_inputs = {
            "speech_16k": speech16,
            "odd_len_16077": _synthetic(16000, 16077 / 16000, 1, seed=5)[:16077],
            "short_250": (0.3 * rng.standard_normal(250)).astype(np.float32),
            # exactly 3 s: one second of digital silence, then a tone and speech
            "exact_3s": np.concatenate([
                np.zeros(16000, dtype=np.float32),
                _synthetic(16000, 1.0, 1, seed=6),
                speech16[8000:24000],
            ]).astype(np.float32),
        }
        assert mel_inputs["odd_len_16077"].shape[0] == 16077
        assert mel_inputs["exact_3s"].shape[0] == 48000
        for name, x in mel_inputs.items():
            feats = fe(x, sampling_rate=16000, padding=True, truncation=False,
                       return_attention_mask=True, return_tensors="np")
            mel = np.asarray(feats["input_features"][0], dtype=np.float32)
            mask = np.asarray(feats["attention_mask"][0])
            ref = out / f"whisper_mel_{name}.safetensors"
            mel64 = _whisper_f64(x, filters32, whisper_window)
            _save_st(ref, {"input": x, "mel": mel, "mel_f64": mel64})
            manifest["whisper_mel"].append({
                "name": name,
                "reference": ref.name,
                "input_len": int(x.shape[0]),
                "n_mels": int(mel.shape[0]),
                "frames": int(mel.shape[1]),
                "mask_sum": int(mask.sum()),
                "sample_rate": 16000,
                "reference_function": "transformers.WhisperFeatureExtractor(feature_size=128, "
                                      "n_fft=400, hop_length=160, dither=0)(x, sampling_rate=16000, "
                                      "padding=True, truncation=False) [torch path]; mel_f64: the "
                                  "same formula in float64 (numpy), same f32 window and filters",
            })

        # ---------------------------------------------------------------- speaker-encoder mel
        x24 = librosa.resample(speech[: int(1.0 * 22050)], orig_sr=22050, target_sr=24000,
                               res_type="soxr_hq").astype(np.float32)
        x24 = x24[: 24000 - 77]  # not a multiple of 256
        peak = float(np.max(np.abs(x24)))
        if peak > 1.0:
            x24 = (x24 / peak).astype(np.float32)
        with torch.no_grad():
            mel = mel_spectrogram(torch.from_numpy(x24).unsqueeze(0), n_fft=1024, num_mels=128,
                                  sampling_rate=24000, hop_size=256, win_size=1024, fmin=0,
                                  fmax=12000)[0].numpy().astype(np.float32)
        filt = librosa.filters.mel(sr=24000, n_fft=1024, n_mels=128, fmin=0, fmax=12000)
        ref = out / "speaker_mel_24k.safetensors"
        mel64 = _speaker_f64(x24, filt.astype(np.float32), torch.hann_window(1024).numpy())
        _save_st(ref, {"input": x24, "mel": mel, "mel_f64": mel64,
                       "filters": filt.astype(np.float32)})
        manifest["speaker_mel"].append({
            "name": "speech_24k",
            "reference": ref.name,
            "input_len": int(x24.shape[0]),
            "n_mels": int(mel.shape[0]),
            "frames": int(mel.shape[1]),
            "sample_rate": 24000,
            "filters_shape": list(filt.shape),
            "reference_function": "qwen_tts.core.models.modeling_qwen3_tts.mel_spectrogram(y, "
                                  "n_fft=1024, num_mels=128, sampling_rate=24000, hop_size=256, "
                                  "win_size=1024, fmin=0, fmax=12000); filters = "
                                  "librosa.filters.mel(sr=24000, n_fft=1024, n_mels=128, fmin=0, "
                                  "fmax=12000); mel_f64: the same formula in float64 (numpy), "
                                  "same f32 window and filters",
        })

    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    total = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    print(f"wrote {len(list(out.iterdir()))} files, {total / 1e6:.2f} MB, into {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
