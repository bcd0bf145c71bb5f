//! Timed subtitles from the transcriber with an aligner, parsed back by independent SRT and
//! WebVTT parsers (and by ffmpeg when it is installed): every cue reads back with its times
//! and text, in order, and the layout rules hold.

mod common;

use std::str::FromStr;

use common::*;
use qwen3_speech::subtitles::{CueOptions, build_cues, columns, to_srt, to_vtt};
use qwen3_speech::{DeviceSpec, Transcriber, TranscriberConfig, WordTiming};

/// Cues from the real pipeline (tiny models: the text is noise, the structure is real) plus a
/// hand-made transcript with punctuation, pauses, CJK text and a long sentence.
fn cue_sets() -> Vec<Vec<qwen3_speech::subtitles::Cue>> {
    let cfg = TranscriberConfig {
        device: DeviceSpec::Cpu,
        max_new_tokens: Some(40),
        aligner: Some(fixture("aligner-tiny").display().to_string()),
        language: Some("English".into()),
        ..TranscriberConfig::default()
    };
    let t = Transcriber::new(&fixture("asr-tiny").display().to_string(), cfg).unwrap();
    let wave =
        to_f32_vec(&load_tensors("asr-tiny/expected/clip_speech_3p0s.safetensors")["waveform"]);
    let out = t.transcribe_samples(&wave, 16000).unwrap();
    let words = out.words.clone().unwrap();
    let mut sets = vec![build_cues(&out.text, &words, &CueOptions::default())];

    let text = "Mr. Quilter is the apostle of the middle classes, and we are glad to welcome his gospel. \
                Nor is Mr. Quilter's manner less interesting than his matter! 我用iPhone手机。";
    let mut manual = Vec::new();
    let mut t0 = 0.0;
    let mut pos = 0;
    for tok in text.split_whitespace() {
        let at = pos + text[pos..].find(tok).unwrap();
        let clean: String = tok
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == '\'')
            .collect();
        let gap = if tok.ends_with('.') { 0.9 } else { 0.1 };
        manual.push(WordTiming {
            text: clean,
            start: t0,
            end: t0 + 0.3,
            span: at..at + tok.len(),
        });
        t0 += 0.3 + gap;
        pos = at + tok.len();
    }
    sets.push(build_cues(text, &manual, &CueOptions::default()));
    sets
}

#[test]
fn srt_and_vtt_parse_back() {
    for cues in cue_sets() {
        assert!(!cues.is_empty());
        for c in &cues {
            assert!(c.start <= c.end, "{c:?}");
            assert!(c.text.lines().count() <= 2, "{c:?}");
            assert!(
                c.text.lines().all(|l| columns(l) <= 42 || !l.contains(' ')),
                "{c:?}"
            );
        }
        assert!(
            cues.windows(2).all(|w| w[0].end <= w[1].start + 1e-9),
            "cues overlap: {cues:?}"
        );

        let srt = to_srt(&cues);
        let parsed = srtlib::Subtitles::parse_from_str(srt.clone())
            .expect("srtlib parses our SRT")
            .to_vec();
        assert_eq!(parsed.len(), cues.len());
        for (p, c) in parsed.iter().zip(&cues) {
            let (h, m, s, ms) = p.start_time.get();
            let start = h as f64 * 3600.0 + m as f64 * 60.0 + s as f64 + ms as f64 / 1000.0;
            assert!((start - c.start).abs() < 1e-3, "{start} vs {}", c.start);
            assert_eq!(p.text.trim(), c.text);
        }

        let vtt = to_vtt(&cues);
        let parsed = vtt::WebVtt::from_str(&vtt).expect("vtt parses our WebVTT");
        assert_eq!(parsed.cues.len(), cues.len());
        for (p, c) in parsed.cues.iter().zip(&cues) {
            assert!((p.end.as_duration().as_secs_f64() - c.end).abs() < 1e-3);
            assert_eq!(p.payload.trim(), c.text);
        }

        // ffmpeg, when present, reads both and converts them back to SRT with the same cues.
        if std::process::Command::new("ffmpeg")
            .arg("-version")
            .output()
            .is_ok()
        {
            let dir = tempfile::tempdir().unwrap();
            for (name, body) in [("a.srt", &srt), ("a.vtt", &vtt)] {
                let input = dir.path().join(name);
                std::fs::write(&input, body).unwrap();
                let output = dir.path().join(format!("{name}.out.srt"));
                let st = std::process::Command::new("ffmpeg")
                    .args(["-loglevel", "error", "-y", "-i"])
                    .arg(&input)
                    .arg(&output)
                    .status()
                    .unwrap();
                assert!(st.success(), "ffmpeg rejected {name}");
                let back = std::fs::read_to_string(&output).unwrap();
                assert_eq!(back.matches(" --> ").count(), cues.len(), "{name}: {back}");
            }
        }
    }
}
