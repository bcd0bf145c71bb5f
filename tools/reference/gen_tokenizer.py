"""Tokenizer fixtures.

* tests/fixtures/tokenizer/qwen2/ : the real Qwen2 byte-level BPE (vocab.json +
  merges.txt) rebuilt from llama.cpp's ggml-vocab-qwen2.gguf, plus a
  tokenizer_config.json in the Qwen3-ASR released layout (added tokens at their
  real ids).
* tests/fixtures/tokenizer/tiny/  : the reduced tokenizer used by the tiny
  checkpoints (256 byte tokens + the first TINY_MERGES merges, specials appended).
* cases.json in both folders: encode/decode goldens from transformers.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Tuple

from common import FIXTURES, GGUF_VOCAB, check_equal, dump_json, import_qwen_asr

# Number of real merges kept by the tiny tokenizer.  256 + 2000 regular tokens
# + 63 added tokens = 2319 ids, embedding rows padded to 2368 (= 37 * 64).
TINY_MERGES = 2000
REAL_FIRST_ADDED = 151643  # <|endoftext|>

# (content, special) for ids 151643.. in order, as in the released
# Qwen3-ASR / Qwen3-ForcedAligner tokenizer_config.json.
ADDED_TOKENS: List[Tuple[str, bool]] = (
    [
        ("<|endoftext|>", True),
        ("<|im_start|>", True),
        ("<|im_end|>", True),
        ("<|object_ref_start|>", True),
        ("<|object_ref_end|>", True),
        ("<|box_start|>", True),
        ("<|box_end|>", True),
        ("<|quad_start|>", True),
        ("<|quad_end|>", True),
        ("<|vision_start|>", True),
        ("<|vision_end|>", True),
        ("<|vision_pad|>", True),
        ("<|image_pad|>", True),
        ("<|video_pad|>", True),
        ("<tool_call>", False),
        ("</tool_call>", False),
        ("<|fim_prefix|>", False),
        ("<|fim_middle|>", False),
        ("<|fim_suffix|>", False),
        ("<|fim_pad|>", False),
        ("<|repo_name|>", False),
        ("<|file_sep|>", False),
        ("<tool_response>", False),
        ("</tool_response>", False),
        ("<think>", False),
        ("</think>", False),
        ("<|audio_start|>", True),
        ("<|audio_end|>", True),
        ("<tts_pad>", True),
        ("<tts_text_bos>", True),
        ("<tts_text_eod>", True),
        ("<tts_text_bos_single>", True),
        ("<non_speech>", False),
        ("<|audio_pad|>", True),
    ]
    + [(f"<blank{i}>", True) for i in range(1, 28)]
    + [("<asr_text>", False), ("<timestamp>", False)]
)
assert len(ADDED_TOKENS) == 151706 - 151643

ADDITIONAL_SPECIAL_TOKENS = [
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<|audio_start|>",
    "<|audio_end|>",
    "<tts_pad>",
    "<tts_text_bos>",
    "<tts_text_bos_single>",
    "<|audio_pad|>",
]

QWEN2_REGEX = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
MISTRAL_REGEX = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"


def added_token_ids(first_added: int) -> Dict[str, int]:
    return {content: first_added + i for i, (content, _) in enumerate(ADDED_TOKENS)}


# ---------------------------------------------------------------------------
# GGUF
# ---------------------------------------------------------------------------


def read_gguf_vocab(path: Path = GGUF_VOCAB) -> Tuple[List[str], List[int], List[str]]:
    import gguf

    r = gguf.GGUFReader(str(path))

    def arr(key):
        f = r.fields[key]
        return [f.parts[i] for i in f.data]

    tokens = [bytes(p).decode("utf-8") for p in arr("tokenizer.ggml.tokens")]
    types = [int(p[0]) for p in arr("tokenizer.ggml.token_type")]
    merges = [bytes(p).decode("utf-8") for p in arr("tokenizer.ggml.merges")]
    pre = bytes(r.fields["tokenizer.ggml.pre"].parts[r.fields["tokenizer.ggml.pre"].data[0]]).decode()
    check_equal("gguf pre-tokenizer", pre, "qwen2")
    # Regular tokens are the first 151643 (type 1 = normal); merge i creates token 256+i.
    n_regular = REAL_FIRST_ADDED
    assert all(t == 1 for t in types[:n_regular]), "unexpected non-normal token below 151643"
    check_equal("gguf <|endoftext|>", tokens[151643], "<|endoftext|>")
    check_equal("gguf <|im_start|>", tokens[151644], "<|im_start|>")
    check_equal("gguf <|im_end|>", tokens[151645], "<|im_end|>")
    check_equal("gguf merge count", len(merges), n_regular - 256)
    for i, m in enumerate(merges):
        a, b = m.split(" ")
        if tokens[256 + i] != a + b:
            raise AssertionError(f"merge {i} does not produce token {256 + i}")
    return tokens[:n_regular], types, merges


# ---------------------------------------------------------------------------
# Writing a tokenizer folder
# ---------------------------------------------------------------------------


def tokenizer_config(first_added: int) -> Dict[str, Any]:
    """tokenizer_config.json in the Qwen3-ASR released layout."""
    added = {}
    for i, (content, special) in enumerate(ADDED_TOKENS):
        added[str(first_added + i)] = {
            "content": content,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": special,
        }
    return {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": added,
        "additional_special_tokens": list(ADDITIONAL_SPECIAL_TOKENS),
        "audio_bos_token": "<|audio_start|>",
        "audio_eos_token": "<|audio_end|>",
        "audio_token": "<|audio_pad|>",
        "bos_token": None,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "extra_special_tokens": {
            "audio_bos_token": "<|audio_start|>",
            "audio_eos_token": "<|audio_end|>",
            "audio_token": "<|audio_pad|>",
            "image_token": "<|image_pad|>",
            "video_token": "<|video_pad|>",
            "vision_bos_token": "<|vision_start|>",
            "vision_eos_token": "<|vision_end|>",
        },
        "image_token": "<|image_pad|>",
        "model_max_length": 131072,
        "pad_token": "<|endoftext|>",
        "processor_class": "Qwen3ASRProcessor",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
        "video_token": "<|video_pad|>",
        "vision_bos_token": "<|vision_start|>",
        "vision_eos_token": "<|vision_end|>",
    }


def write_tokenizer_files(out_dir: Path, regular_tokens: List[str], merges: List[str]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab = {tok: i for i, tok in enumerate(regular_tokens)}
    assert len(vocab) == len(regular_tokens)
    (out_dir / "vocab.json").write_text(
        json.dumps(vocab, ensure_ascii=False, separators=(",", ":")), encoding="utf-8"
    )
    (out_dir / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    dump_json(out_dir / "tokenizer_config.json", tokenizer_config(len(regular_tokens)))


def load_fast(path: Path, **kw):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path), **kw)


def pretokenizer_regex(tok) -> str:
    pre = json.loads(tok.backend_tokenizer.to_str())["pre_tokenizer"]
    assert pre["type"] == "Sequence", pre
    split = pre["pretokenizers"][0]
    assert split["type"] == "Split", split
    return split["pattern"]["Regex"]


def mistral_variant(tok):
    """Copy of `tok` with the pre-tokenizer regex swapped exactly as transformers
    4.57.x `_patch_mistral_regex` does when fix_mistral_regex=True applies."""
    import copy

    import tokenizers

    t2 = copy.deepcopy(tok)
    t2.backend_tokenizer.pre_tokenizer[0] = tokenizers.pre_tokenizers.Split(
        pattern=tokenizers.Regex(MISTRAL_REGEX), behavior="isolated"
    )
    return t2


# ---------------------------------------------------------------------------
# Test strings
# ---------------------------------------------------------------------------

ASR_PROMPT_EMPTY = (
    "<|im_start|>system\n<|im_end|>\n<|im_start|>user\n<|audio_start|><|audio_pad|><|audio_end|>"
    "<|im_end|>\n<|im_start|>assistant\n"
)

CASES: List[Tuple[str, str]] = [
    ("empty", ""),
    ("ascii_sentence", "Hello world"),
    ("ascii_leading_space", " Hello world"),
    ("ascii_punct", "Mr. Quilter is the apostle of the middle classes, and we are glad to welcome his gospel."),
    ("contractions", "I'm sure it's fine, they'll say we'd've DON'T 'S"),
    ("camel_case", "HelloWorld McDonald's iPhoneXS getHTTPResponseCode"),
    ("digits_run", "1234567890 3.14159 2024-01-31 1,000,000"),
    ("whitespace_runs", "a  b   c    d     e"),
    ("tabs_newlines", "line1\n\tline2\r\n\r\n  indented\n\n\n\tend \n"),
    ("trailing_spaces", "trailing   "),
    ("only_newlines", "\n\n\n"),
    ("chinese", "甚至出现交易几乎停滞的情况。"),
    ("chinese_mixed", "我用iPhone手机打电话给Bob，他说OK。"),
    ("japanese_kana", "こんにちは、カタカナとひらがな。東京に行きます。"),
    ("korean", "안녕하세요 반갑습니다. 한국어 음성 인식"),
    ("arabic", "مرحبا بالعالم، كيف حالك؟"),
    ("hindi_combining", "नमस्ते दुनिया, हिन्दी में बोलिए"),
    ("thai", "สวัสดีครับ ภาษาไทย"),
    ("russian", "Привет, как дела? Всё хорошо."),
    ("greek", "Καλημέρα κόσμε"),
    ("emoji_simple", "I love 🦙 and 🚀!"),
    ("emoji_zwj", "family 👨‍👩‍👧‍👦 flag 🏳️‍🌈 skin 👍🏽 ok"),
    ("accents_nfc", "café naïve résumé Ångström"),
    ("accents_nfd", "cafe\u0301 nai\u0308ve re\u0301sume\u0301 A\u030angstro\u0308m"),
    ("vietnamese", "Cửa Việt tiếng Việt"),
    ("symbols", "$100 & 50% off!!! (really?) [x] {y} <z> @user #tag ~~~"),
    ("url_path", "https://example.com/a/b?c=d&e=f path/to/file.txt"),
    ("code", "def f(x):\n    return x ** 2  # square\n"),
    ("asr_prompt_empty", ASR_PROMPT_EMPTY),
    (
        "asr_prompt_context",
        "<|im_start|>system\nHotwords: Qwen, candle, 张三<|im_end|>\n<|im_start|>user\n"
        "<|audio_start|><|audio_pad|><|audio_pad|><|audio_pad|><|audio_end|><|im_end|>\n<|im_start|>assistant\n",
    ),
    ("asr_prompt_forced", ASR_PROMPT_EMPTY + "language English<asr_text>"),
    ("asr_output", "language English<asr_text>Mr. Quilter is the apostle of the middle classes.<|im_end|>"),
    ("asr_text_inside", "before<asr_text>after <asr_text> again<timestamp><timestamp>"),
    ("non_speech", "<non_speech> hello <non_speech><|endoftext|>"),
    ("special_like_text", "<|im_start> <im_end|> <|unknown|> < asr_text >"),
    ("tts_specials", "<tts_pad><tts_text_bos>text<tts_text_eod><tts_text_bos_single>"),
    ("think_tool", "<think>reason</think><tool_call>{}</tool_call>"),
    ("fullwidth", "ＡＢＣ１２３！？　全角スペース"),
    ("control_chars", "a\u0000b\u0007c\u001bd\u007fe\u0085f\u00a0g\u2028h"),
    ("bytes_like", "\u00ff\u00fe\u0100\u0120\u010a\u00c4\u0120Ġ ĊĠ"),
    ("private_use_rare", "\ue000\U0001f9ff\U00020000\U0002a6d6 \u2603"),
    ("mixed_scripts", "Hola мир 世界 🌍 عالم नमस्ते"),
    ("long_word", "Pneumonoultramicroscopicsilicovolcanoconiosis antidisestablishmentarianism"),
]

# Strings whose ids are cut into prefixes to exercise U+FFFD on partial UTF-8.
CUT_STRINGS = [" 🦙", "👨‍👩‍👧", "नमस्ते", "\U00020000\U0002a6d6", "Ångström", "😶‍🌫️"]


def make_cases(tok, with_mistral: bool, extra_prefix: str = "") -> Dict[str, Any]:
    tok_m = mistral_variant(tok) if with_mistral else None
    out_cases = []
    n_diff = 0
    for name, text in CASES:
        ids = tok(text)["input_ids"]
        ids2 = tok.encode(text)
        check_equal(f"encode({name}) consistency", ids, ids2)
        entry: Dict[str, Any] = {
            "name": name,
            "text": text,
            "ids": ids,
            "tokens": tok.convert_ids_to_tokens(ids),
            "decode": tok.decode(ids, skip_special_tokens=False),
            "decode_skip_special": tok.decode(ids, skip_special_tokens=True),
        }
        if tok_m is not None:
            ids_m = tok_m(text)["input_ids"]
            if ids_m != ids:
                entry["ids_mistral_regex"] = ids_m
                n_diff += 1
        out_cases.append(entry)

    # Decoding of id lists that cut multi-byte characters.
    cut_cases = []
    for s in CUT_STRINGS:
        ids = tok.encode(s)
        for k in range(1, len(ids) + 1):
            cut_cases.append(
                {
                    "source_text": s,
                    "ids": ids[:k],
                    "decode": tok.decode(ids[:k], skip_special_tokens=False),
                    "decode_skip_special": tok.decode(ids[:k], skip_special_tokens=True),
                }
            )
    # Hand-made lists: a lone continuation byte, a lead byte followed by ASCII,
    # specials in the middle of an unfinished character.
    byte_tok = {c: tok.convert_tokens_to_ids(c) for c in ["Ã", "©", "ð", "Ł", "a", "Ġ"]}
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    asr_text = tok.convert_tokens_to_ids("<asr_text>")
    hand = [
        [byte_tok["©"]],  # 0xA9 alone: continuation byte
        [byte_tok["Ã"], byte_tok["©"]],  # 0xC3 0xA9 = é
        [byte_tok["Ã"], byte_tok["a"]],  # lead byte then ASCII
        [byte_tok["ð"], byte_tok["Ł"], byte_tok["Ġ"]],  # 0xF0 0x9F then space
        [byte_tok["Ã"], im_end, byte_tok["©"]],  # special between the two bytes
        [byte_tok["Ã"], asr_text, byte_tok["©"]],  # non-special added token between
    ]
    for ids in hand:
        cut_cases.append(
            {
                "source_text": None,
                "ids": ids,
                "decode": tok.decode(ids, skip_special_tokens=False),
                "decode_skip_special": tok.decode(ids, skip_special_tokens=True),
            }
        )
    return {"cases": out_cases, "partial_utf8_decode": cut_cases, "n_cases_mistral_differs": n_diff}


# Greedy output ids of the real Qwen3-ASR-0.6B on asr_en.wav / asr_zh.wav (HF test fixture, asr.md §5.4).
KNOWN_OUTPUT_IDS = {
    "asr_en_0.6b": [11528, 6364, 151704, 12275, 13, 3406, 2044, 374, 279, 38471, 273, 315, 279, 6149, 6846, 11,
                    323, 582, 525, 15713, 311, 10565, 806, 41482, 13, 151645],
    "asr_zh_0.6b": [11528, 8453, 151704, 100636, 100347, 99886, 100740, 118083, 102072, 1773, 151645],
}  # fmt: skip


def known_output_decodes(tok) -> List[Dict[str, Any]]:
    import_qwen_asr()
    from qwen_asr.inference.utils import parse_asr_output

    out = []
    for name, ids in KNOWN_OUTPUT_IDS.items():
        raw = tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        out.append(
            {
                "name": name,
                "ids": ids,
                "decode": tok.decode(ids, skip_special_tokens=False),
                "decode_skip_special": raw,
                "parse_asr_output": list(parse_asr_output(raw)),
                "reencode_ids": tok.encode(raw),
            }
        )
    check_equal("zh golden text", out[1]["parse_asr_output"], ["Chinese", "甚至出现交易几乎停滞的情况。"])
    return out


def run_llama_cpp_tests(tok) -> int:
    inp = (GGUF_VOCAB.parent / (GGUF_VOCAB.name + ".inp")).read_text(encoding="utf-8")
    out = (GGUF_VOCAB.parent / (GGUF_VOCAB.name + ".out")).read_text(encoding="utf-8")
    texts = inp.split("\n__ggml_vocab_test__\n")[:-1]
    lines = out.split("\n")[: len(texts)]
    assert len(texts) == len(lines) and len(texts) > 40
    for t, line in zip(texts, lines):
        want = [int(x) for x in line.split()]
        got = tok.encode(t, add_special_tokens=False)
        if got != want:
            raise AssertionError(f"llama.cpp tokenizer test failed for {t!r}: {got} != {want}")
    return len(texts)


# ---------------------------------------------------------------------------
# Regex actually used by the reference loaders
# ---------------------------------------------------------------------------


def probe_reference_regex(qwen2_dir: Path) -> Dict[str, Any]:
    """Which pre-tokenizer regex does each loading path of the reference get?"""
    from common import import_qwen_asr

    import_qwen_asr()
    from transformers import AutoProcessor

    from gen_asr_tiny import released_like_config_json, write_processor_side_files

    res: Dict[str, Any] = {}
    tok_plain = load_fast(qwen2_dir)
    res["AutoTokenizer(qwen2_dir) [no config.json]"] = regex_name(pretokenizer_regex(tok_plain))
    tok_fix = load_fast(qwen2_dir, fix_mistral_regex=True)
    res["AutoTokenizer(qwen2_dir, fix_mistral_regex=True) [no config.json]"] = regex_name(
        pretokenizer_regex(tok_fix)
    )
    with tempfile.TemporaryDirectory() as td:
        td = Path(td)
        for f in ["vocab.json", "merges.txt", "tokenizer_config.json"]:
            shutil.copy(qwen2_dir / f, td / f)
        cfg = released_like_config_json(real_sizes=True)
        dump_json(td / "config.json", cfg)
        write_processor_side_files(td)
        p = AutoProcessor.from_pretrained(str(td), fix_mistral_regex=True)
        res[
            "AutoProcessor(local real-vocab ASR folder, fix_mistral_regex=True) [qwen_asr Qwen3ASRModel.from_pretrained path; config transformers_version 4.57.6]"
        ] = regex_name(pretokenizer_regex(p.tokenizer))
        p2 = AutoProcessor.from_pretrained(str(td))
        res["AutoProcessor(local real-vocab ASR folder) [no flag]"] = regex_name(pretokenizer_regex(p2.tokenizer))
        prompts = real_vocab_prompts(p2, p)
    return res, prompts


def real_vocab_prompts(proc_qwen2, proc_mistral) -> Dict[str, Any]:
    """ASR prompt ids with the real vocabulary, rendered by the reference
    (Qwen3ASRModel._build_text_prompt + Qwen3ASRProcessor) for a 2.34 s clip."""
    import numpy as np

    from qwen_asr.inference.qwen3_asr import Qwen3ASRModel

    wav = np.zeros(37440, dtype=np.float32)  # 2.34 s -> T=234 -> N=31 (asr.md §2.3)
    out = {"num_samples": 37440, "num_audio_tokens": 31, "cases": []}
    for ctx, lang in [("", None), ("", "English"), ("Hotwords: McDonald's, iPhoneXS, नमस्ते", None),
                      ("甚至出现交易几乎停滞的情况。", "Chinese")]:  # fmt: skip
        entry = {"context": ctx, "language": lang}
        for tag, proc in [("qwen2_regex", proc_qwen2), ("mistral_regex", proc_mistral)]:
            api = Qwen3ASRModel(backend="vllm", model=None, processor=proc)
            text = api._build_text_prompt(context=ctx, force_language=lang)
            ids = proc(text=[text], audio=[wav], return_tensors="pt", padding=True)["input_ids"][0].tolist()
            entry["prompt_text"] = text
            entry[f"ids_{tag}"] = ids
        out["cases"].append(entry)
    want = [151644, 8948, 198, 151645, 198, 151644, 872, 198, 151669] + [151676] * 31 + [
        151670, 151645, 198, 151644, 77091, 198]  # fmt: skip
    check_equal("real-vocab empty-context prompt ids (asr.md §5.3)", out["cases"][0]["ids_qwen2_regex"], want)
    check_equal("forced suffix", out["cases"][1]["ids_qwen2_regex"][len(want):], [11528, 6364, 151704])
    return out


def regex_name(r: str) -> str:
    if r == QWEN2_REGEX:
        return "qwen2"
    if r == MISTRAL_REGEX:
        return "mistral"
    return "other:" + r


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def tiny_vocab(tokens: List[str], merges: List[str], k: int = TINY_MERGES):
    return tokens[: 256 + k], merges[:k]


def main(fixtures: Path = FIXTURES) -> Dict[str, Any]:
    tokens, _types, merges = read_gguf_vocab()
    report: Dict[str, Any] = {}

    # ---- real Qwen2 tokenizer ------------------------------------------------
    qdir = fixtures / "tokenizer" / "qwen2"
    write_tokenizer_files(qdir, tokens, merges)
    tok = load_fast(qdir)
    assert type(tok).__name__ == "Qwen2TokenizerFast", type(tok)
    check_equal("qwen2 len(tokenizer)", len(tok), 151706)
    check_equal("qwen2 vocab_size", tok.vocab_size, 151643)
    for content, tid in added_token_ids(REAL_FIRST_ADDED).items():
        check_equal(f"qwen2 id of {content}", tok.convert_tokens_to_ids(content), tid)
    check_equal("qwen2 eos", (tok.eos_token, tok.eos_token_id), ("<|im_end|>", 151645))
    check_equal("qwen2 pad", (tok.pad_token, tok.pad_token_id), ("<|endoftext|>", 151643))
    check_equal("qwen2 bos", tok.bos_token, None)
    check_equal("qwen2 regex", pretokenizer_regex(tok), QWEN2_REGEX)
    # Known ids from the digest (§5.1 / §5.4).
    for text, want in [
        ("system", [8948]),
        ("user", [872]),
        ("assistant", [77091]),
        ("\n", [198]),
        ("language", [11528]),
        (" English", [6364]),
        (" Chinese", [8453]),
    ]:
        check_equal(f"qwen2 encode {text!r}", tok.encode(text), want)
    n_llama = run_llama_cpp_tests(tok)
    cases = make_cases(tok, with_mistral=True)
    cases["tokenizer_dir"] = "tests/fixtures/tokenizer/qwen2"
    cases["loaded_with"] = "transformers.AutoTokenizer.from_pretrained(dir) (Qwen2TokenizerFast, converted from vocab.json+merges.txt)"
    cases["pretokenizer_regex_used"] = "qwen2"
    cases["regexes"] = {"qwen2": QWEN2_REGEX, "mistral": MISTRAL_REGEX}
    cases["note"] = (
        "ids = tokenizer(text)['input_ids'] (add_special_tokens default: Qwen2 adds nothing). "
        "decode = tokenizer.decode(ids, skip_special_tokens=False|True), clean_up_tokenization_spaces=False (config). "
        "ids_mistral_regex is present only where the Mistral regex (swapped in by fix_mistral_regex=True "
        "when the reference loads a local real-vocab checkpoint) gives different ids."
    )
    cases["reference_regex_by_loading_path"], cases["asr_prompts_real_vocab"] = probe_reference_regex(qdir)
    cases["known_output_ids"] = known_output_decodes(tok)
    dump_json(fixtures / "tokenizer" / "qwen2" / "cases.json", cases)
    for f in ["vocab.json", "merges.txt", "tokenizer_config.json", "cases.json"]:
        size = (qdir / f).stat().st_size
        assert size < 5 * 1024 * 1024, f"{f} too big: {size}"
    report["qwen2"] = {
        "regular_tokens": len(tokens),
        "merges": len(merges),
        "llama_cpp_cases_passed": n_llama,
        "cases": len(cases["cases"]),
        "cases_mistral_differs": cases["n_cases_mistral_differs"],
        "reference_regex_by_loading_path": cases["reference_regex_by_loading_path"],
    }

    # ---- tiny tokenizer ------------------------------------------------------
    tdir = fixtures / "tokenizer" / "tiny"
    t_tokens, t_merges = tiny_vocab(tokens, merges)
    write_tokenizer_files(tdir, t_tokens, t_merges)
    ttok = load_fast(tdir)
    first = len(t_tokens)
    check_equal("tiny len", len(ttok), first + len(ADDED_TOKENS))
    for content, tid in added_token_ids(first).items():
        check_equal(f"tiny id of {content}", ttok.convert_tokens_to_ids(content), tid)
    check_equal("tiny regex", pretokenizer_regex(ttok), QWEN2_REGEX)
    # tokenizer.json for the `tokenizers` crate (same behaviour as vocab+merges).
    ttok.backend_tokenizer.save(str(tdir / "tokenizer.json"))
    from tokenizers import Tokenizer

    raw = Tokenizer.from_file(str(tdir / "tokenizer.json"))
    tcases = make_cases(ttok, with_mistral=True)
    for c in tcases["cases"]:
        check_equal(f"tiny tokenizer.json encode {c['name']}", raw.encode(c["text"]).ids, c["ids"])
    # Sanity: every tiny encoding decodes back to NFC(text) (byte-level BPE is lossless).
    import unicodedata

    for c in tcases["cases"]:
        check_equal(f"tiny roundtrip {c['name']}", c["decode"], unicodedata.normalize("NFC", c["text"]))
    tcases["tokenizer_dir"] = "tests/fixtures/tokenizer/tiny"
    tcases["loaded_with"] = cases["loaded_with"]
    tcases["pretokenizer_regex_used"] = "qwen2"
    tcases["regexes"] = cases["regexes"]
    tcases["note"] = cases["note"] + (
        " The tiny vocabulary is below transformers' 100000-token threshold, so the reference never "
        "applies the Mistral patch to it; ids_mistral_regex is informational."
    )
    tcases["special_token_ids"] = added_token_ids(first)
    tcases["tiny_layout"] = {
        "regular_tokens": len(t_tokens),
        "merges": len(t_merges),
        "first_added_id": first,
        "added_tokens": len(ADDED_TOKENS),
        "total_ids": first + len(ADDED_TOKENS),
        "derivation": f"real Qwen2 ids 0..{len(t_tokens) - 1} (256 byte tokens + first {len(t_merges)} merges, "
        "merge i creates token 256+i) and the 63 added tokens of ids 151643..151705 in the same order, "
        f"renumbered to {first}..{first + len(ADDED_TOKENS) - 1}",
    }
    dump_json(tdir / "cases.json", tcases)
    report["tiny"] = tcases["tiny_layout"] | {"cases": len(tcases["cases"])}
    return report


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from common import setup_determinism

    setup_determinism()
    print(json.dumps(main(), indent=1, ensure_ascii=False))
