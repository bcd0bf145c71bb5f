//! `qwen3-speech speak` (text to a WAV file) and `qwen3-speech speakers` (what a TTS model
//! offers).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use std::io::Write;

use qwen3_speech::engine::audio::wav::f32_to_pcm16;
use qwen3_speech::engine::audio::{WavFormat, write_wav};
use qwen3_speech::synthesizer::{
    SpeakRequest, StreamOptions, SynthesisOptions, Synthesizer, SynthesizerConfig, TextInput,
    VoiceReference,
};
use qwen3_speech::{AudioInput, FetchOptions};

use crate::RuntimeArgs;

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum TextInputArg {
    /// The whole text in the prompt (the reference's `non_streaming_mode=True`).
    Whole,
    /// One text token per generated frame (`non_streaming_mode=False`).
    Streaming,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum StreamFormat {
    Wav,
    /// Raw s16le mono PCM at the model's rate (24 kHz).
    Raw,
}

#[derive(Args, Debug)]
pub struct SpeakArgs {
    /// A local Qwen3-TTS folder or a hub repo id (e.g. Qwen/Qwen3-TTS-12Hz-0.6B-CustomVoice).
    #[arg(long, short = 'm')]
    model: String,
    /// The text to say.
    #[arg(
        long,
        conflicts_with = "text_file",
        required_unless_present = "text_file"
    )]
    text: Option<String>,
    /// A file holding the text (UTF-8).
    #[arg(long, value_name = "F")]
    text_file: Option<PathBuf>,
    /// Language of the text (see `speakers`), or auto.
    #[arg(long, short = 'l', default_value = "auto")]
    language: String,
    /// A named speaker (CustomVoice models; see `speakers`).
    #[arg(long)]
    speaker: Option<String>,
    /// Speaking style (CustomVoice 1.7B) or a description of the voice (VoiceDesign).
    #[arg(long)]
    instruct: Option<String>,
    /// A clip of the voice to clone (Base models).
    #[arg(long, value_name = "WAV")]
    ref_audio: Option<PathBuf>,
    /// Transcript of --ref-audio (in-context cloning).
    #[arg(long, requires = "ref_audio", conflicts_with = "x_vector_only")]
    ref_text: Option<String>,
    /// Clone from the speaker embedding of --ref-audio alone (no transcript needed).
    #[arg(long, requires = "ref_audio")]
    x_vector_only: bool,
    /// A recording of the voice the 25 Hz speech tokenizer renders (single-codebook models
    /// only; its decoder needs a voice). Required for named speakers and voice design there;
    /// voice clones default to --ref-audio.
    #[arg(long, value_name = "WAV")]
    codec_speaker: Option<PathBuf>,
    /// Output WAV file, or `-` for standard output, written while the speech is generated.
    #[arg(
        long,
        short = 'o',
        value_name = "WAV",
        required_unless_present = "play"
    )]
    output: Option<PathBuf>,
    /// Play the speech on the default (or --output-device) output while it is generated.
    #[arg(long)]
    play: bool,
    /// Output device for --play (a name or part of it; see `qwen3-speech devices`).
    #[arg(long, value_name = "D", requires = "play")]
    output_device: Option<String>,
    /// With `-o -`: a WAV stream (header with unknown length) or raw 16-bit little-endian PCM.
    #[arg(long, value_enum, default_value = "wav")]
    stream_format: StreamFormat,
    /// Frames (80 ms each) before the first streamed chunk.
    #[arg(long, default_value_t = 2, value_name = "N")]
    first_chunk_frames: usize,
    /// Frames per later streamed chunk.
    #[arg(long, default_value_t = 4, value_name = "N")]
    chunk_frames: usize,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Argmax instead of sampling (talker and code predictor).
    #[arg(long)]
    greedy: bool,
    #[arg(long)]
    temperature: Option<f32>,
    #[arg(long)]
    top_k: Option<usize>,
    #[arg(long)]
    top_p: Option<f32>,
    #[arg(long)]
    repetition_penalty: Option<f32>,
    /// Talker steps, as the reference's max_new_tokens (at most N-1 frames of 80 ms).
    #[arg(long, value_name = "N")]
    max_frames: Option<usize>,
    /// How the text reaches the model (default: whole, streaming for voice clones).
    #[arg(long, value_enum)]
    text_input: Option<TextInputArg>,
    #[command(flatten)]
    runtime: RuntimeArgs,
    /// No progress output.
    #[arg(long, short = 'q')]
    quiet: bool,
}

fn load(model: &str, runtime: &RuntimeArgs, quiet: bool) -> Result<Synthesizer> {
    let config = SynthesizerConfig {
        device: runtime.device,
        dtype: runtime.dtype,
        fetch: FetchOptions::from_env().with_progress(!quiet),
    };
    Synthesizer::new(model, config).with_context(|| format!("cannot load the TTS model '{model}'"))
}

pub fn run(args: SpeakArgs) -> Result<ExitCode> {
    let text = match (&args.text, &args.text_file) {
        (Some(t), _) => t.clone(),
        (None, Some(f)) => std::fs::read_to_string(f)
            .with_context(|| format!("cannot read the text file {}", f.display()))?,
        (None, None) => bail!("give the text with --text or --text-file"),
    };
    if text.trim().is_empty() {
        bail!("the text is empty");
    }
    let synth = load(&args.model, &args.runtime, args.quiet)?;
    let reference = match &args.ref_audio {
        Some(path) => {
            let samples = Synthesizer::load_reference(AudioInput::Path(path))
                .with_context(|| format!("cannot use the reference clip {}", path.display()))?;
            Some(VoiceReference {
                samples_24k: samples,
                text: args.ref_text.clone(),
                x_vector_only: args.x_vector_only,
            })
        }
        None => None,
    };
    let codec_speaker = match &args.codec_speaker {
        Some(path) => Some(
            Synthesizer::load_reference(AudioInput::Path(path))
                .with_context(|| format!("cannot use the recording {}", path.display()))?,
        ),
        None => None,
    };
    let request = SpeakRequest {
        text: text.trim().to_owned(),
        language: Some(args.language.clone()),
        speaker: args.speaker.clone(),
        instruct: args.instruct.clone(),
        reference,
        text_input: args.text_input.map(|t| match t {
            TextInputArg::Whole => TextInput::Whole,
            TextInputArg::Streaming => TextInput::Streaming,
        }),
        codec_speaker,
    };
    let options = SynthesisOptions {
        seed: args.seed,
        greedy: args.greedy,
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        repetition_penalty: args.repetition_penalty,
        max_frames: args.max_frames,
    };
    let to_stdout = args.output.as_deref().is_some_and(|o| o.as_os_str() == "-");
    if args.play {
        if to_stdout {
            bail!("--play and -o - cannot be combined");
        }
        return play(&synth, &request, &options, &args);
    }
    if to_stdout {
        return stream_to_stdout(&synth, &request, &options, &args);
    }
    let Some(output) = args.output.clone() else {
        bail!("give an output file with -o (or --play)");
    };
    let start = std::time::Instant::now();
    let out = synth.speak(&request, &options)?;
    for w in &out.warnings {
        eprintln!("warning: {w}");
    }
    write_wav(
        &output,
        &out.audio.samples,
        out.audio.sample_rate,
        WavFormat::Pcm16,
    )
    .with_context(|| format!("cannot write {}", output.display()))?;
    if !args.quiet {
        let secs = start.elapsed().as_secs_f64();
        let dur = out.audio.duration_seconds();
        eprintln!(
            "{}: {:.2} s of audio ({} frames) in {:.2} s (real-time factor {:.2}){}",
            output.display(),
            dur,
            out.frames.len(),
            secs,
            if dur > 0.0 { secs / dur } else { f64::NAN },
            if out.truncated {
                ", stopped at --max-frames"
            } else {
                ""
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn stream_options(args: &SpeakArgs) -> StreamOptions {
    StreamOptions {
        first_chunk_frames: args.first_chunk_frames,
        chunk_frames: args.chunk_frames,
    }
}

/// Plays the speech while it is generated (and writes -o FILE at the end when given).
#[cfg(feature = "audio-io")]
fn play(
    synth: &Synthesizer,
    request: &SpeakRequest,
    options: &SynthesisOptions,
    args: &SpeakArgs,
) -> Result<ExitCode> {
    let mut stream = synth.speak_stream(request, options, &stream_options(args))?;
    for w in stream.warnings() {
        eprintln!("warning: {w}");
    }
    let mut player =
        crate::audio_io::start_playback(args.output_device.as_deref(), stream.sample_rate())?;
    if !args.quiet {
        eprintln!("playing on {}", player.description);
    }
    let mut all = Vec::new();
    while let Some(chunk) = stream.next_chunk()? {
        player.push(&chunk)?;
        all.extend(chunk);
    }
    if stream.truncated() {
        eprintln!(
            "warning: stopped at the frame limit before the model ended the speech; raise --max-frames"
        );
    }
    player.finish()?;
    if let Some(path) = &args.output {
        write_wav(path, &all, stream.sample_rate(), WavFormat::Pcm16)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "audio-io"))]
fn play(
    _: &Synthesizer,
    _: &SpeakRequest,
    _: &SynthesisOptions,
    _: &SpeakArgs,
) -> Result<ExitCode> {
    bail!("this build has no audio output (built without the `audio-io` feature)")
}

/// Writes audio to stdout chunk by chunk as it is generated.
fn stream_to_stdout(
    synth: &Synthesizer,
    request: &SpeakRequest,
    options: &SynthesisOptions,
    args: &SpeakArgs,
) -> Result<ExitCode> {
    let start = std::time::Instant::now();
    let mut stream = synth.speak_stream(request, options, &stream_options(args))?;
    for w in stream.warnings() {
        eprintln!("warning: {w}");
    }
    let mut out = std::io::stdout().lock();
    if args.stream_format == StreamFormat::Wav {
        out.write_all(&streaming_wav_header(stream.sample_rate()))?;
    }
    let mut samples = 0usize;
    let mut first = None;
    while let Some(chunk) = stream.next_chunk()? {
        first.get_or_insert_with(|| start.elapsed().as_secs_f64());
        let mut bytes = Vec::with_capacity(chunk.len() * 2);
        for x in &chunk {
            bytes.extend_from_slice(&f32_to_pcm16(*x).to_le_bytes());
        }
        samples += chunk.len();
        // A closed pipe (the player quit) ends the run quietly.
        if out.write_all(&bytes).and_then(|_| out.flush()).is_err() {
            return Ok(ExitCode::SUCCESS);
        }
    }
    if stream.truncated() {
        eprintln!(
            "warning: stopped at the frame limit ({} frames) before the model ended the speech; raise --max-frames",
            stream.frames().len()
        );
    }
    if !args.quiet {
        eprintln!(
            "streamed {:.2} s of audio ({} frames); first audio after {:.2} s, done after {:.2} s",
            samples as f64 / f64::from(stream.sample_rate()),
            stream.frames().len(),
            first.unwrap_or(f64::NAN),
            start.elapsed().as_secs_f64()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A 16-bit mono WAV header whose sizes say "unknown length" (0xFFFFFFFF), as streaming
/// writers such as ffmpeg and sox emit; players read until the end of the stream.
fn streaming_wav_header(rate: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(44);
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&u32::MAX.to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes()); // PCM
    h.extend_from_slice(&1u16.to_le_bytes()); // mono
    h.extend_from_slice(&rate.to_le_bytes());
    h.extend_from_slice(&(rate * 2).to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&16u16.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&u32::MAX.to_le_bytes());
    h
}

#[derive(Args, Debug)]
pub struct SpeakersArgs {
    /// A local Qwen3-TTS folder or a hub repo id.
    #[arg(long, short = 'm')]
    model: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

pub fn run_speakers(args: SpeakersArgs) -> Result<ExitCode> {
    let synth = load(&args.model, &args.runtime, true)?;
    let cfg = synth.model().config();
    let speakers = synth.speakers();
    let languages = synth.languages();
    if args.json {
        let spk: Vec<serde_json::Value> = speakers
            .iter()
            .map(|s| {
                serde_json::json!({
                    "name": s,
                    "dialect": cfg.talker_config.spk_is_dialect.get(s).cloned().flatten(),
                })
            })
            .collect();
        let v = serde_json::json!({
            "model_type": synth.model_type().as_str(),
            "speakers": spk,
            "languages": languages,
            "instruct": cfg.honours_instruct() && synth.model_type() != qwen3_speech::synthesizer::TtsModelType::Base,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("model type: {}", synth.model_type().as_str());
    if speakers.is_empty() {
        println!("speakers: none (this model type has no named speakers)");
    } else {
        println!("speakers:");
        for s in &speakers {
            match cfg.talker_config.spk_is_dialect.get(s).cloned().flatten() {
                Some(d) => println!("  {s} ({d})"),
                None => println!("  {s}"),
            }
        }
    }
    println!("languages: {}", languages.join(", "));
    Ok(ExitCode::SUCCESS)
}
