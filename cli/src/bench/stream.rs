//! `qwen3-speech bench stream`: what streaming recognition costs as the stream grows, in both
//! modes: [`StreamMode::Exact`] (the reference's algorithm as it computes it: every chunk
//! re-encodes the whole stream and re-runs the whole prompt) and [`StreamMode::Incremental`]
//! (kept features, kept complete encoder windows, reused decoder cache).
//!
//! One stream of speech is pushed chunk by chunk (default 2 s chunks, the reference's
//! defaults: 2 unfixed chunks, 5 rollback tokens) in the incremental mode. When it has reached
//! each checkpoint (default 10, 60 and 300 s of audio), the next `--measure-chunks` chunks are
//! timed in the incremental mode, then the next ones in the exact mode (the stream switches
//! mode and back; the transcript does not depend on the mode, and the cost of a step depends
//! only on where the stream is, not on how it got there, so no exact run from 0 s is needed).
//! The one incremental chunk after an exact stretch rebuilds the dropped caches and is not
//! counted.
//!
//! Reported per mode and checkpoint:
//! * `cost_per_pushed_second`: wall time of the timed chunks / their audio seconds (the
//!   real-time factor of keeping up with the stream at that point; below 1 keeps up);
//! * `latency`: wall time from the push that completes a chunk to its event (median, max),
//!   with its parts: features + encoder, prefill (prompt through the decoder to the first
//!   logits), token-by-token decoding;
//! * what was computed: encoder tokens, prompt positions run / reused, generated tokens.
//!
//! All per chunk: a push that closes a segment can run two decodes (the closing one, then the
//! next segment's first), and their parts are summed.
//!
//! Streams are cut into segments of `--max-segment-seconds` (default 30 s, as the product;
//! 0: never cut, the reference's algorithm) so the cost stays flat; within a segment it grows
//! with the segment (the prompt carries the segment's transcript after its audio). The default
//! number of timed chunks covers one whole segment, so every checkpoint averages over the same
//! saw-tooth period.
//!
//! The bench checkpoint has random weights (`tools/bench/make_asr_checkpoint.py`): it never
//! emits an end token, so the length of each decode is set to what a real model produces on
//! speech: the `language X<asr_text>` header (4 tokens) plus `--speech-tokens-per-second` per
//! second of audio the decode covers (the whole stream while there is no prefix, then the
//! rolled-back tokens plus one chunk). The transcript, and so the prefix the prompt carries,
//! then grows at that rate as it would with a real model.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::{Value, json};

use qwen3_speech::engine::audio::{ASR_SAMPLE_RATE, load_audio};
use qwen3_speech::engine::device::Placement;
use qwen3_speech::models::asr::streaming::StepStats;
use qwen3_speech::models::asr::{
    AsrModel, AsrStream, DEFAULT_MAX_SEGMENT_SECONDS, StreamMode, StreamOptions,
};
use qwen3_speech::{ComputeDType, DeviceSpec, ModelDir};

use super::{MachineWatch, Stat, cpu_model, log, print_machine, threads_from, utc_now, write_json};

#[derive(Args, Debug)]
pub struct StreamBenchArgs {
    /// Checkpoint folder (tools/bench/make_asr_checkpoint.py writes bench-models/asr-0.6b).
    #[arg(long, short = 'm', default_value = "bench-models/asr-0.6b")]
    model: PathBuf,
    /// Speech to stream (tiled to the length needed; default: <model>/bench-audio/speech_60s.wav).
    #[arg(long)]
    audio: Option<PathBuf>,
    /// Stream lengths (seconds) at which both modes are measured.
    #[arg(long, value_delimiter = ',', default_value = "10,60,300")]
    checkpoints: Vec<f64>,
    /// Chunks timed per mode at each checkpoint (default: one segment's worth, else 3).
    #[arg(long)]
    measure_chunks: Option<usize>,
    /// Longest segment, seconds (0: one segment, the reference's algorithm).
    #[arg(long, default_value_t = DEFAULT_MAX_SEGMENT_SECONDS)]
    max_segment_seconds: f64,
    /// Chunk length, seconds.
    #[arg(long, default_value_t = 2.0)]
    chunk_seconds: f64,
    /// Modes to measure.
    #[arg(long, value_delimiter = ',', default_value = "incremental,exact")]
    modes: Vec<StreamMode>,
    /// Transcript tokens per second of speech the simulated decodes produce.
    #[arg(long, default_value_t = 4.0)]
    speech_tokens_per_second: f64,
    /// CPU threads (default: $RAYON_NUM_THREADS, else all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    device: DeviceSpec,
    /// f32, bf16 or f16 (default: f32 on CPU, bf16 on CUDA).
    #[arg(long)]
    dtype: Option<ComputeDType>,
    /// Write everything (every chunk of the stream, the table) as JSON here.
    #[arg(long, value_name = "OUT")]
    json: Option<PathBuf>,
}

/// One push of a chunk (its decodes summed).
struct Step {
    mode: StreamMode,
    /// Stream length after the chunk, seconds.
    audio_seconds: f64,
    /// Wall time of the push that completed the chunk.
    wall: f64,
    stats: StepStats,
    /// Decodes the push ran (2 when a segment closed and the next one started at once).
    decodes: usize,
    /// Segment of the last decode, and whether a segment closed in the push.
    segment: usize,
    segment_closed: bool,
    /// Measured at this checkpoint (index), or just walking.
    checkpoint: Option<usize>,
    /// The first incremental chunk after an exact stretch (caches rebuilt).
    rebuild: bool,
}

const HEADER_TOKENS: usize = 4;

pub(super) fn bench_stream(args: StreamBenchArgs) -> Result<ExitCode> {
    if args.modes.is_empty() || args.checkpoints.is_empty() {
        bail!("nothing to measure");
    }
    let mut checkpoints = args.checkpoints.clone();
    checkpoints.sort_by(f64::total_cmp);
    let threads = threads_from(args.threads);
    // SAFETY: no other thread runs yet; candle and rayon read this when their pools start.
    unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.to_string()) };

    let audio_path = args
        .audio
        .clone()
        .unwrap_or_else(|| args.model.join("bench-audio/speech_60s.wav"));
    if !audio_path.is_file() {
        bail!(
            "{} is missing: build the bench checkpoint first with\n  \
             /work/venv-ref/bin/python tools/bench/make_asr_checkpoint.py --out {}\n\
             or pass --model and --audio",
            audio_path.display(),
            args.model.display()
        );
    }
    let speech = load_audio(&audio_path, ASR_SAMPLE_RATE)
        .with_context(|| format!("cannot read {}", audio_path.display()))?;
    let sr = f64::from(ASR_SAMPLE_RATE);
    let options = StreamOptions {
        chunk_seconds: args.chunk_seconds,
        mode: StreamMode::Incremental,
        max_segment_seconds: (args.max_segment_seconds != 0.0).then_some(args.max_segment_seconds),
        ..StreamOptions::default()
    };
    options.validate()?;
    let chunk = options.chunk_samples();
    let chunk_s = chunk as f64 / sr;
    let measure_chunks = match (args.measure_chunks, options.max_segment_seconds) {
        (Some(0), _) => bail!("--measure-chunks must be at least 1"),
        (Some(n), _) => n,
        (None, Some(seg)) => (seg / chunk_s).ceil() as usize + 1,
        (None, None) => 3,
    };
    let per_checkpoint = args.modes.len() * measure_chunks + 1;
    let last = checkpoints.last().copied().unwrap_or(0.0);
    let total_chunks = (last / chunk_s).ceil() as usize + per_checkpoint * checkpoints.len() + 1;
    let mut audio = Vec::with_capacity(total_chunks * chunk);
    while audio.len() < total_chunks * chunk {
        let n = (total_chunks * chunk - audio.len()).min(speech.len());
        audio.extend_from_slice(&speech[..n]);
    }

    let t0 = Instant::now();
    let placement = Placement::new(args.device, args.dtype)?;
    let dir = ModelDir::open(&args.model)?;
    let model = AsrModel::load(&dir, &placement.device, placement.dtype)
        .with_context(|| format!("cannot load {}", args.model.display()))?;
    log(format!(
        "loaded {} in {:.1} s ({:?}, {:?}, {threads} threads); streaming {:.0} s of {} in {:.1} s chunks",
        args.model.display(),
        t0.elapsed().as_secs_f64(),
        placement.device,
        placement.dtype,
        audio.len() as f64 / sr,
        audio_path.display(),
        chunk_s
    ));

    let watch = MachineWatch::start();
    let mut stream = AsrStream::new(&model, options.clone())?;
    let mut steps: Vec<Step> = Vec::new();
    let mut pos = 0usize;
    let mut next_checkpoint = 0usize;
    let tps = args.speech_tokens_per_second;
    // Plan: walk in incremental mode; at each checkpoint, the measured chunks of each mode.
    let mut plan: Vec<(StreamMode, Option<usize>)> = Vec::new();
    let mut rebuild_next = false;
    while pos + chunk <= audio.len() {
        if plan.is_empty() {
            let len_s = pos as f64 / sr;
            if next_checkpoint < checkpoints.len() && len_s + 1e-9 >= checkpoints[next_checkpoint] {
                for &m in &args.modes {
                    plan.extend(std::iter::repeat_n(
                        (m, Some(next_checkpoint)),
                        measure_chunks,
                    ));
                }
                next_checkpoint += 1;
            } else if next_checkpoint >= checkpoints.len() {
                break;
            } else {
                plan.push((StreamMode::Incremental, None));
            }
        }
        let (mode, checkpoint) = plan.remove(0);
        if mode != stream.options().mode {
            if mode == StreamMode::Incremental {
                rebuild_next = true;
            }
            stream.set_mode(mode);
        }
        // Decode length of a real model on speech (see the module docs).
        let after = (pos + chunk) as f64 / sr;
        let segment_after = (stream.segment_samples() + chunk) as f64 / sr;
        let budget = if stream.chunk_id() < options.unfixed_chunks {
            HEADER_TOKENS + (tps * segment_after).ceil() as usize
        } else {
            options.rollback_tokens + (tps * chunk_s).ceil() as usize
        };
        stream.set_max_new_tokens(Some(budget.max(1)))?;
        let t = Instant::now();
        let updates = stream.push(&model, &audio[pos..pos + chunk])?;
        let wall = t.elapsed().as_secs_f64();
        pos += chunk;
        let u = updates.last().context("a whole chunk gives a decode")?;
        let rebuild = rebuild_next && mode == StreamMode::Incremental;
        if rebuild {
            rebuild_next = false;
        }
        // A push can run two decodes: the one that closes a segment inside the chunk, then
        // the next segment's first when the rest of the chunk and what was buffered before
        // make a whole chunk. The push's wall time covers both; the parts are summed.
        for (i, d) in updates.iter().enumerate() {
            let s = d.stats;
            log(format!(
                "{:>6.1} s {:<11} {:>6} (encode {:.2}, prefill {:.2} [{} run, {} reused], decode {:.2} [{} tok]){}{}{}",
                after,
                mode.to_string(),
                if i + 1 == updates.len() {
                    format!("{wall:.2} s")
                } else {
                    String::new()
                },
                s.encode_seconds,
                s.prefill_seconds,
                s.prefill_positions,
                s.reused_positions,
                s.decode_seconds,
                s.generated_tokens,
                if checkpoint.is_some() { "  *" } else { "" },
                if rebuild { "  (rebuild)" } else { "" },
                if d.segment_closed {
                    "  (segment closed)"
                } else {
                    ""
                }
            ));
        }
        let s = updates
            .iter()
            .map(|d| d.stats)
            .reduce(sum_stats)
            .unwrap_or_default();
        steps.push(Step {
            mode,
            audio_seconds: after,
            wall,
            stats: s,
            decodes: updates.len(),
            segment: u.segment,
            segment_closed: updates.iter().any(|d| d.segment_closed),
            checkpoint,
            rebuild,
        });
    }
    let machine = watch.report();

    // The table.
    let mut rows = Vec::new();
    println!();
    println!(
        "streaming ASR cost, {} on {} ({threads} threads), {} s chunks, {tps} transcript tokens/s, segments of {}",
        args.model.display(),
        cpu_model(),
        chunk_s,
        match options.max_segment_seconds {
            Some(s) => format!("{s} s"),
            None => "unbounded length".to_string(),
        }
    );
    println!(
        "{:<12} {:>8} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8} {:>6}",
        "mode",
        "audio s",
        "cost/s",
        "latency",
        "max",
        "encode",
        "prefill",
        "decode",
        "enc tok",
        "run pos",
        "reused",
        "gen"
    );
    for (ci, &cp) in checkpoints.iter().enumerate() {
        for &mode in &args.modes {
            let sel: Vec<&Step> = steps
                .iter()
                .filter(|s| s.checkpoint == Some(ci) && s.mode == mode)
                .collect();
            if sel.is_empty() {
                continue;
            }
            let stat = |f: &dyn Fn(&Step) -> f64| Stat {
                runs: sel.iter().map(|s| f(s)).collect(),
            };
            let wall = stat(&|s| s.wall);
            let pushed: f64 = sel.len() as f64 * chunk_s;
            let cost = wall.runs.iter().sum::<f64>() / pushed;
            let max = wall.runs.iter().copied().fold(0.0, f64::max);
            let enc = stat(&|s| s.stats.encode_seconds);
            let pre = stat(&|s| s.stats.prefill_seconds);
            let dec = stat(&|s| s.stats.decode_seconds);
            let mean = |f: &dyn Fn(&StepStats) -> usize| {
                sel.iter().map(|s| f(&s.stats)).sum::<usize>() as f64 / sel.len() as f64
            };
            let enc_tok = mean(&|s| s.encoder_tokens);
            let run_pos = mean(&|s| s.prefill_positions);
            let reused = mean(&|s| s.reused_positions);
            let gen_tok = mean(&|s| s.generated_tokens);
            let at = sel[0].audio_seconds - chunk_s;
            println!(
                "{:<12} {:>8.0} {:>10.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>8.0} {:>8.0} {:>8.0} {:>6.1}",
                mode.to_string(),
                at,
                cost,
                wall.median(),
                max,
                enc.median(),
                pre.median(),
                dec.median(),
                enc_tok,
                run_pos,
                reused,
                gen_tok
            );
            rows.push(json!({
                "mode": mode.to_string(),
                "checkpoint_s": cp,
                "stream_s_before": at,
                "chunks": sel.len(),
                "cost_per_pushed_second": cost,
                "latency_s": wall.to_json(),
                "latency_max_s": max,
                "encode_s": enc.to_json(),
                "prefill_s": pre.to_json(),
                "decode_s": dec.to_json(),
                "encoder_tokens": enc_tok,
                "prefill_positions": run_pos,
                "reused_positions": reused,
                "generated_tokens": gen_tok,
            }));
        }
    }
    println!(
        "cost/s: seconds of compute per second of audio pushed (below 1 keeps up with real time); \
         latency: push of the chunk's last sample to its event (median, max), seconds"
    );
    print_machine("the stream", &machine);

    if let Some(out) = &args.json {
        let doc = json!({
            "bench": "stream",
            "date": utc_now(),
            "model": args.model.display().to_string(),
            "audio": audio_path.display().to_string(),
            "cpu": cpu_model(),
            "threads": threads,
            "device": format!("{:?}", placement.device),
            "dtype": format!("{:?}", placement.dtype),
            "chunk_seconds": chunk_s,
            "max_segment_seconds": options.max_segment_seconds,
            "measure_chunks": measure_chunks,
            "unfixed_chunks": options.unfixed_chunks,
            "rollback_tokens": options.rollback_tokens,
            "speech_tokens_per_second": tps,
            "machine": machine,
            "table": rows,
            "steps": steps.iter().map(step_json).collect::<Vec<Value>>(),
        });
        write_json(out, &doc)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn step_json(s: &Step) -> Value {
    json!({
        "mode": s.mode.to_string(),
        "audio_s": s.audio_seconds,
        "wall_s": s.wall,
        "encode_s": s.stats.encode_seconds,
        "prefill_s": s.stats.prefill_seconds,
        "decode_s": s.stats.decode_seconds,
        "audio_tokens": s.stats.audio_tokens,
        "encoder_tokens": s.stats.encoder_tokens,
        "reencoded_windows": s.stats.reencoded_windows,
        "prefill_positions": s.stats.prefill_positions,
        "reused_positions": s.stats.reused_positions,
        "generated_tokens": s.stats.generated_tokens,
        "decodes": s.decodes,
        "segment": s.segment,
        "segment_closed": s.segment_closed,
        "checkpoint": s.checkpoint,
        "rebuild": s.rebuild,
    })
}

/// The work of two decodes of one push.
fn sum_stats(a: StepStats, b: StepStats) -> StepStats {
    StepStats {
        audio_tokens: b.audio_tokens,
        encoder_tokens: a.encoder_tokens + b.encoder_tokens,
        reencoded_windows: a.reencoded_windows + b.reencoded_windows,
        reused_positions: a.reused_positions + b.reused_positions,
        prefill_positions: a.prefill_positions + b.prefill_positions,
        generated_tokens: a.generated_tokens + b.generated_tokens,
        truncated: a.truncated || b.truncated,
        encode_seconds: a.encode_seconds + b.encode_seconds,
        prefill_seconds: a.prefill_seconds + b.prefill_seconds,
        decode_seconds: a.decode_seconds + b.decode_seconds,
    }
}
