//! Kotlin and Swift bindings of qwen3-speech, generated with uniffi.

uniffi::setup_scaffolding!();

/// The version of the engine inside the bindings.
#[uniffi::export]
pub fn engine_version() -> String {
    qwen3_speech::VERSION.to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn version_is_the_facade_version() {
        assert_eq!(super::engine_version(), qwen3_speech::VERSION);
    }
}
