//! `qwen3-speech speak` and `speakers` end to end on the tiny TTS checkpoints: the documented
//! flags, the WAV written, the same greedy codes as the library, and one-line errors.

use std::path::PathBuf;
use std::process::{Command, Output};

fn fixture(rel: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
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

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn read_wav(path: &std::path::Path) -> (u32, Vec<i16>) {
    let mut r = hound::WavReader::open(path).expect("a WAV file");
    let rate = r.spec().sample_rate;
    (rate, r.samples::<i16>().map(|s| s.unwrap()).collect())
}

#[test]
fn speak_writes_a_wav_with_every_documented_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.wav");
    let o = run(&[
        "speak",
        "--model",
        &fixture("tts-tiny/custom_voice"),
        "--text",
        "Hello world.",
        "--language",
        "English",
        "--speaker",
        "Ryan",
        "-o",
        out.to_str().unwrap(),
        "--seed",
        "7",
        "--greedy",
        "--temperature",
        "0.8",
        "--top-k",
        "20",
        "--top-p",
        "0.9",
        "--repetition-penalty",
        "1.05",
        "--max-frames",
        "12",
        "--text-input",
        "streaming",
        "--device",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (rate, samples) = read_wav(&out);
    assert_eq!(rate, 24_000);
    // cv_ryan_en_stream stops on EOS after 6 frames of 48 samples (the tiny codec).
    assert_eq!(samples.len(), 6 * 48);
    assert!(samples.iter().any(|&s| s != 0));
    assert!(stderr(&o).contains("6 frames"), "{}", stderr(&o));
}

#[test]
fn speak_reports_the_frame_limit_and_voice_clone_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("limit.wav");
    let o = run(&[
        "speak",
        "--model",
        &fixture("tts-tiny/custom_voice"),
        "--text",
        "Hello world.",
        "--speaker",
        "vivian",
        "-o",
        out.to_str().unwrap(),
        "--max-frames",
        "3",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("frame limit"), "{}", stderr(&o));
    assert_eq!(read_wav(&out).1.len(), 2 * 48);

    // Voice clone from a reference file, x-vector only and in context.
    let clip = dir.path().join("ref.wav");
    let tone: Vec<f32> = (0..24_000).map(|i| 0.3 * (i as f32 * 0.05).sin()).collect();
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 24_000,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(&clip, spec).unwrap();
    for s in &tone {
        w.write_sample(*s).unwrap();
    }
    w.finalize().unwrap();
    let base = fixture_base();
    for extra in [
        &["--x-vector-only"][..],
        &["--ref-text", "A steady tone."][..],
    ] {
        let mut args = vec![
            "speak",
            "--model",
            &base,
            "--text",
            "Hi.",
            "--ref-audio",
            clip.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--max-frames",
            "4",
            "--greedy",
        ];
        args.extend_from_slice(extra);
        let o = run(&args);
        assert!(o.status.success(), "{extra:?}: {}", stderr(&o));
        assert_eq!(read_wav(&out).1.len(), 3 * 48, "{extra:?}");
    }
}

fn fixture_base() -> String {
    fixture("tts-tiny/base")
}

#[test]
fn speak_errors_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.wav");
    let cases: &[(&[&str], &str)] = &[
        (&["--speaker", "nobody"], "unknown speaker"),
        (&["--language", "klingon"], "unsupported language"),
        (
            &["--ref-audio", "/nonexistent.wav", "--x-vector-only"],
            "reference clip",
        ),
    ];
    let cv = fixture("tts-tiny/custom_voice");
    for (extra, want) in cases {
        let mut args = vec![
            "speak",
            "--model",
            &cv,
            "--text",
            "Hi.",
            "-o",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let o = run(&args);
        assert_eq!(o.status.code(), Some(1), "{extra:?}");
        let e = stderr(&o);
        assert!(e.contains(want), "{extra:?}: {e}");
        assert_eq!(e.trim().lines().count(), 1, "{extra:?}: {e}");
        assert!(!out.exists());
    }
    // A Base model without a reference clip.
    let o = run(&[
        "speak",
        "--model",
        &fixture_base(),
        "--text",
        "Hi.",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("reference clip"), "{}", stderr(&o));
    // Not a TTS model.
    let o = run(&[
        "speak",
        "--model",
        &fixture("asr-tiny"),
        "--text",
        "Hi.",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn speakers_lists_speakers_dialects_and_languages() {
    let o = run(&[
        "speakers",
        "--model",
        &fixture("tts-tiny/custom_voice"),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["model_type"], "custom_voice");
    let names: Vec<&str> = v["speakers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["dylan", "eric", "ryan", "vivian"]);
    assert_eq!(v["speakers"][0]["dialect"], "beijing_dialect");
    assert_eq!(v["languages"][0], "auto");
    assert!(
        !v["languages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("dialect"))
    );
    let o = run(&["speakers", "--model", &fixture("tts-tiny/voice_design")]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("speakers: none"));
}

#[test]
fn speak_streams_to_stdout_as_wav_or_raw_pcm() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file.wav");
    let base = [
        "speak",
        "--model",
        &fixture("tts-tiny/custom_voice"),
        "--text",
        "Hello world.",
        "--speaker",
        "Ryan",
        "--language",
        "English",
        "--greedy",
        "--max-frames",
        "12",
    ];
    let mut a = base.to_vec();
    a.extend(["-o", file.to_str().unwrap()]);
    let o = run(&a);
    assert!(o.status.success(), "{}", stderr(&o));
    let (_, want) = read_wav(&file);

    let mut a = base.to_vec();
    a.extend([
        "-o",
        "-",
        "--stream-format",
        "raw",
        "--first-chunk-frames",
        "1",
        "--chunk-frames",
        "2",
    ]);
    let o = run(&a);
    assert!(o.status.success(), "{}", stderr(&o));
    let got: Vec<i16> = o
        .stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    assert_eq!(got.len(), want.len());
    let max = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs())
        .max()
        .unwrap();
    assert!(max <= 1, "streamed PCM differs from the file by {max} LSB");
    assert!(stderr(&o).contains("first audio after"), "{}", stderr(&o));

    let mut a = base.to_vec();
    a.extend(["-o", "-"]);
    let o = run(&a);
    assert!(o.status.success());
    assert_eq!(&o.stdout[..4], b"RIFF");
    assert_eq!(&o.stdout[36..40], b"data");
    assert_eq!(o.stdout.len(), 44 + want.len() * 2);
}

/// A `~/.asoundrc` with an ALSA output device that writes what it plays to `capture` (raw
/// interleaved samples) instead of a sound card: the cpal playback path runs for real without
/// audio hardware.
fn play_asoundrc(capture: &std::path::Path) -> String {
    format!(
        r#"pcm.qwen3_test_play {{
    type file
    slave {{
        pcm {{
            type null
        }}
    }}
    file "{}"
    format "raw"
    hint {{
        show on
        description "qwen3-speech test playback (ALSA file)"
    }}
}}
"#,
        capture.display()
    )
}

#[test]
fn play_sends_the_speech_to_the_output_device() {
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("played.raw");
    std::fs::write(dir.path().join(".asoundrc"), play_asoundrc(&capture)).unwrap();
    let with_home = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_qwen3-speech"))
            .args(args)
            .env("HF_HUB_OFFLINE", "1")
            .env("HOME", dir.path())
            .output()
            .expect("the binary runs")
    };
    let o = with_home(&["devices", "--json"]);
    if !o.status.success() {
        eprintln!(
            "SKIPPED: cannot list audio devices here: {}",
            stderr(&o).trim()
        );
        return;
    }
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let found = v["outputs"].as_array().is_some_and(|outs| {
        outs.iter()
            .any(|d| d["id"].as_str().unwrap_or("").contains("qwen3_test_play"))
    });
    if !found {
        eprintln!(
            "SKIPPED: the ALSA file output of ~/.asoundrc is not listed (host {}, outputs {}); \
             the cpal playback path cannot be exercised on this machine",
            v["host"], v["outputs"]
        );
        return;
    }

    let base = [
        "speak",
        "--model",
        &fixture("tts-tiny/custom_voice"),
        "--text",
        "Hello world.",
        "--speaker",
        "Ryan",
        "--language",
        "English",
        "--greedy",
        "--max-frames",
        "12",
    ];
    let file = dir.path().join("file.wav");
    let mut a = base.to_vec();
    a.extend(["-o", file.to_str().unwrap()]);
    let o = with_home(&a);
    assert!(o.status.success(), "{}", stderr(&o));
    let (rate, want) = read_wav(&file);

    let played_wav = dir.path().join("played.wav");
    let mut a = base.to_vec();
    a.extend([
        "--play",
        "--output-device",
        "qwen3_test_play",
        "-o",
        played_wav.to_str().unwrap(),
    ]);
    let o = with_home(&a);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    // "playing on 'NAME' (C ch, R Hz, FORMAT)"
    let line = err
        .lines()
        .find(|l| l.starts_with("playing on"))
        .unwrap_or_else(|| panic!("no device line in: {err}"));
    assert!(line.contains("qwen3-speech test playback"), "{line}");
    let inside = line.rsplit_once('(').unwrap().1.trim_end_matches(')');
    let parts: Vec<&str> = inside.split(", ").collect();
    let channels: usize = parts[0].trim_end_matches(" ch").parse().unwrap();
    let device_rate: f64 = parts[1].trim_end_matches(" Hz").parse().unwrap();
    let format = parts[2];
    // The file written alongside holds the offline speech (the stream's chunks concatenate to
    // it within 1 LSB, as `-o -`).
    let (_, written) = read_wav(&played_wav);
    assert_eq!(written.len(), want.len());
    let max = written
        .iter()
        .zip(&want)
        .map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs())
        .max()
        .unwrap();
    assert!(
        max <= 1,
        "played file differs from the offline one by {max} LSB"
    );

    // The device received the speech: decode what it played (its own format and rate), keep the
    // first channel, and find the speech in it (silence may surround it when the device ran dry).
    let raw = std::fs::read(&capture).expect("the ALSA file plugin wrote the played audio");
    let played: Vec<f32> = match format {
        "f32" => raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        "i16" => raw
            .chunks_exact(2)
            .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
            .collect(),
        other => panic!("unexpected device format {other}"),
    };
    let mono: Vec<f32> = played.chunks_exact(channels).map(|f| f[0]).collect();
    let first = mono.iter().position(|x| x.abs() > 1e-4);
    let last = mono.iter().rposition(|x| x.abs() > 1e-4);
    let (Some(first), Some(last)) = (first, last) else {
        panic!("the device played only silence ({} samples)", mono.len());
    };
    // The speech spans its duration at the device rate (resampling keeps the length within a
    // few milliseconds; leading/trailing near-silent samples of the speech itself may be cut).
    let speech_seconds = want.len() as f64 / f64::from(rate);
    let played_seconds = (last - first + 1) as f64 / device_rate;
    assert!(
        (played_seconds - speech_seconds).abs() < 0.1 * speech_seconds + 0.02,
        "played {played_seconds:.3} s of sound for {speech_seconds:.3} s of speech"
    );
    // And its level matches the speech (RMS within 20 %, resampling aside).
    let rms = |x: &mut dyn Iterator<Item = f32>| {
        let (s, n) = x.fold((0f64, 0usize), |(s, n), v| (s + f64::from(v * v), n + 1));
        (s / n.max(1) as f64).sqrt()
    };
    let played_rms = rms(&mut mono[first..=last].iter().copied());
    let want_rms = rms(&mut want.iter().map(|&s| f32::from(s) / 32768.0));
    assert!(
        (played_rms / want_rms - 1.0).abs() < 0.2,
        "played RMS {played_rms:.4}, speech RMS {want_rms:.4}"
    );
}

/// `tts-tiny/custom_voice` turned into a single-codebook (25 Hz) checkpoint: one code group
/// (its code predictor config and weights are then ignored) and the tiny 25 Hz tokenizer.
fn single_codebook_model(dir: &std::path::Path) -> String {
    let src = PathBuf::from(fixture("tts-tiny/custom_voice"));
    let model = dir.join("model25");
    let tok = model.join("speech_tokenizer");
    std::fs::create_dir_all(&tok).unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), model.join(e.file_name())).unwrap();
        }
    }
    for e in std::fs::read_dir(fixture("codec25-tiny")).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), tok.join(e.file_name())).unwrap();
        }
    }
    let path = model.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    cfg["talker_config"]["num_code_groups"] = 1.into();
    cfg["talker_config"]["code_predictor_config"]["num_code_groups"] = 1.into();
    std::fs::write(&path, cfg.to_string()).unwrap();
    model.display().to_string()
}

#[test]
fn speak_with_a_single_codebook_model_needs_and_uses_codec_speaker() {
    let dir = tempfile::tempdir().unwrap();
    let model = single_codebook_model(dir.path());
    let out = dir.path().join("out.wav");
    let base = [
        "speak",
        "--model",
        &model,
        "--text",
        "Hello world.",
        "--speaker",
        "Ryan",
        "--language",
        "English",
        "--greedy",
        "--max-frames",
        "5",
    ];
    // Without a recording for the 25 Hz decoder: a one-line error naming the flag.
    let mut a = base.to_vec();
    a.extend(["-o", out.to_str().unwrap()]);
    let o = run(&a);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("--codec-speaker"), "{e}");
    assert_eq!(e.trim().lines().count(), 1, "{e}");

    let voice = fixture("audio/float32_22k_mono.wav");
    a.extend(["--codec-speaker", &voice]);
    let o = run(&a);
    assert!(o.status.success(), "{}", stderr(&o));
    // 4 frames (max-frames 5) of 60 samples at the tokenizer's 1500 Hz.
    let (rate, samples) = read_wav(&out);
    assert_eq!(rate, 1500);
    assert_eq!(samples.len(), 4 * 60);

    // Streamed to stdout: one chunk at the end, the same samples.
    let mut a = base.to_vec();
    a.extend([
        "--codec-speaker",
        &voice,
        "-o",
        "-",
        "--stream-format",
        "raw",
    ]);
    let o = run(&a);
    assert!(o.status.success(), "{}", stderr(&o));
    let got: Vec<i16> = o
        .stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    assert_eq!(got, samples);
}
