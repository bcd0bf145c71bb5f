"""Qwen3ForcedAligner against the reference's recorded align() results."""

import numpy as np
import pytest

import qwen3_speech as qs
from conftest import fixture, load_json, load_tensors


@pytest.fixture(scope="module")
def aligner():
    return qs.Qwen3ForcedAligner.from_pretrained(
        fixture("aligner-tiny"), attention="full", device="cpu", dtype="float32"
    )


def wave(case):
    t = load_tensors(f"aligner-tiny/expected/{case['waveform_file']}")
    return t["waveform"].astype(np.float32)


def test_items_match_the_reference(aligner):
    cases = load_json("aligner-tiny/expected/aligner_cases.json")["cases"]
    checked = 0
    for name, case in cases.items():
        if case["duration_s"] > aligner.max_seconds:
            # Beyond the tiny aligner's range (the reference returns clamped times; here it is
            # a clear error, checked below).
            with pytest.raises(ValueError, match="split"):
                aligner.align((wave(case), 16000), case["text"], case["language"])
            continue
        if not case["items"] or case["language"] == "Japanese":
            # Empty/punctuation-only texts are errors here (below); Japanese words come from
            # nagisa in the reference and from TinySegmenter here, so the word lists can differ.
            continue
        (res,) = aligner.align((wave(case), 16000), case["text"], case["language"])
        got = [(it.text, it.start_time, it.end_time) for it in res]
        want = [(it["text"], it["start_time"], it["end_time"]) for it in case["items"]]
        assert got == want, name
        for it in res:
            assert case["text"][it.char_start : it.char_end].strip()
        checked += 1
    assert checked >= 6


def test_batches_and_errors(aligner):
    cases = load_json("aligner-tiny/expected/aligner_cases.json")["cases"]
    c = cases["en_punct_apostrophe"]
    w = wave(c)
    one = aligner.align((w, 16000), c["text"], "English")
    two = aligner.align([(w, 16000), (w.astype(np.float64), 16000)], [c["text"]] * 2, "English")
    assert len(two) == 2 and two[0].items == one[0].items == two[1].items
    with pytest.raises(ValueError, match="(?i)klingon"):
        aligner.align((w, 16000), "hello", "Klingon")
    with pytest.raises(ValueError, match="empty"):
        aligner.align((w, 16000), "   ", "English")
    with pytest.raises(ValueError, match="Batch size mismatch"):
        aligner.align([(w, 16000)] * 2, ["a"], "English")
    assert aligner.max_seconds > 0
    assert "English" in aligner.get_supported_languages()
