//! Fetching a repository snapshot from the hub into the cache.
//!
//! One request asks the hub for the commit and file list of the revision
//! (`GET {endpoint}/api/models/{repo}/revision/{rev}?blobs=true`, which also gives each file's
//! size and blob id). Files already in the snapshot, or whose blob is already cached from another
//! commit, cost nothing more; the rest are downloaded with `hf-hub` *by commit hash*, so every
//! file comes from the same commit even if the branch moves meanwhile. `refs/<revision>` is
//! written only once every file is in place and has the size the hub lists, which is what lets
//! offline mode trust it later.
//!
//! Failures split in two: the hub cannot be reached (connection errors, dropped transfers, HTTP
//! 5xx/429), where a complete cached snapshot of the revision is used instead, with a note on
//! stderr; and answers that settle the matter (unknown repo or revision, no access, a server that
//! is not a hub), which are errors with advice.

use std::io::ErrorKind;
use std::path::Path;
use std::time::Duration;

use hf_hub::api::sync::{Api, ApiBuilder, ApiError};
use hf_hub::{Repo, RepoType};
use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Deserialize;

use super::cache::{RepoCache, complete_snapshot, remove_if_present};
use super::filter::{is_needed_file, is_weight_file};
use super::model_dir::{ModelDir, Origin};
use super::options::FetchOptions;
use crate::{Error, Result};

/// Retries of an interrupted file transfer (each resumes where the last one stopped).
const DOWNLOAD_RETRIES: usize = 2;
/// Limit for the repository-info request (a few kilobytes of JSON).
const INFO_TIMEOUT: Duration = Duration::from_secs(60);

/// Why fetching did not produce a snapshot.
enum Failure {
    /// The hub could not be reached or the transfer broke off; the cache may stand in.
    Unreachable(String),
    /// A definite answer (or a local problem) that a cached copy must not paper over.
    Fatal(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Fatal(e)
    }
}

/// The repository-info answer, as far as it is used here.
#[derive(Deserialize)]
struct RepoInfoJson {
    sha: String,
    #[serde(default)]
    siblings: Vec<SiblingJson>,
}

#[derive(Deserialize)]
struct SiblingJson {
    rfilename: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default, rename = "blobId")]
    blob_id: Option<String>,
    #[serde(default)]
    lfs: Option<LfsJson>,
}

#[derive(Deserialize)]
struct LfsJson {
    #[serde(default)]
    sha256: Option<String>,
    #[serde(default)]
    size: Option<u64>,
}

/// A file of the repository that the engine needs.
#[derive(Debug, Clone)]
struct RemoteFile {
    path: String,
    /// Size in bytes, when the hub lists it.
    size: Option<u64>,
    /// The name of its blob in the cache (sha256 for LFS files, git sha1 otherwise).
    etag: Option<String>,
}

/// What the current fetch is about, for messages.
struct Context<'a> {
    repo_id: &'a str,
    revision: &'a str,
    options: &'a FetchOptions,
}

/// Turns a `ureq::Error` (which this crate cannot name: `ureq` is only hf-hub's dependency)
/// into a [`Failure`]: an HTTP status goes through [`Context::http_status`], anything else is a
/// transport problem.
macro_rules! request_failure {
    ($ctx:expr, $error:expr, $what:expr) => {{
        let error = $error;
        let text = error.to_string();
        match error.into_response() {
            Some(response) => $ctx.http_status(
                response.status(),
                response.header("x-error-code"),
                response.header("x-error-message"),
                $what,
            ),
            None => Failure::Unreachable(text),
        }
    }};
}

/// Resolves a hub repository while online (see the module docs).
pub(crate) fn resolve_online(
    cache: &RepoCache,
    repo_id: &str,
    revision: &str,
    options: &FetchOptions,
) -> Result<ModelDir> {
    let ctx = Context {
        repo_id,
        revision,
        options,
    };
    match fetch(&ctx, cache) {
        Ok(dir) => Ok(dir),
        Err(Failure::Fatal(error)) => Err(error),
        Err(Failure::Unreachable(reason)) => fall_back_to_cache(&ctx, cache, reason),
    }
}

/// Uses the complete cached snapshot of the revision after the hub could not be reached.
fn fall_back_to_cache(ctx: &Context<'_>, cache: &RepoCache, reason: String) -> Result<ModelDir> {
    let endpoint = &ctx.options.endpoint;
    match complete_snapshot(cache, ctx.revision) {
        Ok((commit, snapshot)) => {
            eprintln!(
                "note: could not reach the Hugging Face hub at {endpoint} ({reason}); using the \
                 cached snapshot {commit} of {} from {}",
                ctx.repo_id,
                snapshot.display()
            );
            Ok(ModelDir::with_origin(
                snapshot,
                Origin::CacheFallback {
                    repo_id: ctx.repo_id.to_string(),
                    commit,
                    reason,
                },
            ))
        }
        Err(why) => Err(Error::Hub(format!(
            "cannot download {} (revision {}) from {endpoint}: {reason}. It {why}. Check the \
             network connection (and HF_ENDPOINT if set), or pass a local model folder",
            ctx.repo_id, ctx.revision
        ))),
    }
}

fn fetch(ctx: &Context<'_>, cache: &RepoCache) -> Result<ModelDir, Failure> {
    let api = build_api(ctx, cache)?;
    let (commit, files) = repo_files(ctx, &api)?;
    let snapshot = cache.snapshot(&commit);

    let mut pending = Vec::new();
    for file in &files {
        if !is_in_snapshot(&snapshot, file) && !reuse_cached_blob(cache, &commit, file)? {
            pending.push(file.clone());
        }
    }
    if !pending.is_empty() {
        download(ctx, cache, &api, &commit, &pending)?;
    }

    let missing: Vec<&str> = files
        .iter()
        .filter(|f| !is_in_snapshot(&snapshot, f))
        .map(|f| f.path.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(Failure::Fatal(Error::Hub(format!(
            "after downloading {} (commit {commit}) these files are still missing from {}: {}",
            ctx.repo_id,
            snapshot.display(),
            missing.join(", ")
        ))));
    }
    if ctx.revision != commit {
        cache.write_ref(ctx.revision, &commit)?;
    }
    Ok(ModelDir::with_origin(
        snapshot,
        Origin::Hub {
            repo_id: ctx.repo_id.to_string(),
            commit,
            downloaded: pending.len(),
        },
    ))
}

fn build_api(ctx: &Context<'_>, cache: &RepoCache) -> Result<Api, Failure> {
    ApiBuilder::from_cache(hf_hub::Cache::new(cache.cache_dir().to_path_buf()))
        .with_endpoint(ctx.options.endpoint.clone())
        .with_token(ctx.options.token.clone())
        .with_progress(false)
        .with_retries(DOWNLOAD_RETRIES)
        .with_user_agent("qwen3-speech", env!("CARGO_PKG_VERSION"))
        .build()
        .map_err(|e| Failure::Fatal(Error::Hub(format!("cannot set up the hub client: {e}"))))
}

/// The commit of the revision and the files to fetch, in download order: configs and tokenizer
/// files first, then subfolder weights, the top-level weights last.
fn repo_files(ctx: &Context<'_>, api: &Api) -> Result<(String, Vec<RemoteFile>), Failure> {
    let repo = Repo::with_revision(
        ctx.repo_id.to_string(),
        RepoType::Model,
        ctx.revision.to_string(),
    );
    let what = format!("the file list of {}", ctx.repo_id);
    let response = api
        .repo(repo)
        .info_request()
        .query("blobs", "true")
        .timeout(INFO_TIMEOUT)
        .call()
        .map_err(|e| request_failure!(ctx, e, &what))?;
    let info: RepoInfoJson = serde_json::from_reader(response.into_reader()).map_err(|e| {
        if e.is_io() {
            Failure::Unreachable(format!("reading {what}: {e}"))
        } else {
            Failure::Fatal(Error::Hub(format!(
                "the server at {} did not answer like a Hugging Face hub for {what} ({e}); \
                 check HF_ENDPOINT",
                ctx.options.endpoint
            )))
        }
    })?;
    let commit = info.sha.trim().to_string();
    if commit.is_empty() || !commit.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Failure::Fatal(Error::Hub(format!(
            "the server at {} sent an invalid commit `{commit}` for {}",
            ctx.options.endpoint, ctx.repo_id
        ))));
    }

    let mut files: Vec<RemoteFile> = info
        .siblings
        .into_iter()
        .filter(|s| is_needed_file(&s.rfilename))
        .map(|s| {
            let lfs = s.lfs.unwrap_or(LfsJson {
                sha256: None,
                size: None,
            });
            RemoteFile {
                size: lfs.size.or(s.size),
                etag: lfs
                    .sha256
                    .or(s.blob_id)
                    .filter(|e| !e.is_empty() && e.bytes().all(|b| b.is_ascii_alphanumeric())),
                path: s.rfilename,
            }
        })
        .collect();
    if !files.iter().any(|f| f.path == "config.json") {
        return Err(Failure::Fatal(Error::Hub(format!(
            "{} (revision {}, commit {commit}) has no config.json at its top level: it is not a \
             model repository that qwen3-speech can load",
            ctx.repo_id, ctx.revision
        ))));
    }
    files.sort_by_key(|f| {
        let weight = is_weight_file(&f.path);
        let top_level = !f.path.contains('/');
        (weight, weight && top_level, f.path.clone())
    });
    Ok((commit, files))
}

/// Whether the snapshot already has `file` with the listed size. A dangling link or a file of
/// the wrong size is removed so that it gets fetched again.
fn is_in_snapshot(snapshot: &Path, file: &RemoteFile) -> bool {
    let path = snapshot.join(&file.path);
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_file() && file.size.is_none_or(|s| s == meta.len()) => true,
        _ => {
            let _ = remove_if_present(&path);
            false
        }
    }
}

/// Links `file` into the snapshot when its blob is already cached (from another commit).
fn reuse_cached_blob(cache: &RepoCache, commit: &str, file: &RemoteFile) -> Result<bool> {
    let Some(etag) = &file.etag else {
        return Ok(false);
    };
    let blob = cache.blob(etag);
    match std::fs::metadata(&blob) {
        Ok(meta) if meta.is_file() && file.size.is_none_or(|s| s == meta.len()) => {
            cache
                .link_blob(etag, commit, &file.path)
                .map_err(|e| Error::io(cache.snapshot(commit).join(&file.path), e))?;
            Ok(true)
        }
        Ok(_) => {
            // A blob of the wrong size is corrupt: drop it and download again.
            remove_if_present(&blob).map_err(|e| Error::io(&blob, e))?;
            Ok(false)
        }
        Err(_) => Ok(false),
    }
}

/// Downloads `files` of `commit` with hf-hub, behind one progress bar for all of them.
fn download(
    ctx: &Context<'_>,
    cache: &RepoCache,
    api: &Api,
    commit: &str,
    files: &[RemoteFile],
) -> Result<(), Failure> {
    let total: u64 = files.iter().filter_map(|f| f.size).sum();
    let progress = ctx.options.progress;
    if progress {
        eprintln!(
            "Downloading {} ({} file{}, {}) into {}",
            ctx.repo_id,
            files.len(),
            if files.len() == 1 { "" } else { "s" },
            HumanBytes(total),
            cache.cache_dir().display()
        );
    }
    let bar = if progress {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} [{elapsed_precise}] [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} ({eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };

    // Downloading by commit makes hf-hub write refs/<commit>; the Python library never does
    // that, so the file is removed again unless it was there before.
    let commit_ref = cache.ref_path(commit);
    let commit_ref_existed = commit_ref.exists();

    let repo = api.repo(Repo::with_revision(
        ctx.repo_id.to_string(),
        RepoType::Model,
        commit.to_string(),
    ));
    let snapshot = cache.snapshot(commit);
    let mut done = 0u64;
    let mut result = Ok(());
    for (index, file) in files.iter().enumerate() {
        discard_stale_part(cache, file);
        let progress = FileProgress {
            bar: bar.clone(),
            base: done,
            label: format!("[{}/{}] {}", index + 1, files.len(), file.path),
        };
        let outcome = repo
            .download_with_progress(&file.path, progress)
            .map_err(|e| ctx.download_failure(e, &file.path))
            .and_then(|path| check_download(ctx, &snapshot, commit, file, &path));
        match outcome {
            Ok(size) => {
                done += size;
                bar.set_position(done);
            }
            Err(failure) => {
                result = Err(failure);
                break;
            }
        }
    }
    bar.finish_and_clear();
    if !commit_ref_existed {
        let _ = remove_if_present(&commit_ref);
    }
    result?;
    if progress {
        eprintln!(
            "Downloaded {} file{} of {} to {}",
            files.len(),
            if files.len() == 1 { "" } else { "s" },
            ctx.repo_id,
            snapshot.display()
        );
    }
    Ok(())
}

/// A leftover `.part` file at least as long as the file would make hf-hub's resume fail
/// (it asks for the bytes after the end); it is dropped so the file is fetched afresh.
fn discard_stale_part(cache: &RepoCache, file: &RemoteFile) {
    if let (Some(etag), Some(size)) = (&file.etag, file.size) {
        let part = cache.blob(&format!("{etag}.part"));
        if std::fs::metadata(&part).is_ok_and(|m| m.len() >= size) {
            let _ = std::fs::remove_file(&part);
        }
    }
}

/// Checks a file hf-hub reports as downloaded: it must sit in the snapshot of `commit` and have
/// the size the hub lists. A wrong file is removed (link and blob), never left looking complete.
fn check_download(
    ctx: &Context<'_>,
    snapshot: &Path,
    commit: &str,
    file: &RemoteFile,
    path: &Path,
) -> Result<u64, Failure> {
    let expected = snapshot.join(&file.path);
    if path != expected {
        return Err(Failure::Fatal(Error::Hub(format!(
            "the hub served {} of {} from another commit than {commit} (saved at {}); run again",
            file.path,
            ctx.repo_id,
            path.display()
        ))));
    }
    let actual = std::fs::metadata(path)
        .map_err(|e| Failure::Fatal(Error::io(path, e)))?
        .len();
    if let Some(size) = file.size
        && size != actual
    {
        if let Ok(blob) = std::fs::canonicalize(path) {
            let _ = std::fs::remove_file(blob);
        }
        let _ = remove_if_present(path);
        return Err(Failure::Fatal(Error::Hub(format!(
            "downloaded {} of {} has {actual} bytes but the hub lists {size}; the file was \
             removed, run again",
            file.path, ctx.repo_id
        ))));
    }
    Ok(actual)
}

impl Context<'_> {
    /// Maps an hf-hub download error for `file`.
    fn download_failure(&self, error: ApiError, file: &str) -> Failure {
        let what = format!("{file} of {}", self.repo_id);
        match error {
            ApiError::RequestError(error) => request_failure!(self, *error, &what),
            ApiError::TooManyRetries(inner) => self.download_failure(*inner, file),
            ApiError::IoError(error) if is_transfer_error(error.kind()) => {
                Failure::Unreachable(format!(
                    "the transfer of {what} broke off ({error}); the partial download is kept \
                     and resumes on the next run"
                ))
            }
            ApiError::IoError(error) => Failure::Fatal(Error::Hub(format!(
                "cannot write {what} into the cache at {}: {error}",
                self.options
                    .cache_dir
                    .as_deref()
                    .unwrap_or(Path::new("?"))
                    .display()
            ))),
            ApiError::LockAcquisition(lock) => Failure::Fatal(Error::Hub(format!(
                "another process is downloading {what} (lock file {}); wait for it to finish, \
                 or delete the lock file if no download is running",
                lock.display()
            ))),
            other => Failure::Fatal(Error::Hub(format!(
                "the server at {} did not answer like a Hugging Face hub for {what} ({other}); \
                 check HF_ENDPOINT",
                self.options.endpoint
            ))),
        }
    }

    /// Maps an HTTP error status (with the hub's `X-Error-Code`/`X-Error-Message` headers).
    fn http_status(
        &self,
        status: u16,
        error_code: Option<&str>,
        error_message: Option<&str>,
        what: &str,
    ) -> Failure {
        let endpoint = &self.options.endpoint;
        let repo_id = self.repo_id;
        let detail = match error_message {
            Some(message) if !message.is_empty() => format!("HTTP {status}: {message}"),
            _ => format!("HTTP {status}"),
        };
        if status == 408 || status == 429 || (500..600).contains(&status) {
            return Failure::Unreachable(format!("{detail} for {what}"));
        }
        let access = if self.options.token.is_some() {
            "the access token in use (HF_TOKEN or the saved login) may lack access to it"
        } else {
            "if it is private or gated, set HF_TOKEN or log in with `huggingface-cli login`"
        };
        let message = match (status, error_code) {
            (_, Some("RevisionNotFound")) => format!(
                "revision `{}` does not exist in {repo_id} at {endpoint} ({detail})",
                self.revision
            ),
            (_, Some("EntryNotFound")) => {
                format!("{what} does not exist at {endpoint} ({detail})")
            }
            (_, Some("GatedRepo")) | (403, _) => format!(
                "access to {repo_id} at {endpoint} was refused ({detail}): a gated repository \
                 needs its terms accepted on its hub page, and {access}"
            ),
            (401 | 404, _) => format!(
                "repository {repo_id} not found at {endpoint} ({detail}). Check the name ({access}); \
                 `{repo_id}` was read as a repo id because no local folder of that name exists"
            ),
            _ => format!("unexpected answer from {endpoint} for {what} ({detail})"),
        };
        Failure::Fatal(Error::Hub(message))
    }
}

/// I/O error kinds that come from a broken transfer rather than from the local disk.
fn is_transfer_error(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::UnexpectedEof
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::ConnectionRefused
            | ErrorKind::NotConnected
            | ErrorKind::BrokenPipe
            | ErrorKind::TimedOut
            | ErrorKind::Interrupted
            | ErrorKind::InvalidData
            | ErrorKind::Other
    )
}

/// hf-hub progress callbacks mapped onto the shared bar: `base` is what earlier files added.
/// hf-hub calls `init` again when it resumes, so `init` rewinds to `base` and the resumed
/// bytes are counted once.
struct FileProgress {
    bar: ProgressBar,
    base: u64,
    label: String,
}

impl hf_hub::api::Progress for FileProgress {
    fn init(&mut self, size: usize, _filename: &str) {
        let end = self.base + size as u64;
        if self.bar.length().is_none_or(|len| len < end) {
            self.bar.set_length(end);
        }
        self.bar.set_position(self.base);
        self.bar.set_message(self.label.clone());
    }

    fn update(&mut self, size: usize) {
        self.bar.inc(size as u64);
    }

    fn finish(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use hf_hub::api::Progress;

    fn ctx(options: &FetchOptions) -> Context<'_> {
        Context {
            repo_id: "o/n",
            revision: "main",
            options,
        }
    }

    fn fatal(f: Failure) -> String {
        match f {
            Failure::Fatal(e) => e.to_string(),
            Failure::Unreachable(r) => panic!("expected a fatal error, got unreachable: {r}"),
        }
    }

    #[test]
    fn http_statuses() {
        let options = FetchOptions::from_vars(|_| None).with_endpoint("http://hub.test");
        let c = ctx(&options);
        let msg = fatal(c.http_status(404, Some("RepoNotFound"), None, "x"));
        assert!(
            msg.contains("repository o/n not found at http://hub.test"),
            "{msg}"
        );
        assert!(msg.contains("HF_TOKEN"), "{msg}");
        let msg = fatal(c.http_status(401, None, Some("Invalid username or password."), "x"));
        assert!(
            msg.contains("not found") && msg.contains("Invalid username"),
            "{msg}"
        );
        let msg = fatal(c.http_status(404, Some("RevisionNotFound"), None, "x"));
        assert!(
            msg.contains("revision `main` does not exist in o/n"),
            "{msg}"
        );
        let msg = fatal(c.http_status(404, Some("EntryNotFound"), None, "config.json of o/n"));
        assert!(msg.contains("config.json of o/n does not exist"), "{msg}");
        let msg = fatal(c.http_status(403, None, None, "x"));
        assert!(msg.contains("gated"), "{msg}");
        let msg = fatal(c.http_status(418, None, None, "x"));
        assert!(msg.contains("unexpected answer"), "{msg}");
        for status in [408, 429, 500, 502, 503] {
            assert!(matches!(
                c.http_status(status, None, None, "x"),
                Failure::Unreachable(_)
            ));
        }
        let with_token = options.clone().with_token(Some("t".into()));
        let msg = fatal(ctx(&with_token).http_status(401, None, None, "x"));
        assert!(msg.contains("may lack access"), "{msg}");
    }

    #[test]
    fn progress_counts_resumed_bytes_once() {
        let bar = ProgressBar::hidden();
        bar.set_length(100);
        let mut p = FileProgress {
            bar: bar.clone(),
            base: 40,
            label: "[2/2] model.safetensors".into(),
        };
        p.init(60, "model.safetensors");
        p.update(10);
        assert_eq!(bar.position(), 50);
        // A resume calls init again, then reports the bytes already on disk.
        p.init(60, "model.safetensors");
        p.update(10);
        p.update(50);
        p.finish();
        assert_eq!(bar.position(), 100);
        assert_eq!(bar.length(), Some(100));
        // Unknown totals grow as files start.
        p.base = 100;
        p.init(20, "x");
        assert_eq!(bar.length(), Some(120));
    }

    #[test]
    fn transfer_errors() {
        assert!(is_transfer_error(ErrorKind::UnexpectedEof));
        assert!(is_transfer_error(ErrorKind::ConnectionReset));
        assert!(!is_transfer_error(ErrorKind::PermissionDenied));
        assert!(!is_transfer_error(ErrorKind::StorageFull));
    }
}
