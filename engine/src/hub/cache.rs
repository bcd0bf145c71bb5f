//! The standard Hugging Face cache layout, read without the network.
//!
//! ```text
//! <cache>/models--owner--name/
//!     refs/<revision>              -> file holding the commit hash
//!     blobs/<etag>                 -> file contents (etag: git sha1, or sha256 for LFS files)
//!     snapshots/<commit>/<path>    -> relative symlink to ../../blobs/<etag>
//! ```
//!
//! `hf-hub` writes this layout but only looks files up one by one; this module answers the
//! questions offline mode and the network fallback need: which commit a revision points to, and
//! whether that snapshot is complete enough to load. It also links an already cached blob into a
//! new snapshot, so a new commit that only touched the README does not download the weights
//! again.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::filter::is_weight_file;
use super::model_dir::{ModelDir, Origin};
use super::source::is_commit_hash;
use crate::{Error, Result};

/// The cache folder of one model repository.
#[derive(Debug, Clone)]
pub(crate) struct RepoCache {
    /// The hub cache (`$HF_HOME/hub`).
    cache_dir: PathBuf,
    /// `<cache>/models--owner--name`.
    root: PathBuf,
}

impl RepoCache {
    pub(crate) fn new(cache_dir: &Path, repo_id: &str) -> Self {
        let folder = format!("models--{}", repo_id.replace('/', "--"));
        RepoCache {
            cache_dir: cache_dir.to_path_buf(),
            root: cache_dir.join(folder),
        }
    }

    pub(crate) fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn ref_path(&self, revision: &str) -> PathBuf {
        // Revisions such as `refs/pr/1` become nested folders, as in huggingface_hub.
        self.root.join("refs").join(revision)
    }

    pub(crate) fn snapshot(&self, commit: &str) -> PathBuf {
        self.root.join("snapshots").join(commit)
    }

    pub(crate) fn blob(&self, etag: &str) -> PathBuf {
        self.root.join("blobs").join(etag)
    }

    /// The commit a revision points to in the cache: a commit hash whose snapshot exists, or the
    /// content of `refs/<revision>`.
    pub(crate) fn cached_commit(&self, revision: &str) -> Option<String> {
        if is_commit_hash(revision) && self.snapshot(revision).is_dir() {
            return Some(revision.to_string());
        }
        let text = std::fs::read_to_string(self.ref_path(revision)).ok()?;
        let commit = text.trim();
        (!commit.is_empty() && !commit.contains(['/', '\\']) && commit != "..")
            .then(|| commit.to_string())
    }

    /// Points `refs/<revision>` at `commit`, atomically (write a temporary file, rename).
    pub(crate) fn write_ref(&self, revision: &str, commit: &str) -> Result<()> {
        let path = self.ref_path(revision);
        let parent = path.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        let tmp = parent.join(format!(
            ".{}.{}.tmp",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("ref"),
            std::process::id()
        ));
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(commit.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(&path, e)
        })
    }

    /// Makes `snapshots/<commit>/<file>` point at the cached blob `etag`, as hf-hub would have
    /// after downloading it: a relative symlink, or a copy where symlinks are not allowed.
    pub(crate) fn link_blob(&self, etag: &str, commit: &str, file: &str) -> std::io::Result<()> {
        let dest = self.snapshot(commit).join(file);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        // From snapshots/<commit>/<dirs...>/ back up to the repo folder.
        let depth = file.split('/').count() + 1;
        let mut relative = PathBuf::new();
        for _ in 0..depth {
            relative.push("..");
        }
        relative.push("blobs");
        relative.push(etag);
        remove_if_present(&dest)?;
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(&relative, &dest)
        }
        #[cfg(windows)]
        {
            if std::os::windows::fs::symlink_file(&relative, &dest).is_ok() {
                return Ok(());
            }
            std::fs::copy(self.blob(etag), &dest).map(|_| ())
        }
        #[cfg(not(any(unix, windows)))]
        {
            let _ = relative;
            std::fs::copy(self.blob(etag), &dest).map(|_| ())
        }
    }
}

/// Removes a file or (possibly dangling) symlink; absent is fine.
pub(crate) fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The cached snapshot of `revision`, without any network access (`HF_HUB_OFFLINE`).
pub(crate) fn resolve_offline(
    cache: &RepoCache,
    repo_id: &str,
    revision: &str,
) -> Result<ModelDir> {
    let (commit, snapshot) = complete_snapshot(cache, revision).map_err(|why| {
        Error::Hub(format!(
            "{repo_id} (revision {revision}) {why}, and offline mode is on (HF_HUB_OFFLINE), so \
             it cannot be downloaded. Run once online (without HF_HUB_OFFLINE) to download it, \
             or pass a local model folder instead"
        ))
    })?;
    Ok(ModelDir::with_origin(
        snapshot,
        Origin::Offline {
            repo_id: repo_id.to_string(),
            commit,
        },
    ))
}

/// The commit and folder of the complete cached snapshot of `revision`, or why there is none
/// (phrased to follow the repo name in a message).
pub(crate) fn complete_snapshot(
    cache: &RepoCache,
    revision: &str,
) -> std::result::Result<(String, PathBuf), String> {
    let Some(commit) = cache.cached_commit(revision) else {
        return Err(format!(
            "is not in the Hugging Face cache (looked in {})",
            cache.root().display()
        ));
    };
    let snapshot = cache.snapshot(&commit);
    check_snapshot(&snapshot).map_err(|problem| {
        format!(
            "is only partly in the Hugging Face cache ({problem}, in {})",
            snapshot.display()
        )
    })?;
    Ok((commit, snapshot))
}

/// Checks that a cached snapshot can be loaded when the repository's file list is unknown:
/// no file points at a missing blob, the top folder has `config.json` and its weights (single
/// or every shard of the index), and every model subfolder that has weights has all of them.
///
/// Downloads fetch the top-level weights last and write `refs/<revision>` only once every file
/// is in place, so a snapshot an interrupted download left behind fails this check.
pub(crate) fn check_snapshot(snapshot: &Path) -> std::result::Result<(), String> {
    if !snapshot.is_dir() {
        return Err("the snapshot folder is missing".into());
    }
    let mut folders = Vec::new();
    walk(snapshot, &mut folders).map_err(|e| format!("cannot read the snapshot: {e}"))?;
    let root = ModelDir::open(snapshot).map_err(|e| e.to_string())?;
    root.file("config.json")
        .map_err(|_| "config.json is missing".to_string())?;
    root.weight_files().map_err(|e| weights_problem(&e))?;
    for folder in folders {
        let has_weights = std::fs::read_dir(&folder)
            .map_err(|e| format!("cannot read {}: {e}", folder.display()))?
            .flatten()
            .any(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                is_weight_file(&name) || name.ends_with(".safetensors.index.json")
            });
        if has_weights {
            let dir = ModelDir::open(&folder).map_err(|e| e.to_string())?;
            dir.weight_files().map_err(|e| weights_problem(&e))?;
        }
    }
    Ok(())
}

fn weights_problem(error: &Error) -> String {
    match error {
        Error::Model(message) => message.clone(),
        other => other.to_string(),
    }
}

/// Collects the subfolders below `dir` and fails on a symlink whose blob is gone.
fn walk(dir: &Path, folders: &mut Vec<PathBuf>) -> std::result::Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = entry.path();
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => {
                folders.push(path.clone());
                walk(&path, folders)?;
            }
            Ok(_) => {}
            Err(_) => {
                return Err(format!(
                    "{} points to a blob that is missing",
                    path.strip_prefix(dir).unwrap_or(&path).display()
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn put(cache: &RepoCache, file: &str, etag: &str, bytes: &[u8]) {
        let blob = cache.blob(etag);
        std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
        std::fs::write(&blob, bytes).unwrap();
        cache.link_blob(etag, SHA, file).unwrap();
    }

    #[test]
    fn layout_and_refs() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = RepoCache::new(tmp.path(), "Qwen/Qwen3-ASR-0.6B");
        assert_eq!(
            cache.root(),
            tmp.path().join("models--Qwen--Qwen3-ASR-0.6B")
        );
        assert_eq!(cache.cache_dir(), tmp.path());
        assert_eq!(cache.cached_commit("main"), None);
        cache.write_ref("main", SHA).unwrap();
        cache.write_ref("refs/pr/1", "abc").unwrap();
        assert_eq!(cache.cached_commit("main").as_deref(), Some(SHA));
        assert_eq!(cache.cached_commit("refs/pr/1").as_deref(), Some("abc"));
        // A commit hash is looked up as a snapshot folder.
        let other = "f".repeat(40);
        assert_eq!(cache.cached_commit(&other), None);
        std::fs::create_dir_all(cache.snapshot(&other)).unwrap();
        assert_eq!(cache.cached_commit(&other), Some(other));
        // No stray temporary files next to the refs.
        let names: Vec<_> = std::fs::read_dir(cache.root().join("refs"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn linked_blobs_resolve() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = RepoCache::new(tmp.path(), "o/n");
        put(&cache, "config.json", "e1", b"{}");
        put(&cache, "speech_tokenizer/config.json", "e2", b"{\"a\":1}");
        let snap = cache.snapshot(SHA);
        assert_eq!(std::fs::read(snap.join("config.json")).unwrap(), b"{}");
        assert_eq!(
            std::fs::read(snap.join("speech_tokenizer/config.json")).unwrap(),
            b"{\"a\":1}"
        );
        // Relinking replaces the old link.
        put(&cache, "config.json", "e3", b"{\"b\":2}");
        assert_eq!(
            std::fs::read(snap.join("config.json")).unwrap(),
            b"{\"b\":2}"
        );
    }

    #[test]
    fn completeness() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = RepoCache::new(tmp.path(), "o/n");
        let snap = cache.snapshot(SHA);
        assert!(check_snapshot(&snap).unwrap_err().contains("missing"));
        put(&cache, "config.json", "c", b"{}");
        let err = check_snapshot(&snap).unwrap_err();
        assert!(err.contains("no weights"), "{err}");
        put(&cache, "model.safetensors", "w", b"weights");
        check_snapshot(&snap).unwrap();

        // A subfolder with an index whose shard is missing.
        put(
            &cache,
            "speech_tokenizer/model.safetensors.index.json",
            "i",
            br#"{"weight_map": {"a": "model-00001-of-00001.safetensors"}}"#,
        );
        let err = check_snapshot(&snap).unwrap_err();
        assert!(err.contains("model-00001-of-00001.safetensors"), "{err}");
        put(
            &cache,
            "speech_tokenizer/model-00001-of-00001.safetensors",
            "s",
            b"x",
        );
        check_snapshot(&snap).unwrap();

        // A link whose blob vanished.
        std::fs::remove_file(cache.blob("s")).unwrap();
        let err = check_snapshot(&snap).unwrap_err();
        assert!(err.contains("blob that is missing"), "{err}");
    }

    #[test]
    fn offline_messages() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = RepoCache::new(tmp.path(), "o/n");
        let err = resolve_offline(&cache, "o/n", "main")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("o/n (revision main) is not in the Hugging Face cache"),
            "{err}"
        );
        assert!(err.contains(&cache.root().display().to_string()), "{err}");
        assert!(err.contains("Run once online"), "{err}");
        assert!(err.contains("local model folder"), "{err}");

        cache.write_ref("main", SHA).unwrap();
        put(&cache, "config.json", "c", b"{}");
        let err = resolve_offline(&cache, "o/n", "main")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("only partly in the Hugging Face cache"),
            "{err}"
        );

        put(&cache, "model.safetensors", "w", b"weights");
        let dir = resolve_offline(&cache, "o/n", "main").unwrap();
        assert_eq!(dir.path(), cache.snapshot(SHA));
        assert_eq!(
            dir.origin(),
            &Origin::Offline {
                repo_id: "o/n".into(),
                commit: SHA.into()
            }
        );
    }
}
