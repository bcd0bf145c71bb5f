//! `FetchOptions::from_env` end to end: HF_HOME, HF_ENDPOINT, HF_TOKEN and HF_HUB_OFFLINE from
//! the real process environment steer a download from the local test hub.
//!
//! Environment variables are process-global, so this binary holds exactly one test, which sets
//! them while no other test thread exists; all other hub tests pass options explicitly.

mod hub_support;

use hub_support::{HubServer, commit, tiny_model};
use qwen3_speech_engine::hub::{FetchOptions, Origin, resolve_str};

const VARS: &[&str] = &[
    "HF_HOME",
    "HF_HUB_CACHE",
    "HUGGINGFACE_HUB_CACHE",
    "HF_ENDPOINT",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_TOKEN_PATH",
    "HF_HUB_OFFLINE",
    "HF_HUB_DISABLE_PROGRESS_BARS",
];

fn set(name: &str, value: Option<&str>) {
    // SAFETY: this binary's only test runs alone; nothing else reads the environment while it
    // is changed (the test hub's threads never read it, and no request is in flight).
    unsafe {
        match value {
            Some(v) => std::env::set_var(name, v),
            None => std::env::remove_var(name),
        }
    }
}

#[test]
fn environment_controls_cache_endpoint_token_and_offline() {
    let sha = commit('e');
    let server = HubServer::start();
    server.add_repo("env-org/private-asr", &sha, tiny_model());
    server.require_token("env-org/private-asr", "hf_env_secret");
    let hf_home = tempfile::tempdir().unwrap();

    for name in VARS {
        set(name, None);
    }
    set("HF_HOME", Some(hf_home.path().to_str().unwrap()));
    set("HF_ENDPOINT", Some(&format!("{}/", server.endpoint)));
    set("HF_TOKEN", Some("hf_env_secret"));
    set("HF_HUB_DISABLE_PROGRESS_BARS", Some("1"));

    let options = FetchOptions::from_env();
    assert_eq!(options.endpoint, server.endpoint);
    assert_eq!(
        options.cache_dir.as_deref(),
        Some(hf_home.path().join("hub").as_path())
    );
    assert!(!options.offline && !options.progress);

    let dir = resolve_str("env-org/private-asr", &options).unwrap();
    let snapshot = hf_home
        .path()
        .join("hub/models--env-org--private-asr/snapshots")
        .join(&sha);
    assert_eq!(dir.path(), snapshot);
    assert!(matches!(dir.origin(), Origin::Hub { .. }));

    // HF_HUB_OFFLINE=1: the cached snapshot, no request; an uncached repo is a clear error.
    set("HF_HUB_OFFLINE", Some("1"));
    set("HF_TOKEN", None);
    let requests = server.requests();
    let options = FetchOptions::from_env();
    assert!(options.offline);
    let dir = resolve_str("env-org/private-asr", &options).unwrap();
    assert_eq!(dir.path(), snapshot);
    assert!(matches!(dir.origin(), Origin::Offline { .. }));
    let message = resolve_str("env-org/other", &options)
        .unwrap_err()
        .to_string();
    assert!(message.contains("HF_HUB_OFFLINE"), "{message}");
    assert!(
        message.contains(
            &hf_home
                .path()
                .join("hub/models--env-org--other")
                .display()
                .to_string()
        ),
        "{message}"
    );
    assert_eq!(server.requests(), requests);

    for name in VARS {
        set(name, None);
    }
}
