//! The 25 Hz encoder's speaker side (`XVectorExtractor`): the CAM++ x-vector and the 80-bin
//! reference mel, both from the peak-normalised audio.
//!
//! 1. Peak normalisation to −6 dBFS (sox `norm -6`): `x · 10^(−6/20) / max|x|`.
//! 2. Kaldi fbank (`torchaudio.compliance.kaldi.fbank(num_mel_bins=80, dither=0)` defaults:
//!    25 ms frames every 10 ms with snip_edges, DC removal, pre-emphasis 0.97, Povey window, FFT
//!    of 512, power spectrum, kaldi mel banks 20 Hz–8 kHz, log floored at f32 epsilon), minus its
//!    per-bin mean over the utterance.
//! 3. `campplus.onnx` on `(1, T, 80)` → 192 values, L2-normalised.
//! 4. Reference mel: reflect-pad 432, STFT n_fft 1024 / hop 160 / periodic Hann 640 centred in
//!    the frame, `sqrt(|X|² + 1e-9)`, librosa Slaney mel (80 bins, 0–8 kHz), `ln(max(·, 1e-5))`:
//!    `(L / 160, 80)`.

use std::path::Path;

use candle_core::{Device, Tensor};

use qwen3_speech_engine::audio::mel::{librosa_mel_filters, torch_hann_window};
use qwen3_speech_engine::{Error, Result};

use super::encoder::{Dft, reflect_pad};
use super::onnx::OnnxModel;

const FBANK_BINS: usize = 80;
const FRAME: usize = 400;
const SHIFT: usize = 160;
const FFT: usize = 512;

/// Peak normalisation to −6 dBFS (silence stays silence).
pub fn peak_normalize(x: &[f32]) -> Vec<f32> {
    let peak = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    if peak == 0.0 {
        return x.to_vec();
    }
    let gain = 10f64.powf(-6.0 / 20.0) / f64::from(peak);
    x.iter().map(|&v| (f64::from(v) * gain) as f32).collect()
}

fn mel_scale(f: f64) -> f64 {
    1127.0 * (1.0 + f / 700.0).ln()
}

/// Kaldi fbank, `(frames, 80)` row-major.
pub fn kaldi_fbank(x: &[f32]) -> Result<(Vec<f32>, usize)> {
    if x.len() < FRAME {
        return Err(Error::Audio(format!(
            "audio of {} samples is too short for the x-vector features (at least {FRAME})",
            x.len()
        )));
    }
    let frames = 1 + (x.len() - FRAME) / SHIFT;
    // Povey window.
    let window: Vec<f64> = (0..FRAME)
        .map(|n| {
            let a = 2.0 * std::f64::consts::PI * n as f64 / (FRAME - 1) as f64;
            (0.5 - 0.5 * a.cos()).powf(0.85)
        })
        .collect();
    // Mel banks over the 256 non-Nyquist bins.
    let (low, high) = (20.0, 8000.0);
    let (mlow, mhigh) = (mel_scale(low), mel_scale(high));
    let delta = (mhigh - mlow) / (FBANK_BINS + 1) as f64;
    let n_bins = FFT / 2;
    let mut banks = vec![0f64; FBANK_BINS * n_bins];
    for m in 0..FBANK_BINS {
        let left = mlow + m as f64 * delta;
        let center = mlow + (m + 1) as f64 * delta;
        let right = mlow + (m + 2) as f64 * delta;
        for k in 0..n_bins {
            let mel = mel_scale(16000.0 / FFT as f64 * k as f64);
            let up = (mel - left) / (center - left);
            let down = (right - mel) / (right - center);
            banks[m * n_bins + k] = up.min(down).max(0.0);
        }
    }
    let ones = vec![1f32; FFT];
    let mut dft = Dft::new(FFT);
    let mut frame = vec![0f32; FFT];
    let mut buf = vec![0f64; FRAME];
    let mut power = vec![0f64; n_bins];
    let eps = f64::from(f32::EPSILON);
    let mut out = vec![0f32; frames * FBANK_BINS];
    for t in 0..frames {
        let s = &x[t * SHIFT..t * SHIFT + FRAME];
        let mean = s.iter().map(|&v| f64::from(v)).sum::<f64>() / FRAME as f64;
        for (b, &v) in buf.iter_mut().zip(s) {
            *b = f64::from(v) - mean;
        }
        for i in (1..FRAME).rev() {
            buf[i] -= 0.97 * buf[i - 1];
        }
        buf[0] -= 0.97 * buf[0];
        for i in 0..FFT {
            frame[i] = if i < FRAME {
                (buf[i] * window[i]) as f32
            } else {
                0.0
            };
        }
        dft.run(&frame, &ones)?;
        for (p, c) in power.iter_mut().zip(&dft.spectrum) {
            *p = c.re * c.re + c.im * c.im;
        }
        for m in 0..FBANK_BINS {
            let e: f64 = banks[m * n_bins..(m + 1) * n_bins]
                .iter()
                .zip(&power)
                .map(|(a, b)| a * b)
                .sum();
            out[t * FBANK_BINS + m] = e.max(eps).ln() as f32;
        }
    }
    Ok((out, frames))
}

/// Subtracts each bin's mean over the frames (CMN), in place.
pub fn mean_normalize(feat: &mut [f32], bins: usize) {
    let frames = feat.len() / bins;
    if frames == 0 {
        return;
    }
    for m in 0..bins {
        let mean = (0..frames)
            .map(|t| f64::from(feat[t * bins + m]))
            .sum::<f64>()
            / frames as f64;
        for t in 0..frames {
            feat[t * bins + m] = (f64::from(feat[t * bins + m]) - mean) as f32;
        }
    }
}

/// The reference mel, `(L / 160, 80)` row-major.
pub fn reference_mel(x: &[f32]) -> Result<(Vec<f32>, usize)> {
    const N_FFT: usize = 1024;
    const HOP: usize = 160;
    const WIN: usize = 640;
    const BINS: usize = 80;
    let pad = (N_FFT - HOP) / 2;
    let xp = reflect_pad(x, pad, pad)?;
    if xp.len() < N_FFT {
        return Err(Error::Audio(format!(
            "audio of {} samples is too short for the reference mel",
            x.len()
        )));
    }
    let frames = (xp.len() - N_FFT) / HOP + 1;
    let mut window = vec![0f32; N_FFT];
    let off = (N_FFT - WIN) / 2;
    window[off..off + WIN].copy_from_slice(&torch_hann_window(WIN));
    let filters = librosa_mel_filters(16000, N_FFT, BINS, 0.0, 8000.0);
    let n_freqs = N_FFT / 2 + 1;
    let mut dft = Dft::new(N_FFT);
    let mut mag = vec![0f64; n_freqs];
    let mut out = vec![0f32; frames * BINS];
    for t in 0..frames {
        dft.run(&xp[t * HOP..t * HOP + N_FFT], &window)?;
        for (m, c) in mag.iter_mut().zip(&dft.spectrum) {
            *m = (c.re * c.re + c.im * c.im + 1e-9).sqrt();
        }
        for b in 0..BINS {
            let v: f64 = filters[b * n_freqs..(b + 1) * n_freqs]
                .iter()
                .zip(&mag)
                .map(|(&f, &m)| f64::from(f) * m)
                .sum();
            out[t * BINS + b] = v.max(1e-5).ln() as f32;
        }
    }
    Ok((out, frames))
}

/// `campplus.onnx` plus the feature pipeline.
#[derive(Debug, Clone)]
pub struct XVectorExtractor {
    model: OnnxModel,
    device: Device,
}

impl XVectorExtractor {
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let model = OnnxModel::load(path, device)?;
        Ok(XVectorExtractor {
            model,
            device: device.clone(),
        })
    }

    /// Runs the speaker network on CMN fbank features `(frames, 80)`: the raw output values.
    pub fn embed_features(&self, feat: &[f32], frames: usize) -> Result<Vec<f32>> {
        let x = Tensor::from_slice(feat, (1, frames, FBANK_BINS), &self.device)?;
        let y = self.model.run_single(x)?;
        Ok(y.flatten_all()?.to_vec1()?)
    }

    /// `(x-vector, reference mel, reference mel frames)` of 16 kHz audio.
    pub fn extract(&self, samples: &[f32]) -> Result<(Vec<f32>, Vec<f32>, usize)> {
        let norm = peak_normalize(samples);
        let (mut feat, frames) = kaldi_fbank(&norm)?;
        mean_normalize(&mut feat, FBANK_BINS);
        let raw = self.embed_features(&feat, frames)?;
        let n = raw
            .iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum::<f64>()
            .sqrt()
            .max(1e-12);
        let xv = raw.iter().map(|&v| (f64::from(v) / n) as f32).collect();
        let (mel, mel_frames) = reference_mel(&norm)?;
        Ok((xv, mel, mel_frames))
    }
}
