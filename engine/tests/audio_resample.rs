//! Resampler quality, alignment, length and streaming tests.

use qwen3_speech_engine::audio::{StreamingResampler, resample, resampled_len};

const PAIRS: [(u32, u32); 6] = [
    (44_100, 16_000),
    (48_000, 16_000),
    (16_000, 24_000),
    (22_050, 24_000),
    (24_000, 16_000),
    (8_000, 16_000),
];

fn sine(rate: u32, freq: f64, n: usize, phase: f64) -> Vec<f32> {
    (0..n)
        .map(|i| {
            (0.5 * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate) + phase).sin())
                as f32
        })
        .collect()
}

/// SNR (dB) of `out` against the ideal sine at the output rate, over the middle 80%.
fn sine_snr(out: &[f32], rate: u32, freq: f64, phase: f64) -> f64 {
    let ideal = sine(rate, freq, out.len(), phase);
    let (a, b) = (out.len() / 10, out.len() * 9 / 10);
    let mut sig = 0.0;
    let mut err = 0.0;
    for i in a..b {
        let s = f64::from(ideal[i]);
        let e = f64::from(out[i]) - s;
        sig += s * s;
        err += e * e;
    }
    10.0 * (sig / err.max(1e-300)).log10()
}

#[test]
fn sine_stays_a_sine_and_aligned() {
    for (from, to) in PAIRS {
        let lower_nyquist = f64::from(from.min(to)) / 2.0;
        // a low tone and one at 80% of the lower Nyquist frequency (sensitive to misalignment)
        for freq in [440.0, 0.8 * lower_nyquist] {
            let x = sine(from, freq, from as usize, 0.3);
            let y = resample(&x, from, to).unwrap();
            assert_eq!(y.len(), resampled_len(x.len(), from, to));
            let snr = sine_snr(&y, to, freq, 0.3);
            println!("{from} -> {to} Hz, {freq:.0} Hz sine: SNR {snr:.1} dB");
            assert!(snr > 60.0, "{from}->{to} {freq}: {snr:.1} dB");
        }
    }
}

#[test]
fn anti_aliasing_rejects_above_nyquist() {
    // A 10 kHz tone cannot exist at 16 kHz: it must be removed, not folded to 6 kHz.
    let x = sine(48_000, 10_000.0, 48_000, 0.0);
    let y = resample(&x, 48_000, 16_000).unwrap();
    let mid = &y[1600..14400];
    let rms = (mid.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / mid.len() as f64).sqrt();
    let db = 20.0 * (rms / (0.5 / 2f64.sqrt())).log10();
    println!("10 kHz tone 48k->16k: residual {db:.1} dB");
    assert!(db < -80.0, "{db}");
}

#[test]
fn streaming_equals_offline() {
    let mut seed = 12345u64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for (from, to) in PAIRS
        .iter()
        .copied()
        .chain([(16_000, 16_000), (44_100, 16_001)])
    {
        let n = 30_000 + (rand() % 5000) as usize;
        let x: Vec<f32> = (0..n)
            .map(|_| (rand() % 20001) as f32 / 20000.0 - 0.5)
            .collect();
        let offline = resample(&x, from, to).unwrap();
        let mut r = StreamingResampler::new(from, to).unwrap();
        for round in 0..2 {
            // run the stream twice: flush must leave the resampler ready for a new stream
            let mut streamed = Vec::new();
            let mut pos = 0;
            while pos < n {
                let take = match rand() % 4 {
                    0 => 1,
                    1 => (rand() % 17) as usize,
                    2 => (rand() % 700) as usize,
                    _ => (rand() % 5000) as usize,
                }
                .min(n - pos);
                streamed.extend(r.push(&x[pos..pos + take]).unwrap());
                pos += take;
            }
            streamed.extend(r.flush().unwrap());
            assert_eq!(streamed.len(), offline.len(), "{from}->{to} round {round}");
            assert!(
                streamed == offline,
                "{from}->{to} round {round}: samples differ"
            );
        }
    }
}

#[test]
fn edge_lengths() {
    for (from, to) in PAIRS {
        assert!(resample(&[], from, to).unwrap().is_empty());
        for n in [1usize, 2, 3, 159, 160, 161, 1000] {
            let x = vec![0.25f32; n];
            let y = resample(&x, from, to).unwrap();
            assert_eq!(y.len(), resampled_len(n, from, to), "{from}->{to} n={n}");
            assert!(y.iter().all(|v| v.is_finite()));
        }
    }
    // pass-through is exact
    let x = vec![0.1f32, -0.2, 0.3];
    assert_eq!(resample(&x, 16_000, 16_000).unwrap(), x);
}

#[test]
fn dc_gain_is_unity() {
    for (from, to) in PAIRS {
        let x = vec![0.5f32; from as usize];
        let y = resample(&x, from, to).unwrap();
        let mid = &y[y.len() / 4..y.len() * 3 / 4];
        let worst = mid.iter().map(|v| (v - 0.5).abs()).fold(0.0, f32::max);
        assert!(worst < 1e-4, "{from}->{to}: {worst}");
    }
}
