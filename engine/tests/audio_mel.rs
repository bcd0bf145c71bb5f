//! Mel front-end properties and speed (the golden comparisons are in golden_audio.rs).

use std::time::Instant;

use candle_core::Device;
use qwen3_speech_engine::audio::mel::{
    WHISPER_HOP, WHISPER_N_FFT, WHISPER_N_MELS, whisper_dynamic_range,
};
use qwen3_speech_engine::audio::{SpeakerMel, WhisperMel};

fn noise(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s % 20001) as f32 / 20000.0 - 0.5) * 0.2 + (i as f32 * 0.05).sin() * 0.3
        })
        .collect()
}

#[test]
fn whisper_frame_count_and_layout() {
    let mut ex = WhisperMel::new();
    for len in [201usize, 250, 399, 400, 401, 16_000, 16_077] {
        let mel = ex.compute(&noise(len, len as u64)).unwrap();
        assert_eq!(mel.n_mels, 128);
        assert_eq!(mel.n_frames, len / 160, "len {len}");
        assert_eq!(mel.data.len(), 128 * (len / 160));
        let t = mel.to_tensor(&Device::Cpu).unwrap();
        assert_eq!(t.dims(), &[128, len / 160]);
        if mel.n_frames > 0 {
            assert_eq!(
                t.get(5)
                    .unwrap()
                    .get(0)
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap(),
                mel.get(5, 0).unwrap()
            );
        }
    }
}

#[test]
fn whisper_dynamic_range_bounds() {
    let mut ex = WhisperMel::new();
    // loud start, then digital silence: the silence sits at the floor max - 8
    let mut x = noise(16_000, 3);
    x.extend(std::iter::repeat_n(0.0, 16_000));
    let mel = ex.compute(&x).unwrap();
    let max = mel.data.iter().copied().fold(f32::MIN, f32::max);
    let min = mel.data.iter().copied().fold(f32::MAX, f32::min);
    assert!((max - min - 2.0).abs() < 1e-5, "range {min}..{max}");
    assert_eq!(mel.get(0, mel.n_frames - 1), Some(min));
}

#[test]
fn streaming_by_frames_matches_offline() {
    // A caller computing frames as audio arrives (interior frames need no padding) and
    // applying the dynamic range at the end gets the offline features.
    let x = noise(8_000, 9);
    let mut ex = WhisperMel::new();
    let offline = ex.compute(&x).unwrap();
    let raw = ex.compute_log10(&x).unwrap();
    let t_first = 2; // frames >= 2 start at or after sample 120
    let mut frame = vec![0f32; WHISPER_N_MELS];
    let mut data = raw.data.clone();
    for t in t_first..raw.n_frames - 2 {
        let s = t * WHISPER_HOP - WHISPER_N_FFT / 2;
        ex.frame_log10(&x[s..s + WHISPER_N_FFT], &mut frame)
            .unwrap();
        for (m, v) in frame.iter().enumerate() {
            data[m * raw.n_frames + t] = *v;
        }
    }
    whisper_dynamic_range(&mut data, None);
    assert_eq!(data, offline.data);
    assert!(ex.frame_log10(&x[..399], &mut frame).is_err());
}

#[test]
fn speaker_mel_shape() {
    let mut ex = SpeakerMel::new();
    for len in [385usize, 1000, 24_000, 23_923] {
        let mel = ex.compute(&noise(len, 1)).unwrap();
        assert_eq!((mel.n_mels, mel.n_frames), (128, len / 256), "len {len}");
        assert!(
            mel.data
                .iter()
                .all(|v| v.is_finite() && *v >= 1e-5f32.ln() - 1e-6)
        );
    }
}

#[test]
fn whisper_mel_speed_60s() {
    let x = noise(60 * 16_000, 5);
    let mut ex = WhisperMel::new();
    ex.compute(&x[..16_000]).unwrap(); // warm up
    let t0 = Instant::now();
    let mel = ex.compute(&x).unwrap();
    let dt = t0.elapsed();
    assert_eq!(mel.n_frames, 6000);
    println!(
        "whisper log-mel of 60 s: {:.1} ms (profile: {})",
        dt.as_secs_f64() * 1e3,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    // Release builds take a few ms; keep the bound loose for unoptimised test builds.
    let limit = if cfg!(debug_assertions) { 2.0 } else { 0.1 };
    assert!(dt.as_secs_f64() < limit, "{dt:?}");
}
