//! `Transcriber` with a forced aligner: word times for every piece of the transcript, shifted
//! by the piece's offset, with spans that index into the merged text, and timed subtitles.

mod common;

use common::*;
use qwen3_speech::subtitles::{CueOptions, build_cues};
use qwen3_speech::{AudioInput, DeviceSpec, Transcriber, TranscriberConfig};

fn config(chunk_seconds: f64) -> TranscriberConfig {
    TranscriberConfig {
        device: DeviceSpec::Cpu,
        language: Some("English".into()),
        max_new_tokens: Some(12),
        chunk_seconds,
        aligner: Some(fixture("aligner-tiny").display().to_string()),
        ..TranscriberConfig::default()
    }
}

fn speech() -> Vec<f32> {
    to_f32_vec(&load_tensors("asr-tiny/expected/clip_speech_5p3s.safetensors")["waveform"])
}

#[test]
fn words_are_timed_per_piece_and_shifted() {
    let t = Transcriber::new(&fixture("asr-tiny").display().to_string(), config(1200.0)).unwrap();
    let wave = speech();
    // One piece (5.3 s fits the tiny aligner's 5.12 s range only when shorter: use 4 s).
    let short = &wave[..16000 * 4];
    let out = t.transcribe_samples(short, 16000).unwrap();
    let words = out.words.as_ref().expect("words");
    let aligner = t.aligner().unwrap();
    let direct = aligner
        .align_samples_16k(short, &out.text, "English")
        .unwrap();
    assert_eq!(words, &direct, "one piece: the same as aligning directly");
    for w in words {
        assert_eq!(
            out.text[w.span.clone()]
                .chars()
                .filter(|c| c.is_alphanumeric())
                .count()
                > 0,
            !w.text.is_empty()
        );
        assert!(w.start <= w.end);
    }

    // Split into pieces of at most 2 s: every piece is aligned on its own audio and its
    // words are shifted by the piece's offset.
    let t = Transcriber::new(&fixture("asr-tiny").display().to_string(), config(2.0)).unwrap();
    let out = t
        .transcribe(AudioInput::Samples {
            samples: short,
            sample_rate: 16000,
        })
        .unwrap();
    assert!(out.segments.len() >= 2);
    let words = out.words.as_ref().unwrap();
    let mut text_offset = 0;
    let mut expected = Vec::new();
    for seg in &out.segments {
        if !seg.text.trim().is_empty() {
            let s0 = (seg.start * 16000.0).round() as usize;
            let s1 = (seg.end * 16000.0).round() as usize;
            let mut audio = short[s0..s1].to_vec();
            if audio.len() < 8000 {
                audio.resize(8000, 0.0);
            }
            for w in aligner
                .align_samples_16k(&audio, &seg.text, "English")
                .unwrap()
            {
                let mut w = w;
                w.start = ((w.start + seg.start) * 1000.0).round() / 1000.0;
                w.end = ((w.end + seg.start) * 1000.0).round() / 1000.0;
                w.span = w.span.start + text_offset..w.span.end + text_offset;
                expected.push(w);
            }
        }
        text_offset += seg.text.len();
    }
    assert_eq!(words, &expected);
    // Subtitles from them are well formed.
    let cues = build_cues(&out.text, words, &CueOptions::default());
    assert!(
        cues.iter()
            .all(|c| !c.text.is_empty() && !c.text.contains("\n\n") && c.start <= c.end)
    );
}

#[test]
fn unsupported_languages_leave_a_warning_not_an_error() {
    let mut cfg = config(1200.0);
    cfg.language = Some("Thai".into());
    let t = Transcriber::new(&fixture("asr-tiny").display().to_string(), cfg).unwrap();
    let out = t.transcribe_samples(&speech()[..16000 * 3], 16000).unwrap();
    if !out.text.trim().is_empty() {
        assert_eq!(out.words.as_deref(), Some(&[][..]));
        assert!(
            out.warnings.iter().any(|w| w.contains("does not support")),
            "{:?}",
            out.warnings
        );
    }
    // A missing aligner is a load error that names it.
    let mut cfg = config(1200.0);
    cfg.aligner = Some("/nonexistent/aligner".into());
    let err = Transcriber::new(&fixture("asr-tiny").display().to_string(), cfg)
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/aligner"), "{err}");
}
