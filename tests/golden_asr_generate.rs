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
