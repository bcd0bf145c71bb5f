//! Token counts of the audio encoder (the reference's `_get_feat_extract_output_lengths`).

/// Encoder outputs of one conv chunk of `frames` mel frames: three stride-2 convolutions,
/// i.e. `ceil(frames / 8)`, and 0 for 0 frames.
pub fn chunk_output_len(frames: usize) -> usize {
    if frames == 0 {
        return 0;
    }
    let mut n = frames;
    for _ in 0..3 {
        n = (n - 1) / 2 + 1;
    }
    n
}

/// Audio tokens for `frames` mel frames: 13 per full 100-frame chunk plus the tail chunk's.
/// This is the number of `<|audio_pad|>` placeholders in the prompt.
pub fn audio_token_count(frames: usize) -> usize {
    13 * (frames / 100) + chunk_output_len(frames % 100)
}

/// Lengths of the conv chunks of `frames` frames: `chunk` each, the last one shorter.
pub fn chunk_lengths(frames: usize, chunk: usize) -> Vec<usize> {
    let n = frames.div_ceil(chunk);
    (0..n)
        .map(|i| {
            if i + 1 < n {
                chunk
            } else {
                frames - chunk * (n - 1)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_reference_formula() {
        // Values checked against the reference formula in asr.md §2.3.
        for (t, n) in [
            (1, 1),
            (7, 1),
            (8, 1),
            (9, 2),
            (50, 7),
            (99, 13),
            (100, 13),
            (101, 14),
            (199, 26),
            (200, 26),
            (201, 27),
            (234, 31),
            (530, 69),
            (3000, 390),
        ] {
            assert_eq!(audio_token_count(t), n, "T={t}");
        }
        assert_eq!(chunk_lengths(530, 100), vec![100, 100, 100, 100, 100, 30]);
        assert_eq!(chunk_lengths(300, 100), vec![100, 100, 100]);
        assert_eq!(chunk_lengths(35, 100), vec![35]);
        assert_eq!(chunk_output_len(0), 0);
    }
}
