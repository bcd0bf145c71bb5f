//! Reading the JSON configuration files of a checkpoint.
//!
//! Config structs elsewhere mirror the released `config.json` files with serde; they tolerate
//! unknown keys (serde's default) so newer releases with extra fields still load. This module
//! only turns a file into such a struct with an error message that names the file and the
//! offending field.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// Parses a JSON file into `T`; errors name the file, the line/column and the reason.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let value = parse_json(path, &text)?;
    crate::progress::report(
        crate::progress::LoadStage::Config,
        1.0,
        path.display().to_string(),
    );
    Ok(value)
}

/// Parses JSON text that came from `path` (used for error messages only).
pub fn parse_json<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Helper for `#[serde(default = ...)]` attributes.
pub fn default_true() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    struct Small {
        a: u32,
        #[serde(default)]
        b: Option<String>,
    }

    #[test]
    fn unknown_keys_are_tolerated_and_errors_name_the_file() {
        let p = Path::new("x/config.json");
        let v: Small = parse_json(p, r#"{"a": 3, "zzz": [1, 2]}"#).unwrap();
        assert_eq!(v.a, 3);
        assert!(v.b.is_none());
        let err = parse_json::<Small>(p, r#"{"a": "three"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("x/config.json"), "{err}");
        assert!(err.contains("line 1"), "{err}");
    }
}
