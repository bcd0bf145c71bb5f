//! `qwen3-speech transcribe`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use qwen3_speech::engine::sampling::SamplingConfig;
use qwen3_speech::{AudioInput, FetchOptions, Transcriber, TranscriberConfig};

use crate::RuntimeArgs;
use crate::output::{Format, render};

#[derive(Args, Debug)]
pub struct TranscribeArgs {
    /// Audio files to transcribe.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// A local model folder or a hub repo id (e.g. Qwen/Qwen3-ASR-0.6B).
    #[arg(long, short = 'm')]
    model: String,
    /// Language of the speech (name or code: English, en, Chinese, zh, ...); detected when
    /// not given.
    #[arg(long, short = 'l')]
    language: Option<String>,
    /// Context for the model: names, terms, topic (improves their recognition).
    #[arg(long, default_value = "")]
    context: String,
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value = "txt")]
    format: Format,
    /// Write <DIR>/<file stem>.<format> for each input instead of printing to stdout.
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
    /// Token budget per piece of audio (default: scaled with the audio's duration).
    #[arg(long)]
    max_new_tokens: Option<usize>,
    #[command(flatten)]
    runtime: RuntimeArgs,
    /// Split long audio into pieces of at most this many seconds.
    #[arg(long, default_value_t = 1200.0)]
    chunk_seconds: f64,
    /// Pieces decoded together.
    #[arg(long, default_value_t = 4)]
    batch_size: usize,
    /// Sample instead of greedy decoding, with this temperature.
    #[arg(long)]
    temperature: Option<f32>,
    /// Seed for sampling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Time every word with a forced aligner (JSON gains "words"; srt/vtt become timed
    /// subtitles). Long audio is then transcribed in pieces of at most 180 s.
    #[arg(long)]
    timestamps: bool,
    /// The forced aligner for --timestamps (local folder or hub id).
    #[arg(long, value_name = "M", default_value = qwen3_speech::DEFAULT_ALIGNER)]
    aligner: String,
    /// No progress bar.
    #[arg(long, short = 'q')]
    quiet: bool,
}

pub fn run(args: TranscribeArgs) -> Result<ExitCode> {
    let sampling = match args.temperature {
        Some(t) => SamplingConfig {
            do_sample: true,
            temperature: t,
            seed: args.seed,
            ..SamplingConfig::greedy()
        },
        None => SamplingConfig::greedy(),
    };
    if let Some(dir) = &args.output_dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create output folder {}", dir.display()))?;
    }
    let config = TranscriberConfig {
        language: args.language.clone(),
        context: args.context.clone(),
        max_new_tokens: args.max_new_tokens,
        attention: args.runtime.attention,
        device: args.runtime.device,
        dtype: args.runtime.dtype,
        sampling,
        chunk_seconds: args.chunk_seconds,
        batch_size: args.batch_size,
        fetch: FetchOptions::from_env().with_progress(!args.quiet),
        aligner: args.timestamps.then(|| args.aligner.clone()),
    };
    config.validate()?;
    let started = Instant::now();
    let transcriber = Transcriber::new(&args.model, config)
        .with_context(|| format!("cannot load model '{}'", args.model))?;
    if !args.quiet {
        eprintln!(
            "loaded {} in {:.1} s",
            transcriber.model_dir().path().display(),
            started.elapsed().as_secs_f64()
        );
    }

    let mut failures = 0usize;
    let stdout = std::io::stdout();
    for path in &args.files {
        let bar = progress_bar(args.quiet, path);
        let input = AudioInput::Path(path);
        let result = transcriber
            .transcribe_batch(&[input], |_, p| {
                if let Some(b) = &bar {
                    b.set_length((p.audio_seconds_total * 10.0) as u64);
                    b.set_position((p.audio_seconds_done * 10.0) as u64);
                }
            })
            .pop()
            .expect("one result");
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        match result {
            Ok(t) => {
                for w in &t.warnings {
                    eprintln!("warning: {}: {w}", path.display());
                }
                if t.truncated {
                    eprintln!(
                        "warning: {}: the token budget ran out before the transcript ended; \
                         raise --max-new-tokens",
                        path.display()
                    );
                }
                let text = render(args.format, path, &t);
                match &args.output_dir {
                    Some(dir) => {
                        let out = output_path(dir, path, args.format);
                        std::fs::write(&out, text)
                            .with_context(|| format!("cannot write {}", out.display()))?;
                        if !args.quiet {
                            eprintln!("{} -> {}", path.display(), out.display());
                        }
                    }
                    None => {
                        let mut lock = stdout.lock();
                        lock.write_all(text.as_bytes())?;
                        lock.flush()?;
                    }
                }
            }
            Err(e) => {
                failures += 1;
                let msg = e.to_string();
                let shown = path.display().to_string();
                if msg.contains(&shown) {
                    eprintln!("error: {msg}");
                } else {
                    eprintln!("error: {shown}: {msg}");
                }
            }
        }
    }
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn output_path(dir: &Path, input: &Path, format: Format) -> PathBuf {
    let stem = input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".into());
    dir.join(format!("{stem}.{}", format.extension()))
}

fn progress_bar(quiet: bool, path: &Path) -> Option<ProgressBar> {
    if quiet {
        return None;
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {elapsed_precise}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(path.display().to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    Some(bar)
}
