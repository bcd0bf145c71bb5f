//! `qwen3-speech align`: word timestamps for a known transcript.

use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use qwen3_speech::subtitles::{CueOptions, build_cues, timestamp, to_srt, to_vtt};
use qwen3_speech::{Aligner, AlignerConfig, AudioInput, FetchOptions, WordTiming};

use crate::RuntimeArgs;
use crate::output::{Format, words_json};

#[derive(Args, Debug)]
pub struct AlignArgs {
    /// The audio file.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// The transcript.
    #[arg(
        long,
        conflicts_with = "text_file",
        required_unless_present = "text_file"
    )]
    text: Option<String>,
    /// A file holding the transcript (UTF-8).
    #[arg(long, value_name = "F")]
    text_file: Option<PathBuf>,
    /// Language of the transcript: Chinese, Cantonese, English, German, Spanish, French,
    /// Italian, Portuguese, Russian, Korean, Japanese (or a code: zh, en, ...).
    #[arg(long, short = 'l')]
    language: String,
    /// A local aligner folder or a hub repo id.
    #[arg(long, short = 'm', default_value = qwen3_speech::DEFAULT_ALIGNER)]
    model: String,
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value = "json")]
    format: Format,
    #[command(flatten)]
    runtime: RuntimeArgs,
    /// No progress bar while downloading.
    #[arg(long, short = 'q')]
    quiet: bool,
}

pub fn run(args: AlignArgs) -> Result<ExitCode> {
    let text = match (&args.text, &args.text_file) {
        (Some(t), _) => t.clone(),
        (None, Some(f)) => std::fs::read_to_string(f)
            .with_context(|| format!("cannot read the transcript {}", f.display()))?,
        (None, None) => bail!("give the transcript with --text or --text-file"),
    };
    if text.trim().is_empty() {
        bail!("the transcript is empty");
    }
    let config = AlignerConfig {
        device: args.runtime.device,
        dtype: args.runtime.dtype,
        attention: args.runtime.attention,
        fetch: FetchOptions::from_env().with_progress(!args.quiet),
    };
    let aligner = Aligner::new(&args.model, config)
        .with_context(|| format!("cannot load the aligner '{}'", args.model))?;
    let language = aligner.model().resolve_language(&args.language)?;
    let words = aligner.align(AudioInput::Path(&args.file), &text, &language)?;
    let out = render(args.format, &args, &language, &text, &words);
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(out.as_bytes())?;
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn render(
    format: Format,
    args: &AlignArgs,
    language: &str,
    text: &str,
    words: &[WordTiming],
) -> String {
    match format {
        Format::Json => {
            let v = serde_json::json!({
                "path": args.file.display().to_string(),
                "language": language,
                "words": words_json(words),
            });
            format!("{v}\n")
        }
        Format::Txt => {
            let mut out = String::new();
            for w in words {
                let _ = writeln!(
                    out,
                    "[{} --> {}] {}",
                    timestamp(w.start, '.'),
                    timestamp(w.end, '.'),
                    w.text
                );
            }
            out
        }
        Format::Srt => to_srt(&build_cues(text, words, &CueOptions::default())),
        Format::Vtt => to_vtt(&build_cues(text, words, &CueOptions::default())),
    }
}
