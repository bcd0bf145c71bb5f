//! `qwen3-speech listen` and `qwen3-speech devices` end to end on the tiny checkpoint.
//!
//! * `listen --input FILE` (real speech, a 16 kHz WAV and a 44.1 kHz stereo FLAC) and
//!   `listen --input -` (raw s16le on stdin): the JSON events equal the library's
//!   `StreamingTranscriber` on the same samples, the final one included.
//! * Ctrl-C (SIGINT) during a real-time `--input` run: a clean stop with a final decode.
//! * `devices` lists devices or says there are none.
//! * Microphone capture through cpal: on an ALSA `null` capture device declared in a temporary
//!   `~/.asoundrc` (or the system's `null` PCM). Where no capture device can be opened the test
//!   prints why and skips; it never fakes a device.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use qwen3_speech::engine::audio::decode_file;
use qwen3_speech::{
    ComputeDType, DeviceSpec, ModelDir, StreamEvent, StreamMode, StreamOptions, StreamingConfig,
    StreamingTranscriber,
};
use serde_json::Value;

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

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_qwen3-speech"));
    c.env("HF_HUB_OFFLINE", "1");
    c
}

fn run<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    bin().args(args).output().expect("the binary runs")
}

fn json_lines(o: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

const CHUNK: &str = "0.5";
const DEFAULT_SEGMENT: Option<f64> = Some(qwen3_speech::models::asr::DEFAULT_MAX_SEGMENT_SECONDS);

fn options(language: Option<&str>, max_segment_seconds: Option<f64>) -> StreamOptions {
    StreamOptions {
        chunk_seconds: 0.5,
        unfixed_chunks: 2,
        rollback_tokens: 5,
        mode: StreamMode::Incremental,
        language: language.map(str::to_string),
        context: String::new(),
        max_new_tokens: Some(16),
        max_segment_seconds,
    }
}

fn library(
    samples: &[f32],
    rate: u32,
    language: Option<&str>,
    max_segment_seconds: Option<f64>,
) -> Vec<StreamEvent> {
    let config = StreamingConfig {
        options: options(language, max_segment_seconds),
        device: DeviceSpec::Cpu,
        dtype: Some(ComputeDType::F32),
        ..StreamingConfig::default()
    };
    let dir = ModelDir::open(root().join("tests/fixtures/asr-tiny")).unwrap();
    let mut st = StreamingTranscriber::from_dir(dir, config).unwrap();
    let mut events = Vec::new();
    for piece in samples.chunks(1234) {
        events.extend(st.push_f32(piece, rate).unwrap());
    }
    events.push(st.finish().unwrap());
    events
}

fn listen_args(input: &str, language: Option<&str>) -> Vec<String> {
    let mut a: Vec<String> = [
        "listen",
        "--model",
        &fixture("asr-tiny"),
        "--input",
        input,
        "--as-fast-as-possible",
        "--format",
        "json",
        "--chunk-seconds",
        CHUNK,
        "--max-new-tokens",
        "16",
        "--device",
        "cpu",
        "--dtype",
        "f32",
        "-q",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(l) = language {
        a.extend(["--language".to_string(), l.to_string()]);
    }
    a
}

fn assert_same(events: &[Value], lib: &[StreamEvent], what: &str) {
    assert_eq!(events.len(), lib.len(), "{what}: number of events");
    for (j, l) in events.iter().zip(lib) {
        assert_eq!(j["text"], l.text.as_str(), "{what}");
        assert_eq!(j["fixed"], l.fixed.as_str(), "{what}");
        assert_eq!(j["unfixed"], l.unfixed.as_str(), "{what}");
        assert_eq!(j["language"], l.language.as_str(), "{what}");
        assert_eq!(j["is_final"], l.is_final, "{what}");
        assert_eq!(j["chunk"], l.chunk, "{what}");
        assert_eq!(j["segment"], l.segment, "{what}");
        assert_eq!(j["segment_closed"], l.segment_closed, "{what}");
        let secs = j["audio_seconds"].as_f64().unwrap();
        assert!((secs - l.audio_seconds).abs() < 1e-3, "{what}");
    }
    let last = events.last().unwrap();
    assert_eq!(last["is_final"], true, "{what}: the last event is final");
    assert_eq!(last["fixed"], last["text"], "{what}");
}

#[test]
fn listen_file_equals_library_streaming() {
    // The second one is cut into segments of about 1 s.
    for (file, language, segment) in [
        ("asr-real/de_16k.wav", Some("German"), None),
        ("asr-real/fr_stereo_44k.flac", None, Some(1.0)),
    ] {
        let path = fixture(file);
        let mut args = listen_args(&path, language);
        if let Some(s) = segment {
            args.extend(["--max-segment-seconds".to_string(), format!("{s}")]);
        }
        let o = run(&args);
        assert!(
            o.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let events = json_lines(&o);
        let audio = decode_file(&path).unwrap();
        let rate = audio.sample_rate;
        let lib = library(
            &audio.into_mono(),
            rate,
            language,
            segment.or(DEFAULT_SEGMENT),
        );
        assert!(lib.len() >= 4, "{file}: several chunks of 0.5 s");
        assert_eq!(
            lib.iter().any(|e| e.segment_closed),
            segment.is_some(),
            "{file}: segments"
        );
        assert_same(&events, &lib, file);
        eprintln!(
            "{file}: {} events, final {:?}",
            events.len(),
            events.last().unwrap()["text"]
        );
    }
}

#[test]
fn listen_raw_pcm_on_stdin() {
    let audio = decode_file(fixture("asr-real/en_16k.wav")).unwrap();
    let samples = audio.into_mono();
    // The WAV is 16-bit: its samples are exact multiples of 1/32768.
    let pcm: Vec<i16> = samples
        .iter()
        .map(|x| (x * 32768.0).round() as i16)
        .collect();
    let bytes: Vec<u8> = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut child = bin()
        .args(listen_args("-", Some("English")))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        // Odd-sized writes: the reader must reassemble frames.
        for piece in bytes.chunks(777) {
            stdin.write_all(piece).unwrap();
        }
    }
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let as_f32: Vec<f32> = pcm.iter().map(|&s| f32::from(s) / 32768.0).collect();
    assert_same(
        &json_lines(&o),
        &library(&as_f32, 16000, Some("English"), DEFAULT_SEGMENT),
        "stdin s16le",
    );
}

/// A longer WAV (the real-speech clips one after the other) for the real-time runs.
fn long_wav(dir: &Path) -> String {
    let mut all = Vec::new();
    for f in ["en_16k.wav", "de_16k.wav", "es_16k.wav", "zh_16k.wav"] {
        all.extend(
            decode_file(fixture(&format!("asr-real/{f}")))
                .unwrap()
                .into_mono(),
        );
    }
    let path = dir.join("long.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16000,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(&path, spec).unwrap();
    for s in all {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
    path.display().to_string()
}

#[cfg(unix)]
#[test]
fn ctrl_c_stops_cleanly_with_a_final_decode() {
    let dir = tempfile::tempdir().unwrap();
    let wav = long_wav(dir.path());
    let model = fixture("asr-tiny");
    let child = bin()
        .args([
            "listen", "--model", &model, "--input", &wav, "--format", "json", "--device", "cpu",
            "-q",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Real-time pace: after 2.5 s about 2.5 s of the 9 s file have been streamed.
    std::thread::sleep(Duration::from_millis(2500));
    let t0 = Instant::now();
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let o = child.wait_with_output().unwrap();
    let waited = t0.elapsed();
    assert!(
        o.status.success(),
        "a clean stop exits with 0: {:?} {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    let events = json_lines(&o);
    let last = events.last().expect("events");
    assert_eq!(last["is_final"], true);
    let secs = last["audio_seconds"].as_f64().unwrap();
    assert!(
        (1.0..8.0).contains(&secs),
        "stopped after {secs} s of a 9 s file"
    );
    assert!(waited < Duration::from_secs(20));
    eprintln!(
        "stopped after {secs:.2} s of audio, {} events, exit in {waited:?}",
        events.len()
    );
}

#[test]
fn devices_lists_or_says_none() {
    let o = run(&["devices"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.starts_with("host: "), "{out}");
    for kind in ["input", "output"] {
        assert!(
            out.contains(&format!("{kind} devices (* = default):"))
                || out.contains(&format!("no {kind} devices found")),
            "{out}"
        );
    }
    let o = run(&["devices", "--json"]);
    assert!(o.status.success());
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["inputs"].is_array() && v["outputs"].is_array());
    eprintln!("{out}");
}

/// A `~/.asoundrc` that declares an ALSA `null` capture device (zeros, no hardware needed).
const ASOUNDRC: &str = r#"pcm.qwen3_test_null {
    type null
    hint {
        show on
        description "qwen3-speech test capture (ALSA null)"
    }
}
"#;

#[test]
fn microphone_capture_through_cpal() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join(".asoundrc"), ASOUNDRC).unwrap();
    let o = bin()
        .args(["devices", "--json"])
        .env("HOME", home.path())
        .output()
        .unwrap();
    if !o.status.success() {
        eprintln!(
            "SKIPPED: cannot list audio devices here: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        );
        return;
    }
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let inputs: Vec<String> = v["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap_or("").to_string())
        .collect();
    let Some(device) = ["alsa:qwen3_test_null", "alsa:null"]
        .into_iter()
        .find(|d| inputs.iter().any(|i| i == d))
    else {
        eprintln!(
            "SKIPPED: no ALSA null capture device (host {}, inputs {inputs:?}); \
             the cpal capture path cannot be exercised on this machine",
            v["host"]
        );
        return;
    };
    let model = fixture("asr-tiny");
    let o = bin()
        .args([
            "listen",
            "--model",
            &model,
            "--device-name",
            device,
            "--duration",
            "2.5",
            "--chunk-seconds",
            "1",
            "--format",
            "json",
            "--device",
            "cpu",
        ])
        .env("HOME", home.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("listening on"), "{err}");
    let events = json_lines(&o);
    let last = events.last().expect("events");
    assert_eq!(last["is_final"], true);
    // 2.5 s captured at the device rate, resampled to 16 kHz: two 1 s chunks, then the tail.
    let secs = last["audio_seconds"].as_f64().unwrap();
    assert!((secs - 2.5).abs() < 0.01, "{secs}");
    assert_eq!(events.len(), 3);
    eprintln!("captured {secs} s from {device}: {err}");
}
