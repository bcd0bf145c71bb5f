//! Errors as typed exceptions: `SpeechException.Cancelled`, `SpeechException.Audio`, ... in
//! Kotlin, `SpeechError.cancelled` ... in Swift. Each carries the engine's message.

use qwen3_speech::Error;

/// A failed call. The variant says what kind of problem it is; the message says what exactly.
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[uniffi(flat_error)]
pub enum SpeechError {
    /// A file could not be read (missing, no permission).
    #[error("{0}")]
    Io(String),
    /// Audio that cannot be used: empty, corrupt, unsupported format, too short.
    #[error("{0}")]
    Audio(String),
    /// A model folder is missing a file, or a file is malformed, or the model cannot do what was
    /// asked (e.g. word timestamps without an aligner).
    #[error("{0}")]
    Model(String),
    /// A weight tensor is missing from the checkpoint or has the wrong shape.
    #[error("{0}")]
    Weights(String),
    /// A configuration file cannot be parsed or holds inconsistent values.
    #[error("{0}")]
    Config(String),
    /// The tokenizer files cannot be loaded, or text cannot be encoded.
    #[error("{0}")]
    Tokenizer(String),
    /// An option or argument is invalid (unknown language or speaker, bad sample rate, ...).
    #[error("{0}")]
    InvalidArgument(String),
    /// The call was cancelled through its [`crate::CancelToken`].
    #[error("cancelled")]
    Cancelled,
    /// Anything else (a tensor operation failed: a bug, or an unsupported configuration).
    #[error("{0}")]
    Internal(String),
}

impl From<Error> for SpeechError {
    fn from(e: Error) -> Self {
        let message = e.to_string();
        match e {
            Error::Io { .. } => SpeechError::Io(message),
            Error::Audio(_) => SpeechError::Audio(message),
            Error::Model(_) => SpeechError::Model(message),
            Error::Weights(_) => SpeechError::Weights(message),
            Error::Config { .. } => SpeechError::Config(message),
            Error::Tokenizer(_) => SpeechError::Tokenizer(message),
            Error::InvalidArgument(_) => SpeechError::InvalidArgument(message),
            Error::Cancelled => SpeechError::Cancelled,
            // Hub errors cannot happen here (models load from local folders only); should one
            // appear it is reported as a model problem.
            Error::Hub(_) => SpeechError::Model(message),
            _ => SpeechError::Internal(message),
        }
    }
}

pub type Result<T, E = SpeechError> = std::result::Result<T, E>;
