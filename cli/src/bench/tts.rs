//! `qwen3-speech bench tts`: speed of Qwen3-TTS on a full-size 0.6B CustomVoice checkpoint
//! (random weights, released shapes, tts.md §2; the released 12 Hz codec, codecs.md §2.4), side
//! by side with the PyTorch reference measured the same way on the same machine.
//!
//! The checkpoint and the request (`<model>/bench_request.json`: one English sentence, speaker
//! Ryan, 4 s = 50 frames) come from `tools/bench/make_tts_checkpoint.py`. The reference numbers
//! come from `tools/bench/reference_tts.py`, run here with `--run-reference` or read from a file
//! with `--reference-json`. Both sides use the same names and definitions (see
//! `tools/bench/README.md`). Everything is greedy (argmax for code 0 after the repetition
//! penalty, argmax for codes 1..15) and produces exactly N frames (the checkpoint's EOS logit is
//! 0, below every audio code's; every run is checked):
//!
//! * `e2e_4s_s`: the user-facing call (`Synthesizer::speak` here, `generate_custom_voice`
//!   there): prompt, talker prefill, N frames, speech-tokenizer decode.
//! * `prefill_s`: from the start of the call to the first frame step: validation, tokenization,
//!   prompt embeddings, talker prefill over the prompt, codec head, code 0 of frame 0
//!   (`Synthesizer::frames` here).
//! * `frame_s`: one frame in steady state: the code predictor's 15 steps, the frame's feedback
//!   embedding, one talker step over the 28 layers, the codec head and code 0 of the next frame
//!   (one `FrameStream::next_frame` here; the interval between the starts of consecutive talker
//!   steps there). Per run, the median over its frames.
//! * `frame_code_predictor_s`, `frame_talker_s`: of which the code predictor (15 steps with
//!   their heads, embeddings and argmax) and the talker's layers + final norm.
//! * `codec_decode_4s_s`: the speech-tokenizer decode of the N frames (`TtsModel::decode`, the
//!   wrapper's `speech_tokenizer.decode` there).
//! * peak RSS of the process over the whole run (VmHWM here, `ru_maxrss` there).
//!
//! Below the table it prints the memory-bandwidth bound of a frame: the weight bytes one frame
//! reads (the talker's layers and codec head once, the code predictor's layers 15 times, its
//! 15 heads once) over the machine's measured read bandwidth.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::{Value, json};

use qwen3_speech::engine::sampling::argmax;
use qwen3_speech::engine::transformer::{Positions, Qwen3Config};
use qwen3_speech::models::tts::Talker;
use qwen3_speech::models::tts::pipeline::PreparedRequest;
use qwen3_speech::{
    ComputeDType, DeviceSpec, FetchOptions, ModelDir, SpeakRequest, SynthesisOptions, Synthesizer,
    SynthesizerConfig, TextInput,
};

use super::{
    Bandwidth, F32_BYTES, MachineWatch, Stat, cpu_model, log, measure, memory_and_load_lines,
    print_machine, print_table, proc_status_bytes, ratio_cell, read_json, reference_numbers,
    run_reference_script, threads_from, utc_now, weight_count, write_json,
};

#[derive(Args, Debug)]
pub struct TtsBenchArgs {
    /// Checkpoint folder written by tools/bench/make_tts_checkpoint.py.
    #[arg(long, short = 'm', default_value = "bench-models/tts-0.6b")]
    model: PathBuf,
    /// Reference numbers from an earlier `tools/bench/reference_tts.py --json FILE` run.
    #[arg(long, value_name = "FILE", conflicts_with = "run_reference")]
    reference_json: Option<PathBuf>,
    /// Run tools/bench/reference_tts.py first (Python: $QWEN3_SPEECH_REFERENCE_PYTHON, else
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
    /// Frames per run (default: bench_request.json, 50 = 4 s).
    #[arg(long)]
    frames: Option<usize>,
    /// Size of the buffer summed to measure the DRAM read bandwidth (0: as large as the
    /// distinct weights one frame reads, in f32).
    #[arg(long, default_value_t = 0, value_name = "MIB")]
    bandwidth_mib: usize,
    /// Write everything (both engines, every run, bandwidth, table) as JSON here.
    #[arg(long, value_name = "OUT")]
    json: Option<PathBuf>,
}

const REQUEST_FILE: &str = "bench_request.json";

/// The request both benches synthesise (`bench_request.json`).
#[derive(Debug, Clone)]
struct BenchRequest {
    text: String,
    speaker: String,
    language: String,
    frames: usize,
}

impl BenchRequest {
    fn read(model: &std::path::Path, frames: Option<usize>) -> Result<Self> {
        let path = model.join(REQUEST_FILE);
        if !path.is_file() {
            bail!(
                "{} is missing: build the bench checkpoint first with\n  \
                 /work/venv-ref/bin/python tools/bench/make_tts_checkpoint.py --out {}",
                path.display(),
                model.display()
            );
        }
        let v = read_json(&path)?;
        let s = |k: &str| -> Result<String> {
            v[k].as_str()
                .map(str::to_owned)
                .with_context(|| format!("{}: no \"{k}\"", path.display()))
        };
        let frames = match frames {
            Some(f) => f,
            None => v["frames"]
                .as_u64()
                .with_context(|| format!("{}: no \"frames\"", path.display()))?
                as usize,
        };
        if frames < 3 {
            bail!("--frames must be at least 3");
        }
        Ok(BenchRequest {
            text: s("text")?,
            speaker: s("speaker")?,
            language: s("language")?,
            frames,
        })
    }

    fn speak_request(&self) -> SpeakRequest {
        SpeakRequest {
            language: Some(self.language.clone()),
            speaker: Some(self.speaker.clone()),
            // The reference wrapper's default for CustomVoice (non_streaming_mode=True).
            text_input: Some(TextInput::Whole),
            ..SpeakRequest::new(self.text.clone())
        }
    }

    /// Greedy, exactly `frames` frames: max_new_tokens = frames + 1 (the last code 0 is never
    /// expanded, as in the reference).
    fn options(&self) -> SynthesisOptions {
        SynthesisOptions {
            greedy: true,
            max_frames: Some(self.frames + 1),
            ..SynthesisOptions::default()
        }
    }

    fn seconds(&self) -> f64 {
        self.frames as f64 * 0.08
    }
}

pub(super) fn bench_tts(args: TtsBenchArgs) -> Result<ExitCode> {
    if args.repeat == 0 {
        bail!("--repeat must be at least 1");
    }
    let threads = threads_from(args.threads);
    // SAFETY: nothing else runs yet (no thread has been started, no rayon pool exists); candle
    // and rayon read this variable when they first start their thread pools.
    unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.to_string()) };
    let request = BenchRequest::read(&args.model, args.frames)?;

    let reference = reference_numbers(args.run_reference, args.reference_json.as_deref(), || {
        run_reference(&args, threads, request.frames)
    })?;
    if let Some(r) = &reference {
        check_reference(r, &args, threads, &request)?;
    }

    let watch = MachineWatch::start();
    let rust = rust_measurements(&args, threads, &request)?;
    let machine_rust = watch.report();

    // After the model is gone, so the buffers do not count in the peak RSS above.
    let w = &rust.weights;
    let distinct_f32 = (w.talker_layers + w.talker_head + w.cp_layers + w.cp_heads) * F32_BYTES;
    let bw_bytes = if args.bandwidth_mib > 0 {
        args.bandwidth_mib << 20
    } else {
        distinct_f32 as usize
    };
    let bandwidth = Bandwidth::measure(bw_bytes, threads);
    log(format!(
        "memory read bandwidth over {:.2} GB: {:.2} GB/s with {threads} threads ({:.2} GB/s with one stream per thread, {:.2} GB/s on 1 thread)",
        bandwidth.bytes as f64 / 1e9,
        bandwidth.best / 1e9,
        bandwidth.one_stream / 1e9,
        bandwidth.one_thread / 1e9
    ));
    // The code predictor re-reads its layers 15 times per frame: a buffer of their size, as the
    // engine stores them, may stay in the last-level cache between passes.
    let cp_bandwidth = Bandwidth::measure(rust.stored.cp_layers_once as usize, threads);
    log(format!(
        "read bandwidth over {:.0} MB (the code predictor's layers as stored): {:.2} GB/s",
        cp_bandwidth.bytes as f64 / 1e6,
        cp_bandwidth.best / 1e9
    ));

    let table = print_report(
        &args,
        threads,
        &request,
        &rust,
        reference.as_ref(),
        &bandwidth,
        &cp_bandwidth,
        &machine_rust,
    );
    if let Some(path) = &args.json {
        let all = json!({
            "date": utc_now(),
            "cpu": cpu_model(),
            "threads": threads,
            "rust": rust.json,
            "rust_machine": machine_rust,
            "pytorch": reference,
            "bandwidth": bandwidth.to_json(),
            "bandwidth_code_predictor_layers": cp_bandwidth.to_json(),
            "weights_per_frame": weights_json(&rust, &bandwidth),
            "table": table,
        });
        write_json(path, &all)?;
    }
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------------------
// The reference
// ---------------------------------------------------------------------------------------------

fn run_reference(args: &TtsBenchArgs, threads: usize, frames: usize) -> Result<Value> {
    run_reference_script(
        "reference_tts.py",
        "QWEN3_SPEECH_REFERENCE_TTS_SCRIPT",
        (&args.model, threads, args.repeat, args.warmup),
        &["--frames".into(), frames.to_string()],
    )
}

/// Refuses reference numbers taken with another thread count, frame count or request: the
/// ratios would compare different things.
fn check_reference(
    r: &Value,
    args: &TtsBenchArgs,
    threads: usize,
    req: &BenchRequest,
) -> Result<()> {
    let get = |k: &str| r.get(k).and_then(Value::as_u64);
    if r["metrics"].get("frame_s").is_none() || r.get("request").is_none() {
        bail!("the reference JSON is not from tools/bench/reference_tts.py");
    }
    if get("threads") != Some(threads as u64) {
        bail!(
            "the reference was measured with {:?} threads, this run uses {threads}: rerun it or pass --threads",
            get("threads")
        );
    }
    if get("frames") != Some(req.frames as u64) {
        bail!(
            "the reference was measured with {:?} frames, this run uses {}: rerun it or pass --frames",
            get("frames"),
            req.frames
        );
    }
    if r["request"]["text"].as_str() != Some(req.text.as_str()) {
        bail!("the reference synthesised another text: rerun it");
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

/// Parameters one frame reads from memory (batch 1), by part.
#[derive(Debug, Clone)]
struct FrameWeights {
    /// The talker's 28 layers (one step).
    talker_layers: f64,
    /// Final norm + codec head (one step).
    talker_head: f64,
    /// The code predictor's layers and final norm, once (read 15 times per frame).
    cp_layers: f64,
    /// Its 15 heads (each read once per frame).
    cp_heads: f64,
    /// Passes over the code predictor's layers per frame.
    cp_passes: usize,
}

/// The code predictor the bench times (12 Hz models; a single-codebook talker has none).
fn predictor(talker: &Talker) -> Result<&qwen3_speech::models::tts::CodePredictor> {
    talker
        .code_predictor()
        .context("the TTS bench measures 12 Hz models (with a code predictor)")
}

impl FrameWeights {
    fn new(talker: &Talker) -> Result<Self> {
        let cfg = talker.config();
        let t = weight_count(&cfg.decoder);
        let cp_cfg: &Qwen3Config = &cfg
            .code_predictor()
            .context("the TTS bench measures 12 Hz models (with a code predictor)")?
            .decoder;
        let cp = weight_count(cp_cfg);
        let passes = predictor(talker)?.num_codes();
        Ok(FrameWeights {
            talker_layers: t.layers,
            talker_head: t.norm + t.head,
            cp_layers: cp.layers + cp.norm,
            cp_heads: passes as f64 * cp.head,
            cp_passes: passes,
        })
    }

    /// Parameters read per frame.
    fn per_frame(&self) -> f64 {
        self.talker_layers
            + self.talker_head
            + self.cp_passes as f64 * self.cp_layers
            + self.cp_heads
    }
}

/// Bytes per frame as the Rust engine stores the weights.
#[derive(Debug, Clone)]
struct StoredBytes {
    talker_step: f64,
    code_predictor_frame: f64,
    cp_layers_once: f64,
}

impl StoredBytes {
    fn per_frame(&self) -> f64 {
        self.talker_step + self.code_predictor_frame
    }
}

/// Per-frame times of the parts of a frame (manual loop over the same steps).
#[derive(Debug, Default, Clone)]
struct FrameParts {
    code_predictor: f64,
    feedback: f64,
    talker: f64,
    head: f64,
}

struct RustResults {
    stats: BTreeMap<String, Stat>,
    weights: FrameWeights,
    stored: StoredBytes,
    parts: Vec<FrameParts>,
    codes: Vec<Vec<u32>>,
    prompt_positions: usize,
    peak_rss: Option<u64>,
    json: Value,
}

fn median_of(v: &[FrameParts], g: fn(&FrameParts) -> f64) -> f64 {
    Stat {
        runs: v.iter().map(g).collect(),
    }
    .median()
}

fn rust_measurements(
    args: &TtsBenchArgs,
    threads: usize,
    req: &BenchRequest,
) -> Result<RustResults> {
    let (w, r, n) = (args.warmup, args.repeat, req.frames);
    let config = SynthesizerConfig {
        device: DeviceSpec::Cpu,
        dtype: Some(ComputeDType::F32),
        fetch: FetchOptions::from_env(),
    };
    let t0 = Instant::now();
    let synth = Synthesizer::from_dir(ModelDir::open(&args.model)?, config)?;
    let load_s = t0.elapsed().as_secs_f64();
    log(format!(
        "loaded {} in {load_s:.1} s (f32, cpu, {threads} threads)",
        args.model.display()
    ));
    let model = synth.model();
    let talker = model.talker();
    let weights = FrameWeights::new(talker)?;
    let cp = predictor(talker)?;
    let stored = StoredBytes {
        talker_step: talker.step_weight_bytes() as f64,
        code_predictor_frame: cp.frame_weight_bytes() as f64,
        cp_layers_once: cp.decoder().weight_bytes() as f64,
    };
    let speak = req.speak_request();
    let options = req.options();
    let prepared = model.prepare(&speak)?;
    let prompt_positions = prepared.prompt.embeds.dim(0)?;
    let mut stats: BTreeMap<String, Stat> = BTreeMap::new();

    // (a) prefill and frames, through the facade's frame stream (the path `speak` takes).
    let (mut prefill, mut frame) = (Stat::default(), Stat::default());
    let mut frame_runs = Vec::new();
    let mut codes: Vec<Vec<u32>> = Vec::new();
    for i in 0..w + r {
        let t = Instant::now();
        let mut stream = synth.frames(&speak, &options)?;
        let p = t.elapsed().as_secs_f64();
        let mut times = Vec::with_capacity(n);
        let mut frames = Vec::with_capacity(n);
        loop {
            let t = Instant::now();
            let Some(f) = stream.next_frame()? else { break };
            times.push(t.elapsed().as_secs_f64());
            frames.push(f);
        }
        if frames.len() != n || !stream.truncated() {
            bail!(
                "the frame stream produced {} frames (truncated: {}), expected exactly {n}: use a \
                 checkpoint from tools/bench/make_tts_checkpoint.py (its EOS never wins)",
                frames.len(),
                stream.truncated()
            );
        }
        let per_frame = Stat {
            runs: times.clone(),
        };
        log(format!(
            "run {}/{}{}: prefill {p:.3} s, frame median {:.1} ms (min {:.1}, max {:.1})",
            i + 1,
            w + r,
            if i < w { " (warm-up)" } else { "" },
            per_frame.median() * 1e3,
            per_frame.min() * 1e3,
            times.iter().copied().fold(0.0, f64::max) * 1e3
        ));
        if i >= w {
            prefill.runs.push(p);
            frame.runs.push(per_frame.median());
            frame_runs.push(times);
        }
        codes = frames;
    }
    stats.insert("prefill_s".into(), prefill);
    stats.insert("frame_s".into(), frame);

    // (b) where a frame goes: the same steps as FrameSession::step, timed apart. The code
    // predictor starts a fresh cache every frame, so its cost does not depend on the frame;
    // the talker step runs at the position after the prompt (its cache is rolled back after
    // every step), so only its attention over a short context differs from a real frame.
    let parts = frame_parts(talker, &prepared, model.config().tts_pad_token_id, w, r, n)?;
    stats.insert(
        "frame_code_predictor_s".into(),
        Stat {
            runs: parts.iter().map(|p| p.code_predictor).collect(),
        },
    );
    stats.insert(
        "frame_talker_s".into(),
        Stat {
            runs: parts.iter().map(|p| p.talker).collect(),
        },
    );

    // (c) the speech-tokenizer decode of the generated frames.
    let s = measure(&format!("codec decode, {n} frames"), w, r, || {
        let wav = model.decode(&codes, None)?;
        if wav.len() != n * model.samples_per_frame() {
            bail!("decode gave {} samples for {n} frames", wav.len());
        }
        Ok(())
    })?;
    stats.insert("codec_decode_4s_s".into(), s);

    // (d) end to end through the facade.
    let mut audio = (0usize, 0f64);
    let s = measure("end to end (speak)", w, r, || {
        let out = synth.speak(&speak, &options)?;
        if out.frames.len() != n || !out.truncated {
            bail!(
                "speak produced {} frames, expected exactly {n}",
                out.frames.len()
            );
        }
        if out.frames != codes {
            log("note: speak's frames differ from the frame stream's");
        }
        let m = out.audio.samples.iter().map(|&x| x as f64).sum::<f64>()
            / out.audio.samples.len() as f64;
        let var = out
            .audio
            .samples
            .iter()
            .map(|&x| (x as f64 - m).powi(2))
            .sum::<f64>()
            / out.audio.samples.len() as f64;
        audio = (out.audio.samples.len(), var.sqrt());
        Ok(())
    })?;
    stats.insert("e2e_4s_s".into(), s);

    // (e) streaming through the facade: audio chunks while the frames are generated (the
    // default chunking: first chunk after 2 frames, then every 4).
    let stream_options = qwen3_speech::SpeechStreamOptions::default();
    let (mut first_audio, mut stream_total) = (Stat::default(), Stat::default());
    for i in 0..w + r {
        let t = Instant::now();
        let mut stream = synth.speak_stream(&speak, &options, &stream_options)?;
        let mut first = None;
        let mut samples = 0;
        while let Some(chunk) = stream.next_chunk()? {
            if first.is_none() && !chunk.is_empty() {
                first = Some(t.elapsed().as_secs_f64());
            }
            samples += chunk.len();
        }
        let total = t.elapsed().as_secs_f64();
        let Some(first) = first else {
            bail!("the audio stream produced no audio");
        };
        if samples != n * model.samples_per_frame() {
            bail!("the audio stream gave {samples} samples for {n} frames");
        }
        log(format!(
            "stream run {}/{}{}: first audio after {first:.3} s, all {n} frames in {total:.3} s",
            i + 1,
            w + r,
            if i < w { " (warm-up)" } else { "" },
        ));
        if i >= w {
            first_audio.runs.push(first);
            stream_total.runs.push(total);
        }
    }
    stats.insert("stream_first_audio_s".into(), first_audio);
    stats.insert("stream_e2e_4s_s".into(), stream_total);

    let peak_rss = proc_status_bytes("VmHWM");
    let rss_end = proc_status_bytes("VmRSS");
    let parts_json = {
        let f = |g: fn(&FrameParts) -> f64| {
            Stat {
                runs: parts.iter().map(g).collect(),
            }
            .to_json()
        };
        json!({"code_predictor": f(|p| p.code_predictor), "feedback_embedding": f(|p| p.feedback),
               "talker_layers": f(|p| p.talker), "codec_head_and_argmax": f(|p| p.head)})
    };
    let mut metrics: serde_json::Map<String, Value> = stats
        .iter()
        .map(|(k, v)| (k.clone(), v.to_json()))
        .collect();
    metrics["frame_s"]["per_frame_runs"] = json!(frame_runs);
    let json = json!({
        "engine": "rust",
        "version": qwen3_speech::VERSION,
        "model": args.model,
        "dtype": "float32",
        "device": "cpu",
        "threads": threads,
        "repeat": r,
        "warmup": w,
        "frames": n,
        "request": {"text": req.text, "speaker": req.speaker, "language": req.language, "text_input": "whole"},
        "prompt_positions": prompt_positions,
        "codes": codes,
        "audio": {"samples": audio.0, "sample_rate": model.sample_rate(), "std": audio.1},
        "metrics": metrics,
        "values": {"load_s": load_s, "peak_rss_bytes": peak_rss, "rss_end_bytes": rss_end},
        "frame_breakdown": parts_json,
        "stored_weight_bytes_per_frame": {"talker_step": stored.talker_step,
            "code_predictor": stored.code_predictor_frame, "code_predictor_layers_once": stored.cp_layers_once},
    });
    Ok(RustResults {
        stats,
        weights,
        stored,
        parts,
        codes,
        prompt_positions,
        peak_rss,
        json,
    })
}

/// Medians per frame of the parts of a frame, one entry per timed run of `frames` frames.
fn frame_parts(
    talker: &Talker,
    prepared: &PreparedRequest,
    pad_id: u32,
    warmup: usize,
    repeat: usize,
    frames: usize,
) -> Result<Vec<FrameParts>> {
    let prompt = &prepared.prompt.embeds;
    let len = prompt.dim(0)?;
    let embeds = prompt.unsqueeze(0)?;
    let mut cache = talker.new_cache();
    let hidden = talker.forward(&embeds, &Positions::contiguous(1, 0, len), None, &mut cache)?;
    let mut hidden = hidden.narrow(1, len - 1, 1)?.squeeze(1)?;
    let pad = talker.text(&[pad_id])?;
    let audio_codes = predictor(talker)?.codebook_size();
    let pick0 = |logits: &[f32]| argmax(&logits[..audio_codes]);
    let mut code0 = pick0(&talker.logits(&hidden)?.flatten_all()?.to_vec1::<f32>()?)?;
    let mut out = Vec::new();
    for run in 0..warmup + repeat {
        let mut parts: Vec<FrameParts> = Vec::with_capacity(frames);
        for _ in 0..frames {
            let mut p = FrameParts::default();
            let t = Instant::now();
            let c0 = talker.codec(&[code0])?;
            let rest = predictor(talker)?.predict(&hidden, &c0, |_, _, l| argmax(l))?;
            p.code_predictor = t.elapsed().as_secs_f64();
            let mut frame = vec![code0];
            frame.extend_from_slice(&rest[0]);
            let t = Instant::now();
            let input = talker.frame_embeddings(&[frame])?.add(&pad)?.unsqueeze(1)?;
            p.feedback = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let h = talker.forward(&input, &Positions::contiguous(1, len, 1), None, &mut cache)?;
            p.talker = t.elapsed().as_secs_f64();
            cache.truncate(len);
            let t = Instant::now();
            let h = h.squeeze(1)?;
            code0 = pick0(&talker.logits(&h)?.flatten_all()?.to_vec1::<f32>()?)?;
            p.head = t.elapsed().as_secs_f64();
            hidden = h;
            parts.push(p);
        }
        if run >= warmup {
            out.push(FrameParts {
                code_predictor: median_of(&parts, |p| p.code_predictor),
                feedback: median_of(&parts, |p| p.feedback),
                talker: median_of(&parts, |p| p.talker),
                head: median_of(&parts, |p| p.head),
            });
        }
    }
    let last = out.last().cloned().unwrap_or_default();
    log(format!(
        "frame breakdown (medians): code predictor {:.1} ms | feedback embedding {:.2} ms | talker layers {:.1} ms | codec head + argmax {:.2} ms",
        last.code_predictor * 1e3,
        last.feedback * 1e3,
        last.talker * 1e3,
        last.head * 1e3
    ));
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------------------------

fn weights_json(rust: &RustResults, bw: &Bandwidth) -> Value {
    let w = &rust.weights;
    let f32_bytes = w.per_frame() * F32_BYTES;
    json!({
        "params_talker_layers": w.talker_layers, "params_talker_norm_and_codec_head": w.talker_head,
        "params_code_predictor_layers_and_norm": w.cp_layers, "code_predictor_passes": w.cp_passes,
        "params_code_predictor_heads": w.cp_heads, "params_per_frame": w.per_frame(),
        "bytes_f32": f32_bytes, "bound_s_f32": f32_bytes / bw.best,
        "rust_stored_bytes": rust.stored.per_frame(),
        "rust_bound_s": rust.stored.per_frame() / bw.best,
    })
}

#[allow(clippy::too_many_arguments)]
fn print_report(
    args: &TtsBenchArgs,
    threads: usize,
    req: &BenchRequest,
    rust: &RustResults,
    reference: Option<&Value>,
    bw: &Bandwidth,
    cp_bw: &Bandwidth,
    machine_rust: &Value,
) -> Value {
    let ref_metric = |key: &str| -> Option<(f64, f64)> {
        let m = reference?.get("metrics")?.get(key)?;
        Some((m.get("median")?.as_f64()?, m.get("min")?.as_f64()?))
    };
    let ref_value = |key: &str| reference?.get("values")?.get(key)?.as_f64();
    let n = req.frames;
    let secs = req.seconds();

    // (label, key, scale, unit)
    let timed: Vec<(String, &str, f64, &str)> = vec![
        (
            format!(
                "prefill ({}-position prompt) + code 0 of frame 0",
                rust.prompt_positions
            ),
            "prefill_s",
            1.0,
            "s",
        ),
        (
            "per frame (talker step + code predictor)".into(),
            "frame_s",
            1e3,
            "ms",
        ),
        (
            "  of which code predictor (15 steps)".into(),
            "frame_code_predictor_s",
            1e3,
            "ms",
        ),
        (
            "  of which talker layers + norm (1 step)".into(),
            "frame_talker_s",
            1e3,
            "ms",
        ),
        (
            format!("codec decode, {secs} s ({n} frames)"),
            "codec_decode_4s_s",
            1.0,
            "s",
        ),
        (
            format!("end to end, {secs} s of speech ({n} frames)"),
            "e2e_4s_s",
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
    for (label, key, scale, unit) in &timed {
        let rs = rust.stats.get(*key).map(|s| (s.median(), s.min()));
        let py = ref_metric(key);
        let ratio = rs.zip(py).map(|(a, b)| b.0 / a.0);
        lines.push((
            format!("{label} [{unit}]"),
            cell(rs, *scale),
            cell(py, *scale),
            ratio_cell(ratio),
        ));
        rows.push(json!({"quantity": label, "key": key, "unit": unit,
            "rust_median": rs.map(|v| v.0), "rust_min": rs.map(|v| v.1),
            "pytorch_median": py.map(|v| v.0), "pytorch_min": py.map(|v| v.1),
            "speedup": ratio}));
    }
    let rs_frame = rust.stats["frame_s"].median();
    let py_frame = ref_metric("frame_s").map(|v| v.0);
    lines.push((
        "frames per second (real time: 12.5)".into(),
        format!("{:.2}", 1.0 / rs_frame),
        py_frame.map_or_else(|| "-".into(), |v| format!("{:.2}", 1.0 / v)),
        ratio_cell(py_frame.map(|v| v / rs_frame)),
    ));
    let rs_dec = rust.stats["codec_decode_4s_s"].median();
    let py_dec = ref_metric("codec_decode_4s_s").map(|v| v.0);
    lines.push((
        format!("real-time factor, codec decode (decode / {secs} s)"),
        format!("{:.3}", rs_dec / secs),
        py_dec.map_or_else(|| "-".into(), |v| format!("{:.3}", v / secs)),
        ratio_cell(py_dec.map(|v| v / rs_dec)),
    ));
    let rs_e2e = rust.stats["e2e_4s_s"].median();
    let py_e2e = ref_metric("e2e_4s_s").map(|v| v.0);
    lines.push((
        format!("real-time factor, end to end (e2e / {secs} s)"),
        format!("{:.3}", rs_e2e / secs),
        py_e2e.map_or_else(|| "-".into(), |v| format!("{:.3}", v / secs)),
        ratio_cell(py_e2e.map(|v| v / rs_e2e)),
    ));
    // Streaming: the reference has no streaming decode (its audio comes at the end of
    // generate), so its time to first audio is its end-to-end time.
    let rs_first = rust.stats["stream_first_audio_s"].median();
    let rs_stream = rust.stats["stream_e2e_4s_s"].median();
    lines.push((
        "time to first audio, streaming (rust speak_stream; pytorch: its e2e, no streaming) [s]"
            .into(),
        format!("{rs_first:.3}"),
        py_e2e.map_or_else(|| "-".into(), |v| format!("{v:.3}")),
        ratio_cell(py_e2e.map(|v| v / rs_first)),
    ));
    lines.push((
        format!("real-time factor, streaming (stream / {secs} s)"),
        format!("{:.3}", rs_stream / secs),
        py_e2e.map_or_else(|| "-".into(), |v| format!("{:.3}", v / secs)),
        ratio_cell(py_e2e.map(|v| v / rs_stream)),
    ));
    rows.push(json!({"quantity": "streaming", "unit": "s",
        "rust_first_audio": rs_first, "rust_stream_total": rs_stream,
        "pytorch_first_audio_is_e2e": py_e2e}));
    rows.push(json!({"quantity": "real-time factors", "unit": "1",
        "rust_codec_decode_rtf": rs_dec / secs, "pytorch_codec_decode_rtf": py_dec.map(|v| v / secs),
        "rust_e2e_rtf": rs_e2e / secs, "pytorch_e2e_rtf": py_e2e.map(|v| v / secs)}));
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
        "{}: Qwen3-TTS-12Hz-0.6B-CustomVoice shapes, random weights, f32, CPU ({}), {} threads; \
         {n} frames, greedy; cells: median (min) of {} runs after {} warm-up",
        utc_now(),
        cpu_model(),
        threads,
        args.repeat,
        args.warmup
    );
    print_table(&lines);
    println!("(pytorch/rust > 1: Rust is faster or smaller)");

    // Same inputs and outputs on both sides?
    if let Some(r) = reference {
        if r["prompt_positions"].as_u64() != Some(rust.prompt_positions as u64) {
            println!(
                "NOTE: the prompt has {} positions here, {} in the reference",
                rust.prompt_positions, r["prompt_positions"]
            );
        }
        if let Some(pc) = r["codes"].as_array() {
            let py: Vec<Vec<u32>> = pc
                .iter()
                .map(|f| {
                    f.as_array()
                        .map(|v| {
                            v.iter()
                                .filter_map(|c| c.as_u64().map(|c| c as u32))
                                .collect()
                        })
                        .unwrap_or_default()
                })
                .collect();
            let same = rust
                .codes
                .iter()
                .zip(&py)
                .take_while(|(a, b)| a == b)
                .count();
            let equal_codes: usize = rust
                .codes
                .iter()
                .zip(&py)
                .map(|(a, b)| a.iter().zip(b).filter(|(x, y)| x == y).count())
                .sum();
            println!(
                "greedy codes: the first {same} of {n} frames are identical in both engines ({equal_codes} of {} codes equal overall)",
                n * 16
            );
        }
    }

    // Bandwidth bound.
    let w = &rust.weights;
    let bytes = w.per_frame() * F32_BYTES;
    let bound = bytes / bw.best;
    let rust_bytes = rust.stored.per_frame();
    let rust_bound = rust_bytes / bw.best;
    println!();
    println!(
        "memory read bandwidth: {:.2} GB/s with {} threads, best of 7 sums of a {:.2} GB buffer \
         ({:.2} GB/s with one sequential stream per thread, {:.2} GB/s on 1 thread)",
        bw.best / 1e9,
        bw.threads,
        bw.bytes as f64 / 1e9,
        bw.one_stream / 1e9,
        bw.one_thread / 1e9
    );
    println!(
        "weights read per frame: {:.3} GB = (talker {:.1}M layers + {:.2}M norm and codec head + code predictor {} x {:.2}M layers + {:.1}M heads) x 4 B (f32)",
        bytes / 1e9,
        w.talker_layers / 1e6,
        w.talker_head / 1e6,
        w.cp_passes,
        w.cp_layers / 1e6,
        w.cp_heads / 1e6
    );
    println!(
        "  the Rust engine reads {:.3} GB per frame (talker step {:.3} GB + code predictor {:.3} GB): \
         the checkpoint's bf16 weights are kept in bf16 and widened to f32 in registers (lossless; all arithmetic is f32)",
        rust_bytes / 1e9,
        rust.stored.talker_step / 1e9,
        rust.stored.code_predictor_frame / 1e9
    );
    println!(
        "bandwidth bound per frame: rust {:.1} ms ({:.3} GB), pytorch {:.1} ms ({:.3} GB f32)   << measured: rust {:.1} ms, pytorch {}",
        rust_bound * 1e3,
        rust_bytes / 1e9,
        bound * 1e3,
        bytes / 1e9,
        rs_frame * 1e3,
        py_frame.map_or_else(|| "-".into(), |p| format!("{:.1} ms", p * 1e3))
    );
    println!(
        "rust frame / its bound = {:.2}{}",
        rs_frame / rust_bound,
        py_frame.map_or(String::new(), |p| format!(
            "; pytorch frame / its bound = {:.2}",
            p / bound
        ))
    );
    let cp_once = rust.stored.cp_layers_once;
    let cached_bound = (rust.stored.talker_step
        + (rust.stored.code_predictor_frame - cp_once * w.cp_passes as f64))
        / bw.best
        + cp_once * w.cp_passes as f64 / cp_bw.best;
    println!(
        "  the code predictor's layers ({:.0} MB as stored) are re-read {} times per frame: a buffer of that size sums at {:.1} GB/s here \
         (cache-resident part); with that figure for them the rust bound is {:.1} ms",
        cp_once / 1e6,
        w.cp_passes,
        cp_bw.best / 1e9,
        cached_bound * 1e3
    );
    if let Some(p) = py_frame {
        println!(
            "per frame: pytorch / rust = {:.2} (target >= 1.5)",
            p / rs_frame
        );
    }

    // Where the Rust time goes.
    let p = &rust.parts;
    let (cpt, fb, tl, hd) = (
        median_of(p, |x| x.code_predictor),
        median_of(p, |x| x.feedback),
        median_of(p, |x| x.talker),
        median_of(p, |x| x.head),
    );
    println!();
    println!(
        "rust frame, where the time goes (manual loop over the same steps, medians per frame):"
    );
    println!(
        "  code predictor {:.1} ms ({:.1} GB/s effective over {:.3} GB) | feedback embedding {:.2} ms | talker layers {:.1} ms ({:.1} GB/s over {:.3} GB) | codec head + argmax {:.2} ms | sum {:.1} ms",
        cpt * 1e3,
        rust.stored.code_predictor_frame / cpt / 1e9,
        rust.stored.code_predictor_frame / 1e9,
        fb * 1e3,
        tl * 1e3,
        rust.stored.talker_step / tl / 1e9,
        rust.stored.talker_step / 1e9,
        hd * 1e3,
        (cpt + fb + tl + hd) * 1e3
    );
    if let Some(r) = reference {
        let m = |k: &str| r["metrics"][k]["median"].as_f64().unwrap_or(f64::NAN);
        println!(
            "pytorch frame: code predictor {:.1} ms | talker layers {:.1} ms | the rest (embeddings, codec head, logits processing, generate) {:.1} ms",
            m("frame_code_predictor_s") * 1e3,
            m("frame_talker_s") * 1e3,
            (m("frame_s") - m("frame_code_predictor_s") - m("frame_talker_s")) * 1e3
        );
    }
    println!();
    if let Some(r) = reference {
        print_machine("pytorch", &r["machine"]);
    }
    print_machine("rust", machine_rust);
    Value::Array(rows)
}
