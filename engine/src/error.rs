//! The one error type of the engine. Every failure a user can cause (bad audio, missing or
//! mismatched model files, unknown options) is a variant with a message that names the culprit;
//! nothing in the engine panics on user input.

use std::path::PathBuf;

/// Result alias used across the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Audio that cannot be used: empty, truncated, corrupt, unsupported, too short.
    #[error("audio: {0}")]
    Audio(String),

    /// A model folder or repository is missing a file, or a file is malformed.
    #[error("model: {0}")]
    Model(String),

    /// A weight tensor is missing from the checkpoint or has the wrong shape.
    #[error("weights: {0}")]
    Weights(String),

    /// A config.json (or similar) file cannot be parsed or holds inconsistent values.
    #[error("config {path}: {message}")]
    Config { path: PathBuf, message: String },

    /// The tokenizer files cannot be loaded, or text cannot be encoded/decoded.
    #[error("tokenizer: {0}")]
    Tokenizer(String),

    /// Downloading from the Hugging Face hub failed, or the model is not cached while offline.
    #[error("hub: {0}")]
    Hub(String),

    /// A user-supplied option is invalid (unknown device, dtype, language, speaker...).
    #[error("{0}")]
    InvalidArgument(String),

    /// The call was cancelled through [`crate::cancel`] (Ctrl-C, a cancel token).
    #[error("cancelled")]
    Cancelled,

    /// A tensor operation failed (a bug or an unsupported device/dtype combination).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
