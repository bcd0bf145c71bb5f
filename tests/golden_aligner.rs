//! The forced aligner against the reference on the tiny aligner checkpoint (float32): prompt
//! ids, timestamp positions, head logits at those positions (1e-4 relative), argmax classes,
//! the monotonic repair and the final word times, for every recorded case, with the encoder in
//! full attention (what the transformers backend computes) and in windows; batches against the
//! reference's batch-size-1 results; and the checks `align` adds (language, empty text, length).

mod common;

use candle_core::{DType, Device};
use common::*;
use qwen3_speech::ModelDir;
use qwen3_speech::aligner::text::Word;
use qwen3_speech::aligner::{ForcedAligner, WordTiming};
use qwen3_speech::models::asr::EncoderAttention;

fn aligner() -> ForcedAligner {
    ForcedAligner::load(
        &ModelDir::open(fixture("aligner-tiny")).unwrap(),
        &Device::Cpu,
        DType::F32,
    )
    .unwrap()
}

fn cases() -> serde_json::Value {
    load_json("aligner-tiny/expected/aligner_cases.json")
}

fn waveform(case: &serde_json::Value) -> Vec<f32> {
    let file = case["waveform_file"].as_str().unwrap();
    to_f32_vec(&load_tensors(&format!("aligner-tiny/expected/{file}"))["waveform"])
}

fn words_of(case: &serde_json::Value) -> Vec<Word> {
    case["word_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| Word {
            text: w.as_str().unwrap().to_string(),
            span: 0..0,
        })
        .collect()
}

fn check_items(what: &str, got: &[WordTiming], items: &serde_json::Value) {
    let items = items.as_array().unwrap();
    assert_eq!(got.len(), items.len(), "{what}: number of items");
    for (g, e) in got.iter().zip(items) {
        assert_eq!(g.text, e["text"].as_str().unwrap(), "{what}");
        assert_eq!(
            g.start,
            e["start_time"].as_f64().unwrap(),
            "{what}: start of {}",
            g.text
        );
        assert_eq!(
            g.end,
            e["end_time"].as_f64().unwrap(),
            "{what}: end of {}",
            g.text
        );
    }
}

#[test]
fn every_case_matches_the_reference() {
    let a = aligner();
    let all = cases();
    let cases = all["cases"].as_object().unwrap();
    assert!(cases.len() >= 10);
    for (name, case) in cases {
        let wave = waveform(case);
        let words = words_of(case);
        let t = load_tensors(&format!(
            "aligner-tiny/expected/{}",
            case["tensor_file"].as_str().unwrap()
        ));

        let d = a
            .align_words(&wave, &words, EncoderAttention::Full)
            .unwrap();
        assert_eq!(
            d.prompt,
            json_ids(&case["prompt_ids"]),
            "{name}: prompt ids"
        );
        let pos: Vec<u64> = d.timestamp_positions.iter().map(|&p| p as u64).collect();
        let exp_pos: Vec<u64> = json_ids(&case["ts_positions"])
            .iter()
            .map(|&p| p as u64)
            .collect();
        assert_eq!(pos, exp_pos, "{name}: timestamp positions");
        assert_close(
            &format!("{name} timestamp logits"),
            &d.timestamp_logits,
            &t["ts_logits"],
            1e-4,
        );
        assert_eq!(d.classes, json_ids(&case["ts_classes"]), "{name}: classes");
        let fixed: Vec<i64> = case["ts_ms_fixed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        assert_eq!(d.ms_fixed, fixed, "{name}: repaired ms");
        check_items(name, &d.words, &case["items"]);

        // The windowed encoder (what flash-attention / vLLM compute).
        let w = &case["windowed_encoder"];
        if w.is_object() {
            let dw = a
                .align_words(&wave, &words, EncoderAttention::Windowed)
                .unwrap();
            assert_close(
                &format!("{name} windowed logits"),
                &dw.timestamp_logits,
                &t["windowed_ts_logits"],
                1e-4,
            );
            assert_eq!(
                dw.classes,
                json_ids(&w["ts_classes"]),
                "{name}: windowed classes"
            );
            check_items(&format!("{name} windowed"), &dw.words, &w["items"]);
        }
    }
}

#[test]
fn batches_equal_the_reference_batch_size_one_results() {
    let a = aligner();
    let all = cases();
    for (name, batch) in all["batches"].as_object().unwrap() {
        for (i, member) in batch["members"].as_array().unwrap().iter().enumerate() {
            let case = &all["cases"][member.as_str().unwrap()];
            let d = a
                .align_words(&waveform(case), &words_of(case), EncoderAttention::Full)
                .unwrap();
            check_items(&format!("{name}[{i}]"), &d.words, &case["items"]);
            let t = load_tensors(&format!("aligner-tiny/expected/align_{name}.safetensors"));
            // The reference's own batch gives the same classes (its logits differ a little).
            assert_eq!(
                d.classes,
                to_u32_vec(&t[&format!("item{i}_ts_classes")]),
                "{name}[{i}]"
            );
        }
    }
}

#[test]
fn align_checks_language_text_and_length() {
    let a = aligner();
    let all = cases();
    let en = &all["cases"]["en_punct_apostrophe"];
    let wave = waveform(en);
    // Text in, words and times out, as the reference for a supported language.
    let got = a
        .align(
            &wave,
            en["text"].as_str().unwrap(),
            "english",
            EncoderAttention::Full,
        )
        .unwrap();
    check_items("align() english", &got, &en["items"]);
    // Spans point back into the text: "Quilter's" is the second word.
    let text = en["text"].as_str().unwrap();
    assert_eq!(&text[got[1].span.clone()], "Quilter's");

    let err = a
        .align(&wave, "hello", "Klingon", EncoderAttention::Full)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("does not support 'Klingon'") && err.contains("Japanese"),
        "{err}"
    );
    let err = a
        .align(&wave, " ,.!? ", "en", EncoderAttention::Full)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no words"), "{err}");
    let long = &all["cases"]["multi_window_8p4s"];
    let err = a
        .align(
            &waveform(long),
            long["text"].as_str().unwrap(),
            "English",
            EncoderAttention::Full,
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("only within 5.1 s"), "{err}");
    assert!(
        a.align(&wave[..150], "hello", "en", EncoderAttention::Full)
            .is_err()
    );
    assert!((a.max_seconds() - 64.0 * 0.08).abs() < 1e-9);
}
