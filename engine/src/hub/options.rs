//! How to fetch from the hub, and the one place that reads the Hugging Face environment.
//!
//! Environment variables are process-global, so the rest of the hub code takes a
//! [`FetchOptions`] value instead of reading them; [`FetchOptions::from_vars`] maps a variable
//! lookup to options and is unit-tested with plain closures. The variables and their precedence
//! follow the Python `huggingface_hub` library, so both tools agree on the cache and the token.

use std::fmt;
use std::path::PathBuf;

/// The public Hugging Face hub.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Options for [`crate::hub::resolve`].
#[derive(Clone)]
pub struct FetchOptions {
    /// Show a download progress bar on stderr (hidden anyway when stderr is not a terminal).
    pub progress: bool,
    /// Revision to fetch when the model name carries no `@revision`; `None` means `main`.
    pub revision: Option<String>,
    /// Never touch the network: use the cache or fail with an explanation.
    pub offline: bool,
    /// Base URL of the hub, without a trailing `/`.
    pub endpoint: String,
    /// The hub cache folder (the one holding `models--owner--name/`), i.e. `$HF_HOME/hub`.
    /// `None` when no location could be derived (no `HF_HOME` and no home folder).
    pub cache_dir: Option<PathBuf>,
    /// Access token for private or gated repositories.
    pub token: Option<String>,
}

impl fmt::Debug for FetchOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FetchOptions")
            .field("progress", &self.progress)
            .field("revision", &self.revision)
            .field("offline", &self.offline)
            .field("endpoint", &self.endpoint)
            .field("cache_dir", &self.cache_dir)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl FetchOptions {
    /// Options from the process environment (see [`FetchOptions::from_vars`] for the variables).
    pub fn from_env() -> Self {
        Self::from_vars(|name| {
            let value = std::env::var(name).ok();
            if value.is_none() && name == "HOME" {
                // Unix accounts without $HOME, Windows: ask the platform.
                #[allow(deprecated)]
                return std::env::home_dir().map(|p| p.to_string_lossy().into_owned());
            }
            value
        })
    }

    /// Options from a variable lookup, following `huggingface_hub`:
    ///
    /// * cache: `HF_HUB_CACHE`, else `HUGGINGFACE_HUB_CACHE`, else `$HF_HOME/hub`, where
    ///   `HF_HOME` defaults to `$XDG_CACHE_HOME/huggingface`, then `~/.cache/huggingface`
    ///   (home from `HOME`, then `USERPROFILE`);
    /// * endpoint: `HF_ENDPOINT`, else <https://huggingface.co>;
    /// * token: `HF_TOKEN`, else `HUGGING_FACE_HUB_TOKEN`, else the token file
    ///   (`HF_TOKEN_PATH`, else `$HF_HOME/token`, written by `huggingface-cli login`);
    /// * offline: `HF_HUB_OFFLINE` set to `1`, `true`, `yes` or `on`;
    /// * progress bars, unless `HF_HUB_DISABLE_PROGRESS_BARS` is set to such a value.
    ///
    /// Empty values count as unset.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Self {
        let var = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let flag = |name: &str| var(name).is_some_and(|v| is_truthy(&v));

        let home = var("HOME")
            .or_else(|| var("USERPROFILE"))
            .map(PathBuf::from);
        let hf_home = var("HF_HOME").map(PathBuf::from).or_else(|| {
            var("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| home.map(|h| h.join(".cache")))
                .map(|c| c.join("huggingface"))
        });
        let cache_dir = var("HF_HUB_CACHE")
            .or_else(|| var("HUGGINGFACE_HUB_CACHE"))
            .map(PathBuf::from)
            .or_else(|| hf_home.as_ref().map(|h| h.join("hub")));

        let endpoint = var("HF_ENDPOINT")
            .map(|e| e.trim().trim_end_matches('/').to_string())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());

        let token = var("HF_TOKEN")
            .or_else(|| var("HUGGING_FACE_HUB_TOKEN"))
            .map(|t| t.trim().to_string())
            .or_else(|| {
                let path = var("HF_TOKEN_PATH")
                    .map(PathBuf::from)
                    .or_else(|| hf_home.as_ref().map(|h| h.join("token")))?;
                let text = std::fs::read_to_string(path).ok()?;
                let text = text.trim();
                (!text.is_empty()).then(|| text.to_string())
            });

        FetchOptions {
            progress: !flag("HF_HUB_DISABLE_PROGRESS_BARS"),
            revision: None,
            offline: flag("HF_HUB_OFFLINE"),
            endpoint,
            cache_dir,
            token,
        }
    }

    /// Shows or hides the progress bar.
    pub fn with_progress(mut self, progress: bool) -> Self {
        self.progress = progress;
        self
    }

    /// Sets the default revision (used when the model name has no `@revision`).
    pub fn with_revision(mut self, revision: impl Into<String>) -> Self {
        self.revision = Some(revision.into());
        self
    }

    /// Turns offline mode on or off.
    pub fn with_offline(mut self, offline: bool) -> Self {
        self.offline = offline;
        self
    }

    /// Sets the hub URL (a trailing `/` is removed).
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = endpoint.into().trim_end_matches('/').to_string();
        self
    }

    /// Sets the hub cache folder (the equivalent of `HF_HUB_CACHE`).
    pub fn with_cache_dir(mut self, cache_dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(cache_dir.into());
        self
    }

    /// Sets or clears the access token.
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }
}

/// `huggingface_hub`'s boolean parsing of environment values.
fn is_truthy(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> FetchOptions {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        FetchOptions::from_vars(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_follow_home() {
        let o = from(&[("HOME", "/home/u")]);
        assert_eq!(o.endpoint, DEFAULT_ENDPOINT);
        assert_eq!(
            o.cache_dir,
            Some(PathBuf::from("/home/u/.cache/huggingface/hub"))
        );
        assert!(!o.offline);
        assert!(o.progress);
        assert_eq!(o.revision, None);
        assert_eq!(o.token, None);

        let o = from(&[("USERPROFILE", "C:/Users/u")]);
        assert_eq!(
            o.cache_dir,
            Some(PathBuf::from("C:/Users/u/.cache/huggingface/hub"))
        );
        let o = from(&[("HOME", "/home/u"), ("XDG_CACHE_HOME", "/xdg")]);
        assert_eq!(o.cache_dir, Some(PathBuf::from("/xdg/huggingface/hub")));
        assert_eq!(from(&[]).cache_dir, None);
    }

    #[test]
    fn cache_precedence() {
        let o = from(&[("HOME", "/home/u"), ("HF_HOME", "/hf")]);
        assert_eq!(o.cache_dir, Some(PathBuf::from("/hf/hub")));
        let o = from(&[("HF_HOME", "/hf"), ("HUGGINGFACE_HUB_CACHE", "/legacy")]);
        assert_eq!(o.cache_dir, Some(PathBuf::from("/legacy")));
        let o = from(&[
            ("HF_HOME", "/hf"),
            ("HUGGINGFACE_HUB_CACHE", "/legacy"),
            ("HF_HUB_CACHE", "/hubcache"),
        ]);
        assert_eq!(o.cache_dir, Some(PathBuf::from("/hubcache")));
        // An empty value is unset.
        let o = from(&[("HOME", "/home/u"), ("HF_HOME", "")]);
        assert_eq!(
            o.cache_dir,
            Some(PathBuf::from("/home/u/.cache/huggingface/hub"))
        );
    }

    #[test]
    fn endpoint_offline_progress() {
        let o = from(&[("HF_ENDPOINT", "http://127.0.0.1:8080/ ")]);
        assert_eq!(o.endpoint, "http://127.0.0.1:8080");
        for v in ["1", "true", "TRUE", "yes", "On"] {
            assert!(from(&[("HF_HUB_OFFLINE", v)]).offline, "{v}");
            assert!(
                !from(&[("HF_HUB_DISABLE_PROGRESS_BARS", v)]).progress,
                "{v}"
            );
        }
        for v in ["0", "false", "no", "off", ""] {
            assert!(!from(&[("HF_HUB_OFFLINE", v)]).offline, "{v}");
        }
        let o = FetchOptions::from_vars(|_| None).with_endpoint("http://h:1/");
        assert_eq!(o.endpoint, "http://h:1");
    }

    #[test]
    fn token_sources() {
        let dir = tempfile::tempdir().unwrap();
        let hf_home = dir.path().to_str().unwrap();
        std::fs::write(dir.path().join("token"), "hf_file\n").unwrap();
        let custom = dir.path().join("custom-token");
        std::fs::write(&custom, "hf_custom").unwrap();

        assert_eq!(
            from(&[("HF_HOME", hf_home)]).token.as_deref(),
            Some("hf_file")
        );
        assert_eq!(
            from(&[
                ("HF_HOME", hf_home),
                ("HF_TOKEN_PATH", custom.to_str().unwrap())
            ])
            .token
            .as_deref(),
            Some("hf_custom")
        );
        assert_eq!(
            from(&[
                ("HF_HOME", hf_home),
                ("HUGGING_FACE_HUB_TOKEN", "hf_legacy")
            ])
            .token
            .as_deref(),
            Some("hf_legacy")
        );
        let o = from(&[
            ("HF_HOME", hf_home),
            ("HUGGING_FACE_HUB_TOKEN", "hf_legacy"),
            ("HF_TOKEN", " hf_env "),
        ]);
        assert_eq!(o.token.as_deref(), Some("hf_env"));
        // Debug output never shows the token.
        let debug = format!("{o:?}");
        assert!(
            !debug.contains("hf_env") && debug.contains("redacted"),
            "{debug}"
        );
        assert_eq!(from(&[("HF_HOME", "/nonexistent-hf-home")]).token, None);
    }
}
