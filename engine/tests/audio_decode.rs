//! Decoder error handling: empty, truncated, corrupt, unsupported input must give clear errors
//! (or, for a truncated file, the audio before the damage), never a panic.

use std::path::PathBuf;

use qwen3_speech_engine::Error;
use qwen3_speech_engine::audio::{
    self, WavFormat, decode_bytes, decode_file, encode_wav, load_audio, load_audio_bytes,
    whisper_log_mel,
};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/audio")
}

const CLIPS: [&str; 7] = [
    "pcm16_16k_mono.wav",
    "float32_22k_mono.wav",
    "pcm24_48k_stereo.wav",
    "stereo_44k.flac",
    "speech_22k_mono.mp3",
    "speech_22k_mono.ogg",
    "tone_44k_stereo.m4a",
];

fn audio_msg(r: Result<impl std::fmt::Debug, Error>) -> String {
    match r {
        Err(Error::Audio(msg)) => msg,
        other => panic!("expected Error::Audio, got {other:?}"),
    }
}

#[test]
fn empty_file_and_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("empty.wav");
    std::fs::write(&p, b"").unwrap();
    let msg = audio_msg(decode_file(&p));
    assert!(msg.contains("empty"), "{msg}");
    let msg = audio_msg(decode_bytes(&[], Some("wav")));
    assert!(msg.contains("empty"), "{msg}");
    assert!(matches!(load_audio(&p, 16_000), Err(Error::Audio(_))));
}

#[test]
fn missing_file_is_io_error() {
    let err = decode_file("/definitely/not/here.wav").unwrap_err();
    match err {
        Error::Io { path, .. } => assert!(path.ends_with("here.wav")),
        other => panic!("expected Error::Io, got {other:?}"),
    }
}

#[test]
fn directory_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(decode_file(dir.path()), Err(Error::Audio(_))));
}

#[test]
fn random_bytes_are_rejected() {
    let mut seed = 0x9e3779b97f4a7c15u64;
    let data: Vec<u8> = (0..4096)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect();
    for hint in [
        None,
        Some("wav"),
        Some("mp3"),
        Some("flac"),
        Some("m4a"),
        Some("ogg"),
    ] {
        let r = decode_bytes(&data, hint);
        assert!(matches!(r, Err(Error::Audio(_))), "{hint:?}: {r:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("noise.mp3");
    std::fs::write(&p, &data).unwrap();
    let msg = audio_msg(decode_file(&p));
    assert!(
        msg.contains("noise.mp3"),
        "error should name the file: {msg}"
    );
}

#[test]
fn unsupported_format_and_extension() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("notes.txt");
    std::fs::write(&p, "this is not audio, just some text\n".repeat(20)).unwrap();
    let msg = audio_msg(decode_file(&p));
    assert!(
        msg.contains("unsupported") || msg.contains("unrecognised"),
        "{msg}"
    );

    // the extension is only a hint: a real WAV with a misleading extension still decodes
    let wav = std::fs::read(fixtures().join("pcm16_16k_mono.wav")).unwrap();
    let p = dir.path().join("clip.xyz");
    std::fs::write(&p, &wav).unwrap();
    assert_eq!(decode_file(&p).unwrap().num_frames(), 8000);
    assert_eq!(decode_bytes(&wav, Some("mp3")).unwrap().num_frames(), 8000);
}

#[test]
fn wav_without_samples() {
    let bytes = encode_wav(&[], 16_000, WavFormat::Pcm16).unwrap();
    let msg = audio_msg(decode_bytes(&bytes, Some("wav")));
    assert!(msg.contains("no samples"), "{msg}");
}

#[test]
fn truncated_files_decode_what_they_can() {
    for clip in CLIPS {
        let data = std::fs::read(fixtures().join(clip)).unwrap();
        let full = decode_bytes(&data, None).unwrap();
        for frac in [0.02, 0.3, 0.6, 0.95] {
            let cut = ((data.len() as f64) * frac) as usize;
            match decode_bytes(&data[..cut], None) {
                Ok(a) => {
                    assert!(a.num_frames() > 0);
                    assert!(
                        a.num_frames() <= full.num_frames(),
                        "{clip} cut at {frac}: {} > {}",
                        a.num_frames(),
                        full.num_frames()
                    );
                    assert_eq!(a.num_channels(), full.num_channels());
                }
                Err(Error::Audio(msg)) => assert!(!msg.is_empty()),
                Err(other) => panic!("{clip} cut at {frac}: unexpected error {other:?}"),
            }
        }
        // a header-sized stub never yields audio
        let r = decode_bytes(&data[..data.len().min(24)], None);
        assert!(matches!(r, Err(Error::Audio(_))), "{clip}: {r:?}");
    }
}

/// Corrupt headers and payloads: every call must return (Ok or Error::Audio), never unwind.
/// Note: symphonia itself can panic on some corrupt headers (e.g. an integer overflow in its WAV
/// `fmt` parser when overflow checks are on); `decode_*` catches that and returns an error, so
/// the panic message may still be printed by the default hook.
#[test]
fn corrupted_files_never_panic() {
    let mut seed = 42u64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for clip in CLIPS {
        let data = std::fs::read(fixtures().join(clip)).unwrap();
        for _ in 0..20 {
            let mut d = data.clone();
            // flip a few bytes, sometimes in the header
            for _ in 0..(1 + rand() % 8) {
                let pos = if rand() % 3 == 0 {
                    (rand() % 64) as usize
                } else {
                    (rand() as usize) % d.len()
                };
                d[pos] ^= (rand() % 255 + 1) as u8;
            }
            let cut = d.len() - (rand() as usize % (d.len() / 4));
            match decode_bytes(&d[..cut], None) {
                Ok(a) => assert!(a.num_frames() > 0 && a.sample_rate > 0),
                Err(Error::Audio(_)) => {}
                Err(other) => panic!("{clip}: unexpected error {other:?}"),
            }
        }
    }
}

#[test]
fn too_short_for_mel() {
    let x = vec![0.1f32; 100];
    let msg = audio_msg(whisper_log_mel(&x));
    assert!(msg.contains("too short"), "{msg}");
    assert!(matches!(
        audio::speaker_encoder_mel(&x),
        Err(Error::Audio(_))
    ));
    assert!(audio::ensure_min_samples(100, audio::mel::WHISPER_MIN_SAMPLES, 16_000).is_err());
}

#[test]
fn load_audio_resamples_and_normalises() {
    for clip in CLIPS {
        let path = fixtures().join(clip);
        let decoded = decode_file(&path).unwrap();
        let y = load_audio(&path, 16_000).unwrap();
        assert_eq!(
            y.len(),
            audio::resampled_len(decoded.num_frames(), decoded.sample_rate, 16_000)
        );
        assert!(y.iter().all(|v| v.is_finite() && v.abs() <= 1.0));
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(load_audio_bytes(&bytes, None, 16_000).unwrap(), y);
    }
}
