//! `qwen3-speech bench align`: speed of the forced aligner on a full-size Qwen3-ForcedAligner
//! checkpoint (random weights, released shapes: the 24-layer, 1024-wide encoder of the 1.7B ASR
//! model and the 28-layer 0.6B decoder with a 5000-class head), side by side with the PyTorch
//! reference measured the same way on the same machine.
//!
//! The checkpoint, the 60 s clip and its transcript come from
//! `tools/bench/make_aligner_checkpoint.py` (`<model>/bench-audio/speech_60s.{wav,txt}`). The
//! reference numbers come from `tools/bench/reference_aligner.py`, run here with
//! `--run-reference` or read from a file with `--reference-json`. Both sides use the same names
//! and definitions (see `tools/bench/README.md`):
//!
//! * `features_60s_s`: what alignment does before the model: segmentation of the transcript,
//!   log-mel features, prompt token ids.
//! * `features_encoder_60s_s`: the same + the audio encoder. The reference's transformers
//!   backend always uses full attention; the Rust engine is timed with both attentions
//!   (`features_encoder_60s_{windowed,full}_s`).
//! * `decoder_head_s`: the rest of the forward pass from the audio embeddings: embeddings with
//!   the audio spliced in, the decoder over the whole prompt, the head, the argmax at the
//!   `<timestamp>` positions (the reference computes the head at every position, as its
//!   `align` does; the engine only at the `<timestamp>` rows).
//! * `decoder_s`: of which the decoder stack + final norm; `head_s`: of which the head.
//! * `decoder_half_s`: the decoder stack + final norm over the first half of the prompt. With
//!   T(n) = a·n + c·n², 2·(T(L) − 2·T(L/2)) = c·L² is the part of the decoder's time that grows
//!   with the square of the length (attention scores, mask, softmax).
//! * `align_60s_s`: the user-facing call (`Aligner::align_samples_16k` here,
//!   `Qwen3ForcedAligner.align` there), end to end.
//! * peak RSS of the process over the whole run (VmHWM here, `ru_maxrss` there).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Result, bail};
use clap::Args;
use serde_json::{Value, json};

use qwen3_speech::aligner::text::segment;
use qwen3_speech::engine::audio::mel::whisper_log_mel;
use qwen3_speech::engine::audio::{ASR_SAMPLE_RATE, load_audio};
use qwen3_speech::engine::device::Placement;
use qwen3_speech::engine::transformer::Positions;
use qwen3_speech::models::asr::lengths::audio_token_count;
use qwen3_speech::{Aligner, AlignerConfig, ComputeDType, DeviceSpec, EncoderAttention, ModelDir};

use super::{
    MachineWatch, Stat, cpu_model, log, measure, memory_and_load_lines, print_machine, print_table,
    proc_status_bytes, ratio_cell, reference_numbers, run_reference_script, threads_from, utc_now,
    weight_count, write_json,
};

#[derive(Args, Debug)]
pub struct AlignBenchArgs {
    /// Checkpoint folder written by tools/bench/make_aligner_checkpoint.py.
    #[arg(long, short = 'm', default_value = "bench-models/aligner-0.6b")]
    model: PathBuf,
    /// Reference numbers from an earlier `tools/bench/reference_aligner.py --json FILE` run.
    #[arg(long, value_name = "FILE", conflicts_with = "run_reference")]
    reference_json: Option<PathBuf>,
    /// Run tools/bench/reference_aligner.py first (Python: $QWEN3_SPEECH_REFERENCE_PYTHON, else
    /// /work/venv-ref/bin/python, else python3).
    #[arg(long)]
    run_reference: bool,
    /// CPU threads for both engines (default: $RAYON_NUM_THREADS, else all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Timed runs of each quantity.
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    /// Untimed runs before the timed ones.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Encoder attention of the Rust engine in the end-to-end alignment and the decoder input
    /// (the encoder alone is timed with both; the reference's transformers backend always uses
    /// full attention).
    #[arg(long, default_value = "windowed")]
    attention: EncoderAttention,
    /// Write everything (both engines, every run, table) as JSON here.
    #[arg(long, value_name = "OUT")]
    json: Option<PathBuf>,
}

const CLIP_WAV: &str = "speech_60s.wav";
const CLIP_TXT: &str = "speech_60s.txt";
const LANGUAGE: &str = "English";

fn attention_name(a: EncoderAttention) -> &'static str {
    match a {
        EncoderAttention::Windowed => "windowed",
        EncoderAttention::Full => "full",
    }
}

pub(super) fn bench_align(args: AlignBenchArgs) -> Result<ExitCode> {
    if args.repeat == 0 {
        bail!("--repeat must be at least 1");
    }
    let threads = threads_from(args.threads);
    // SAFETY: nothing else runs yet (no thread has been started, no rayon pool exists); candle
    // and rayon read this variable when they first start their thread pools.
    unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.to_string()) };

    let audio_dir = args.model.join("bench-audio");
    for name in [CLIP_WAV, CLIP_TXT] {
        if !audio_dir.join(name).is_file() {
            bail!(
                "{} is missing: build the bench checkpoint first with\n  \
                 /work/venv-ref/bin/python tools/bench/make_aligner_checkpoint.py --out {}",
                audio_dir.join(name).display(),
                args.model.display()
            );
        }
    }

    let reference = reference_numbers(args.run_reference, args.reference_json.as_deref(), || {
        run_reference(&args, threads)
    })?;
    if let Some(r) = &reference {
        check_reference(r, &args, threads)?;
    }

    let watch = MachineWatch::start();
    let rust = rust_measurements(&args, threads)?;
    let machine_rust = watch.report();

    let table = print_report(&args, threads, &rust, reference.as_ref(), &machine_rust);
    if let Some(path) = &args.json {
        let all = json!({
            "date": utc_now(),
            "cpu": cpu_model(),
            "threads": threads,
            "rust": rust.json,
            "rust_machine": machine_rust,
            "pytorch": reference,
            "table": table,
        });
        write_json(path, &all)?;
    }
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------------------
// The reference
// ---------------------------------------------------------------------------------------------

fn run_reference(args: &AlignBenchArgs, threads: usize) -> Result<Value> {
    run_reference_script(
        "reference_aligner.py",
        "QWEN3_SPEECH_REFERENCE_ALIGNER_SCRIPT",
        (&args.model, threads, args.repeat, args.warmup),
        &[],
    )
}

/// Refuses reference numbers taken with another thread count: the ratios would compare
/// different things.
fn check_reference(r: &Value, args: &AlignBenchArgs, threads: usize) -> Result<()> {
    let get = |k: &str| r.get(k).and_then(Value::as_u64);
    if r.get("clip").is_none() || r["metrics"].get("align_60s_s").is_none() {
        bail!("the reference JSON is not from tools/bench/reference_aligner.py");
    }
    if get("threads") != Some(threads as u64) {
        bail!(
            "the reference was measured with {:?} threads, this run uses {threads}: rerun it or pass --threads",
            get("threads")
        );
    }
    if get("repeat") != Some(args.repeat as u64) {
        log(format!(
            "note: the reference used {:?} repetitions, this run {}",
            get("repeat"),
            args.repeat
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The Rust measurements
// ---------------------------------------------------------------------------------------------

/// A CPU tensor of `idx` of the same type as `like` (a candle `Tensor`; the CLI does not depend
/// on candle directly, so the type is taken from a value).
fn index_tensor<T>(_like: &T, idx: Vec<u32>) -> Result<T>
where
    T: TryFrom<Vec<u32>>,
    T::Error: std::error::Error + Send + Sync + 'static,
{
    Ok(T::try_from(idx)?)
}

/// Median times of the parts of the Rust alignment, one entry per timed run.
#[derive(Debug, Default, Clone)]
struct Parts {
    stem: f64,
    enc_layers: f64,
    enc_head: f64,
    embed: f64,
    decoder: f64,
    head: f64,
    argmax: f64,
}

struct RustResults {
    stats: BTreeMap<String, Stat>,
    parts: Vec<Parts>,
    clip: Value,
    /// Projection (matmul) FLOPs of the encoder layers and of the decoder stack, attention
    /// scores excluded.
    encoder_layer_flops: f64,
    decoder_flops: f64,
    peak_rss: Option<u64>,
    json: Value,
}

fn median_of(v: &[Parts], g: fn(&Parts) -> f64) -> f64 {
    Stat {
        runs: v.iter().map(g).collect(),
    }
    .median()
}

fn rust_measurements(args: &AlignBenchArgs, threads: usize) -> Result<RustResults> {
    let (w, r) = (args.warmup, args.repeat);
    let config = AlignerConfig {
        device: DeviceSpec::Cpu,
        dtype: Some(ComputeDType::F32),
        attention: args.attention,
        ..AlignerConfig::default()
    };
    let t0 = Instant::now();
    let aligner = Aligner::from_dir(ModelDir::open(&args.model)?, config)?;
    let load_s = t0.elapsed().as_secs_f64();
    log(format!(
        "loaded {} in {load_s:.1} s (f32, cpu, {threads} threads, encoder attention {})",
        args.model.display(),
        attention_name(args.attention)
    ));
    let device = Placement::new(DeviceSpec::Cpu, Some(ComputeDType::F32))?.device;
    let model = aligner.model();
    let thinker = model.thinker();
    let encoder = thinker.audio_encoder();

    let audio_dir = args.model.join("bench-audio");
    let samples = load_audio(audio_dir.join(CLIP_WAV), ASR_SAMPLE_RATE)?;
    let text = std::fs::read_to_string(audio_dir.join(CLIP_TXT))?
        .trim()
        .to_owned();
    let lang = model.resolve_language(LANGUAGE)?.to_lowercase();

    // What alignment does before the model: segmentation, log-mel, prompt ids.
    let features = || -> Result<_> {
        let words = segment(&text, &lang)?;
        let mel = whisper_log_mel(&samples)?.into_tensor(&device)?;
        let prompt = model.prompt(&words, audio_token_count(mel.dim(1)?))?;
        Ok((words, mel, prompt))
    };

    // One alignment through the model's own path, for the shapes and a cross-check.
    let (words, mel, prompt) = features()?;
    let details = model.align_words(&samples, &words, args.attention)?;
    if details.prompt != prompt {
        bail!("the prompt built here differs from the one align_words builds");
    }
    let ts_pos: Vec<u32> = details
        .timestamp_positions
        .iter()
        .map(|&p| p as u32)
        .collect();
    let len = prompt.len();
    let audio = thinker.encode_audio(&mel, args.attention)?;
    let clip = json!({
        "samples": samples.len(),
        "seconds": samples.len() as f64 / ASR_SAMPLE_RATE as f64,
        "mel_frames": mel.dim(1)?,
        "audio_tokens": audio.dim(0)?,
        "prompt_tokens": len,
        "words": words.len(),
        "timestamp_tokens": ts_pos.len(),
    });
    log(format!("clip: {clip}"));

    let mut stats: BTreeMap<String, Stat> = BTreeMap::new();
    let s = measure("features (segmentation, log-mel, prompt)", w, r, || {
        features()?;
        Ok(())
    })?;
    stats.insert("features_60s_s".into(), s);
    for mode in [EncoderAttention::Windowed, EncoderAttention::Full] {
        let name = attention_name(mode);
        let s = measure(&format!("features + encoder, {name}"), w, r, || {
            let (_, mel, _) = features()?;
            thinker.encode_audio(&mel, mode)?;
            Ok(())
        })?;
        stats.insert(format!("features_encoder_60s_{name}_s"), s);
    }

    // The rest of the forward pass, from the audio embeddings; parts timed apart.
    let positions = Positions::contiguous(1, 0, len);
    let mut parts: Vec<Parts> = Vec::new();
    let mut classes = Vec::new();
    let s = measure("decoder + head + argmax", w, r, || {
        let mut p = Parts::default();
        let t = Instant::now();
        let embeds = thinker.embed_prompt(std::slice::from_ref(&prompt), Some(&audio))?;
        p.embed = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut cache = thinker.new_cache();
        let hidden = thinker.decode(&embeds, &positions, None, &mut cache)?;
        p.decoder = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let idx = index_tensor(&hidden, ts_pos.clone())?;
        let rows = hidden.get(0)?.index_select(&idx, 0)?;
        let logits = thinker.logits(&rows)?;
        p.head = t.elapsed().as_secs_f64();
        let t = Instant::now();
        classes = logits.argmax(1)?.to_vec1::<u32>()?;
        p.argmax = t.elapsed().as_secs_f64();
        parts.push(p);
        Ok(())
    })?;
    stats.insert("decoder_head_s".into(), s);
    parts.drain(..w);
    if classes != details.classes {
        log("note: the classes of the timed forward pass differ from align_words' ones");
    }

    let embeds = thinker.embed_prompt(std::slice::from_ref(&prompt), Some(&audio))?;
    let s = measure("decoder stack + norm", w, r, || {
        let mut cache = thinker.new_cache();
        thinker.decode(&embeds, &positions, None, &mut cache)?;
        Ok(())
    })?;
    stats.insert("decoder_s".into(), s);
    // The decoder over the first half of the prompt: T(L) - 2 T(L/2) isolates the part of the
    // cost that grows with the square of the length (attention scores, mask, softmax).
    let half = len / 2;
    let embeds_half = embeds.narrow(1, 0, half)?;
    let positions_half = Positions::contiguous(1, 0, half);
    let s = measure(
        &format!("decoder stack + norm, first {half} tokens"),
        w,
        r,
        || {
            let mut cache = thinker.new_cache();
            thinker.decode(&embeds_half, &positions_half, None, &mut cache)?;
            Ok(())
        },
    )?;
    stats.insert("decoder_half_s".into(), s);
    let rows = {
        let mut cache = thinker.new_cache();
        let hidden = thinker.decode(&embeds, &positions, None, &mut cache)?;
        let idx = index_tensor(&hidden, ts_pos.clone())?;
        hidden.get(0)?.index_select(&idx, 0)?
    };
    let s = measure(
        &format!("head on the {} <timestamp> rows", ts_pos.len()),
        w,
        r,
        || {
            thinker.logits(&rows)?;
            Ok(())
        },
    )?;
    stats.insert("head_s".into(), s);

    // The encoder's parts: conv stem (+ positions), transformer layers, output head.
    for i in 0..w + r {
        let t = Instant::now();
        let stem = encoder.stem(&mel)?;
        let stem_s = t.elapsed().as_secs_f64();
        let window = encoder.window_tokens(&stem.chunk_tokens, args.attention);
        let t = Instant::now();
        let h = encoder.run_layers(&stem.embedded, window, encoder.num_layers())?;
        let layers_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        encoder.head(&h)?;
        let head_s = t.elapsed().as_secs_f64();
        if i >= w {
            let p = &mut parts[i - w];
            (p.stem, p.enc_layers, p.enc_head) = (stem_s, layers_s, head_s);
        }
    }

    // End to end through the facade.
    let mut aligned = 0;
    let s = measure("align, end to end", w, r, || {
        aligned = aligner.align_samples_16k(&samples, &text, LANGUAGE)?.len();
        Ok(())
    })?;
    stats.insert("align_60s_s".into(), s);
    if aligned != words.len() {
        bail!("align returned {aligned} words, expected {}", words.len());
    }

    let peak_rss = proc_status_bytes("VmHWM");
    let rss_end = proc_status_bytes("VmRSS");

    let ec = encoder.config();
    let (d, ffn) = (ec.d_model as f64, ec.encoder_ffn_dim as f64);
    let encoder_layer_flops =
        2.0 * (4.0 * d * d + 2.0 * d * ffn) * ec.encoder_layers as f64 * audio.dim(0)? as f64;
    let decoder_flops = 2.0 * weight_count(thinker.decoder().config()).layers * len as f64;

    let parts_json = {
        let f = |g: fn(&Parts) -> f64| {
            Stat {
                runs: parts.iter().map(g).collect(),
            }
            .to_json()
        };
        json!({"encoder_stem": f(|p| p.stem), "encoder_layers": f(|p| p.enc_layers),
               "encoder_head": f(|p| p.enc_head), "embed": f(|p| p.embed),
               "decoder": f(|p| p.decoder), "head": f(|p| p.head), "argmax": f(|p| p.argmax)})
    };
    let json = json!({
        "engine": "rust",
        "version": qwen3_speech::VERSION,
        "model": args.model,
        "dtype": "float32",
        "device": "cpu",
        "threads": threads,
        "attention": attention_name(args.attention),
        "language": LANGUAGE,
        "repeat": r,
        "warmup": w,
        "clip": clip,
        "first_words": details.words.iter().take(5).map(|w| json!({"text": w.text, "start": w.start, "end": w.end})).collect::<Vec<_>>(),
        "metrics": stats.iter().map(|(k, v)| (k.clone(), v.to_json())).collect::<serde_json::Map<_, _>>(),
        "values": {"load_s": load_s, "peak_rss_bytes": peak_rss, "rss_end_bytes": rss_end},
        "breakdown": parts_json,
        "flops": {"encoder_layers_projections": encoder_layer_flops, "decoder_projections": decoder_flops},
    });
    Ok(RustResults {
        stats,
        parts,
        clip,
        encoder_layer_flops,
        decoder_flops,
        peak_rss,
        json,
    })
}

// ---------------------------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------------------------

/// Prints the table and the notes; returns the rows for the JSON.
fn print_report(
    args: &AlignBenchArgs,
    threads: usize,
    rust: &RustResults,
    reference: Option<&Value>,
    machine_rust: &Value,
) -> Value {
    let ref_metric = |key: &str| -> Option<(f64, f64)> {
        let m = reference?.get("metrics")?.get(key)?;
        Some((m.get("median")?.as_f64()?, m.get("min")?.as_f64()?))
    };
    let ref_value = |key: &str| reference?.get("values")?.get(key)?.as_f64();
    let clip = |k: &str| rust.clip[k].as_u64().unwrap_or(0);
    let att = attention_name(args.attention);
    let ref_clip = reference.map(|r| &r["clip"]);

    // (label, rust key, pytorch key, scale, unit)
    let timed: Vec<(String, &str, &str, f64, &str)> = vec![
        (
            "features (segmentation, log-mel, prompt ids)".into(),
            "features_60s_s",
            "features_60s_s",
            1.0,
            "s",
        ),
        (
            format!(
                "features + encoder ({} audio tokens), rust windowed",
                clip("audio_tokens")
            ),
            "features_encoder_60s_windowed_s",
            "features_encoder_60s_s",
            1.0,
            "s",
        ),
        (
            "features + encoder, rust full attention (= pytorch)".into(),
            "features_encoder_60s_full_s",
            "features_encoder_60s_s",
            1.0,
            "s",
        ),
        (
            format!(
                "decoder + head + argmax ({}-token prompt)",
                clip("prompt_tokens")
            ),
            "decoder_head_s",
            "decoder_head_s",
            1.0,
            "s",
        ),
        (
            "  of which decoder stack + norm".into(),
            "decoder_s",
            "decoder_s",
            1.0,
            "s",
        ),
        (
            format!(
                "  decoder stack + norm, first {} tokens",
                clip("prompt_tokens") / 2
            ),
            "decoder_half_s",
            "decoder_half_s",
            1.0,
            "s",
        ),
        (
            format!(
                "  of which head (rust {} rows, pytorch {})",
                clip("timestamp_tokens"),
                clip("prompt_tokens")
            ),
            "head_s",
            "head_s",
            1e3,
            "ms",
        ),
        (
            format!("align, end to end, 60 s clip (rust {att})"),
            "align_60s_s",
            "align_60s_s",
            1.0,
            "s",
        ),
    ];
    let cell = |v: Option<(f64, f64)>, scale: f64| match v {
        Some((med, min)) => format!("{:.3} ({:.3})", med * scale, min * scale),
        None => "-".to_owned(),
    };
    let mut rows = Vec::new();
    let mut lines = Vec::new();
    for (label, rkey, pkey, scale, unit) in &timed {
        let rs = rust.stats.get(*rkey).map(|s| (s.median(), s.min()));
        let py = ref_metric(pkey);
        let ratio = rs.zip(py).map(|(a, b)| b.0 / a.0);
        lines.push((
            format!("{label} [{unit}]"),
            cell(rs, *scale),
            cell(py, *scale),
            ratio_cell(ratio),
        ));
        rows.push(
            json!({"quantity": label, "rust_key": rkey, "pytorch_key": pkey, "unit": unit,
            "rust_median": rs.map(|v| v.0), "rust_min": rs.map(|v| v.1),
            "pytorch_median": py.map(|v| v.0), "pytorch_min": py.map(|v| v.1),
            "speedup": ratio}),
        );
    }
    // T(L) - 2 T(L/2) = c L^2 / 2 for T(n) = a n + c n^2: the length-quadratic part at L.
    let quadratic = |full: f64, half: f64| 2.0 * (full - 2.0 * half);
    let rs_quad = quadratic(
        rust.stats["decoder_s"].median(),
        rust.stats["decoder_half_s"].median(),
    );
    let py_quad = ref_metric("decoder_s")
        .zip(ref_metric("decoder_half_s"))
        .map(|(f, h)| quadratic(f.0, h.0));
    // After the half-prompt row.
    lines.insert(
        6,
        (
            "  decoder, length-quadratic part 2(T(L)-2T(L/2)) [s]".into(),
            format!("{rs_quad:.3}"),
            py_quad.map_or_else(|| "-".into(), |v| format!("{v:.3}")),
            ratio_cell(py_quad.map(|v| v / rs_quad)),
        ),
    );
    rows.push(
        json!({"quantity": "decoder, length-quadratic part", "unit": "s",
        "rust_median": rs_quad, "pytorch_median": py_quad}),
    );
    let seconds = rust.clip["seconds"].as_f64().unwrap_or(60.0);
    let rs_e2e = rust.stats["align_60s_s"].median();
    let py_e2e = ref_metric("align_60s_s").map(|v| v.0);
    lines.push((
        "real-time factor (align / 60 s)".into(),
        format!("{:.3}", rs_e2e / seconds),
        py_e2e.map_or_else(|| "-".into(), |v| format!("{:.3}", v / seconds)),
        ratio_cell(py_e2e.map(|v| v / rs_e2e)),
    ));
    let rs_peak = rust.peak_rss.map(|v| v as f64);
    let py_peak = ref_value("peak_rss_bytes");
    let rs_end = rust.json["values"]["rss_end_bytes"].as_f64();
    let py_end = ref_value("rss_end_bytes");
    let rs_load = rust.json["values"]["load_s"].as_f64();
    let py_load = ref_value("load_s");
    lines.extend(memory_and_load_lines(
        [rs_peak, rs_end, rs_load],
        [py_peak, py_end, py_load],
    ));

    println!();
    println!(
        "{}: Qwen3-ForcedAligner-0.6B shapes, random weights, f32, CPU ({}), {} threads; 60 s clip, {} words; cells: median (min) of {} runs after {} warm-up",
        utc_now(),
        cpu_model(),
        threads,
        clip("words"),
        args.repeat,
        args.warmup
    );
    print_table(&lines);
    println!(
        "(pytorch/rust > 1: Rust is faster or smaller; the pytorch encoder always uses full attention)"
    );

    // Same inputs on both sides?
    if let Some(rc) = ref_clip {
        for k in [
            "mel_frames",
            "audio_tokens",
            "prompt_tokens",
            "words",
            "timestamp_tokens",
        ] {
            if rc[k].as_u64() != rust.clip[k].as_u64() {
                println!(
                    "NOTE: {k} differs: rust {} vs pytorch {}",
                    rust.clip[k], rc[k]
                );
            }
        }
    }

    // Where the Rust time goes.
    let p = &rust.parts;
    let features = rust.stats["features_60s_s"].median();
    let (stem, enc_layers, enc_head) = (
        median_of(p, |x| x.stem),
        median_of(p, |x| x.enc_layers),
        median_of(p, |x| x.enc_head),
    );
    let (embed, decoder, head, am) = (
        median_of(p, |x| x.embed),
        median_of(p, |x| x.decoder),
        median_of(p, |x| x.head),
        median_of(p, |x| x.argmax),
    );
    let sum = features + stem + enc_layers + enc_head + embed + decoder + head + am;
    println!();
    println!("rust alignment, where the time goes (medians; encoder {att}):");
    println!(
        "  features {features:.3} s | encoder: conv stem {stem:.3} s, layers {enc_layers:.3} s ({:.0} GFLOP/s on the projections), head {enc_head:.3} s",
        rust.encoder_layer_flops / enc_layers / 1e9
    );
    println!(
        "  embed + audio splice {embed:.4} s | decoder stack {decoder:.3} s | head {:.1} ms | argmax {:.2} ms",
        head * 1e3,
        am * 1e3
    );
    let linear = rust.stats["decoder_s"].median() - rs_quad;
    println!(
        "  decoder stack (separate runs): {:.3} s = ~{:.3} s linear in the length ({:.0} GFLOP/s on the projections, {:.1} ms per token) + ~{rs_quad:.3} s growing with its square (attention){}",
        rust.stats["decoder_s"].median(),
        linear,
        rust.decoder_flops / linear / 1e9,
        linear / clip("prompt_tokens").max(1) as f64 * 1e3,
        py_quad.map_or(String::new(), |p| format!(
            "; pytorch: ~{:.3} s + ~{p:.3} s",
            ref_metric("decoder_s").map_or(f64::NAN, |d| d.0) - p
        ))
    );
    println!(
        "  sum of the parts {sum:.3} s; end to end {rs_e2e:.3} s (the rest: segmentation checks, timestamp repair, dispatch)"
    );
    println!();
    if let Some(r) = reference {
        print_machine("pytorch", &r["machine"]);
    }
    print_machine("rust", machine_rust);
    Value::Array(rows)
}
