//! Which files of a hub repository the engine downloads.
//!
//! Released repositories carry more than the engine reads: the model card and its images, git
//! metadata, sometimes demo audio, PyTorch `.bin` duplicates of the weights or Python code. The
//! rule is an allow-list of the file *types* the loaders read, so an unexpected large asset is
//! skipped rather than downloaded, while subfolders that hold a model part
//! (`speech_tokenizer/config.json`, `speech_tokenizer/model.safetensors`) come along.
//!
//! The rule also refuses names that could escape the snapshot folder (`..`, absolute paths,
//! backslashes): the file list comes from a server, and each name becomes a path on disk.

/// Extensions of the files model loaders read: configs and tokenizer files (`.json`, `.txt`
/// for `merges.txt`, `.model`/`.tiktoken` vocabularies, `.jinja` chat templates) and weights
/// (`.safetensors`).
const NEEDED_EXTENSIONS: &[&str] = &["json", "txt", "safetensors", "model", "tiktoken", "jinja"];

/// Folders that hold documentation or demo material, never model parts.
const ASSET_FOLDERS: &[&str] = &[
    "asset", "assets", "image", "images", "img", "imgs", "figure", "figures", "figs", "doc",
    "docs", "example", "examples", "sample", "samples", "demo", "demos",
];

/// File names (lowercase, without extension) that are documentation, not model parts.
const DOC_STEMS: &[&str] = &["readme", "license", "licence", "notice", "requirements"];

/// Whether the engine needs the repository file `path` (a `/`-separated repo path such as
/// `speech_tokenizer/config.json`).
///
/// Downloaded: `*.json`, `*.txt`, `*.safetensors`, `*.model`, `*.tiktoken`, `*.jinja`, at the
/// top level or in model subfolders. Skipped: hidden files and folders (`.gitattributes`),
/// `README*`/`LICENSE*`/`NOTICE*`/`requirements*`, anything under an asset, image, docs or
/// example folder, every other type (images, audio, `.bin`/`.pt` weights, code, archives), and
/// any name that is not a plain relative path.
pub fn is_needed_file(path: &str) -> bool {
    if path.is_empty() || path.contains('\\') || path.contains(':') {
        return false;
    }
    let parts: Vec<&str> = path.split('/').collect();
    if parts
        .iter()
        .any(|p| p.is_empty() || *p == "." || *p == ".." || p.starts_with('.'))
    {
        return false;
    }
    let Some((name, folders)) = parts.split_last() else {
        return false;
    };
    if folders
        .iter()
        .any(|f| ASSET_FOLDERS.contains(&f.to_ascii_lowercase().as_str()))
    {
        return false;
    }
    let lower = name.to_ascii_lowercase();
    let Some((stem, extension)) = lower.rsplit_once('.') else {
        return false;
    };
    if DOC_STEMS.iter().any(|d| stem.starts_with(d)) {
        return false;
    }
    NEEDED_EXTENSIONS.contains(&extension)
}

/// Whether a repo file holds weights (downloaded last, see the download order).
pub(crate) fn is_weight_file(path: &str) -> bool {
    path.to_ascii_lowercase().ends_with(".safetensors")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn released_repo_layouts() {
        // Files of the released Qwen3-ASR / ForcedAligner / TTS repositories.
        for needed in [
            "config.json",
            "generation_config.json",
            "preprocessor_config.json",
            "vocab.json",
            "merges.txt",
            "tokenizer_config.json",
            "tokenizer.json",
            "chat_template.json",
            "chat_template.jinja",
            "model.safetensors",
            "model.safetensors.index.json",
            "model-00001-of-00002.safetensors",
            "speech_tokenizer/config.json",
            "speech_tokenizer/configuration.json",
            "speech_tokenizer/model.safetensors",
            "speech_tokenizer/preprocessor_config.json",
            "tokenizer.model",
        ] {
            assert!(is_needed_file(needed), "{needed} should be downloaded");
        }
        for skipped in [
            "README.md",
            "readme.txt",
            "LICENSE",
            "LICENSE.txt",
            "requirements.txt",
            ".gitattributes",
            ".github/workflow.json",
            "assets/architecture.png",
            "assets/info.json",
            "images/x.json",
            "examples/demo.wav",
            "Docs/params.txt",
            "logo.png",
            "sample.wav",
            "pytorch_model.bin",
            "model.pt",
            "modeling_qwen3.py",
            "weights.zip",
            "Makefile",
        ] {
            assert!(!is_needed_file(skipped), "{skipped} should be skipped");
        }
    }

    #[test]
    fn unsafe_names_are_refused() {
        for name in [
            "",
            "/etc/passwd.json",
            "../config.json",
            "a/../../config.json",
            "./config.json",
            "a//config.json",
            "speech_tokenizer/",
            "C:/x.json",
            "a\\b.json",
        ] {
            assert!(!is_needed_file(name), "{name:?} must be refused");
        }
    }

    #[test]
    fn weights() {
        assert!(is_weight_file("model.safetensors"));
        assert!(is_weight_file(
            "speech_tokenizer/model-00001-of-00002.safetensors"
        ));
        assert!(!is_weight_file("model.safetensors.index.json"));
    }
}
