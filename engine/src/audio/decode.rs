//! Decoding compressed and uncompressed audio files with symphonia.
//!
//! Supported containers/codecs: WAV (PCM 8/16/24/32-bit, float), FLAC, MP3, OGG Vorbis, AAC in
//! MP4/M4A (and ADTS), AIFF, CAF, ALAC, MKV/WebM with any of those codecs.
//!
//! Samples are returned per channel as `f32` in `[-1, 1)`, converted the way libsndfile does
//! (integer PCM divided by 2^(bits-1)), so a WAV or FLAC file decodes bit-exactly like
//! `librosa.load(path, sr=None, mono=False)` / `soundfile.read(path, dtype="float32")`.
//!
//! Gapless playback is honoured: MP3 files with a LAME/Xing (or ffmpeg "Lavf"/"Lavc") info tag have
//! the encoder delay (plus the 529-sample decoder delay) and the end padding removed, OGG Vorbis is
//! trimmed by granule position, and for MP4/M4A files the first edit-list entry of the track is
//! applied (the AAC priming samples, normally 1024, are skipped and the track is cut to the edit's
//! duration). This matches what ffmpeg and libsndfile return, except that ffmpeg 5.x does not cut
//! the AAC end padding (see `engine/tests/golden_audio.rs`).

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;

use crate::error::{Error, Result};

/// Decoded audio: one `Vec<f32>` per channel (all the same length) and the sample rate.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedAudio {
    /// Planar samples, `channels[c][i]` is frame `i` of channel `c`. Never empty, and every
    /// channel holds at least one sample.
    pub channels: Vec<Vec<f32>>,
    /// Sample rate in Hz (> 0).
    pub sample_rate: u32,
}

impl DecodedAudio {
    /// Number of channels.
    pub fn num_channels(&self) -> usize {
        self.channels.len()
    }

    /// Number of frames (samples per channel).
    pub fn num_frames(&self) -> usize {
        self.channels.first().map_or(0, Vec::len)
    }

    /// Duration in seconds.
    pub fn duration_secs(&self) -> f64 {
        self.num_frames() as f64 / f64::from(self.sample_rate.max(1))
    }

    /// Mono downmix (mean of the channels), see [`super::to_mono`].
    pub fn to_mono(&self) -> Vec<f32> {
        super::to_mono(&self.channels)
    }

    /// Mono downmix that reuses the first channel's buffer.
    pub fn into_mono(mut self) -> Vec<f32> {
        if self.channels.len() == 1 {
            return self.channels.pop().unwrap_or_default();
        }
        super::to_mono(&self.channels)
    }
}

/// Decode an audio file. The file extension, if any, is used as a hint for the container format
/// (the content is probed either way).
///
/// Errors: [`Error::Io`] if the file cannot be opened or read; [`Error::Audio`] if it is empty,
/// not a recognised audio format, uses an unsupported codec, has no audio track, or yields no
/// samples. A file truncated part-way returns the samples decoded before the damage.
pub fn decode_file(path: impl AsRef<Path>) -> Result<DecodedAudio> {
    let path = path.as_ref();
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return Err(Error::Audio(format!("{}: is a directory", path.display())));
    }
    let len = meta.len();
    if len == 0 {
        return Err(Error::Audio(format!("{}: file is empty", path.display())));
    }
    let ext = path.extension().and_then(|e| e.to_str());
    let mut head = [0u8; 8];
    let is_mp4 =
        looks_like_mp4(ext) || (file.read_exact(&mut head).is_ok() && is_mp4_signature(&head));
    let edits = if is_mp4 {
        mp4_edit_lists(&mut file, len)
    } else {
        None
    };
    file.seek(SeekFrom::Start(0))
        .map_err(|e| Error::io(path, e))?;
    decode_source(Box::new(file), ext, edits).map_err(|e| match e {
        Error::Audio(msg) => Error::Audio(format!("{}: {msg}", path.display())),
        other => other,
    })
}

/// Decode audio held in memory (for example an upload or a base64 payload). `ext_hint` is an
/// optional file extension ("wav", "mp3", "m4a", ...) used as a hint; the content is probed
/// either way. Errors as [`decode_file`], always as [`Error::Audio`].
pub fn decode_bytes(data: &[u8], ext_hint: Option<&str>) -> Result<DecodedAudio> {
    if data.is_empty() {
        return Err(Error::Audio("audio buffer is empty".into()));
    }
    let ext = ext_hint.map(|e| e.trim_start_matches('.'));
    let edits = if looks_like_mp4(ext) || is_mp4_signature(data) {
        mp4_edit_lists(&mut std::io::Cursor::new(data), data.len() as u64)
    } else {
        None
    };
    decode_source(Box::new(std::io::Cursor::new(data)), ext, edits)
}

fn looks_like_mp4(ext: Option<&str>) -> bool {
    matches!(
        ext.map(str::to_ascii_lowercase).as_deref(),
        Some("m4a" | "mp4" | "m4b" | "mov" | "3gp" | "aac" | "m4v")
    )
}

fn is_mp4_signature(data: &[u8]) -> bool {
    data.len() >= 8 && &data[4..8] == b"ftyp"
}

fn decode_source<'s>(
    source: Box<dyn MediaSource + 's>,
    ext: Option<&str>,
    edits: Option<Mp4Edits>,
) -> Result<DecodedAudio> {
    // Symphonia is pure Rust and should not panic, but a malformed stream must never take the
    // process down: turn any panic inside the decoder into an error.
    match catch_unwind(AssertUnwindSafe(move || decode_inner(source, ext, edits))) {
        Ok(r) => r,
        Err(_) => Err(Error::Audio(
            "the decoder failed on malformed audio data".into(),
        )),
    }
}

fn sym_err(context: &str, err: SymError) -> Error {
    match err {
        SymError::Unsupported(what) => Error::Audio(format!("{context}: unsupported {what}")),
        SymError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Error::Audio(
            format!("{context}: unexpected end of data (truncated file?)"),
        ),
        other => Error::Audio(format!("{context}: {other}")),
    }
}

fn decode_inner<'s>(
    source: Box<dyn MediaSource + 's>,
    ext: Option<&str>,
    edits: Option<Mp4Edits>,
) -> Result<DecodedAudio> {
    let mss = MediaSourceStream::new(source, MediaSourceStreamOptions::default());
    let mut hint = Hint::new();
    if let Some(ext) = ext {
        hint.with_extension(ext);
    }
    let mut format: Box<dyn FormatReader + 's> = symphonia::default::get_probe()
        .probe(
            &hint,
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| match e {
            SymError::Unsupported(_) => {
                Error::Audio("unrecognised or unsupported audio format".into())
            }
            other => sym_err("cannot read audio container", other),
        })?;

    let is_mp4 = format.format_info().short_name == "isomp4";
    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| Error::Audio("no audio track found".into()))?;
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| Error::Audio("the audio track has no codec parameters".into()))?
        .clone();
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(|e| match e {
            SymError::Unsupported(_) => {
                Error::Audio(format!("unsupported audio codec ({:?})", params.codec))
            }
            other => sym_err("cannot create the audio decoder", other),
        })?;

    let mut channels: Vec<Vec<f32>> = Vec::new();
    let mut rate: u32 = params.sample_rate.unwrap_or(0);
    let mut scratch: Vec<Vec<f32>> = Vec::new();
    let mut decode_errors = 0usize;
    let mut last_decode_error: Option<String> = None;
    let mut stream_error: Option<Error> = None;

    loop {
        let packet = match format.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            // A chained OGG stream or a new track layout: keep what was decoded so far.
            Err(SymError::ResetRequired) => break,
            Err(e) => {
                stream_error = Some(sym_err("cannot read audio packet", e));
                break;
            }
        };
        if packet.track_id != track_id {
            continue;
        }
        match decoder.decode(&packet) {
            Ok(buf) => {
                if buf.frames() == 0 {
                    continue;
                }
                let spec = buf.spec();
                let n_ch = spec.channels().count();
                if n_ch == 0 {
                    continue;
                }
                if channels.is_empty() {
                    channels = vec![Vec::new(); n_ch];
                    rate = spec.rate();
                } else if n_ch != channels.len() || spec.rate() != rate {
                    // Mid-stream format change: stop at the change rather than mixing layouts.
                    break;
                }
                buf.copy_to_vecs_planar::<f32>(&mut scratch);
                for (dst, src) in channels.iter_mut().zip(scratch.iter()) {
                    dst.extend_from_slice(src);
                }
            }
            Err(SymError::DecodeError(msg)) => {
                decode_errors += 1;
                last_decode_error = Some(msg.to_string());
            }
            Err(SymError::IoError(e)) => {
                decode_errors += 1;
                last_decode_error = Some(e.to_string());
            }
            Err(SymError::ResetRequired) => break,
            Err(e) => {
                stream_error = Some(sym_err("cannot decode audio", e));
                break;
            }
        }
    }

    let frames = channels.first().map_or(0, Vec::len);
    if frames == 0 {
        if let Some(err) = stream_error {
            return Err(err);
        }
        if let Some(msg) = last_decode_error {
            return Err(Error::Audio(format!(
                "no audio could be decoded ({decode_errors} corrupt packets, last error: {msg})"
            )));
        }
        return Err(Error::Audio("the audio stream contains no samples".into()));
    }
    if rate == 0 {
        return Err(Error::Audio("the audio stream has no sample rate".into()));
    }

    if is_mp4 && let Some(edit) = edits.as_ref().and_then(|e| e.get(&track_id)) {
        apply_mp4_edit(&mut channels, rate, edit);
        if channels.first().is_none_or(Vec::is_empty) {
            return Err(Error::Audio(
                "the audio stream contains no samples after its edit list".into(),
            ));
        }
    }

    Ok(DecodedAudio {
        channels,
        sample_rate: rate,
    })
}

// ------------------------------------------------------------------------------------------
// MP4 edit lists (AAC priming / padding). Symphonia's isomp4 reader parses `elst` but does not
// apply it, so the decoder output still contains the encoder priming samples; ffmpeg skips them.

/// The parts of an MP4 track needed to apply its edit list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mp4Edit {
    /// First non-empty edit: start in media timescale units.
    media_time: u64,
    /// Duration of that edit in movie timescale units (0: unknown / until the end).
    segment_duration: u64,
    /// Whether this is the only non-empty edit (only then is the end cut).
    single: bool,
    media_timescale: u32,
    movie_timescale: u32,
}

type Mp4Edits = HashMap<u32, Mp4Edit>;

fn apply_mp4_edit(channels: &mut [Vec<f32>], rate: u32, edit: &Mp4Edit) {
    if edit.media_timescale == 0 {
        return;
    }
    let skip = (u128::from(edit.media_time) * u128::from(rate)
        + u128::from(edit.media_timescale) / 2)
        / u128::from(edit.media_timescale);
    let keep = if edit.single && edit.segment_duration > 0 && edit.movie_timescale > 0 {
        Some(
            (u128::from(edit.segment_duration) * u128::from(rate)
                + u128::from(edit.movie_timescale) / 2)
                / u128::from(edit.movie_timescale),
        )
    } else {
        None
    };
    for ch in channels.iter_mut() {
        let skip = usize::try_from(skip).unwrap_or(usize::MAX).min(ch.len());
        ch.drain(..skip);
        if let Some(keep) = keep {
            let keep = usize::try_from(keep).unwrap_or(usize::MAX);
            if keep < ch.len() {
                ch.truncate(keep);
            }
        }
    }
}

struct BoxHeader {
    kind: [u8; 4],
    /// Offset of the payload.
    start: u64,
    /// Offset just past the box.
    end: u64,
}

fn read_u32<R: Read>(r: &mut R) -> Option<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b).ok()?;
    Some(u32::from_be_bytes(b))
}

fn read_u64<R: Read>(r: &mut R) -> Option<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b).ok()?;
    Some(u64::from_be_bytes(b))
}

fn read_box_header<R: Read + Seek>(r: &mut R, pos: u64, limit: u64) -> Option<BoxHeader> {
    if pos.checked_add(8)? > limit {
        return None;
    }
    r.seek(SeekFrom::Start(pos)).ok()?;
    let size32 = read_u32(r)?;
    let mut kind = [0u8; 4];
    r.read_exact(&mut kind).ok()?;
    let (start, end) = match size32 {
        0 => (pos + 8, limit),
        1 => {
            let size = read_u64(r)?;
            if size < 16 {
                return None;
            }
            (pos + 16, pos.checked_add(size)?)
        }
        s if s < 8 => return None,
        s => (pos + 8, pos + u64::from(s)),
    };
    if end > limit {
        return None;
    }
    Some(BoxHeader { kind, start, end })
}

/// Iterate the child boxes of `[start, end)`, calling `f` for each; stops early if `f` fails.
fn for_each_box<R: Read + Seek>(
    r: &mut R,
    start: u64,
    end: u64,
    mut f: impl FnMut(&mut R, &BoxHeader) -> Option<()>,
) -> Option<()> {
    let mut pos = start;
    let mut guard = 0;
    while pos + 8 <= end && guard < 10_000 {
        guard += 1;
        let h = read_box_header(r, pos, end)?;
        f(r, &h)?;
        pos = h.end;
    }
    Some(())
}

/// Read the edit list of every track of an MP4 file (keyed by track id). `None` if the file is
/// not MP4 or has no usable edit lists.
fn mp4_edit_lists<R: Read + Seek>(r: &mut R, len: u64) -> Option<Mp4Edits> {
    let mut moov = None;
    for_each_box(r, 0, len, |_, h| {
        if &h.kind == b"moov" {
            moov = Some((h.start, h.end));
        }
        Some(())
    })?;
    let (moov_start, moov_end) = moov?;

    let mut movie_timescale = 0u32;
    let mut traks = Vec::new();
    for_each_box(r, moov_start, moov_end, |r, h| {
        match &h.kind {
            b"mvhd" => {
                r.seek(SeekFrom::Start(h.start)).ok()?;
                let version = read_u32(r)? >> 24;
                let skip = if version == 1 { 16 } else { 8 };
                r.seek(SeekFrom::Current(skip)).ok()?;
                movie_timescale = read_u32(r)?;
            }
            b"trak" => traks.push((h.start, h.end)),
            _ => {}
        }
        Some(())
    })?;

    let mut out = HashMap::new();
    for (t_start, t_end) in traks {
        let mut track_id = None;
        let mut elst: Vec<(u64, i64)> = Vec::new();
        let mut media_timescale = 0u32;
        for_each_box(r, t_start, t_end, |r, h| {
            match &h.kind {
                b"tkhd" => {
                    r.seek(SeekFrom::Start(h.start)).ok()?;
                    let version = read_u32(r)? >> 24;
                    let skip = if version == 1 { 16 } else { 8 };
                    r.seek(SeekFrom::Current(skip)).ok()?;
                    track_id = Some(read_u32(r)?);
                }
                b"edts" => {
                    for_each_box(r, h.start, h.end, |r, e| {
                        if &e.kind == b"elst" {
                            r.seek(SeekFrom::Start(e.start)).ok()?;
                            let version = read_u32(r)? >> 24;
                            let count = read_u32(r)?.min(1024);
                            for _ in 0..count {
                                let (dur, time) = if version == 1 {
                                    (read_u64(r)?, read_u64(r)? as i64)
                                } else {
                                    (u64::from(read_u32(r)?), i64::from(read_u32(r)? as i32))
                                };
                                let _rate = read_u32(r)?;
                                elst.push((dur, time));
                            }
                        }
                        Some(())
                    })?;
                }
                b"mdia" => {
                    for_each_box(r, h.start, h.end, |r, m| {
                        if &m.kind == b"mdhd" {
                            r.seek(SeekFrom::Start(m.start)).ok()?;
                            let version = read_u32(r)? >> 24;
                            let skip = if version == 1 { 16 } else { 8 };
                            r.seek(SeekFrom::Current(skip)).ok()?;
                            media_timescale = read_u32(r)?;
                        }
                        Some(())
                    })?;
                }
                _ => {}
            }
            Some(())
        })?;
        let non_empty: Vec<&(u64, i64)> = elst.iter().filter(|(_, t)| *t >= 0).collect();
        if let (Some(id), Some(&&(dur, time))) = (track_id, non_empty.first()) {
            out.insert(
                id,
                Mp4Edit {
                    media_time: time as u64,
                    segment_duration: dur,
                    single: non_empty.len() == 1,
                    media_timescale,
                    movie_timescale,
                },
            );
        }
    }
    if out.is_empty() { None } else { Some(out) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_trims_start_and_end() {
        let mut ch = vec![(0..5000).map(|i| i as f32).collect::<Vec<_>>()];
        let edit = Mp4Edit {
            media_time: 1024,
            segment_duration: 3000,
            single: true,
            media_timescale: 44100,
            movie_timescale: 44100,
        };
        apply_mp4_edit(&mut ch, 44100, &edit);
        assert_eq!(ch[0].len(), 3000);
        assert_eq!(ch[0][0], 1024.0);
    }

    #[test]
    fn mp4_parser_rejects_garbage() {
        let data = [0xffu8; 100];
        assert!(mp4_edit_lists(&mut std::io::Cursor::new(&data[..]), 100).is_none());
        let data: Vec<u8> = Vec::new();
        assert!(mp4_edit_lists(&mut std::io::Cursor::new(&data[..]), 0).is_none());
    }
}
