//! Log-mel front ends.
//!
//! * [`WhisperMel`]: the `transformers.WhisperFeatureExtractor` features that Qwen3-ASR and the
//!   ForcedAligner consume (16 kHz, n_fft 400, hop 160, 128 Slaney mels, log10, dynamic range of
//!   8 decades below the clip's maximum, `(x + 4) / 4`); with [`WhisperMelConfig`] also the
//!   same front end with another bin count, librosa's filter bank and torch's float32 magnitude
//!   (the Qwen3-TTS 25 Hz tokenizer's `get_mel_audio`).
//! * [`SpeakerMel`]: the 24 kHz mel of the Qwen3-TTS speaker encoder (n_fft 1024, hop 256,
//!   128 Slaney mels up to 12 kHz, magnitude spectrum, natural log).
//!
//! Both return a [`MelSpectrogram`] laid out `(n_mels, n_frames)` row-major, the layout of the
//! reference tensors.
//!
//! Numerics: the reference runs the STFT in float32 (torch). Here every frame is transformed and
//! accumulated in float64 with the float32 window and float32 filter bank of the reference, and
//! only the result is rounded to f32. The output is therefore (up to one-ulp differences in a
//! few window entries, see [`torch_hann_window`]) the exact value the reference approximates; the
//! remaining difference is the reference's own float32 rounding. Measured on the golden
//! fixtures (`engine/tests/golden_audio.rs`): Whisper features within 4e-5 of transformers; the
//! speaker mel within 3e-4 of qwen_tts, which is the size of qwen_tts' own float32 error in its
//! lowest-energy bins (its output differs from a float64 evaluation of the same formula by as
//! much).
//!
//! Performance: one FFT plan, window and sparse filter bank per extractor, no allocation per
//! frame. Reuse an extractor for many clips; 60 s of 16 kHz audio takes a few milliseconds.

use std::sync::Arc;

use candle_core::{Device, Tensor};
use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

use crate::error::{Error, Result};

/// Sample rate the Whisper front end expects (Hz).
pub const WHISPER_SAMPLE_RATE: u32 = 16_000;
/// Whisper STFT size.
pub const WHISPER_N_FFT: usize = 400;
/// Whisper hop length.
pub const WHISPER_HOP: usize = 160;
/// Number of Whisper mel bins (Qwen3-ASR uses 128).
pub const WHISPER_N_MELS: usize = 128;
/// Number of one-sided frequency bins, `n_fft / 2 + 1`.
pub const WHISPER_N_FREQS: usize = WHISPER_N_FFT / 2 + 1;
/// Fewest samples the Whisper front end accepts: the centred STFT reflect-pads 200 samples on
/// each side, which needs at least 201 samples (the reference raises an error below that).
pub const WHISPER_MIN_SAMPLES: usize = WHISPER_N_FFT / 2 + 1;

/// Sample rate of the speaker encoder (Hz).
pub const SPEAKER_SAMPLE_RATE: u32 = 24_000;
/// Speaker-encoder STFT size (and window length).
pub const SPEAKER_N_FFT: usize = 1024;
/// Speaker-encoder hop length.
pub const SPEAKER_HOP: usize = 256;
/// Number of speaker-encoder mel bins.
pub const SPEAKER_N_MELS: usize = 128;
/// Number of one-sided frequency bins, `n_fft / 2 + 1`.
pub const SPEAKER_N_FREQS: usize = SPEAKER_N_FFT / 2 + 1;
/// Upper edge of the speaker mel filter bank (Hz).
pub const SPEAKER_FMAX: f64 = 12_000.0;
/// Reflect padding on each side, `(n_fft - hop) / 2`.
pub const SPEAKER_PAD: usize = (SPEAKER_N_FFT - SPEAKER_HOP) / 2;
/// Fewest samples the speaker mel accepts (reflect padding of 384 needs more than 384 samples).
pub const SPEAKER_MIN_SAMPLES: usize = SPEAKER_PAD + 1;

/// A mel spectrogram, `(n_mels, n_frames)` row-major: `data[m * n_frames + t]`.
#[derive(Debug, Clone, PartialEq)]
pub struct MelSpectrogram {
    pub data: Vec<f32>,
    pub n_mels: usize,
    pub n_frames: usize,
}

impl MelSpectrogram {
    /// Value of mel bin `m` at frame `t`, `None` out of range.
    pub fn get(&self, m: usize, t: usize) -> Option<f32> {
        if m < self.n_mels && t < self.n_frames {
            self.data.get(m * self.n_frames + t).copied()
        } else {
            None
        }
    }

    /// The features as an `f32` tensor of shape `(n_mels, n_frames)` on `device`.
    pub fn to_tensor(&self, device: &Device) -> Result<Tensor> {
        Ok(Tensor::from_slice(
            &self.data,
            (self.n_mels, self.n_frames),
            device,
        )?)
    }

    /// Consume into an `f32` tensor of shape `(n_mels, n_frames)` on `device`.
    pub fn into_tensor(self, device: &Device) -> Result<Tensor> {
        Ok(Tensor::from_vec(
            self.data,
            (self.n_mels, self.n_frames),
            device,
        )?)
    }
}

// ---------------------------------------------------------------------------------------------
// Filter banks

/// Periodic Hann window as `torch.hann_window(n)` computes it in float32: the angle
/// `i * f32(2 pi / n)` is formed in f32, its cosine rounded to f32, then `0.5 - 0.5 cos`. This
/// reproduces torch's table exactly except for a few entries one f32 ulp apart (torch's
/// vectorised cosine is not always correctly rounded). It matters for the lowest-energy bins: a
/// window rounded differently leaks about 1e-7 of the frame energy into every bin.
pub fn torch_hann_window(n: usize) -> Vec<f32> {
    let step = (2.0 * std::f64::consts::PI / n as f64) as f32;
    (0..n)
        .map(|i| {
            let angle = i as f32 * step;
            let c = f64::from(angle).cos() as f32;
            c * -0.5 + 0.5
        })
        .collect()
}

fn hann_periodic(n: usize) -> Vec<f64> {
    torch_hann_window(n).into_iter().map(f64::from).collect()
}

/// `np.linspace(start, stop, num)` (endpoint included), bit-for-bit.
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 0 {
        return Vec::new();
    }
    if num == 1 {
        return vec![start];
    }
    let step = (stop - start) / (num - 1) as f64;
    let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    v[num - 1] = stop;
    v
}

/// Slaney mel scale, `transformers.audio_utils.hertz_to_mel(mel_scale="slaney")` arithmetic.
fn hz_to_mel_hf(f: f64) -> f64 {
    if f >= 1000.0 {
        15.0 + (f / 1000.0).ln() * (27.0 / 6.4f64.ln())
    } else {
        3.0 * f / 200.0
    }
}

/// Inverse Slaney mel scale, `transformers.audio_utils.mel_to_hertz(mel_scale="slaney")`.
fn mel_to_hz_hf(m: f64) -> f64 {
    if m >= 15.0 {
        1000.0 * ((6.4f64.ln() / 27.0) * (m - 15.0)).exp()
    } else {
        200.0 * m / 3.0
    }
}

/// The Whisper mel filter bank exactly as `transformers.audio_utils.mel_filter_bank(
/// num_frequency_bins=201, num_mel_filters=128, min_frequency=0, max_frequency=8000,
/// sampling_rate=16000, norm="slaney", mel_scale="slaney")` computes it, in float64.
///
/// Layout `(201, 128)` row-major (`[k * 128 + m]`), the layout of
/// `WhisperFeatureExtractor.mel_filters`. The feature extractor casts it to f32 before use
/// (see [`WhisperMel::filters`]).
pub fn whisper_mel_filters() -> Vec<f64> {
    transformers_mel_filters(WHISPER_N_MELS)
}

/// [`whisper_mel_filters`] with `n_mels` filters, layout `(201, n_mels)`.
fn transformers_mel_filters(n_mels: usize) -> Vec<f64> {
    let n_freqs = WHISPER_N_FREQS;
    let mel_min = hz_to_mel_hf(0.0);
    let mel_max = hz_to_mel_hf(8000.0);
    let filter_freqs: Vec<f64> = linspace(mel_min, mel_max, n_mels + 2)
        .into_iter()
        .map(mel_to_hz_hf)
        .collect();
    let fft_freqs = linspace(0.0, f64::from(WHISPER_SAMPLE_RATE / 2), n_freqs);
    let diff: Vec<f64> = filter_freqs.windows(2).map(|w| w[1] - w[0]).collect();
    let mut out = vec![0f64; n_freqs * n_mels];
    for (k, &fk) in fft_freqs.iter().enumerate() {
        for m in 0..n_mels {
            let down = -(filter_freqs[m] - fk) / diff[m];
            let up = (filter_freqs[m + 2] - fk) / diff[m + 1];
            let tri = 0f64.max(down.min(up));
            let enorm = 2.0 / (filter_freqs[m + 2] - filter_freqs[m]);
            out[k * n_mels + m] = tri * enorm;
        }
    }
    out
}

/// Slaney mel scale, `librosa.hz_to_mel(htk=False)` arithmetic.
fn hz_to_mel_librosa(f: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if f >= min_log_hz {
        min_log_mel + (f / min_log_hz).ln() / logstep
    } else {
        f / f_sp
    }
}

/// Inverse Slaney mel scale, `librosa.mel_to_hz(htk=False)` arithmetic.
fn mel_to_hz_librosa(m: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if m >= min_log_mel {
        min_log_hz * (logstep * (m - min_log_mel)).exp()
    } else {
        0.0 + f_sp * m
    }
}

/// `librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax, htk=False, norm="slaney")` (float32, as
/// librosa returns it, including its float32 rounding before the Slaney scaling).
///
/// Layout `(n_mels, n_fft / 2 + 1)` row-major, librosa's layout.
pub fn librosa_mel_filters(
    sample_rate: u32,
    n_fft: usize,
    n_mels: usize,
    fmin: f64,
    fmax: f64,
) -> Vec<f32> {
    let n_freqs = n_fft / 2 + 1;
    // np.fft.rfftfreq(n_fft, d=1/sr)
    let d = 1.0 / f64::from(sample_rate);
    let val = 1.0 / (n_fft as f64 * d);
    let fft_freqs: Vec<f64> = (0..n_freqs).map(|k| k as f64 * val).collect();
    let mel_f: Vec<f64> = linspace(hz_to_mel_librosa(fmin), hz_to_mel_librosa(fmax), n_mels + 2)
        .into_iter()
        .map(mel_to_hz_librosa)
        .collect();
    let fdiff: Vec<f64> = mel_f.windows(2).map(|w| w[1] - w[0]).collect();
    let mut out = vec![0f32; n_mels * n_freqs];
    for m in 0..n_mels {
        let enorm = 2.0 / (mel_f[m + 2] - mel_f[m]);
        for (k, &fk) in fft_freqs.iter().enumerate() {
            let lower = -(mel_f[m] - fk) / fdiff[m];
            let upper = (mel_f[m + 2] - fk) / fdiff[m + 1];
            let w = 0f64.max(lower.min(upper)) as f32;
            out[m * n_freqs + k] = (f64::from(w) * enorm) as f32;
        }
    }
    out
}

/// The speaker-encoder filter bank: `librosa.filters.mel(sr=24000, n_fft=1024, n_mels=128,
/// fmin=0, fmax=12000)`, layout `(128, 513)` row-major.
pub fn speaker_mel_filters() -> Vec<f32> {
    librosa_mel_filters(
        SPEAKER_SAMPLE_RATE,
        SPEAKER_N_FFT,
        SPEAKER_N_MELS,
        0.0,
        SPEAKER_FMAX,
    )
}

/// A mel filter bank stored per mel as its non-zero run of weights.
#[derive(Debug, Clone)]
struct SparseFilters {
    /// `(first bin, offset into weights, count)` per mel.
    spans: Vec<(usize, usize, usize)>,
    weights: Vec<f64>,
}

impl SparseFilters {
    /// From a dense bank where `w(m, k)` gives the weight of bin `k` in mel `m`.
    fn new(n_mels: usize, n_freqs: usize, w: impl Fn(usize, usize) -> f32) -> Self {
        let mut spans = Vec::with_capacity(n_mels);
        let mut weights = Vec::new();
        for m in 0..n_mels {
            let first = (0..n_freqs).find(|&k| w(m, k) != 0.0);
            let last = (0..n_freqs).rev().find(|&k| w(m, k) != 0.0);
            match (first, last) {
                (Some(a), Some(b)) => {
                    spans.push((a, weights.len(), b + 1 - a));
                    weights.extend((a..=b).map(|k| f64::from(w(m, k))));
                }
                _ => spans.push((0, weights.len(), 0)),
            }
        }
        Self { spans, weights }
    }

    #[inline]
    fn apply(&self, m: usize, spec: &[f64]) -> f64 {
        let (first, off, n) = self.spans[m];
        let w = &self.weights[off..off + n];
        let s = &spec[first..first + n];
        w.iter().zip(s).map(|(a, b)| a * b).sum()
    }
}

/// Reflect-pad (numpy/torch "reflect": the edge sample is not repeated) by `pad` on each side.
/// Requires `pad < x.len()`.
fn reflect_pad(x: &[f32], pad: usize, out: &mut Vec<f32>) {
    let n = x.len();
    out.clear();
    out.reserve(n + 2 * pad);
    out.extend((1..=pad).rev().map(|i| x[i]));
    out.extend_from_slice(x);
    out.extend((0..pad).map(|i| x[n - 2 - i]));
}

/// One STFT frame: window, FFT, per-bin spectrum callback. Shared by both extractors.
struct Stft {
    fft: Arc<dyn RealToComplex<f64>>,
    window: Vec<f64>,
    frame: Vec<f64>,
    spectrum: Vec<Complex<f64>>,
    scratch: Vec<Complex<f64>>,
}

impl Stft {
    fn new(n_fft: usize) -> Self {
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(n_fft);
        let frame = fft.make_input_vec();
        let spectrum = fft.make_output_vec();
        let scratch = fft.make_scratch_vec();
        Self {
            fft,
            window: hann_periodic(n_fft),
            frame,
            spectrum,
            scratch,
        }
    }

    /// Window `samples` (exactly `n_fft` long) and transform; the spectrum is in `self.spectrum`.
    fn run(&mut self, samples: &[f32]) -> Result<()> {
        for ((f, &x), &w) in self.frame.iter_mut().zip(samples).zip(&self.window) {
            *f = f64::from(x) * w;
        }
        self.fft
            .process_with_scratch(&mut self.frame, &mut self.spectrum, &mut self.scratch)
            .map_err(|e| Error::Audio(format!("FFT failed: {e}")))
    }
}

// ---------------------------------------------------------------------------------------------
// Whisper

/// The mel filter bank of a [`WhisperMel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhisperFilterBank {
    /// `transformers.audio_utils.mel_filter_bank` as `WhisperFeatureExtractor` builds it
    /// ([`whisper_mel_filters`]), cast to f32.
    Transformers,
    /// `librosa.filters.mel(sr=16000, n_fft=400, n_mels, fmin=0, fmax=8000)`
    /// ([`librosa_mel_filters`]; the Qwen3-TTS 25 Hz tokenizer's bundled `mel_filters.npz`).
    Librosa,
}

/// What a [`WhisperMel`] computes besides the fixed 16 kHz / n_fft 400 / hop 160 STFT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WhisperMelConfig {
    /// Mel bins (rows of the output).
    pub n_mels: usize,
    pub filter_bank: WhisperFilterBank,
    /// Round every bin's magnitude `|X|` to f32 before squaring it, as torch's `stft.abs() ** 2`
    /// on a complex64 STFT does (the 25 Hz tokenizer); otherwise `|X|^2` is formed in f64.
    pub f32_magnitude: bool,
}

impl Default for WhisperMelConfig {
    /// Qwen3-ASR's front end: 128 bins, the transformers filter bank, power in f64.
    fn default() -> Self {
        WhisperMelConfig {
            n_mels: WHISPER_N_MELS,
            filter_bank: WhisperFilterBank::Transformers,
            f32_magnitude: false,
        }
    }
}

/// The Whisper log-mel front end of Qwen3-ASR / Qwen3-ForcedAligner
/// (`transformers.WhisperFeatureExtractor(feature_size=128)` with its torch STFT path, dither 0,
/// no normalisation), for one clip at batch size 1.
///
/// Algorithm, for 16 kHz mono `x` of length `L >= 201`:
/// 1. reflect-pad 200 samples each side; frame `t` is padded samples `[160 t, 160 t + 400)`;
/// 2. periodic Hann window (400), real FFT (201 bins), power `|X|^2`;
/// 3. `mel[m] = sum_k F[k, m] * power[k]` with the f32 Slaney filter bank `F` (201 x 128);
///    [`WhisperMel::with_config`] sets another bin count, librosa's bank and an f32 `|X|`;
/// 4. `log10(max(mel, 1e-10))`;
/// 5. the centred STFT has `1 + L / 160` frames; the last is dropped: `T = L / 160`;
/// 6. `g` = maximum over the whole clip; every value is raised to at least `g - 8`;
/// 7. output `(v + 4) / 4`, shape `(128, T)`.
///
/// Streaming: steps 1-4 are per frame ([`WhisperMel::frame_log10`]); step 6 depends on the whole
/// clip. A streaming caller can compute frames as audio arrives (frame `t` needs samples up to
/// `160 t + 200`, and the reflect padding at the start needs the first 201 samples) and then
/// apply [`whisper_dynamic_range`] with the maximum over the audio it decided to cover. Results
/// equal the offline features only when that maximum is the clip's global maximum.
pub struct WhisperMel {
    config: WhisperMelConfig,
    stft: Stft,
    filters_f32: Vec<f32>,
    sparse: SparseFilters,
    power: Vec<f64>,
    padded: Vec<f32>,
}

impl Default for WhisperMel {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for WhisperMel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperMel")
            .field("n_fft", &WHISPER_N_FFT)
            .field("hop", &WHISPER_HOP)
            .field("n_mels", &self.config.n_mels)
            .field("filter_bank", &self.config.filter_bank)
            .field("f32_magnitude", &self.config.f32_magnitude)
            .finish()
    }
}

impl WhisperMel {
    /// Build the extractor (FFT plan, window, filter bank). Cheap, but reuse it across clips.
    pub fn new() -> Self {
        Self::build(WhisperMelConfig::default())
    }

    /// An extractor with another bin count, filter bank or magnitude rounding. Errors
    /// ([`Error::InvalidArgument`]) for 0 bins.
    pub fn with_config(config: WhisperMelConfig) -> Result<Self> {
        if config.n_mels == 0 {
            return Err(Error::InvalidArgument(
                "a Whisper mel front end needs at least one mel bin".into(),
            ));
        }
        Ok(Self::build(config))
    }

    fn build(config: WhisperMelConfig) -> Self {
        let n_mels = config.n_mels;
        // Stored `(201, n_mels)` row-major whatever the source's layout.
        let filters_f32: Vec<f32> = match config.filter_bank {
            WhisperFilterBank::Transformers => transformers_mel_filters(n_mels)
                .iter()
                .map(|&v| v as f32)
                .collect(),
            WhisperFilterBank::Librosa => {
                let bank =
                    librosa_mel_filters(WHISPER_SAMPLE_RATE, WHISPER_N_FFT, n_mels, 0.0, 8000.0);
                (0..WHISPER_N_FREQS * n_mels)
                    .map(|i| bank[(i % n_mels) * WHISPER_N_FREQS + i / n_mels])
                    .collect()
            }
        };
        let sparse =
            SparseFilters::new(n_mels, WHISPER_N_FREQS, |m, k| filters_f32[k * n_mels + m]);
        Self {
            config,
            stft: Stft::new(WHISPER_N_FFT),
            filters_f32,
            sparse,
            power: vec![0.0; WHISPER_N_FREQS],
            padded: Vec::new(),
        }
    }

    /// The configuration this extractor was built with.
    pub fn config(&self) -> &WhisperMelConfig {
        &self.config
    }

    /// Mel bins per frame.
    pub fn n_mels(&self) -> usize {
        self.config.n_mels
    }

    /// The filter bank used, `(201, n_mels)` row-major f32 (by default `mel_filters` of the
    /// reference cast to float32, as its torch path does).
    pub fn filters(&self) -> &[f32] {
        &self.filters_f32
    }

    /// Number of feature frames for `num_samples` samples: `num_samples / 160` (0 below the
    /// minimum length, which [`compute`](Self::compute) rejects).
    pub fn num_frames(num_samples: usize) -> usize {
        if num_samples < WHISPER_MIN_SAMPLES {
            0
        } else {
            num_samples / WHISPER_HOP
        }
    }

    /// Raw per-frame features: `log10(max(mel, 1e-10))` for one analysis window of exactly 400
    /// samples (the window of frame `t` is padded samples `[160 t, 160 t + 400)`), written to
    /// `out` (`n_mels` values, 128 by default). Apply [`whisper_dynamic_range`] to the collected
    /// frames to get the model features. Errors if the slice lengths are wrong.
    pub fn frame_log10(&mut self, window: &[f32], out: &mut [f32]) -> Result<()> {
        let n_mels = self.config.n_mels;
        if window.len() != WHISPER_N_FFT || out.len() != n_mels {
            return Err(Error::InvalidArgument(format!(
                "frame_log10 needs {WHISPER_N_FFT} samples and room for {n_mels} mels, \
                 got {} and {}",
                window.len(),
                out.len()
            )));
        }
        self.frame_into(window, |m, v| out[m] = v)
    }

    fn frame_into(&mut self, window: &[f32], mut put: impl FnMut(usize, f32)) -> Result<()> {
        self.stft.run(window)?;
        if self.config.f32_magnitude {
            for (p, c) in self.power.iter_mut().zip(&self.stft.spectrum) {
                let mag = f64::from((c.re * c.re + c.im * c.im).sqrt() as f32);
                *p = mag * mag;
            }
        } else {
            for (p, c) in self.power.iter_mut().zip(&self.stft.spectrum) {
                *p = c.re * c.re + c.im * c.im;
            }
        }
        for m in 0..self.config.n_mels {
            let mel = self.sparse.apply(m, &self.power);
            put(m, mel.max(1e-10).log10() as f32);
        }
        Ok(())
    }

    /// Compute the features of a whole 16 kHz mono clip: `(n_mels, L / 160)`.
    ///
    /// Errors ([`Error::Audio`]) if the clip has fewer than [`WHISPER_MIN_SAMPLES`] samples.
    pub fn compute(&mut self, samples: &[f32]) -> Result<MelSpectrogram> {
        let mut mel = self.compute_log10(samples)?;
        whisper_dynamic_range(&mut mel.data, None);
        Ok(mel)
    }

    /// Like [`compute`](Self::compute) but stops before the dynamic-range clamp and scaling:
    /// returns `log10(max(mel, 1e-10))`.
    pub fn compute_log10(&mut self, samples: &[f32]) -> Result<MelSpectrogram> {
        let len = samples.len();
        if len < WHISPER_MIN_SAMPLES {
            return Err(Error::Audio(format!(
                "audio is too short for the Whisper front end: {len} samples, at least \
                 {WHISPER_MIN_SAMPLES} ({:.1} ms at 16 kHz) are needed",
                WHISPER_MIN_SAMPLES as f64 / 16.0
            )));
        }
        if let Some(bad) = samples.iter().position(|x| !x.is_finite()) {
            return Err(Error::Audio(format!(
                "audio sample {bad} is not a finite number"
            )));
        }
        let n_frames = len / WHISPER_HOP;
        let n_mels = self.config.n_mels;
        let mut padded = std::mem::take(&mut self.padded);
        reflect_pad(samples, WHISPER_N_FFT / 2, &mut padded);
        let mut data = vec![0f32; n_mels * n_frames];
        let mut result = Ok(());
        for t in 0..n_frames {
            let start = t * WHISPER_HOP;
            let window = &padded[start..start + WHISPER_N_FFT];
            result = self.frame_into(window, |m, v| data[m * n_frames + t] = v);
            if result.is_err() {
                break;
            }
        }
        self.padded = padded;
        result?;
        Ok(MelSpectrogram {
            data,
            n_mels,
            n_frames,
        })
    }
}

/// Whisper's dynamic-range step on raw `log10` features, in place: every value is raised to at
/// least `max - 8`, then mapped to `(v + 4) / 4`. `max` defaults to the maximum of `log10`
/// (the reference: the maximum over the whole clip). Returns the maximum used.
pub fn whisper_dynamic_range(log10: &mut [f32], max: Option<f32>) -> f32 {
    let g = max.unwrap_or_else(|| log10.iter().copied().fold(f32::NEG_INFINITY, f32::max));
    let floor = g - 8.0;
    for v in log10.iter_mut() {
        *v = (v.max(floor) + 4.0) / 4.0;
    }
    g
}

/// Whisper log-mel features of a 16 kHz mono clip, `(128, L / 160)`. Builds a [`WhisperMel`];
/// reuse one for many clips.
pub fn whisper_log_mel(samples: &[f32]) -> Result<MelSpectrogram> {
    WhisperMel::new().compute(samples)
}

// ---------------------------------------------------------------------------------------------
// Speaker encoder

/// The 24 kHz mel spectrogram of the Qwen3-TTS speaker encoder
/// (`qwen_tts...modeling_qwen3_tts.mel_spectrogram(y, n_fft=1024, num_mels=128,
/// sampling_rate=24000, hop_size=256, win_size=1024, fmin=0, fmax=12000)`).
///
/// For `N > 384` samples: reflect-pad 384 each side, frames of 1024 every 256 samples
/// (`center=False`), periodic Hann window, magnitude `sqrt(re^2 + im^2 + 1e-9)`, librosa Slaney
/// mel bank (`(128, 513)`), `ln(max(mel, 1e-5))`. Output `(128, N / 256)`.
///
/// The reference only warns when samples leave `[-1, 1]`; so does this (no error, no clipping).
pub struct SpeakerMel {
    stft: Stft,
    filters: Vec<f32>,
    sparse: SparseFilters,
    magnitude: Vec<f64>,
    padded: Vec<f32>,
}

impl Default for SpeakerMel {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for SpeakerMel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpeakerMel")
            .field("n_fft", &SPEAKER_N_FFT)
            .field("hop", &SPEAKER_HOP)
            .field("n_mels", &SPEAKER_N_MELS)
            .finish()
    }
}

impl SpeakerMel {
    /// Build the extractor (FFT plan, window, filter bank).
    pub fn new() -> Self {
        let filters = speaker_mel_filters();
        let sparse = SparseFilters::new(SPEAKER_N_MELS, SPEAKER_N_FREQS, |m, k| {
            filters[m * SPEAKER_N_FREQS + k]
        });
        Self {
            stft: Stft::new(SPEAKER_N_FFT),
            filters,
            sparse,
            magnitude: vec![0.0; SPEAKER_N_FREQS],
            padded: Vec::new(),
        }
    }

    /// The filter bank used, `(128, 513)` row-major f32 (librosa layout).
    pub fn filters(&self) -> &[f32] {
        &self.filters
    }

    /// Number of frames for `num_samples` samples: `num_samples / 256` (0 below the minimum).
    pub fn num_frames(num_samples: usize) -> usize {
        if num_samples < SPEAKER_MIN_SAMPLES {
            0
        } else {
            num_samples / SPEAKER_HOP
        }
    }

    /// Compute the mel of a 24 kHz mono clip: `(128, N / 256)`.
    ///
    /// Errors ([`Error::Audio`]) below [`SPEAKER_MIN_SAMPLES`] samples or on non-finite samples.
    pub fn compute(&mut self, samples: &[f32]) -> Result<MelSpectrogram> {
        let len = samples.len();
        if len < SPEAKER_MIN_SAMPLES {
            return Err(Error::Audio(format!(
                "audio is too short for the speaker encoder: {len} samples, at least \
                 {SPEAKER_MIN_SAMPLES} ({:.1} ms at 24 kHz) are needed",
                SPEAKER_MIN_SAMPLES as f64 / 24.0
            )));
        }
        if let Some(bad) = samples.iter().position(|x| !x.is_finite()) {
            return Err(Error::Audio(format!(
                "audio sample {bad} is not a finite number"
            )));
        }
        let mut padded = std::mem::take(&mut self.padded);
        reflect_pad(samples, SPEAKER_PAD, &mut padded);
        let n_frames = (padded.len() - SPEAKER_N_FFT) / SPEAKER_HOP + 1;
        let mut data = vec![0f32; SPEAKER_N_MELS * n_frames];
        let mut result = Ok(());
        for t in 0..n_frames {
            let start = t * SPEAKER_HOP;
            result = self.stft.run(&padded[start..start + SPEAKER_N_FFT]);
            if result.is_err() {
                break;
            }
            for (mag, c) in self.magnitude.iter_mut().zip(&self.stft.spectrum) {
                *mag = (c.re * c.re + c.im * c.im + 1e-9).sqrt();
            }
            for m in 0..SPEAKER_N_MELS {
                let mel = self.sparse.apply(m, &self.magnitude);
                data[m * n_frames + t] = mel.max(1e-5).ln() as f32;
            }
        }
        self.padded = padded;
        result?;
        Ok(MelSpectrogram {
            data,
            n_mels: SPEAKER_N_MELS,
            n_frames,
        })
    }
}

/// Speaker-encoder mel of a 24 kHz mono clip, `(128, N / 256)`. Builds a [`SpeakerMel`].
pub fn speaker_encoder_mel(samples: &[f32]) -> Result<MelSpectrogram> {
    SpeakerMel::new().compute(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linspace_matches_numpy_endpoints() {
        let v = linspace(0.0, 8000.0, 201);
        assert_eq!(v[0], 0.0);
        assert_eq!(v[1], 40.0);
        assert_eq!(v[200], 8000.0);
    }

    #[test]
    fn reflect() {
        let mut out = Vec::new();
        reflect_pad(&[1.0, 2.0, 3.0, 4.0], 2, &mut out);
        assert_eq!(out, vec![3.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 2.0]);
    }

    #[test]
    fn frame_counts() {
        assert_eq!(WhisperMel::num_frames(200), 0);
        assert_eq!(WhisperMel::num_frames(201), 1);
        assert_eq!(WhisperMel::num_frames(16077), 100);
        assert_eq!(SpeakerMel::num_frames(384), 0);
        assert_eq!(SpeakerMel::num_frames(385), 1);
        assert_eq!(SpeakerMel::num_frames(24000), 93);
    }

    #[test]
    fn shapes_and_errors() {
        let x: Vec<f32> = (0..16077).map(|i| (i as f32 * 0.01).sin() * 0.5).collect();
        let mel = whisper_log_mel(&x).unwrap();
        assert_eq!((mel.n_mels, mel.n_frames), (128, 100));
        assert!(whisper_log_mel(&x[..200]).is_err());
        assert!(whisper_log_mel(&x[..201]).is_ok());
        let s = speaker_encoder_mel(&x[..1000]).unwrap();
        assert_eq!((s.n_mels, s.n_frames), (128, 3));
        assert!(speaker_encoder_mel(&x[..384]).is_err());
        assert!(whisper_log_mel(&[f32::NAN; 400]).is_err());
    }

    #[test]
    fn configured_bins_and_banks() {
        let x: Vec<f32> = (0..6400)
            .map(|i| ((i * 7 % 101) as f32 / 50.0 - 1.0) * 0.2 + (i as f32 * 0.03).sin() * 0.3)
            .collect();
        // The default config is `new()`.
        let mut a = WhisperMel::new();
        let mut b = WhisperMel::with_config(WhisperMelConfig::default()).unwrap();
        assert_eq!(a.compute(&x).unwrap().data, b.compute(&x).unwrap().data);
        // Another bin count changes the rows, not the frames.
        let cfg = WhisperMelConfig {
            n_mels: 80,
            filter_bank: WhisperFilterBank::Librosa,
            f32_magnitude: true,
        };
        let mut c = WhisperMel::with_config(cfg).unwrap();
        assert_eq!((c.n_mels(), c.filters().len()), (80, 201 * 80));
        let mel = c.compute(&x).unwrap();
        assert_eq!((mel.n_mels, mel.n_frames), (80, 40));
        assert!(mel.data.iter().all(|v| v.is_finite()));
        let mut frame = vec![0f32; 80];
        assert!(c.frame_log10(&x[..400], &mut frame).is_ok());
        assert!(c.frame_log10(&x[..400], &mut vec![0f32; 128]).is_err());
        // The librosa bank is stored transposed to (201, n_mels).
        let bank = librosa_mel_filters(16000, 400, 80, 0.0, 8000.0);
        assert_eq!(c.filters()[7 * 80 + 3], bank[3 * 201 + 7]);
        // The two 128-bin banks are the same Slaney filters up to rounding.
        let lib = WhisperMel::with_config(WhisperMelConfig {
            filter_bank: WhisperFilterBank::Librosa,
            ..WhisperMelConfig::default()
        })
        .unwrap();
        let diff = lib
            .filters()
            .iter()
            .zip(a.filters())
            .map(|(p, q)| (p - q).abs())
            .fold(0f32, f32::max);
        assert!(diff < 1e-6, "{diff}");
        assert!(WhisperMel::with_config(WhisperMelConfig { n_mels: 0, ..cfg }).is_err());
    }

    #[test]
    fn streaming_frames_equal_offline() {
        let x: Vec<f32> = (0..4000)
            .map(|i| ((i * i) as f32 * 1e-5).sin() * 0.3)
            .collect();
        let mut ex = WhisperMel::new();
        let offline = ex.compute(&x).unwrap();
        // interior frames straight from the signal, then the same dynamic range
        let raw = ex.compute_log10(&x).unwrap();
        let mut frame = vec![0f32; WHISPER_N_MELS];
        for t in 2..raw.n_frames - 2 {
            let s = t * WHISPER_HOP - WHISPER_N_FFT / 2;
            ex.frame_log10(&x[s..s + WHISPER_N_FFT], &mut frame)
                .unwrap();
            for (m, v) in frame.iter().enumerate() {
                assert_eq!(*v, raw.data[m * raw.n_frames + t]);
            }
        }
        let mut data = raw.data.clone();
        whisper_dynamic_range(&mut data, None);
        assert_eq!(data, offline.data);
    }
}
