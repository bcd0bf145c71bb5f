//! Speed of the 12 Hz codec on the CPU: `cargo run --release -p qwen3-speech-codecs --example
//! codec12_speed -- <speech_tokenizer folder> [seconds]`. Encodes noise and decodes random codes
//! (one chunk, and more than one chunk), printing seconds and real-time factors.

use std::time::Instant;

use candle_core::Device;
use qwen3_speech_codecs::{Codec12, Codes};

fn main() -> qwen3_speech_codecs::engine::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let Some(dir) = args.get(1) else {
        eprintln!("usage: codec12_speed <speech_tokenizer folder> [seconds]");
        std::process::exit(2);
    };
    let seconds: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10.0);
    let t = Instant::now();
    let codec = Codec12::load(std::path::Path::new(dir), &Device::Cpu)?;
    println!("load: {:.2} s", t.elapsed().as_secs_f64());
    let sr = codec.sample_rate() as f64;
    let n = (seconds * sr) as usize;
    let mut state = 12345u32;
    let mut rand = || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    };
    let wave: Vec<f32> = (0..n)
        .map(|_| (rand() as f32 / u32::MAX as f32 - 0.5) * 0.2)
        .collect();
    for _ in 0..2 {
        let t = Instant::now();
        let codes = codec.encode(&wave)?;
        let e = t.elapsed().as_secs_f64();
        println!(
            "encode {seconds} s: {e:.2} s (RTF {:.3}), {} frames",
            e / seconds,
            codes.frames()
        );
    }
    let q = codec.num_quantizers();
    let size = codec.codebook_size() as u32;
    let frames_1s = codec.frame_rate();
    for secs in [seconds, 3.0 * seconds] {
        let frames = (secs * frames_1s) as usize;
        let codes = Codes::new((0..frames * q).map(|_| rand() % size).collect(), q)?;
        let mut best = f64::MAX;
        for _ in 0..2 {
            let t = Instant::now();
            let wav = codec.decode(&codes)?;
            best = best.min(t.elapsed().as_secs_f64());
            assert_eq!(wav.len(), frames * codec.samples_per_frame());
        }
        println!(
            "decode {frames} frames ({secs} s): {best:.2} s (RTF {:.3})",
            best / secs
        );
    }
    Ok(())
}
