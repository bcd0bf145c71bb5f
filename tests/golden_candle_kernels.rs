//! The same reference comparisons with the engine's own CPU kernels switched off
//! (`QWEN3_SPEECH_KERNELS=candle`): the path every machine without AVX-512, and CUDA, takes.
//! It runs as its own test binary because the switch is read once per process.

mod common;

use candle_core::{DType, Device};
use common::*;
use qwen3_speech::ModelDir;
use qwen3_speech::engine::kernels::packed_kernels_available;
use qwen3_speech::models::asr::{AsrModel, AsrOptions, EncoderAttention};

#[test]
fn candle_fallback_matches_the_reference() {
    // SAFETY: set before any thread of this test binary reads the environment.
    unsafe { std::env::set_var("QWEN3_SPEECH_KERNELS", "candle") };
    assert!(!packed_kernels_available());
    let m = AsrModel::load(
        &ModelDir::open(fixture("asr-tiny")).unwrap(),
        &Device::Cpu,
        DType::F32,
    )
    .unwrap();

    // Encoder, both attention modes.
    let t = load_tensors("asr-tiny/expected/clip_speech_5p3s.safetensors");
    for (mode, name) in [
        (EncoderAttention::Full, "full"),
        (EncoderAttention::Windowed, "windowed"),
    ] {
        let out = m.thinker().encode_audio(&t["mel"], mode).unwrap();
        assert_close(
            &format!("candle {name} embeddings"),
            &out,
            &t[&format!("{name}_audio_embeds")],
            1e-4,
        );
    }

    // Greedy ids of the automatic and forced-language cases.
    let g = load_json("asr-tiny/expected/asr_generate.json");
    for name in [
        "auto_speech_5p3s",
        "forced_english_speech_5p3s",
        "context_speech_5p3s",
    ] {
        let case = &g["cases"][name];
        let options = AsrOptions {
            language: case["languages"][0].as_str().map(str::to_string),
            context: case["contexts"][0].as_str().unwrap().to_string(),
            max_new_tokens: Some(g["max_new_tokens"].as_u64().unwrap() as usize),
            attention: EncoderAttention::Full,
            ..AsrOptions::default()
        };
        let out = m
            .transcribe(
                &[to_f32_vec(&t["waveform"]).as_slice()],
                &options,
                1,
                |_| {},
            )
            .unwrap();
        let mut expected = json_ids(&case["generated_ids_trimmed"][0]);
        let stop = json_ids(&g["eos_token_ids"]);
        if expected.last().is_some_and(|t| stop.contains(t)) {
            expected.pop();
        }
        assert_eq!(out[0].pieces[0].tokens, expected, "{name}");
    }
}
