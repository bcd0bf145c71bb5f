//! The bindings as apps see them: generated sources and foreign test suites run against the
//! host build of the library (`target/<profile>/libqwen3_speech_mobile.so`).
//!
//! * `generated_sources_are_up_to_date`: the committed Kotlin and Swift sources equal what the
//!   generator writes now (`bindings/mobile/generate.sh` refreshes them).
//! * `python_suite`: uniffi's Python bindings of the same library run `tests/python/test_mobile.py`
//!   (needs only `python3`).
//! * `kotlin_suite`: the Kotlin bindings, compiled with the test `tests/kotlin/MobileTest.kt` and
//!   run on the JVM with JNA. Needs a Kotlin compiler and JNA: `QWEN3_SPEECH_KOTLINC` names a
//!   folder with the compiler's jars (see `.ci/run`), `QWEN3_SPEECH_JNA` the JNA jar (default
//!   `/usr/share/java/jna.jar`). Without them the suite is skipped with a note, unless
//!   `QWEN3_SPEECH_REQUIRE_KOTLIN=1` (CI) makes that a failure.
//!
//! Both suites compare against values computed here with the Rust facade on the same inputs
//! (the binding must give the same results) and against the reference's recorded TTS outputs;
//! they are handed over in `expected.txt` (`key=hex(utf-8 value)` lines).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use qwen3_speech as q;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures").join(name)
}

fn bindgen() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_uniffi-bindgen"))
}

/// The cdylib built with this test (in `deps/` next to the generator: a test build does not
/// copy it up to the profile folder).
fn library() -> PathBuf {
    let lib = bindgen().parent().unwrap().join("deps").join(format!(
        "{}qwen3_speech_mobile{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    assert!(lib.is_file(), "{} was not built", lib.display());
    lib
}

fn work_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Show the suite's own report in the test output (`--nocapture`).
    print!("{}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
}

fn generate(language: &str, out: &Path) {
    run(Command::new(bindgen())
        .args([
            "generate",
            "--no-format",
            "--language",
            language,
            "--config",
        ])
        .arg(repo().join("bindings/mobile/bindgen.toml"))
        .arg("--out-dir")
        .arg(out)
        .arg(library()));
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn generated_sources_are_up_to_date() {
    let tmp = work_dir("generated");
    generate("kotlin", &tmp.join("kotlin"));
    generate("swift", &tmp.join("swift"));
    let mobile = repo().join("bindings/mobile");
    // (generated file, committed copy): the layout generate.sh writes.
    let pairs = [
        (
            tmp.join("kotlin/io/github/qwen3speech/qwen3speech.kt"),
            mobile.join("kotlin/src/main/kotlin/io/github/qwen3speech/Qwen3Speech.kt"),
        ),
        (
            tmp.join("swift/Qwen3Speech.swift"),
            mobile.join("swift/Sources/Qwen3Speech/Qwen3Speech.swift"),
        ),
        (
            tmp.join("swift/Qwen3SpeechFFI.h"),
            mobile.join("swift/include/Qwen3SpeechFFI.h"),
        ),
        (
            tmp.join("swift/Qwen3SpeechFFI.modulemap"),
            mobile.join("swift/include/module.modulemap"),
        ),
    ];
    for (generated, committed) in pairs {
        assert!(
            read(&generated) == read(&committed),
            "{} is out of date: run bindings/mobile/generate.sh",
            committed.display()
        );
    }
    // The generated Kotlin is the API apps use: spot-check its surface.
    let kt = read(&tmp.join("kotlin/io/github/qwen3speech/qwen3speech.kt"));
    for name in [
        "package io.github.qwen3speech",
        "class Transcriber",
        "class StreamingSession",
        "class Synthesizer",
        "class CancelToken",
        "interface LoadProgressListener",
        "interface SpeechListener",
        "sealed class SpeechException",
        "class Cancelled",
    ] {
        assert!(kt.contains(name), "the Kotlin bindings lack `{name}`");
    }
}

fn hex(s: &str) -> String {
    s.bytes().fold(String::new(), |mut h, b| {
        let _ = write!(h, "{b:02x}");
        h
    })
}

fn clip() -> Vec<f32> {
    let path = fixture("asr-tiny/expected/clip_speech_3p0s.safetensors");
    let t = candle_core::safetensors::load(&path, &candle_core::Device::Cpu).unwrap();
    t["waveform"].to_vec1::<f32>().unwrap()
}

fn to_i16(x: &[f32]) -> Vec<i16> {
    x.iter()
        .map(|&s| (s.clamp(-1.0, 1.0) * 32767.0).round() as i16)
        .collect()
}

/// Inputs and expected values shared by the suites, written once into a folder.
fn expectations() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = work_dir("expectations");
        let clip = clip();
        let clip16 = to_i16(&clip);
        let mut f32_bytes = Vec::new();
        clip.iter()
            .for_each(|s| f32_bytes.extend_from_slice(&s.to_le_bytes()));
        std::fs::write(dir.join("clip_16k.f32"), f32_bytes).unwrap();
        let mut i16_bytes = Vec::new();
        clip16
            .iter()
            .for_each(|s| i16_bytes.extend_from_slice(&s.to_le_bytes()));
        std::fs::write(dir.join("clip_16k.i16"), i16_bytes).unwrap();

        let mut e: BTreeMap<&str, String> = BTreeMap::new();
        let path = |p: PathBuf| p.canonicalize().unwrap().display().to_string();
        e.insert("asr_dir", path(fixture("asr-tiny")));
        e.insert("aligner_dir", path(fixture("aligner-tiny")));
        e.insert("tts_dir", path(fixture("tts-tiny/custom_voice")));
        e.insert("wav_file", path(fixture("audio/pcm16_16k_mono.wav")));
        e.insert("clip_f32", path(dir.join("clip_16k.f32")));
        e.insert("clip_i16", path(dir.join("clip_16k.i16")));

        // ASR with the facade, configured as the suites configure the binding.
        let config = q::TranscriberConfig {
            max_new_tokens: Some(24),
            attention: q::EncoderAttention::Full,
            device: q::DeviceSpec::Cpu,
            dtype: Some(q::ComputeDType::F32),
            aligner: Some(fixture("aligner-tiny").display().to_string()),
            ..q::TranscriberConfig::default()
        };
        let t = q::Transcriber::from_dir(q::ModelDir::open(fixture("asr-tiny")).unwrap(), config)
            .unwrap();
        let plain = q::TranscribeOptions {
            word_timestamps: Some(false),
            ..Default::default()
        };
        let r = t
            .transcribe_with(
                q::AudioInput::Samples {
                    samples: &clip,
                    sample_rate: 16000,
                },
                &plain,
            )
            .unwrap();
        assert!(!r.text.is_empty());
        e.insert("asr.text", r.text.clone());
        e.insert("asr.language", r.language.clone());
        e.insert("asr.raw", r.raw.clone());
        let i16f: Vec<f32> = clip16.iter().map(|&s| f32::from(s) / 32768.0).collect();
        let r16 = t
            .transcribe_with(
                q::AudioInput::Samples {
                    samples: &i16f,
                    sample_rate: 16000,
                },
                &plain,
            )
            .unwrap();
        e.insert("asr_i16.text", r16.text);
        let rf = t
            .transcribe_with(
                q::AudioInput::Path(&fixture("audio/pcm16_16k_mono.wav")),
                &plain,
            )
            .unwrap();
        e.insert("asr_file.text", rf.text);
        // Word times: forcing English gives the aligner a language.
        let words = q::TranscribeOptions {
            language: Some("English".into()),
            word_timestamps: Some(true),
            ..Default::default()
        };
        let rw = t
            .transcribe_with(
                q::AudioInput::Samples {
                    samples: &clip,
                    sample_rate: 16000,
                },
                &words,
            )
            .unwrap();
        let ws = rw.words.clone().unwrap();
        assert!(!ws.is_empty(), "the aligner timed no word: {rw:?}");
        e.insert("words.text", rw.text.clone());
        e.insert(
            "words.list",
            ws.iter()
                .map(|w| format!("{}|{:.3}|{:.3}", w.text, w.start, w.end))
                .collect::<Vec<_>>()
                .join("\n"),
        );

        // Streaming: 0.5 s pieces of 16-bit PCM, 1 s chunks.
        let stream_options = q::StreamOptions {
            chunk_seconds: 1.0,
            max_new_tokens: Some(8),
            ..q::StreamOptions::default()
        };
        let mut st = t.stream(stream_options.clone()).unwrap();
        let mut events = 0;
        for piece in clip16.chunks(8000) {
            events += st.push_i16(piece, 16000).unwrap().len();
        }
        let fin = st.finish().unwrap();
        assert!(fin.is_final);
        e.insert("stream.events", events.to_string());
        e.insert("stream.text", fin.text);
        e.insert("stream.language", fin.language);
        // The same stream cut into segments of about 2 s.
        let mut st = t
            .stream(q::StreamOptions {
                max_segment_seconds: Some(2.0),
                ..stream_options.clone()
            })
            .unwrap();
        let mut segments = 0;
        for piece in clip16.chunks(8000) {
            for ev in st.push_i16(piece, 16000).unwrap() {
                segments += usize::from(ev.segment_closed);
            }
        }
        let fin = st.finish().unwrap();
        assert!(segments > 0);
        e.insert("stream.segments_closed", segments.to_string());
        e.insert("stream.segmented_text", fin.text);

        // TTS: the reference's recorded greedy case (codes of the first codebook, frames,
        // samples), as the golden tests check it for the Rust API.
        let cases: serde_json::Value =
            serde_json::from_str(&read(&fixture("tts-tiny/custom_voice/expected/cases.json")))
                .unwrap();
        let case = cases["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "cv_ryan_en_stream")
            .unwrap();
        let s = &case["samples"][0];
        let code0: Vec<String> = s["code0"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.to_string())
            .collect();
        e.insert("tts.text", case["inputs"]["text"].as_str().unwrap().into());
        e.insert(
            "tts.speaker",
            case["inputs"]["speaker"].as_str().unwrap().into(),
        );
        e.insert(
            "tts.language",
            case["inputs"]["language"].as_str().unwrap().into(),
        );
        e.insert(
            "tts.max_frames",
            case["settings"]["max_new_tokens"].to_string(),
        );
        e.insert(
            "tts.repetition_penalty",
            case["settings"]["repetition_penalty"].to_string(),
        );
        e.insert("tts.code0", code0.join(","));
        e.insert("tts.frames", s["frames"].to_string());
        e.insert("tts.wav_len", s["wav_len"].to_string());

        let text: String = e.iter().map(|(k, v)| format!("{k}={}\n", hex(v))).collect();
        std::fs::write(dir.join("expected.txt"), text).unwrap();
        dir
    })
}

#[test]
fn python_suite() {
    let dir = work_dir("python");
    generate("python", &dir);
    let lib = library();
    std::fs::copy(&lib, dir.join(lib.file_name().unwrap())).unwrap();
    let expected = expectations().join("expected.txt");
    run(Command::new("python3")
        .arg(repo().join("bindings/mobile/tests/python/test_mobile.py"))
        .env("PYTHONPATH", &dir)
        .env("QWEN3_SPEECH_EXPECTED", expected)
        .env("PYTHONDONTWRITEBYTECODE", "1"));
}

/// The compiler's classpath and the JNA jar, when available.
fn kotlin_toolchain() -> Option<(String, PathBuf, PathBuf)> {
    let dir = PathBuf::from(std::env::var_os("QWEN3_SPEECH_KOTLINC")?);
    let jars: Vec<PathBuf> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jar"))
        .collect();
    let find = |prefix: &str| {
        jars.iter()
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
            .cloned()
    };
    let compiler = find("kotlin-jupyter-kernel").or_else(|| find("kotlin-compiler"))?;
    let stdlib = find("kotlin-stdlib")?;
    let jna = std::env::var_os("QWEN3_SPEECH_JNA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/java/jna.jar"));
    if !jna.is_file() {
        return None;
    }
    let sep = if cfg!(windows) { ";" } else { ":" };
    let cp = format!("{}{sep}{}", compiler.display(), stdlib.display());
    Some((cp, stdlib, jna))
}

#[test]
fn kotlin_suite() {
    let Some((compiler_cp, stdlib, jna)) = kotlin_toolchain() else {
        let required = std::env::var("QWEN3_SPEECH_REQUIRE_KOTLIN").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "QWEN3_SPEECH_REQUIRE_KOTLIN=1 but no Kotlin compiler (QWEN3_SPEECH_KOTLINC) or JNA jar"
        );
        eprintln!(
            "kotlin_suite skipped: set QWEN3_SPEECH_KOTLINC to a folder with the Kotlin compiler jars"
        );
        return;
    };
    let dir = work_dir("kotlin");
    generate("kotlin", &dir.join("src"));
    let sep = if cfg!(windows) { ";" } else { ":" };
    let lib_cp = format!("{}{sep}{}", jna.display(), stdlib.display());
    run(Command::new("java")
        .arg("-cp")
        .arg(&compiler_cp)
        .arg("org.jetbrains.kotlin.cli.jvm.K2JVMCompiler")
        .args(["-no-stdlib", "-no-reflect", "-nowarn", "-cp", &lib_cp, "-d"])
        .arg(dir.join("classes"))
        .arg(dir.join("src/io/github/qwen3speech/qwen3speech.kt"))
        .arg(repo().join("bindings/mobile/tests/kotlin/MobileTest.kt")));
    let lib = library();
    run(Command::new("java")
        .arg(format!(
            "-Djna.library.path={}",
            lib.parent().unwrap().display()
        ))
        .arg("-cp")
        .arg(format!("{}{sep}{lib_cp}", dir.join("classes").display()))
        .arg("MobileTestKt")
        .env("QWEN3_SPEECH_EXPECTED", expectations().join("expected.txt")));
}
