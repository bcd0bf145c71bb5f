//! Text handling around the ASR model: language names, output parsing, repetition repair.
//!
//! These follow `qwen_asr.inference.utils` exactly, including Python's notion of whitespace and
//! line breaks and code-point indexing, because their output is what users see.

use qwen3_speech_engine::{Error, Result};

/// The languages Qwen3-ASR can be told to transcribe in (the reference's list, in its order).
pub const SUPPORTED_LANGUAGES: [&str; 30] = [
    "Chinese",
    "English",
    "Cantonese",
    "Arabic",
    "German",
    "French",
    "Spanish",
    "Portuguese",
    "Indonesian",
    "Italian",
    "Korean",
    "Russian",
    "Thai",
    "Vietnamese",
    "Japanese",
    "Turkish",
    "Hindi",
    "Malay",
    "Dutch",
    "Swedish",
    "Danish",
    "Finnish",
    "Polish",
    "Czech",
    "Filipino",
    "Persian",
    "Greek",
    "Romanian",
    "Hungarian",
    "Macedonian",
];

/// ISO 639 codes accepted as a convenience for the names above.
const LANGUAGE_CODES: [(&str, &str); 31] = [
    ("zh", "Chinese"),
    ("en", "English"),
    ("yue", "Cantonese"),
    ("ar", "Arabic"),
    ("de", "German"),
    ("fr", "French"),
    ("es", "Spanish"),
    ("pt", "Portuguese"),
    ("id", "Indonesian"),
    ("it", "Italian"),
    ("ko", "Korean"),
    ("ru", "Russian"),
    ("th", "Thai"),
    ("vi", "Vietnamese"),
    ("ja", "Japanese"),
    ("tr", "Turkish"),
    ("hi", "Hindi"),
    ("ms", "Malay"),
    ("nl", "Dutch"),
    ("sv", "Swedish"),
    ("da", "Danish"),
    ("fi", "Finnish"),
    ("pl", "Polish"),
    ("cs", "Czech"),
    ("fil", "Filipino"),
    ("tl", "Filipino"),
    ("fa", "Persian"),
    ("el", "Greek"),
    ("ro", "Romanian"),
    ("hu", "Hungarian"),
    ("mk", "Macedonian"),
];

/// Python's `str.isspace`: Unicode White_Space plus the information separators U+001C..U+001F.
pub fn py_is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.strip()`.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(py_is_space)
}

/// Python's `str.splitlines()` (without keepends).
pub fn py_splitlines(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let is_break = matches!(
            c,
            '\n' | '\r'
                | '\u{0b}'
                | '\u{0c}'
                | '\u{1c}'
                | '\u{1d}'
                | '\u{1e}'
                | '\u{85}'
                | '\u{2028}'
                | '\u{2029}'
        );
        if is_break {
            out.push(&s[start..i]);
            let mut end = i + c.len_utf8();
            if c == '\r'
                && let Some(&(j, '\n')) = chars.peek()
            {
                chars.next();
                end = j + 1;
            }
            start = end;
        }
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}

/// `normalize_language_name`: trimmed, first character upper-cased, the rest lower-cased.
pub fn normalize_language_name(language: &str) -> Result<String> {
    let s = py_strip(language);
    let mut chars = s.chars();
    match chars.next() {
        None => Err(Error::InvalidArgument("language is empty".into())),
        Some(first) => {
            let mut out: String = first.to_uppercase().collect();
            out.push_str(&chars.as_str().to_lowercase());
            Ok(out)
        }
    }
}

/// Resolves a user-supplied language (a name in any case, or an ISO code such as `en`) to the
/// canonical name the prompt uses; unknown languages are an error listing the supported ones.
pub fn resolve_language(language: &str) -> Result<String> {
    let trimmed = py_strip(language);
    let lower = trimmed.to_lowercase();
    if let Some((_, name)) = LANGUAGE_CODES.iter().find(|(code, _)| *code == lower) {
        return Ok((*name).to_string());
    }
    let name = normalize_language_name(trimmed)?;
    if SUPPORTED_LANGUAGES.contains(&name.as_str()) {
        Ok(name)
    } else {
        Err(Error::InvalidArgument(format!(
            "unsupported language '{trimmed}'; supported: {}",
            SUPPORTED_LANGUAGES.join(", ")
        )))
    }
}

/// `merge_languages`: drops empty entries and consecutive duplicates, joins with ",".
pub fn merge_languages<S: AsRef<str>>(langs: &[S]) -> String {
    let mut out: Vec<&str> = Vec::new();
    for l in langs {
        let l = py_strip(l.as_ref());
        if l.is_empty() || out.last() == Some(&l) {
            continue;
        }
        out.push(l);
    }
    out.join(",")
}

const ASR_TEXT_TAG: &str = "<asr_text>";
const LANG_PREFIX: &str = "language ";

/// `parse_asr_output`: splits the model's raw output into (language, text).
///
/// With a forced language the whole output is text. Otherwise the output is
/// `language X<asr_text>text`; "language None" means no speech.
pub fn parse_asr_output(raw: &str, forced_language: Option<&str>) -> (String, String) {
    let s = py_strip(raw);
    if s.is_empty() {
        return (String::new(), String::new());
    }
    let s = detect_and_fix_repetitions(s, 20);
    if let Some(lang) = forced_language.filter(|l| !l.is_empty()) {
        return (lang.to_string(), s);
    }
    let Some((meta, text)) = s.split_once(ASR_TEXT_TAG) else {
        return (String::new(), py_strip(&s).to_string());
    };
    if meta.to_lowercase().contains("language none") {
        return (String::new(), py_strip(text).to_string());
    }
    let mut lang = String::new();
    for line in py_splitlines(meta) {
        let line = py_strip(line);
        if line.is_empty() {
            continue;
        }
        if line.to_lowercase().starts_with(LANG_PREFIX) {
            // The prefix is ASCII, so its byte length is the same in `line`.
            let val = py_strip(line.get(LANG_PREFIX.len()..).unwrap_or(""));
            if !val.is_empty() {
                lang = normalize_language_name(val).unwrap_or_default();
            }
            break;
        }
    }
    (lang, py_strip(text).to_string())
}

/// `detect_and_fix_repetitions`: collapses runs of one character longer than `threshold` and
/// the first pattern of up to 20 characters repeated `threshold` times or more (recursively on
/// the rest), the way the reference repairs looping transcripts.
pub fn detect_and_fix_repetitions(text: &str, threshold: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    let collapsed = fix_char_repeats(&chars, threshold);
    let mut out = Vec::with_capacity(collapsed.len());
    fix_pattern_repeats(&collapsed, threshold, 20, &mut out);
    out.into_iter().collect()
}

fn fix_char_repeats(s: &[char], thresh: usize) -> Vec<char> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let mut count = 1;
        while i + count < s.len() && s[i + count] == s[i] {
            count += 1;
        }
        if count > thresh {
            out.push(s[i]);
        } else {
            out.extend_from_slice(&s[i..i + count]);
        }
        i += count;
    }
    out
}

fn fix_pattern_repeats(s: &[char], thresh: usize, max_len: usize, out: &mut Vec<char>) {
    let n = s.len();
    let min_repeat = thresh * 2;
    if n < min_repeat {
        out.extend_from_slice(s);
        return;
    }
    let mut i = 0;
    while i + min_repeat <= n {
        for k in 1..=max_len {
            if i + k * thresh > n {
                break;
            }
            let pattern = &s[i..i + k];
            let repeated = (1..thresh).all(|rep| &s[i + rep * k..i + rep * k + k] == pattern);
            if repeated {
                let mut end = i + thresh * k;
                while end + k <= n && &s[end..end + k] == pattern {
                    end += k;
                }
                out.extend_from_slice(pattern);
                fix_pattern_repeats(&s[end..], thresh, max_len, out);
                return;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out.extend_from_slice(&s[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repetitions_as_the_reference() {
        assert_eq!(
            detect_and_fix_repetitions(&("a".repeat(25) + "b"), 20),
            "ab"
        );
        let s = format!("hello {}end", "ab".repeat(25));
        assert_eq!(detect_and_fix_repetitions(&s, 20), "hello abend");
        let s = format!("{}cd", "ab".repeat(19));
        assert_eq!(detect_and_fix_repetitions(&s, 20), s);
        // Exactly 20 identical characters survive pass 1; pass 2 collapses the first run and
        // recurses on a rest too short to search.
        let s = format!("{}{}", "x".repeat(20), "y".repeat(20));
        assert_eq!(
            detect_and_fix_repetitions(&s, 20),
            format!("x{}", "y".repeat(20))
        );
    }

    #[test]
    fn parses_outputs() {
        assert_eq!(
            parse_asr_output("language English<asr_text>Hello there. ", None),
            ("English".into(), "Hello there.".into())
        );
        assert_eq!(
            parse_asr_output("language None<asr_text>", None),
            (String::new(), String::new())
        );
        assert_eq!(parse_asr_output("  ", None), (String::new(), String::new()));
        assert_eq!(
            parse_asr_output("just text", None),
            (String::new(), "just text".into())
        );
        assert_eq!(
            parse_asr_output("language English<asr_text>hi", Some("German")),
            ("German".into(), "language English<asr_text>hi".into())
        );
        assert_eq!(
            parse_asr_output("\nlanguage cHINese\n<asr_text> 你好", None),
            ("Chinese".into(), "你好".into())
        );
    }

    #[test]
    fn languages() {
        assert_eq!(normalize_language_name(" cHINese ").unwrap(), "Chinese");
        assert!(normalize_language_name("  ").is_err());
        assert_eq!(resolve_language("en").unwrap(), "English");
        assert_eq!(resolve_language("ENGLISH").unwrap(), "English");
        let err = resolve_language("Klingon").unwrap_err().to_string();
        assert!(err.contains("unsupported language 'Klingon'") && err.contains("Macedonian"));
        assert_eq!(
            merge_languages(&["Chinese", "English", "English", "", "Chinese"]),
            "Chinese,English,Chinese"
        );
    }

    #[test]
    fn python_whitespace_and_lines() {
        assert_eq!(py_strip("\u{1c}\u{85} a \u{2029}"), "a");
        assert_eq!(
            py_splitlines("a\r\nb\rc\u{2028}d\n"),
            vec!["a", "b", "c", "d"]
        );
        assert_eq!(py_splitlines(""), Vec::<&str>::new());
    }
}
