//! Pure functions of the ASR pipeline against the reference's outputs (table-driven):
//! repetition repair, output parsing, language names, language merging, the encoder token
//! count, and the long-audio splitter on synthetic signals.

mod common;

use common::*;
use qwen3_speech::models::asr::lengths::audio_token_count;
use qwen3_speech::models::asr::split::split_audio_into_chunks;
use qwen3_speech::models::asr::text::{
    SUPPORTED_LANGUAGES, detect_and_fix_repetitions, merge_languages, normalize_language_name,
    parse_asr_output,
};

fn pure() -> serde_json::Value {
    load_json("asr-tiny/expected/pure_functions.json")
}

#[test]
fn supported_languages() {
    let p = pure();
    let expected: Vec<&str> = p["SUPPORTED_LANGUAGES"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(SUPPORTED_LANGUAGES.to_vec(), expected);
}

#[test]
fn repetition_repair() {
    let p = pure();
    let cases = p["detect_and_fix_repetitions"].as_array().unwrap();
    assert!(cases.len() > 20);
    for c in cases {
        let input = c["input"].as_str().unwrap();
        let t = c["threshold"].as_u64().unwrap() as usize;
        assert_eq!(
            detect_and_fix_repetitions(input, t),
            c["output"].as_str().unwrap(),
            "{input:?}"
        );
    }
}

#[test]
fn output_parsing() {
    let p = pure();
    for c in p["parse_asr_output"].as_array().unwrap() {
        let raw = c["raw"].as_str().unwrap_or("");
        let lang = c["user_language"].as_str();
        let (l, t) = parse_asr_output(raw, lang);
        assert_eq!(
            (l.as_str(), t.as_str()),
            (
                c["output"][0].as_str().unwrap(),
                c["output"][1].as_str().unwrap()
            ),
            "{raw:?} forced {lang:?}"
        );
    }
}

#[test]
fn language_names_and_merging() {
    let p = pure();
    for c in p["normalize_language_name"].as_array().unwrap() {
        let input = c["input"].as_str().unwrap_or("");
        match c.get("output") {
            Some(out) => {
                let got = normalize_language_name(input).unwrap();
                assert_eq!(got, out.as_str().unwrap(), "{input:?}");
                let supported = SUPPORTED_LANGUAGES.contains(&got.as_str());
                assert_eq!(supported, c["supported"].as_bool().unwrap(), "{input:?}");
            }
            None => assert!(
                normalize_language_name(input).is_err(),
                "{input:?} must be an error"
            ),
        }
    }
    for c in p["merge_languages"].as_array().unwrap() {
        let langs: Vec<String> = c["input"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap_or("").to_string())
            .collect();
        assert_eq!(
            merge_languages(&langs),
            c["output"].as_str().unwrap(),
            "{langs:?}"
        );
    }
}

#[test]
fn encoder_token_counts() {
    let p = pure();
    for c in p["feat_extract_output_lengths"]["cases"]
        .as_array()
        .unwrap()
    {
        let t = c["T"].as_u64().unwrap() as usize;
        assert_eq!(
            audio_token_count(t) as u64,
            c["N"].as_u64().unwrap(),
            "T={t}"
        );
    }
}

/// The splitter fixtures' signal: ±A(n) alternating every 8 samples.
fn synth(case: &serde_json::Value) -> Vec<f32> {
    let len = case["length"].as_u64().unwrap() as usize;
    let base = case["base"].as_f64().unwrap() as f32;
    let segs: Vec<(usize, usize, f32)> = case["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s[0].as_u64().unwrap() as usize,
                s[1].as_u64().unwrap() as usize,
                s[2].as_f64().unwrap() as f32,
            )
        })
        .collect();
    (0..len)
        .map(|n| {
            let a = segs
                .iter()
                .find(|(s, e, _)| (*s..*e).contains(&n))
                .map_or(base, |s| s.2);
            if (n / 8) % 2 == 0 { a } else { -a }
        })
        .collect()
}

#[test]
fn long_audio_splitter() {
    let p = pure();
    for case in p["split_audio_into_chunks"]["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let wav = synth(case);
        let max = case["max_chunk_sec"].as_f64().unwrap();
        let chunks = split_audio_into_chunks(&wav, 16000, max, 5.0, 100.0);
        let expected = case["chunks"].as_array().unwrap();
        assert_eq!(chunks.len(), expected.len(), "{name}: number of chunks");
        let mut start = 0usize;
        for (c, e) in chunks.iter().zip(expected) {
            assert_eq!(start as u64, e["start"].as_u64().unwrap(), "{name}: start");
            assert_eq!(
                (start + c.original_len) as u64,
                e["end"].as_u64().unwrap(),
                "{name}: end"
            );
            assert_eq!(
                c.samples.len() as u64,
                e["padded_length"].as_u64().unwrap(),
                "{name}: padded length"
            );
            assert!(
                (c.offset_sec - e["offset_sec"].as_f64().unwrap()).abs() < 1e-9,
                "{name}: offset"
            );
            start += c.original_len;
        }
        assert_eq!(start, wav.len(), "{name}: pieces cover the clip");
    }
}
