"""Qwen3ASRModel: reference outputs, audio inputs (numpy round trip, bytes, paths), errors."""

import numpy as np
import pytest

import qwen3_speech as qs
from conftest import fixture, load_json, load_tensors, read_wav


def clip(name):
    return load_tensors(f"asr-tiny/expected/clip_{name}.safetensors")["waveform"].astype(np.float32)


def expected(case, i):
    """(language, text, raw) the reference produced for item i (batch-size-1 results where the
    fixture recorded them, as the Rust golden test)."""
    b1 = case.get("batch_size_1")
    if b1 is not None:
        e = b1[i]
        return e["parsed"][0], e["parsed"][1], e["raw_decoded"]
    return case["parsed"][i][0], case["parsed"][i][1], case["raw_decoded"][i]


def test_greedy_transcripts_match_the_reference(asr):
    g = load_json("asr-tiny/expected/asr_generate.json")
    assert g["max_new_tokens"] == 32
    cases = g["cases"]
    assert len(cases) >= 6
    for name, case in cases.items():
        audio = [(clip(c), 16000) for c in case["clips"]]
        # Per-item contexts and languages, as the reference's lists.
        out = asr.transcribe(audio, context=case["contexts"], language=case["languages"])
        assert len(out) == len(audio)
        for i, r in enumerate(out):
            lang, text, raw = expected(case, i)
            assert isinstance(r, qs.ASRTranscription)
            assert (r.language, r.text) == (lang, text), f"{name}[{i}]"
            assert r.raw == raw, f"{name}[{i}] raw"
            assert r.time_stamps is None
            assert len(r.segments) == 1 and r.segments[0].text == r.text
            assert abs(r.duration - len(audio[i][0]) / 16000) < 1e-6


def test_single_input_returns_a_list(asr):
    r = asr.transcribe((clip("speech_3p0s"), 16000))
    assert isinstance(r, list) and len(r) == 1
    assert r[0].text == asr.transcribe([(clip("speech_3p0s"), 16000)])[0].text


def test_numpy_round_trip(asr):
    """float32, float64, int16, stereo and a non-16 kHz rate give the engine the same audio."""
    pcm, rate, _ = read_wav(fixture("audio/pcm16_16k_mono.wav"))
    assert pcm.dtype == np.int16 and rate == 16000
    f32 = pcm.astype(np.float32) / 32768.0
    base = asr.transcribe((f32, rate))[0]
    assert base.duration == pytest.approx(len(pcm) / rate)
    for variant in (
        (f32.astype(np.float64), rate),
        (pcm, rate),  # int16 is scaled by 1/32768
        (np.stack([f32, f32], axis=1), rate),  # (frames, channels)
        (np.stack([f32, f32], axis=0), rate),  # (channels, frames)
        (list(map(float, f32)), rate),
    ):
        r = asr.transcribe(variant)[0]
        assert (r.text, r.language, r.raw) == (base.text, base.language, base.raw)
    # The file itself, its bytes and the decoded samples are one input.
    assert asr.transcribe(fixture("audio/pcm16_16k_mono.wav"))[0].raw == base.raw
    with open(fixture("audio/pcm16_16k_mono.wav"), "rb") as f:
        data = f.read()
    assert asr.transcribe(data)[0].raw == base.raw
    assert asr.transcribe(bytearray(data))[0].raw == base.raw


def test_other_rates_match_the_reference_pipeline(asr):
    """A 22.05 kHz float file and a 48 kHz 24-bit stereo file: the path, the bytes and the
    samples read here (resampled by the engine) transcribe as the reference's own 16 kHz
    pipeline output of the same file."""
    for name in ("float32_22k_mono.wav", "pcm24_48k_stereo.wav"):
        path = fixture(f"audio/{name}")
        samples, rate, channels = read_wav(path)
        assert rate != 16000
        ref16k = load_tensors(f"audio/{name}.pipeline16k.safetensors")
        ref = next(iter(ref16k.values())).astype(np.float32).reshape(-1)
        want = asr.transcribe((ref, 16000))[0]
        got = asr.transcribe([path, open(path, "rb").read(), (samples, rate)])
        for g in got:
            assert g.raw == want.raw, name
            assert g.duration == pytest.approx(len(ref) / 16000, abs=1e-3)


def test_language_and_context_options(asr):
    a = clip("speech_3p0s")
    forced = asr.transcribe((a, 16000), language="english")[0]
    assert forced.language == "English"
    both = asr.transcribe([(a, 16000), (a, 16000)], language=["English", None])
    assert both[0].text == forced.text
    assert both[1].text == asr.transcribe((a, 16000))[0].text
    short = asr.transcribe((a, 16000), max_new_tokens=2)[0]
    assert len(short.raw) <= len(forced.raw)
    assert set(asr.get_supported_languages()) >= {"English", "Chinese"}


def test_errors_are_exceptions(asr):
    with pytest.raises(FileNotFoundError, match="no_such_file"):
        asr.transcribe("/nonexistent/no_such_file.wav")
    with pytest.raises((qs.AudioError, ValueError)):
        asr.transcribe((np.zeros(0, dtype=np.float32), 16000))
    with pytest.raises(qs.AudioError):
        asr.transcribe(b"this is not audio at all" * 10)
    with pytest.raises(ValueError, match="(?i)klingon"):
        asr.transcribe((clip("speech_3p0s"), 16000), language="Klingon")
    with pytest.raises(ValueError, match="aligner"):
        asr.transcribe((clip("speech_3p0s"), 16000), return_time_stamps=True)
    with pytest.raises(ValueError, match="sample rate"):
        asr.transcribe(clip("speech_3p0s"))
    with pytest.raises(ValueError, match="positive"):
        asr.transcribe((clip("speech_3p0s"), 0))
    with pytest.raises(ValueError, match="URL"):
        asr.transcribe("https://example.com/a.wav")
    with pytest.raises(ValueError, match="Batch size mismatch"):
        asr.transcribe([(clip("speech_3p0s"), 16000)] * 2, context=["a", "b", "c"])
    with pytest.raises(TypeError):
        asr.transcribe(12345)
    with pytest.raises(qs.ModelError):
        qs.Qwen3ASRModel.from_pretrained(fixture("audio"), device="cpu")
    with pytest.raises(ValueError, match="device"):
        qs.Qwen3ASRModel.from_pretrained(fixture("asr-tiny"), device="tpu")
    with pytest.raises(TypeError, match="bogus"):
        qs.Qwen3ASRModel.from_pretrained(fixture("asr-tiny"), bogus=1)
    # One bad input among several names itself and does not hide the error type.
    with pytest.raises(FileNotFoundError, match="one of the inputs"):
        asr.transcribe([(clip("speech_3p0s"), 16000), "/nonexistent/x.wav"])
    # The model still works.
    assert asr.transcribe((clip("speech_3p0s"), 16000))[0].raw


def test_word_timestamps_with_the_aligner():
    m = qs.Qwen3ASRModel.from_pretrained(
        fixture("asr-tiny"),
        forced_aligner=fixture("aligner-tiny"),
        max_new_tokens=32,
        attention="full",
        device="cpu",
    )
    a = clip("speech_5p3s")
    r = m.transcribe((a, 16000), language="English", return_time_stamps=True)[0]
    assert isinstance(r.time_stamps, qs.ForcedAlignResult)
    plain = m.transcribe((a, 16000), language="English")[0]
    assert plain.time_stamps is None and plain.text == r.text
    if r.text.strip() and not r.warnings:
        assert len(r.time_stamps) > 0
    prev = 0.0
    for it in r.time_stamps:
        assert 0.0 <= it.start_time <= it.end_time <= r.duration + 1e-6
        assert it.start_time >= prev - 1e-9
        prev = it.start_time
        # The char span points at the word's characters in the transcript.
        assert 0 <= it.char_start <= it.char_end <= len(r.text)
