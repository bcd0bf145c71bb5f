//! `qwen3-speech listen`: live transcription from a microphone, an audio file or raw PCM on
//! stdin, with the streaming transcriber.
//!
//! Every source runs in its own thread and sends mono `f32` blocks at its own rate; the main
//! thread pushes them to the [`StreamingTranscriber`] (which resamples to 16 kHz) and shows
//! each event. Ctrl-C (or SIGTERM) stops the source; what was captured so far is decoded once
//! more and the final transcript is printed. A second Ctrl-C quits at once.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use qwen3_speech::engine::audio::decode_file;
use qwen3_speech::models::asr::DEFAULT_MAX_SEGMENT_SECONDS;
use qwen3_speech::{
    ComputeDType, DeviceSpec, FetchOptions, StreamEvent, StreamMode, StreamOptions,
    StreamingConfig, StreamingTranscriber,
};
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListenFormat {
    /// A live line on a terminal (settled text, then the changing tail dimmed); only the
    /// final transcript when stdout is not a terminal.
    Text,
    /// One JSON object per event (JSON lines), the last with "is_final": true.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PcmFormat {
    /// Signed 16-bit little-endian.
    S16le,
    /// 32-bit float little-endian.
    F32le,
}

#[derive(Args, Debug)]
pub struct ListenArgs {
    /// A local model folder or a hub repo id (e.g. Qwen/Qwen3-ASR-0.6B).
    #[arg(long, short = 'm')]
    model: String,
    /// Microphone to capture (name or id from `qwen3-speech devices`, or part of a name);
    /// default: the system's default input.
    #[arg(long, value_name = "D", conflicts_with = "input")]
    device_name: Option<String>,
    /// Language of the speech (name or code); detected when not given.
    #[arg(long, short = 'l')]
    language: Option<String>,
    /// Context for the model: names, terms, topic.
    #[arg(long, default_value = "")]
    context: String,
    /// Stream an audio file (WAV, FLAC, MP3, OGG, ...) instead of the microphone, or `-` for
    /// raw PCM on stdin (mono, --input-format, --input-rate).
    #[arg(long, value_name = "FILE|-")]
    input: Option<String>,
    /// Raw PCM sample format on stdin.
    #[arg(long, value_enum, default_value = "s16le")]
    input_format: PcmFormat,
    /// Raw PCM sample rate on stdin (Hz).
    #[arg(long, default_value_t = 16000)]
    input_rate: u32,
    /// Raw PCM channels on stdin (interleaved; averaged to mono).
    #[arg(long, default_value_t = 1)]
    input_channels: u16,
    /// Feed --input as fast as the model goes instead of at real-time pace.
    #[arg(long, requires = "input")]
    as_fast_as_possible: bool,
    /// Stop after this many seconds of audio (then decode the rest and exit).
    #[arg(long, value_name = "SECONDS")]
    duration: Option<f64>,
    /// Output: a live line (text) or JSON lines.
    #[arg(long, short = 'f', value_enum, default_value = "text")]
    format: ListenFormat,
    /// Audio per decode step, seconds.
    #[arg(long, default_value_t = 2.0)]
    chunk_seconds: f64,
    /// Chunks decoded without a prefix at the start.
    #[arg(long, default_value_t = 2)]
    unfixed_chunks: usize,
    /// Tokens of the previous output rolled back before it is reused as the prefix.
    #[arg(long, default_value_t = 5)]
    rollback_tokens: usize,
    /// incremental (keep finished encoder windows and decoder cache) or exact (re-encode the
    /// whole stream at every chunk, as the reference).
    #[arg(long, default_value = "incremental")]
    mode: StreamMode,
    /// Token budget per decode (default: scaled with the audio a decode covers).
    #[arg(long)]
    max_new_tokens: Option<usize>,
    /// Longest segment, seconds: a longer stream is cut at a quiet point into segments with
    /// their own prompt, so the cost per chunk stays flat; 0: never cut (the reference's
    /// algorithm, whose cost per chunk grows with the stream).
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_MAX_SEGMENT_SECONDS)]
    max_segment_seconds: f64,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "auto")]
    device: DeviceSpec,
    /// f32, bf16 or f16 (default: f32 on CPU, bf16 on CUDA).
    #[arg(long)]
    dtype: Option<ComputeDType>,
    /// No status messages on stderr.
    #[arg(long, short = 'q')]
    quiet: bool,
}

/// Audio blocks from a source thread: mono samples at the source's rate.
enum Block {
    Samples(Vec<f32>),
    /// The source ended (end of file / stdin) or failed.
    End(Option<String>),
}

pub fn run(args: ListenArgs) -> Result<ExitCode> {
    let options = StreamOptions {
        chunk_seconds: args.chunk_seconds,
        unfixed_chunks: args.unfixed_chunks,
        rollback_tokens: args.rollback_tokens,
        mode: args.mode,
        language: args.language.clone(),
        context: args.context.clone(),
        max_new_tokens: args.max_new_tokens,
        max_segment_seconds: (args.max_segment_seconds != 0.0).then_some(args.max_segment_seconds),
    };
    options.validate()?;
    if let Some(d) = args.duration
        && !(d.is_finite() && d > 0.0)
    {
        bail!("--duration must be a positive number of seconds");
    }
    let config = StreamingConfig {
        options,
        device: args.device,
        dtype: args.dtype,
        fetch: FetchOptions::from_env().with_progress(!args.quiet),
    };
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                // Second Ctrl-C: give up on the final decode.
                eprintln!();
                std::process::exit(130);
            }
        })
        .context("cannot install the Ctrl-C handler")?;
    }

    let started = Instant::now();
    let mut st = StreamingTranscriber::new(&args.model, config)
        .with_context(|| format!("cannot load model '{}'", args.model))?;
    let status = |msg: &str| {
        if !args.quiet {
            eprintln!("{msg}");
        }
    };
    status(&format!(
        "loaded {} in {:.1} s ({} mode, {} s chunks)",
        st.model_dir()
            .map(|d| d.path().display().to_string())
            .unwrap_or_default(),
        started.elapsed().as_secs_f64(),
        st.mode(),
        st.options().chunk_seconds
    ));

    let (tx, rx) = mpsc::channel::<Block>();
    // Keeps the microphone open while it is in scope.
    let mut _capture: Option<Box<dyn std::any::Any>> = None;
    let (rate, realtime) = match args.input.as_deref() {
        Some("-") => {
            let rate = args.input_rate;
            if rate == 0 {
                bail!("--input-rate must be positive");
            }
            let channels = usize::from(args.input_channels.max(1));
            let format = args.input_format;
            let pace = !args.as_fast_as_possible;
            std::thread::spawn(move || read_stdin(format, rate, channels, pace, tx));
            status(&format!(
                "reading {} mono PCM at {rate} Hz from stdin{}",
                match format {
                    PcmFormat::S16le => "s16le",
                    PcmFormat::F32le => "f32le",
                },
                if pace { " (real-time pace)" } else { "" }
            ));
            (rate, pace)
        }
        Some(path) => {
            let path = PathBuf::from(path);
            let audio =
                decode_file(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let rate = audio.sample_rate;
            let samples = audio.into_mono();
            let pace = !args.as_fast_as_possible;
            status(&format!(
                "streaming {} ({:.1} s at {rate} Hz){}",
                path.display(),
                samples.len() as f64 / f64::from(rate),
                if pace { " at real-time pace" } else { "" }
            ));
            std::thread::spawn(move || play_file(samples, rate, pace, tx));
            (rate, pace)
        }
        None => {
            let (rate, capture) = open_microphone(args.device_name.as_deref(), tx, &status)?;
            _capture = Some(capture);
            (rate, true)
        }
    };

    let mut view = View::new(args.format);
    let stdout = std::io::stdout();
    let limit = args
        .duration
        .map(|d| (d * f64::from(rate)).round() as usize);
    let mut received = 0usize;
    let mut behind_warned = false;
    // With a fast source, push at most about one chunk at a time so that Ctrl-C is noticed
    // between decodes.
    let max_push =
        ((st.options().chunk_seconds * f64::from(rate)) as usize).max(rate as usize / 10);
    let mut pending: Vec<f32> = Vec::new();
    let mut source_done = false;
    let mut source_error = None;
    while !stop.load(Ordering::SeqCst) && (!source_done || !pending.is_empty()) {
        if pending.is_empty() {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(b) => take(b, &mut pending, &mut source_done, &mut source_error),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        drain(&rx, &mut pending, &mut source_done, &mut source_error);
        if let Some(limit) = limit
            && received + pending.len() >= limit
        {
            pending.truncate(limit - received);
            source_done = true;
        }
        let n = pending.len().min(max_push);
        let piece: Vec<f32> = pending.drain(..n).collect();
        received += piece.len();
        let t0 = Instant::now();
        let events = st.push_f32(&piece, rate)?;
        let compute = t0.elapsed().as_secs_f64();
        for e in &events {
            view.event(&mut stdout.lock(), e, compute)?;
        }
        if realtime && !behind_warned && !args.quiet {
            let backlog = (pending.len() as f64) / f64::from(rate);
            if backlog > 2.0 * st.options().chunk_seconds {
                behind_warned = true;
                view.note(
                    &format!(
                        "warning: the model is slower than real time ({backlog:.1} s behind); \
                         try a larger --chunk-seconds or a GPU"
                    ),
                    &mut stdout.lock(),
                )?;
            }
        }
    }
    if let Some(e) = source_error.take() {
        view.note(
            &format!("warning: the audio source stopped: {e}"),
            &mut stdout.lock(),
        )?;
    }
    // Stop the microphone, then decode what is left.
    drop(_capture);
    let stopped = stop.load(Ordering::SeqCst);
    let t0 = Instant::now();
    let last = if stopped {
        // Whatever the source already delivered is part of the stream: one last decode over
        // all of it (not one per chunk, which could take long if the model fell behind).
        drain(&rx, &mut pending, &mut source_done, &mut source_error);
        if let Some(limit) = limit {
            pending.truncate(limit.saturating_sub(received));
        }
        st.finish_with_f32(&pending, rate)?
    } else {
        st.finish()?
    };
    view.event(&mut stdout.lock(), &last, t0.elapsed().as_secs_f64())?;
    status(&format!(
        "{:.1} s of audio{}",
        last.audio_seconds,
        if stopped { ", stopped by the user" } else { "" }
    ));
    Ok(ExitCode::SUCCESS)
}

fn take(b: Block, pending: &mut Vec<f32>, done: &mut bool, error: &mut Option<String>) {
    match b {
        Block::Samples(s) => pending.extend(s),
        Block::End(e) => {
            *done = true;
            if e.is_some() {
                *error = e;
            }
        }
    }
}

fn drain(
    rx: &Receiver<Block>,
    pending: &mut Vec<f32>,
    done: &mut bool,
    error: &mut Option<String>,
) {
    while let Ok(b) = rx.try_recv() {
        take(b, pending, done, error);
    }
}

/// Sends `samples` in 100 ms blocks, at real-time pace when `pace`.
fn play_file(samples: Vec<f32>, rate: u32, pace: bool, tx: Sender<Block>) {
    let block = (rate as usize / 10).max(1);
    let start = Instant::now();
    for (i, b) in samples.chunks(block).enumerate() {
        if pace {
            let due = Duration::from_secs_f64((i * block) as f64 / f64::from(rate));
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        if tx.send(Block::Samples(b.to_vec())).is_err() {
            return;
        }
    }
    let _ = tx.send(Block::End(None));
}

/// Reads raw PCM from stdin in 100 ms blocks (a trailing partial frame is dropped).
fn read_stdin(format: PcmFormat, rate: u32, channels: usize, pace: bool, tx: Sender<Block>) {
    let width = match format {
        PcmFormat::S16le => 2,
        PcmFormat::F32le => 4,
    };
    let frame = width * channels;
    let block = (rate as usize / 10).max(1) * frame;
    let mut stdin = std::io::stdin().lock();
    let mut buf = vec![0u8; block];
    let mut carry: Vec<u8> = Vec::new();
    let start = Instant::now();
    let mut frames_sent = 0usize;
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = tx.send(Block::End(Some(format!("stdin: {e}"))));
                return;
            }
        };
        carry.extend_from_slice(&buf[..n]);
        let whole = carry.len() / frame * frame;
        if whole == 0 {
            continue;
        }
        let mono: Vec<f32> = carry[..whole]
            .chunks_exact(frame)
            .map(|f| {
                let sum: f32 = f
                    .chunks_exact(width)
                    .map(|s| match format {
                        PcmFormat::S16le => f32::from(i16::from_le_bytes([s[0], s[1]])) / 32768.0,
                        PcmFormat::F32le => f32::from_le_bytes([s[0], s[1], s[2], s[3]]),
                    })
                    .sum();
                sum / channels as f32
            })
            .collect();
        carry.drain(..whole);
        if pace {
            let due = Duration::from_secs_f64(frames_sent as f64 / f64::from(rate));
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        frames_sent += mono.len();
        if tx.send(Block::Samples(mono)).is_err() {
            return;
        }
    }
    let _ = tx.send(Block::End(None));
}

#[cfg(feature = "audio-io")]
fn open_microphone(
    device: Option<&str>,
    tx: Sender<Block>,
    status: &dyn Fn(&str),
) -> Result<(u32, Box<dyn std::any::Any>)> {
    let (mono_tx, mono_rx) = mpsc::channel::<Vec<f32>>();
    let err_tx = tx.clone();
    let capture = crate::audio_io::start_capture(device, mono_tx, move |e| {
        let _ = err_tx.send(Block::End(Some(e)));
    })?;
    // Forward the device's blocks (kept separate so the callback only sees plain vectors).
    std::thread::spawn(move || {
        for b in mono_rx {
            if tx.send(Block::Samples(b)).is_err() {
                return;
            }
        }
    });
    status(&format!(
        "listening on {}; Ctrl-C to stop",
        capture.description
    ));
    Ok((capture.sample_rate, Box::new(capture)))
}

#[cfg(not(feature = "audio-io"))]
fn open_microphone(
    _device: Option<&str>,
    _tx: Sender<Block>,
    _status: &dyn Fn(&str),
) -> Result<(u32, Box<dyn std::any::Any>)> {
    bail!(
        "this build has no microphone support (the `audio-io` feature is off); use --input FILE or --input -"
    )
}

/// How events are shown.
struct View {
    format: ListenFormat,
    tty: bool,
    width: usize,
    /// Text already printed as finished lines (terminal mode).
    printed: String,
    /// A live line is on screen (terminal mode).
    live: bool,
}

impl View {
    fn new(format: ListenFormat) -> Self {
        let width = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse::<usize>().ok())
            .filter(|&w| w >= 20)
            .unwrap_or(80);
        View {
            format,
            tty: std::io::stdout().is_terminal(),
            width,
            printed: String::new(),
            live: false,
        }
    }

    /// A message on stderr that does not break the live line.
    fn note(&mut self, msg: &str, out: &mut impl Write) -> Result<()> {
        if self.live {
            write!(out, "\r\x1b[K")?;
            out.flush()?;
            self.live = false;
        }
        eprintln!("{msg}");
        Ok(())
    }

    fn event(&mut self, out: &mut impl Write, e: &StreamEvent, compute: f64) -> Result<()> {
        match self.format {
            ListenFormat::Json => {
                let v = json!({
                    "is_final": e.is_final,
                    "chunk": e.chunk,
                    "segment": e.segment,
                    "segment_closed": e.segment_closed,
                    "audio_seconds": (e.audio_seconds * 1000.0).round() / 1000.0,
                    "language": e.language,
                    "text": e.text,
                    "fixed": e.fixed,
                    "unfixed": e.unfixed,
                    "compute_seconds": (compute * 1000.0).round() / 1000.0,
                });
                writeln!(out, "{v}")?;
            }
            ListenFormat::Text if !self.tty => {
                if e.is_final {
                    writeln!(out, "{}", e.text)?;
                }
            }
            ListenFormat::Text => self.live_line(out, e)?,
        }
        out.flush()?;
        Ok(())
    }

    /// Terminal mode: settled text goes out as finished lines once a line's worth is there; the
    /// rest (settled, then the changing tail dimmed) is redrawn on one line.
    fn live_line(&mut self, out: &mut impl Write, e: &StreamEvent) -> Result<()> {
        let (fixed, text) = if e.is_final {
            (e.text.as_str(), e.text.as_str())
        } else {
            (e.fixed.as_str(), e.text.as_str())
        };
        if e.is_final && !text.starts_with(self.printed.as_str()) {
            // The settled text moved back after it was printed (rare): print the final text
            // whole.
            write!(out, "\r\x1b[K\n{text}\n")?;
            self.printed = text.to_string();
            self.live = false;
            return Ok(());
        }
        let Some(rest_fixed) = fixed.strip_prefix(self.printed.as_str()) else {
            // The settled text moved back (rare): show the tail as it is now.
            return self.draw(
                out,
                "",
                text.strip_prefix(self.printed.as_str()).unwrap_or(text),
                e,
            );
        };
        let mut rest_fixed = rest_fixed;
        let limit = self.width.saturating_sub(4).max(10);
        while display_width(rest_fixed) > limit {
            let cut = break_at(rest_fixed, limit);
            write!(out, "\r\x1b[K{}\n", rest_fixed[..cut].trim_end())?;
            self.printed.push_str(&rest_fixed[..cut]);
            rest_fixed = &rest_fixed[cut..];
            self.live = false;
        }
        let tail = &text[fixed.len().min(text.len())..];
        let tail = if text.starts_with(fixed) { tail } else { "" };
        if e.is_final {
            write!(out, "\r\x1b[K{rest_fixed}\n")?;
            self.printed.push_str(rest_fixed);
            self.live = false;
            return Ok(());
        }
        self.draw(out, rest_fixed, tail, e)
    }

    fn draw(
        &mut self,
        out: &mut impl Write,
        settled: &str,
        tail: &str,
        e: &StreamEvent,
    ) -> Result<()> {
        let lang = if e.language.is_empty() {
            String::new()
        } else {
            format!("[{}] ", e.language)
        };
        // Keep the line shorter than the terminal: cut from the left.
        let budget = self.width.saturating_sub(2 + display_width(&lang));
        let mut settled = settled.to_string();
        let mut tail = tail.to_string();
        while display_width(&settled) + display_width(&tail) > budget {
            if !settled.is_empty() {
                settled.remove(0);
            } else if !tail.is_empty() {
                tail.remove(0);
            } else {
                break;
            }
        }
        write!(out, "\r\x1b[K{lang}{settled}\x1b[2m{tail}\x1b[0m")?;
        self.live = true;
        Ok(())
    }
}

/// Terminal columns of `s`: 2 for East Asian wide characters, 1 otherwise.
fn display_width(s: &str) -> usize {
    s.chars()
        .map(|c| {
            let c = c as u32;
            let wide = matches!(c,
                0x1100..=0x115F | 0x2E80..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF
                | 0xFE30..=0xFE4F | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6 | 0x1F300..=0x1FAFF
                | 0x20000..=0x3FFFD);
            if wide { 2 } else { 1 }
        })
        .sum()
}

/// A byte index to end a line of at most `limit` columns: after the last space that fits,
/// else at the limit.
fn break_at(s: &str, limit: usize) -> usize {
    let mut width = 0;
    let mut last_space = None;
    let mut end = s.len();
    for (i, c) in s.char_indices() {
        let w = display_width(&s[i..i + c.len_utf8()]);
        if width + w > limit {
            end = i;
            break;
        }
        width += w;
        if c == ' ' {
            last_space = Some(i + 1);
        }
    }
    last_space.filter(|&i| i > 0).unwrap_or(end.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_and_breaks() {
        assert_eq!(display_width("abc"), 3);
        assert_eq!(display_width("今天"), 4);
        assert_eq!(break_at("hello world again", 12), 12);
        assert_eq!(
            &"hello world again"[..break_at("hello world again", 12)],
            "hello world "
        );
        assert_eq!(break_at("abcdefghij", 4), 4);
        assert_eq!(break_at("今天天气", 5), "今天".len());
    }
}
