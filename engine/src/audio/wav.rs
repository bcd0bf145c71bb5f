//! Writing WAV files with hound. Reading goes through [`super::decode`].

use std::io::{Cursor, Seek, Write};
use std::path::Path;

use hound::{SampleFormat, WavSpec, WavWriter};

use crate::error::{Error, Result};

/// Sample encoding of a written WAV file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WavFormat {
    /// 16-bit signed PCM. Samples are clipped to `[-1, 1]`, scaled by 32767 and rounded to the
    /// nearest integer (ties to even), as libsndfile/soundfile write float data to PCM_16.
    #[default]
    Pcm16,
    /// 32-bit IEEE float, written unchanged (no clipping); non-finite samples become 0.
    Float32,
}

/// Convert one float sample to 16-bit PCM (clip, scale by 32767, round half to even).
/// NaN becomes 0.
pub fn f32_to_pcm16(x: f32) -> i16 {
    if x.is_nan() {
        return 0;
    }
    (x.clamp(-1.0, 1.0) * 32767.0).round_ties_even() as i16
}

fn spec(channels: u16, sample_rate: u32, format: WavFormat) -> WavSpec {
    match format {
        WavFormat::Pcm16 => WavSpec {
            channels,
            sample_rate,
            bits_per_sample: 16,
            sample_format: SampleFormat::Int,
        },
        WavFormat::Float32 => WavSpec {
            channels,
            sample_rate,
            bits_per_sample: 32,
            sample_format: SampleFormat::Float,
        },
    }
}

fn check(channels: &[&[f32]], sample_rate: u32) -> Result<usize> {
    if sample_rate == 0 {
        return Err(Error::InvalidArgument(
            "WAV sample rate must be positive".into(),
        ));
    }
    if channels.is_empty() || channels.len() > usize::from(u16::MAX) {
        return Err(Error::InvalidArgument(format!(
            "WAV needs 1..=65535 channels, got {}",
            channels.len()
        )));
    }
    let n = channels[0].len();
    if channels.iter().any(|c| c.len() != n) {
        return Err(Error::InvalidArgument(
            "all WAV channels must have the same length".into(),
        ));
    }
    let bytes = n as u128 * channels.len() as u128 * 4;
    if bytes > u128::from(u32::MAX) - 64 {
        return Err(Error::InvalidArgument(
            "audio too long for a WAV file (over 4 GiB of sample data)".into(),
        ));
    }
    Ok(n)
}

fn write_to<W: Write + Seek>(
    writer: W,
    channels: &[&[f32]],
    sample_rate: u32,
    format: WavFormat,
) -> std::result::Result<(), hound::Error> {
    let n = channels[0].len();
    let mut w = WavWriter::new(writer, spec(channels.len() as u16, sample_rate, format))?;
    match format {
        WavFormat::Pcm16 => {
            let total = n * channels.len();
            let mut sw = w.get_i16_writer(total as u32);
            for i in 0..n {
                for ch in channels {
                    sw.write_sample(f32_to_pcm16(ch[i]));
                }
            }
            sw.flush()?;
        }
        WavFormat::Float32 => {
            for i in 0..n {
                for ch in channels {
                    let x = ch[i];
                    w.write_sample(if x.is_finite() { x } else { 0.0 })?;
                }
            }
        }
    }
    w.finalize()
}

fn map_hound(err: hound::Error, path: Option<&Path>) -> Error {
    match (err, path) {
        (hound::Error::IoError(e), Some(p)) => Error::io(p, e),
        (e, Some(p)) => Error::Audio(format!("{}: cannot write WAV: {e}", p.display())),
        (e, None) => Error::Audio(format!("cannot encode WAV: {e}")),
    }
}

/// Write mono `samples` to a WAV file at `path` (created or truncated).
pub fn write_wav(
    path: impl AsRef<Path>,
    samples: &[f32],
    sample_rate: u32,
    format: WavFormat,
) -> Result<()> {
    write_wav_channels(path, &[samples], sample_rate, format)
}

/// Write planar multi-channel audio (`channels[c][i]`, equal lengths) to a WAV file.
pub fn write_wav_channels(
    path: impl AsRef<Path>,
    channels: &[&[f32]],
    sample_rate: u32,
    format: WavFormat,
) -> Result<()> {
    let path = path.as_ref();
    check(channels, sample_rate)?;
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    write_to(std::io::BufWriter::new(file), channels, sample_rate, format)
        .map_err(|e| map_hound(e, Some(path)))
}

/// Encode mono `samples` as a complete WAV file in memory.
pub fn encode_wav(samples: &[f32], sample_rate: u32, format: WavFormat) -> Result<Vec<u8>> {
    let channels = [samples];
    check(&channels, sample_rate)?;
    let mut cursor = Cursor::new(Vec::with_capacity(44 + samples.len() * 4));
    write_to(&mut cursor, &channels, sample_rate, format).map_err(|e| map_hound(e, None))?;
    Ok(cursor.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcm16_conversion() {
        assert_eq!(f32_to_pcm16(1.0), 32767);
        assert_eq!(f32_to_pcm16(2.0), 32767);
        assert_eq!(f32_to_pcm16(-1.0), -32767);
        assert_eq!(f32_to_pcm16(-7.0), -32767);
        assert_eq!(f32_to_pcm16(0.0), 0);
        assert_eq!(f32_to_pcm16(f32::NAN), 0);
        assert_eq!(f32_to_pcm16(0.25), 8192); // 8191.75
        assert_eq!(f32_to_pcm16(-0.25), -8192);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(encode_wav(&[0.0], 0, WavFormat::Pcm16).is_err());
        let a = [0.0f32; 3];
        let b = [0.0f32; 2];
        assert!(
            write_wav_channels("/nonexistent/x.wav", &[&a, &b], 16000, WavFormat::Pcm16).is_err()
        );
    }
}
