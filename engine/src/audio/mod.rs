//! Audio I/O and feature extraction.
//!
//! * [`decode`]: files and in-memory buffers (WAV, FLAC, MP3, OGG Vorbis, AAC/M4A, ...) to
//!   per-channel `f32` samples, with gapless trimming.
//! * [`to_mono`], [`peak_normalize`]: the reference's channel downmix and level normalisation.
//! * [`resample`](mod@resample): high-quality offline and streaming sample-rate conversion.
//! * [`wav`]: writing 16-bit PCM or 32-bit float WAV files.
//! * [`mel`]: the Whisper log-mel front end of Qwen3-ASR / ForcedAligner and the 24 kHz
//!   speaker-encoder mel of Qwen3-TTS.
//! * [`load_audio`]: decode, downmix, resample and normalise in one call, in the order the
//!   reference (`qwen_asr.inference.utils.normalize_audio_input`) uses.

pub mod decode;
pub mod mel;
pub mod resample;
pub mod wav;

use std::path::Path;

pub use decode::{DecodedAudio, decode_bytes, decode_file};
pub use mel::{
    MelSpectrogram, SpeakerMel, WhisperFilterBank, WhisperMel, WhisperMelConfig,
    speaker_encoder_mel, whisper_log_mel, whisper_mel_filters,
};
pub use resample::{StreamingResampler, resample, resampled_len};
pub use wav::{WavFormat, encode_wav, write_wav, write_wav_channels};

use crate::error::{Error, Result};

/// Sample rate of the ASR / aligner front end (Hz).
pub const ASR_SAMPLE_RATE: u32 = 16_000;
/// Sample rate of the TTS speaker encoder and codec (Hz).
pub const TTS_SAMPLE_RATE: u32 = 24_000;

/// Downmix channels to mono the way the reference does: the `f32` mean of the channels at every
/// frame (`np.mean(audio, axis=-1).astype(np.float32)`). A single channel is returned unchanged.
///
/// Channels of different lengths are cut to the shortest. No channels gives an empty vector.
pub fn to_mono(channels: &[Vec<f32>]) -> Vec<f32> {
    match channels {
        [] => Vec::new(),
        [one] => one.clone(),
        _ => {
            let n = channels.iter().map(Vec::len).min().unwrap_or(0);
            let inv = channels.len() as f32;
            let mut out = vec![0f32; n];
            // numpy sums float32 along the (contiguous, size C <= 8) last axis in float32 with
            // a plain left-to-right loop, then divides by C.
            for ch in channels {
                for (o, &x) in out.iter_mut().zip(&ch[..n]) {
                    *o += x;
                }
            }
            for o in &mut out {
                *o /= inv;
            }
            out
        }
    }
}

/// Peak normalisation as the reference's `float_range_normalize`: if the peak `|x|` exceeds 1,
/// divide by it; then clip to `[-1, 1]`. Audio already inside `[-1, 1]` is left untouched.
/// Non-finite samples (NaN, ±inf) are replaced by 0 first so they cannot poison the peak.
pub fn peak_normalize(samples: &mut [f32]) {
    let mut peak = 0f32;
    for x in samples.iter_mut() {
        if !x.is_finite() {
            *x = 0.0;
        }
        peak = peak.max(x.abs());
    }
    if peak == 0.0 {
        return;
    }
    if peak > 1.0 {
        for x in samples.iter_mut() {
            *x /= peak;
        }
    }
    for x in samples.iter_mut() {
        *x = x.clamp(-1.0, 1.0);
    }
}

/// Downmix, resample and peak-normalise decoded audio to mono at `target_rate`, in the reference
/// order (mono -> resample -> normalise).
pub fn prepare_audio(audio: DecodedAudio, target_rate: u32) -> Result<Vec<f32>> {
    let rate = audio.sample_rate;
    let mono = audio.into_mono();
    let mut out = if rate == target_rate {
        mono
    } else {
        resample(&mono, rate, target_rate)?
    };
    peak_normalize(&mut out);
    Ok(out)
}

/// Load an audio file as mono `f32` at `target_rate`: decode -> mono -> resample -> peak
/// normalise, like `normalize_audio_input` of the reference for a file path (which uses
/// `librosa.load(path, sr=None, mono=False)` then `librosa.resample(res_type="soxr_hq")`).
pub fn load_audio(path: impl AsRef<Path>, target_rate: u32) -> Result<Vec<f32>> {
    prepare_audio(decode_file(path)?, target_rate)
}

/// [`load_audio`] for an in-memory file (`ext_hint` as in [`decode_bytes`]).
pub fn load_audio_bytes(data: &[u8], ext_hint: Option<&str>, target_rate: u32) -> Result<Vec<f32>> {
    prepare_audio(decode_bytes(data, ext_hint)?, target_rate)
}

/// Fail with a clear [`Error::Audio`] unless `num_samples` at `sample_rate` lasts at least
/// `min_samples` samples. Use it before feature extraction, e.g. the Whisper front end needs
/// [`mel::WHISPER_MIN_SAMPLES`] samples.
pub fn ensure_min_samples(num_samples: usize, min_samples: usize, sample_rate: u32) -> Result<()> {
    if num_samples < min_samples {
        let sr = f64::from(sample_rate.max(1));
        return Err(Error::Audio(format!(
            "audio is too short: {num_samples} samples ({:.4} s at {sample_rate} Hz), \
             at least {min_samples} samples ({:.4} s) are needed",
            num_samples as f64 / sr,
            min_samples as f64 / sr,
        )));
    }
    Ok(())
}

/// Fail with a clear [`Error::Audio`] unless `num_samples` at `sample_rate` lasts at least
/// `min_seconds` seconds.
pub fn ensure_min_duration(num_samples: usize, sample_rate: u32, min_seconds: f64) -> Result<()> {
    if !(min_seconds.is_finite() && min_seconds >= 0.0) {
        return Err(Error::InvalidArgument(format!(
            "minimum duration must be a non-negative number of seconds, got {min_seconds}"
        )));
    }
    let min_samples = (min_seconds * f64::from(sample_rate)).ceil() as usize;
    ensure_min_samples(num_samples, min_samples, sample_rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mono_is_mean() {
        let m = to_mono(&[vec![1.0, 0.5, 3.0], vec![0.0, 0.5]]);
        assert_eq!(m, vec![0.5, 0.5]);
        assert_eq!(to_mono(&[vec![0.25]]), vec![0.25]);
        assert!(to_mono(&[]).is_empty());
    }

    #[test]
    fn normalize_matches_reference() {
        let mut a = vec![0.5, -2.0, 1.0];
        peak_normalize(&mut a);
        assert_eq!(a, vec![0.25, -1.0, 0.5]);
        let mut b = vec![0.5, -0.9];
        peak_normalize(&mut b);
        assert_eq!(b, vec![0.5, -0.9]);
        let mut c = vec![f32::NAN, 4.0];
        peak_normalize(&mut c);
        assert_eq!(c, vec![0.0, 1.0]);
    }

    #[test]
    fn min_duration() {
        assert!(ensure_min_duration(16000, 16000, 1.0).is_ok());
        assert!(matches!(
            ensure_min_duration(15999, 16000, 1.0),
            Err(Error::Audio(_))
        ));
        assert!(ensure_min_duration(1, 16000, f64::NAN).is_err());
    }
}
