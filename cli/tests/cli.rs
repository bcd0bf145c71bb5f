//! The `qwen3-speech` binary end to end on the tiny test checkpoints: the documented flags, the
//! JSON fields scripts rely on, subtitles, and exit status / messages for bad input.

use std::path::PathBuf;
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixture(rel: &str) -> String {
    root()
        .join("tests/fixtures")
        .join(rel)
        .display()
        .to_string()
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qwen3-speech"))
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .expect("the binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn transcribe_json_lines_and_bad_files() {
    let good = fixture("asr-real/en_16k.wav");
    let flac = fixture("asr-real/fr_stereo_44k.flac");
    let o = run(&[
        "transcribe",
        &good,
        "/nonexistent.wav",
        &flac,
        "--model",
        &fixture("asr-tiny"),
        "--format",
        "json",
        "--max-new-tokens",
        "8",
        "--device",
        "cpu",
        "--dtype",
        "f32",
        "--attention",
        "full",
        "-q",
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "a bad file makes the exit status non-zero"
    );
    let lines: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "the good files are still transcribed");
    for l in &lines {
        for k in ["path", "language", "text", "raw", "duration"] {
            assert!(l.get(k).is_some(), "missing {k} in {l}");
        }
    }
    assert_eq!(lines[0]["path"], good);
    assert!(stderr(&o).contains("/nonexistent.wav"), "{}", stderr(&o));
}

#[test]
fn transcribe_with_timestamps_gives_words_and_timed_subtitles() {
    let wav = fixture("asr-real/en_16k.wav");
    let base = [
        "--model",
        &fixture("asr-tiny"),
        "--timestamps",
        "--aligner",
        &fixture("aligner-tiny"),
        "--language",
        "en",
        "--max-new-tokens",
        "16",
        "-q",
    ];
    let o = run(&[&["transcribe", &wav, "--format", "json"][..], &base[..]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let words = v["words"].as_array().expect("words");
    assert!(!words.is_empty());
    for w in words {
        assert!(w["text"].is_string() && w["start"].is_number() && w["end"].is_number());
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().display().to_string();
    let o = run(&[
        &["transcribe", &wav, "--format", "srt", "--output-dir", &out][..],
        &base[..],
    ]
    .concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let srt = std::fs::read_to_string(dir.path().join("en_16k.srt")).unwrap();
    assert!(
        srt.starts_with("1\n00:00:") && srt.contains(" --> "),
        "{srt}"
    );
}

#[test]
fn align_json_and_errors() {
    let wav = fixture("asr-real/en_16k.wav");
    let model = fixture("aligner-tiny");
    let o = run(&[
        "align",
        &wav,
        "--text",
        "Hello, world.",
        "--language",
        "English",
        "--model",
        &model,
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["language"], "English");
    assert_eq!(v["words"].as_array().unwrap().len(), 2);
    assert_eq!(v["words"][0]["text"], "Hello");

    let dir = tempfile::tempdir().unwrap();
    let text_file = dir.path().join("t.txt");
    std::fs::write(&text_file, "你好世界").unwrap();
    let o = run(&[
        "align",
        &wav,
        "--text-file",
        text_file.to_str().unwrap(),
        "--language",
        "zh",
        "--model",
        &model,
        "--format",
        "vtt",
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("WEBVTT"));

    for (args, message) in [
        (
            vec!["--text", "hello", "--language", "Klingon"],
            "does not support",
        ),
        (vec!["--text", "  ", "--language", "en"], "empty"),
        (vec!["--text", "...", "--language", "en"], "no words"),
    ] {
        let o = run(&[&["align", &wav, "--model", &model, "-q"][..], &args[..]].concat());
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(stderr(&o).contains(message), "{args:?}: {}", stderr(&o));
    }
    let o = run(&[
        "align",
        "/nonexistent.wav",
        "--text",
        "hi",
        "--language",
        "en",
        "--model",
        &model,
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("/nonexistent.wav"));
}

/// `(sample rate, channels, bits, data bytes)` of a canonical WAV file.
fn wav_header(bytes: &[u8]) -> (u32, u16, u16, usize) {
    assert_eq!(&bytes[..4], b"RIFF");
    assert_eq!(&bytes[8..12], b"WAVE");
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap());
    let mut i = 12;
    let (mut rate, mut channels, mut bits, mut data) = (0, 0, 0, 0);
    while i + 8 <= bytes.len() {
        let size = u32_at(i + 4) as usize;
        match &bytes[i..i + 4] {
            b"fmt " => {
                channels = u16_at(i + 10);
                rate = u32_at(i + 12);
                bits = u16_at(i + 22);
            }
            b"data" => data = size,
            _ => {}
        }
        i += 8 + size + (size & 1);
    }
    (rate, channels, bits, data)
}

#[test]
fn codec25_round_trip_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let model = fixture("codec25-tiny");
    let codes = tmp.path().join("codes.json");
    let codes_s = codes.to_str().unwrap();
    let wav = fixture("asr-real/en_16k.wav");
    let o = run(&[
        "codec", "encode", &wav, "--model", &model, "-o", codes_s, "--device", "cpu", "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&codes).unwrap()).unwrap();
    assert_eq!(doc["codec"], "qwen3_tts_tokenizer_25hz");
    assert_eq!(doc["sample_rate"], 16000);
    assert_eq!(doc["frame_rate"], 25.0);
    assert_eq!(doc["num_quantizers"], 1);
    let frames = doc["frames"].as_u64().unwrap() as usize;
    let (_, _, _, data) = wav_header(&std::fs::read(&wav).unwrap());
    assert_eq!(frames, (data / 2).div_ceil(640));
    assert_eq!(doc["xvector"].as_array().unwrap().len(), 192);
    let ref_mel = doc["ref_mel"].as_array().unwrap();
    assert_eq!(ref_mel.len(), data / 2 / 160);
    assert!(ref_mel.iter().all(|r| r.as_array().unwrap().len() == 80));

    // Decode twice with one seed: same audio, 60 samples per code at 1500 Hz.
    let mut outs = Vec::new();
    for name in ["a.wav", "b.wav"] {
        let out = tmp.path().join(name);
        let o = run(&[
            "codec",
            "decode",
            codes_s,
            "-m",
            &model,
            "-o",
            out.to_str().unwrap(),
            "-q",
            "--device",
            "cpu",
            "--seed",
            "7",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let bytes = std::fs::read(&out).unwrap();
        let (rate, channels, bits, data) = wav_header(&bytes);
        assert_eq!((rate, channels, bits, data), (1500, 1, 16, frames * 60 * 2));
        outs.push(bytes);
    }
    assert_eq!(outs[0], outs[1]);

    // Without the speaker conditioning, or with the other codec's codes.
    let mut bad = doc.clone();
    bad.as_object_mut().unwrap().remove("ref_mel");
    let bad_path = tmp.path().join("bad.json");
    std::fs::write(&bad_path, bad.to_string()).unwrap();
    let out = tmp.path().join("c.wav");
    let o = run(&[
        "codec",
        "decode",
        bad_path.to_str().unwrap(),
        "-m",
        &model,
        "-o",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("ref_mel"), "{}", stderr(&o));
    let o = run(&[
        "codec",
        "decode",
        codes_s,
        "-m",
        &fixture("codec12-tiny"),
        "-o",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("for codec"), "{}", stderr(&o));
}

#[test]
fn codec_round_trip_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let model = fixture("codec12-tiny");
    let codes = tmp.path().join("codes.json");
    let codes_s = codes.to_str().unwrap();
    // A 16 kHz file: resampled to the codec's 24 kHz before encoding.
    let wav = fixture("asr-real/en_16k.wav");
    let o = run(&[
        "codec", "encode", &wav, "--model", &model, "-o", codes_s, "--device", "cpu", "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&codes).unwrap()).unwrap();
    assert_eq!(doc["codec"], "qwen3_tts_tokenizer_12hz");
    assert_eq!(doc["sample_rate"], 24000);
    assert_eq!(doc["frame_rate"], 500.0);
    assert_eq!(doc["num_quantizers"], 4);
    let frames = doc["frames"].as_u64().unwrap() as usize;
    let rows = doc["codes"].as_array().unwrap();
    assert_eq!(rows.len(), frames);
    assert!(rows.iter().all(|r| r.as_array().unwrap().len() == 4));
    // 16 kHz input of n samples is ceil(1.5 n) samples at 24 kHz, 48 per frame.
    let bytes = std::fs::read(fixture("asr-real/en_16k.wav")).unwrap();
    let (rate, _, _, data) = wav_header(&bytes);
    assert_eq!(rate, 16000);
    let n24 = (data / 2 * 3).div_ceil(2);
    assert_eq!(frames, n24.div_ceil(48));

    // Decode, with the model given as a TTS folder (its speech_tokenizer/ subfolder is used).
    let tts = tmp.path().join("tts");
    std::fs::create_dir_all(tts.join("speech_tokenizer")).unwrap();
    std::fs::write(tts.join("config.json"), r#"{"model_type": "qwen3_tts"}"#).unwrap();
    for f in [
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
    ] {
        std::fs::copy(
            root().join("tests/fixtures/codec12-tiny").join(f),
            tts.join("speech_tokenizer").join(f),
        )
        .unwrap();
    }
    let out = tmp.path().join("out.wav");
    let o = run(&[
        "codec",
        "decode",
        codes_s,
        "--model",
        tts.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (rate, channels, bits, data) = wav_header(&std::fs::read(&out).unwrap());
    assert_eq!((rate, channels, bits), (24000, 1, 16));
    assert_eq!(data, frames * 48 * 2);
    let out32 = tmp.path().join("out32.wav");
    let o = run(&[
        "codec",
        "decode",
        codes_s,
        "-m",
        &model,
        "-o",
        out32.to_str().unwrap(),
        "-q",
        "--sample-format",
        "f32",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (_, _, bits, data) = wav_header(&std::fs::read(&out32).unwrap());
    assert_eq!((bits, data), (32, frames * 48 * 4));

    // Bad codes files.
    for (text, message) in [
        ("not json", "not JSON"),
        (r#"{"frames": 1}"#, "no \"codes\" array"),
        (
            r#"{"codes": [[1, 2, 3]]}"#,
            "has 3 codes, the codec takes 4",
        ),
        (r#"{"codes": [[1, 2, 3, 64]]}"#, "code 64 is outside"),
        (r#"{"codes": [[1, 2, 3, -1]]}"#, "not a code"),
        (
            r#"{"codec": "qwen3_tts_tokenizer_25hz", "codes": [[1, 2, 3, 4]]}"#,
            "for codec",
        ),
        (
            r#"{"frames": 2, "codes": [[1, 2, 3, 4]]}"#,
            "\"frames\" says 2",
        ),
    ] {
        let bad = tmp.path().join("bad.json");
        std::fs::write(&bad, text).unwrap();
        let o = run(&[
            "codec",
            "decode",
            bad.to_str().unwrap(),
            "-m",
            &model,
            "-o",
            out.to_str().unwrap(),
            "-q",
        ]);
        assert_eq!(o.status.code(), Some(1), "{text}");
        assert!(stderr(&o).contains(message), "{text}: {}", stderr(&o));
    }
    // Missing audio, missing model.
    let o = run(&[
        "codec",
        "encode",
        "/nonexistent.wav",
        "-m",
        &model,
        "-o",
        codes_s,
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("/nonexistent.wav"), "{}", stderr(&o));
    let o = run(&[
        "codec",
        "encode",
        &wav,
        "-m",
        "/nonexistent/model",
        "-o",
        codes_s,
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("/nonexistent/model"), "{}", stderr(&o));
    let o = run(&[
        "codec",
        "encode",
        &wav,
        "-m",
        &fixture("asr-tiny"),
        "-o",
        codes_s,
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("model_type"), "{}", stderr(&o));
}
