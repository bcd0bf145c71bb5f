//! Getting a model folder: from local disk, or from the Hugging Face hub through the standard
//! HF cache.
//!
//! Every model family in qwen3-speech loads from a *folder* laid out like the released
//! repositories (`config.json`, tokenizer files, `model.safetensors` or its shards, sometimes a
//! subfolder such as `speech_tokenizer/`). The user names that folder with one string (the CLI's
//! `--model`): either a path on disk or a hub repo id such as `Qwen/Qwen3-ASR-0.6B` (optionally
//! `Qwen/Qwen3-ASR-0.6B@<revision>`). This module turns the string into a [`ModelDir`] so that
//! loaders never care where the files came from:
//!
//! * [`ModelSource::parse`] decides between a local folder and a repo id, and rejects anything
//!   else with a message that says what was expected.
//! * [`resolve`] returns the folder. For a repo it downloads what the engine needs (see
//!   [`is_needed_file`]) into the *standard* Hugging Face cache, so the Python tools and
//!   qwen3-speech share one copy of each checkpoint, and returns the snapshot folder
//!   `<cache>/models--owner--name/snapshots/<commit>/`.
//! * [`ModelDir`] gives loaders checked access to files, weights (single or sharded) and
//!   subfolders, with errors that name the missing file and the folder.
//!
//! The environment (`HF_HOME`, `HF_HUB_CACHE`, `HF_ENDPOINT`, `HF_TOKEN`, `HF_HUB_OFFLINE`, ...)
//! is read in exactly one place, [`FetchOptions::from_env`]; everything below takes explicit
//! options, which keeps the download path testable against a local server without touching the
//! process environment.
//!
//! Downloads need the `hub` cargo feature (on by default; builds without it, such as the mobile
//! bindings, only use local folders and complete cached snapshots). Transfers go through the
//! `hf-hub` crate (resumable `.part` files renamed into `blobs/` only
//! when complete, symlinks from `snapshots/`, file locks). On top of it this module adds what the
//! crate lacks: offline mode, a fallback to a complete cached snapshot when the hub cannot be
//! reached, reuse of blobs already in the cache when a repository gets a new commit, size checks
//! of every downloaded file, and error messages that say how to fix the problem.

// Parts of the cache are only written by downloads.
#[cfg_attr(not(feature = "hub"), allow(dead_code))]
mod cache;
mod filter;
mod model_dir;
mod options;
#[cfg(feature = "hub")]
mod remote;
mod source;

pub use filter::is_needed_file;
pub use model_dir::{ModelDir, Origin};
pub use options::{DEFAULT_ENDPOINT, FetchOptions};
pub use source::ModelSource;

use crate::{Error, Result};

/// Returns the model folder that `source` names, downloading it first when it is a hub
/// repository that is not (completely) in the cache.
///
/// * [`ModelSource::Local`]: the folder itself (it must exist).
/// * [`ModelSource::Hub`] with `options.offline`: the cached snapshot of the revision, without
///   any network access; an error explains how to fix it when the snapshot is missing or
///   incomplete.
/// * [`ModelSource::Hub`] online: asks the hub for the commit and file list of the revision,
///   downloads the missing files (with a progress bar on stderr when `options.progress`), and
///   returns the snapshot. When the hub cannot be reached but a complete snapshot of the revision
///   is cached, that snapshot is used and a note is printed on stderr ([`Origin::CacheFallback`]).
pub fn resolve(source: &ModelSource, options: &FetchOptions) -> Result<ModelDir> {
    match source {
        ModelSource::Local(path) => ModelDir::open(path),
        ModelSource::Hub { repo_id, revision } => {
            let revision = effective_revision(revision.as_deref(), options.revision.as_deref())?;
            let cache_dir = options.cache_dir.as_deref().ok_or_else(|| {
                Error::Hub(format!(
                    "cannot locate the Hugging Face cache to store {repo_id}: none of HF_HUB_CACHE, \
                     HF_HOME or HOME is set; set HF_HOME to a writable folder, or pass a local \
                     model folder"
                ))
            })?;
            let cache = cache::RepoCache::new(cache_dir, repo_id);
            if options.offline {
                cache::resolve_offline(&cache, repo_id, &revision)
            } else {
                resolve_online(&cache, repo_id, &revision, options)
            }
        }
    }
}

#[cfg(feature = "hub")]
use remote::resolve_online;

/// Built without downloads (no `hub` feature): a complete cached snapshot still serves.
#[cfg(not(feature = "hub"))]
fn resolve_online(
    cache: &cache::RepoCache,
    repo_id: &str,
    revision: &str,
    _options: &FetchOptions,
) -> Result<ModelDir> {
    cache::resolve_offline(cache, repo_id, revision).map_err(|_| {
        Error::Hub(format!(
            "{repo_id} is not in the cache, and this build of qwen3-speech cannot download \
             models (built without the `hub` feature); pass a local model folder"
        ))
    })
}

/// [`ModelSource::parse`] followed by [`resolve`]: the one call a front end needs for `--model`.
pub fn resolve_str(spec: &str, options: &FetchOptions) -> Result<ModelDir> {
    resolve(&ModelSource::parse(spec)?, options)
}

/// The revision to fetch: the one in the source string (`owner/name@rev`) or in the options,
/// `main` when neither names one. Naming two different ones is an error rather than a silent
/// choice.
fn effective_revision(from_source: Option<&str>, from_options: Option<&str>) -> Result<String> {
    match (from_source, from_options) {
        (Some(a), Some(b)) if a != b => Err(Error::InvalidArgument(format!(
            "two different revisions requested: `@{a}` in the model name and `{b}` in the options; \
             give only one"
        ))),
        (Some(rev), _) | (None, Some(rev)) => {
            source::validate_revision(rev)?;
            Ok(rev.to_string())
        }
        (None, None) => Ok("main".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_precedence() {
        assert_eq!(effective_revision(None, None).unwrap(), "main");
        assert_eq!(effective_revision(Some("v1"), None).unwrap(), "v1");
        assert_eq!(effective_revision(None, Some("dev")).unwrap(), "dev");
        assert_eq!(effective_revision(Some("v1"), Some("v1")).unwrap(), "v1");
        let err = effective_revision(Some("v1"), Some("v2")).unwrap_err();
        assert!(err.to_string().contains("two different revisions"), "{err}");
        assert!(effective_revision(None, Some("bad rev")).is_err());
    }

    #[test]
    fn missing_cache_location_is_a_clear_error() {
        let source = ModelSource::parse("Qwen/Qwen3-ASR-0.6B").unwrap();
        let options = FetchOptions::from_vars(|_| None).with_offline(true);
        assert!(options.cache_dir.is_none());
        let err = resolve(&source, &options).unwrap_err().to_string();
        assert!(err.contains("HF_HOME"), "{err}");
        assert!(err.contains("Qwen/Qwen3-ASR-0.6B"), "{err}");
    }
}
