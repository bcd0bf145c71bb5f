//! Qwen3-ASR end to end on the tiny checkpoint against the reference (float32, full encoder
//! attention as the transformers backend computes it): prompt ids, greedy token ids, the raw
//! decoded string, the parsed (language, text), for automatic and forced language, a context
//! string and 2-item batches.
#![allow(clippy::needless_range_loop)]

mod common;

use candle_core::{DType, Device};
use common::*;
use qwen3_speech::ModelDir;
use qwen3_speech::models::asr::{AsrModel, AsrOptions, EncoderAttention};

fn model() -> AsrModel {
    let dir = ModelDir::open(fixture("asr-tiny")).unwrap();
    AsrModel::load(&dir, &Device::Cpu, DType::F32).unwrap()
}

fn clip(name: &str) -> Vec<f32> {
    to_f32_vec(&load_tensors(&format!("asr-tiny/expected/clip_{name}.safetensors"))["waveform"])
}

/// Expected results for item `i` of a case: batch-size-1 reference results where the case
/// recorded them (the reference's own batches pad features and can differ, see asr.md §1).
fn expected(case: &serde_json::Value, i: usize) -> (Vec<u32>, Vec<u32>, String, String, String) {
    let (prompt, ids, raw, parsed) = match case.get("batch_size_1") {
        Some(b1) => {
            let e = &b1[i];
            (
                &e["prompt_ids"],
                &e["generated_ids_trimmed"],
                &e["raw_decoded"],
                &e["parsed"],
            )
        }
        None => (
            &case["prompt_ids"][i],
            &case["generated_ids_trimmed"][i],
            &case["raw_decoded"][i],
            &case["parsed"][i],
        ),
    };
    let stop = load_json("asr-tiny/expected/asr_generate.json")["eos_token_ids"].clone();
    let stop = json_ids(&stop);
    let mut ids = json_ids(ids);
    if ids.last().is_some_and(|t| stop.contains(t)) {
        ids.pop();
    }
    (
        json_ids(prompt),
        ids,
        raw.as_str().unwrap().to_string(),
        parsed[0].as_str().unwrap().to_string(),
        parsed[1].as_str().unwrap().to_string(),
    )
}

#[test]
fn greedy_transcriptions_match_reference() {
    let m = model();
    let g = load_json("asr-tiny/expected/asr_generate.json");
    let max_new = g["max_new_tokens"].as_u64().unwrap() as usize;
    let cases = g["cases"].as_object().unwrap();
    assert!(cases.len() >= 6, "fixture lists {} cases", cases.len());
    for (name, case) in cases {
        let clips: Vec<String> = case["clips"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        let waves: Vec<Vec<f32>> = clips.iter().map(|c| clip(c)).collect();
        // Items of a case may carry different options: group by (context, language).
        for i in 0..clips.len() {
            let context = case["contexts"][i].as_str().unwrap().to_string();
            let language = case["languages"][i].as_str().map(str::to_string);
            let options = AsrOptions {
                language: language.clone(),
                context: context.clone(),
                max_new_tokens: Some(max_new),
                attention: EncoderAttention::Full,
                ..AsrOptions::default()
            };
            let (exp_prompt, exp_ids, exp_raw, exp_lang, exp_text) = expected(case, i);

            let forced = m.check_options(&options).unwrap();
            let audio = m.encode(&waves[i], EncoderAttention::Full).unwrap();
            let prompt = m
                .prompt(&context, forced.as_deref(), audio.dim(0).unwrap())
                .unwrap();
            assert_eq!(prompt, exp_prompt, "{name}[{i}] prompt ids");

            // Decode this item together with every item of the case that shares its options,
            // which exercises batching with left padding.
            let same: Vec<usize> = (0..clips.len())
                .filter(|&j| {
                    case["contexts"][j] == case["contexts"][i]
                        && case["languages"][j] == case["languages"][i]
                })
                .collect();
            let batch: Vec<&[f32]> = same.iter().map(|&j| waves[j].as_slice()).collect();
            let out = m.transcribe(&batch, &options, 8, |_| {}).unwrap();
            let r = &out[same.iter().position(|&j| j == i).unwrap()];
            assert_eq!(r.pieces.len(), 1);
            assert_eq!(r.pieces[0].tokens, exp_ids, "{name}[{i}] greedy ids");
            assert_eq!(r.raw, exp_raw, "{name}[{i}] raw decoded");
            assert_eq!(
                (r.language.as_str(), r.text.as_str()),
                (exp_lang.as_str(), exp_text.as_str()),
                "{name}[{i}] parsed"
            );
            assert_eq!(
                r.pieces[0].truncated,
                exp_ids.len() == max_new,
                "{name}[{i}] budget flag"
            );
        }
    }
}

#[test]
fn first_step_logits_match_reference() {
    let m = model();
    let t = load_tensors("asr-tiny/expected/asr_prefill_speech_5p3s.safetensors");
    let ids = to_u32_vec(&t["input_ids"]);
    let wave = clip("speech_5p3s");
    let audio = m.encode(&wave, EncoderAttention::Full).unwrap();
    let th = m.thinker();
    let embeds = th
        .embed_prompt(std::slice::from_ref(&ids), Some(&audio))
        .unwrap();
    assert_close(
        "inputs_embeds (audio spliced)",
        &embeds.squeeze(0).unwrap(),
        &t["inputs_embeds"],
        1e-4,
    );
    let mut cache = th.new_cache();
    let pos = qwen3_speech::engine::transformer::Positions::contiguous(1, 0, ids.len());
    let hidden = th.decode(&embeds, &pos, None, &mut cache).unwrap();
    assert_close(
        "final normed",
        &hidden.squeeze(0).unwrap(),
        &t["final_normed"],
        1e-4,
    );
    let last = hidden
        .narrow(1, ids.len() - 1, 1)
        .unwrap()
        .flatten_all()
        .unwrap();
    let logits = th
        .logits(&last.unsqueeze(0).unwrap())
        .unwrap()
        .squeeze(0)
        .unwrap();
    let rel = assert_close("first-step logits", &logits, &t["last_logits"], 1e-4);
    eprintln!("first-step logits relative max diff {rel:e}");
}

#[test]
fn batches_equal_one_at_a_time_also_when_sampling() {
    use qwen3_speech::engine::sampling::SamplingConfig;
    let m = model();
    let waves: Vec<Vec<f32>> = ["speech_5p3s", "speech_0p35s", "speech_3p0s"]
        .iter()
        .map(|c| clip(c))
        .collect();
    let options = AsrOptions {
        max_new_tokens: Some(24),
        sampling: SamplingConfig {
            do_sample: true,
            temperature: 0.8,
            top_k: 50,
            top_p: 0.95,
            seed: 7,
            ..SamplingConfig::greedy()
        },
        ..AsrOptions::default()
    };
    let refs: Vec<&[f32]> = waves.iter().map(|w| w.as_slice()).collect();
    let batched = m.transcribe(&refs, &options, 3, |_| {}).unwrap();
    for (i, w) in waves.iter().enumerate() {
        let alone = m.transcribe(&[w.as_slice()], &options, 1, |_| {}).unwrap();
        assert_eq!(
            alone[0].pieces[0].tokens, batched[i].pieces[0].tokens,
            "clip {i}"
        );
    }
    // Sampling with another seed changes the result of the long clip.
    let other = AsrOptions {
        sampling: SamplingConfig {
            seed: 8,
            ..options.sampling.clone()
        },
        ..options.clone()
    };
    let again = m.transcribe(&refs[..1], &other, 1, |_| {}).unwrap();
    assert_ne!(again[0].pieces[0].tokens, batched[0].pieces[0].tokens);
}

#[test]
fn bad_inputs_are_clear_errors() {
    let m = model();
    let opts = AsrOptions::default();
    let err = m
        .transcribe(&[&[]], &opts, 1, |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("empty"), "{err}");
    let err = m
        .transcribe(&[&[0.1; 150]], &opts, 1, |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("too short"), "{err}");
    let bad_lang = AsrOptions {
        language: Some("Klingon".into()),
        ..AsrOptions::default()
    };
    let err = m
        .transcribe(&[&[0.0; 16000]], &bad_lang, 1, |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("unsupported language"), "{err}");
    let bad_ctx = AsrOptions {
        context: "<|audio_pad|>".into(),
        ..AsrOptions::default()
    };
    assert!(m.transcribe(&[&[0.0; 16000]], &bad_ctx, 1, |_| {}).is_err());
    // Silence is valid input.
    let out = m.transcribe(&[&[0.0; 16000]], &opts, 1, |_| {}).unwrap();
    assert_eq!(out[0].duration_sec, 1.0);
}

#[test]
fn long_audio_is_split_and_budgets_scale() {
    let m = model();
    // 25 s of speech split at quiet points into pieces of at most 10 s, each decoded.
    let base = clip("speech_5p3s");
    let mut wave = Vec::new();
    while wave.len() < 16000 * 25 {
        wave.extend_from_slice(&base);
    }
    wave.truncate(16000 * 25);
    let options = AsrOptions {
        chunk_seconds: 10.0,
        ..AsrOptions::default()
    };
    let out = m
        .transcribe(&[wave.as_slice()], &options, 4, |_| {})
        .unwrap();
    let t = &out[0];
    assert!(t.pieces.len() >= 3, "{} pieces", t.pieces.len());
    assert!(t.pieces.iter().all(|p| p.duration_sec <= 10.0));
    let covered: f64 = t.pieces.iter().map(|p| p.duration_sec).sum();
    assert!((covered - 25.0).abs() < 1e-9);
    assert!(
        t.pieces
            .windows(2)
            .all(|w| w[1].offset_sec > w[0].offset_sec)
    );
    assert_eq!(
        t.text,
        t.pieces.iter().map(|p| p.text.as_str()).collect::<String>()
    );
    // A tiny explicit budget is reported as truncation.
    let tight = AsrOptions {
        max_new_tokens: Some(2),
        ..AsrOptions::default()
    };
    let out = m.transcribe(&[base.as_slice()], &tight, 1, |_| {}).unwrap();
    assert!(out[0].truncated());
    assert_eq!(out[0].pieces[0].tokens.len(), 2);
}
