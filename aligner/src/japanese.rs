//! The Japanese path: an offline approximation of the reference's nagisa segmentation.
//!
//! The reference runs `nagisa.tagging(text).words` (a BiLSTM-CRF word segmenter trained on
//! UniDic-style short units, with a 40 MB DyNet model) and cleans each word. nagisa first strips
//! trailing whitespace, NFKC-normalises the text, maps 'İ' to 'I' and spaces to U+3000, so the
//! words it returns are in NFKC form ("ｶﾀｶﾅ　ＡＢＣ１２３" → カタカナ, ABC, 1, 2, 3). There is no
//! Rust port of nagisa, so this module does the following instead:
//!
//! 1. NFKC-normalise (the `unicode-normalization` crate) and map 'İ' → 'I', keeping for every
//!    output character the byte range of the source characters it came from, so that
//!    [`Word::span`] still points into the original text.
//! 2. Split on (Python) whitespace; words never cross whitespace.
//! 3. Inside each whitespace-free chunk, run TinySegmenter (the `tiniestsegmenter` crate, a
//!    port of Taku Kudo's 2008 n-gram segmenter with its model embedded; MIT/BSD) and use its
//!    boundaries **only between Japanese-script characters** (kana, CJK ideographs,
//!    々〆〇ー…). On top of that a word always ends at a change between Japanese script, decimal
//!    digits and other letters, every decimal digit is a word of its own (as nagisa does:
//!    "12345円" → 1, 2, 3, 4, 5, 円), a run of other letters (Latin, Hangul, Cyrillic…) stays one
//!    word, and punctuation/symbols end a word and are dropped. Combining marks stay with the
//!    character before them.
//! 4. Clean each word with [`is_kept_char`] as the reference does.
//!
//! How the result can differ from the reference:
//! * TinySegmenter's model is much smaller than nagisa's and was trained on a different corpus
//!   and segmentation standard. It tends to cut long hiragana words ("ひらがな" → ひら, が, な;
//!   "こんにちは" → こん, にち, は) and sometimes joins or cuts kanji compounds differently.
//! * nagisa's model is unpredictable on non-Japanese text: it sometimes merges across spaces
//!   ("C 𪜀 D" → one word, "Привет, мир!" → one word), splits Latin words ("ide", "ographic";
//!   "rock'n", "'", "roll"; "é", "cole"), splits Hangul into syllables, or splits
//!   "Ⅻ" → "X", "II". Here other-script runs simply follow whitespace and punctuation.
//! * Unicode: NFKC comes from a newer Unicode version than Python 3.11's 14.0; only characters
//!   with compatibility decompositions added since (e.g. U+1CCF0 outlined digits, U+1E030
//!   Cyrillic modifier letters) normalise differently.
//!
//! Measured on the fixture (tests/golden_aligner_text.rs prints the details): the 12 Japanese
//! strings of `aligner_pure.json` match exactly in 10 cases, word F1 0.93; the `ja_nagisa`
//! alignment case gives 6 of its 7 reference words. The segmentation is deterministic and the
//! same on every platform.

use std::ops::Range;

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::canonical_combining_class;

use crate::text::{Word, WordBuilder, is_kept_char, is_mark, is_python_whitespace};

/// One character of the normalised text with the byte range of its source characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedChar {
    pub ch: char,
    pub source: Range<usize>,
}

/// nagisa's character preprocessing: NFKC, then 'İ' → 'I'; each output character carries the
/// source range of the smallest run of input characters that normalises independently.
pub fn normalize_with_sources(text: &str) -> Vec<NormalizedChar> {
    // Cut the input into chunks at boundaries where normalisation is local: before a starter
    // (combining class 0) that does not compose with or reorder into what precedes it. A chunk
    // is extended as long as normalising it together with the next character differs from
    // normalising the two separately.
    let mut chunks: Vec<Range<usize>> = Vec::new();
    let mut current: Option<Range<usize>> = None;
    for (i, c) in text.char_indices() {
        let next = i..i + c.len_utf8();
        current = Some(match current {
            None => next,
            Some(cur) if canonical_combining_class(c) != 0 => cur.start..next.end,
            Some(cur) => {
                let joined: String = text[cur.start..next.end].nfkc().collect();
                let apart: String = text[cur.clone()].nfkc().chain(c.nfkc()).collect();
                if joined == apart {
                    chunks.push(cur);
                    next
                } else {
                    cur.start..next.end
                }
            }
        });
    }
    chunks.extend(current);

    let mut out = Vec::with_capacity(text.len());
    for r in &chunks {
        out.extend(text[r.clone()].nfkc().map(|ch| NormalizedChar {
            ch: if ch == 'İ' { 'I' } else { ch },
            source: r.clone(),
        }));
    }
    // Safety net: the chunks must normalise to the same text as the whole string. If they
    // ever do not, fall back to one chunk (exact words, coarse spans).
    let whole: Vec<char> = text
        .nfkc()
        .map(|ch| if ch == 'İ' { 'I' } else { ch })
        .collect();
    if whole.len() != out.len() || whole.iter().zip(&out).any(|(a, b)| *a != b.ch) {
        return whole
            .into_iter()
            .map(|ch| NormalizedChar {
                ch,
                source: 0..text.len(),
            })
            .collect();
    }
    out
}

/// Characters that TinySegmenter decides on: kana, CJK ideographs and the Japanese marks that
/// behave like them.
fn is_japanese_script(ch: char) -> bool {
    matches!(
        ch as u32,
        0x3005..=0x3007          // 々 〆 〇
            | 0x303B             // 〻
            | 0x3040..=0x309F    // Hiragana
            | 0x30A0..=0x30FF    // Katakana (incl. ー)
            | 0x31F0..=0x31FF    // Katakana phonetic extensions
            | 0x3400..=0x4DBF    // CJK Extension A
            | 0x4E00..=0x9FFF    // CJK Unified Ideographs
            | 0xF900..=0xFAFF    // CJK Compatibility Ideographs
            | 0x1B000..=0x1B16F  // Kana supplement / extensions, small kana
            | 0x20000..=0x3FFFF // CJK Extensions B-I, compatibility supplement
    )
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Japanese,
    Digit,
    Other,
}

fn class_of(ch: char) -> Class {
    if is_japanese_script(ch) {
        Class::Japanese
    } else if ch.is_ascii_digit()
        || matches!(
            unicode_general_category::get_general_category(ch),
            unicode_general_category::GeneralCategory::DecimalNumber
        )
    {
        Class::Digit
    } else {
        Class::Other
    }
}

/// The Japanese word list (see the module documentation).
pub fn segment_japanese(text: &str) -> Vec<Word> {
    let norm = normalize_with_sources(text);
    let mut out = Vec::new();
    let mut start = 0;
    while start < norm.len() {
        if is_python_whitespace(norm[start].ch) {
            start += 1;
            continue;
        }
        let mut end = start;
        while end < norm.len() && !is_python_whitespace(norm[end].ch) {
            end += 1;
        }
        segment_chunk(&norm[start..end], &mut out);
        start = end;
    }
    out
}

/// One whitespace-free chunk of normalised characters.
fn segment_chunk(chunk: &[NormalizedChar], out: &mut Vec<Word>) {
    let s: String = chunk.iter().map(|c| c.ch).collect();
    // Character indices where TinySegmenter starts a token.
    let mut starts = vec![false; chunk.len()];
    let mut k = 0;
    for token in tiniestsegmenter::tokenize(&s) {
        if k < starts.len() {
            starts[k] = true;
        }
        k += token.chars().count();
    }

    let mut b = WordBuilder::default();
    let mut prev: Option<Class> = None;
    for (k, c) in chunk.iter().enumerate() {
        if !is_kept_char(c.ch) {
            if !is_mark(c.ch) {
                b.flush(out);
                prev = None;
            }
            b.skip(c.ch, c.source.clone());
            continue;
        }
        let class = class_of(c.ch);
        let boundary = match prev {
            None => true,
            Some(p) if p != class => true,
            Some(Class::Digit) => true,
            Some(Class::Japanese) => starts[k],
            Some(Class::Other) => false,
        };
        if boundary && !b.is_empty() {
            b.flush(out);
        }
        b.push(c.ch, c.source.clone());
        prev = Some(class);
    }
    b.flush(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        segment_japanese(text).into_iter().map(|w| w.text).collect()
    }

    #[test]
    fn nfkc_sources() {
        let t = "ｶﾞｷﾞ e\u{301} ①";
        let n = normalize_with_sources(t);
        let s: String = n.iter().map(|c| c.ch).collect();
        assert_eq!(s, "ガギ é 1");
        // ｶﾞ (two source characters) → ガ.
        assert_eq!(&t[n[0].source.clone()], "ｶﾞ");
        assert_eq!(&t[n[1].source.clone()], "ｷﾞ");
        assert_eq!(&t[n[3].source.clone()], "e\u{301}");
        assert_eq!(&t[n[5].source.clone()], "①");
        // Hangul jamo compose across starters.
        let j = "\u{1100}\u{1161}\u{11A8}x";
        let n = normalize_with_sources(j);
        assert_eq!(n.len(), 2);
        assert_eq!(n[0].ch, '각');
        assert_eq!(n[0].source, 0..9);
        assert_eq!(normalize_with_sources("İx")[0].ch, 'I');
        assert!(normalize_with_sources("").is_empty());
    }

    #[test]
    fn japanese_words() {
        assert_eq!(
            words("今日はいい天気ですね。"),
            ["今日", "は", "いい", "天気", "です", "ね"]
        );
        assert_eq!(
            words("私はiPhoneを使っています"),
            ["私", "は", "iPhone", "を", "使っ", "て", "い", "ます"]
        );
        assert_eq!(
            words("ｶﾀｶﾅ　ＡＢＣ１２３ です"),
            ["カタカナ", "ABC", "1", "2", "3", "です"]
        );
        assert_eq!(
            words("１２３４５円です"),
            ["1", "2", "3", "4", "5", "円", "です"]
        );
        assert!(words("").is_empty());
        assert!(words("   ").is_empty());
        assert_eq!(words("ー〜…！？"), ["ー"]);
    }

    #[test]
    fn japanese_spans() {
        let t = "「ｶﾀｶﾅ」と１２円";
        let got: Vec<(String, &str)> = segment_japanese(t)
            .into_iter()
            .map(|w| (w.text, &t[w.span]))
            .collect();
        assert_eq!(
            got,
            [
                ("カタカナ".to_string(), "ｶﾀｶﾅ"),
                ("と".to_string(), "と"),
                ("1".to_string(), "１"),
                ("2".to_string(), "２"),
                ("円".to_string(), "円"),
            ]
        );
    }
}
