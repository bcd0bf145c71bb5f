//! Output formats of `transcribe`: plain text, JSON lines, SRT and WebVTT.

use std::fmt::Write;
use std::path::Path;

use clap::ValueEnum;
use qwen3_speech::Transcription;

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
            format!("{v}\n")
        }
        Format::Srt => {
            let mut out = String::new();
            for (i, s) in cues(t).iter().enumerate() {
                let _ = write!(
                    out,
                    "{}\n{} --> {}\n{}\n\n",
                    i + 1,
                    timestamp(s.0, ','),
                    timestamp(s.1, ','),
                    s.2
                );
            }
            out
        }
        Format::Vtt => {
            let mut out = String::from("WEBVTT\n\n");
            for s in cues(t) {
                let _ = write!(
                    out,
                    "{} --> {}\n{}\n\n",
                    timestamp(s.0, '.'),
                    timestamp(s.1, '.'),
                    s.2
                );
            }
            out
        }
    }
}

/// Subtitle cues: one per transcribed piece with text.
fn cues(t: &Transcription) -> Vec<(f64, f64, String)> {
    t.segments
        .iter()
        .filter(|s| !s.text.trim().is_empty())
        .map(|s| (s.start, s.end, s.text.trim().to_string()))
        .collect()
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// `HH:MM:SS,mmm` (SRT) or `HH:MM:SS.mmm` (WebVTT).
pub fn timestamp(seconds: f64, sep: char) -> String {
    let ms = (seconds.max(0.0) * 1000.0).round() as u64;
    format!(
        "{:02}:{:02}:{:02}{sep}{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
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
    fn subtitles() {
        let srt = render(Format::Srt, Path::new("a.wav"), &sample());
        assert!(srt.starts_with("1\n00:00:00,000 --> 00:19:59,250\nHello there.\n\n2\n"));
        let vtt = render(Format::Vtt, Path::new("a.wav"), &sample());
        assert!(vtt.starts_with("WEBVTT\n\n00:00:00.000 --> 00:19:59.250\n"));
        assert_eq!(timestamp(3723.4567, ','), "01:02:03,457");
        assert_eq!(
            render(Format::Txt, Path::new("a"), &sample()),
            "Hello there.General Kenobi.\n"
        );
    }
}
