"""StreamingTranscriber against the reference's streaming_transcribe on the tiny model."""

import numpy as np
import pytest

import qwen3_speech as qs
from conftest import fixture, load_json, load_tensors


def audio_of(case):
    t = load_tensors("asr-real/waveforms.safetensors")
    a = np.concatenate([t[c].astype(np.float32).reshape(-1) for c in case["clips"]])
    assert a.size == case["num_samples"]
    return a


def streamer(case, source):
    init = case["init"]
    return qs.StreamingTranscriber(
        source,
        chunk_seconds=init["chunk_size_sec"],
        unfixed_chunks=init["unfixed_chunk_num"],
        rollback_tokens=init["unfixed_token_num"],
        language=init["language"],
        context=init["context"],
        max_new_tokens=32,
        **({} if isinstance(source, qs.Qwen3ASRModel) else {"device": "cpu", "dtype": "f32"}),
    )


@pytest.mark.parametrize("name", ["demo_1s_forced_german_context", "odd_chunk_forced_spanish"])
def test_events_match_the_reference(name, asr):
    doc = load_json("asr-stream/streaming.json")
    case = next(c for c in doc["cases"] if c["name"] == name)
    audio = audio_of(case)
    st = streamer(case, fixture("asr-tiny") if name.startswith("demo") else asr)
    events = []
    pos = 0
    for n in case["push_sizes"]:
        events.extend(st.push(audio[pos : pos + n], 16000))
        pos += n
    events.append(st.finish())
    steps = case["steps"]
    decodes = len(events) if case["finish_decoded"] else len(events) - 1
    assert decodes == len(steps)
    for k, (e, s) in enumerate(zip(events, steps)):
        assert isinstance(e, qs.StreamEvent)
        assert round(e.audio_seconds * 16000) == s["samples"], k
        assert e.raw == s["raw_decoded"], k
        assert (e.language, e.text) == tuple(s["parsed"]), k
        assert e.fixed + e.unfixed == e.text
    last = events[-1]
    assert last.is_final and last.fixed == last.text
    assert (last.language, last.text) == (case["final"]["language"], case["final"]["text"])
    assert st.text == last.text

    # The iterator API and int16 input: reset, then the same stream as int16 pieces gives the
    # same events as the float pieces quantised the same way.
    pcm = np.clip(np.round(audio * 32767), -32768, 32767).astype(np.int16)
    st.reset()
    a = list(st.transcribe_iter(np.array_split(pcm, 7), 16000))
    st.reset()
    b = list(st.transcribe_iter(np.array_split(pcm.astype(np.float32) / 32768.0, 7), 16000))
    assert [e.text for e in a] == [e.text for e in b] and a[-1].is_final


def test_rates_and_errors(asr):
    st = asr.stream(chunk_seconds=1.0, max_new_tokens=4)
    t = load_tensors("asr-real/waveforms.safetensors")
    a = t["en_16k.wav"].astype(np.float32).reshape(-1)[:32000]
    x48 = np.repeat(a, 3)  # crude 48 kHz version: only the rate handling is checked here
    events = st.push(x48, 48000)
    assert all(isinstance(e, qs.StreamEvent) for e in events)
    # Received audio at 16 kHz, minus what the resampler still holds.
    assert 1.5 < st.audio_seconds <= 2.0
    with pytest.raises(ValueError, match="48000 Hz"):
        st.push(a, 16000)
    final = st.finish()
    assert final.is_final
    st.reset()
    with pytest.raises(ValueError, match="sample_rate"):
        st.finish(a)
    e = st.finish(a, 16000)
    assert e.is_final
    with pytest.raises(ValueError):
        asr.stream(chunk_seconds=0)
    with pytest.raises(ValueError, match="mode"):
        asr.stream(mode="sideways")


def test_long_streams_are_cut_into_segments(asr):
    doc = load_json("asr-stream/streaming.json")
    case = next(c for c in doc["cases"] if c["name"] == "demo_1s_forced_german_context")
    audio = audio_of(case)
    st = asr.stream(chunk_seconds=1.0, max_new_tokens=8, max_segment_seconds=3.0)
    events = st.push(audio, 16000) + [st.finish()]
    closed = [e for e in events if e.segment_closed]
    assert len(closed) >= 2
    assert [e.segment for e in events] == sorted(e.segment for e in events)
    assert events[-1].segment == len(closed)
    for e in closed:
        # A closed segment's text is settled and stays the start of the transcript.
        assert e.unfixed == "" and e.fixed == e.text
        assert events[-1].text.startswith(e.text)
    unbounded = asr.stream(chunk_seconds=1.0, max_new_tokens=8, max_segment_seconds=None)
    events = unbounded.push(audio, 16000) + [unbounded.finish()]
    assert not any(e.segment_closed for e in events) and events[-1].segment == 0
    with pytest.raises(ValueError, match="max_segment_seconds"):
        asr.stream(chunk_seconds=1.0, max_segment_seconds=0.5)
