//! Readable subtitle cues from word timings: SRT and WebVTT.
//!
//! Cues follow common subtitling practice: at most two lines of about 42 columns (CJK and other
//! wide characters count two), at most ~6 s on screen, a new cue after a sentence ends or when
//! the speaker pauses. The cue text is cut from the original transcript, so punctuation and
//! spacing survive even though the aligner times words without them.

use std::fmt::Write;

use crate::aligner::WordTiming;

/// Layout rules for cues.
#[derive(Debug, Clone)]
pub struct CueOptions {
    /// Columns per line.
    pub max_line_columns: usize,
    /// Lines per cue.
    pub max_lines: usize,
    /// Longest time a cue stays on screen, seconds.
    pub max_duration: f64,
    /// A silence at least this long between two words starts a new cue, seconds.
    pub pause: f64,
    /// Shortest time a cue stays on screen when the words allow it, seconds.
    pub min_duration: f64,
}

impl Default for CueOptions {
    fn default() -> Self {
        CueOptions {
            max_line_columns: 42,
            max_lines: 2,
            max_duration: 6.0,
            pause: 0.6,
            min_duration: 0.5,
        }
    }
}

/// One subtitle.
#[derive(Debug, Clone, PartialEq)]
pub struct Cue {
    pub start: f64,
    pub end: f64,
    /// Lines joined with '\n'.
    pub text: String,
}

/// Display width: wide (East Asian) characters take two columns.
pub fn columns(s: &str) -> usize {
    s.chars().map(|c| if is_wide(c) { 2 } else { 1 }).sum()
}

fn is_wide(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x115F | 0x2E80..=0x303E | 0x3041..=0x33FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF
        | 0xA000..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF | 0xFE30..=0xFE4F | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6 | 0x1F300..=0x1F64F | 0x1F900..=0x1F9FF | 0x20000..=0x3FFFD)
}

fn ends_sentence(s: &str) -> bool {
    s.trim_end()
        .chars()
        .last()
        .is_some_and(|c| matches!(c, '.' | '!' | '?' | '。' | '！' | '？' | '…' | ';' | '；'))
}

/// The text each word shows: from its start in `text` to the next word's start (so trailing
/// punctuation and spaces stay with it); the first word also takes any leading text.
fn pieces<'a>(text: &'a str, words: &'a [WordTiming]) -> Vec<&'a str> {
    let valid = |w: &WordTiming| w.span.start <= w.span.end && w.span.end <= text.len();
    if words.is_empty() || !words.iter().all(valid) || !text.is_char_boundary(0) {
        return words.iter().map(|w| w.text.as_str()).collect::<Vec<_>>();
    }
    (0..words.len())
        .map(|i| {
            let start = if i == 0 { 0 } else { words[i].span.start };
            let end = words.get(i + 1).map_or(text.len(), |n| n.span.start);
            if start <= end && text.is_char_boundary(start) && text.is_char_boundary(end) {
                &text[start..end]
            } else {
                words[i].text.as_str()
            }
        })
        .collect()
}

/// Collapses every run of whitespace (line breaks included: a blank line would end an SRT or
/// WebVTT cue) into one space.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Groups timed words of `text` into cues.
pub fn build_cues(text: &str, words: &[WordTiming], opts: &CueOptions) -> Vec<Cue> {
    let pieces = pieces(text, words);
    let fits = |t: &str| layout(t, opts.max_line_columns, opts.max_lines).is_some();
    let mut cues: Vec<Cue> = Vec::new();
    let mut cur = String::new();
    let mut start = 0.0;
    let mut end = 0.0;
    for (w, piece) in words.iter().zip(&pieces) {
        if !cur.is_empty() {
            let gap = w.start - end;
            let too_long = !fits(&one_line(&format!("{cur}{piece}")));
            let too_slow = w.end - start > opts.max_duration;
            if gap >= opts.pause || too_long || too_slow {
                cues.push(Cue {
                    start,
                    end,
                    text: one_line(&cur),
                });
                cur.clear();
            }
        }
        if cur.is_empty() {
            start = w.start;
        }
        cur.push_str(piece);
        end = end.max(w.end).max(w.start);
        if ends_sentence(piece) {
            cues.push(Cue {
                start,
                end,
                text: one_line(&cur),
            });
            cur.clear();
        }
    }
    if !cur.trim().is_empty() {
        cues.push(Cue {
            start,
            end,
            text: one_line(&cur),
        });
    }
    // Very short cues (words the aligner placed at one instant) join the next cue when the
    // text still fits; otherwise they get some screen time without overlapping the next one.
    let mut merged: Vec<Cue> = Vec::with_capacity(cues.len());
    let mut pending: Option<Cue> = None;
    for c in cues {
        let c = match pending.take() {
            Some(p) if fits(&format!("{} {}", p.text, c.text)) => Cue {
                start: p.start,
                end: c.end.max(p.end),
                text: format!("{} {}", p.text, c.text),
            },
            Some(p) => {
                merged.push(p);
                c
            }
            None => c,
        };
        if c.end - c.start < opts.min_duration {
            pending = Some(c);
        } else {
            merged.push(c);
        }
    }
    merged.extend(pending);
    let mut cues = merged;
    for i in 0..cues.len() {
        let next = cues.get(i + 1).map(|c| c.start);
        let c = &mut cues[i];
        if c.end - c.start < opts.min_duration {
            let want = c.start + opts.min_duration;
            c.end = next.map_or(want, |n| want.min(n.max(c.end)));
        }
    }
    for c in &mut cues {
        c.text = match layout(&c.text, opts.max_line_columns, opts.max_lines) {
            Some(lines) => lines.join("\n"),
            // A single word wider than the cue: nothing better than one long line.
            None => c.text.clone(),
        };
    }
    cues.retain(|c| !c.text.is_empty());
    cues
}

/// Lays `text` out in at most `max_lines` lines of `cols` columns: one line when it fits,
/// else two lines as balanced as possible, broken at a space, or between characters for text
/// written without spaces (Chinese, Japanese). `None` when it does not fit.
fn layout(text: &str, cols: usize, max_lines: usize) -> Option<Vec<String>> {
    if columns(text) <= cols {
        return Some(vec![text.to_string()]);
    }
    if max_lines < 2 {
        return None;
    }
    let has_spaces = text.contains(' ');
    let mut best: Option<(usize, usize, usize)> = None; // (max width, cut start, cut end)
    let mut width = 0;
    for (i, c) in text.char_indices() {
        let cut = if has_spaces {
            (c == ' ').then_some((i, i + 1))
        } else {
            (i > 0).then_some((i, i))
        };
        if let Some((a, b)) = cut {
            let left = width;
            let right = columns(&text[b..]);
            let worst = left.max(right);
            if left <= cols && right <= cols && best.is_none_or(|(w, _, _)| worst < w) {
                best = Some((worst, a, b));
            }
        }
        width += if is_wide(c) { 2 } else { 1 };
    }
    best.map(|(_, a, b)| {
        vec![
            text[..a].trim_end().to_string(),
            text[b..].trim_start().to_string(),
        ]
    })
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

/// SubRip text.
pub fn to_srt(cues: &[Cue]) -> String {
    let mut out = String::new();
    for (i, c) in cues.iter().enumerate() {
        let _ = write!(
            out,
            "{}\n{} --> {}\n{}\n\n",
            i + 1,
            timestamp(c.start, ','),
            timestamp(c.end, ','),
            c.text
        );
    }
    out
}

/// WebVTT text.
pub fn to_vtt(cues: &[Cue]) -> String {
    let mut out = String::from("WEBVTT\n\n");
    for c in cues {
        let _ = write!(
            out,
            "{} --> {}\n{}\n\n",
            timestamp(c.start, '.'),
            timestamp(c.end, '.'),
            c.text
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timed(text: &str, times: &[(f64, f64)]) -> Vec<WordTiming> {
        // Words = whitespace-separated tokens without punctuation.
        let mut out = Vec::new();
        let mut pos = 0;
        for (tok, &(s, e)) in text.split_whitespace().zip(times) {
            let at = pos + text[pos..].find(tok).unwrap();
            let clean: String = tok
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == '\'')
                .collect();
            let first = at + tok.find(|c: char| c.is_alphanumeric()).unwrap_or(0);
            out.push(WordTiming {
                text: clean.clone(),
                start: s,
                end: e,
                span: first..first + clean.len(),
            });
            pos = at + tok.len();
        }
        out
    }

    #[test]
    fn sentences_pauses_and_punctuation() {
        let text = "Hello there. How are you? I am   fine";
        let t = [
            (0.0, 0.4),
            (0.5, 0.9),
            (1.0, 1.2),
            (1.3, 1.4),
            (1.5, 1.8),
            (3.0, 3.1),
            (3.2, 3.3),
            (3.4, 3.9),
        ];
        let cues = build_cues(text, &timed(text, &t), &CueOptions::default());
        let texts: Vec<&str> = cues.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, ["Hello there.", "How are you?", "I am fine"]);
        assert_eq!((cues[0].start, cues[0].end), (0.0, 0.9));
        assert_eq!(cues[2].start, 3.0);
    }

    #[test]
    fn long_runs_are_split_and_wrapped() {
        let text = (0..40)
            .map(|i| format!("word{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        let t: Vec<(f64, f64)> = (0..40)
            .map(|i| (i as f64 * 0.3, i as f64 * 0.3 + 0.25))
            .collect();
        let cues = build_cues(&text, &timed(&text, &t), &CueOptions::default());
        assert!(cues.len() > 2);
        for c in &cues {
            assert!(c.text.lines().count() <= 2, "{:?}", c.text);
            assert!(c.text.lines().all(|l| columns(l) <= 42), "{:?}", c.text);
            assert!(c.end - c.start <= 6.0 + 1e-9);
        }
        assert!(cues.windows(2).all(|w| w[0].end <= w[1].start));
    }

    #[test]
    fn line_breaks_in_the_transcript_never_reach_a_cue() {
        let text = "one\r\n\r\ntwo three";
        let words = vec![
            WordTiming {
                text: "one".into(),
                start: 0.0,
                end: 1.0,
                span: 0..3,
            },
            WordTiming {
                text: "two".into(),
                start: 1.0,
                end: 2.0,
                span: 7..10,
            },
            WordTiming {
                text: "three".into(),
                start: 2.0,
                end: 3.0,
                span: 11..16,
            },
        ];
        let cues = build_cues(text, &words, &CueOptions::default());
        assert_eq!(cues.len(), 1);
        assert_eq!(cues[0].text, "one two three");
        assert!(!to_vtt(&cues).contains("\n\n\n"));
    }

    #[test]
    fn cjk_width_and_formats() {
        assert_eq!(columns("我用iPhone"), 10);
        let cjk = layout(&"字".repeat(30), 42, 2).unwrap();
        assert_eq!(cjk.len(), 2);
        assert!(cjk.iter().all(|l| columns(l) <= 42));
        assert!(layout(&"字".repeat(50), 42, 2).is_none());
        let two = layout(
            "aaaa bbbbbbbbbb cccc dddddddddddddddddddd eeeeeeeeeee ffff",
            42,
            2,
        )
        .unwrap();
        assert!(
            two.len() == 2 && two.iter().all(|l| columns(l) <= 42),
            "{two:?}"
        );
        let cues = vec![Cue {
            start: 1.0,
            end: 2.5,
            text: "a\nb".into(),
        }];
        assert_eq!(to_srt(&cues), "1\n00:00:01,000 --> 00:00:02,500\na\nb\n\n");
        assert!(to_vtt(&cues).starts_with("WEBVTT\n\n00:00:01.000 --> 00:00:02.500\n"));
        assert_eq!(timestamp(3723.4567, ','), "01:02:03,457");
    }
}
