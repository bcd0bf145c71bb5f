//! `qwen3-speech codec encode|decode`: audio ⇄ speech tokenizer codes (JSON).
//!
//! codes.json: `{"codec": <model type>, "sample_rate": 24000, "frame_rate": 12.5,
//! "num_quantizers": 16, "frames": N, "codes": [[q0, …, q15], …]}` (one array per frame).
//! The 25 Hz codec (one code per frame) adds what its decoder needs: `"xvector": [192 values]`
//! and `"ref_mel": [[80 values], …]` (one array per reference-mel frame).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use qwen3_speech::DeviceSpec;
use qwen3_speech::codecs::{Codes, SpeakerConditioning, SpeechTokenizer, find_tokenizer_dir};
use qwen3_speech::engine::audio::{self, WavFormat};
use serde_json::{Value, json};

#[derive(Subcommand, Debug)]
pub enum CodecCommand {
    /// Encode an audio file (any format the engine decodes) to codes.json.
    Encode(EncodeArgs),
    /// Decode codes.json to a WAV file.
    Decode(DecodeArgs),
}

#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// A speech tokenizer folder, a Qwen3-TTS model folder (its speech_tokenizer/ is used) or a
    /// hub repo id (e.g. Qwen/Qwen3-TTS-Tokenizer-12Hz).
    #[arg(long, short = 'm')]
    model: String,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "auto")]
    device: DeviceSpec,
    /// No progress messages.
    #[arg(long, short = 'q')]
    quiet: bool,
}

#[derive(Args, Debug)]
pub struct EncodeArgs {
    /// Audio file to encode (resampled to the codec's rate, channels averaged).
    #[arg(value_name = "FILE")]
    input: PathBuf,
    /// Where to write the codes (JSON).
    #[arg(long, short = 'o', value_name = "CODES_JSON")]
    output: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum SampleFormat {
    /// 16-bit PCM.
    Pcm16,
    /// 32-bit float.
    F32,
}

#[derive(Args, Debug)]
pub struct DecodeArgs {
    /// codes.json written by `codec encode` (or by any tool using the same layout).
    #[arg(value_name = "CODES_JSON")]
    input: PathBuf,
    /// Where to write the audio (WAV).
    #[arg(long, short = 'o', value_name = "WAV")]
    output: PathBuf,
    /// Sample format of the WAV file.
    #[arg(long, value_enum, default_value = "pcm16")]
    sample_format: SampleFormat,
    /// Seed of the 25 Hz decoder's flow-matching noise (torch-compatible generator).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    model: ModelArgs,
}

pub fn run(cmd: CodecCommand) -> Result<ExitCode> {
    match cmd {
        CodecCommand::Encode(a) => encode(a),
        CodecCommand::Decode(a) => decode(a),
    }
    .map(|_| ExitCode::SUCCESS)
}

fn load(args: &ModelArgs) -> Result<SpeechTokenizer> {
    let started = Instant::now();
    let dir = crate::resolve(&args.model, !args.quiet)?;
    let tok_dir = find_tokenizer_dir(dir.path())?;
    let device = args.device.open()?;
    let tok = SpeechTokenizer::load(&tok_dir, &device)
        .with_context(|| format!("cannot load speech tokenizer '{}'", args.model))?;
    if !args.quiet {
        eprintln!(
            "loaded {} ({}) in {:.1} s",
            tok_dir.display(),
            tok.model_type(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(tok)
}

fn encode(args: EncodeArgs) -> Result<()> {
    let tok = load(&args.model)?;
    let decoded = audio::decode_file(&args.input)?;
    let rate = decoded.sample_rate;
    // As the reference's Qwen3TTSTokenizer.load_audio: mono mean, resample, no normalisation.
    let mono = decoded.into_mono();
    let samples = if rate == tok.sample_rate() {
        mono
    } else {
        audio::resample(&mono, rate, tok.sample_rate())?
    };
    let started = Instant::now();
    let (codes, speaker) = tok
        .encode_with_speaker(&samples)
        .with_context(|| format!("cannot encode {}", args.input.display()))?;
    let mut doc = codes_json(&tok, &codes);
    if let Some(sp) = &speaker {
        let bins = sp.ref_mel.len() / sp.ref_mel_frames.max(1);
        doc["xvector"] = json!(sp.xvector);
        doc["ref_mel"] = json!(sp.ref_mel.chunks(bins.max(1)).collect::<Vec<_>>());
    }
    write_text(&args.output, &(serde_json::to_string(&doc)? + "\n"))?;
    if !args.model.quiet {
        eprintln!(
            "{}: {:.2} s of audio -> {} frames x {} codes in {:.2} s -> {}",
            args.input.display(),
            samples.len() as f64 / f64::from(tok.sample_rate()),
            codes.frames(),
            codes.num_quantizers(),
            started.elapsed().as_secs_f64(),
            args.output.display()
        );
    }
    Ok(())
}

fn decode(args: DecodeArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.input)
        .with_context(|| format!("cannot read {}", args.input.display()))?;
    let doc: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", args.input.display()))?;
    let tok = load(&args.model)?;
    let codes = parse_codes(&doc, &tok).with_context(|| format!("{}", args.input.display()))?;
    let started = Instant::now();
    let speaker = parse_speaker(&doc, &tok)?;
    let wav = tok.decode_with_speaker(&codes, speaker.as_ref(), args.seed)?;
    let format = match args.sample_format {
        SampleFormat::Pcm16 => WavFormat::Pcm16,
        SampleFormat::F32 => WavFormat::Float32,
    };
    audio::write_wav(&args.output, &wav, tok.output_sample_rate(), format)?;
    if !args.model.quiet {
        eprintln!(
            "{}: {} frames -> {:.2} s of audio in {:.2} s -> {}",
            args.input.display(),
            codes.frames(),
            wav.len() as f64 / f64::from(tok.output_sample_rate()),
            started.elapsed().as_secs_f64(),
            args.output.display()
        );
    }
    Ok(())
}

fn codes_json(tok: &SpeechTokenizer, codes: &Codes) -> Value {
    json!({
        "codec": tok.model_type(),
        "sample_rate": tok.sample_rate(),
        "frame_rate": tok.frame_rate(),
        "num_quantizers": codes.num_quantizers(),
        "frames": codes.frames(),
        "codes": codes.iter_frames().collect::<Vec<_>>(),
    })
}

/// Reads and checks codes.json against the loaded codec.
fn parse_codes(doc: &Value, tok: &SpeechTokenizer) -> Result<Codes> {
    if let Some(codec) = doc.get("codec") {
        let codec = codec.as_str().context("\"codec\" is not a string")?;
        if codec != tok.model_type() {
            bail!(
                "the codes are for codec '{codec}', the model is '{}'",
                tok.model_type()
            );
        }
    }
    let rows = doc
        .get("codes")
        .and_then(Value::as_array)
        .context("no \"codes\" array (one array of codes per frame)")?;
    let mut frames = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let row = row
            .as_array()
            .with_context(|| format!("frame {i} is not an array of codes"))?;
        let codes = row
            .iter()
            .map(|v| {
                v.as_u64()
                    .and_then(|c| u32::try_from(c).ok())
                    .with_context(|| {
                        format!("frame {i}: {v} is not a code (a non-negative integer)")
                    })
            })
            .collect::<Result<Vec<u32>>>()?;
        frames.push(codes);
    }
    let q = tok.num_quantizers();
    if let Some(i) = frames.iter().position(|f| f.len() != q) {
        bail!(
            "frame {i} has {} codes, the codec takes {q} per frame",
            frames[i].len()
        );
    }
    if let Some(n) = doc.get("frames").and_then(Value::as_u64)
        && n as usize != frames.len()
    {
        bail!(
            "\"frames\" says {n}, but \"codes\" has {} frames",
            frames.len()
        );
    }
    if let Some(n) = doc.get("num_quantizers").and_then(Value::as_u64)
        && n as usize != q
    {
        bail!("\"num_quantizers\" is {n}, the codec takes {q}");
    }
    Ok(if frames.is_empty() {
        Codes::new(Vec::new(), q)?
    } else {
        Codes::from_frames(&frames)?
    })
}

/// The 25 Hz codec's speaker conditioning from codes.json (`xvector`, `ref_mel`).
fn parse_speaker(doc: &Value, tok: &SpeechTokenizer) -> Result<Option<SpeakerConditioning>> {
    if !tok.needs_speaker() {
        return Ok(None);
    }
    let floats = |v: &Value, what: &str| -> Result<Vec<f32>> {
        v.as_array()
            .with_context(|| format!("\"{what}\" is not an array of numbers"))?
            .iter()
            .map(|x| {
                x.as_f64()
                    .map(|f| f as f32)
                    .with_context(|| format!("\"{what}\": {x} is not a number"))
            })
            .collect()
    };
    let xvector = floats(
        doc.get("xvector")
            .context("the 25 Hz codec decodes with the \"xvector\" that `codec encode` writes")?,
        "xvector",
    )?;
    let rows = doc
        .get("ref_mel")
        .and_then(Value::as_array)
        .context("the 25 Hz codec decodes with the \"ref_mel\" that `codec encode` writes")?;
    let mut ref_mel = Vec::new();
    let mut width = None;
    for (i, row) in rows.iter().enumerate() {
        let r = floats(row, "ref_mel")?;
        if *width.get_or_insert(r.len()) != r.len() {
            bail!(
                "ref_mel frame {i} has {} values, frame 0 has {:?}",
                r.len(),
                width
            );
        }
        ref_mel.extend(r);
    }
    Ok(Some(SpeakerConditioning {
        xvector,
        ref_mel,
        ref_mel_frames: rows.len(),
    }))
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}
