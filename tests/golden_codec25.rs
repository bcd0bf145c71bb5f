//! The 25 Hz speech tokenizer against the reference (qwen-tts 0.1.1) on the tiny codec of
//! `tests/fixtures/codec25-tiny` (float32, made by tools/reference/gen_codec25.py): the encoder
//! mel and codes, the x-vector path (fbank, tiny `campplus.onnx` run by the built-in ONNX
//! interpreter, reference mel), the DiT flow-matching mel for the reference's injected noise,
//! the BigVGAN waveform, the torch-compatible noise generator, and the `SpeechTokenizer` entry.

mod common;

use candle_core::{Device, Tensor};
use common::*;
use qwen3_speech::codecs::codec25::{
    Codec25, Encoded25, FlowOptions, SpeakerConditioning, dit, encoder, ops, rng, xvector,
};
use qwen3_speech::codecs::{Codes, SpeechTokenizer};

const DIR: &str = "codec25-tiny";
const MEL_REL: f32 = 1e-4;
const DIT_REL: f32 = 1e-3;
const WAVE_REL: f32 = 1e-3;
const XVEC_ABS: f32 = 1e-4;

fn codec() -> Codec25 {
    Codec25::load(&fixture(DIR), &Device::Cpu).unwrap()
}

fn t2(v: Vec<f32>, rows: usize, cols: usize) -> Tensor {
    Tensor::from_vec(v, (rows, cols), &Device::Cpu).unwrap()
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

fn speaker(d: &std::collections::HashMap<String, Tensor>) -> SpeakerConditioning {
    let rm = &d["ref_mel"];
    SpeakerConditioning {
        xvector: to_f32_vec(&d["xvector"]),
        ref_mel: to_f32_vec(rm),
        ref_mel_frames: rm.dims()[0],
    }
}

#[test]
fn properties_come_from_config() {
    let c = codec();
    assert_eq!(c.model_type(), "qwen3_tts_tokenizer_25hz");
    assert_eq!(c.sample_rate(), 16_000);
    assert_eq!(c.output_sample_rate(), 1500);
    assert_eq!(c.samples_per_code(), 640);
    assert_eq!(c.frame_rate(), 25.0);
    assert_eq!(c.decode_upsample_rate(), 60);
    assert_eq!(c.mel_frames(11), 22);
    assert_eq!(c.config().vocoder_hop(), 30);
    assert_eq!(c.config().decoder_config.dit_config.num_hidden_layers, 4);
    assert!(c.xvector_extractor().is_some());
}

#[test]
fn mel_and_codes_match_reference() {
    let c = codec();
    let t = load_tensors(&format!("{DIR}/expected/encode.safetensors"));
    let wave = to_f32_vec(&t["waveform_a"]);
    let (mel, frames) = encoder::utterance_mel(&wave, 640, 128).unwrap();
    assert_eq!(frames, 44);
    let r = assert_close("encoder mel", &t2(mel, 128, frames), &t["mel_a"], MEL_REL);
    eprintln!("encoder mel: relative error {r:e}");
    for (w, k) in [("waveform_a", "codes_a"), ("waveform_b", "codes_b")] {
        let wave = to_f32_vec(&t[w]);
        let codes = c.encode_codes(&wave).unwrap();
        assert_eq!(codes, to_u32_vec(&t[k]), "{k}");
    }
    // Pre-VQ vectors (packed downsample output), for the margin of the code comparison.
    let mel = t["mel_a"].clone();
    let enc = c.encoder();
    let (x, windows) = enc.front_end(&mel).unwrap();
    assert_eq!(windows, vec![4, 4, 4, 4, 4, 2]);
    let y = enc.downsample(&enc.blocks(x, &windows).unwrap()).unwrap();
    assert_close("pre-VQ", &y, &t["pre_vq_a"], 1e-4);
    assert_eq!(
        enc.nearest(&t["pre_vq_a"]).unwrap(),
        to_u32_vec(&t["codes_a"])
    );
}

#[test]
fn xvector_path_matches_reference() {
    let c = codec();
    let t = load_tensors(&format!("{DIR}/expected/encode.safetensors"));
    let wave = to_f32_vec(&t["waveform_a"]);
    let norm = xvector::peak_normalize(&wave);
    let d = max_abs(&norm, &to_f32_vec(&t["sox_norm_a"]));
    assert!(d < 1e-6, "sox norm differs by {d:e}");
    let (mut fb, frames) = xvector::kaldi_fbank(&to_f32_vec(&t["sox_norm_a"])).unwrap();
    assert_close("fbank", &t2(fb.clone(), frames, 80), &t["fbank_a"], 1e-4);
    xvector::mean_normalize(&mut fb, 80);
    assert_close("fbank cmn", &t2(fb, frames, 80), &t["fbank_cmn_a"], 1e-4);
    let xv = c.xvector_extractor().unwrap();
    let raw = xv
        .embed_features(&to_f32_vec(&t["fbank_cmn_a"]), frames)
        .unwrap();
    let d = max_abs(&raw, &to_f32_vec(&t["xvector_raw_a"]));
    assert!(d < XVEC_ABS, "raw x-vector differs by {d:e}");
    for k in ["a", "b"] {
        let e = c.encode(&to_f32_vec(&t[&format!("waveform_{k}")])).unwrap();
        let d = max_abs(&e.speaker.xvector, &to_f32_vec(&t[&format!("xvector_{k}")]));
        assert!(d < XVEC_ABS, "x-vector {k} differs by {d:e}");
        eprintln!("x-vector {k}: max abs error {d:e}");
        let rm = &t[&format!("ref_mel_{k}")];
        assert_eq!(e.speaker.ref_mel_frames, rm.dims()[0]);
        let got = t2(e.speaker.ref_mel.clone(), e.speaker.ref_mel_frames, 80);
        let (abs, _) = diff(&got, rm);
        assert!(abs < 1e-3, "reference mel {k}: max abs diff {abs:e}");
        assert_eq!(e.codes, to_u32_vec(&t[&format!("codes_{k}")]));
    }
}

#[test]
fn dit_mel_and_waveform_match_reference_for_injected_noise() {
    let c = codec();
    let d = load_tensors(&format!("{DIR}/expected/decode.safetensors"));
    let grid = dit::time_grid(10, Some(-1.0));
    let d_grid = max_abs(&grid, &to_f32_vec(&d["time_grid"]));
    assert!(d_grid < 1e-6, "time grid differs by {d_grid:e}");
    let enc = Encoded25 {
        codes: to_u32_vec(&d["codes"]),
        speaker: speaker(&d),
    };
    let noise = to_f32_vec(&d["noise"]);
    // One network evaluation at t = 0 on the doubled batch.
    let dev = Device::Cpu;
    let cond = c
        .dit()
        .condition(
            &enc.codes,
            &Tensor::from_slice(&enc.speaker.xvector, 192, &dev).unwrap(),
            &d["ref_mel"],
        )
        .unwrap();
    let x0 = Tensor::from_slice(&noise, (22, 80), &dev).unwrap();
    let v0 = c.dit().forward(&x0, 0.0, &cond).unwrap();
    let r_v = assert_close("velocity at step 0", &v0, &d["velocity_raw_0"], DIT_REL);
    let mel = c
        .generate_mel(&enc, &noise, FlowOptions::default())
        .unwrap();
    let r_mel = assert_close("DiT mel (10 points)", &mel, &d["mel"], DIT_REL);
    let opts3 = FlowOptions {
        num_steps: 3,
        ..FlowOptions::default()
    };
    let mel3 = c.generate_mel(&enc, &noise, opts3).unwrap();
    let r_mel3 = assert_close("DiT mel (3 points)", &mel3, &d["mel_3steps"], DIT_REL);
    eprintln!("relative error: velocity {r_v:e}, DiT mel {r_mel:e}, 3-point mel {r_mel3:e}");
    // The vocoder on the reference's mel, then the whole decode.
    let wav = c.vocode(&d["mel"]).unwrap();
    let r_voc = assert_close(
        "BigVGAN waveform",
        &Tensor::new(wav.as_slice(), &dev).unwrap(),
        &d["waveform"],
        WAVE_REL,
    );
    let full = c
        .decode_with_noise(&enc, &noise, FlowOptions::default())
        .unwrap();
    assert_eq!(full.len(), 11 * 60);
    let r_full = assert_close(
        "decoded waveform",
        &Tensor::new(full.as_slice(), &dev).unwrap(),
        &d["decoded"],
        WAVE_REL,
    );
    eprintln!("relative error: vocoder {r_voc:e}, full decode {r_full:e}");
}

#[test]
fn torch_compatible_noise_generator() {
    let d = load_tensors(&format!("{DIR}/expected/decode.safetensors"));
    let expected = to_f32_vec(&d["noise"]);
    let got = rng::torch_randn(1234, expected.len());
    let e = max_abs(&got, &expected);
    assert!(e < 1e-5, "torch randn differs by {e:e}");
    // The seeded decode is the injected-noise decode with that draw.
    let c = codec();
    let enc = Encoded25 {
        codes: to_u32_vec(&d["codes"]),
        speaker: speaker(&d),
    };
    let wav = c.decode(&enc, 1234).unwrap();
    let want = to_f32_vec(&d["decoded"]);
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(max_abs(&wav, &want) <= WAVE_REL * scale);
}

#[test]
fn kaiser_taps_match_reference() {
    let taps = ops::kaiser_sinc_taps(0.25, 0.3, 12);
    let half = [
        0.002_028_964_7,
        0.009_389_466,
        -0.025_543_459,
        -0.057_657_383,
        0.128_572_58,
        0.443_209_8,
    ];
    for i in 0..6 {
        assert!((taps[i] - half[i]).abs() < 1e-7, "tap {i}: {}", taps[i]);
        assert!((taps[11 - i] - half[i]).abs() < 1e-7, "tap {}", 11 - i);
    }
}

#[test]
fn speech_tokenizer_picks_the_25hz_codec() {
    let tok = SpeechTokenizer::load(&fixture(DIR), &Device::Cpu).unwrap();
    assert_eq!(tok.model_type(), "qwen3_tts_tokenizer_25hz");
    assert!(tok.needs_speaker());
    assert_eq!(tok.num_quantizers(), 1);
    assert_eq!(tok.sample_rate(), 16_000);
    assert_eq!(tok.samples_per_frame(), 60);
    let t = load_tensors(&format!("{DIR}/expected/encode.safetensors"));
    let wave = to_f32_vec(&t["waveform_b"]);
    let (codes, spk) = tok.encode_with_speaker(&wave).unwrap();
    assert_eq!(codes.as_slice(), to_u32_vec(&t["codes_b"]).as_slice());
    assert_eq!(tok.encode(&wave).unwrap(), codes);
    let err = tok.decode(&codes).unwrap_err().to_string();
    assert!(err.contains("x-vector"), "{err}");
    let wav = tok.decode_with_speaker(&codes, spk.as_ref(), 3).unwrap();
    assert_eq!(wav.len(), codes.frames() * 60);
    assert!(wav.iter().all(|v| v.is_finite() && v.abs() <= 1.0));
    let two = Codes::new(vec![1, 2, 3, 4], 2).unwrap();
    assert!(tok.decode_with_speaker(&two, spk.as_ref(), 0).is_err());
}

#[test]
fn bad_input_is_an_error() {
    let c = codec();
    assert!(c.encode_codes(&[]).is_err());
    assert!(c.encode_codes(&[f32::NAN; 1000]).is_err());
    let d = load_tensors(&format!("{DIR}/expected/decode.safetensors"));
    let mut enc = Encoded25 {
        codes: vec![65, 1],
        speaker: speaker(&d),
    };
    let noise = vec![0f32; 4 * 80];
    let e = c
        .decode_with_noise(&enc, &noise, FlowOptions::default())
        .unwrap_err();
    assert!(e.to_string().contains("code 65"), "{e}");
    enc.codes = vec![1, 2];
    assert!(
        c.decode_with_noise(&enc, &noise[..80], FlowOptions::default())
            .is_err()
    );
    enc.speaker.xvector.pop();
    assert!(
        c.decode_with_noise(&enc, &noise, FlowOptions::default())
            .is_err()
    );
}
