//! Output formats of `transcribe`: plain text, JSON lines, SRT and WebVTT.

use std::path::Path;

use clap::ValueEnum;
use qwen3_speech::subtitles::{Cue, CueOptions, build_cues, to_srt, to_vtt};
use qwen3_speech::{Transcription, WordTiming};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Txt,
    Json,
    Srt,
    Vtt,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Txt => "txt",
            Format::Json => "json",
            Format::Srt => "srt",
            Format::Vtt => "vtt",
        }
    }
}

/// Renders one transcription of `path` in `format` (ending with a newline).
pub fn render(format: Format, path: &Path, t: &Transcription) -> String {
    match format {
        Format::Txt => format!("{}\n", t.text),
        Format::Json => {
            let v = serde_json::json!({
                "path": path.display().to_string(),
                "language": t.language,
                "text": t.text,
                "raw": t.raw,
                "duration": round3(t.duration),
                "truncated": t.truncated,
                "segments": t.segments.iter().map(|s| serde_json::json!({
                    "start": round3(s.start), "end": round3(s.end),
                    "text": s.text, "language": s.language,
                })).collect::<Vec<_>>(),
            });
            let mut v = v;
            if let Some(words) = &t.words {
                v["words"] = words_json(words);
            }
            format!("{v}\n")
        }
        Format::Srt | Format::Vtt => {
            let cues = cues(t);
            if format == Format::Srt {
                to_srt(&cues)
            } else {
                to_vtt(&cues)
            }
        }
    }
}

/// `[{"text","start","end"}]`.
pub fn words_json(words: &[WordTiming]) -> serde_json::Value {
    serde_json::Value::Array(
        words
            .iter()
            .map(|w| serde_json::json!({"text": w.text, "start": w.start, "end": w.end}))
            .collect(),
    )
}

/// Subtitle cues: built from the word times when there are any, else one cue per transcribed
/// piece.
fn cues(t: &Transcription) -> Vec<Cue> {
    match &t.words {
        Some(words) => build_cues(&t.text, words, &CueOptions::default()),
        None => t
            .segments
            .iter()
            .filter(|s| !s.text.trim().is_empty())
            .map(|s| Cue {
                start: s.start,
                end: s.end,
                text: s.text.trim().to_string(),
            })
            .collect(),
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use qwen3_speech::Segment;

    fn sample() -> Transcription {
        Transcription {
            language: "English".into(),
            text: "Hello there.General Kenobi.".into(),
            raw: "language English<asr_text>Hello there.".into(),
            duration: 1261.5,
            truncated: false,
            segments: vec![
                Segment {
                    start: 0.0,
                    end: 1199.25,
                    text: "Hello there.".into(),
                    language: "English".into(),
                },
                Segment {
                    start: 1199.25,
                    end: 1261.5,
                    text: "General Kenobi.".into(),
                    language: "English".into(),
                },
            ],
            words: None,
            warnings: Vec::new(),
        }
    }

    #[test]
    fn json_line_has_the_documented_fields() {
        let line = render(Format::Json, Path::new("a.wav"), &sample());
        assert!(line.ends_with('\n') && !line.trim_end().contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        for k in ["path", "language", "text", "raw", "duration"] {
            assert!(v.get(k).is_some(), "missing {k}");
        }
        assert_eq!(v["path"], "a.wav");
        assert_eq!(v["duration"], 1261.5);
    }

    #[test]
    fn json_words_and_timed_subtitles() {
        let mut t = sample();
        t.text = "Hello there. General Kenobi.".into();
        t.words = Some(vec![
            WordTiming {
                text: "Hello".into(),
                start: 0.5,
                end: 0.9,
                span: 0..5,
            },
            WordTiming {
                text: "there".into(),
                start: 1.0,
                end: 1.4,
                span: 6..11,
            },
            WordTiming {
                text: "General".into(),
                start: 3.0,
                end: 3.5,
                span: 13..20,
            },
            WordTiming {
                text: "Kenobi".into(),
                start: 3.6,
                end: 4.2,
                span: 21..27,
            },
        ]);
        let v: serde_json::Value =
            serde_json::from_str(&render(Format::Json, Path::new("a.wav"), &t)).unwrap();
        assert_eq!(
            v["words"][1],
            serde_json::json!({"text": "there", "start": 1.0, "end": 1.4})
        );
        let srt = render(Format::Srt, Path::new("a.wav"), &t);
        assert_eq!(
            srt,
            "1\n00:00:00,500 --> 00:00:01,400\nHello there.\n\n2\n00:00:03,000 --> 00:00:04,200\nGeneral Kenobi.\n\n"
        );
    }

    #[test]
    fn subtitles() {
        let srt = render(Format::Srt, Path::new("a.wav"), &sample());
        assert!(srt.starts_with("1\n00:00:00,000 --> 00:19:59,250\nHello there.\n\n2\n"));
        let vtt = render(Format::Vtt, Path::new("a.wav"), &sample());
        assert!(vtt.starts_with("WEBVTT\n\n00:00:00.000 --> 00:19:59.250\n"));
        assert_eq!(
            render(Format::Txt, Path::new("a"), &sample()),
            "Hello there.General Kenobi.\n"
        );
    }
}
