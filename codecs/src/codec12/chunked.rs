//! The reference's chunked decode (`Qwen3TTSTokenizerV2Decoder.chunked_decode`).
//!
//! `model.decode` never runs the decoder over a whole utterance: it cuts the codes at absolute
//! multiples of `chunk_size` (300) frames and decodes every chunk **from scratch** together
//! with up to `left_context` (25) frames before it, then drops the context's samples and
//! concatenates. RoPE positions, convolution padding and the attention window all restart per
//! chunk, so past frame 300 the result differs from one pass over everything (the decoder's
//! attention reach, 8 layers × 71 frames, is far beyond 25 frames).

use qwen3_speech_engine::Result;

use super::decoder::Decoder;

/// Frames per chunk of the reference's `model.decode`.
pub const CHUNK_SIZE: usize = 300;
/// Frames of left context decoded (and discarded) before every chunk after the first.
pub const LEFT_CONTEXT: usize = 25;

/// One chunk: frames `start..end` are kept, frames `start - context..start` are decoded first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    pub start: usize,
    pub end: usize,
    pub context: usize,
}

/// The chunks of `frames` frames. The reference's context rule (`left_context` when
/// `start - left_context > 0`, else `start`) is `min(start, left_context)`.
pub fn plan(frames: usize, chunk_size: usize, left_context: usize) -> Vec<Chunk> {
    let chunk_size = chunk_size.max(1);
    let mut out = Vec::new();
    let mut start = 0;
    while start < frames {
        let end = (start + chunk_size).min(frames);
        out.push(Chunk {
            start,
            end,
            context: start.min(left_context),
        });
        start = end;
    }
    out
}

/// Decodes `codes` (`[frame][level]`, `frames` frames) chunk by chunk as the reference does.
pub fn chunked_decode(
    decoder: &Decoder,
    codes: &[u32],
    frames: usize,
    chunk_size: usize,
    left_context: usize,
) -> Result<Vec<f32>> {
    let q = decoder.num_quantizers();
    let spf = decoder.samples_per_frame();
    let mut out = Vec::with_capacity(frames * spf);
    for c in plan(frames, chunk_size, left_context) {
        qwen3_speech_engine::cancel::checkpoint()?;
        let first = c.start - c.context;
        let mut state = decoder.new_state();
        let wav = decoder.forward(&codes[first * q..c.end * q], c.end - first, &mut state)?;
        out.extend_from_slice(&wav[c.context * spf..]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_matches_reference_rule() {
        let p = plan(700, 300, 25);
        assert_eq!(
            p,
            vec![
                Chunk {
                    start: 0,
                    end: 300,
                    context: 0
                },
                Chunk {
                    start: 300,
                    end: 600,
                    context: 25
                },
                Chunk {
                    start: 600,
                    end: 700,
                    context: 25
                },
            ]
        );
        // Small chunks: the context is limited by what exists.
        let p = plan(7, 2, 3);
        let ctx: Vec<usize> = p.iter().map(|c| c.context).collect();
        assert_eq!(ctx, vec![0, 2, 3, 3]);
        assert!(plan(0, 300, 25).is_empty());
        assert_eq!(plan(300, 300, 25).len(), 1);
    }
}
