//! WAV writing: round trips through the decoder.

use qwen3_speech_engine::audio::{
    WavFormat, decode_bytes, decode_file, encode_wav, write_wav, write_wav_channels,
};

fn signal(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (i as f32 * 0.013).sin() * 0.8 + (i as f32 * 0.2).cos() * 0.15)
        .collect()
}

#[test]
fn float32_round_trip_is_exact() {
    let x = signal(5000);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f.wav");
    write_wav(&p, &x, 24_000, WavFormat::Float32).unwrap();
    let d = decode_file(&p).unwrap();
    assert_eq!(d.sample_rate, 24_000);
    assert_eq!(d.channels, vec![x.clone()]);
    // in memory gives the same bytes
    assert_eq!(
        encode_wav(&x, 24_000, WavFormat::Float32).unwrap(),
        std::fs::read(&p).unwrap()
    );
}

#[test]
fn pcm16_round_trip_within_one_step() {
    let mut x = signal(5000);
    x[10] = 1.7; // clipped
    x[11] = -3.0;
    x[12] = f32::NAN; // written as 0
    let bytes = encode_wav(&x, 16_000, WavFormat::Pcm16).unwrap();
    assert_eq!(bytes.len(), 44 + 2 * x.len());
    let d = decode_bytes(&bytes, Some("wav")).unwrap();
    let y = &d.channels[0];
    assert_eq!(y.len(), x.len());
    assert_eq!(y[10], 32767.0 / 32768.0);
    assert_eq!(y[11], -32767.0 / 32768.0);
    assert_eq!(y[12], 0.0);
    for (i, (&a, &b)) in x.iter().zip(y).enumerate() {
        if (10..13).contains(&i) {
            continue;
        }
        // written as round(a * 32767), read back as /32768 (libsndfile's conventions): at most
        // half a step of rounding plus |a| / 32768 of scale mismatch
        assert!((a - b).abs() <= 1.5 / 32767.0, "{i}: {a} vs {b}");
    }
}

#[test]
fn stereo_write() {
    let l = signal(1000);
    let r: Vec<f32> = l.iter().map(|v| -v * 0.5).collect();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.wav");
    write_wav_channels(&p, &[&l, &r], 44_100, WavFormat::Float32).unwrap();
    let d = decode_file(&p).unwrap();
    assert_eq!(d.channels, vec![l, r]);
}

#[test]
fn write_errors() {
    let dir = tempfile::tempdir().unwrap();
    // a directory that does not exist
    let p = dir.path().join("missing/x.wav");
    assert!(matches!(
        write_wav(&p, &[0.0], 16_000, WavFormat::Pcm16),
        Err(qwen3_speech_engine::Error::Io { .. })
    ));
    assert!(write_wav_channels(dir.path().join("y.wav"), &[], 16_000, WavFormat::Pcm16).is_err());
}
