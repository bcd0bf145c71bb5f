use candle_core::{DType, Device};
use qwen3_speech::ModelDir;
use qwen3_speech::models::asr::AsrModel;
use std::time::Instant;
fn main() {
    let dir = ModelDir::open("bench-models/asr-0.6b").unwrap();
    let m = AsrModel::load(&dir, &Device::Cpu, DType::F32).unwrap();
    let wav = qwen3_speech::engine::audio::load_audio(
        "bench-models/asr-0.6b/bench-audio/speech_10s.wav",
        16000,
    )
    .unwrap();
    let mel = m.features(&wav).unwrap();
    let enc = m.thinker().audio_encoder();
    std::thread::sleep(std::time::Duration::from_secs(1));
    let s = Instant::now();
    for _ in 0..10 {
        enc.stem(&mel).unwrap();
    }
    println!("stem {:.1} ms", s.elapsed().as_secs_f64() * 100.0);
}
