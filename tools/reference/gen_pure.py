"""Table-driven fixtures for the reference's pure functions (no model).

Writes tests/fixtures/asr-tiny/expected/pure_functions.json.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from common import FIXTURES, dump_json, import_qwen_asr


def _call(fn, *a, **k) -> Dict[str, Any]:
    try:
        return {"output": fn(*a, **k)}
    except Exception as e:  # record the error type the reference raises
        return {"error": type(e).__name__, "message": str(e)}


REPETITION_INPUTS: List[str] = [
    "",
    "a",
    "hello world",
    "a" * 20,
    "a" * 21,
    "a" * 25 + "b",
    "x" + "a" * 20 + "y" * 19,
    "a" * 20 + "b" * 20,
    "a" * 40,
    "hello " + "ab" * 25 + "end",
    "ab" * 19 + "cd",
    "ab" * 20,
    "ab" * 20 + "a",
    "abc" * 20 + "x" * 5,
    "abc" * 19 + "ab" + "abc" * 5,
    "0123456789abcdefghij" * 20,
    "0123456789abcdefghijk" * 20,
    "the " * 25 + "end",
    "language English<asr_text>" + "the " * 30,
    "哈" * 30,
    "你好" * 20 + "。",
    "😀" * 21 + "!",
    "e\u0301" * 25,
    "na " * 10 + "batman " * 22,
    "abab" * 5 + "cdcd" * 30 + "xyz" * 25,
    "x" * 39,
    "x" * 19 + "y" + "x" * 20,
    "I think " * 3 + "yes" * 30 + " no" * 21 + " done",
    "aaaaaaaaaaaaaaaaaaaaa" + "bc" * 21,
]

PARSE_INPUTS: List[Any] = [
    None,
    "",
    "   ",
    "language English<asr_text>Hello world.",
    "language Chinese<asr_text>甚至出现交易几乎停滞的情况。",
    "language None<asr_text>",
    "language None<asr_text>   some text  ",
    "LANGUAGE NONE<asr_text>x",
    "no tag here",
    "  plain text with spaces  ",
    "language english<asr_text>  lower case name ",
    "language cHINese<asr_text>x",
    "Language English<asr_text>capitalised prefix",
    "language   <asr_text>empty name",
    "language<asr_text>no space",
    "\n\nlanguage French\n<asr_text>Bonjour",
    "foo\nlanguage German\nbar<asr_text>text",
    "foo\nbar<asr_text>text",
    "language English<asr_text>a<asr_text>b",
    "language English",
    "<asr_text>only text",
    "language Englishxx<asr_text>t",
    "prefix language none suffix<asr_text>t",
    "language English<asr_text>" + "ha" * 30,
    "language English<asr_text>" + "a" * 25,
    "\u3000language Japanese<asr_text>こんにちは\u3000",
    "language English\u2028<asr_text>x",
    "language Korean\x1c<asr_text>안녕",
    "language Thai\x85<asr_text>y",
    "language Chinese\r\n<asr_text>z",
    "language English<asr_text>\n\tline1\nline2\t\n",
    "language english, chinese<asr_text>mixed",
    "language <non_speech><asr_text>",
]

LANG_INPUTS = ["english", "cHINese", "  french ", "ENGLISH", "e", "", "   ", None, "new zealand",
               "ßa", "ǆemal", "İSTANBUL", "klingon", "Chinese", "中文"]  # fmt: skip

MERGE_INPUTS = [
    [],
    [""],
    ["Chinese"],
    ["Chinese", "English", "English", "", "Chinese"],
    ["English", "English", "English"],
    ["", "", "English", "", "English"],
    ["  English ", "English", None, "French"],
    ["Chinese", "Chinese,English"],
]

LENGTHS_T = [1, 7, 8, 9, 16, 17, 50, 99, 100, 101, 199, 200, 201, 234, 300, 530, 1234, 3000, 30017]

FIX_TIMESTAMP_INPUTS = [
    [80, 4000, 160, 240],
    [80, 160, 0, 400],
    [500, 80, 160],
    [5, 3],
    [80, 160, 240, 320, 0, 0, 0, 800, 880, 960],
    [0, 0, 0, 0],
    [400, 320, 240, 160, 80],
    [80, 160, 80, 160, 240, 0, 320],
    [1000, 80, 160, 240, 9999, 320, 400, 0, 0, 480],
    [80],
]


# ----------------------------------------------------------------------------
# split_audio_into_chunks on synthetic, exactly reproducible audio
# ----------------------------------------------------------------------------


def synth(length: int, segments: List[List[float]], base: float) -> np.ndarray:
    """x[n] = A(n) * (+1 if (n // 8) % 2 == 0 else -1); A = base except inside
    [start, end) segments. All values are exact in float32."""
    n = np.arange(length)
    sign = np.where((n // 8) % 2 == 0, 1.0, -1.0)
    amp = np.full(length, base, dtype=np.float64)
    for s, e, a in segments:
        amp[int(s) : int(e)] = a
    return (amp * sign).astype(np.float32)


SPLIT_CASES = [
    dict(name="dips_25s", length=400000, base=0.5, segments=[[115200, 118400, 0.0625], [262400, 265600, 0.0625]],
         max_chunk_sec=10.0),
    dict(name="constant_25s_ties", length=400000, base=0.5, segments=[], max_chunk_sec=10.0),
    dict(name="silent_tail_10p2s_padded", length=163200, base=0.5, segments=[[161600, 163200, 0.0]],
         max_chunk_sec=10.0),
    dict(name="all_zero_10s_plus_100", length=160100, base=0.0, segments=[], max_chunk_sec=10.0),
    dict(name="exactly_max_10s", length=160000, base=0.5, segments=[], max_chunk_sec=10.0),
    dict(name="short_0p1s_not_padded", length=1600, base=0.5, segments=[], max_chunk_sec=10.0),
    # max_chunk_sec <= search_expand_sec: the search window starts at the chunk start, and a
    # quiet spot right there yields 1-sample chunks (each zero-padded to 8000 samples).
    dict(name="quirk_one_sample_chunks", length=108002, base=0.5, segments=[[60000, 60003, 0.0]],
         max_chunk_sec=3.0),
]  # fmt: skip


def split_case(case: Dict[str, Any]) -> Dict[str, Any]:
    from qwen_asr.inference.utils import split_audio_into_chunks

    wav = synth(case["length"], case["segments"], case["base"])
    parts = split_audio_into_chunks(wav, 16000, case["max_chunk_sec"])
    chunks = []
    for i, (c, off) in enumerate(parts):
        start = int(round(off * 16000))
        end = int(round(parts[i + 1][1] * 16000)) if i + 1 < len(parts) else case["length"]
        n = end - start
        assert np.array_equal(c[:n], wav[start:end]), case["name"]
        assert c.shape[0] == max(n, 8000) if len(parts) > 1 else c.shape[0] == n, case["name"]
        assert not np.any(c[n:]), case["name"]
        chunks.append({"start": start, "end": end, "padded_length": int(c.shape[0]), "offset_sec": off})
    return {
        **{k: case[k] for k in ["name", "length", "base", "segments", "max_chunk_sec"]},
        "sha256_f32le": hashlib.sha256(wav.astype("<f4").tobytes()).hexdigest(),
        "chunks": chunks,
    }


def main(fixtures: Path = FIXTURES) -> Dict[str, Any]:
    import torch

    import_qwen_asr()
    from qwen_asr.core.transformers_backend.processing_qwen3_asr import _get_feat_extract_output_lengths
    from qwen_asr.inference import utils as U
    from qwen_asr.inference.qwen3_forced_aligner import Qwen3ForceAlignProcessor

    doc: Dict[str, Any] = {
        "description": "Outputs of qwen_asr 0.0.6 pure functions (qwen_asr/inference/utils.py unless noted). "
        "'error' entries record the exception type the reference raises.",
    }
    doc["SUPPORTED_LANGUAGES"] = list(U.SUPPORTED_LANGUAGES)
    doc["constants"] = {
        "SAMPLE_RATE": U.SAMPLE_RATE,
        "MAX_ASR_INPUT_SECONDS": U.MAX_ASR_INPUT_SECONDS,
        "MAX_FORCE_ALIGN_INPUT_SECONDS": U.MAX_FORCE_ALIGN_INPUT_SECONDS,
        "MIN_ASR_INPUT_SECONDS": U.MIN_ASR_INPUT_SECONDS,
    }
    doc["detect_and_fix_repetitions"] = [
        {"input": s, "threshold": 20, **_call(U.detect_and_fix_repetitions, s)} for s in REPETITION_INPUTS
    ] + [
        {"input": s, "threshold": 3, **_call(U.detect_and_fix_repetitions, s, threshold=3)}
        for s in ["abababab", "aaaa", "xyzxyzxyzq", "ab"]
    ]
    parse = []
    for raw in PARSE_INPUTS:
        for forced in [None, "English"]:
            r = _call(U.parse_asr_output, raw, user_language=forced)
            if "output" in r:
                r["output"] = list(r["output"])
            parse.append({"raw": raw, "user_language": forced, **r})
    doc["parse_asr_output"] = parse
    norm = []
    for s in LANG_INPUTS:
        r = _call(U.normalize_language_name, s)
        if "output" in r:
            v = _call(U.validate_language, r["output"])
            r["supported"] = "error" not in v
        norm.append({"input": s, **r})
    doc["normalize_language_name"] = norm
    doc["merge_languages"] = [{"input": x, **_call(U.merge_languages, x)} for x in MERGE_INPUTS]
    doc["feat_extract_output_lengths"] = {
        "function": "processing_qwen3_asr._get_feat_extract_output_lengths",
        "cases": [{"T": t, "N": int(_get_feat_extract_output_lengths(torch.tensor(t)))} for t in LENGTHS_T],
    }
    doc["split_audio_into_chunks"] = {
        "function": "split_audio_into_chunks(wav, 16000, max_chunk_sec) (search_expand_sec=5, min_window_ms=100)",
        "signal": "x[n] = A(n) * (+1 if (n // 8) % 2 == 0 else -1) as float32; A(n) = base, or the amplitude of "
        "the [start, end, amplitude] segment containing n",
        "chunk_fields": "start/end: sample range of the original audio; padded_length: length of the returned "
        "array (chunks shorter than 8000 samples are zero-padded when the audio was split); offset_sec: as returned",
        "cases": [split_case(c) for c in SPLIT_CASES],
    }
    fa = Qwen3ForceAlignProcessor()
    doc["fix_timestamp"] = {
        "function": "qwen3_forced_aligner.Qwen3ForceAlignProcessor.fix_timestamp(np.float32 array of ms)",
        "cases": [{"input": x, **_call(fa.fix_timestamp, np.asarray(x, dtype=np.float32))} for x in FIX_TIMESTAMP_INPUTS],
    }
    dump_json(fixtures / "asr-tiny" / "expected" / "pure_functions.json", doc)
    return {k: (len(v) if isinstance(v, list) else "ok") for k, v in doc.items() if k != "description"}
