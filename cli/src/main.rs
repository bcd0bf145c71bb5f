//! The `qwen3-speech` command line.

mod align;
#[cfg(feature = "audio-io")]
mod audio_io;
mod bench;
mod codec;
mod listen;
mod output;
mod speak;
mod transcribe;

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use qwen3_speech::engine::hub;
use qwen3_speech::{ComputeDType, DeviceSpec, EncoderAttention};
use qwen3_speech::{FetchOptions, ModelSource};

#[derive(Parser)]
#[command(
    name = "qwen3-speech",
    version,
    about = "Speech recognition, alignment and synthesis with the Qwen3 speech models"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Transcribe audio files (WAV, FLAC, MP3, OGG, M4A, ...) with Qwen3-ASR.
    Transcribe(transcribe::TranscribeArgs),
    /// Time every word of a known transcript with Qwen3-ForcedAligner.
    Align(align::AlignArgs),
    /// Download a model from the Hugging Face hub into the standard HF cache (or check a local
    /// folder) and print the folder it lives in.
    Fetch {
        /// A local model folder or a hub repo id such as Qwen/Qwen3-ASR-0.6B[@revision].
        model: String,
        /// Do not show a progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Show what a model folder contains: type, sizes, files.
    Info {
        /// A local model folder or a hub repo id.
        model: String,
    },
    /// Say text with Qwen3-TTS (named speakers, a designed voice, or a cloned voice) into a WAV file.
    Speak(speak::SpeakArgs),
    /// List the speakers and languages of a Qwen3-TTS model.
    Speakers(speak::SpeakersArgs),
    /// Live transcription from the microphone, an audio file or raw PCM on stdin; Ctrl-C
    /// stops and prints the final transcript.
    Listen(listen::ListenArgs),
    /// List the audio input and output devices.
    Devices {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Measure speed and memory (`bench asr`), side by side with the PyTorch reference.
    Bench(bench::BenchArgs),
    /// Encode audio to speech tokenizer codes (JSON) and decode codes back to audio (WAV), with
    /// the Qwen3-TTS 12 Hz codec.
    Codec {
        #[command(subcommand)]
        command: codec::CodecCommand,
    },
}

/// Where and how the models run (shared by the subcommands that load models).
#[derive(Args, Debug, Clone)]
pub struct RuntimeArgs {
    /// Audio encoder attention: windowed (as the models were trained) or full.
    #[arg(long, default_value = "windowed")]
    pub attention: EncoderAttention,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "auto")]
    pub device: DeviceSpec,
    /// f32, bf16 or f16 (default: f32 on CPU, bf16 on CUDA).
    #[arg(long)]
    pub dtype: Option<ComputeDType>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Transcribe(args) => transcribe::run(args),
        Command::Align(args) => align::run(args),
        Command::Fetch { model, quiet } => fetch(&model, !quiet).map(|_| ExitCode::SUCCESS),
        Command::Info { model } => info(&model).map(|_| ExitCode::SUCCESS),
        Command::Speak(args) => speak::run(args),
        Command::Speakers(args) => speak::run_speakers(args),
        Command::Listen(args) => listen::run(args),
        Command::Devices { json } => devices(json),
        Command::Bench(args) => bench::run(args),
        Command::Codec { command } => codec::run(command),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, joined with ": " (as `{:#}`), leaving out a cause whose text the
/// message already contains (engine errors such as `path: No such file or directory` name
/// their cause in their own message).
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(feature = "audio-io")]
fn devices(json: bool) -> Result<ExitCode> {
    let (host, inputs, outputs) = audio_io::list_devices()?;
    if json {
        println!("{}", audio_io::devices_json(&host, &inputs, &outputs));
        return Ok(ExitCode::SUCCESS);
    }
    println!("host: {host}");
    for (title, list) in [("input", &inputs), ("output", &outputs)] {
        if list.is_empty() {
            println!("no {title} devices found");
            continue;
        }
        println!("{title} devices (* = default):");
        for d in list.iter() {
            let mark = if d.is_default { '*' } else { ' ' };
            let id = if d.id.is_empty() || d.id.ends_with(&d.name) {
                String::new()
            } else {
                format!(" [{}]", d.id)
            };
            let config = d.config.as_deref().unwrap_or("");
            println!("{mark} {}{id}  ({config})", d.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "audio-io"))]
fn devices(_json: bool) -> Result<ExitCode> {
    anyhow::bail!("this build has no audio device support (rebuild with the `audio-io` feature)")
}

fn resolve(model: &str, progress: bool) -> Result<qwen3_speech::ModelDir> {
    let source = ModelSource::parse(model)?;
    let options = FetchOptions::from_env().with_progress(progress);
    Ok(hub::resolve(&source, &options)?)
}

fn fetch(model: &str, progress: bool) -> Result<()> {
    let dir = resolve(model, progress)?;
    println!("{}", dir.path().display());
    Ok(())
}

fn info(model: &str) -> Result<()> {
    let dir = resolve(model, true)?;
    let config_path = dir.file("config.json")?;
    let config: serde_json::Value = qwen3_speech::engine::config::read_json(&config_path)?;
    println!("folder: {}", dir.path().display());
    let model_type = config
        .get("model_type")
        .and_then(|v| v.as_str())
        .unwrap_or("unknown");
    println!("model_type: {model_type}");
    let weights = dir.weight_files().context("listing weight files")?;
    let bytes: u64 = weights
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    println!(
        "weights: {} file(s), {:.1} MB",
        weights.len(),
        bytes as f64 / 1e6
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::error_chain;

    #[test]
    fn error_chain_names_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let e = anyhow::Error::new(qwen3_speech::engine::Error::io("/x.wav", io))
            .context("cannot use the recording /x.wav");
        assert_eq!(
            error_chain(&e),
            "cannot use the recording /x.wav: /x.wav: No such file"
        );
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_chain(&e), "outer: inner");
    }
}
