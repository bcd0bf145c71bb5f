use candle_core::{DType, Device};
use qwen3_speech::ModelDir;
use qwen3_speech::engine::sampling::SamplingConfig;
use qwen3_speech::models::asr::AsrModel;
use qwen3_speech::models::asr::generate::{DecodeOptions, DecodeRequest, generate};
use std::time::Instant;

fn main() {
    let dir = ModelDir::open("bench-models/asr-0.6b").unwrap();
    let m = AsrModel::load(&dir, &Device::Cpu, DType::F32).unwrap();
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(100);
    let opts = DecodeOptions {
        sampling: SamplingConfig::greedy(),
        stop_ids: vec![],
        pad_id: 0,
    };
    let req = DecodeRequest {
        prompt: (0..20u32).map(|i| 100 + i).collect(),
        audio: None,
        max_new_tokens: n,
    };
    let s = Instant::now();
    let out = generate(m.thinker(), &[req], &opts, |_, _| {}).unwrap();
    println!(
        "{} tokens in {:.3} s ({:.1} ms/token)",
        out[0].tokens.len(),
        s.elapsed().as_secs_f64(),
        s.elapsed().as_secs_f64() * 1000.0 / n as f64
    );
}
