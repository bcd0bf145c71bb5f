"""Qwen3TTSModel against the reference's greedy codes and waveform; streaming; errors; the
speech tokenizer and the text tokenizer."""

import numpy as np
import pytest

import qwen3_speech as qs
from conftest import fixture, load_json, load_tensors

GREEDY = dict(do_sample=False, repetition_penalty=1.05)


def case(ckpt, name):
    return next(c for c in load_json(f"tts-tiny/{ckpt}/expected/cases.json")["cases"] if c["name"] == name)


def test_custom_voice_matches_the_reference_codes_and_waveform(tts_cv):
    c = case("custom_voice", "cv_ryan_en_stream")
    w = load_tensors("tts-tiny/custom_voice/expected/waveform.safetensors")
    inputs = c["inputs"]
    s = tts_cv.synthesize(
        inputs["text"],
        speaker=inputs["speaker"],
        language=inputs["language"],
        non_streaming_mode=inputs["non_streaming_mode"],
        max_new_tokens=c["settings"]["max_new_tokens"],
        **GREEDY,
    )
    codes = np.asarray(s.frames).reshape(-1)
    assert codes.tolist() == w["codes"].reshape(-1).astype(np.int64).tolist()
    assert s.sample_rate == 24000
    assert s.audio.dtype == np.float32 and s.audio.shape == w["wav"].reshape(-1).shape
    assert np.max(np.abs(s.audio - w["wav"].reshape(-1))) < 1e-4
    # The reference-style call returns ([wav], sr) with the same audio.
    wavs, sr = tts_cv.generate_custom_voice(
        inputs["text"],
        inputs["speaker"],
        inputs["language"],
        non_streaming_mode=False,
        max_new_tokens=12,
        **GREEDY,
    )
    assert sr == 24000 and len(wavs) == 1 and np.array_equal(wavs[0], s.audio)
    # Lists broadcast as in the reference.
    wavs, _ = tts_cv.generate_custom_voice(
        [inputs["text"], inputs["text"]], "ryan", "English", non_streaming_mode=False, max_new_tokens=12, **GREEDY
    )
    assert len(wavs) == 2 and np.array_equal(wavs[0], wavs[1])


def test_every_greedy_custom_voice_case(tts_cv):
    t = load_tensors("tts-tiny/custom_voice/expected/cases.safetensors")
    n = 0
    for c in load_json("tts-tiny/custom_voice/expected/cases.json")["cases"]:
        inp = c["inputs"]
        if (
            c["api"] != "generate_custom_voice"
            or c["batch"] != 1
            or c["name"].startswith("cv_sampled")
            or c.get("merged_generate_kwargs", {}).get("do_sample")
            or not isinstance(inp["text"], str)
            or not inp["text"]
            or inp.get("instruct")
        ):
            continue
        s = tts_cv.synthesize(
            inp["text"],
            speaker=inp["speaker"],
            language=inp.get("language"),
            non_streaming_mode=inp["non_streaming_mode"],
            max_new_tokens=c["settings"]["max_new_tokens"],
            do_sample=False,
            repetition_penalty=c.get("merged_generate_kwargs", {}).get("repetition_penalty", 1.05),
        )
        want = t[f"{c['name']}.codes.0"].astype(np.int64)
        assert np.array_equal(np.asarray(s.frames, dtype=np.int64).reshape(want.shape), want), c["name"]
        assert s.truncated == (c["samples"][0]["stop"] == "max_new_tokens"), c["name"]
        n += 1
    assert n >= 2


def test_streamed_chunks_equal_the_whole(tts_cv):
    kw = dict(speaker="Ryan", language="English", max_new_tokens=12, **GREEDY)
    whole = tts_cv.synthesize("Hello world, streaming.", **kw)
    with tts_cv.stream("Hello world, streaming.", first_chunk_frames=1, chunk_frames=2, **kw) as st:
        chunks = list(st)
        assert st.sample_rate == 24000
        assert st.frames == whole.frames and st.truncated == whole.truncated
    assert len(chunks) >= 2 and all(c.dtype == np.float32 for c in chunks)
    joined = np.concatenate(chunks)
    assert joined.shape == whole.audio.shape
    assert np.max(np.abs(joined - whole.audio)) < 1e-4
    # Closing early stops the worker; the model keeps working.
    st = tts_cv.stream("Hello world, streaming.", first_chunk_frames=1, chunk_frames=1, **kw)
    next(st)
    st.close()
    with pytest.raises(StopIteration):
        next(st)
    assert np.array_equal(tts_cv.synthesize("Hello world, streaming.", **kw).audio, whole.audio)


def test_voice_clone_matches_the_reference_length():
    m = qs.Qwen3TTSModel.from_pretrained(fixture("tts-tiny/base"), device="cpu")
    assert m.model_type == "base" and m.get_supported_speakers() is None
    ref = load_tensors("tts-tiny/base/expected/speaker.safetensors")["ref_wav"].astype(np.float32)
    c = case("base", "base_icl_stream_short")
    inp = c["inputs"]
    wavs, sr = m.generate_voice_clone(
        inp["text"],
        language=inp.get("language"),
        ref_audio=(ref, 24000),
        ref_text="This is the reference voice.",
        non_streaming_mode=inp["non_streaming_mode"],
        max_new_tokens=12,
        **GREEDY,
    )
    assert sr == 24000 and len(wavs[0]) == c["samples"][0]["wav_len"]
    # x-vector only: no transcript needed; int16 reference audio is accepted.
    pcm = (np.clip(ref, -1, 1) * 32767).astype(np.int16)
    wavs, _ = m.generate_voice_clone(
        "Hi.", language="English", ref_audio=(pcm, 24000), x_vector_only_mode=True, max_new_tokens=6, **GREEDY
    )
    assert wavs[0].size > 0
    with pytest.raises(ValueError, match="ref_text"):
        m.generate_voice_clone("Hi.", ref_audio=(ref, 24000))
    with pytest.raises(ValueError, match="custom_voice"):
        m.generate_custom_voice("Hi.", "ryan")


def test_voice_design():
    m = qs.Qwen3TTSModel.from_pretrained(fixture("tts-tiny/voice_design"), device="cpu")
    wavs, sr = m.generate_voice_design("Hello.", "A calm voice.", "English", max_new_tokens=6, **GREEDY)
    assert sr == 24000 and wavs[0].dtype == np.float32 and wavs[0].size > 0


def test_tts_errors(tts_cv):
    with pytest.raises(ValueError, match="(?i)unknown speaker"):
        tts_cv.generate_custom_voice("Hello.", "nobody_here", max_new_tokens=4)
    with pytest.raises(ValueError, match="(?i)klingon"):
        tts_cv.generate_custom_voice("Hello.", "ryan", "Klingon", max_new_tokens=4)
    with pytest.raises(ValueError, match="empty"):
        tts_cv.generate_custom_voice("", "ryan", max_new_tokens=4)
    with pytest.raises(TypeError, match="bogus"):
        tts_cv.generate_custom_voice("Hello.", "ryan", bogus=3)
    with pytest.raises(ValueError, match="voice_design"):
        tts_cv.generate_voice_design("Hello.", "calm")
    assert "ryan" in tts_cv.get_supported_speakers()
    assert "auto" in tts_cv.get_supported_languages()


def test_speech_tokenizer_matches_the_reference():
    tok = qs.Qwen3TTSTokenizer.from_pretrained(fixture("codec12-tiny"), device="cpu")
    assert tok.get_model_type() == "qwen3_tts_tokenizer_12hz"
    exp = load_tensors("codec12-tiny/expected/encode_synth.safetensors")
    wav = exp["waveform"].astype(np.float32)
    want = exp["codes"].astype(np.int64)
    assert want.shape[1] == tok.num_quantizers
    enc = tok.encode((wav, tok.get_input_sample_rate()))
    assert isinstance(enc, qs.EncodeOutput) and enc.audio_codes[0].dtype == np.int64
    assert np.array_equal(enc.audio_codes[0], want)
    # An array with sr= is the same input.
    assert np.array_equal(tok.encode(wav, sr=tok.get_input_sample_rate()).audio_codes[0], want)
    wavs, sr = tok.decode(enc)
    assert sr == tok.get_output_sample_rate() and wavs[0].dtype == np.float32
    assert np.max(np.abs(wavs[0] - exp["decoded"])) < 1e-3
    # The same codes as a plain array, a nested list or a dict decode the same.
    assert np.array_equal(tok.decode(want)[0][0], wavs[0])
    assert np.array_equal(tok.decode(want.tolist())[0][0], wavs[0])
    assert np.array_equal(tok.decode({"audio_codes": [want]})[0][0], wavs[0])
    with pytest.raises(ValueError):
        tok.decode(np.zeros((1, 1, 3), dtype=np.int64))
    with pytest.raises(ValueError):
        tok.decode(-np.ones((2, 4), dtype=np.int64))
    with pytest.raises(qs.ModelError):
        qs.Qwen3TTSTokenizer.from_pretrained(fixture("audio"))


def test_text_tokenizer_matches_the_reference():
    doc = load_json("tokenizer/tiny/cases.json")
    tok = qs.Tokenizer.from_pretrained(fixture("tokenizer/tiny"))
    for c in doc["cases"]:
        assert tok.encode(c["text"]) == c["ids"], c["name"]
        assert tok.decode(c["ids"]) == c["decode"], c["name"]
        assert tok.decode(c["ids"], skip_special_tokens=True) == c["decode_skip_special"], c["name"]
    assert len(doc["cases"]) >= 5
    assert tok.vocab_size > 0
    assert tok.id_to_token(tok.token_to_id("<|im_end|>")) == "<|im_end|>"


def test_single_codebook_model_renders_the_codec_speaker(tmp_path):
    """A 25 Hz checkpoint (tts-tiny/custom_voice edited to one code group, with the tiny 25 Hz
    tokenizer): a named speaker needs a recording of the voice for the 25 Hz decoder."""
    import json
    import shutil

    model = tmp_path / "model25"
    shutil.copytree(fixture("tts-tiny/custom_voice"), model)
    shutil.rmtree(model / "speech_tokenizer")
    shutil.copytree(fixture("codec25-tiny"), model / "speech_tokenizer")
    cfg = json.loads((model / "config.json").read_text())
    cfg["talker_config"]["num_code_groups"] = 1
    cfg["talker_config"]["code_predictor_config"]["num_code_groups"] = 1
    (model / "config.json").write_text(json.dumps(cfg))
    m = qs.Qwen3TTSModel.from_pretrained(str(model), device="cpu")
    kw = dict(speaker="Ryan", language="English", do_sample=False, max_new_tokens=5)
    with pytest.raises(ValueError, match="codec_speaker"):
        m.synthesize("Hello world.", **kw)
    voice = fixture("audio/float32_22k_mono.wav")
    s = m.synthesize("Hello world.", codec_speaker=voice, **kw)
    assert all(len(f) == 1 for f in s.frames) and 1 <= len(s.frames) <= 4
    assert s.audio.dtype == np.float32 and s.audio.size > 0
    wavs, sr = m.generate_custom_voice("Hello world.", codec_speaker=voice, **kw)
    assert sr == s.sample_rate and np.array_equal(wavs[0], s.audio)
