//! Splitting long audio at low-energy points (`split_audio_into_chunks` of the reference).

/// One piece of a long clip.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioChunk {
    /// Samples of the piece, zero-padded at the end to at least `min_len` samples.
    pub samples: Vec<f32>,
    /// Start of the piece in the original clip, in seconds.
    pub offset_sec: f64,
    /// Samples of the piece before padding.
    pub original_len: usize,
}

/// Cuts `wav` into pieces of at most `max_chunk_sec`, each cut placed at the quietest sample of
/// the quietest 100 ms window within ±`search_expand_sec` of the nominal cut. Concatenating the
/// pieces (without their padding) gives back `wav` exactly. Pieces shorter than 0.5 s are
/// zero-padded to 0.5 s, except when the clip is not split at all (as the reference).
pub fn split_audio_into_chunks(
    wav: &[f32],
    sample_rate: u32,
    max_chunk_sec: f64,
    search_expand_sec: f64,
    min_window_ms: f64,
) -> Vec<AudioChunk> {
    let sr = sample_rate as f64;
    let total = wav.len();
    if total as f64 / sr <= max_chunk_sec {
        return vec![AudioChunk {
            samples: wav.to_vec(),
            offset_sec: 0.0,
            original_len: total,
        }];
    }
    let max_len = ((max_chunk_sec * sr) as usize).max(1);
    let expand = (search_expand_sec * sr) as usize;
    let win = ((min_window_ms / 1000.0 * sr) as usize).max(4);
    let mut pieces: Vec<(usize, usize, f64)> = Vec::new();
    let mut start = 0usize;
    let mut offset = 0f64;
    while total - start > max_len {
        let cut = start + max_len;
        let left = start.max(cut.saturating_sub(expand));
        let right = total.min(cut + expand);
        let boundary = if right - left <= win {
            cut
        } else {
            left + quietest_point(&wav[left..right], win)
        };
        let boundary = boundary.max(start + 1).min(total);
        pieces.push((start, boundary, offset));
        offset += (boundary - start) as f64 / sr;
        start = boundary;
    }
    pieces.push((start, total, offset));
    let min_len = (0.5 * sr) as usize;
    pieces
        .into_iter()
        .map(|(s, e, off)| {
            let mut samples = wav[s..e].to_vec();
            if samples.len() < min_len {
                samples.resize(min_len, 0.0);
            }
            AudioChunk {
                samples,
                offset_sec: off,
                original_len: e - s,
            }
        })
        .collect()
}

/// The quietest sample of the quietest window of `win` samples in `seg` (the first of each
/// on ties): where the reference cuts long audio, and where a long stream closes a segment.
/// `seg` must hold more than `win` samples.
pub fn quietest_point(seg: &[f32], win: usize) -> usize {
    let wstart = quietest_window(seg, win);
    wstart + first_min_index(seg[wstart..wstart + win].iter().map(|x| x.abs()))
}

/// Start of the first window of `win` samples with the smallest sum of |x|. The sums are
/// accumulated in f32 per window like numpy's `convolve` (a direct dot product per output).
fn quietest_window(seg: &[f32], win: usize) -> usize {
    let abs: Vec<f32> = seg.iter().map(|x| x.abs()).collect();
    let n = abs.len() + 1 - win;
    let mut best = 0;
    let mut best_sum = f32::INFINITY;
    // A running sum in f64 locates candidates fast; near-ties are re-checked with the exact
    // f32 window sum so the choice matches the reference's f32 arithmetic closely.
    let mut running: f64 = abs[..win].iter().map(|&x| x as f64).sum();
    for i in 0..n {
        if i > 0 {
            running += abs[i + win - 1] as f64 - abs[i - 1] as f64;
        }
        if (running as f32) <= best_sum * (1.0 + 1e-5) + 1e-12 {
            let exact: f32 = abs[i..i + win].iter().sum();
            if exact < best_sum {
                best_sum = exact;
                best = i;
            }
        }
    }
    best
}

fn first_min_index(values: impl Iterator<Item = f32>) -> usize {
    let mut best = 0;
    let mut best_v = f32::INFINITY;
    for (i, v) in values.enumerate() {
        if v < best_v {
            best_v = v;
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_audio_is_one_unpadded_chunk() {
        let wav = vec![0.1f32; 100];
        let c = split_audio_into_chunks(&wav, 16000, 10.0, 5.0, 100.0);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].samples.len(), 100);
    }

    #[test]
    fn splits_at_the_earliest_quietest_point_and_reassembles() {
        // All zeros, 10 s + 100 samples, max 10 s: the earliest minimum is at 5.0 s.
        let wav = vec![0f32; 160_100];
        let c = split_audio_into_chunks(&wav, 16000, 10.0, 5.0, 100.0);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].original_len, 80_000);
        assert_eq!(c[1].offset_sec, 5.0);

        // A loud signal with a silent gap near the nominal cut: the cut lands in the gap.
        let mut wav: Vec<f32> = (0..16000 * 25)
            .map(|i| ((i as f32) * 0.05).sin() * 0.5)
            .collect();
        for x in &mut wav[16000 * 9..16000 * 9 + 3200] {
            *x = 0.0;
        }
        let c = split_audio_into_chunks(&wav, 16000, 10.0, 5.0, 100.0);
        let b = c[0].original_len;
        assert!((16000 * 9..16000 * 9 + 3200).contains(&b), "{b}");
        let joined: Vec<f32> = c
            .iter()
            .flat_map(|p| p.samples[..p.original_len].to_vec())
            .collect();
        assert_eq!(joined, wav);
    }
}
