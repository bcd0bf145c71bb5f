//! The Korean path: soynlp's `LTokenizer` with the reference's dictionary, then cleaning.
//!
//! The reference builds `LTokenizer(scores={w: 1.0 for each dictionary word})` (default score 0,
//! tolerance 0) and runs it on the raw text, punctuation still attached. For every piece of
//! Python's `text.split()`:
//! * a piece of at most 2 characters stays whole;
//! * otherwise every split `L = piece[:e]`, `R = piece[e:]` for `e` in 2..=len is scored 1.0 if
//!   `L` is in the dictionary and 0 otherwise, and the highest score wins with ties going to
//!   the longest `L`. So the split is after the longest dictionary prefix of at least two
//!   characters, and a piece with no such prefix stays whole (`L` = the piece, `R` empty).
//!
//! `L` and then `R` (when not empty) are [`clean_token`](crate::text::clean_token)ed and empty
//! results dropped. CJK ideographs are *not* split on this path ("中国어" stays one word).
//!
//! This is a reimplementation of that algorithm (a few lines in soynlp, which is GPLv3); no
//! soynlp code is used. The dictionary is `assets/korean_dict_jieba.dict` from the qwen-asr
//! 0.0.6 wheel (see `assets/README.md`).

use std::collections::HashSet;
use std::ops::Range;
use std::sync::LazyLock;

use crate::text::{Word, clean_piece, python_split};

/// The reference's `qwen_asr/inference/assets/korean_dict_jieba.dict` (qwen-asr 0.0.6), lines
/// of `word freq tag`.
pub const KOREAN_DICT: &str = include_str!("../assets/korean_dict_jieba.dict");

/// SHA-256 of [`KOREAN_DICT`] (checked by a test).
pub const KOREAN_DICT_SHA256: &str =
    "cc157a9ab78f92bf11ed98a69b285768d6627cf5cd57a581e6c06693effce37d";

struct Dictionary {
    words: HashSet<&'static str>,
    /// Longest word, in characters (no longer prefix can be a hit).
    max_chars: usize,
}

static DICTIONARY: LazyLock<Dictionary> = LazyLock::new(|| {
    // As the reference: strip each line, skip empty ones, take the first whitespace-separated
    // field.
    let words: HashSet<&'static str> = KOREAN_DICT
        .lines()
        .filter_map(|line| {
            let range = python_split(line).into_iter().next()?;
            Some(&line[range])
        })
        .collect();
    let max_chars = words.iter().map(|w| w.chars().count()).max().unwrap_or(0);
    Dictionary { words, max_chars }
});

/// Whether `word` is in the reference's Korean dictionary (17,968 distinct words).
pub fn in_dictionary(word: &str) -> bool {
    DICTIONARY.words.contains(word)
}

/// Number of distinct dictionary words.
pub fn dictionary_len() -> usize {
    DICTIONARY.words.len()
}

/// The `LTokenizer` split of one whitespace-free piece: the byte offset where `R` starts, or
/// `None` when the piece stays whole (`R` empty).
pub fn split_point(token: &str) -> Option<usize> {
    // Byte offset after each character: ends[k] is the end of the first k+1 characters.
    let ends: Vec<usize> = token
        .char_indices()
        .map(|(i, c)| i + c.len_utf8())
        .collect();
    let n = ends.len();
    if n <= 2 {
        return None;
    }
    let dict = &*DICTIONARY;
    // Longest L first: the first hit is the best candidate.
    (2..=n.min(dict.max_chars))
        .rev()
        .map(|e| ends[e - 1])
        .find(|&end| dict.words.contains(&token[..end]))
        .filter(|&end| end < token.len())
}

/// The raw `LTokenizer.tokenize(text)` output (before cleaning) as byte ranges of `text`.
pub fn ltokenize(text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    for piece in python_split(text) {
        match split_point(&text[piece.clone()]) {
            Some(at) => {
                out.push(piece.start..piece.start + at);
                out.push(piece.start + at..piece.end);
            }
            None => out.push(piece),
        }
    }
    out
}

/// The reference's `tokenize_korean`: [`ltokenize`], then clean each piece and drop empties.
pub fn segment_korean(text: &str) -> Vec<Word> {
    let mut out = Vec::new();
    for piece in ltokenize(text) {
        clean_piece(text, piece, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Vec<&str> {
        ltokenize(text).into_iter().map(|r| &text[r]).collect()
    }

    fn words(text: &str) -> Vec<String> {
        segment_korean(text).into_iter().map(|w| w.text).collect()
    }

    #[test]
    fn dictionary_checksum() {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(KOREAN_DICT.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, KOREAN_DICT_SHA256);
    }

    #[test]
    fn dictionary_loads() {
        assert_eq!(KOREAN_DICT.len(), 275_834);
        assert_eq!(KOREAN_DICT.lines().count(), 21_009);
        assert_eq!(dictionary_len(), 17_968);
        assert!(in_dictionary("안녕"));
        assert!(in_dictionary("a"));
        assert!(in_dictionary("ㅡㅡ해튼"));
        assert!(!in_dictionary("안녕하세요"));
    }

    #[test]
    fn ltokenizer_splits() {
        assert_eq!(
            raw("안녕하세요 반갑습니다."),
            ["안녕", "하세요", "반갑", "습니다."]
        );
        // Punctuation is split off only as part of R.
        assert_eq!(raw("안녕,"), ["안녕", ","]);
        assert_eq!(raw("ㅋㅋㅋ 진짜"), ["ㅋㅋ", "ㅋ", "진짜"]);
        // No dictionary prefix: whole.
        assert_eq!(raw("...!?"), ["...!?"]);
        assert!(raw("   ").is_empty());
    }

    #[test]
    fn cleaned_words_and_spans() {
        let t = "안녕하세요 반갑습니다.";
        assert_eq!(words(t), ["안녕", "하세요", "반갑", "습니다"]);
        let spans: Vec<&str> = segment_korean(t).into_iter().map(|w| &t[w.span]).collect();
        assert_eq!(spans, ["안녕", "하세요", "반갑", "습니다"]);
        // No CJK split on this path.
        assert_eq!(words("中国어 日本語"), ["中国어", "日本語"]);
        assert!(words("...!?").is_empty());
    }
}
