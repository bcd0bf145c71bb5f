//! The audio encoder of a growing stream, encoding only what changed.
//!
//! With windowed attention (the released models' `n_window_infer` = 800 frames = 8 s, 104
//! tokens), the encoder output of a window depends only on the mel frames of that window: the
//! conv stem works per 100-frame chunk, positions restart in every chunk, and attention stays
//! inside the window. A window is *complete* when all its frames are final (see
//! [`StreamFeatures`]); its output is kept and never recomputed, unless the clip-wide
//! dynamic-range floor rises above the smallest raw value of its frames (then its features
//! changed, and it is encoded again). Each call encodes only the *open* part: the frames after
//! the last complete window (at most one window plus what arrived since).
//!
//! The result equals the whole-clip windowed encoding ([`AudioEncoder::forward`] with
//! [`EncoderAttention::Windowed`]) up to float rounding.
//!
//! [`EncoderAttention::Windowed`]: crate::asr::EncoderAttention::Windowed

use candle_core::{DType, Device, Tensor};

use qwen3_speech_engine::Result;

use super::features::StreamFeatures;
use crate::asr::encoder::AudioEncoder;
use crate::asr::lengths::{chunk_lengths, chunk_output_len};

/// A complete window's encoder output.
#[derive(Debug, Clone)]
struct CachedWindow {
    embeds: Tensor,
    /// Floor the features had when it was encoded.
    floor: f32,
    /// Smallest raw value of its frames.
    raw_min: f32,
    /// Unique id: a window encoded again gets a new one.
    id: u64,
}

/// What one [`IncrementalEncoder::encode`] produced.
#[derive(Debug, Clone)]
pub struct StreamEncoding {
    /// `(N, hidden)` audio embeddings of the whole stream.
    pub embeds: Tensor,
    /// Tokens per attention window.
    pub window_tokens: usize,
    /// Ids of the complete windows at the start of `embeds` (each `window_tokens` rows); a
    /// window keeps its id as long as its output does not change.
    pub complete: Vec<u64>,
    /// Encoder tokens computed by this call (the open part, plus complete windows encoded
    /// again).
    pub computed_tokens: usize,
    /// Complete windows encoded again because the floor moved.
    pub reencoded_windows: usize,
}

/// Keeps the outputs of complete windows between calls.
#[derive(Debug, Default)]
pub struct IncrementalEncoder {
    windows: Vec<CachedWindow>,
    next_id: u64,
}

impl IncrementalEncoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets everything.
    pub fn reset(&mut self) {
        self.windows.clear();
    }

    /// Complete windows currently kept.
    pub fn cached_windows(&self) -> usize {
        self.windows.len()
    }

    /// Encodes the stream (call [`StreamFeatures::update`] first).
    pub fn encode(
        &mut self,
        encoder: &AudioEncoder,
        features: &StreamFeatures,
        dtype: DType,
        device: &Device,
    ) -> Result<StreamEncoding> {
        let cfg = encoder.config();
        let chunk = cfg.chunk_frames();
        let window_frames = cfg.n_window_infer;
        let frames = features.frames();
        let lens = chunk_lengths(frames, chunk);
        let pad_to = lens.iter().copied().max().unwrap_or(0);
        let chunk_tokens: Vec<usize> = lens.iter().map(|&l| chunk_output_len(l)).collect();
        let window = encoder.window_tokens(&chunk_tokens, crate::asr::EncoderAttention::Windowed);
        let floor = features.floor();
        let complete = (features.final_frames() / window_frames).min(frames / window_frames);
        if self.windows.len() > complete {
            // Cannot happen while audio only grows; stay correct if it does.
            self.windows.truncate(complete);
        }
        let mel = |range: std::ops::Range<usize>| -> Result<Tensor> {
            Ok(features.mel(range, device)?.to_dtype(dtype)?)
        };
        let mut computed = 0;
        let mut reencoded = 0;
        // Kept windows whose features changed with the floor.
        for (w, cached) in self.windows.iter_mut().enumerate() {
            // max(raw, old) == max(raw, new) for every raw value of the window iff no raw
            // value lies below the higher of the two floors (the floor can also fall: the
            // last frames are recomputed as audio arrives).
            if cached.floor == floor || cached.raw_min >= floor.max(cached.floor) {
                cached.floor = floor;
                continue;
            }
            let range = w * window_frames..(w + 1) * window_frames;
            cached.embeds = encoder.forward_segment(&mel(range)?, pad_to, window)?;
            cached.floor = floor;
            cached.id = self.next_id;
            self.next_id += 1;
            computed += window;
            reencoded += 1;
        }
        // The frames after the kept windows: new complete windows, then the open part.
        let start = self.windows.len() * window_frames;
        let open = if start < frames {
            let out = encoder.forward_segment(&mel(start..frames)?, pad_to, window)?;
            computed += out.dim(0)?;
            Some(out)
        } else {
            None
        };
        let mut offset = 0;
        for w in self.windows.len()..complete {
            let open = open
                .as_ref()
                .expect("complete windows lie in the open part");
            let range = w * window_frames..(w + 1) * window_frames;
            self.windows.push(CachedWindow {
                embeds: open.narrow(0, offset, window)?,
                floor,
                raw_min: features.raw_min(range),
                id: self.next_id,
            });
            self.next_id += 1;
            offset += window;
        }
        let mut parts: Vec<Tensor> = self.windows.iter().map(|w| w.embeds.clone()).collect();
        if let Some(open) = &open {
            let rest = open.dim(0)? - offset;
            if rest > 0 {
                parts.push(open.narrow(0, offset, rest)?);
            }
        }
        let embeds = Tensor::cat(&parts, 0)?;
        Ok(StreamEncoding {
            embeds,
            window_tokens: window,
            complete: self.windows.iter().map(|w| w.id).collect(),
            computed_tokens: computed,
            reencoded_windows: reencoded,
        })
    }
}
