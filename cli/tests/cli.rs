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
