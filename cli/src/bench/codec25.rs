//! `qwen3-speech bench codec25`: speed of the 25 Hz speech tokenizer (Qwen3TTSTokenizerV1) on a
//! full-size checkpoint (random weights, the config class defaults with the digest's release
//! guesses: repeats 4, 32768 code embeddings, 16 kHz in / 24 kHz out; codecs.md §3), side by
//! side with the PyTorch reference measured the same way on the same machine.
//!
//! The checkpoint, its CAM++ `campplus.onnx` (real CAM++ shapes, random weights) and the speech
//! (`<model>/bench-audio/speech_30s.wav`, 16 kHz) come from
//! `tools/bench/make_codec25_checkpoint.py`. The reference numbers come from
//! `tools/bench/reference_codec25.py`, run here with `--run-reference` or read from a file with
//! `--reference-json`. Both sides use the same names and definitions (see
//! `tools/bench/README.md`); every clip is the first S seconds of the speech file:
//!
//! * `encode_codes_{S}s_s`: audio → codes (`Codec25::encode_codes`; `quantize_speech` there).
//! * `xvector_{S}s_s`: the speaker side: peak normalisation, kaldi fbank + CMN, CAM++ (the
//!   built-in ONNX interpreter here; onnxruntime with the 1 intra-op thread the reference
//!   hard-codes there), L2 norm, and the 80-bin reference mel (`XVectorExtractor::extract`;
//!   `extract_code` there).
//! * `encode_{S}s_s`: the user-facing encode, codes + x-vector + reference mel
//!   (`Codec25::encode`; `Qwen3TTSTokenizer.encode` there).
//! * `decode_{S}s_s`: the user-facing decode of that encoding with the reference's defaults
//!   (10 time points = 9 Euler steps, CFG 0.5, sway −1): the seeded torch-compatible noise,
//!   the DiT flow matching over codes × repeats mel frames, BigVGAN, trim. Here it is timed as
//!   the three calls `Codec25::decode` makes (`rng::torch_randn`, `generate_mel`, `vocode`), so
//!   the parts come from the same runs: `decode_dit_{S}s_s` (noise + DiT) and
//!   `decode_bigvgan_{S}s_s` (BigVGAN). There: `Qwen3TTSTokenizer.decode` after
//!   `torch.manual_seed(seed)`, with `dit.sample` and `bigvgan.forward` timed inside it.
//! * `load_s`, peak RSS of the process over the whole run (VmHWM here, `ru_maxrss` there).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::{Value, json};

use qwen3_speech::DeviceSpec;
use qwen3_speech::codecs::codec25::{Codec25, Encoded25, FlowOptions, rng};
use qwen3_speech::engine::audio::load_audio;

use super::{
    MachineWatch, Stat, cpu_model, log, measure, memory_and_load_lines, print_machine, print_table,
    proc_status_bytes, ratio_cell, reference_numbers, run_reference_script, threads_from, utc_now,
    write_json,
};

const AUDIO_FILE: &str = "bench-audio/speech_30s.wav";
const SAMPLE_RATE: u32 = 16000;

#[derive(Args, Debug)]
pub struct Codec25BenchArgs {
    /// Checkpoint folder written by tools/bench/make_codec25_checkpoint.py.
    #[arg(long, short = 'm', default_value = "bench-models/codec25")]
    model: PathBuf,
    /// Reference numbers from an earlier `tools/bench/reference_codec25.py --json FILE` run.
    #[arg(long, value_name = "FILE", conflicts_with = "run_reference")]
    reference_json: Option<PathBuf>,
    /// Run tools/bench/reference_codec25.py first (Python: $QWEN3_SPEECH_REFERENCE_PYTHON, else
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
    /// Clip lengths (whole seconds, comma-separated) for the encode measurements.
    #[arg(long, value_delimiter = ',', default_values_t = [10, 30])]
    encode_seconds: Vec<usize>,
    /// Clip lengths (whole seconds, comma-separated) for the decode measurements.
    #[arg(long, value_delimiter = ',', default_values_t = [10])]
    decode_seconds: Vec<usize>,
    /// Seed of the flow-matching noise (torch.manual_seed in the reference).
    #[arg(long, default_value_t = 1234)]
    seed: u64,
    /// Write everything (both engines, every run, table) as JSON here.
    #[arg(long, value_name = "OUT")]
    json: Option<PathBuf>,
}

pub(super) fn bench_codec25(args: Codec25BenchArgs) -> Result<ExitCode> {
    if args.repeat == 0 {
        bail!("--repeat must be at least 1");
    }
    if args.encode_seconds.is_empty() || args.encode_seconds.contains(&0) {
        bail!("--encode-seconds needs positive whole seconds");
    }
    if args.decode_seconds.contains(&0) {
        bail!("--decode-seconds needs positive whole seconds");
    }
    let threads = threads_from(args.threads);
    // SAFETY: nothing else runs yet (no thread has been started, no rayon pool exists); candle
    // and rayon read this variable when they first start their thread pools.
    unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.to_string()) };
    let audio_path = args.model.join(AUDIO_FILE);
    if !audio_path.is_file() {
        bail!(
            "{} is missing: build the bench checkpoint first with\n  \
             /work/venv-ref/bin/python tools/bench/make_codec25_checkpoint.py --out {}",
            audio_path.display(),
            args.model.display()
        );
    }
    let speech = load_audio(&audio_path, SAMPLE_RATE)?;
    let longest = args
        .encode_seconds
        .iter()
        .chain(&args.decode_seconds)
        .max()
        .copied()
        .unwrap_or(0);
    if longest * SAMPLE_RATE as usize > speech.len() {
        bail!(
            "{longest} s is longer than {} ({:.0} s)",
            audio_path.display(),
            speech.len() as f64 / f64::from(SAMPLE_RATE)
        );
    }

    let reference = reference_numbers(args.run_reference, args.reference_json.as_deref(), || {
        run_reference(&args, threads)
    })?;
    if let Some(r) = &reference {
        check_reference(r, &args, threads)?;
    }

    let watch = MachineWatch::start();
    let rust = rust_measurements(&args, threads, &speech)?;
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

fn seconds_arg(v: &[usize]) -> String {
    v.iter().map(usize::to_string).collect::<Vec<_>>().join(",")
}

fn run_reference(args: &Codec25BenchArgs, threads: usize) -> Result<Value> {
    run_reference_script(
        "reference_codec25.py",
        "QWEN3_SPEECH_REFERENCE_CODEC25_SCRIPT",
        (&args.model, threads, args.repeat, args.warmup),
        &[
            "--encode-seconds".into(),
            seconds_arg(&args.encode_seconds),
            "--decode-seconds".into(),
            seconds_arg(&args.decode_seconds),
            "--seed".into(),
            args.seed.to_string(),
        ],
    )
}

/// Refuses reference numbers taken with another thread count, other clips or another seed.
fn check_reference(r: &Value, args: &Codec25BenchArgs, threads: usize) -> Result<()> {
    let get = |k: &str| r.get(k).and_then(Value::as_u64);
    if r.get("metrics").is_none() || r.get("encode_seconds").is_none() {
        bail!("the reference JSON is not from tools/bench/reference_codec25.py");
    }
    if get("threads") != Some(threads as u64) {
        bail!(
            "the reference was measured with {:?} threads, this run uses {threads}: rerun it or pass --threads",
            get("threads")
        );
    }
    let secs = |k: &str| -> Vec<u64> {
        r[k].as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default()
    };
    let want = |v: &[usize]| v.iter().map(|&s| s as u64).collect::<Vec<_>>();
    if secs("encode_seconds") != want(&args.encode_seconds)
        || secs("decode_seconds") != want(&args.decode_seconds)
    {
        bail!(
            "the reference measured clips {:?} / {:?} s, this run {:?} / {:?}: rerun it or pass the same --encode-seconds / --decode-seconds",
            secs("encode_seconds"),
            secs("decode_seconds"),
            args.encode_seconds,
            args.decode_seconds
        );
    }
    if get("seed") != Some(args.seed) {
        log("note: the reference decoded with another seed: the waveforms will differ");
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

struct RustResults {
    stats: BTreeMap<String, Stat>,
    codes: BTreeMap<String, Vec<u32>>,
    xvectors: BTreeMap<String, Vec<f32>>,
    /// Per decoded clip: the first second of the waveform, its length, rate and mel frames.
    audio: BTreeMap<String, (Vec<f32>, usize, u32, usize)>,
    peak_rss: Option<u64>,
    json: Value,
}

fn rust_measurements(
    args: &Codec25BenchArgs,
    threads: usize,
    speech: &[f32],
) -> Result<RustResults> {
    let (w, r) = (args.warmup, args.repeat);
    let device = DeviceSpec::Cpu.open()?;
    let t0 = Instant::now();
    let codec = Codec25::load(&args.model, &device)?;
    let load_s = t0.elapsed().as_secs_f64();
    log(format!(
        "loaded {} in {load_s:.1} s (f32, cpu, {threads} threads)",
        args.model.display()
    ));
    let xv = codec
        .xvector_extractor()
        .context("the bench checkpoint has no campplus.onnx")?;
    let sr = SAMPLE_RATE as usize;
    let mut stats: BTreeMap<String, Stat> = BTreeMap::new();
    let mut codes = BTreeMap::new();
    let mut xvectors = BTreeMap::new();
    let mut encoded: BTreeMap<String, Encoded25> = BTreeMap::new();

    for &s in &args.encode_seconds {
        let key = format!("{s}s");
        let wav = &speech[..s * sr];
        let expect = wav.len() / codec.samples_per_code();
        let st = measure(&format!("codes only, {key}"), w, r, || {
            let c = codec.encode_codes(wav)?;
            if c.len() != expect {
                bail!("{} codes for {key}, expected {expect}", c.len());
            }
            Ok(())
        })?;
        stats.insert(format!("encode_codes_{key}_s"), st);
        let st = measure(&format!("x-vector + ref mel, {key}"), w, r, || {
            xv.extract(wav)?;
            Ok(())
        })?;
        stats.insert(format!("xvector_{key}_s"), st);
        let mut last = None;
        let st = measure(&format!("encode (user-facing), {key}"), w, r, || {
            last = Some(codec.encode(wav)?);
            Ok(())
        })?;
        stats.insert(format!("encode_{key}_s"), st);
        let enc = match last {
            Some(e) => e,
            None => codec.encode(wav)?,
        };
        codes.insert(key.clone(), enc.codes.clone());
        xvectors.insert(key.clone(), enc.speaker.xvector.clone());
        encoded.insert(key, enc);
    }

    let mel_dim = codec.config().decoder_config.dit_config.mel_dim;
    let mut audio = BTreeMap::new();
    for &s in &args.decode_seconds {
        let key = format!("{s}s");
        let enc = match encoded.get(&key) {
            Some(e) => e.clone(),
            None => {
                let e = codec.encode(&speech[..s * sr])?;
                codes.insert(key.clone(), e.codes.clone());
                xvectors.insert(key.clone(), e.speaker.xvector.clone());
                e
            }
        };
        let frames = codec.mel_frames(enc.codes.len());
        let keep = enc.codes.len() * codec.decode_upsample_rate();
        let (mut total, mut dit, mut vocoder) = (Stat::default(), Stat::default(), Stat::default());
        let mut wav = Vec::new();
        for i in 0..w + r {
            // What `Codec25::decode(&enc, seed)` does, with its two stages timed apart.
            let t = Instant::now();
            let noise = rng::torch_randn(args.seed, frames * mel_dim);
            let mel = codec.generate_mel(&enc, &noise, FlowOptions::default())?;
            let t_dit = t.elapsed().as_secs_f64();
            let t1 = Instant::now();
            let full = codec.vocode(&mel)?;
            wav = full.into_iter().take(keep).collect();
            let t_voc = t1.elapsed().as_secs_f64();
            let t_all = t.elapsed().as_secs_f64();
            log(format!(
                "decode run {}/{}{}, {key} ({frames} mel frames): {t_all:.3} s (DiT {t_dit:.3} s, BigVGAN {t_voc:.3} s)",
                i + 1,
                w + r,
                if i < w { " (warm-up)" } else { "" },
            ));
            if i >= w {
                total.runs.push(t_all);
                dit.runs.push(t_dit);
                vocoder.runs.push(t_voc);
            }
        }
        if wav.len() != keep {
            bail!("decode gave {} samples, expected {keep}", wav.len());
        }
        let rate = codec.output_sample_rate();
        let first: Vec<f32> = wav.iter().take(rate as usize).copied().collect();
        audio.insert(key.clone(), (first, wav.len(), rate, frames));
        stats.insert(format!("decode_{key}_s"), total);
        stats.insert(format!("decode_dit_{key}_s"), dit);
        stats.insert(format!("decode_bigvgan_{key}_s"), vocoder);
    }

    let peak_rss = proc_status_bytes("VmHWM");
    let rss_end = proc_status_bytes("VmRSS");
    let metrics: serde_json::Map<String, Value> = stats
        .iter()
        .map(|(k, v)| (k.clone(), v.to_json()))
        .collect();
    let audio_json: serde_json::Map<String, Value> = audio
        .iter()
        .map(|(k, (first, n, rate, frames))| {
            (
                k.clone(),
                json!({"samples": n, "sample_rate": rate, "mel_frames": frames, "first_second": first}),
            )
        })
        .collect();
    let json = json!({
        "engine": "rust",
        "version": qwen3_speech::VERSION,
        "model": args.model,
        "dtype": "float32",
        "device": "cpu",
        "threads": threads,
        "repeat": r,
        "warmup": w,
        "encode_seconds": args.encode_seconds,
        "decode_seconds": args.decode_seconds,
        "seed": args.seed,
        "codes": codes,
        "xvectors": xvectors,
        "audio": audio_json,
        "metrics": metrics,
        "values": {"load_s": load_s, "peak_rss_bytes": peak_rss, "rss_end_bytes": rss_end},
    });
    Ok(RustResults {
        stats,
        codes,
        xvectors,
        audio,
        peak_rss,
        json,
    })
}

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_f64().map(|x| x as f32))
                .collect()
        })
        .unwrap_or_default()
}

/// Max |a − b| and max |b| over the common length.
fn max_diff(a: &[f32], b: &[f32]) -> (f32, f32) {
    a.iter().zip(b).fold((0f32, 0f32), |(d, m), (x, y)| {
        (d.max((x - y).abs()), m.max(y.abs()))
    })
}

fn print_report(
    args: &Codec25BenchArgs,
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
    let cell = |v: Option<(f64, f64)>| match v {
        Some((med, min)) => format!("{med:.3} ({min:.3})"),
        None => "-".to_owned(),
    };
    let mut rows = Vec::new();
    let mut lines: Vec<(String, String, String, String)> = Vec::new();
    let mut timed = |label: String, key: String, lines: &mut Vec<_>| {
        let rs = rust.stats.get(&key).map(|s| (s.median(), s.min()));
        let py = ref_metric(&key);
        let ratio = rs.zip(py).map(|(a, b)| b.0 / a.0);
        lines.push((
            format!("{label} [s]"),
            cell(rs),
            cell(py),
            ratio_cell(ratio),
        ));
        rows.push(json!({"quantity": label, "key": key, "unit": "s",
            "rust_median": rs.map(|v| v.0), "rust_min": rs.map(|v| v.1),
            "pytorch_median": py.map(|v| v.0), "pytorch_min": py.map(|v| v.1),
            "speedup": ratio}));
    };
    for &s in &args.encode_seconds {
        let key = format!("{s}s");
        let n = rust.codes.get(&key).map_or(0, Vec::len);
        timed(
            format!("codes only, {s} s clip ({n} codes)"),
            format!("encode_codes_{key}_s"),
            &mut lines,
        );
        timed(
            format!("x-vector + reference mel, {s} s clip"),
            format!("xvector_{key}_s"),
            &mut lines,
        );
        timed(
            format!("encode (codes + x-vector + ref mel), {s} s clip"),
            format!("encode_{key}_s"),
            &mut lines,
        );
    }
    for &s in &args.decode_seconds {
        let key = format!("{s}s");
        let frames = rust.audio.get(&key).map_or(0, |a| a.3);
        timed(
            format!("decode, {s} s clip ({frames} mel frames, 9 steps, CFG)"),
            format!("decode_{key}_s"),
            &mut lines,
        );
        timed(
            "  of which DiT flow matching".into(),
            format!("decode_dit_{key}_s"),
            &mut lines,
        );
        timed(
            "  of which BigVGAN".into(),
            format!("decode_bigvgan_{key}_s"),
            &mut lines,
        );
    }
    let mut rtf = |label: String, key: String, secs: f64, lines: &mut Vec<_>| {
        let rs = rust.stats.get(&key).map(Stat::median);
        let py = ref_metric(&key).map(|v| v.0);
        lines.push((
            label.clone(),
            rs.map_or_else(|| "-".into(), |v| format!("{:.3}", v / secs)),
            py.map_or_else(|| "-".into(), |v| format!("{:.3}", v / secs)),
            ratio_cell(rs.zip(py).map(|(a, b)| b / a)),
        ));
        rows.push(json!({"quantity": label, "key": key, "unit": "1",
            "rust_rtf": rs.map(|v| v / secs), "pytorch_rtf": py.map(|v| v / secs)}));
    };
    for &s in &args.encode_seconds {
        rtf(
            format!("real-time factor, encode codes only ({s} s)"),
            format!("encode_codes_{s}s_s"),
            s as f64,
            &mut lines,
        );
        rtf(
            format!("real-time factor, encode ({s} s)"),
            format!("encode_{s}s_s"),
            s as f64,
            &mut lines,
        );
    }
    for &s in &args.decode_seconds {
        rtf(
            format!("real-time factor, decode ({s} s)"),
            format!("decode_{s}s_s"),
            s as f64,
            &mut lines,
        );
    }
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
    rows.push(json!({"quantity": "memory and load",
        "rust_peak_rss_bytes": rs_peak, "pytorch_peak_rss_bytes": py_peak,
        "rust_rss_end_bytes": rs_end, "pytorch_rss_end_bytes": py_end,
        "rust_load_s": rs_load, "pytorch_load_s": py_load}));

    println!();
    println!(
        "{}: Qwen3-TTS 25 Hz tokenizer, config class defaults (repeats 4, 32768 code embeddings), \
         random weights, f32, CPU ({}), {threads} threads; cells: median (min) of {} runs after {} warm-up",
        utc_now(),
        cpu_model(),
        args.repeat,
        args.warmup
    );
    print_table(&lines);
    println!(
        "(pytorch/rust > 1: Rust is faster or smaller; the reference runs CAM++ in onnxruntime \
         with 1 thread, hard-coded in its XVectorExtractor)"
    );

    // Do both engines compute the same thing?
    let mut agreement = Vec::new();
    if let Some(r) = reference {
        for (key, rc) in &rust.codes {
            let py: Vec<u32> = r["codes"][key.as_str()]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|c| c.as_u64().map(|c| c as u32))
                        .collect()
                })
                .unwrap_or_default();
            let equal = rc.iter().zip(&py).filter(|(a, b)| a == b).count();
            let same_prefix = rc.iter().zip(&py).take_while(|(a, b)| a == b).count();
            println!(
                "codes, {key} clip: {equal} of {} equal in both engines (the first {same_prefix} identical{})",
                rc.len(),
                if py.len() == rc.len() {
                    String::new()
                } else {
                    format!("; the reference has {} codes", py.len())
                }
            );
            let xr = rust.xvectors.get(key).cloned().unwrap_or_default();
            let xp = f32s(&r["xvectors"][key.as_str()]);
            let (d, _) = max_diff(&xr, &xp);
            let dot: f32 = xr.iter().zip(&xp).map(|(a, b)| a * b).sum();
            println!(
                "x-vector, {key} clip: max |rust - pytorch| = {d:.2e}, cosine {dot:.7} (both L2-normalised)"
            );
            agreement.push(json!({"clip": key, "codes_equal": equal, "codes": rc.len(),
                "codes_identical_prefix": same_prefix, "xvector_max_abs_diff": d, "xvector_cosine": dot}));
        }
        for (key, (first, n, rate, _)) in &rust.audio {
            let py = f32s(&r["audio"][key.as_str()]["first_second"]);
            let (d, m) = max_diff(first, &py);
            println!(
                "decoded waveform, {key} clip: {n} samples at {rate} Hz (reference {}); first second: max |rust - pytorch| = {d:.2e} (max |pytorch| {m:.3})",
                r["audio"][key.as_str()]["samples"]
            );
            agreement.push(json!({"clip": key, "waveform_first_second_max_abs_diff": d,
                "waveform_first_second_max_abs": m}));
        }
    }
    rows.push(json!({"quantity": "agreement", "values": agreement}));
    println!();
    if let Some(r) = reference {
        print_machine("pytorch", &r["machine"]);
    }
    print_machine("rust", machine_rust);
    Value::Array(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_diff_is_over_the_common_length() {
        let (d, m) = max_diff(&[1.0, 2.0, 3.0], &[1.5, -2.0]);
        assert_eq!(d, 4.0);
        assert_eq!(m, 2.0);
        assert_eq!(max_diff(&[], &[1.0]), (0.0, 0.0));
    }

    #[test]
    fn seconds_are_passed_on_as_a_list() {
        assert_eq!(seconds_arg(&[10, 30]), "10,30");
        assert_eq!(seconds_arg(&[1]), "1");
    }

    #[test]
    fn f32s_reads_numbers_and_skips_the_rest() {
        let v = json!([1.0, "x", 2.5]);
        assert_eq!(f32s(&v), vec![1.0, 2.5]);
        assert!(f32s(&json!(null)).is_empty());
    }
}
