//! The hub download path for real: hf-hub talking HTTP to a hub stand-in on 127.0.0.1 that
//! serves a tiny model in the hub's URL layout (see `hub_support`). Every test has its own
//! server and cache folder and passes them explicitly, so nothing here touches the process
//! environment (that is `hub_env.rs`).

mod hub_support;

use std::path::{Path, PathBuf};

use hub_support::{HubServer, NEEDED, SKIPPED, commit, sharded_model, tiny_model};
use qwen3_speech_engine::Error;
use qwen3_speech_engine::hub::{FetchOptions, ModelDir, ModelSource, Origin, resolve, resolve_str};

const REPO: &str = "test-org/tiny-asr";

fn options(server: &HubServer, cache: &Path) -> FetchOptions {
    FetchOptions::from_vars(|_| None)
        .with_endpoint(server.endpoint.as_str())
        .with_cache_dir(cache)
        .with_progress(false)
}

fn repo_folder(cache: &Path, repo_id: &str) -> PathBuf {
    cache.join(format!("models--{}", repo_id.replace('/', "--")))
}

fn snapshot(cache: &Path, repo_id: &str, sha: &str) -> PathBuf {
    repo_folder(cache, repo_id).join("snapshots").join(sha)
}

fn serve_tiny(sha: &str) -> HubServer {
    let server = HubServer::start();
    server.add_repo(REPO, sha, tiny_model());
    server
}

fn hub_error(result: qwen3_speech_engine::Result<ModelDir>) -> String {
    match result {
        Err(Error::Hub(message)) => message,
        other => panic!("expected a hub error, got {other:?}"),
    }
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(
                    path.strip_prefix(dir)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/"),
                );
            }
        }
    }
    out.sort();
    out
}

/// A fresh download lands in the standard cache layout: `refs/main` -> commit,
/// `snapshots/<commit>/` with every needed file (subfolder included) linked to `blobs/`, and
/// nothing the engine does not need is even requested.
#[test]
fn fresh_download_uses_standard_cache_layout() {
    let sha = commit('a');
    let server = serve_tiny(&sha);
    let cache = tempfile::tempdir().unwrap();

    let dir = resolve_str(REPO, &options(&server, cache.path())).unwrap();

    let snap = snapshot(cache.path(), REPO, &sha);
    assert_eq!(dir.path(), snap);
    assert_eq!(
        dir.origin(),
        &Origin::Hub {
            repo_id: REPO.into(),
            commit: sha.clone(),
            downloaded: NEEDED.len()
        }
    );
    let fixture = tiny_model();
    for name in NEEDED {
        let path = dir.file(name).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), fixture[*name], "{name}");
        #[cfg(unix)]
        assert!(
            std::fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_symlink(),
            "{name} should link into blobs/"
        );
    }
    let mut expected: Vec<String> = NEEDED.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(files_in(&snap), expected);
    for name in SKIPPED {
        assert_eq!(server.served(name), 0, "{name} must not be downloaded");
    }

    let folder = repo_folder(cache.path(), REPO);
    assert_eq!(
        std::fs::read_to_string(folder.join("refs/main")).unwrap(),
        sha
    );
    // hf-hub's refs/<commit> side effect is cleaned up; no partial files remain.
    assert_eq!(files_in(&folder.join("refs")), ["main"]);
    let blobs = files_in(&folder.join("blobs"));
    assert!(blobs.iter().all(|b| !b.ends_with(".part")), "{blobs:?}");

    // What loaders use.
    assert_eq!(
        dir.weight_files().unwrap(),
        [snap.join("model.safetensors")]
    );
    let codec = dir.subdir("speech_tokenizer").unwrap();
    assert_eq!(codec.origin(), dir.origin());
    assert_eq!(
        std::fs::read(codec.file("config.json").unwrap()).unwrap(),
        fixture["speech_tokenizer/config.json"]
    );
    assert_eq!(
        codec.weight_files().unwrap(),
        [snap.join("speech_tokenizer/model.safetensors")]
    );
}

/// Resolving again costs one repository-info request and no file transfer.
#[test]
fn second_resolve_uses_the_cache() {
    let sha = commit('b');
    let server = serve_tiny(&sha);
    let cache = tempfile::tempdir().unwrap();
    let opts = options(&server, cache.path());
    let first = resolve_str(REPO, &opts).unwrap();
    let (requests, served) = (server.requests(), server.served_files().len());
    assert_eq!(served, NEEDED.len());

    let second = resolve_str(REPO, &opts).unwrap();
    assert_eq!(second.path(), first.path());
    assert!(matches!(second.origin(), Origin::Hub { downloaded: 0, .. }));
    assert_eq!(
        server.served_files().len(),
        served,
        "nothing downloaded again"
    );
    assert_eq!(server.requests(), requests + 1, "only the info request");
}

/// Offline mode with the model cached: the snapshot, and not a single request.
#[test]
fn offline_with_cache_uses_no_network() {
    let sha = commit('c');
    let server = serve_tiny(&sha);
    let cache = tempfile::tempdir().unwrap();
    let opts = options(&server, cache.path());
    resolve_str(REPO, &opts).unwrap();
    let requests = server.requests();

    let offline = opts.clone().with_offline(true);
    let dir = resolve_str(REPO, &offline).unwrap();
    assert_eq!(dir.path(), snapshot(cache.path(), REPO, &sha));
    assert_eq!(
        dir.origin(),
        &Origin::Offline {
            repo_id: REPO.into(),
            commit: sha.clone()
        }
    );
    // Pinned to the commit works offline too.
    let pinned = resolve_str(&format!("{REPO}@{sha}"), &offline).unwrap();
    assert_eq!(pinned.path(), dir.path());
    assert_eq!(
        server.requests(),
        requests,
        "offline mode must not touch the network"
    );
}

/// Offline mode without the model: an error naming the repo, the cache folder looked in, and
/// the fixes; no request.
#[test]
fn offline_without_cache_explains() {
    let server = serve_tiny(&commit('d'));
    let cache = tempfile::tempdir().unwrap();
    let opts = options(&server, cache.path()).with_offline(true);
    let message = hub_error(resolve_str(REPO, &opts));
    assert!(message.contains(REPO), "{message}");
    assert!(message.contains("HF_HUB_OFFLINE"), "{message}");
    let looked_in = repo_folder(cache.path(), REPO).display().to_string();
    assert!(message.contains(&looked_in), "{message}");
    assert!(message.contains("Run once online"), "{message}");
    assert!(message.contains("local model folder"), "{message}");
    assert_eq!(server.requests(), 0);
}

/// The hub unreachable but the model cached: the cached snapshot, flagged as a fallback.
#[test]
fn server_down_with_cache_falls_back() {
    let sha = commit('e');
    let server = serve_tiny(&sha);
    let cache = tempfile::tempdir().unwrap();
    let opts = options(&server, cache.path());
    let online = resolve_str(REPO, &opts).unwrap();

    server.set_down(true);
    let dir = resolve_str(REPO, &opts).unwrap();
    assert_eq!(dir.path(), online.path());
    match dir.origin() {
        Origin::CacheFallback {
            repo_id,
            commit,
            reason,
        } => {
            assert_eq!(repo_id, REPO);
            assert_eq!(commit, &sha);
            assert!(!reason.is_empty());
        }
        other => panic!("expected a cache fallback, got {other:?}"),
    }
    assert!(dir.weight_files().is_ok());
}

/// The hub unreachable and nothing cached: an error naming repo, endpoint and cache.
#[test]
fn server_down_without_cache_explains() {
    let server = serve_tiny(&commit('f'));
    server.set_down(true);
    let cache = tempfile::tempdir().unwrap();
    let message = hub_error(resolve_str(REPO, &options(&server, cache.path())));
    assert!(
        message.contains(&format!("cannot download {REPO}")),
        "{message}"
    );
    assert!(message.contains(&server.endpoint), "{message}");
    assert!(
        message.contains("not in the Hugging Face cache"),
        "{message}"
    );
    assert!(message.contains("local model folder"), "{message}");
    assert!(server.requests() >= 1);
}

/// Unknown repository or revision: errors that name them; no cache folder appears.
#[test]
fn unknown_repo_and_revision() {
    let server = serve_tiny(&commit('1'));
    let cache = tempfile::tempdir().unwrap();
    let opts = options(&server, cache.path());

    let message = hub_error(resolve_str("test-org/does-not-exist", &opts));
    assert!(
        message.contains("repository test-org/does-not-exist not found"),
        "{message}"
    );
    assert!(message.contains(&server.endpoint), "{message}");
    assert!(message.contains("HF_TOKEN"), "{message}");
    assert!(!repo_folder(cache.path(), "test-org/does-not-exist").exists());

    let message = hub_error(resolve_str(&format!("{REPO}@v9"), &opts));
    assert!(
        message.contains("revision `v9` does not exist"),
        "{message}"
    );

    // An HTTP error is an answer, not an outage: even with a cache it is reported.
    resolve_str(REPO, &opts).unwrap();
    let message = hub_error(resolve_str(&format!("{REPO}@v9"), &opts));
    assert!(message.contains("v9"), "{message}");
}

/// Private repositories: without a token a clear error, with the token the download works.
#[test]
fn private_repo_needs_the_token() {
    let sha = commit('2');
    let server = serve_tiny(&sha);
    server.require_token(REPO, "hf_secret");
    let cache = tempfile::tempdir().unwrap();
    let opts = options(&server, cache.path());
    let message = hub_error(resolve_str(REPO, &opts));
    assert!(message.contains("HF_TOKEN"), "{message}");

    let with_token = opts.with_token(Some("hf_secret".into()));
    let dir = resolve_str(REPO, &with_token).unwrap();
    assert_eq!(dir.path(), snapshot(cache.path(), REPO, &sha));
    assert!(dir.file("speech_tokenizer/model.safetensors").is_ok());
}

/// A sharded checkpoint downloads every shard; a missing shard is an error naming it, both
/// from `weight_files` and from the offline completeness check.
#[test]
fn sharded_checkpoint() {
    let sha = commit('3');
    let server = HubServer::start();
    server.add_repo(REPO, &sha, sharded_model());
    let cache = tempfile::tempdir().unwrap();
    let opts = options(&server, cache.path());
    let dir = resolve_str(REPO, &opts).unwrap();
    let snap = snapshot(cache.path(), REPO, &sha);
    assert_eq!(
        dir.weight_files().unwrap(),
        [
            snap.join("model-00001-of-00002.safetensors"),
            snap.join("model-00002-of-00002.safetensors")
        ]
    );

    // A repository whose index lists a shard it does not contain.
    let broken_sha = commit('4');
    let mut broken = sharded_model();
    broken.remove("model-00002-of-00002.safetensors");
    server.add_repo(REPO, &broken_sha, broken);
    let dir = resolve_str(REPO, &opts).unwrap();
    let message = dir.weight_files().unwrap_err().to_string();
    assert!(
        message.contains("model-00002-of-00002.safetensors"),
        "{message}"
    );
    assert!(
        message.contains("missing 1 of the 2 weight shards"),
        "{message}"
    );
    let offline = opts.clone().with_offline(true);
    let message = hub_error(resolve_str(REPO, &offline));
    assert!(
        message.contains("only partly in the Hugging Face cache"),
        "{message}"
    );
    assert!(
        message.contains("model-00002-of-00002.safetensors"),
        "{message}"
    );
}

/// A new commit that changes one file downloads only that file: the other blobs are linked
/// into the new snapshot from the cache.
#[test]
fn new_commit_reuses_cached_blobs() {
    let (old, new) = (commit('5'), commit('6'));
    let server = serve_tiny(&old);
    let cache = tempfile::tempdir().unwrap();
    let opts = options(&server, cache.path());
    resolve_str(REPO, &opts).unwrap();

    let mut files = tiny_model();
    files.insert("README.md".into(), b"# updated card\n".to_vec());
    files.insert(
        "config.json".into(),
        br#"{"model_type": "qwen3_asr", "hidden_size": 16}"#.to_vec(),
    );
    server.add_repo(REPO, &new, files.clone());
    let before = server.served_files().len();

    let dir = resolve_str(REPO, &opts).unwrap();
    assert_eq!(dir.path(), snapshot(cache.path(), REPO, &new));
    assert!(matches!(dir.origin(), Origin::Hub { downloaded: 1, .. }));
    assert_eq!(server.served_files()[before..], ["config.json".to_string()]);
    for name in NEEDED {
        assert_eq!(
            std::fs::read(dir.file(name).unwrap()).unwrap(),
            files[*name],
            "{name}"
        );
    }
    let folder = repo_folder(cache.path(), REPO);
    assert_eq!(
        std::fs::read_to_string(folder.join("refs/main")).unwrap(),
        new
    );
    // The old snapshot is untouched.
    assert!(
        snapshot(cache.path(), REPO, &old)
            .join("model.safetensors")
            .is_file()
    );
}

/// A transfer that breaks off never leaves a file that looks complete: the snapshot lacks it,
/// `refs/main` is not written, offline mode refuses the snapshot. The next run resumes the
/// partial download and ends with the exact bytes.
#[test]
fn interrupted_download_is_never_complete_and_resumes() {
    let sha = commit('7');
    let server = serve_tiny(&sha);
    server.set_truncate("model.safetensors", true);
    let cache = tempfile::tempdir().unwrap();
    let opts = options(&server, cache.path());

    let message = hub_error(resolve_str(REPO, &opts));
    assert!(message.contains("broke off"), "{message}");
    assert!(
        message.contains("not in the Hugging Face cache"),
        "{message}"
    );
    let snap = snapshot(cache.path(), REPO, &sha);
    assert!(!snap.join("model.safetensors").exists());
    // Everything before the top-level weights is in place, the weights are not.
    assert!(snap.join("speech_tokenizer/model.safetensors").is_file());
    let folder = repo_folder(cache.path(), REPO);
    assert!(!folder.join("refs/main").exists());
    let blobs = files_in(&folder.join("blobs"));
    let weights_blob = hub_support::lfs_id(&tiny_model()["model.safetensors"]);
    assert!(!blobs.contains(&weights_blob), "{blobs:?}");
    assert!(blobs.contains(&format!("{weights_blob}.part")), "{blobs:?}");
    let offline = opts.clone().with_offline(true);
    assert!(resolve_str(REPO, &offline).is_err());
    // Even pinned to the commit, whose snapshot folder exists, offline mode sees it is partial.
    let message = hub_error(resolve_str(&format!("{REPO}@{sha}"), &offline));
    assert!(message.contains("only partly"), "{message}");

    server.set_truncate("model.safetensors", false);
    let dir = resolve_str(REPO, &opts).unwrap();
    assert!(matches!(dir.origin(), Origin::Hub { downloaded: 1, .. }));
    assert_eq!(
        std::fs::read(dir.file("model.safetensors").unwrap()).unwrap(),
        tiny_model()["model.safetensors"]
    );
    assert!(
        !files_in(&folder.join("blobs"))
            .iter()
            .any(|b| b.ends_with(".part"))
    );
}

/// A transfer that breaks off on a *new* commit falls back to the complete older snapshot.
#[test]
fn interrupted_update_falls_back_to_the_old_snapshot() {
    let (old, new) = (commit('8'), commit('9'));
    let server = serve_tiny(&old);
    let cache = tempfile::tempdir().unwrap();
    let opts = options(&server, cache.path());
    resolve_str(REPO, &opts).unwrap();

    let mut files = tiny_model();
    files.insert(
        "model.safetensors".into(),
        hub_support::safetensors("w", &[9.0; 512]),
    );
    server.add_repo(REPO, &new, files);
    server.set_truncate("model.safetensors", true);
    let dir = resolve_str(REPO, &opts).unwrap();
    assert_eq!(dir.path(), snapshot(cache.path(), REPO, &old));
    assert!(matches!(dir.origin(), Origin::CacheFallback { commit, .. } if *commit == old));
    let refs_main = repo_folder(cache.path(), REPO).join("refs/main");
    assert_eq!(std::fs::read_to_string(refs_main).unwrap(), old);
}

/// A file whose size differs from the listing is removed (link and blob), not kept.
#[test]
fn wrong_size_is_rejected_and_removed() {
    let sha = commit('0');
    let server = serve_tiny(&sha);
    server.set_listed_size("vocab.json", 999);
    let cache = tempfile::tempdir().unwrap();
    let message = hub_error(resolve_str(REPO, &options(&server, cache.path())));
    assert!(message.contains("vocab.json"), "{message}");
    assert!(message.contains("999"), "{message}");
    assert!(
        !snapshot(cache.path(), REPO, &sha)
            .join("vocab.json")
            .exists()
    );
    let blob = hub_support::blob_id(&tiny_model()["vocab.json"]);
    assert!(
        !repo_folder(cache.path(), REPO)
            .join("blobs")
            .join(blob)
            .exists()
    );
}

/// Pinning a commit downloads that commit and writes no ref; progress output can be enabled.
#[test]
fn pinned_commit_with_progress() {
    let sha = commit('d');
    let server = serve_tiny(&sha);
    let cache = tempfile::tempdir().unwrap();
    let opts = options(&server, cache.path()).with_progress(true);
    let source = ModelSource::parse(&format!("{REPO}@{sha}")).unwrap();
    let dir = resolve(&source, &opts).unwrap();
    assert_eq!(dir.path(), snapshot(cache.path(), REPO, &sha));
    let refs = repo_folder(cache.path(), REPO).join("refs");
    assert!(
        !refs.exists() || files_in(&refs).is_empty(),
        "{:?}",
        files_in(&refs)
    );
    // The revision can also come from the options.
    let by_option = resolve_str(REPO, &opts.clone().with_revision(sha.clone())).unwrap();
    assert_eq!(by_option.path(), dir.path());
}

/// A local folder is used as is, without any request.
#[test]
fn local_folder_source() {
    let server = serve_tiny(&commit('a'));
    let cache = tempfile::tempdir().unwrap();
    let model = tempfile::tempdir().unwrap();
    std::fs::write(model.path().join("config.json"), "{}").unwrap();
    std::fs::write(
        model.path().join("model.safetensors"),
        hub_support::safetensors("w", &[1.0]),
    )
    .unwrap();
    let dir = resolve_str(
        model.path().to_str().unwrap(),
        &options(&server, cache.path()),
    )
    .unwrap();
    assert_eq!(dir.path(), model.path());
    assert_eq!(dir.origin(), &Origin::Local);
    assert_eq!(
        dir.weight_files().unwrap(),
        [model.path().join("model.safetensors")]
    );
    assert_eq!(server.requests(), 0);
    assert!(std::fs::read_dir(cache.path()).unwrap().next().is_none());
}

/// Strings that are neither a folder nor a repo id fail before any request.
#[test]
fn invalid_source_strings() {
    let server = serve_tiny(&commit('b'));
    let cache = tempfile::tempdir().unwrap();
    let opts = options(&server, cache.path());
    let model = tempfile::tempdir().unwrap();
    let file = model.path().join("config.json");
    std::fs::write(&file, "{}").unwrap();
    let missing = model.path().join("missing");
    for spec in [
        "",
        "not a model",
        "gpt2",
        file.to_str().unwrap(),
        missing.to_str().unwrap(),
        "Qwen/Qwen3-ASR-0.6B@",
    ] {
        match resolve_str(spec, &opts) {
            Err(Error::InvalidArgument(message)) => {
                assert!(
                    message.contains("Qwen/Qwen3-ASR-0.6B"),
                    "{spec:?}: {message}"
                )
            }
            other => panic!("{spec:?}: expected InvalidArgument, got {other:?}"),
        }
    }
    // Conflicting revisions in the name and the options.
    let err = resolve_str(&format!("{REPO}@v1"), &opts.clone().with_revision("v2")).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    assert_eq!(server.requests(), 0);
}
