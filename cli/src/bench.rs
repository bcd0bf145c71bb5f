//! `qwen3-speech bench asr`: speed of the engine on a full-size Qwen3-ASR checkpoint, side by
//! side with the PyTorch reference measured the same way on the same machine.
//! (`qwen3-speech bench align` and `bench tts` do the same for the forced aligner and for
//! Qwen3-TTS: see [`align`] and [`tts`]; `qwen3-speech bench stream` measures streaming
//! recognition as the stream grows: see [`stream`]; `qwen3-speech bench codec25` measures the
//! 25 Hz speech tokenizer: see [`codec25`].)
//!
//! The checkpoint and the clips come from `tools/bench/make_asr_checkpoint.py` (random weights,
//! released 0.6B shapes; `<model>/bench-audio/speech_{10s,60s}.wav`). The reference numbers come
//! from `tools/bench/reference_asr.py`, run here with `--run-reference` or read from a file
//! with `--reference-json`. Both sides use the same names and definitions for every quantity
//! (see `tools/bench/README.md`):
//!
//! * `features_{10s,60s}_s`: log-mel features of the clip.
//! * `features_encoder_{10s,60s}_s`: features + audio encoder.
//! * `prefill_s`: 10 s prompt: embeddings with the audio spliced in, the decoder over the
//!   whole prompt (filling the KV cache), the head, and the argmax of the last row.
//! * `prefill_decoder_s`: of which the decoder stack + final norm.
//! * `ttft_s`: T(1), the wall time of `generate` producing one token, from the mel features
//!   (encoder + prefill + first token).
//! * `decode_per_token_s`: (T(N) - T(1)) / (N - 1), with T(N) the same call producing exactly N
//!   new tokens (greedy, KV cache, no stop token); T(1) and T(N) are timed in pairs.
//! * `lm_head_1tok_s`: the output head on one hidden row.
//! * `e2e_10s_s`: the user-facing call (`Transcriber::transcribe_samples` here,
//!   `Qwen3ASRModel.transcribe` there) on the 10 s clip, producing exactly N tokens.
//! * peak RSS of the process over the whole run (VmHWM here, `ru_maxrss` there).
//!
//! Every timed quantity is run `--warmup` times untimed, then `--repeat` times; the table shows
//! the median and the min, the JSON keeps every run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use qwen3_speech::engine::audio::{ASR_SAMPLE_RATE, load_audio};
use qwen3_speech::engine::sampling::SamplingConfig;
use qwen3_speech::engine::transformer::{Positions, Qwen3Config};
use qwen3_speech::models::asr::generate::{DecodeOptions, DecodeRequest, generate};
use qwen3_speech::{
    ComputeDType, DeviceSpec, EncoderAttention, ModelDir, Transcriber, TranscriberConfig,
};

mod align;
mod codec25;
mod stream;
mod tts;

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: BenchWhat,
}

#[derive(Subcommand, Debug)]
enum BenchWhat {
    /// Qwen3-ASR: encoder, prefill, decode, end to end and memory, against the PyTorch reference.
    Asr(AsrBenchArgs),
    /// Qwen3-ForcedAligner: alignment of a 60 s clip (features, encoder, decoder, end to end)
    /// and memory, against the PyTorch reference.
    Align(align::AlignBenchArgs),
    /// Qwen3-TTS (0.6B CustomVoice): per-frame time (talker + code predictor), codec decode,
    /// end to end for 4 s of speech and memory, against the PyTorch reference.
    Tts(tts::TtsBenchArgs),
    /// Streaming ASR: cost per pushed second and chunk-to-event latency after 10, 60 and 300 s
    /// of audio, incremental vs exact (re-encode everything) mode.
    Stream(stream::StreamBenchArgs),
    /// The 25 Hz speech tokenizer: encode (codes, x-vector) and decode (DiT + BigVGAN)
    /// real-time factors, memory and load, against the PyTorch reference.
    Codec25(codec25::Codec25BenchArgs),
}

#[derive(Args, Debug)]
struct AsrBenchArgs {
    /// Checkpoint folder written by tools/bench/make_asr_checkpoint.py.
    #[arg(long, short = 'm', default_value = "bench-models/asr-0.6b")]
    model: PathBuf,
    /// Reference numbers from an earlier `tools/bench/reference_asr.py --json FILE` run.
    #[arg(long, value_name = "FILE", conflicts_with = "run_reference")]
    reference_json: Option<PathBuf>,
    /// Run tools/bench/reference_asr.py first (Python: $QWEN3_SPEECH_REFERENCE_PYTHON, else
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
    /// Tokens generated in the decode and end-to-end measurements (forced, no early stop).
    #[arg(long, default_value_t = 40)]
    new_tokens: usize,
    /// Encoder attention of the Rust engine (the reference's transformers backend always uses
    /// full attention).
    #[arg(long, default_value = "windowed")]
    attention: EncoderAttention,
    /// Size of the buffer summed to measure the memory read bandwidth (0: as large as the
    /// weights read per decoded token).
    #[arg(long, default_value_t = 0, value_name = "MIB")]
    bandwidth_mib: usize,
    /// Write everything (both engines, every run, bandwidth, table) as JSON here.
    #[arg(long, value_name = "OUT")]
    json: Option<PathBuf>,
}

pub fn run(args: BenchArgs) -> Result<ExitCode> {
    match args.what {
        BenchWhat::Asr(a) => bench_asr(a),
        BenchWhat::Align(a) => align::bench_align(a),
        BenchWhat::Tts(a) => tts::bench_tts(a),
        BenchWhat::Stream(a) => stream::bench_stream(a),
        BenchWhat::Codec25(a) => codec25::bench_codec25(a),
    }
}

const CLIPS: [(&str, &str); 2] = [("10s", "speech_10s.wav"), ("60s", "speech_60s.wav")];
/// Bytes of one f32 parameter: the bench runs the engine in f32.
const F32_BYTES: f64 = 4.0;

fn log(msg: impl AsRef<str>) {
    eprintln!("[rust] {}", msg.as_ref());
}

// ---------------------------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Default)]
struct Stat {
    runs: Vec<f64>,
}

impl Stat {
    fn median(&self) -> f64 {
        let mut v = self.runs.clone();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => 0.5 * (v[n / 2 - 1] + v[n / 2]),
        }
    }

    fn min(&self) -> f64 {
        self.runs.iter().copied().fold(f64::NAN, f64::min)
    }

    fn to_json(&self) -> Value {
        json!({"median": self.median(), "min": self.min(), "runs": self.runs, "unit": "s"})
    }
}

/// `warmup` untimed calls, then `repeat` timed ones.
fn measure(
    name: &str,
    warmup: usize,
    repeat: usize,
    mut f: impl FnMut() -> Result<()>,
) -> Result<Stat> {
    for _ in 0..warmup {
        f()?;
    }
    let mut stat = Stat::default();
    for _ in 0..repeat {
        let t0 = Instant::now();
        f()?;
        stat.runs.push(t0.elapsed().as_secs_f64());
    }
    log(format!(
        "{name}: median {:.4} s, min {:.4} s",
        stat.median(),
        stat.min()
    ));
    Ok(stat)
}

// ---------------------------------------------------------------------------------------------
// Machine state: memory, CPU used by other processes, bandwidth
// ---------------------------------------------------------------------------------------------

/// A `/proc/self/status` field in bytes (VmHWM = peak RSS, VmRSS = current RSS).
fn proc_status_bytes(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// Linux reports CPU times in USER_HZ ticks, which is 100 on every mainstream architecture.
const USER_HZ: f64 = 100.0;

/// Busy CPU seconds of the whole machine (all cores), from `/proc/stat`.
fn machine_busy_seconds() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let v: Vec<f64> = text
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy = [0usize, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| v.get(i))
        .sum::<f64>();
    Some(busy / USER_HZ)
}

/// CPU seconds of this process and its waited-for children (the reference run).
fn own_cpu_seconds() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<f64> = rest
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // After "pid (comm) ": state(3) ... utime(14) stime(15) cutime(16) cstime(17); `rest`
    // starts at field 3, and the non-numeric state is skipped by the parse filter.
    Some((f.get(10)? + f.get(11)? + f.get(12)? + f.get(13)?) / USER_HZ)
}

fn loadavg() -> Vec<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|t| {
            t.split_whitespace()
                .take(3)
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// How busy the rest of the machine was during a stretch of the run.
struct MachineWatch {
    t0: Instant,
    busy0: Option<f64>,
    own0: Option<f64>,
    load0: Vec<f64>,
}

impl MachineWatch {
    fn start() -> Self {
        MachineWatch {
            t0: Instant::now(),
            busy0: machine_busy_seconds(),
            own0: own_cpu_seconds(),
            load0: loadavg(),
        }
    }

    /// Average number of cores used by *other* processes since `start`.
    fn background_cores(&self) -> Option<f64> {
        let wall = self.t0.elapsed().as_secs_f64();
        let busy = machine_busy_seconds()? - self.busy0?;
        let own = own_cpu_seconds()? - self.own0?;
        (wall > 0.0).then(|| ((busy - own) / wall).max(0.0))
    }

    fn report(&self) -> Value {
        json!({
            "loadavg_start": self.load0,
            "loadavg_end": loadavg(),
            "background_cpu_cores": self.background_cores(),
            "wall_s": self.t0.elapsed().as_secs_f64(),
        })
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned())
}

/// Sum of `xs` read as `S` concurrent streams (the slice cut into `S` equal parts, read 1 KiB
/// from each in turn), each with 32 independent accumulators so the compiler vectorises the
/// adds and the loop is limited by memory, not by an add chain. One core keeps only a few
/// cache-line misses in flight per stream; several streams per core let the hardware
/// prefetchers fetch more at once (on the 2-core bench machine: ~20 GB/s with one stream per
/// core, ~31 GB/s with 4 or more).
#[inline(always)]
fn sum_streams<const S: usize>(xs: &[f32]) -> f32 {
    const STEP: usize = 256;
    let per_stream = xs.len() / (S * STEP) * STEP;
    let mut acc = [[0f32; 32]; S];
    let mut i = 0;
    while i < per_stream {
        for (s, a) in acc.iter_mut().enumerate() {
            let start = s * per_stream + i;
            for c in xs[start..start + STEP].chunks_exact(32) {
                for (a, x) in a.iter_mut().zip(c) {
                    *a += *x;
                }
            }
        }
        i += STEP;
    }
    acc.iter().flatten().sum::<f32>() + xs[S * per_stream..].iter().sum::<f32>()
}

/// How a bandwidth thread reads its part of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadPattern {
    /// One sequential pass.
    OneStream,
    /// Eight interleaved sequential streams.
    EightStreams,
}

#[inline(always)]
fn sum_portable(xs: &[f32], pattern: ReadPattern) -> f32 {
    match pattern {
        ReadPattern::OneStream => sum_streams::<1>(xs),
        ReadPattern::EightStreams => sum_streams::<8>(xs),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn sum_avx512(xs: &[f32], pattern: ReadPattern) -> f32 {
    sum_portable(xs, pattern)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn sum_avx2(xs: &[f32], pattern: ReadPattern) -> f32 {
    sum_portable(xs, pattern)
}

/// [`sum_portable`] compiled for the widest vectors the CPU has (the engine's kernels detect
/// AVX-512 / AVX2 at run time too).
fn sum_f32(xs: &[f32], pattern: ReadPattern) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked above).
            return unsafe { sum_avx512(xs, pattern) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked above).
            return unsafe { sum_avx2(xs, pattern) };
        }
    }
    sum_portable(xs, pattern)
}

/// Best read bandwidth (bytes/s) over `runs` sums of `buf` (after one untimed sum), the buffer
/// split into `threads` contiguous parts summed on as many threads.
fn read_bandwidth(buf: &[f32], threads: usize, pattern: ReadPattern, runs: usize) -> f64 {
    let part = buf.len().div_ceil(threads.max(1));
    let mut best = 0f64;
    let mut sink = 0f32;
    for run in 0..=runs {
        let t0 = Instant::now();
        let total: f32 = std::thread::scope(|s| {
            let handles: Vec<_> = buf
                .chunks(part)
                .map(|c| s.spawn(move || sum_f32(std::hint::black_box(c), pattern)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0.0)).sum()
        });
        let dt = t0.elapsed().as_secs_f64();
        sink += total;
        if run > 0 {
            best = best.max(std::mem::size_of_val(buf) as f64 / dt);
        }
    }
    std::hint::black_box(sink);
    best
}

/// The machine's memory read bandwidth, measured on a buffer as large as the weights one
/// decoded token reads (so that, as for the weights, caches cannot hold a useful part of it).
#[derive(Debug, Clone)]
struct Bandwidth {
    bytes: usize,
    threads: usize,
    /// Best of both patterns with `threads` threads: the figure the bound uses.
    best: f64,
    /// One sequential stream per thread, `threads` threads.
    one_stream: f64,
    /// Best pattern on one thread.
    one_thread: f64,
}

impl Bandwidth {
    fn measure(bytes: usize, threads: usize) -> Self {
        let buf = vec![1.0f32; bytes / 4];
        let runs = 7;
        let one_stream = read_bandwidth(&buf, threads, ReadPattern::OneStream, runs);
        let streams = read_bandwidth(&buf, threads, ReadPattern::EightStreams, runs);
        let one_thread = read_bandwidth(&buf, 1, ReadPattern::EightStreams, 3);
        Bandwidth {
            bytes: buf.len() * 4,
            threads,
            best: streams.max(one_stream),
            one_stream,
            one_thread,
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "buffer_bytes": self.bytes,
            "threads": self.threads,
            "read_gb_per_s": self.best / 1e9,
            "read_gb_per_s_one_stream_per_thread": self.one_stream / 1e9,
            "read_gb_per_s_1_thread": self.one_thread / 1e9,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The comparison table every bench prints

/// One row: quantity, Rust cell, PyTorch cell, ratio cell.
type TableLine = (String, String, String, String);

/// A ratio cell: `1.23x`, or `-` when one side is missing.
fn ratio_cell(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}x"))
}

/// The memory and load rows that end every table, from `[peak RSS bytes, RSS at the end
/// bytes, load seconds]` of each engine (ratios: PyTorch over Rust, above 1 Rust is smaller or
/// faster).
fn memory_and_load_lines(rust: [Option<f64>; 3], pytorch: [Option<f64>; 3]) -> Vec<TableLine> {
    let mb = |b: f64| format!("{:.0}", b / 1e6);
    let secs = |v: f64| format!("{v:.2}");
    let labels: [(&str, &dyn Fn(f64) -> String); 3] = [
        ("peak RSS, whole run [MB]", &mb),
        ("RSS at the end of the run [MB]", &mb),
        ("load, page cache warm [s]", &secs),
    ];
    labels
        .iter()
        .zip(rust.iter().zip(pytorch.iter()))
        .map(|((label, cell), (r, p))| {
            (
                label.to_string(),
                r.map_or_else(|| "-".into(), cell),
                p.map_or_else(|| "-".into(), cell),
                ratio_cell(r.zip(*p).map(|(r, p)| p / r)),
            )
        })
        .collect()
}

/// Prints the table's header and rows, columns sized to their contents.
fn print_table(lines: &[TableLine]) {
    let w0 = lines.iter().map(|l| l.0.chars().count()).max().unwrap_or(8);
    let w1 = lines.iter().map(|l| l.1.len()).max().unwrap_or(4).max(15);
    let w2 = lines.iter().map(|l| l.2.len()).max().unwrap_or(4).max(15);
    println!(
        "{:<w0$} | {:>w1$} | {:>w2$} | pytorch/rust",
        "quantity", "rust", "pytorch"
    );
    println!("{}", "-".repeat(w0 + w1 + w2 + 22));
    for (a, b, c, d) in lines {
        println!("{a:<w0$} | {b:>w1$} | {c:>w2$} | {d:>12}");
    }
}

// ---------------------------------------------------------------------------------------------
// The reference
// ---------------------------------------------------------------------------------------------

fn reference_python() -> PathBuf {
    if let Some(p) = std::env::var_os("QWEN3_SPEECH_REFERENCE_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new("/work/venv-ref/bin/python");
    if venv.is_file() {
        venv.to_path_buf()
    } else {
        PathBuf::from("python3")
    }
}

/// `tools/bench/<name>`, or the file `$<env_var>` names.
fn reference_script(name: &str, env_var: &str) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(env_var) {
        return Ok(PathBuf::from(p));
    }
    let candidates = [
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tools/bench")
            .join(name),
        Path::new("tools/bench").join(name),
    ];
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .with_context(|| format!("tools/bench/{name} not found; set {env_var}"))
}

/// The reference's numbers: measured now (`--run-reference`), read from an earlier run's JSON
/// (`--reference-json`), or none.
fn reference_numbers(
    run: bool,
    json: Option<&Path>,
    measure: impl FnOnce() -> Result<Value>,
) -> Result<Option<Value>> {
    match (run, json) {
        (true, _) => measure().map(Some),
        (false, Some(p)) => read_json(p).map(Some),
        (false, None) => Ok(None),
    }
}

/// Writes a run's JSON (pretty, newline-terminated) and says so.
fn write_json(path: &Path, value: &Value) -> Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(value)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))?;
    log(format!("wrote {}", path.display()));
    Ok(())
}

/// Runs `tools/bench/<name>` (or `$<env_var>`) with the reference's interpreter:
/// `--model M --threads T --repeat R --warmup W <extra> --json OUT`, and reads OUT back.
fn run_reference_script(
    name: &str,
    env_var: &str,
    common: (&Path, usize, usize, usize),
    extra: &[String],
) -> Result<Value> {
    let (model, threads, repeat, warmup) = common;
    let python = reference_python();
    let script = reference_script(name, env_var)?;
    let out = std::env::temp_dir().join(format!(
        "qwen3-speech-bench-{}-{}.json",
        name.trim_end_matches(".py"),
        std::process::id()
    ));
    log(format!(
        "running the reference: {} {}",
        python.display(),
        script.display()
    ));
    let status = Command::new(&python)
        .arg(&script)
        .arg("--model")
        .arg(model)
        .args(["--threads", &threads.to_string()])
        .args(["--repeat", &repeat.to_string()])
        .args(["--warmup", &warmup.to_string()])
        .args(extra)
        .arg("--json")
        .arg(&out)
        .status()
        .with_context(|| format!("starting {}", python.display()))?;
    if !status.success() {
        bail!("the reference benchmark failed ({status})");
    }
    let value = read_json(&out)?;
    let _ = std::fs::remove_file(&out);
    Ok(value)
}

fn run_reference(args: &AsrBenchArgs, threads: usize) -> Result<Value> {
    run_reference_script(
        "reference_asr.py",
        "QWEN3_SPEECH_REFERENCE_SCRIPT",
        (&args.model, threads, args.repeat, args.warmup),
        &["--new-tokens".into(), args.new_tokens.to_string()],
    )
}

/// Refuses reference numbers taken with another token count or thread count: the ratios would
/// compare different things.
fn check_reference(r: &Value, args: &AsrBenchArgs, threads: usize) -> Result<()> {
    let get = |k: &str| r.get(k).and_then(Value::as_u64);
    if get("new_tokens") != Some(args.new_tokens as u64) {
        bail!(
            "the reference was measured with {:?} new tokens, this run uses {}: rerun it or pass --new-tokens",
            get("new_tokens"),
            args.new_tokens
        );
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

fn read_json(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// The Rust measurements
// ---------------------------------------------------------------------------------------------

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best as u32
}

/// Per-token times of the parts of one decode step, summed over the steps of one run.
#[derive(Debug, Default, Clone)]
struct StepParts {
    embed: f64,
    layers: f64,
    norm: f64,
    head: f64,
    argmax: f64,
}

fn threads_setting(args: &AsrBenchArgs) -> usize {
    threads_from(args.threads)
}

/// `--threads`, else `$RAYON_NUM_THREADS`, else every core.
fn threads_from(threads: Option<usize>) -> usize {
    if let Some(n) = threads {
        return n.max(1);
    }
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn bench_asr(args: AsrBenchArgs) -> Result<ExitCode> {
    if args.repeat == 0 || args.new_tokens < 2 {
        bail!("--repeat must be at least 1 and --new-tokens at least 2");
    }
    let threads = threads_setting(&args);
    // SAFETY: nothing else runs yet (no thread has been started, no rayon pool exists); candle
    // and rayon read this variable when they first start their thread pools.
    unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.to_string()) };

    let audio_dir = args.model.join("bench-audio");
    for (_, name) in CLIPS {
        if !audio_dir.join(name).is_file() {
            bail!(
                "{} is missing: build the bench checkpoint first with\n  \
                 /work/venv-ref/bin/python tools/bench/make_asr_checkpoint.py --out {}",
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

    // After the model is gone, so the buffer does not count in the peak RSS above.
    let weights = weight_count(&rust.text);
    let bw_bytes = if args.bandwidth_mib > 0 {
        args.bandwidth_mib << 20
    } else {
        (weights.total() * F32_BYTES) as usize
    };
    let bandwidth = Bandwidth::measure(bw_bytes, threads);
    log(format!(
        "memory read bandwidth over {:.2} GB: {:.2} GB/s with {threads} threads ({:.2} GB/s with one stream per thread, {:.2} GB/s on 1 thread)",
        bandwidth.bytes as f64 / 1e9,
        bandwidth.best / 1e9,
        bandwidth.one_stream / 1e9,
        bandwidth.one_thread / 1e9
    ));

    let report = Report {
        args: &args,
        threads,
        rust: &rust,
        reference: reference.as_ref(),
        weights,
        bandwidth: &bandwidth,
        machine_rust: &machine_rust,
    };
    let table = report.print();
    if let Some(path) = &args.json {
        let all = json!({
            "date": utc_now(),
            "cpu": cpu_model(),
            "threads": threads,
            "rust": rust.json.clone(),
            "rust_machine": machine_rust,
            "pytorch": reference,
            "bandwidth": bandwidth.to_json(),
            "weights_per_token": report.weight_bytes_json(),
            "table": table,
        });
        write_json(path, &all)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints how busy the rest of the machine was during `who`'s part ([`MachineWatch::report`]);
/// above 0.1 cores of other processes the run is marked NOT QUIET.
fn print_machine(who: &str, m: &Value) {
    let cores = m["background_cpu_cores"].as_f64();
    println!(
        "machine during {who}: other processes used {} cores on average, loadavg {} -> {}{}",
        cores.map_or_else(|| "?".to_owned(), |c| format!("{c:.2}")),
        m["loadavg_start"],
        m["loadavg_end"],
        if cores.unwrap_or(0.0) > 0.1 {
            "  << NOT QUIET: timings are not trustworthy"
        } else {
            ""
        }
    );
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SSZ`.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem / 60 % 60,
        rem % 60
    )
}

/// What the Rust side measured.
struct RustResults {
    stats: BTreeMap<String, Stat>,
    /// Decoder shape for the bytes-per-token count.
    text: Qwen3Config,
    /// Bytes of weights the Rust engine reads per decoded token, as it stores them.
    stored_weight_bytes: f64,
    /// The part of it in the decoder layers (the rest is the head).
    stored_layer_bytes: f64,
    prompt_tokens: usize,
    decode_parts: Vec<StepParts>,
    prefill_parts: Vec<StepParts>,
    peak_rss: Option<u64>,
    json: Value,
}

fn rust_measurements(args: &AsrBenchArgs, threads: usize) -> Result<RustResults> {
    let (w, r, n_new) = (args.warmup, args.repeat, args.new_tokens);
    let config = TranscriberConfig {
        device: DeviceSpec::Cpu,
        dtype: Some(ComputeDType::F32),
        max_new_tokens: Some(n_new),
        attention: args.attention,
        sampling: SamplingConfig::greedy(),
        batch_size: 1,
        ..TranscriberConfig::default()
    };
    let t0 = Instant::now();
    let transcriber = Transcriber::from_dir(ModelDir::open(&args.model)?, config)?;
    let load_s = t0.elapsed().as_secs_f64();
    log(format!(
        "loaded {} in {load_s:.1} s (f32, cpu, {threads} threads, encoder attention {:?})",
        args.model.display(),
        args.attention
    ));
    let model = transcriber.model();
    let thinker = model.thinker();
    let text = thinker.decoder().config().clone();
    let stored_weight_bytes = thinker.decode_weight_bytes() as f64;
    let stored_layer_bytes = thinker.decoder().weight_bytes() as f64;
    let n_layers = text.num_hidden_layers;

    let mut clips = BTreeMap::new();
    for (key, name) in CLIPS {
        let samples = load_audio(args.model.join("bench-audio").join(name), ASR_SAMPLE_RATE)?;
        clips.insert(key, samples);
    }
    let mut stats: BTreeMap<String, Stat> = BTreeMap::new();
    let mut clip_info = serde_json::Map::new();

    // (a) features and features + encoder.
    for (key, _) in CLIPS {
        let samples = &clips[key];
        let mel_frames = model.features(samples)?.dim(1)?;
        let audio_tokens = model.encode(samples, args.attention)?.dim(0)?;
        let prompt_tokens = model.prompt("", None, audio_tokens)?.len();
        clip_info.insert(
            key.to_owned(),
            json!({"samples": samples.len(), "mel_frames": mel_frames,
                   "audio_tokens": audio_tokens, "prompt_tokens": prompt_tokens}),
        );
        let s = measure(&format!("features {key}"), w, r, || {
            model.features(samples)?;
            Ok(())
        })?;
        stats.insert(format!("features_{key}_s"), s);
        let s = measure(&format!("features+encoder {key}"), w, r, || {
            model.encode(samples, args.attention)?;
            Ok(())
        })?;
        stats.insert(format!("features_encoder_{key}_s"), s);
    }

    // (b) prefill of the 10 s prompt.
    let samples = &clips["10s"];
    let mel = model.features(samples)?;
    let audio = thinker.encode_audio(&mel, args.attention)?;
    let prompt = model.prompt("", None, audio.dim(0)?)?;
    let len = prompt.len();
    let ids = vec![prompt.clone()];
    let positions = Positions::contiguous(1, 0, len);
    let mut prefill_parts = Vec::new();
    let mut first_token = 0u32;
    let s = measure("prefill", w, r, || {
        let mut parts = StepParts::default();
        let t = Instant::now();
        let embeds = thinker.embed_prompt(&ids, Some(&audio))?;
        parts.embed = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut cache = thinker.new_cache();
        let x = thinker
            .decoder()
            .forward_layers(&embeds, &positions, None, &mut cache, n_layers)?;
        parts.layers = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let last = thinker.decoder().norm(&x.narrow(1, len - 1, 1)?)?;
        parts.norm = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let logits = thinker.logits(&last)?;
        parts.head = t.elapsed().as_secs_f64();
        let t = Instant::now();
        first_token = argmax(&logits.flatten_all()?.to_vec1::<f32>()?);
        parts.argmax = t.elapsed().as_secs_f64();
        prefill_parts.push(parts);
        Ok(())
    })?;
    prefill_parts.drain(..w);
    stats.insert("prefill_s".into(), s);
    let embeds = thinker.embed_prompt(&ids, Some(&audio))?;
    let s = measure("prefill, decoder only", w, r, || {
        let mut cache = thinker.new_cache();
        thinker.decode(&embeds, &positions, None, &mut cache)?;
        Ok(())
    })?;
    stats.insert("prefill_decoder_s".into(), s);

    // (c) generate: time to first token and per-token decode. Each repetition times a run
    // producing 1 token and one producing exactly n_new (no stop ids), both from the mel
    // features: ttft = T(1) (encoder + prefill + first token), per token =
    // (T(n_new) - T(1)) / (n_new - 1). Only wall times of whole calls are used, so the result
    // does not depend on when `generate` reports a token relative to the next forward pass.
    let options = DecodeOptions {
        sampling: SamplingConfig::greedy(),
        stop_ids: Vec::new(),
        pad_id: model.special_tokens().endoftext,
    };
    let run_generate = |tokens: usize| -> Result<f64> {
        let t0 = Instant::now();
        let audio = thinker.encode_audio(&mel, args.attention)?;
        let request = DecodeRequest {
            prompt: model.prompt("", None, audio.dim(0)?)?,
            audio: Some(audio),
            max_new_tokens: tokens,
        };
        let out = generate(thinker, &[request], &options, |_, _| {})?;
        let dt = t0.elapsed().as_secs_f64();
        if out[0].tokens.len() != tokens {
            bail!(
                "generate produced {} tokens, expected {tokens}",
                out[0].tokens.len()
            );
        }
        if out[0].tokens[0] != first_token {
            log(format!(
                "note: generate's first token {} differs from the prefill's {first_token}",
                out[0].tokens[0]
            ));
        }
        Ok(dt)
    };
    let (mut ttft, mut per_token) = (Stat::default(), Stat::default());
    for i in 0..w + r {
        let t1 = run_generate(1)?;
        let tn = run_generate(n_new)?;
        if i >= w {
            ttft.runs.push(t1);
            per_token.runs.push((tn - t1) / (n_new - 1) as f64);
        }
    }
    log(format!(
        "ttft: median {:.4} s; decode per token: median {:.2} ms, min {:.2} ms",
        ttft.median(),
        per_token.median() * 1e3,
        per_token.min() * 1e3
    ));
    stats.insert("ttft_s".into(), ttft);
    stats.insert("decode_per_token_s".into(), per_token);

    // Where a decode step goes: the same steps as generate, with the parts timed apart.
    let mut decode_parts = Vec::new();
    for i in 0..w + r {
        let mut cache = thinker.new_cache();
        let hidden = thinker.decode(&embeds, &positions, None, &mut cache)?;
        let logits = thinker.logits(&hidden.narrow(1, len - 1, 1)?)?;
        let mut token = argmax(&logits.flatten_all()?.to_vec1::<f32>()?);
        let mut parts = StepParts::default();
        for step in 0..n_new - 1 {
            let t = Instant::now();
            let e = thinker.embed_tokens(&[vec![token]])?;
            parts.embed += t.elapsed().as_secs_f64();
            let t = Instant::now();
            let x = thinker.decoder().forward_layers(
                &e,
                &Positions::contiguous(1, len + step, 1),
                None,
                &mut cache,
                n_layers,
            )?;
            parts.layers += t.elapsed().as_secs_f64();
            let t = Instant::now();
            let x = thinker.decoder().norm(&x)?;
            parts.norm += t.elapsed().as_secs_f64();
            let t = Instant::now();
            let logits = thinker.logits(&x)?;
            parts.head += t.elapsed().as_secs_f64();
            let t = Instant::now();
            token = argmax(&logits.flatten_all()?.to_vec1::<f32>()?);
            parts.argmax += t.elapsed().as_secs_f64();
        }
        if i >= w {
            let k = (n_new - 1) as f64;
            decode_parts.push(StepParts {
                embed: parts.embed / k,
                layers: parts.layers / k,
                norm: parts.norm / k,
                head: parts.head / k,
                argmax: parts.argmax / k,
            });
        }
    }

    // The head alone on one row.
    let row = {
        let mut cache = thinker.new_cache();
        let hidden = thinker.decode(&embeds, &positions, None, &mut cache)?;
        hidden.narrow(1, len - 1, 1)?
    };
    let s = measure("lm_head, one row", w + 2, r.max(10), || {
        thinker.logits(&row)?;
        Ok(())
    })?;
    stats.insert("lm_head_1tok_s".into(), s);

    // (d) end to end through the facade, exactly n_new tokens.
    let mut truncated = true;
    let s = measure("end to end 10 s", w, r, || {
        let t = transcriber.transcribe_samples(samples, ASR_SAMPLE_RATE)?;
        truncated &= t.truncated;
        Ok(())
    })?;
    if !truncated {
        bail!(
            "the end-to-end transcription stopped before {n_new} tokens: use a checkpoint from \
             tools/bench/make_asr_checkpoint.py (its stop tokens never win the argmax)"
        );
    }
    stats.insert("e2e_10s_s".into(), s);

    let peak_rss = proc_status_bytes("VmHWM");
    let rss_end = proc_status_bytes("VmRSS");
    let parts_json = |v: &[StepParts]| {
        let f = |g: fn(&StepParts) -> f64| {
            Stat {
                runs: v.iter().map(g).collect(),
            }
            .to_json()
        };
        json!({"embed": f(|p| p.embed), "layers": f(|p| p.layers), "norm": f(|p| p.norm),
               "head": f(|p| p.head), "argmax": f(|p| p.argmax)})
    };
    let json = json!({
        "engine": "rust",
        "version": qwen3_speech::VERSION,
        "model": args.model,
        "dtype": "float32",
        "device": "cpu",
        "threads": threads,
        "attention": format!("{:?}", args.attention),
        "repeat": r,
        "warmup": w,
        "new_tokens": n_new,
        "clips": clip_info,
        "prompt_tokens": len,
        "metrics": stats.iter().map(|(k, v)| (k.clone(), v.to_json())).collect::<serde_json::Map<_, _>>(),
        "values": {"load_s": load_s, "peak_rss_bytes": peak_rss, "rss_end_bytes": rss_end},
        "prefill_breakdown": parts_json(&prefill_parts),
        "decode_breakdown_per_token": parts_json(&decode_parts),
    });
    Ok(RustResults {
        stats,
        text,
        stored_weight_bytes,
        stored_layer_bytes,
        prompt_tokens: len,
        decode_parts,
        prefill_parts,
        peak_rss,
        json,
    })
}

// ---------------------------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------------------------

struct Report<'a> {
    args: &'a AsrBenchArgs,
    threads: usize,
    rust: &'a RustResults,
    reference: Option<&'a Value>,
    weights: WeightCount,
    bandwidth: &'a Bandwidth,
    machine_rust: &'a Value,
}

/// Parameters read from memory for one decoded token (batch 1), by part.
struct WeightCount {
    layers: f64,
    norm: f64,
    head: f64,
}

impl WeightCount {
    fn total(&self) -> f64 {
        self.layers + self.norm + self.head
    }
}

/// Parameters read from memory for one decoded token (batch 1).
///
/// Every decode step multiplies one hidden row by every decoder weight, so each weight is read
/// from memory once per token (the 2.4 GB of f32 weights do not fit any cache): per layer the
/// q/k/v/o projections, gate/up/down of the MLP, the two RMSNorm weights and the per-head q/k
/// norms; then the final norm and the head, which for the tied 0.6B is the embedding matrix
/// (vocab x hidden). The embedding lookup of the one input token (one row) and the KV cache
/// (reported apart) are left out.
fn weight_count(t: &Qwen3Config) -> WeightCount {
    let (h, hd) = (t.hidden_size as f64, t.head_dim() as f64);
    let (nq, nkv) = (t.num_attention_heads as f64, t.num_kv_heads() as f64);
    let inter = t.intermediate_size as f64;
    let per_layer = h * nq * hd // q_proj
        + 2.0 * h * nkv * hd // k_proj, v_proj
        + nq * hd * h // o_proj
        + 3.0 * h * inter // gate_proj, up_proj, down_proj
        + 2.0 * h // input / post-attention RMSNorm
        + 2.0 * hd; // q_norm, k_norm
    WeightCount {
        layers: per_layer * t.num_hidden_layers as f64,
        norm: h,
        head: t.vocab_size as f64 * h,
    }
}

impl Report<'_> {
    /// KV cache bytes read per token at context `ctx` (f32).
    fn kv_bytes(&self, ctx: usize) -> f64 {
        let t = &self.rust.text;
        2.0 * t.num_hidden_layers as f64
            * t.num_kv_heads() as f64
            * t.head_dim() as f64
            * F32_BYTES
            * ctx as f64
    }

    fn weight_bytes_json(&self) -> Value {
        let w = &self.weights;
        json!({
            "params_layers": w.layers, "params_final_norm": w.norm, "params_head": w.head,
            "bytes_f32": w.total() * F32_BYTES,
            "bound_s_f32": w.total() * F32_BYTES / self.bandwidth.best,
            "rust_stored_bytes": self.rust.stored_weight_bytes,
            "rust_bound_s": self.rust.stored_weight_bytes / self.bandwidth.best,
            "kv_cache_bytes_at_mid_decode": self.kv_bytes(self.rust.prompt_tokens + self.args.new_tokens / 2),
        })
    }

    fn reference_metric(&self, key: &str) -> Option<(f64, f64)> {
        let m = self.reference?.get("metrics")?.get(key)?;
        Some((m.get("median")?.as_f64()?, m.get("min")?.as_f64()?))
    }

    fn reference_value(&self, key: &str) -> Option<f64> {
        self.reference?.get("values")?.get(key)?.as_f64()
    }

    /// Prints the table and the notes; returns the rows for the JSON.
    fn print(&self) -> Value {
        let n = self.args.new_tokens;
        let clip = |k: &str, f: &str| {
            self.rust.json["clips"][k][f]
                .as_u64()
                .map_or_else(|| "?".to_owned(), |v| v.to_string())
        };
        // (label, metric key, scale, unit)
        let timed: Vec<(String, &str, f64, &str)> = vec![
            ("features, 10 s clip".into(), "features_10s_s", 1.0, "s"),
            (
                format!(
                    "features + encoder, 10 s clip ({} audio tokens)",
                    clip("10s", "audio_tokens")
                ),
                "features_encoder_10s_s",
                1.0,
                "s",
            ),
            ("features, 60 s clip".into(), "features_60s_s", 1.0, "s"),
            (
                format!(
                    "features + encoder, 60 s clip ({} audio tokens)",
                    clip("60s", "audio_tokens")
                ),
                "features_encoder_60s_s",
                1.0,
                "s",
            ),
            (
                format!("prefill, 10 s prompt ({} tokens)", self.rust.prompt_tokens),
                "prefill_s",
                1.0,
                "s",
            ),
            (
                "  of which decoder stack + norm".into(),
                "prefill_decoder_s",
                1.0,
                "s",
            ),
            (
                "time to first token (encoder + prefill)".into(),
                "ttft_s",
                1.0,
                "s",
            ),
            (
                format!("decode, per token ({n} tokens)"),
                "decode_per_token_s",
                1e3,
                "ms",
            ),
            ("lm head, one token".into(), "lm_head_1tok_s", 1e3, "ms"),
            (
                format!("end to end, 10 s clip, {n} tokens"),
                "e2e_10s_s",
                1.0,
                "s",
            ),
        ];
        let mut rows = Vec::new();
        let mut lines = Vec::new();
        let cell = |v: Option<(f64, f64)>, scale: f64| match v {
            Some((med, min)) => format!("{:.3} ({:.3})", med * scale, min * scale),
            None => "-".to_owned(),
        };
        for (label, key, scale, unit) in &timed {
            let rs = self.rust.stats.get(*key).map(|s| (s.median(), s.min()));
            let py = self.reference_metric(key);
            let ratio = match (rs, py) {
                (Some(a), Some(b)) => Some(b.0 / a.0),
                _ => None,
            };
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
        // Derived rows: throughput, real-time factor, memory.
        let rs_tok = self.rust.stats["decode_per_token_s"].median();
        let py_tok = self.reference_metric("decode_per_token_s").map(|v| v.0);
        lines.push((
            "decode throughput [tokens/s]".into(),
            format!("{:.2}", 1.0 / rs_tok),
            py_tok.map_or_else(|| "-".into(), |v| format!("{:.2}", 1.0 / v)),
            ratio_cell(py_tok.map(|v| v / rs_tok)),
        ));
        let rs_e2e = self.rust.stats["e2e_10s_s"].median();
        let py_e2e = self.reference_metric("e2e_10s_s").map(|v| v.0);
        lines.push((
            "real-time factor, 10 s clip (e2e / 10 s)".into(),
            format!("{:.3}", rs_e2e / 10.0),
            py_e2e.map_or_else(|| "-".into(), |v| format!("{:.3}", v / 10.0)),
            ratio_cell(py_e2e.map(|v| v / rs_e2e)),
        ));
        let rs_peak = self.rust.peak_rss.map(|v| v as f64);
        let py_peak = self.reference_value("peak_rss_bytes");
        let rs_end = self.rust.json["values"]["rss_end_bytes"].as_f64();
        let py_end = self.reference_value("rss_end_bytes");
        let rs_load = self.rust.json["values"]["load_s"].as_f64();
        let py_load = self.reference_value("load_s");
        lines.extend(memory_and_load_lines(
            [rs_peak, rs_end, rs_load],
            [py_peak, py_end, py_load],
        ));

        println!();
        println!(
            "{}: Qwen3-ASR-0.6B shapes, random weights, f32, CPU ({}), {} threads; cells: median (min) of {} runs after {} warm-up",
            utc_now(),
            cpu_model(),
            self.threads,
            self.args.repeat,
            self.args.warmup
        );
        print_table(&lines);
        println!("(pytorch/rust > 1: Rust is faster or smaller)");

        // Bandwidth bound.
        let w = &self.weights;
        let bytes = w.total() * F32_BYTES;
        let bw = self.bandwidth;
        let bound = bytes / bw.best;
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
            "weights read per decoded token: {:.3} GB = ({:.1}M decoder layers + {:.0} final norm + {:.1}M head) x 4 B (f32)",
            bytes / 1e9,
            w.layers / 1e6,
            w.norm,
            w.head / 1e6
        );
        println!(
            "  (KV cache read per token at context {}: {:.1} MB more, not counted)",
            self.rust.prompt_tokens + n / 2,
            self.kv_bytes(self.rust.prompt_tokens + n / 2) / 1e6
        );
        let rust_bytes = self.rust.stored_weight_bytes;
        let rust_bound = rust_bytes / bw.best;
        println!(
            "  the Rust engine reads {:.3} GB per token: the checkpoint's bf16 weights are kept in bf16 \
             and widened to f32 in registers (lossless; all arithmetic is f32)",
            rust_bytes / 1e9
        );
        println!(
            "bandwidth bound per token: rust {:.2} ms ({:.3} GB), pytorch {:.2} ms ({:.3} GB f32)",
            rust_bound * 1e3,
            rust_bytes / 1e9,
            bound * 1e3,
            bytes / 1e9
        );
        println!(
            "rust decode / its bound = {:.2} (target <= 1.3){}",
            rs_tok / rust_bound,
            py_tok.map_or(String::new(), |p| format!(
                "; pytorch decode / its bound = {:.2}",
                p / bound
            ))
        );
        if let Some(p) = py_e2e {
            println!(
                "end to end: pytorch / rust = {:.2} (target >= 1.4)",
                p / rs_e2e
            );
        }

        // Where the Rust time goes.
        let med = |v: &[StepParts], g: fn(&StepParts) -> f64| {
            Stat {
                runs: v.iter().map(g).collect(),
            }
            .median()
        };
        let d = &self.rust.decode_parts;
        let (emb, lay, nrm, head, am) = (
            med(d, |p| p.embed),
            med(d, |p| p.layers),
            med(d, |p| p.norm),
            med(d, |p| p.head),
            med(d, |p| p.argmax),
        );
        let sum = emb + lay + nrm + head + am;
        println!();
        println!("rust decode step, per token (manual loop over the same steps, median):");
        println!(
            "  layers {:.2} ms ({:.1} GB/s effective) | lm head {:.2} ms ({:.1} GB/s) | final norm {:.3} ms | embed {:.3} ms | logits to host + argmax {:.3} ms | sum {:.2} ms",
            lay * 1e3,
            self.rust.stored_layer_bytes / lay / 1e9,
            head * 1e3,
            (self.rust.stored_weight_bytes - self.rust.stored_layer_bytes) / head / 1e9,
            nrm * 1e3,
            emb * 1e3,
            am * 1e3,
            sum * 1e3
        );
        let p = &self.rust.prefill_parts;
        println!(
            "rust prefill: embed + audio splice {:.3} s | layers {:.3} s | norm {:.4} s | head (last row) {:.4} s",
            med(p, |p| p.embed),
            med(p, |p| p.layers),
            med(p, |p| p.norm),
            med(p, |p| p.head)
        );
        println!();
        if let Some(r) = self.reference {
            print_machine("pytorch", &r["machine"]);
        }
        print_machine("rust", self.machine_rust);
        Value::Array(rows)
    }
}
