"""Real audio end to end with the tiny checkpoint: writes tests/fixtures/asr-real/.

Small real audio files (espeak-ng speech in several languages as 16 kHz WAV, a stereo 44.1 kHz
FLAC, an MP3, an OGG Vorbis file and digital silence) are transcribed by the reference exactly as
a user would: ``Qwen3ASRModel.from_pretrained(asr-tiny, dtype=float32)`` on the CPU, then
``transcribe(audio=<path>)`` with the defaults except ``max_new_tokens=32``. The only change to the
reference is the EOS ids: ``generate`` hard-codes the real ones, so the tiny ids are passed by
wrapping ``model.generate`` (see README "EOS ids", as ``gen_asr_goldens.make_asr_api`` does).

The waveform the reference fed to the processor (``normalize_audio_input(path)``: librosa.load,
mono mean, soxr_hq resample to 16 kHz, peak rule) is stored in ``waveforms.safetensors``; the
generated ids, the raw decoded string, the parsed (language, text) and the ``transcribe()`` result
in ``manifest.json``.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from common import FIXTURES, check_equal, dump_json, import_qwen_asr, save_tensors, sha256_file

SR = 16000
MAX_NEW_TOKENS = 32
SILENCE_SECONDS = 1.5

# name -> how the file is made. "speech": espeak-ng voice, speed, text.
FILES: Dict[str, Dict[str, Any]] = {
    "en_16k.wav": dict(voice="en-us", speed=160, text="The weather is nice today.", language="English",
                       container="wav", codec="PCM_16", sample_rate=16000, channels=1),
    "zh_16k.wav": dict(voice="cmn", speed=200, text="今天天气很好。", language="Chinese",
                       container="wav", codec="PCM_16", sample_rate=16000, channels=1),
    "de_16k.wav": dict(voice="de", speed=160, text="Guten Morgen, wie geht es dir?", language="German",
                       container="wav", codec="PCM_16", sample_rate=16000, channels=1),
    "es_16k.wav": dict(voice="es", speed=160, text="Buenos días, ¿cómo estás?", language="Spanish",
                       container="wav", codec="PCM_16", sample_rate=16000, channels=1),
    "fr_stereo_44k.flac": dict(voice="fr", speed=160, text="Bonjour, je m'appelle Marie.", language="French",
                               container="flac", codec="PCM_16", sample_rate=44100, channels=2),
    "it_22k.mp3": dict(voice="it", speed=160, text="Buongiorno a tutti, come state?", language="Italian",
                       container="mp3", codec="libmp3lame 64k", sample_rate=22050, channels=1),
    "pt_48k.ogg": dict(voice="pt", speed=160, text="Obrigado pela ajuda.", language="Portuguese",
                       container="ogg", codec="libvorbis q4", sample_rate=48000, channels=1),
    "silence_16k.wav": dict(voice=None, speed=None, text=None, language=None,
                            container="wav", codec="PCM_16", sample_rate=16000, channels=1),
}  # fmt: skip

FFMPEG_BITEXACT = ["-fflags", "+bitexact", "-flags:a", "+bitexact"]


def _run(cmd: List[str]) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _espeak(spec: Dict[str, Any], path: Path) -> np.ndarray:
    """espeak-ng speech (22.05 kHz mono 16-bit) written to `path`, returned as float32."""
    import soundfile as sf

    _run(["espeak-ng", "-v", spec["voice"], "-s", str(spec["speed"]), "-w", str(path), spec["text"]])
    x, sr = sf.read(str(path), dtype="float32")
    assert sr == 22050 and x.ndim == 1, (sr, x.shape)
    return x


def _soxr(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    import librosa

    return librosa.resample(x, orig_sr=sr_in, target_sr=sr_out, res_type="soxr_hq").astype(np.float32)


def make_files(out_dir: Path) -> None:
    import soundfile as sf

    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        for name, spec in FILES.items():
            path = out_dir / name
            if spec["voice"] is None:
                sf.write(str(path), np.zeros(int(SILENCE_SECONDS * SR), dtype=np.float32), SR, subtype="PCM_16")
                continue
            src = tmp / f"{name}.espeak.wav"
            x = _espeak(spec, src)
            if spec["container"] == "wav":
                sf.write(str(path), _soxr(x, 22050, 16000), 16000, subtype="PCM_16")
            elif spec["container"] == "flac":
                # Real stereo: the right channel is quieter and 1 ms late, so the mono mean is
                # neither channel.
                y = _soxr(x, 22050, 44100)
                d = 44
                right = np.concatenate([np.zeros(d, np.float32), 0.6 * y[:-d]]).astype(np.float32)
                sf.write(str(path), np.stack([y, right], axis=1), 44100, subtype="PCM_16", format="FLAC")
            elif spec["container"] == "mp3":
                _run(["ffmpeg", "-y", "-loglevel", "error", "-i", str(src), *FFMPEG_BITEXACT,
                      "-c:a", "libmp3lame", "-b:a", "64k", str(path)])  # fmt: skip
            elif spec["container"] == "ogg":
                _run(["ffmpeg", "-y", "-loglevel", "error", "-i", str(src), *FFMPEG_BITEXACT,
                      "-ar", str(spec["sample_rate"]), "-c:a", "libvorbis", "-q:a", "4", str(path)])  # fmt: skip
            else:
                raise KeyError(spec["container"])


class _RecordingProcessor:
    """Forwards to the reference processor and records the audio it was given."""

    def __init__(self, inner):
        self._inner = inner
        self.calls: List[Dict[str, Any]] = []

    def __call__(self, *a, **k):
        out = self._inner(*a, **k)
        self.calls.append({"text": k.get("text"), "audio": k.get("audio"), "inputs": out})
        return out

    def __getattr__(self, name):
        return getattr(self._inner, name)


def load_reference_api(fixtures: Path):
    """Qwen3ASRModel.from_pretrained as a user calls it, plus the tiny EOS ids."""
    import torch

    import_qwen_asr()
    from gen_asr_goldens import eos_ids
    from gen_asr_tiny import tiny_ids
    from qwen_asr.inference.qwen3_asr import Qwen3ASRModel

    ids = tiny_ids(fixtures)
    asr = Qwen3ASRModel.from_pretrained(str(fixtures / "asr-tiny"), max_new_tokens=MAX_NEW_TOKENS, dtype=torch.float32)
    asr.model.eval()
    model = asr.model
    orig = model.generate
    generations: List[Any] = []

    @functools.wraps(orig)
    def gen_with_tiny_eos(*a, **k):
        k.setdefault("eos_token_id", eos_ids(ids))
        out = orig(*a, **k)
        generations.append({"prompt_len": int(k["input_ids"].shape[1]), "sequences": out.sequences.clone()})
        return out

    model.generate = gen_with_tiny_eos
    rec = _RecordingProcessor(asr.processor)
    asr.processor = rec
    return asr, ids, generations, rec


def trimmed(seq: List[int], eos: List[int]) -> List[int]:
    for i, t in enumerate(seq):
        if t in eos:
            return seq[: i + 1]
    return seq


def run_case(asr, ids, generations, rec, path: Path, wav: np.ndarray, language) -> Dict[str, Any]:
    """transcribe(audio=str(path), language=language) and what the reference computed on the way."""
    import torch

    from gen_asr_goldens import eos_ids
    from qwen_asr.inference.utils import parse_asr_output

    name = path.name
    eos = eos_ids(ids)
    generations.clear()
    rec.calls.clear()
    with torch.no_grad():
        res = asr.transcribe(audio=str(path), language=language)
    check_equal(f"{name} results", len(res), 1)
    check_equal(f"{name} generate calls", len(generations), 1)
    check_equal(f"{name} processor calls", len(rec.calls), 1)
    fed = rec.calls[0]["audio"]
    check_equal(f"{name} audio items", len(fed), 1)
    # What the processor got is exactly normalize_audio_input(path) (one piece, < 1200 s).
    assert fed[0].dtype == np.float32 and np.array_equal(fed[0], wav), name
    inputs = rec.calls[0]["inputs"]
    g = generations[0]
    gen = g["sequences"][0, g["prompt_len"] :].tolist()
    raw = asr.processor.batch_decode([gen], skip_special_tokens=True, clean_up_tokenization_spaces=False)[0]
    lang, text = parse_asr_output(raw, user_language=language)
    check_equal(f"{name} transcribe vs parse", [res[0].language, res[0].text], [lang, text])
    return {
        "language": language,
        "feature_attention_mask_sum": int(inputs["feature_attention_mask"].sum()),
        "num_audio_tokens": int((inputs["input_ids"][0] == ids["<|audio_pad|>"]).sum()),
        "prompt_ids": inputs["input_ids"][0].tolist(),
        "generated_ids": gen,
        "generated_ids_trimmed": trimmed(gen, eos),
        "stopped_on_eos": any(t in eos for t in gen),
        "raw_decoded": raw,
        "parsed": [lang, text],
        "transcribe": {"language": res[0].language, "text": res[0].text},
    }


def main(fixtures: Path = FIXTURES) -> Dict[str, Any]:
    import soundfile as sf

    import_qwen_asr()
    from gen_asr_goldens import eos_ids, espeak_version
    from qwen_asr.inference.utils import normalize_audio_input

    if shutil.which("ffmpeg") is None or shutil.which("espeak-ng") is None:
        raise SystemExit("ffmpeg and espeak-ng are required")
    out_dir = fixtures / "asr-real"
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.iterdir():
        if old.is_file():
            old.unlink()
    make_files(out_dir)

    asr, ids, generations, rec = load_reference_api(fixtures)
    eos = eos_ids(ids)
    attn = asr.model.config._attn_implementation
    waves: Dict[str, np.ndarray] = {}
    entries: List[Dict[str, Any]] = []
    for name, spec in FILES.items():
        path = out_dir / name
        info = sf.info(str(path))
        check_equal(f"{name} rate", int(info.samplerate), spec["sample_rate"])
        check_equal(f"{name} channels", int(info.channels), spec["channels"])
        wav = normalize_audio_input(str(path))
        assert wav.dtype == np.float32 and wav.ndim == 1

        auto = run_case(asr, ids, generations, rec, path, wav, None)
        forced = run_case(asr, ids, generations, rec, path, wav, spec["language"]) if spec["language"] else None
        waves[name] = wav
        entries.append({
            "file": name,
            "bytes": path.stat().st_size,
            "sha256": sha256_file(path),
            "container": spec["container"],
            "codec": spec["codec"],
            "file_sample_rate": int(info.samplerate),
            "file_channels": int(info.channels),
            "file_frames": int(info.frames),
            "source": ({"espeak_voice": spec["voice"], "espeak_speed": spec["speed"], "text": spec["text"],
                        "spoken_language": spec["language"]}
                       if spec["voice"] else {"digital_silence_seconds": SILENCE_SECONDS}),
            "resampled_by_reference": int(info.samplerate) != SR,
            "waveform_tensor": name,
            "num_samples": int(wav.shape[0]),
            "duration_s": wav.shape[0] / SR,
            "waveform_peak": float(np.abs(wav).max()),
            **auto,
            "forced_language": forced,
        })  # fmt: skip

    save_tensors(out_dir / "waveforms.safetensors", waves)
    size = (out_dir / "waveforms.safetensors").stat().st_size
    assert size < 1024 * 1024, f"waveforms.safetensors too big ({size})"
    doc = {
        "description": "Real audio files transcribed end to end by the reference: "
        "Qwen3ASRModel.from_pretrained('tests/fixtures/asr-tiny', dtype=torch.float32) on CPU, "
        f"transcribe(audio=path) with defaults except max_new_tokens={MAX_NEW_TOKENS}; "
        f"eos_token_id={eos} (tiny <|im_end|>, <|endoftext|>) passed by wrapping model.generate, since the "
        "reference hard-codes [151645, 151643]. transformers backend: the audio encoder uses FULL attention. "
        "waveforms.safetensors[file] = normalize_audio_input(path) (librosa.load(sr=None, mono=False), mono "
        "mean, librosa.resample soxr_hq to 16 kHz, float_range_normalize), checked to be exactly what the "
        "processor received. generated_ids = sequences[:, prompt_len:] (one item, so no padding); "
        "raw_decoded = batch_decode(skip_special_tokens=True, clean_up_tokenization_spaces=False); "
        "parsed = parse_asr_output(raw_decoded, user_language=None); transcribe = the API result. "
        "forced_language: the same with transcribe(audio=path, language=<the spoken language>) "
        "(null for the silence); parsed then uses user_language=that language.",
        "model": "asr-tiny",
        "attn_implementation": attn,
        "max_new_tokens": MAX_NEW_TOKENS,
        "eos_token_ids": eos,
        "sample_rate": SR,
        "espeak_ng": espeak_version(),
        "ffmpeg": subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.splitlines()[0],
        "libsndfile": sf.__libsndfile_version__,
        "files": entries,
    }
    dump_json(out_dir / "manifest.json", doc)
    total = sum(p.stat().st_size for p in out_dir.iterdir() if p.is_file())
    assert total < 1_600_000, f"asr-real/ is {total} bytes"
    return {
        "total_bytes": total,
        "attn_implementation": attn,
        "files": {e["file"]: {"num_samples": e["num_samples"], "n_generated": len(e["generated_ids_trimmed"]),
                              "stopped_on_eos": e["stopped_on_eos"], "transcribe": e["transcribe"],
                              "n_generated_forced": (len(e["forced_language"]["generated_ids_trimmed"])
                                                     if e["forced_language"] else None)}
                  for e in entries},
    }  # fmt: skip
