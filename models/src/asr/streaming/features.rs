//! Log-mel features of a growing 16 kHz stream, computed incrementally.
//!
//! The reference's streaming backend (vLLM) zero-pads every clip to a multiple of 160 samples
//! before the Whisper front end, so `L` samples give `T = ceil(L / 160)` frames. Frame `t`
//! reads samples `[160 t - 200, 160 t + 200)` (reflect-padded at both ends). So frame `t` no
//! longer changes once `160 t + 200 <= L` (and `L >= 201`, which the reflection at the start
//! needs): its raw value `log10(max(mel, 1e-10))` is kept. Only the last two or three frames
//! are recomputed when audio arrives.
//!
//! The dynamic-range step (every value raised to at least `g - 8`, `g` the maximum over the
//! whole clip) is applied when features are read, with the current `g`. When `g` grows, frames
//! that were read before can change; [`StreamFeatures::floor`] and
//! [`StreamFeatures::raw_min`] let a cache tell whether that happened to its frames.

use candle_core::{Device, Tensor};

use qwen3_speech_engine::audio::mel::{
    WHISPER_HOP, WHISPER_MIN_SAMPLES, WHISPER_N_FFT, WHISPER_N_MELS, WhisperMel, whisper_log_mel,
};
use qwen3_speech_engine::{Error, Result};

/// Features of everything pushed so far.
pub struct StreamFeatures {
    mel: WhisperMel,
    /// Every sample so far (not padded).
    audio: Vec<f32>,
    /// Raw `log10` values of the final frames, frame-major: `raw[t * 128 + m]`.
    raw: Vec<f32>,
    /// Raw values of the frames after the final ones, as of the last [`update`](Self::update).
    tail: Vec<f32>,
    /// Maximum of `raw`.
    final_max: f32,
    /// The clip-wide maximum `g` (final and tail frames) as of the last update.
    max: f32,
    window: Vec<f32>,
}

impl Default for StreamFeatures {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for StreamFeatures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamFeatures")
            .field("samples", &self.audio.len())
            .field("final_frames", &self.final_frames())
            .field("frames", &self.frames())
            .finish()
    }
}

impl StreamFeatures {
    pub fn new() -> Self {
        StreamFeatures {
            mel: WhisperMel::new(),
            audio: Vec::new(),
            raw: Vec::new(),
            tail: Vec::new(),
            final_max: f32::NEG_INFINITY,
            max: f32::NEG_INFINITY,
            window: vec![0.0; WHISPER_N_FFT],
        }
    }

    /// Samples pushed so far.
    pub fn samples(&self) -> &[f32] {
        &self.audio
    }

    /// Appends samples (call [`update`](Self::update) before reading features).
    pub fn extend(&mut self, samples: &[f32]) {
        self.audio.extend_from_slice(samples);
    }

    /// Frames of the features: `ceil(L / 160)` (0 below the front end's minimum length).
    pub fn frames(&self) -> usize {
        frames_for(self.audio.len())
    }

    /// Frames that no longer change (raw values; the floor may still move).
    pub fn final_frames(&self) -> usize {
        self.raw.len() / WHISPER_N_MELS
    }

    /// The dynamic-range floor `g - 8` of the current features.
    pub fn floor(&self) -> f32 {
        self.max - 8.0
    }

    /// Brings the raw frames up to date with the samples pushed. Errors if the audio is below
    /// the front end's minimum (201 samples).
    pub fn update(&mut self) -> Result<()> {
        let len = self.audio.len();
        if len < WHISPER_MIN_SAMPLES {
            return Err(Error::Audio(format!(
                "audio is too short: {len} samples; at least {WHISPER_MIN_SAMPLES} are needed"
            )));
        }
        if let Some(bad) = self.audio.iter().rposition(|x| !x.is_finite()) {
            return Err(Error::Audio(format!(
                "audio sample {bad} is not a finite number"
            )));
        }
        let frames = self.frames();
        // Frames whose window lies inside the real audio.
        let finals = if len >= WHISPER_N_FFT / 2 {
            ((len - WHISPER_N_FFT / 2) / WHISPER_HOP + 1).min(frames)
        } else {
            0
        };
        let padded_len = frames * WHISPER_HOP;
        let mut out = [0f32; WHISPER_N_MELS];
        for t in self.final_frames()..finals {
            self.frame(t, padded_len, &mut out)?;
            self.final_max = out.iter().copied().fold(self.final_max, f32::max);
            self.raw.extend_from_slice(&out);
        }
        self.tail.clear();
        let mut max = self.final_max;
        for t in finals..frames {
            self.frame(t, padded_len, &mut out)?;
            max = out.iter().copied().fold(max, f32::max);
            self.tail.extend_from_slice(&out);
        }
        self.max = max;
        Ok(())
    }

    /// Raw values of frame `t` of the zero-padded (to `padded_len`) and reflect-padded audio.
    fn frame(&mut self, t: usize, padded_len: usize, out: &mut [f32]) -> Result<()> {
        let pad = (WHISPER_N_FFT / 2) as isize;
        let n = padded_len as isize;
        let audio = &self.audio;
        let sample = |k: isize| -> f32 {
            // numpy "reflect" of the zero-padded clip (the edge sample is not repeated).
            let k = if k < 0 {
                -k
            } else if k >= n {
                2 * (n - 1) - k
            } else {
                k
            };
            audio.get(k as usize).copied().unwrap_or(0.0)
        };
        let start = (t * WHISPER_HOP) as isize - pad;
        for (i, w) in self.window.iter_mut().enumerate() {
            *w = sample(start + i as isize);
        }
        self.mel.frame_log10(&self.window, out)
    }

    /// Raw value of mel bin `m` at frame `t` (final or tail).
    fn raw_at(&self, t: usize, m: usize) -> f32 {
        let f = self.final_frames();
        if t < f {
            self.raw[t * WHISPER_N_MELS + m]
        } else {
            self.tail[(t - f) * WHISPER_N_MELS + m]
        }
    }

    /// Smallest raw value over frames `range` (the floor changes those features only if it
    /// rises above this).
    pub fn raw_min(&self, range: std::ops::Range<usize>) -> f32 {
        let mut min = f32::INFINITY;
        for t in range {
            for m in 0..WHISPER_N_MELS {
                min = min.min(self.raw_at(t, m));
            }
        }
        min
    }

    /// Model features `(128, len)` of frames `range` with the current floor: `(max(raw,
    /// g - 8) + 4) / 4`, the values the whole-clip front end gives.
    pub fn mel(&self, range: std::ops::Range<usize>, device: &Device) -> Result<Tensor> {
        let floor = self.floor();
        let len = range.len();
        let mut data = vec![0f32; WHISPER_N_MELS * len];
        for (i, t) in range.enumerate() {
            for m in 0..WHISPER_N_MELS {
                data[m * len + i] = (self.raw_at(t, m).max(floor) + 4.0) / 4.0;
            }
        }
        Ok(Tensor::from_vec(data, (WHISPER_N_MELS, len), device)?)
    }

    /// The features of the whole stream computed from scratch, as the reference does at every
    /// chunk: the audio zero-padded to a multiple of 160 samples through the offline front end.
    pub fn mel_from_scratch(&self, device: &Device) -> Result<Tensor> {
        let mut padded = self.audio.clone();
        padded.resize(self.frames() * WHISPER_HOP, 0.0);
        whisper_log_mel(&padded)?.into_tensor(device)
    }
}

/// `ceil(len / 160)` feature frames for `len` samples (vLLM pads to a multiple of 160); 0
/// below the front end's minimum.
pub fn frames_for(len: usize) -> usize {
    if len < WHISPER_MIN_SAMPLES {
        0
    } else {
        len.div_ceil(WHISPER_HOP)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f32::consts::TAU;

    fn signal(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let t = i as f32 / 16000.0;
                // Quiet start, louder later: the clip maximum (and the floor) moves.
                let gain = if i < 9000 { 0.001 } else { 0.5 };
                gain * ((t * 440.0 * TAU).sin() + 0.3 * (t * 1234.5 * TAU).sin())
            })
            .collect()
    }

    #[test]
    fn incremental_equals_from_scratch() -> Result<()> {
        let x = signal(16000 + 77);
        let mut f = StreamFeatures::new();
        let dev = Device::Cpu;
        let mut pos = 0;
        for step in [250usize, 333, 160, 1, 4000, 7001, 4409] {
            let n = step.min(x.len() - pos);
            f.extend(&x[pos..pos + n]);
            pos += n;
            f.update()?;
            let frames = f.frames();
            assert_eq!(frames, pos.div_ceil(160));
            let inc: Vec<f32> = f.mel(0..frames, &dev)?.flatten_all()?.to_vec1()?;
            let full: Vec<f32> = f.mel_from_scratch(&dev)?.flatten_all()?.to_vec1()?;
            assert_eq!(inc, full, "after {pos} samples");
            // Final frames never read past the audio.
            assert!(f.final_frames() * 160 + 40 <= pos.max(200) + 160);
        }
        Ok(())
    }

    #[test]
    fn short_audio_is_an_error() {
        let mut f = StreamFeatures::new();
        f.extend(&[0.0; 200]);
        assert!(f.update().is_err());
        f.extend(&[0.0]);
        assert!(f.update().is_ok());
        assert_eq!(f.frames(), 2);
    }
}
