"""Model-free aligner tables: writes tests/fixtures/aligner-tiny/expected/aligner_pure.json.

Everything is an output of qwen_asr 0.0.6 `Qwen3ForceAlignProcessor` (or of the libraries it
calls: soynlp `LTokenizer`, `nagisa.tagging`), run on fixed inputs:
- per character: general category, is_kept_char, is_cjk_char (range edges, marks, digits, ...);
- clean_token and the word lists of every segmentation path on ~35 strings;
- the Korean LTokenizer raw splits (before cleaning) with the dictionary hits;
- nagisa words / POS tags and the cleaned Japanese word lists;
- fix_timestamp on ~30 sequences;
- facts about assets/korean_dict_jieba.dict (sha256, lines, licence situation);
- the length limits of align() / transcribe(return_time_stamps=True).
"""

from __future__ import annotations

import hashlib
import sys
import unicodedata
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from common import FIXTURES, check_equal, dump_json, import_qwen_asr

SEG_STRINGS: List[str] = [
    "Mr. Quilter's gospel, isn't it?",
    "don't",
    "café-au-lait",
    "नमस्ते दुनिया",
    "今天天气很好。",
    "我用iPhone手机",
    "中文English混合123数字，还有标点！",
    "안녕하세요 반갑습니다.",
    "カタカナとひらがな、東京に行きます。",
    "hello",
    "",
    "   \t\n ",
    "... !? —",
    "Ext A 㐀㐁 B 𠀀𠀁 C 𪜀 D 𫝀 E 𫠠 F 𬺰 G 𰀀",
    "compat 豈更 radicals ⺀⼀ ideographic 〇々〆ー",
    "12 34.5 ¹²³ ½ Ⅻ ① ٣ x²+y²=z²",
    "emoji 😀👍🏽 ok 🇺🇸 a👨‍👩‍👧b",
    "e\u0301cole nai\u0308ve cafe\u0301",
    "ｶﾀｶﾅ ＡＢＣ１２３",
    "Привет, мир! Всё хорошо.",
    "مرحبا بالعالم، كيف حالك؟",
    "สวัสดีครับ ภาษาไทย",
    "tab\tseparated\nnew line\u3000ideographic\u00a0nbsp\u2028ls",
    "rock'n'roll ‘quoted’ “double” O’Neil ʼokina",
    "under_score hy-phen slash/sep email@x.com #tag",
    "Ǆemal ǅ ß ẞ ǈ",
    "안녕 세계",
    "Cửa Việt / Vie\u0323\u0302t",
    "ㄱㄴㄷ ㅏㅑ",
    "zero\u200bwidth joiner\u200d soft\u00adhyphen",
    "COVID-19 3.14 1,000 v2.0",
    "你好world你好",
    "'quoted' '' '",
    "ﾊﾝｶｸ ｶﾞｷﾞ",
    "İstanbul ŞİŞLİ",
]

CHAR_PROBES: List[int] = [
    0x27, 0x2019, 0x02BC, 0x5F, 0x2D, 0x30, 0xB2, 0xBD, 0x2160, 0x2460, 0x663, 0x301, 0x902, 0x93E, 0x94D,
    0xE31, 0x200B, 0x200D, 0xAD, 0x3000, 0xA0, 0x1F600, 0x1F3FD, 0x1F1FA, 0x3005, 0x3006, 0x3007, 0x30FC,
    0x3041, 0x30A1, 0xFF76, 0xFF9E, 0x1100, 0x3131, 0xAC00, 0xD7A3, 0x2E80, 0x2F00, 0x33FF, 0x3400, 0x4DBF,
    0x4DC0, 0x4DFF, 0x4E00, 0x9FA5, 0x9FFF, 0xA000, 0xF8FF, 0xF900, 0xFAD9, 0xFAFF, 0xFB00, 0x1FFFF, 0x20000,
    0x2A6DF, 0x2A6E0, 0x2A6FF, 0x2A700, 0x2B739, 0x2B73F, 0x2B740, 0x2B81D, 0x2B81F, 0x2B820, 0x2CEA1,
    0x2CEAF, 0x2CEB0, 0x2F800, 0x30000, 0x1C4, 0x1C5, 0x2B0, 0x10400, 0x1D7CE,
]  # fmt: skip

KOREAN_STRINGS: List[str] = [
    "안녕하세요 반갑습니다.",
    "안녕",
    "안녕,",
    "안녕하세요안녕하세요",
    "대한민국의 수도는 서울입니다",
    "한국어 음성 인식",
    "저는 학생입니다.",
    "오늘 날씨가 좋네요!",
    "iPhone을 샀어요",
    "abc abcd xyz",
    "ㅋㅋㅋ 진짜 ㅡㅡ해튼",
    "서울특별시 강남구",
    "中国어 日本語",
    "123번 버스",
    "",
    "   ",
    "...!?",
    "Hello world",
]

JAPANESE_STRINGS: List[str] = [
    "カタカナとひらがな、東京に行きます。",
    "今日はいい天気ですね。",
    "ｶﾀｶﾅ　ＡＢＣ１２３ です",
    "İstanbul です  ",
    "私はiPhoneを使っています",
    "吾輩は猫である。名前はまだ無い。",
    "１２３４５円です",
    "「こんにちは」と言った",
    "",
    "   ",
    "ー〜…！？",
    "Hello world",
]

FIX_TIMESTAMP_INPUTS: List[List[float]] = [
    # asr.md §8 examples
    [80, 4000, 160, 240],
    [80, 160, 0, 400],
    [500, 80, 160],
    [5, 3],
    [80, 160, 240, 320, 0, 0, 0, 800, 880, 960],
    # edge cases
    [80],
    [0, 0],
    [0, 0, 0, 0],
    [400, 320, 240, 160, 80],
    [80, 160, 80, 160, 240, 0, 320],
    [1000, 80, 160, 240, 9999, 320, 400, 0, 0, 480],
    # abnormal runs of length 1, 2 and 3 with both neighbours
    [0, 80, 9000, 240, 320],
    [0, 80, 9000, 9000, 320, 400],
    [0, 80, 9000, 9000, 9000, 400, 480],
    # long abnormal run at the start / at the end (one neighbour only)
    [4000, 4000, 4000, 4000, 80, 160, 240, 320, 400],
    [80, 160, 240, 320, 400, 0, 0, 0, 0, 0, 0],
    [80, 160, 240, 320, 400, 0, 0],
    [800, 720, 80, 160],
    # run of 3 with fractional interpolation (truncated by int())
    [0, 0, 5000, 5000, 5000, 80, 80],
    [100, 900, 800, 700, 600, 200, 300],
    # ties and plateaus (LIS is non-decreasing; first parent wins)
    [160, 160, 80, 160, 160, 80, 240],
    [240, 80, 240, 80, 240, 80],
    [80, 80, 80, 0, 80, 80],
    # two equally long LIS candidates
    [300, 400, 100, 200],
    [2, 1, 4, 3, 6, 5],
    # float inputs (the reference passes float32 class*80 values)
    [0.5, 80.25, 79.75, 160.5],
    [1000.0, 2000.0, 100.0, 200.0, 300.0, 400.0, 3000.0],
]

EMPTY_FIX_INPUT: List[float] = []


def random_fix_inputs() -> List[List[float]]:
    """Monotone class*80 sequences with injected abnormal runs (seeded)."""
    rng = np.random.default_rng(20240716)
    out = []
    for n in [12, 16, 20, 24, 30, 40]:
        base = np.sort(rng.integers(0, 64, size=n))
        seq = base.copy()
        start = int(rng.integers(0, n - 5))
        run = int(rng.integers(1, 6))
        seq[start : start + run] = rng.integers(0, 64, size=run)
        # a second isolated outlier
        k = int(rng.integers(0, n))
        seq[k] = 63 - seq[k]
        out.append([float(v * 80) for v in seq])
    for n in [8, 16, 32]:  # fully random classes
        out.append([float(v * 80) for v in rng.integers(0, 64, size=n)])
    return out


def _call(fn, *a, **k) -> Dict[str, Any]:
    try:
        return {"output": fn(*a, **k)}
    except Exception as e:  # noqa: BLE001 - record the exception the reference raises
        return {"error": type(e).__name__, "message": str(e)}


def char_table(fa) -> List[Dict[str, Any]]:
    rows = []
    for cp in CHAR_PROBES:
        ch = chr(cp)
        rows.append({
            "codepoint": f"U+{cp:04X}",
            "char": ch,
            "category": unicodedata.category(ch),
            "is_kept_char": fa.is_kept_char(ch),
            "is_cjk_char": fa.is_cjk_char(ch),
        })  # fmt: skip
    return rows


def segmentation_table(fa) -> List[Dict[str, Any]]:
    import nagisa

    rows = []
    for s in SEG_STRINGS:
        ko_raw = fa.ko_tokenizer.tokenize(s)
        r = {
            "text": s,
            "clean_token": fa.clean_token(s),
            "split_whitespace": s.split(),
            "space_lang": fa.tokenize_space_lang(s),
            "korean": fa.tokenize_korean(fa.ko_tokenizer, s),
            "korean_raw_ltokenizer": ko_raw,
            "japanese": fa.tokenize_japanese(s),
            "nagisa_words": list(nagisa.tagging(s).words),
            "tokenize_chinese_mixed_unused": fa.tokenize_chinese_mixed(s),
        }
        # encode_timestamp dispatch: language.lower() == "japanese" / "korean" / anything else
        for lang, key in [("English", "space_lang"), ("Chinese", "space_lang"), ("cantonese", "space_lang"),
                          ("KOREAN", "korean"), ("Japanese", "japanese")]:  # fmt: skip
            words, _ = fa.encode_timestamp(s, lang)
            check_equal(f"encode_timestamp({s!r}, {lang})", words, r[key])
        words, input_text = fa.encode_timestamp(s, "English")
        r["encode_timestamp_english_input_text"] = input_text
        rows.append(r)
    return rows


def korean_table(fa) -> List[Dict[str, Any]]:
    rows = []
    for s in KOREAN_STRINGS:
        per_token = []
        for tok in s.split():
            hits = [tok[:e] for e in range(2, len(tok) + 1) if tok[:e] in fa.ko_score]
            per_token.append({"token": tok, "length": len(tok), "prefix_dict_hits": hits,
                              "split": list(fa.ko_tokenizer.tokenize(tok))})  # fmt: skip
        rows.append({
            "text": s,
            "ltokenizer_raw": fa.ko_tokenizer.tokenize(s),
            "per_token": per_token,
            "word_list": fa.tokenize_korean(fa.ko_tokenizer, s),
        })  # fmt: skip
    return rows


def japanese_table(fa) -> List[Dict[str, Any]]:
    import nagisa

    rows = []
    for s in JAPANESE_STRINGS:
        t = nagisa.tagging(s)
        rows.append({
            "text": s,
            "nagisa_words": list(t.words),
            "nagisa_postags": list(t.postags),
            "word_list": fa.tokenize_japanese(s),
            "nfkc": unicodedata.normalize("NFKC", s),
        })  # fmt: skip
    return rows


def fix_table(fa) -> Dict[str, Any]:
    cases = []
    for x in FIX_TIMESTAMP_INPUTS + random_fix_inputs():
        arr = np.asarray(x, dtype=np.float32)
        r = _call(fa.fix_timestamp, arr)
        cases.append({"input": [float(v) for v in arr.tolist()], **r})
    empty = _call(fa.fix_timestamp, np.asarray(EMPTY_FIX_INPUT, dtype=np.float32))
    # parse_timestamp pairs values (2i, 2i+1) per word; extra values are ignored.
    pt = fa.parse_timestamp(["a", "b"], np.asarray([80, 160, 0, 400, 480, 560], dtype=np.float32))
    return {
        "function": "Qwen3ForceAlignProcessor.fix_timestamp(np.float32 array of ms) -> List[int]",
        "cases": cases,
        "empty_input": {"input": [], **empty},
        "parse_timestamp_example": {"word_list": ["a", "b"], "timestamp": [80, 160, 0, 400, 480, 560],
                                    "output": pt},  # fmt: skip
    }


def korean_dict_facts(fa) -> Dict[str, Any]:
    import qwen_asr.inference.qwen3_forced_aligner as m

    path = Path(m.__file__).parent / "assets" / "korean_dict_jieba.dict"
    data = path.read_bytes()
    lines = data.decode("utf-8").splitlines()
    fields = [ln.split() for ln in lines if ln.strip()]
    words = [f[0] for f in fields]
    third = sorted({tuple(f[1:]) for f in fields})
    pkg = Path(m.__file__).parents[1]
    lic_files = sorted(str(p.relative_to(pkg.parent)) for p in pkg.parent.rglob("*")
                       if p.is_file() and any(k in p.name.lower() for k in ["licen", "notice", "copying"])
                       and "qwen_asr" in str(p))  # fmt: skip
    # Does any text in the package mention the dictionary's origin?
    mentions = []
    for p in pkg.rglob("*.py"):
        t = p.read_text(encoding="utf-8", errors="replace")
        if "korean_dict" in t or "jieba" in t:
            mentions.append(str(p.relative_to(pkg.parent)))
    from importlib.metadata import metadata

    md = metadata("qwen-asr")
    try:
        soy = metadata("soynlp")
        soy_lic = {"License": soy.get("License"),
                   "classifiers": [c for c in soy.get_all("Classifier") or [] if "License" in c]}  # fmt: skip
    except Exception:  # pragma: no cover
        soy_lic = None
    try:
        nag = metadata("nagisa")
        nag_lic = {"License": nag.get("License"),
                   "classifiers": [c for c in nag.get_all("Classifier") or [] if "License" in c]}  # fmt: skip
    except Exception:  # pragma: no cover
        nag_lic = None
    return {
        "path_in_package": "qwen_asr/inference/assets/korean_dict_jieba.dict",
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "lines": len(lines),
        "non_empty_lines": len(fields),
        "unique_words": len(set(words)),
        "duplicate_word_lines": len(words) - len(set(words)),
        "fields_per_line": sorted({len(f) for f in fields}),
        "distinct_freq_tag_columns": [list(t) for t in third],
        "first_lines": lines[:3],
        "last_lines": lines[-3:],
        "loaded_scores": len(fa.ko_score),
        "how_used": "first whitespace-separated column of each non-empty (stripped) line -> score 1.0; "
        "soynlp LTokenizer(scores=...) default_score 0.0, tolerance 0.0",
        "licence": {
            "dict_file_header_or_own_licence": None,
            "package_licence": md.get("License"),
            "package_licence_files": lic_files,
            "files_mentioning_the_dict": mentions,
            "soynlp": soy_lic,
            "nagisa": nag_lic,
            "note": "The dictionary has no header, no licence text and no provenance note of its own; the "
            "only licence in the qwen-asr 0.0.6 wheel is the package's Apache-2.0 LICENSE "
            "(dist-info/licenses/LICENSE). The name suggests a jieba-format user dictionary "
            "('word freq tag', every line 'freq 10 tag x'). soynlp (the LTokenizer used with it) "
            "declares GPLv3 in its classifiers; nagisa declares MIT.",
        },
    }


def limits() -> Dict[str, Any]:
    from qwen_asr.inference import utils as U

    return {
        "MAX_FORCE_ALIGN_INPUT_SECONDS": U.MAX_FORCE_ALIGN_INPUT_SECONDS,
        "MAX_ASR_INPUT_SECONDS": U.MAX_ASR_INPUT_SECONDS,
        "align()": "no length limit and no chunking: the whole audio and the whole word list go through one "
        "thinker forward pass (one encoder pass per audio). Timestamps are class*timestamp_segment_time, "
        "so the largest representable time is (classify_num-1)*80 ms (399.92 s released, 5.04 s for the "
        "tiny aligner); audio beyond that cannot get later timestamps.",
        "transcribe(return_time_stamps=True)": "splits each audio with split_audio_into_chunks(max_chunk_sec="
        "MAX_FORCE_ALIGN_INPUT_SECONDS=180) instead of 1200 s, runs ASR per chunk, skips alignment for chunks "
        "whose text is empty after strip(), aligns the rest with the chunk's detected (or forced) language in "
        "batches of max_inference_batch_size, shifts every item by the chunk offset (round(t + offset, 3)) and "
        "concatenates the items; time_stamps is None when no chunk had text.",
        "timestamp_tokens": "2 per word (after each word); 2 for an empty word list (result: no items)",
    }


def main(fixtures: Path = FIXTURES) -> Dict[str, Any]:
    import_qwen_asr()
    from qwen_asr.inference.qwen3_forced_aligner import Qwen3ForceAlignProcessor
    from soynlp.tokenizer import LTokenizer

    fa = Qwen3ForceAlignProcessor()
    fa.ko_tokenizer = LTokenizer(scores=fa.ko_score)  # what encode_timestamp does lazily
    doc = {
        "description": "Outputs of qwen_asr 0.0.6 Qwen3ForceAlignProcessor (qwen_asr/inference/"
        "qwen3_forced_aligner.py) on fixed inputs. 'space_lang' = tokenize_space_lang (every language "
        "except japanese/korean, selected by language.lower()); 'korean' = tokenize_korean with soynlp "
        "LTokenizer(scores={dict word: 1.0}); 'japanese' = tokenize_japanese (nagisa.tagging(text).words, "
        "cleaned). tokenize_chinese_mixed is never called by the reference (recorded for completeness). "
        "Character classes use Python's unicodedata (see unicode_version).",
        "python_version": sys.version.split()[0],
        "unicode_version": unicodedata.unidata_version,
        "characters": char_table(fa),
        "segmentation": segmentation_table(fa),
        "korean_ltokenizer": korean_table(fa),
        "japanese_nagisa": japanese_table(fa),
        "fix_timestamp": fix_table(fa),
        "korean_dict": korean_dict_facts(fa),
        "limits": limits(),
    }
    out = fixtures / "aligner-tiny" / "expected" / "aligner_pure.json"
    dump_json(out, doc)
    assert out.stat().st_size < 1024 * 1024
    return {
        "segmentation_strings": len(doc["segmentation"]),
        "characters": len(doc["characters"]),
        "korean_strings": len(doc["korean_ltokenizer"]),
        "japanese_strings": len(doc["japanese_nagisa"]),
        "fix_timestamp_cases": len(doc["fix_timestamp"]["cases"]),
        "korean_dict_sha256": doc["korean_dict"]["sha256"],
        "korean_dict_lines": doc["korean_dict"]["lines"],
        "unicode_version": doc["unicode_version"],
    }
