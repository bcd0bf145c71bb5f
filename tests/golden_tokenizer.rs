//! The Qwen2 BPE tokenizer against transformers' `Qwen2TokenizerFast`: the real Qwen2
//! vocabulary (rebuilt from llama.cpp's GGUF) and the reduced vocabulary of the tiny checkpoints,
//! on multilingual text (CJK, kana, Hangul, Arabic, Devanagari with combining marks, emoji with
//! ZWJ, NFD accents, camelCase, digit and whitespace runs, special tokens), decoding with and
//! without special tokens, partial UTF-8, the ASR prompt and published model outputs.

mod common;

use common::*;
use qwen3_speech::engine::tokenizer::{PreTokenizerRegex, Tokenizer};

fn check_cases(dir: &str, regex: PreTokenizerRegex) -> usize {
    let tok = Tokenizer::from_dir_with(&fixture(dir), regex).unwrap();
    let cases = load_json(&format!("{dir}/cases.json"));
    let mut checked = 0;
    for case in cases["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let text = case["text"].as_str().unwrap();
        let expected = match (regex, case.get("ids_mistral_regex")) {
            (PreTokenizerRegex::Mistral, Some(m)) => json_ids(m),
            _ => json_ids(&case["ids"]),
        };
        let ids = tok.encode(text).unwrap();
        assert_eq!(ids, expected, "{dir} {regex:?}: encode '{name}'");
        assert_eq!(
            tok.decode(&ids, false).unwrap(),
            case["decode"].as_str().unwrap(),
            "{dir}: decode '{name}'"
        );
        assert_eq!(
            tok.decode(&ids, true).unwrap(),
            case["decode_skip_special"].as_str().unwrap(),
            "{dir}: decode skipping specials '{name}'"
        );
        checked += 1;
    }
    for case in cases["partial_utf8_decode"].as_array().unwrap() {
        let ids = json_ids(&case["ids"]);
        assert_eq!(
            tok.decode(&ids, false).unwrap(),
            case["decode"].as_str().unwrap(),
            "{dir}: partial utf-8 {ids:?}"
        );
        assert_eq!(
            tok.decode(&ids, true).unwrap(),
            case["decode_skip_special"].as_str().unwrap(),
            "{dir}: partial utf-8 skipping specials {ids:?}"
        );
    }
    checked
}

#[test]
fn real_qwen2_vocabulary_matches_transformers() {
    assert!(check_cases("tokenizer/qwen2", PreTokenizerRegex::Qwen2) >= 40);
}

#[test]
fn mistral_regex_variant_matches_transformers_fix_mistral_regex() {
    check_cases("tokenizer/qwen2", PreTokenizerRegex::Mistral);
}

#[test]
fn tiny_vocabulary_matches_transformers() {
    assert!(check_cases("tokenizer/tiny", PreTokenizerRegex::Qwen2) >= 40);
}

#[test]
fn tokenizer_json_and_vocab_merges_agree() {
    // The tiny folder has both forms; build each and compare on every case.
    let dir = fixture("tokenizer/tiny");
    let from_json = Tokenizer::from_dir(&dir).unwrap();
    let from_parts = Tokenizer::from_files(
        &dir.join("vocab.json"),
        &dir.join("merges.txt"),
        Some(&dir.join("tokenizer_config.json")),
        PreTokenizerRegex::Qwen2,
    )
    .unwrap();
    let cases = load_json("tokenizer/tiny/cases.json");
    for case in cases["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        assert_eq!(
            from_json.encode(text).unwrap(),
            from_parts.encode(text).unwrap(),
            "{text:?}"
        );
    }
}

#[test]
fn asr_prompt_and_published_outputs_with_the_real_vocabulary() {
    let tok = Tokenizer::from_dir(&fixture("tokenizer/qwen2")).unwrap();
    let cases = load_json("tokenizer/qwen2/cases.json");
    let prompts = &cases["asr_prompts_real_vocab"];
    let n = prompts["num_audio_tokens"].as_u64().unwrap() as usize;
    let special = qwen3_speech::models::asr::prompt::SpecialTokens::from_tokenizer(
        &tok,
        tok.require_token("<|audio_pad|>").unwrap(),
    )
    .unwrap();
    for case in prompts["cases"].as_array().unwrap() {
        let context = case["context"].as_str().unwrap();
        let language = case["language"].as_str();
        let ids =
            qwen3_speech::models::asr::prompt::build_prompt(&tok, &special, context, language, n)
                .unwrap();
        assert_eq!(
            ids,
            json_ids(&case["ids_qwen2_regex"]),
            "prompt {context:?} {language:?}"
        );
    }
    for out in cases["known_output_ids"].as_array().unwrap() {
        let ids = json_ids(&out["ids"]);
        assert_eq!(
            tok.decode(&ids, false).unwrap(),
            out["decode"].as_str().unwrap()
        );
        let raw = tok.decode(&ids, true).unwrap();
        assert_eq!(raw, out["decode_skip_special"].as_str().unwrap());
        if let Some(parsed) = out.get("parsed") {
            let (l, t) = qwen3_speech::models::asr::text::parse_asr_output(&raw, None);
            assert_eq!(l, parsed[0].as_str().unwrap());
            assert_eq!(t, parsed[1].as_str().unwrap());
        }
    }
}
