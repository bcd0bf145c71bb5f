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

/// The conv stem output of one final 100-frame chunk of the open part.
#[derive(Debug, Clone)]
struct CachedChunk {
    /// Rows after the position add (13 for a full chunk).
    rows: Tensor,
    floor: f32,
    raw_min: f32,
}

impl CachedChunk {
    /// Still valid with `floor` (see [`CachedWindow`]'s rule).
    fn valid(&mut self, floor: f32) -> bool {
        let ok = self.floor == floor || self.raw_min >= floor.max(self.floor);
        if ok {
            self.floor = floor;
        }
        ok
    }
}

/// Keeps the outputs of complete windows, and the conv stem of final chunks of the open
/// part, between calls.
#[derive(Debug, Default)]
pub struct IncrementalEncoder {
    windows: Vec<CachedWindow>,
    /// Stems of the final chunks right after the kept windows, in order.
    chunks: Vec<CachedChunk>,
    next_id: u64,
}

impl IncrementalEncoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets everything.
    pub fn reset(&mut self) {
        self.windows.clear();
        self.chunks.clear();
    }

    /// Complete windows currently kept.
    pub fn cached_windows(&self) -> usize {
        self.windows.len()
    }

    /// Chunk stems of the open part currently kept.
    pub fn cached_chunks(&self) -> usize {
        self.chunks.len()
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
            self.chunks.clear();
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
        // The frames after the kept windows: new complete windows, then the open part. Their
        // conv stem is computed only for chunks that are not kept (new or not final yet).
        let start = self.windows.len() * window_frames;
        let first_chunk = start / chunk;
        let mut keep = 0;
        for c in self.chunks.iter_mut() {
            if !c.valid(floor) {
                break;
            }
            keep += 1;
        }
        self.chunks.truncate(keep);
        let mut rows: Vec<Tensor> = self.chunks.iter().map(|c| c.rows.clone()).collect();
        let from = (first_chunk + self.chunks.len()) * chunk;
        if from < frames {
            let stem = encoder.stem_segment(&mel(from..frames)?, pad_to)?;
            let final_frames = features.final_frames();
            let mut offset = 0;
            for (i, &n) in stem.chunk_tokens.iter().enumerate() {
                let c0 = from + i * chunk;
                let part = stem.embedded.narrow(0, offset, n)?;
                offset += n;
                if c0 + chunk <= final_frames {
                    // A final full chunk (final chunks come first, so it follows the kept
                    // ones): keep its stem.
                    self.chunks.push(CachedChunk {
                        rows: part.clone(),
                        floor,
                        raw_min: features.raw_min(c0..c0 + chunk),
                    });
                }
                rows.push(part);
            }
        }
        let open = if rows.is_empty() {
            None
        } else {
            let embedded = Tensor::cat(&rows, 0)?;
            let out = encoder.forward_embedded(&embedded, window)?;
            computed += out.dim(0)?;
            Some(out)
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
            // Its chunks now live in the window.
            let per_window = window_frames / chunk;
            self.chunks.drain(..per_window.min(self.chunks.len()));
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
