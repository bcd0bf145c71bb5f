//! A model folder, wherever it came from, with checked access to its files.
//!
//! Loaders ask a [`ModelDir`] for files by their repository name instead of joining paths
//! themselves, so a missing file is reported the same way everywhere: which file, in which
//! folder, and (for the weights) which shards of a sharded checkpoint are absent.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use crate::{Error, Result};

/// Name of a single-file checkpoint.
const SINGLE_WEIGHTS: &str = "model.safetensors";
/// Name of the index of a sharded checkpoint.
const WEIGHTS_INDEX: &str = "model.safetensors.index.json";

/// Where a [`ModelDir`] came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A folder the user named.
    Local,
    /// A hub snapshot, checked against the hub just now.
    Hub {
        repo_id: String,
        commit: String,
        /// Files downloaded by this call (0: everything was already cached).
        downloaded: usize,
    },
    /// A cached hub snapshot used without contacting the hub (offline mode).
    Offline { repo_id: String, commit: String },
    /// A cached hub snapshot used because the hub could not be reached.
    CacheFallback {
        repo_id: String,
        commit: String,
        /// Why the hub could not be reached.
        reason: String,
    },
}

/// A local folder holding a model (or a part of one, see [`ModelDir::subdir`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelDir {
    path: PathBuf,
    origin: Origin,
}

impl ModelDir {
    /// A local folder; errors when it does not exist or is not a folder.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        if !path.is_dir() {
            let what = if path.exists() {
                "is not a folder"
            } else {
                "does not exist"
            };
            return Err(Error::Model(format!(
                "model folder {} {what}",
                path.display()
            )));
        }
        Ok(ModelDir {
            path,
            origin: Origin::Local,
        })
    }

    pub(crate) fn with_origin(path: PathBuf, origin: Origin) -> Self {
        ModelDir { path, origin }
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the folder came from.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The path of `name` (a relative, `/`-separated name such as `config.json` or
    /// `speech_tokenizer/config.json`); errors naming the file and the folder when it is absent.
    pub fn file(&self, name: &str) -> Result<PathBuf> {
        let path = self.join(name)?;
        if path.is_file() {
            Ok(path)
        } else {
            Err(Error::Model(format!(
                "missing {name} in model folder {}{}",
                self.path.display(),
                self.hint()
            )))
        }
    }

    /// The path of `name` when the file exists (for files only some releases have, such as
    /// `chat_template.json`); `None` also for names that are not plain relative paths.
    pub fn optional_file(&self, name: &str) -> Option<PathBuf> {
        self.join(name).ok().filter(|p| p.is_file())
    }

    /// The safetensors files of the checkpoint in this folder: `model.safetensors`, or else the
    /// shards listed by `model.safetensors.index.json` (sorted, each once), all checked to
    /// exist. Errors name the folder and every missing shard.
    pub fn weight_files(&self) -> Result<Vec<PathBuf>> {
        if let Some(single) = self.optional_file(SINGLE_WEIGHTS) {
            return Ok(vec![single]);
        }
        let Some(index_path) = self.optional_file(WEIGHTS_INDEX) else {
            return Err(Error::Model(format!(
                "no weights in model folder {}: expected {SINGLE_WEIGHTS}, or \
                 {WEIGHTS_INDEX} with the shards it lists{}",
                self.path.display(),
                self.hint()
            )));
        };
        let shards = read_index_shards(&index_path)?;
        let mut files = Vec::with_capacity(shards.len());
        let mut missing = Vec::new();
        for shard in &shards {
            match self.join(shard) {
                Ok(path) if path.is_file() => files.push(path),
                Ok(_) => missing.push(shard.as_str()),
                Err(_) => {
                    return Err(Error::Config {
                        path: index_path,
                        message: format!("weight_map names an invalid shard file `{shard}`"),
                    });
                }
            }
        }
        if !missing.is_empty() {
            return Err(Error::Model(format!(
                "model folder {} is missing {} of the {} weight shards listed in \
                 {WEIGHTS_INDEX}: {}{}",
                self.path.display(),
                missing.len(),
                shards.len(),
                missing.join(", "),
                self.hint()
            )));
        }
        Ok(files)
    }

    /// A subfolder holding a model part (e.g. `speech_tokenizer`), with the same origin.
    pub fn subdir(&self, name: &str) -> Result<ModelDir> {
        let path = self.join(name)?;
        if path.is_dir() {
            Ok(ModelDir {
                path,
                origin: self.origin.clone(),
            })
        } else {
            Err(Error::Model(format!(
                "missing subfolder {name}/ in model folder {}{}",
                self.path.display(),
                self.hint()
            )))
        }
    }

    /// `name` joined to the folder, refusing names that would leave it.
    fn join(&self, name: &str) -> Result<PathBuf> {
        let relative = Path::new(name);
        let plain = !name.is_empty()
            && relative
                .components()
                .all(|c| matches!(c, Component::Normal(_)));
        if plain {
            Ok(self.path.join(relative))
        } else {
            Err(Error::InvalidArgument(format!(
                "`{name}` is not a file name inside a model folder"
            )))
        }
    }

    /// Extra advice for a missing file, depending on where the folder came from.
    fn hint(&self) -> String {
        match &self.origin {
            Origin::Local => String::new(),
            Origin::Hub { repo_id, .. } => format!(
                " (snapshot of {repo_id}: the repository has no such file, or it is not a file \
                 type qwen3-speech downloads)"
            ),
            Origin::Offline { repo_id, .. } | Origin::CacheFallback { repo_id, .. } => format!(
                " (snapshot of {repo_id}; if the repository has the file, the cached copy is \
                 incomplete: run again online to complete it)"
            ),
        }
    }
}

/// The distinct shard file names of a `model.safetensors.index.json`.
fn read_index_shards(index_path: &Path) -> Result<BTreeSet<String>> {
    let text = std::fs::read_to_string(index_path).map_err(|e| Error::io(index_path, e))?;
    let config_error = |message: String| Error::Config {
        path: index_path.to_path_buf(),
        message,
    };
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| config_error(e.to_string()))?;
    let map = value
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| config_error("no `weight_map` object".into()))?;
    let mut shards = BTreeSet::new();
    for (tensor, file) in map {
        let file = file.as_str().ok_or_else(|| {
            config_error(format!("weight_map entry `{tensor}` is not a file name"))
        })?;
        shards.insert(file.to_string());
    }
    if shards.is_empty() {
        return Err(config_error("`weight_map` is empty".into()));
    }
    Ok(shards)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    const INDEX: &str = r#"{"metadata": {"total_size": 16}, "weight_map": {
        "a.weight": "model-00001-of-00003.safetensors",
        "b.weight": "model-00002-of-00003.safetensors",
        "c.weight": "model-00003-of-00003.safetensors",
        "d.weight": "model-00001-of-00003.safetensors"}}"#;

    #[test]
    fn files_and_subdirs() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "config.json", "{}");
        write(tmp.path(), "speech_tokenizer/config.json", "{}");
        let dir = ModelDir::open(tmp.path()).unwrap();
        assert_eq!(dir.path(), tmp.path());
        assert_eq!(dir.origin(), &Origin::Local);
        assert_eq!(
            dir.file("config.json").unwrap(),
            tmp.path().join("config.json")
        );
        assert!(dir.optional_file("config.json").is_some());
        assert!(dir.optional_file("chat_template.json").is_none());
        assert!(dir.optional_file("../config.json").is_none());
        assert!(dir.file("speech_tokenizer/config.json").is_ok());

        let err = dir.file("vocab.json").unwrap_err().to_string();
        assert!(err.contains("missing vocab.json"), "{err}");
        assert!(err.contains(&tmp.path().display().to_string()), "{err}");
        assert!(dir.file("/etc/passwd").is_err());
        assert!(dir.file("..").is_err());
        assert!(dir.file("").is_err());

        let sub = dir.subdir("speech_tokenizer").unwrap();
        assert_eq!(sub.path(), tmp.path().join("speech_tokenizer"));
        assert!(sub.file("config.json").is_ok());
        let err = dir.subdir("nope").unwrap_err().to_string();
        assert!(err.contains("missing subfolder nope/"), "{err}");
        assert!(dir.subdir("config.json").is_err());
    }

    #[test]
    fn open_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let err = ModelDir::open(tmp.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not exist"), "{err}");
        write(tmp.path(), "file.json", "{}");
        let err = ModelDir::open(tmp.path().join("file.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not a folder"), "{err}");
    }

    #[test]
    fn single_weights() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = ModelDir::open(tmp.path()).unwrap();
        let err = dir.weight_files().unwrap_err().to_string();
        assert!(err.contains("no weights"), "{err}");
        write(tmp.path(), "model.safetensors", "x");
        assert_eq!(
            dir.weight_files().unwrap(),
            vec![tmp.path().join("model.safetensors")]
        );
    }

    #[test]
    fn sharded_weights() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), WEIGHTS_INDEX, INDEX);
        write(tmp.path(), "model-00002-of-00003.safetensors", "x");
        let dir = ModelDir::open(tmp.path()).unwrap();
        let err = dir.weight_files().unwrap_err().to_string();
        assert!(err.contains("missing 2 of the 3 weight shards"), "{err}");
        assert!(err.contains("model-00001-of-00003.safetensors"), "{err}");
        assert!(err.contains("model-00003-of-00003.safetensors"), "{err}");
        assert!(!err.contains("model-00002-of-00003.safetensors"), "{err}");

        write(tmp.path(), "model-00001-of-00003.safetensors", "x");
        write(tmp.path(), "model-00003-of-00003.safetensors", "x");
        let files = dir.weight_files().unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "model-00001-of-00003.safetensors",
                "model-00002-of-00003.safetensors",
                "model-00003-of-00003.safetensors"
            ]
        );
    }

    #[test]
    fn malformed_index() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = ModelDir::open(tmp.path()).unwrap();
        for (text, needle) in [
            ("not json", "expected"),
            ("{}", "weight_map"),
            (r#"{"weight_map": {}}"#, "empty"),
            (r#"{"weight_map": {"a": 1}}"#, "not a file name"),
            (
                r#"{"weight_map": {"a": "../x.safetensors"}}"#,
                "invalid shard",
            ),
        ] {
            write(tmp.path(), WEIGHTS_INDEX, text);
            let err = dir.weight_files().unwrap_err();
            assert!(matches!(err, Error::Config { .. }), "{text}: {err:?}");
            assert!(err.to_string().contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn hub_origin_adds_a_hint() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = ModelDir::with_origin(
            tmp.path().to_path_buf(),
            Origin::Offline {
                repo_id: "o/n".into(),
                commit: "c".into(),
            },
        );
        let err = dir.file("config.json").unwrap_err().to_string();
        assert!(err.contains("snapshot of o/n"), "{err}");
    }
}
