//! Parsing what the user passed as the model: a local folder or a hub repo id.
//!
//! An existing folder always wins, so a checkout that happens to be called `Qwen/Qwen3-ASR-0.6B`
//! relative to the working directory is used as is (the same rule as `transformers`). Anything
//! that is neither an existing folder nor a well-formed `owner/name[@revision]` is rejected here,
//! before any network access, with a message that says what was expected.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::{Error, Result};

/// Longest repo id the hub accepts (`owner/name` together).
const MAX_REPO_ID_LEN: usize = 96;
/// Longest revision accepted (git refs are limited in practice well below this).
const MAX_REVISION_LEN: usize = 255;

const EXPECTED: &str = "expected a local model folder or a Hugging Face repo id such as \
                        `Qwen/Qwen3-ASR-0.6B` (optionally `Qwen/Qwen3-ASR-0.6B@<revision>`)";

/// Where a model comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A folder on local disk.
    Local(PathBuf),
    /// A model repository on the Hugging Face hub.
    Hub {
        /// `owner/name`.
        repo_id: String,
        /// Branch, tag or commit; `None` means the default (`main`, or
        /// [`crate::hub::FetchOptions::revision`]).
        revision: Option<String>,
    },
}

impl ModelSource {
    /// Parses a user string (the CLI's `--model`).
    ///
    /// * an existing directory -> [`ModelSource::Local`];
    /// * `owner/name` or `owner/name@revision` that is not an existing path ->
    ///   [`ModelSource::Hub`];
    /// * anything else (an existing *file*, a path that does not exist and is no repo id, an
    ///   empty string) -> [`Error::InvalidArgument`] saying what was expected.
    pub fn parse(spec: &str) -> Result<Self> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "empty model name: {EXPECTED}"
            )));
        }
        let path = Path::new(spec);
        if path.is_dir() {
            return Ok(ModelSource::Local(path.to_path_buf()));
        }
        if path.exists() {
            let hint = match path.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => {
                    format!(" (did you mean its folder `{}`?)", parent.display())
                }
                _ => String::new(),
            };
            return Err(Error::InvalidArgument(format!(
                "`{spec}` is a file, not a folder{hint}: {EXPECTED}"
            )));
        }
        let (repo_id, revision) = match spec.split_once('@') {
            Some((id, rev)) => (id, Some(rev)),
            None => (spec, None),
        };
        match validate_repo_id(repo_id) {
            Ok(()) => {
                if let Some(rev) = revision {
                    validate_revision(rev).map_err(|e| {
                        Error::InvalidArgument(format!("in model name `{spec}`: {e}; {EXPECTED}"))
                    })?;
                }
                Ok(ModelSource::Hub {
                    repo_id: repo_id.to_string(),
                    revision: revision.map(str::to_string),
                })
            }
            Err(why) => {
                if looks_like_path(spec) {
                    Err(Error::InvalidArgument(format!(
                        "model folder `{spec}` does not exist: {EXPECTED}"
                    )))
                } else {
                    Err(Error::InvalidArgument(format!(
                        "`{spec}` is neither an existing folder nor a Hugging Face repo id \
                         ({why}): {EXPECTED}"
                    )))
                }
            }
        }
    }

    /// A hub source with a validated repo id and revision.
    pub fn hub(repo_id: &str, revision: Option<&str>) -> Result<Self> {
        validate_repo_id(repo_id).map_err(|why| {
            Error::InvalidArgument(format!("invalid repo id `{repo_id}` ({why}): {EXPECTED}"))
        })?;
        if let Some(rev) = revision {
            validate_revision(rev)?;
        }
        Ok(ModelSource::Hub {
            repo_id: repo_id.to_string(),
            revision: revision.map(str::to_string),
        })
    }

    /// Whether the source is a hub repository (and so may need the network).
    pub fn is_hub(&self) -> bool {
        matches!(self, ModelSource::Hub { .. })
    }
}

impl FromStr for ModelSource {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        ModelSource::parse(s)
    }
}

impl fmt::Display for ModelSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelSource::Local(path) => write!(f, "{}", path.display()),
            ModelSource::Hub {
                repo_id,
                revision: None,
            } => write!(f, "{repo_id}"),
            ModelSource::Hub {
                repo_id,
                revision: Some(rev),
            } => write!(f, "{repo_id}@{rev}"),
        }
    }
}

/// Whether the string was evidently meant as a path (so "does not exist" is the right message).
fn looks_like_path(spec: &str) -> bool {
    spec.starts_with(['/', '.', '~', '\\'])
        || spec.contains('\\')
        || spec.ends_with('/')
        || spec.matches('/').count() > 1
        || spec.as_bytes().get(1) == Some(&b':')
}

/// Checks `owner/name` with the hub's rules: one `/`, each part made of ASCII letters, digits,
/// `-`, `_`, `.`, starting and ending with a letter, digit or `_`, no `--` or `..`, at most 96
/// characters in all. Returns why it is not one.
fn validate_repo_id(id: &str) -> std::result::Result<(), String> {
    let Some((owner, name)) = id.split_once('/') else {
        return Err("a repo id has the form owner/name".into());
    };
    if name.contains('/') {
        return Err("a repo id has exactly one `/`".into());
    }
    if id.len() > MAX_REPO_ID_LEN {
        return Err(format!("longer than {MAX_REPO_ID_LEN} characters"));
    }
    for (what, part) in [("owner", owner), ("name", name)] {
        if part.is_empty() {
            return Err(format!("empty {what}"));
        }
        if let Some(c) = part
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(format!("character `{c}` is not allowed in the {what}"));
        }
        let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        if !edge_ok(part.chars().next()) || !edge_ok(part.chars().last()) {
            return Err(format!(
                "the {what} must start and end with a letter, digit or `_`"
            ));
        }
        if part.contains("--") || part.contains("..") {
            return Err(format!("`--` and `..` are not allowed in the {what}"));
        }
    }
    Ok(())
}

/// Checks a branch, tag or commit name: ASCII letters, digits, `-`, `_`, `.`, `/` (for
/// `refs/pr/1`), no `..`, no leading or trailing `/`.
pub(crate) fn validate_revision(rev: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::InvalidArgument(format!(
            "invalid revision `{rev}`: {why}"
        )))
    };
    if rev.is_empty() {
        return bad("empty (write owner/name@<branch, tag or commit>)");
    }
    if rev.len() > MAX_REVISION_LEN {
        return bad("too long");
    }
    if let Some(c) = rev
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')))
    {
        return bad(&format!("character `{c}` is not allowed"));
    }
    if rev.contains("..") || rev.starts_with('/') || rev.ends_with('/') || rev.contains("//") {
        return bad("not a valid branch, tag or commit name");
    }
    Ok(())
}

/// Whether `rev` is a full commit hash (then the snapshot folder is named after it directly).
pub(crate) fn is_commit_hash(rev: &str) -> bool {
    rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(id: &str, rev: Option<&str>) -> ModelSource {
        ModelSource::Hub {
            repo_id: id.into(),
            revision: rev.map(Into::into),
        }
    }

    #[test]
    fn repo_ids() {
        assert_eq!(
            ModelSource::parse("Qwen/Qwen3-ASR-0.6B").unwrap(),
            hub("Qwen/Qwen3-ASR-0.6B", None)
        );
        assert_eq!(
            ModelSource::parse("  Qwen/Qwen3-TTS-12Hz-1.7B-CustomVoice@main ").unwrap(),
            hub("Qwen/Qwen3-TTS-12Hz-1.7B-CustomVoice", Some("main"))
        );
        assert_eq!(
            ModelSource::parse("a_b/c.d@refs/pr/1").unwrap(),
            hub("a_b/c.d", Some("refs/pr/1"))
        );
        let sha = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(
            ModelSource::parse(&format!("o/n@{sha}")).unwrap(),
            hub("o/n", Some(sha))
        );
        assert!(is_commit_hash(sha));
        assert!(!is_commit_hash("main"));
    }

    #[test]
    fn invalid_strings() {
        for (spec, needle) in [
            ("", "empty model name"),
            ("   ", "empty model name"),
            (
                "gpt2",
                "neither an existing folder nor a Hugging Face repo id",
            ),
            ("Qwen/", "does not exist"),
            ("/Qwen3", "does not exist"),
            ("./missing-model", "does not exist"),
            ("a/b/c", "does not exist"),
            ("C:\\models\\asr", "does not exist"),
            ("Qwen/Qwen3 ASR", "character ` ` is not allowed"),
            ("Qwen/-x", "start and end"),
            ("Qwen/a--b", "`--`"),
            ("Qwen/x@", "invalid revision"),
            ("Qwen/x@a b", "invalid revision"),
            ("Qwen/x@../x", "invalid revision"),
        ] {
            let err = ModelSource::parse(spec).unwrap_err();
            assert!(matches!(err, Error::InvalidArgument(_)), "{spec}: {err:?}");
            let msg = err.to_string();
            assert!(msg.contains(needle), "{spec:?}: {msg}");
            assert!(msg.contains("Qwen/Qwen3-ASR-0.6B"), "{spec:?}: {msg}");
        }
        let long = format!("o/{}", "n".repeat(100));
        assert!(ModelSource::parse(&long).is_err());
    }

    #[test]
    fn local_folder_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().to_str().unwrap();
        assert_eq!(
            ModelSource::parse(spec).unwrap(),
            ModelSource::Local(dir.path().to_path_buf())
        );
        let file = dir.path().join("config.json");
        std::fs::write(&file, "{}").unwrap();
        let msg = ModelSource::parse(file.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("is a file, not a folder"), "{msg}");
        assert!(msg.contains(spec), "{msg}");
    }

    #[test]
    fn display_round_trips() {
        for spec in ["Qwen/Qwen3-ASR-0.6B", "Qwen/Qwen3-ASR-1.7B@v1.0"] {
            let source = ModelSource::parse(spec).unwrap();
            assert_eq!(source.to_string(), spec);
            assert!(source.is_hub());
            assert_eq!(spec.parse::<ModelSource>().unwrap(), source);
        }
        assert_eq!(
            ModelSource::Local(PathBuf::from("/models/asr")).to_string(),
            "/models/asr"
        );
        assert!(ModelSource::hub("Qwen/x", Some("main")).is_ok());
        assert!(ModelSource::hub("x", None).is_err());
    }
}
