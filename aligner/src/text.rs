//! Splitting a transcript into the words the aligner times, as the reference
//! `Qwen3ForceAlignProcessor` (qwen-asr 0.0.6) does.
//!
//! The path is chosen by the lower-cased language name:
//! * `"japanese"`: morphological segmentation ([`crate::japanese`]; an approximation of the
//!   reference's nagisa, see that module);
//! * `"korean"`: soynlp's `LTokenizer` with the reference's dictionary ([`crate::korean`]);
//! * anything else (every other language, including unknown names): split on whitespace as
//!   Python's `str.split()` does, [`clean_token`] each piece, then make every CJK ideograph
//!   ([`is_cjk_char`]) a word of its own while the runs between them stay together
//!   ("我用iPhone手机" → 我, 用, iPhone, 手, 机).
//!
//! Cleaning keeps `'` and the characters whose Unicode general category is a letter (`L*`) or a
//! number (`N*`); punctuation, symbols, spaces, format characters and combining marks are
//! dropped ("नमस्ते" → "नमसत", "café-au-lait" → "caféaulait", "O’Neil" → "ONeil").
//!
//! **Unicode version.** The reference reads categories from Python's `unicodedata`, whose data
//! depends on the Python version (3.11: Unicode 14.0.0, the version the fixtures were made
//! with; 3.12: 15.0; 3.13: 15.1). This module reproduces **Unicode 14.0.0** exactly: it takes the
//! categories from the `unicode-general-category` crate (Unicode 16.0.0) and treats the letters
//! and numbers first assigned in Unicode 15.0–16.0 ([`ASSIGNED_AFTER_UNICODE_14`], 9,392 code
//! points in 43 ranges) as unassigned, which is what Python 3.11 reports for them (`Cn`,
//! dropped). No code point changed between letter/number and another category from 14.0 to
//! 16.0, so the result equals Python 3.11 for every code point. The differences that can matter
//! in practice: CJK Extension H (U+31350–U+323AF) and I (U+2EBF0–U+2EE5D), U+2B739 inside the
//! reference's Extension C range (so it is dropped, not split off as a CJK word), Kawi, Nag
//! Mundari, Garay, Gurung Khema, Kirat Rai, Sunuwar, Todhri, Tulu-Tigalari, the Egyptian
//! hieroglyph extension and a few Latin/Cyrillic additions (U+A7CB–A7CD, U+A7DA–A7DC,
//! U+1C89–1C8A, the Cyrillic modifier letters U+1E030–1E06D).
//!
//! Note that `char::is_alphabetic`/`is_alphanumeric` are **not** this test: they follow the
//! `Alphabetic` property, which includes combining marks such as U+093E (DEVANAGARI VOWEL SIGN
//! AA, `Mc`) that the reference drops.
//!
//! **Spans.** Every [`Word`] records the byte range of the original text it came from: from its
//! first source character to its last one, extended over combining marks attached to that last
//! character (so that a span never ends inside a grapheme cluster: the span of "cafe\u{301}" is
//! the whole word even though the accent is not part of the cleaned text). Punctuation between
//! the first and the last character is inside the span ("café-au-lait").

use std::ops::Range;

use qwen3_speech_engine::Result;
use unicode_general_category::{GeneralCategory, get_general_category};

/// One unit the aligner times.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Word {
    /// The word exactly as the reference's word list has it (cleaned; NFKC-normalised on the
    /// Japanese path).
    pub text: String,
    /// Byte range in the original text, from the first to the last source character that
    /// produced the word (plus combining marks attached to the last one).
    pub span: Range<usize>,
}

/// The reference's word list for `text` in `language` (case-insensitive; see the module
/// documentation for the three paths). Never fails today; the `Result` leaves room for
/// segmenters that can.
pub fn segment(text: &str, language: &str) -> Result<Vec<Word>> {
    Ok(match language.to_lowercase().as_str() {
        "japanese" => crate::japanese::segment_japanese(text),
        "korean" => crate::korean::segment_korean(text),
        _ => segment_space_lang(text),
    })
}

/// The word texts only (the list the reference puts into the prompt).
pub fn word_texts(words: &[Word]) -> Vec<&str> {
    words.iter().map(|w| w.text.as_str()).collect()
}

/// The reference's `is_kept_char`: `'` or a letter/number in Unicode 14.0.
pub fn is_kept_char(ch: char) -> bool {
    ch == '\'' || is_letter_or_number_u14(ch)
}

/// The reference's `clean_token`: the kept characters of `token`, in order.
pub fn clean_token(token: &str) -> String {
    token.chars().filter(|&c| is_kept_char(c)).collect()
}

/// The reference's `is_cjk_char`: CJK Unified Ideographs and Extensions A–E plus the
/// compatibility ideographs (by range, assigned or not). Kana, Hangul, Extensions F–I and the
/// compatibility supplement are not included.
pub fn is_cjk_char(ch: char) -> bool {
    matches!(
        ch as u32,
        0x4E00..=0x9FFF
            | 0x3400..=0x4DBF
            | 0x20000..=0x2A6DF
            | 0x2A700..=0x2B73F
            | 0x2B740..=0x2B81F
            | 0x2B820..=0x2CEAF
            | 0xF900..=0xFAFF
    )
}

/// Python's `str.isspace()`, which is what `str.split()` without arguments splits on: the
/// Unicode `White_Space` characters plus U+001C–U+001F (bidi class B/S). Rust's
/// `char::is_whitespace` lacks those four.
pub fn is_python_whitespace(ch: char) -> bool {
    ch.is_whitespace() || ('\u{1C}'..='\u{1F}').contains(&ch)
}

/// Byte ranges of the pieces of Python's `text.split()`.
pub fn python_split(text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (is_python_whitespace(c), start) {
            (true, Some(s)) => {
                out.push(s..i);
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push(s..text.len());
    }
    out
}

/// Whether `ch` is a combining mark (general category `M*`).
pub(crate) fn is_mark(ch: char) -> bool {
    matches!(
        get_general_category(ch),
        GeneralCategory::NonspacingMark
            | GeneralCategory::SpacingMark
            | GeneralCategory::EnclosingMark
    )
}

fn is_letter_or_number_u14(ch: char) -> bool {
    use GeneralCategory::*;
    let ln = matches!(
        get_general_category(ch),
        UppercaseLetter
            | LowercaseLetter
            | TitlecaseLetter
            | ModifierLetter
            | OtherLetter
            | DecimalNumber
            | LetterNumber
            | OtherNumber
    );
    ln && !assigned_after_unicode_14(ch)
}

fn assigned_after_unicode_14(ch: char) -> bool {
    let cp = ch as u32;
    if cp < ASSIGNED_AFTER_UNICODE_14[0].0 {
        return false;
    }
    ASSIGNED_AFTER_UNICODE_14
        .binary_search_by(|&(lo, hi)| {
            if hi < cp {
                std::cmp::Ordering::Less
            } else if lo > cp {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// The Unicode version of the category table in use (asserted by a test: a crate update must
/// recompute [`ASSIGNED_AFTER_UNICODE_14`]).
pub const GENERAL_CATEGORY_UNICODE_VERSION: (u64, u64, u64) =
    unicode_general_category::UNICODE_VERSION;

/// Letters and numbers (`L*`/`N*`) in Unicode 16.0.0 that are unassigned (`Cn`) in Unicode
/// 14.0.0, as inclusive code point ranges, sorted. Computed by comparing the
/// `unicode-general-category` 1.1.0 table with Python 3.11.7's `unicodedata` (14.0.0) over all
/// code points; the reverse difference (letters/numbers in 14.0 that are not in 16.0) is empty.
pub const ASSIGNED_AFTER_UNICODE_14: [(u32, u32); 43] = [
    (0x1C89, 0x1C8A),
    (0xA7CB, 0xA7CD),
    (0xA7DA, 0xA7DC),
    (0x105C0, 0x105F3),
    (0x10D40, 0x10D65),
    (0x10D6F, 0x10D85),
    (0x10EC2, 0x10EC4),
    (0x1123F, 0x11240),
    (0x11380, 0x11389),
    (0x1138B, 0x1138B),
    (0x1138E, 0x1138E),
    (0x11390, 0x113B5),
    (0x113B7, 0x113B7),
    (0x113D1, 0x113D1),
    (0x113D3, 0x113D3),
    (0x116D0, 0x116E3),
    (0x11BC0, 0x11BE0),
    (0x11BF0, 0x11BF9),
    (0x11F02, 0x11F02),
    (0x11F04, 0x11F10),
    (0x11F12, 0x11F33),
    (0x11F50, 0x11F59),
    (0x1342F, 0x1342F),
    (0x13441, 0x13446),
    (0x13460, 0x143FA),
    (0x16100, 0x1611D),
    (0x16130, 0x16139),
    (0x16D40, 0x16D6C),
    (0x16D70, 0x16D79),
    (0x18CFF, 0x18CFF),
    (0x1B132, 0x1B132),
    (0x1B155, 0x1B155),
    (0x1CCF0, 0x1CCF9),
    (0x1D2C0, 0x1D2D3),
    (0x1DF25, 0x1DF2A),
    (0x1E030, 0x1E06D),
    (0x1E4D0, 0x1E4EB),
    (0x1E4F0, 0x1E4F9),
    (0x1E5D0, 0x1E5ED),
    (0x1E5F0, 0x1E5FA),
    (0x2B739, 0x2B739),
    (0x2EBF0, 0x2EE5D),
    (0x31350, 0x323AF),
];

/// Accumulates one cleaned word and its source span.
#[derive(Default)]
pub(crate) struct WordBuilder {
    text: String,
    span: Option<Range<usize>>,
    /// Whether the last source character seen belongs to the word (a kept character, or a mark
    /// attached to one), so that following marks extend the span.
    attached: bool,
}

impl WordBuilder {
    /// A kept character whose source is `src` (byte range in the original text).
    pub(crate) fn push(&mut self, ch: char, src: Range<usize>) {
        self.text.push(ch);
        self.span = Some(match self.span.take() {
            Some(s) => s.start..src.end.max(s.end),
            None => src,
        });
        self.attached = true;
    }

    /// A character that is not part of the cleaned word: a combining mark right after the
    /// word's characters extends the span; anything else only detaches.
    pub(crate) fn skip(&mut self, ch: char, src: Range<usize>) {
        if self.attached && is_mark(ch) {
            if let Some(s) = &mut self.span {
                s.end = s.end.max(src.end);
            }
        } else {
            self.attached = false;
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Ends the word: pushes it to `out` if it has text.
    pub(crate) fn flush(&mut self, out: &mut Vec<Word>) {
        let b = std::mem::take(self);
        if let (false, Some(span)) = (b.text.is_empty(), b.span) {
            out.push(Word { text: b.text, span });
        }
    }
}

/// Cleans the piece `text[range]` into at most one word (the Korean path and the pieces of the
/// other paths that are not split further).
pub(crate) fn clean_piece(text: &str, range: Range<usize>, out: &mut Vec<Word>) {
    let mut b = WordBuilder::default();
    for (i, c) in text[range.clone()].char_indices() {
        let src = range.start + i..range.start + i + c.len_utf8();
        if is_kept_char(c) {
            b.push(c, src);
        } else {
            b.skip(c, src);
        }
    }
    b.flush(out);
}

/// `tokenize_space_lang`: whitespace split, clean, one word per CJK ideograph.
fn segment_space_lang(text: &str) -> Vec<Word> {
    let mut out: Vec<Word> = Vec::new();
    for piece in python_split(text) {
        let mut b = WordBuilder::default();
        // Whether the last source character was an ideograph just emitted as its own word (or
        // a mark attached to it): following marks (variation selectors) extend its span.
        let mut after_ideograph = false;
        for (i, c) in text[piece.clone()].char_indices() {
            let src = piece.start + i..piece.start + i + c.len_utf8();
            if !is_kept_char(c) {
                if after_ideograph && is_mark(c) {
                    if let Some(w) = out.last_mut() {
                        w.span.end = src.end;
                    }
                } else {
                    after_ideograph = false;
                    b.skip(c, src);
                }
            } else if is_cjk_char(c) {
                b.flush(&mut out);
                out.push(Word {
                    text: c.to_string(),
                    span: src,
                });
                after_ideograph = true;
            } else {
                after_ideograph = false;
                b.push(c, src);
            }
        }
        b.flush(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str, lang: &str) -> Vec<String> {
        segment(text, lang)
            .unwrap()
            .into_iter()
            .map(|w| w.text)
            .collect()
    }

    fn spans<'a>(text: &'a str, lang: &str) -> Vec<&'a str> {
        segment(text, lang)
            .unwrap()
            .into_iter()
            .map(|w| &text[w.span])
            .collect()
    }

    #[test]
    fn category_table_version() {
        // ASSIGNED_AFTER_UNICODE_14 was computed against this table; recompute it on an update.
        assert_eq!(GENERAL_CATEGORY_UNICODE_VERSION, (16, 0, 0));
        assert!(
            ASSIGNED_AFTER_UNICODE_14
                .windows(2)
                .all(|w| w[0].1 < w[1].0)
        );
    }

    #[test]
    fn kept_chars() {
        for c in [
            '\'', 'a', 'Ǆ', 'ǅ', 'ʰ', '0', '²', '½', 'Ⅻ', '々', 'ー', '가', '𠀀',
        ] {
            assert!(is_kept_char(c), "{c:?}");
        }
        // Marks (U+093E is Alphabetic in Rust's sense but Mc), punctuation, symbols, spaces,
        // format characters, unassigned-in-14.0 code points.
        for c in [
            '\u{301}',
            '\u{93E}',
            '\u{94D}',
            '’',
            '-',
            '_',
            '😀',
            ' ',
            '\u{3000}',
            '\u{200B}',
            '\u{AD}',
            '\u{2B739}',
            '\u{31350}',
            '\u{FAFF}',
        ] {
            assert!(!is_kept_char(c), "{c:?}");
        }
        assert!('\u{93E}'.is_alphabetic());
    }

    #[test]
    fn cjk_ranges() {
        for c in [
            '\u{4E00}',
            '\u{9FFF}',
            '\u{3400}',
            '\u{F900}',
            '\u{2CEAF}',
            '\u{2B739}',
        ] {
            assert!(is_cjk_char(c), "{c:?}");
        }
        for c in [
            '\u{3007}',
            'カ',
            '가',
            '\u{2CEB0}',
            '\u{2F800}',
            '\u{30000}',
        ] {
            assert!(!is_cjk_char(c), "{c:?}");
        }
    }

    #[test]
    fn python_whitespace() {
        let t = "a\u{1C}b\u{85}c\u{A0}d\u{3000}e\u{200B}f  ";
        let pieces: Vec<&str> = python_split(t).into_iter().map(|r| &t[r]).collect();
        assert_eq!(pieces, ["a", "b", "c", "d", "e\u{200B}f"]);
        assert!(python_split(" \t\n ").is_empty());
        assert!(python_split("").is_empty());
    }

    #[test]
    fn space_languages() {
        assert_eq!(
            words("Mr. Quilter's gospel, isn't it?", "English"),
            ["Mr", "Quilter's", "gospel", "isn't", "it"]
        );
        assert_eq!(
            words("我用iPhone手机", "Chinese"),
            ["我", "用", "iPhone", "手", "机"]
        );
        assert_eq!(words("café-au-lait", "klingon"), ["caféaulait"]);
        assert_eq!(words("नमस्ते दुनिया", "Hindi"), ["नमसत", "दनय"]);
        assert!(words("... !? —", "English").is_empty());
        assert!(words("", "English").is_empty());
    }

    #[test]
    fn spans_cover_source() {
        assert_eq!(
            spans("Mr. Quilter's gospel, isn't it?", "English"),
            ["Mr", "Quilter's", "gospel", "isn't", "it"]
        );
        assert_eq!(spans("café-au-lait!", "English"), ["café-au-lait"]);
        // Trailing combining marks belong to the word; the leading one has no base.
        assert_eq!(
            spans("cafe\u{301} \u{301}x", "English"),
            ["cafe\u{301}", "x"]
        );
        assert_eq!(spans("नमस्ते", "Hindi"), ["नमस्ते"]);
        assert_eq!(
            spans("我用iPhone手机。", "Chinese"),
            ["我", "用", "iPhone", "手", "机"]
        );
        assert_eq!(spans("«a-b»你-好", "Chinese"), ["a-b", "你", "好"]);
        // An ideographic variation selector stays with its ideograph.
        assert_eq!(spans("葛\u{E0100}城", "Chinese"), ["葛\u{E0100}", "城"]);
    }
}
