//! Python bindings of qwen3-speech: the native module `qwen3_speech._native`.
//!
//! This layer is deliberately thin: it converts between Python objects and the facade's types,
//! releases the GIL while the engine computes, turns Ctrl-C into cancellation, and maps errors
//! to Python exceptions. The Pythonic API (reference-compatible names, numpy arrays, dataclass
//! results, lists or single items) is the pure-Python package around it (`python/qwen3_speech`).
//!
//! Audio crosses the boundary as one of three things (the Python layer picks):
//! * `str`: a file path;
//! * `bytes`: an encoded audio file held in memory (WAV, FLAC, MP3, ...);
//! * `(bytes, int)`: mono little-endian `f32` samples and their sample rate.
//!
//! Samples come back as `bytearray`s of little-endian `f32` (numpy wraps them without a copy).

use std::cell::Cell;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pyo3::create_exception;
use pyo3::exceptions::{
    PyException, PyFileNotFoundError, PyOSError, PyRuntimeError, PyStopIteration, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyList, PyString, PyTuple};

use speech::codecs::{Codes, SpeechTokenizer as CodecTokenizer};
use speech::engine::cancel::{self, CancelToken};
use speech::engine::device::Placement;
use speech::engine::tokenizer::Tokenizer as TextTokenizer;
use speech::models::asr::{
    DEFAULT_MAX_SEGMENT_SECONDS, EncoderAttention, StreamMode, StreamOptions,
};
use speech::synthesizer::StreamOptions as ChunkOptions;
use speech::{
    AlignerConfig, AudioInput, ComputeDType, DeviceSpec, Error, FetchOptions, ModelDir,
    ModelSource, SpeakRequest, StreamEvent, StreamingConfig, SynthesisOptions, SynthesizerConfig,
    TextInput, TranscribeOptions, TranscriberConfig, Transcription, VoiceReference, WordTiming,
};

create_exception!(
    _native,
    SpeechError,
    PyException,
    "Base class of the errors of qwen3_speech (besides ValueError and OSError)."
);
create_exception!(
    _native,
    AudioError,
    SpeechError,
    "Audio that cannot be used: empty, corrupt, unsupported or too short."
);
create_exception!(
    _native,
    ModelError,
    SpeechError,
    "A model folder, checkpoint, config or tokenizer that cannot be loaded."
);
create_exception!(
    _native,
    HubError,
    SpeechError,
    "Downloading a model from the Hugging Face hub failed (or it is not cached while offline)."
);

/// How often a long call re-acquires the GIL to look for Ctrl-C (and other signals).
const SIGNAL_POLL: Duration = Duration::from_millis(50);

fn to_py_err(e: Error) -> PyErr {
    match e {
        Error::Io { path, source } => {
            let message = format!("{}: {source}", path.display());
            match source.kind() {
                std::io::ErrorKind::NotFound => PyFileNotFoundError::new_err(message),
                _ => PyOSError::new_err(message),
            }
        }
        Error::Audio(m) => AudioError::new_err(m),
        Error::InvalidArgument(m) => PyValueError::new_err(m),
        e @ (Error::Model(_) | Error::Weights(_) | Error::Config { .. } | Error::Tokenizer(_)) => {
            ModelError::new_err(e.to_string())
        }
        Error::Hub(m) => HubError::new_err(m),
        Error::Cancelled => SpeechError::new_err("cancelled"),
        other => SpeechError::new_err(other.to_string()),
    }
}

/// Runs `work` without the GIL. Every [`SIGNAL_POLL`] the engine's cancellation check takes the
/// GIL back for a moment and runs the Python signal handlers; when one raises (Ctrl-C:
/// `KeyboardInterrupt`), the work stops at its next checkpoint and that exception is returned.
fn run<T: Send>(py: Python<'_>, work: impl FnOnce() -> speech::Result<T> + Send) -> PyResult<T> {
    let raised: Arc<Mutex<Option<PyErr>>> = Arc::new(Mutex::new(None));
    let slot = Arc::clone(&raised);
    let result = py.detach(move || {
        let last = Cell::new(Instant::now());
        cancel::scope(
            move || {
                if last.get().elapsed() < SIGNAL_POLL {
                    return false;
                }
                last.set(Instant::now());
                Python::attach(|py| match py.check_signals() {
                    Ok(()) => false,
                    Err(e) => {
                        *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                        true
                    }
                })
            },
            work,
        )
    });
    let pending = raised.lock().unwrap_or_else(|p| p.into_inner()).take();
    match (result, pending) {
        (Err(Error::Cancelled), Some(e)) => Err(e),
        (Err(e), _) => Err(to_py_err(e)),
        // The signal arrived after the last checkpoint: the result is complete, but the
        // exception must still reach the caller.
        (Ok(_), Some(e)) => Err(e),
        (Ok(v), None) => Ok(v),
    }
}

fn parse<T: std::str::FromStr<Err = Error>>(s: &str) -> PyResult<T> {
    s.parse().map_err(to_py_err)
}

fn device(s: &str) -> PyResult<DeviceSpec> {
    parse(s)
}

fn dtype(s: Option<&str>) -> PyResult<Option<ComputeDType>> {
    s.map(parse).transpose()
}

fn fetch_options(offline: Option<bool>) -> FetchOptions {
    let mut f = FetchOptions::from_env();
    if let Some(o) = offline {
        f.offline = o;
    }
    f
}

/// Audio handed over by the Python layer.
enum Audio {
    Path(PathBuf),
    Encoded(Vec<u8>),
    Samples(Vec<f32>, u32),
}

fn f32_from_le(bytes: &[u8]) -> PyResult<Vec<f32>> {
    if !bytes.len().is_multiple_of(4) {
        return Err(PyValueError::new_err(
            "sample buffer length is not a multiple of 4 bytes (float32)",
        ));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

fn f32_to_py<'py>(py: Python<'py>, samples: &[f32]) -> Bound<'py, PyByteArray> {
    let mut bytes = Vec::with_capacity(samples.len() * 4);
    for s in samples {
        bytes.extend_from_slice(&s.to_le_bytes());
    }
    PyByteArray::new(py, &bytes)
}

impl<'a, 'py> FromPyObject<'a, 'py> for Audio {
    type Error = PyErr;

    fn extract(ob: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if ob.cast::<PyString>().is_ok() {
            return Ok(Audio::Path(ob.extract::<PathBuf>()?));
        }
        if let Ok(b) = ob.cast::<PyBytes>() {
            return Ok(Audio::Encoded(b.as_bytes().to_vec()));
        }
        if let Ok(t) = ob.cast::<PyTuple>()
            && t.len() == 2
        {
            let data = t.get_item(0)?;
            let data = data.cast::<PyBytes>().map_err(|_| {
                PyValueError::new_err("samples must be little-endian float32 bytes")
            })?;
            let rate: i64 = t.get_item(1)?.extract()?;
            let rate = u32::try_from(rate).ok().filter(|&r| r > 0).ok_or_else(|| {
                PyValueError::new_err(format!("sample rate must be positive, got {rate}"))
            })?;
            return Ok(Audio::Samples(f32_from_le(data.as_bytes())?, rate));
        }
        Err(PyValueError::new_err(
            "audio must be a path (str), an encoded file (bytes) or (float32 bytes, sample_rate)",
        ))
    }
}

/// Audio ready for the facade: a file path or samples.
enum Decoded {
    Path(PathBuf),
    Samples(Vec<f32>, u32),
}

impl Audio {
    /// Decodes in-memory files to mono samples at their own rate (the facade takes paths and
    /// samples).
    fn decoded(self) -> speech::Result<Decoded> {
        match self {
            Audio::Encoded(data) => {
                let d = speech::engine::audio::decode_bytes(&data, None)?;
                let rate = d.sample_rate;
                Ok(Decoded::Samples(d.into_mono(), rate))
            }
            Audio::Path(p) => Ok(Decoded::Path(p)),
            Audio::Samples(s, r) => Ok(Decoded::Samples(s, r)),
        }
    }
}

impl Decoded {
    fn input(&self) -> AudioInput<'_> {
        match self {
            Decoded::Path(p) => AudioInput::Path(p),
            Decoded::Samples(s, r) => AudioInput::Samples {
                samples: s,
                sample_rate: *r,
            },
        }
    }
}

fn char_offset(text: &str, byte: usize) -> usize {
    text.get(..byte).map_or(0, |s| s.chars().count())
}

fn words_to_py<'py>(
    py: Python<'py>,
    words: &[WordTiming],
    text: &str,
) -> PyResult<Bound<'py, PyList>> {
    let items = words
        .iter()
        .map(|w| {
            (
                w.text.as_str(),
                w.start,
                w.end,
                char_offset(text, w.span.start),
                char_offset(text, w.span.end),
            )
        })
        .collect::<Vec<_>>();
    PyList::new(py, items)
}

fn transcription_to_py<'py>(py: Python<'py>, t: &Transcription) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("language", &t.language)?;
    d.set_item("text", &t.text)?;
    d.set_item("raw", &t.raw)?;
    d.set_item("duration", t.duration)?;
    d.set_item("truncated", t.truncated)?;
    let segments = t
        .segments
        .iter()
        .map(|s| (s.start, s.end, s.text.as_str(), s.language.as_str()))
        .collect::<Vec<_>>();
    d.set_item("segments", segments)?;
    match &t.words {
        Some(w) => d.set_item("words", words_to_py(py, w, &t.text)?)?,
        None => d.set_item("words", py.None())?,
    }
    d.set_item("warnings", &t.warnings)?;
    Ok(d)
}

/// A loaded Qwen3-ASR model (`speech::Transcriber`).
#[pyclass(module = "qwen3_speech._native", frozen)]
struct Transcriber {
    inner: Arc<speech::Transcriber>,
}

#[pymethods]
impl Transcriber {
    #[new]
    #[pyo3(signature = (model, *, language=None, context=String::new(), max_new_tokens=None,
        device="auto", dtype=None, attention=None, aligner=None, batch_size=4,
        chunk_seconds=None, offline=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        model: &str,
        language: Option<String>,
        context: String,
        max_new_tokens: Option<usize>,
        device: &str,
        dtype: Option<&str>,
        attention: Option<&str>,
        aligner: Option<String>,
        batch_size: usize,
        chunk_seconds: Option<f64>,
        offline: Option<bool>,
    ) -> PyResult<Self> {
        let mut config = TranscriberConfig {
            language,
            context,
            max_new_tokens,
            device: self::device(device)?,
            dtype: self::dtype(dtype)?,
            batch_size,
            fetch: fetch_options(offline),
            aligner,
            ..TranscriberConfig::default()
        };
        if let Some(a) = attention {
            config.attention = parse::<EncoderAttention>(a)?;
        }
        if let Some(c) = chunk_seconds {
            config.chunk_seconds = c;
        }
        let model = model.to_string();
        let inner = run(py, move || speech::Transcriber::new(&model, config))?;
        Ok(Transcriber {
            inner: Arc::new(inner),
        })
    }

    /// Transcribes inputs with the same options; returns one dict per input. The first input
    /// that fails raises (its index in the message when there are several).
    #[pyo3(signature = (audio, *, language=None, context=None, word_timestamps=None,
        max_new_tokens=None))]
    fn transcribe<'py>(
        &self,
        py: Python<'py>,
        audio: Vec<Audio>,
        language: Option<String>,
        context: Option<String>,
        word_timestamps: Option<bool>,
        max_new_tokens: Option<usize>,
    ) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let options = TranscribeOptions {
            language,
            context,
            max_new_tokens,
            sampling: None,
            word_timestamps,
        };
        let inner = Arc::clone(&self.inner);
        let n = audio.len();
        let results = run(py, move || {
            let decoded = audio.into_iter().map(Audio::decoded).collect::<Vec<_>>();
            // Decoding failures of in-memory files are reported in order, as the others.
            let mut out: Vec<Option<speech::Result<Transcription>>> = Vec::new();
            let mut ok = Vec::new();
            let mut where_ok = Vec::new();
            for (i, d) in decoded.into_iter().enumerate() {
                match d {
                    Ok(a) => {
                        where_ok.push(i);
                        ok.push(a);
                        out.push(None);
                    }
                    Err(e) => out.push(Some(Err(e))),
                }
            }
            let inputs: Vec<AudioInput<'_>> = ok.iter().map(Decoded::input).collect();
            let results = inner.transcribe_batch_with(&inputs, &options, |_, _| {});
            for (i, r) in where_ok.into_iter().zip(results) {
                out[i] = Some(r);
            }
            let mut done = Vec::with_capacity(out.len());
            for r in out.into_iter().flatten() {
                done.push(r?);
            }
            Ok(done)
        })
        .map_err(|e| {
            if n > 1 {
                annotate(py, e, "one of the inputs")
            } else {
                e
            }
        })?;
        results.iter().map(|t| transcription_to_py(py, t)).collect()
    }

    /// True when a forced aligner was loaded (word timestamps available).
    #[getter]
    fn has_aligner(&self) -> bool {
        self.inner.aligner().is_some()
    }

    #[getter]
    fn model_path(&self) -> String {
        self.inner.model_dir().path().display().to_string()
    }

    /// Languages the model accepts (canonical names).
    #[staticmethod]
    fn supported_languages() -> Vec<String> {
        speech::models::asr::text::SUPPORTED_LANGUAGES
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    /// A streaming session sharing this model.
    #[pyo3(signature = (*, chunk_seconds=2.0, unfixed_chunks=2, rollback_tokens=5,
        mode="incremental", language=None, context=String::new(), max_new_tokens=None,
        max_segment_seconds=Some(DEFAULT_MAX_SEGMENT_SECONDS)))]
    #[allow(clippy::too_many_arguments)]
    fn stream(
        &self,
        chunk_seconds: f64,
        unfixed_chunks: usize,
        rollback_tokens: usize,
        mode: &str,
        language: Option<String>,
        context: String,
        max_new_tokens: Option<usize>,
        max_segment_seconds: Option<f64>,
    ) -> PyResult<StreamingTranscriber> {
        let options = StreamOptions {
            chunk_seconds,
            unfixed_chunks,
            rollback_tokens,
            mode: parse::<StreamMode>(mode)?,
            language,
            context,
            max_new_tokens,
            max_segment_seconds,
        };
        let st = self.inner.stream(options).map_err(to_py_err)?;
        Ok(StreamingTranscriber {
            inner: Mutex::new(st),
        })
    }
}

/// Prefixes the message of a library error (not of KeyboardInterrupt or other signals).
fn annotate(py: Python<'_>, e: PyErr, what: &str) -> PyErr {
    let is_ours = e.is_instance_of::<SpeechError>(py)
        || e.is_instance_of::<PyValueError>(py)
        || e.is_instance_of::<PyOSError>(py);
    if !is_ours {
        return e;
    }
    let message = format!("{what}: {}", e.value(py));
    let new = if e.is_instance_of::<PyFileNotFoundError>(py) {
        PyFileNotFoundError::new_err(message)
    } else if e.is_instance_of::<PyOSError>(py) {
        PyOSError::new_err(message)
    } else if e.is_instance_of::<PyValueError>(py) {
        PyValueError::new_err(message)
    } else if e.is_instance_of::<AudioError>(py) {
        AudioError::new_err(message)
    } else if e.is_instance_of::<ModelError>(py) {
        ModelError::new_err(message)
    } else if e.is_instance_of::<HubError>(py) {
        HubError::new_err(message)
    } else {
        SpeechError::new_err(message)
    };
    new.set_cause(py, Some(e));
    new
}

fn event_to_py<'py>(py: Python<'py>, e: &StreamEvent) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("text", &e.text)?;
    d.set_item("fixed", &e.fixed)?;
    d.set_item("unfixed", &e.unfixed)?;
    d.set_item("language", &e.language)?;
    d.set_item("is_final", e.is_final)?;
    d.set_item("chunk", e.chunk)?;
    d.set_item("segment", e.segment)?;
    d.set_item("segment_closed", e.segment_closed)?;
    d.set_item("audio_seconds", e.audio_seconds)?;
    d.set_item("raw", &e.raw)?;
    Ok(d)
}

/// A live transcription session (`speech::StreamingTranscriber`).
#[pyclass(module = "qwen3_speech._native", frozen)]
struct StreamingTranscriber {
    inner: Mutex<speech::StreamingTranscriber>,
}

impl StreamingTranscriber {
    /// The session, unless another thread is using it (see [`SpeechStream::lock`]).
    fn lock(&self) -> PyResult<std::sync::MutexGuard<'_, speech::StreamingTranscriber>> {
        match self.inner.try_lock() {
            Ok(g) => Ok(g),
            Err(std::sync::TryLockError::Poisoned(p)) => Ok(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => Err(PyRuntimeError::new_err(
                "the streaming session is in use by another thread",
            )),
        }
    }

    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut speech::StreamingTranscriber) -> speech::Result<T> + Send,
    ) -> PyResult<T> {
        let mut st = self.lock()?;
        let st = &mut *st;
        run(py, move || f(st))
    }
}

#[pymethods]
impl StreamingTranscriber {
    #[new]
    #[pyo3(signature = (model, *, chunk_seconds=2.0, unfixed_chunks=2, rollback_tokens=5,
        mode="incremental", language=None, context=String::new(), max_new_tokens=None,
        max_segment_seconds=Some(DEFAULT_MAX_SEGMENT_SECONDS), device="auto", dtype=None,
        offline=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        model: &str,
        chunk_seconds: f64,
        unfixed_chunks: usize,
        rollback_tokens: usize,
        mode: &str,
        language: Option<String>,
        context: String,
        max_new_tokens: Option<usize>,
        max_segment_seconds: Option<f64>,
        device: &str,
        dtype: Option<&str>,
        offline: Option<bool>,
    ) -> PyResult<Self> {
        let config = StreamingConfig {
            options: StreamOptions {
                chunk_seconds,
                unfixed_chunks,
                rollback_tokens,
                mode: parse::<StreamMode>(mode)?,
                language,
                context,
                max_new_tokens,
                max_segment_seconds,
            },
            device: self::device(device)?,
            dtype: self::dtype(dtype)?,
            fetch: fetch_options(offline),
        };
        let model = model.to_string();
        let st = run(py, move || {
            speech::StreamingTranscriber::new(&model, config)
        })?;
        Ok(StreamingTranscriber {
            inner: Mutex::new(st),
        })
    }

    /// Pushes mono float32 samples (little-endian bytes) at `sample_rate`; returns the events
    /// of the chunks they complete.
    fn push_f32<'py>(
        &self,
        py: Python<'py>,
        samples: &[u8],
        sample_rate: u32,
    ) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let samples = f32_from_le(samples)?;
        let events = self.with(py, move |st| st.push_f32(&samples, sample_rate))?;
        events.iter().map(|e| event_to_py(py, e)).collect()
    }

    /// Ends the stream; returns the final event.
    fn finish<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let e = self.with(py, |st| st.finish())?;
        event_to_py(py, &e)
    }

    /// Ends the stream with one last decode over what is buffered plus `samples`.
    fn finish_with_f32<'py>(
        &self,
        py: Python<'py>,
        samples: &[u8],
        sample_rate: u32,
    ) -> PyResult<Bound<'py, PyDict>> {
        let samples = f32_from_le(samples)?;
        let e = self.with(py, move |st| st.finish_with_f32(&samples, sample_rate))?;
        event_to_py(py, &e)
    }

    /// Starts a new stream with the same model and options.
    fn reset(&self) -> PyResult<()> {
        self.lock()?.reset();
        Ok(())
    }

    #[getter]
    fn text(&self) -> PyResult<String> {
        Ok(self.lock()?.text().to_string())
    }

    #[getter]
    fn language(&self) -> PyResult<String> {
        Ok(self.lock()?.language().to_string())
    }

    #[getter]
    fn audio_seconds(&self) -> PyResult<f64> {
        Ok(self.lock()?.audio_seconds())
    }
}

/// A loaded Qwen3-ForcedAligner.
#[pyclass(module = "qwen3_speech._native", frozen)]
struct Aligner {
    inner: Arc<speech::Aligner>,
}

#[pymethods]
impl Aligner {
    #[new]
    #[pyo3(signature = (model, *, device="auto", dtype=None, attention=None, offline=None))]
    fn new(
        py: Python<'_>,
        model: &str,
        device: &str,
        dtype: Option<&str>,
        attention: Option<&str>,
        offline: Option<bool>,
    ) -> PyResult<Self> {
        let mut config = AlignerConfig {
            device: self::device(device)?,
            dtype: self::dtype(dtype)?,
            fetch: fetch_options(offline),
            ..AlignerConfig::default()
        };
        if let Some(a) = attention {
            config.attention = parse::<EncoderAttention>(a)?;
        }
        let model = model.to_string();
        let inner = run(py, move || speech::Aligner::new(&model, config))?;
        Ok(Aligner {
            inner: Arc::new(inner),
        })
    }

    /// Times every word of `text` in `audio`: a list of `(word, start, end, char_start,
    /// char_end)`, offsets into `text`.
    fn align<'py>(
        &self,
        py: Python<'py>,
        audio: Audio,
        text: String,
        language: String,
    ) -> PyResult<Bound<'py, PyList>> {
        let inner = Arc::clone(&self.inner);
        let t = text.clone();
        let words = run(py, move || {
            let audio = audio.decoded()?;
            inner.align(audio.input(), &t, &language)
        })?;
        words_to_py(py, &words, &text)
    }

    /// Longest audio one alignment covers, seconds.
    #[getter]
    fn max_seconds(&self) -> f64 {
        self.inner.max_seconds()
    }

    /// Languages the aligner accepts.
    fn supported_languages(&self) -> Vec<String> {
        self.inner.model().supported_languages()
    }
}

/// A loaded Qwen3-TTS model (`speech::Synthesizer`).
#[pyclass(module = "qwen3_speech._native", frozen)]
struct Synthesizer {
    inner: Arc<speech::Synthesizer>,
}

/// What the Python layer passes for one synthesis (a dict with exactly these keys).
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct Request {
    text: String,
    language: Option<String>,
    speaker: Option<String>,
    instruct: Option<String>,
    ref_audio: Option<Audio>,
    ref_text: Option<String>,
    x_vector_only: bool,
    codec_speaker: Option<Audio>,
    non_streaming_mode: Option<bool>,
    seed: u64,
    greedy: bool,
    temperature: Option<f32>,
    top_k: Option<usize>,
    top_p: Option<f32>,
    repetition_penalty: Option<f32>,
    max_frames: Option<usize>,
}

impl Request {
    fn build(self) -> speech::Result<(SpeakRequest, SynthesisOptions)> {
        let mut req = SpeakRequest::new(self.text);
        req.language = self.language;
        req.speaker = self.speaker;
        req.instruct = self.instruct;
        req.text_input = self.non_streaming_mode.map(|whole| {
            if whole {
                TextInput::Whole
            } else {
                TextInput::Streaming
            }
        });
        if let Some(a) = self.ref_audio {
            let a = a.decoded()?;
            let samples = speech::Synthesizer::load_reference(a.input())?;
            if samples.is_empty() {
                return Err(Error::Audio("the reference clip is empty".into()));
            }
            req.reference = Some(VoiceReference {
                samples_24k: samples,
                text: self.ref_text,
                x_vector_only: self.x_vector_only,
            });
        } else if self.ref_text.is_some() {
            return Err(Error::InvalidArgument(
                "ref_text was given without ref_audio".into(),
            ));
        }
        if let Some(a) = self.codec_speaker {
            let a = a.decoded()?;
            req.codec_speaker = Some(speech::Synthesizer::load_reference(a.input())?);
        }
        let options = SynthesisOptions {
            seed: self.seed,
            greedy: self.greedy,
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            repetition_penalty: self.repetition_penalty,
            max_frames: self.max_frames,
        };
        Ok((req, options))
    }
}

/// `(samples, sample_rate, frames, truncated, warnings)`.
type SpeakResult<'py> = (
    Bound<'py, PyByteArray>,
    u32,
    Vec<Vec<u32>>,
    bool,
    Vec<String>,
);

#[pymethods]
impl Synthesizer {
    #[new]
    #[pyo3(signature = (model, *, device="auto", dtype=None, offline=None))]
    fn new(
        py: Python<'_>,
        model: &str,
        device: &str,
        dtype: Option<&str>,
        offline: Option<bool>,
    ) -> PyResult<Self> {
        let config = SynthesizerConfig {
            device: self::device(device)?,
            dtype: self::dtype(dtype)?,
            fetch: fetch_options(offline),
        };
        let model = model.to_string();
        let inner = run(py, move || speech::Synthesizer::new(&model, config))?;
        Ok(Synthesizer {
            inner: Arc::new(inner),
        })
    }

    /// "custom_voice", "voice_design" or "base".
    #[getter]
    fn model_type(&self) -> String {
        self.inner.model_type().as_str().to_string()
    }

    #[getter]
    fn sample_rate(&self) -> u32 {
        self.inner.sample_rate()
    }

    fn speakers(&self) -> Vec<String> {
        self.inner.speakers()
    }

    fn languages(&self) -> Vec<String> {
        self.inner.languages()
    }

    /// Synthesizes one request (a dict of [`Request`]'s fields): `(samples, sample_rate,
    /// frames, truncated, warnings)`.
    fn speak<'py>(&self, py: Python<'py>, request: Request) -> PyResult<SpeakResult<'py>> {
        let inner = Arc::clone(&self.inner);
        let s = run(py, move || {
            let (req, options) = request.build()?;
            inner.speak(&req, &options)
        })?;
        Ok((
            f32_to_py(py, &s.audio.samples),
            s.audio.sample_rate,
            s.frames,
            s.truncated,
            s.warnings,
        ))
    }

    /// Starts a streaming synthesis: an iterator of audio chunks.
    fn stream(
        &self,
        request: Request,
        first_chunk_frames: usize,
        chunk_frames: usize,
    ) -> PyResult<SpeechStream> {
        let chunking = ChunkOptions {
            first_chunk_frames,
            chunk_frames,
        };
        if first_chunk_frames == 0 || chunk_frames == 0 {
            return Err(PyValueError::new_err(
                "audio chunks must hold at least one frame",
            ));
        }
        let inner = Arc::clone(&self.inner);
        let token = CancelToken::new();
        let worker_token = token.clone();
        // One chunk is computed ahead of the consumer.
        let (tx, rx) = sync_channel::<Message>(1);
        let handle = std::thread::Builder::new()
            .name("qwen3-speech-tts-stream".into())
            .spawn(move || {
                worker_token.scope(|| stream_worker(&inner, request, &chunking, &tx));
            })
            .map_err(|e| PyRuntimeError::new_err(format!("cannot start a thread: {e}")))?;
        Ok(SpeechStream {
            state: Mutex::new(StreamState {
                rx: Some(rx),
                handle: Some(handle),
                frames: Vec::new(),
                truncated: false,
                warnings: Vec::new(),
            }),
            token,
            sample_rate: self.inner.sample_rate(),
        })
    }
}

enum Message {
    Chunk(Vec<f32>),
    End {
        frames: Vec<Vec<u32>>,
        truncated: bool,
        warnings: Vec<String>,
    },
    Failed(Error),
}

fn stream_worker(
    synth: &speech::Synthesizer,
    request: Request,
    chunking: &ChunkOptions,
    tx: &SyncSender<Message>,
) {
    let result = (|| -> speech::Result<bool> {
        let (req, options) = request.build()?;
        let mut stream = synth.speak_stream(&req, &options, chunking)?;
        while let Some(chunk) = stream.next_chunk()? {
            if tx.send(Message::Chunk(chunk)).is_err() {
                // The consumer is gone.
                return Ok(false);
            }
        }
        let _ = tx.send(Message::End {
            frames: stream.frames().to_vec(),
            truncated: stream.truncated(),
            warnings: stream.warnings().to_vec(),
        });
        Ok(true)
    })();
    if let Err(e) = result {
        let _ = tx.send(Message::Failed(e));
    }
}

struct StreamState {
    rx: Option<Receiver<Message>>,
    handle: Option<std::thread::JoinHandle<()>>,
    frames: Vec<Vec<u32>>,
    truncated: bool,
    warnings: Vec<String>,
}

impl StreamState {
    /// Stops the worker (if running) and waits for it.
    fn close(&mut self, token: &CancelToken) {
        token.cancel();
        // Dropping the receiver unblocks a worker waiting to send.
        self.rx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Audio chunks of one synthesis, generated on a worker thread while they are consumed.
#[pyclass(module = "qwen3_speech._native", frozen)]
struct SpeechStream {
    state: Mutex<StreamState>,
    token: CancelToken,
    sample_rate: u32,
}

#[pymethods]
impl SpeechStream {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyByteArray>> {
        let mut state = self.lock()?;
        loop {
            // The receiver is not Sync: move it into the GIL-free wait and back.
            let Some(rx) = state.rx.take() else {
                return Err(PyStopIteration::new_err(()));
            };
            let (rx, got) = py.detach(move || {
                let got = rx.recv_timeout(SIGNAL_POLL);
                (rx, got)
            });
            state.rx = Some(rx);
            match got {
                Ok(Message::Chunk(c)) => return Ok(f32_to_py(py, &c)),
                Ok(Message::End {
                    frames,
                    truncated,
                    warnings,
                }) => {
                    state.frames = frames;
                    state.truncated = truncated;
                    state.warnings = warnings;
                    state.close(&self.token);
                    return Err(PyStopIteration::new_err(()));
                }
                Ok(Message::Failed(e)) => {
                    state.close(&self.token);
                    return Err(to_py_err(e));
                }
                Err(RecvTimeoutError::Timeout) => {
                    if let Err(e) = py.check_signals() {
                        let st: &mut StreamState = &mut state;
                        let token = &self.token;
                        py.detach(move || st.close(token));
                        return Err(e);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    state.close(&self.token);
                    return Err(PyStopIteration::new_err(()));
                }
            }
        }
    }

    /// Stops the synthesis (the rest of the audio is not generated).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.token.cancel();
        let mut state = self.lock()?;
        let st: &mut StreamState = &mut state;
        let token = &self.token;
        py.detach(move || st.close(token));
        Ok(())
    }

    #[getter]
    fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Codec frames generated (complete once the iterator is exhausted).
    #[getter]
    fn frames(&self) -> PyResult<Vec<Vec<u32>>> {
        Ok(self.lock()?.frames.clone())
    }

    #[getter]
    fn truncated(&self) -> PyResult<bool> {
        Ok(self.lock()?.truncated)
    }

    #[getter]
    fn warnings(&self) -> PyResult<Vec<String>> {
        Ok(self.lock()?.warnings.clone())
    }
}

impl SpeechStream {
    /// The state, unless another thread is using the stream (waiting for the lock while
    /// holding the GIL could deadlock with a thread that waits for the GIL while holding it).
    fn lock(&self) -> PyResult<std::sync::MutexGuard<'_, StreamState>> {
        match self.state.try_lock() {
            Ok(g) => Ok(g),
            Err(std::sync::TryLockError::Poisoned(p)) => Ok(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => Err(PyRuntimeError::new_err(
                "the stream is in use by another thread",
            )),
        }
    }
}

impl Drop for SpeechStream {
    fn drop(&mut self) {
        let token = self.token.clone();
        self.state
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .close(&token);
    }
}

/// The speech tokenizer (codec) of Qwen3-TTS.
#[pyclass(module = "qwen3_speech._native", frozen)]
struct SpeechTokenizer {
    inner: Arc<CodecTokenizer>,
}

#[pymethods]
impl SpeechTokenizer {
    /// Loads a speech tokenizer folder, or the `speech_tokenizer/` of a Qwen3-TTS folder
    /// (local folders or hub ids).
    #[new]
    #[pyo3(signature = (model, *, device="auto", offline=None))]
    fn new(py: Python<'_>, model: &str, device: &str, offline: Option<bool>) -> PyResult<Self> {
        let spec = self::device(device)?;
        let fetch = fetch_options(offline);
        let model = model.to_string();
        let inner = run(py, move || {
            let dir = speech::engine::hub::resolve(&ModelSource::parse(&model)?, &fetch)?;
            let placement = Placement::new(spec, None)?;
            CodecTokenizer::load(dir.path(), &placement.device)
        })?;
        Ok(SpeechTokenizer {
            inner: Arc::new(inner),
        })
    }

    /// Codes of mono audio (resampled to the tokenizer's rate): `(frames, num_quantizers)`
    /// as a flat list and the number of quantizers.
    fn encode(&self, py: Python<'_>, audio: Audio) -> PyResult<(Vec<u32>, usize)> {
        let inner = Arc::clone(&self.inner);
        run(py, move || {
            let rate = inner.sample_rate();
            let samples = match audio.decoded()? {
                Decoded::Path(p) => speech::engine::audio::load_audio(&p, rate)?,
                Decoded::Samples(s, r) if r == rate => s,
                Decoded::Samples(s, r) => speech::engine::audio::resample(&s, r, rate)?,
            };
            if samples.is_empty() {
                return Err(Error::Audio("audio is empty".into()));
            }
            let codes = inner.encode(&samples)?;
            let q = codes.num_quantizers();
            Ok((codes.as_slice().to_vec(), q))
        })
    }

    /// Audio of codes (flat, row-major `(frames, num_quantizers)`).
    fn decode<'py>(
        &self,
        py: Python<'py>,
        codes: Vec<u32>,
        num_quantizers: usize,
    ) -> PyResult<Bound<'py, PyByteArray>> {
        let inner = Arc::clone(&self.inner);
        let samples = run(py, move || {
            let codes = Codes::new(codes, num_quantizers)?;
            inner.decode(&codes)
        })?;
        Ok(f32_to_py(py, &samples))
    }

    #[getter]
    fn model_type(&self) -> &'static str {
        self.inner.model_type()
    }

    #[getter]
    fn input_sample_rate(&self) -> u32 {
        self.inner.sample_rate()
    }

    #[getter]
    fn output_sample_rate(&self) -> u32 {
        self.inner.output_sample_rate()
    }

    #[getter]
    fn num_quantizers(&self) -> usize {
        self.inner.num_quantizers()
    }

    #[getter]
    fn frame_rate(&self) -> f64 {
        self.inner.frame_rate()
    }
}

/// The text tokenizer of a model folder (Qwen2 byte-level BPE).
#[pyclass(module = "qwen3_speech._native", frozen)]
struct Tokenizer {
    inner: TextTokenizer,
}

#[pymethods]
impl Tokenizer {
    #[new]
    #[pyo3(signature = (model, *, offline=None))]
    fn new(py: Python<'_>, model: &str, offline: Option<bool>) -> PyResult<Self> {
        let fetch = fetch_options(offline);
        let model = model.to_string();
        let inner = run(py, move || {
            let dir: ModelDir = speech::engine::hub::resolve(&ModelSource::parse(&model)?, &fetch)?;
            TextTokenizer::from_dir(dir.path())
        })?;
        Ok(Tokenizer { inner })
    }

    fn encode(&self, text: &str) -> PyResult<Vec<u32>> {
        self.inner.encode(text).map_err(to_py_err)
    }

    #[pyo3(signature = (ids, skip_special_tokens=false))]
    fn decode(&self, ids: Vec<u32>, skip_special_tokens: bool) -> PyResult<String> {
        self.inner
            .decode(&ids, skip_special_tokens)
            .map_err(to_py_err)
    }

    fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    #[getter]
    fn vocab_size(&self) -> usize {
        self.inner.vocab_size()
    }
}

/// Runs a busy loop of `seconds` under the binding's Ctrl-C handling (for tests of the
/// interruption path without a model): returns the number of checkpoints passed.
#[pyfunction]
fn _busy_wait(py: Python<'_>, seconds: f64) -> PyResult<u64> {
    run(py, move || {
        let end = Instant::now() + Duration::from_secs_f64(seconds.max(0.0));
        let mut n = 0u64;
        while Instant::now() < end {
            cancel::checkpoint()?;
            n += 1;
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(n)
    })
}

/// The `qwen3_speech._native` module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", speech::VERSION)?;
    m.add("CUDA_COMPILED", speech::engine::device::cuda_compiled())?;
    m.add("SpeechError", py.get_type::<SpeechError>())?;
    m.add("AudioError", py.get_type::<AudioError>())?;
    m.add("ModelError", py.get_type::<ModelError>())?;
    m.add("HubError", py.get_type::<HubError>())?;
    m.add_class::<Transcriber>()?;
    m.add_class::<StreamingTranscriber>()?;
    m.add_class::<Aligner>()?;
    m.add_class::<Synthesizer>()?;
    m.add_class::<SpeechStream>()?;
    m.add_class::<SpeechTokenizer>()?;
    m.add_class::<Tokenizer>()?;
    m.add_function(wrap_pyfunction!(_busy_wait, m)?)?;
    Ok(())
}
