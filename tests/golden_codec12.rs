//! The 12 Hz speech tokenizer against the reference (qwen-tts 0.1.1) on the tiny codec of
//! `tests/fixtures/codec12-tiny` (float32): encode intermediates and codes for espeak speech, a
//! synthetic signal and edge lengths; every decoder stage; the chunked decode of 700 frames
//! (3 chunks); other chunk sizes; the incremental decoder against the offline decode; bad input.

mod common;

use std::path::Path;

use candle_core::{Device, Tensor};
use common::*;
use qwen3_speech::codecs::codec12::{Codec12, Codes};
use qwen3_speech::codecs::{SpeechTokenizer, find_tokenizer_dir};

const REL: f32 = 1e-4;
const WAVE_ABS: f32 = 1e-4;
const DIR: &str = "codec12-tiny";

fn codec() -> Codec12 {
    Codec12::load(&fixture(DIR), &Device::Cpu).unwrap()
}

/// A Rust `(time, channels)` tensor in the reference's layout of `expected`: transposed when the
/// reference is channels-first, flattened when it is 1-D.
fn like_reference(actual: &Tensor, expected: &Tensor) -> Tensor {
    let (a, e) = (actual.dims(), expected.dims());
    if e.len() == 1 {
        return actual.flatten_all().unwrap();
    }
    if a == e {
        return actual.clone();
    }
    assert_eq!(
        (a[0], a[1]),
        (e[1], e[0]),
        "shape {a:?} does not match the reference {e:?}"
    );
    actual.t().unwrap().contiguous().unwrap()
}

fn close(what: &str, actual: &Tensor, expected: &Tensor) -> f32 {
    assert_close(what, &like_reference(actual, expected), expected, REL)
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

fn codes_of(t: &Tensor) -> Codes {
    Codes::from_tensor(t).unwrap()
}

#[test]
fn properties() {
    let c = codec();
    assert_eq!(c.sample_rate(), 24_000);
    assert_eq!(c.output_sample_rate(), 24_000);
    assert_eq!(c.frame_rate(), 500.0);
    assert_eq!(c.num_quantizers(), 4);
    assert_eq!(c.samples_per_frame(), 48);
    assert_eq!(c.codebook_size(), 64);
    assert_eq!(c.model_type(), "qwen3_tts_tokenizer_12hz");
}

#[test]
fn encode_matches_reference() {
    let c = codec();
    let enc = c.encoder();
    for name in ["speech", "synth"] {
        let t = load_tensors(&format!("{DIR}/expected/encode_{name}.safetensors"));
        let wave = to_f32_vec(&t["waveform"]);
        let tr = enc.encode_trace(&wave).unwrap();
        close(&format!("{name} seanet"), &tr.seanet.out, &t["seanet_out"]);
        if name == "synth" {
            close("synth seanet conv0", &tr.seanet.conv0, &t["seanet_conv0"]);
            assert_eq!(tr.seanet.stages.len(), 3);
            for (i, s) in tr.seanet.stages.iter().enumerate() {
                close(
                    &format!("synth seanet stage {i}"),
                    s,
                    &t[&format!("seanet_stage{i}")],
                );
            }
            close(
                "synth transformer layer 0",
                &tr.transformer_layer0,
                &t["transformer_layer0_out"],
            );
        }
        close(
            &format!("{name} transformer"),
            &tr.transformer_out,
            &t["transformer_out"],
        );
        close(
            &format!("{name} downsampled"),
            &tr.downsampled,
            &t["downsampled"],
        );
        close(
            &format!("{name} semantic input_proj"),
            &tr.quantizer_inputs.semantic,
            &t["semantic_proj"],
        );
        close(
            &format!("{name} acoustic input_proj"),
            &tr.quantizer_inputs.acoustic,
            &t["acoustic_proj"],
        );

        // Codes: identical, through the whole encoder and from the reference latent alone.
        let expected = codes_of(&t["codes"]);
        let codes = c.encode(&wave).unwrap();
        assert_eq!(codes.frames(), wave.len().div_ceil(48), "{name} frames");
        let differing = codes
            .as_slice()
            .iter()
            .zip(expected.as_slice())
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(
            differing, 0,
            "{name}: {differing} codes differ from the reference"
        );
        let latent = t["downsampled"].t().unwrap().contiguous().unwrap();
        assert_eq!(
            enc.quantize(&latent).unwrap(),
            expected.as_slice(),
            "{name}: codes of the reference latent"
        );
        let all = to_u32_vec(
            &t["all_codes"]
                .narrow(0, 0, 4)
                .unwrap()
                .t()
                .unwrap()
                .contiguous()
                .unwrap(),
        );
        assert_eq!(tr.codes, all, "{name}: levels 0..4 of all levels");

        // Decode of those codes (the speech clip is 928 frames: 4 chunks).
        let wav = c.decode(&codes).unwrap();
        let d = max_abs(&wav, &to_f32_vec(&t["decoded"]));
        eprintln!(
            "{name}: {} frames, decoded waveform max abs diff {d:e}",
            codes.frames()
        );
        assert!(d <= WAVE_ABS, "{name} decoded waveform: max abs diff {d:e}");
    }
}

#[test]
fn encode_edge_lengths() {
    let c = codec();
    let t = load_tensors(&format!("{DIR}/expected/encode_lengths.safetensors"));
    let meta = load_json(&format!("{DIR}/expected/codec12_cases.json"));
    let mut names: Vec<String> = meta["edge_lengths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.to_string())
        .collect();
    names.push("silence".into());
    for n in names {
        let wave = to_f32_vec(&t[&format!("waveform_{n}")]);
        let codes = c.encode(&wave).unwrap();
        assert_eq!(codes, codes_of(&t[&format!("codes_{n}")]), "{n} samples");
    }
}

#[test]
fn decoder_stages_match_reference() {
    let c = codec();
    let t = load_tensors(&format!("{DIR}/expected/decode_steps.safetensors"));
    let synth = load_tensors(&format!("{DIR}/expected/encode_synth.safetensors"));
    let frames = t["transformer_out"].dims()[0];
    let codes = codes_of(&synth["codes"]).slice(0, frames);
    let trace = c
        .decoder()
        .forward_trace(codes.as_slice(), codes.frames())
        .unwrap();
    let mut checked = 0;
    for (name, actual) in &trace {
        let expected = t
            .get(name)
            .unwrap_or_else(|| panic!("no reference tensor {name}"));
        let rel = close(name, actual, expected);
        eprintln!("decoder {name}: relative max diff {rel:e}");
        checked += 1;
    }
    assert_eq!(checked, t.len(), "every reference stage is compared");
}

#[test]
fn decode_longer_than_one_chunk() {
    let c = codec();
    let t = load_tensors(&format!("{DIR}/expected/decode_long.safetensors"));
    let codes = codes_of(&t["codes"]);
    assert_eq!(codes.frames(), 700);
    let expected = to_f32_vec(&t["waveform"]);
    let wav = c.decode(&codes).unwrap();
    let d = max_abs(&wav, &expected);
    eprintln!("700 frames (chunks 300 + 300 + 100): max abs diff {d:e}");
    assert!(d <= WAVE_ABS, "chunked decode: max abs diff {d:e}");

    // One pass without chunks is a different function past frame 300.
    let single = c.decode_single_pass(&codes).unwrap();
    let full = to_f32_vec(&t["full_forward"]);
    let d_full = max_abs(&single, &full);
    assert!(d_full <= WAVE_ABS, "single pass: max abs diff {d_full:e}");
    let split = 300 * 48;
    assert!(max_abs(&single[..split], &wav[..split]) <= WAVE_ABS);
    let restart_effect = max_abs(&single[split..], &wav[split..]);
    eprintln!("chunk restart changes samples after frame 300 by up to {restart_effect:e}");
    assert!(
        restart_effect > 1e-2,
        "the fixture must exercise the restart"
    );

    // Prefixes: chunk boundaries are absolute, the decoder causal.
    for n in [1, 15, 16, 17, 300, 301, 325, 326, 601] {
        let w = c.decode(&codes.slice(0, n)).unwrap();
        let d = max_abs(&w, &expected[..n * 48]);
        assert!(d <= WAVE_ABS, "prefix of {n} frames: max abs diff {d:e}");
    }

    // Other chunk parameters (chunked_decode(chunk_size, left_context_size)).
    let short = codes.slice(0, 20);
    for (cs, ctx) in [(7, 3), (2, 3)] {
        let w = c.decode_chunked(&short, cs, ctx).unwrap();
        let d = max_abs(&w, &to_f32_vec(&t[&format!("chunked_{cs}_{ctx}")]));
        assert!(
            d <= WAVE_ABS,
            "chunks of {cs} with {ctx} context: max abs diff {d:e}"
        );
    }
}

#[test]
fn incremental_decoder_matches_offline() {
    let c = codec();
    let t = load_tensors(&format!("{DIR}/expected/decode_long.safetensors"));
    let codes = codes_of(&t["codes"]);
    let reference = to_f32_vec(&t["waveform"]);
    let offline = c.decode(&codes).unwrap();

    // Uneven pieces crossing both chunk boundaries (300 and 600).
    let mut dec = c.incremental_decoder();
    let mut streamed = Vec::new();
    let mut at = 0;
    for n in [1, 5, 37, 257, 1, 24, 100, 175, 100] {
        let part = dec.push(&codes.slice(at, at + n)).unwrap();
        assert_eq!(part.len(), n * 48, "all audio of a frame comes at once");
        streamed.extend(part);
        at += n;
    }
    assert_eq!(at, 700);
    assert_eq!(dec.frames(), 700);
    assert!(
        dec.flush().unwrap().is_empty(),
        "no lookahead: nothing left"
    );
    let d_off = max_abs(&streamed, &offline);
    let d_ref = max_abs(&streamed, &reference);
    eprintln!("incremental vs offline: max abs {d_off:e}; vs reference {d_ref:e}");
    assert!(d_off <= WAVE_ABS && d_ref <= WAVE_ABS);

    // Frame by frame, then a reset starts a new utterance.
    let mut dec = c.incremental_decoder();
    let mut one = Vec::new();
    for f in codes.slice(0, 40).iter_frames() {
        one.extend(dec.push_frame(f).unwrap());
    }
    assert!(max_abs(&one, &offline[..40 * 48]) <= WAVE_ABS);
    dec.reset();
    let again = dec.push(&codes.slice(0, 10)).unwrap();
    assert!(max_abs(&again, &offline[..10 * 48]) <= WAVE_ABS);

    // Continuous mode: no restarts, i.e. one pass over everything.
    let mut dec = c.incremental_decoder().continuous();
    let mut cont = Vec::new();
    for (a, b) in [(0, 299), (299, 302), (302, 700)] {
        cont.extend(dec.push(&codes.slice(a, b)).unwrap());
    }
    let full = to_f32_vec(&t["full_forward"]);
    let d_cont = max_abs(&cont, &full);
    let split = 300 * 48;
    let d_after = max_abs(&cont[split..], &reference[split..]);
    eprintln!(
        "continuous incremental vs single pass {d_cont:e}; vs reference after frame 300 {d_after:e}"
    );
    assert!(d_cont <= WAVE_ABS);
    assert!(max_abs(&cont[..split], &reference[..split]) <= WAVE_ABS);

    // Custom chunking reproduces decode_chunked.
    let short = codes.slice(0, 20);
    let mut dec = c.incremental_decoder().with_chunks(7, 3).unwrap();
    let mut w = Vec::new();
    for (a, b) in [(0, 3), (3, 11), (11, 20)] {
        w.extend(dec.push(&short.slice(a, b)).unwrap());
    }
    assert!(max_abs(&w, &c.decode_chunked(&short, 7, 3).unwrap()) <= WAVE_ABS);
    assert!(c.incremental_decoder().with_chunks(0, 3).is_err());
}

#[test]
fn bad_input_is_an_error() {
    let c = codec();
    let err = c.encode(&[]).unwrap_err().to_string();
    assert!(err.contains("empty"), "{err}");
    let err = c.encode(&[0.1, f32::NAN, 0.2]).unwrap_err().to_string();
    assert!(err.contains("not a finite"), "{err}");
    // Wrong number of levels, codes outside the codebook.
    let three = Codes::new(vec![1, 2, 3], 3).unwrap();
    let err = c.decode(&three).unwrap_err().to_string();
    assert!(err.contains("levels"), "{err}");
    let big = Codes::new(vec![0, 1, 64, 2], 4).unwrap();
    let err = c.decode(&big).unwrap_err().to_string();
    assert!(err.contains("64"), "{err}");
    let mut dec = c.incremental_decoder();
    assert!(dec.push(&big).is_err());
    assert!(dec.push_frame(&[1, 2]).is_err());
    assert!(
        c.decode_chunked(&Codes::new(vec![0; 4], 4).unwrap(), 0, 3)
            .is_err()
    );
    // No frames, no samples.
    assert!(
        c.decode(&Codes::new(vec![], 4).unwrap())
            .unwrap()
            .is_empty()
    );
}

fn copy_fixture(dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for f in [
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
    ] {
        std::fs::copy(fixture(DIR).join(f), dst.join(f)).unwrap();
    }
}

fn edit_json(path: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

#[test]
fn broken_folders_are_errors() {
    let dev = Device::Cpu;
    let tmp = tempfile::tempdir().unwrap();
    let err = Codec12::load(&tmp.path().join("nope"), &dev)
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not exist"), "{err}");

    // Missing weights.
    let d = tmp.path().join("no_weights");
    copy_fixture(&d);
    std::fs::remove_file(d.join("model.safetensors")).unwrap();
    let err = Codec12::load(&d, &dev).unwrap_err().to_string();
    assert!(err.contains("model.safetensors"), "{err}");

    // Missing config.
    let d = tmp.path().join("no_config");
    copy_fixture(&d);
    std::fs::remove_file(d.join("config.json")).unwrap();
    let err = Codec12::load(&d, &dev).unwrap_err().to_string();
    assert!(err.contains("config.json"), "{err}");

    // A config that does not match the weights.
    let d = tmp.path().join("mismatch");
    copy_fixture(&d);
    edit_json(&d.join("config.json"), |v| {
        v["decoder_config"]["latent_dim"] = 40.into();
    });
    let err = Codec12::load(&d, &dev).unwrap_err().to_string();
    assert!(
        err.contains("shape") && err.contains("config.json"),
        "{err}"
    );

    // Inconsistent rates.
    let d = tmp.path().join("rates");
    copy_fixture(&d);
    edit_json(&d.join("config.json"), |v| {
        v["decode_upsample_rate"] = 1920.into();
    });
    let err = Codec12::load(&d, &dev).unwrap_err().to_string();
    assert!(err.contains("decode_upsample_rate"), "{err}");

    // A feature extractor at another rate.
    let d = tmp.path().join("fe_rate");
    copy_fixture(&d);
    edit_json(&d.join("preprocessor_config.json"), |v| {
        v["sampling_rate"] = 16000.into();
    });
    let err = Codec12::load(&d, &dev).unwrap_err().to_string();
    assert!(err.contains("sampling_rate 16000"), "{err}");

    // Truncated weights.
    let d = tmp.path().join("truncated");
    copy_fixture(&d);
    let bytes = std::fs::read(d.join("model.safetensors")).unwrap();
    std::fs::write(d.join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    assert!(Codec12::load(&d, &dev).is_err());

    // Garbage config.
    let d = tmp.path().join("garbage");
    copy_fixture(&d);
    std::fs::write(d.join("config.json"), "{not json").unwrap();
    let err = Codec12::load(&d, &dev).unwrap_err().to_string();
    assert!(err.contains("config.json"), "{err}");
}

#[test]
fn speech_tokenizer_picks_the_codec() {
    let dev = Device::Cpu;
    let tok = SpeechTokenizer::load(&fixture(DIR), &dev).unwrap();
    assert_eq!(tok.model_type(), "qwen3_tts_tokenizer_12hz");
    assert_eq!(tok.sample_rate(), 24_000);
    assert_eq!(tok.num_quantizers(), 4);
    let wave: Vec<f32> = (0..500).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
    let codes = tok.encode(&wave).unwrap();
    assert_eq!(codes, codec().encode(&wave).unwrap());
    assert_eq!(tok.decode(&codes).unwrap().len(), codes.frames() * 48);

    // A TTS model folder: the tokenizer is its speech_tokenizer/ subfolder.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("config.json"),
        r#"{"model_type": "qwen3_tts"}"#,
    )
    .unwrap();
    copy_fixture(&tmp.path().join("speech_tokenizer"));
    assert_eq!(
        find_tokenizer_dir(tmp.path()).unwrap(),
        tmp.path().join("speech_tokenizer")
    );
    assert!(SpeechTokenizer::load(tmp.path(), &dev).is_ok());

    for (model_type, needle) in [
        // A 12 Hz checkpoint labelled 25 Hz: the 25 Hz loader rejects its config (24 kHz input).
        (
            "qwen3_tts_tokenizer_25hz",
            "input_sample_rate 24000 is not supported",
        ),
        (
            "something_else",
            "unknown speech tokenizer model_type 'something_else'",
        ),
    ] {
        let d = tmp.path().join(model_type);
        copy_fixture(&d);
        edit_json(&d.join("config.json"), |v| {
            v["model_type"] = model_type.into()
        });
        let err = SpeechTokenizer::load(&d, &dev).unwrap_err().to_string();
        assert!(err.contains(needle), "{err}");
        // The 12 Hz loader refuses other types too.
        assert!(Codec12::load(&d, &dev).is_err());
    }
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let err = SpeechTokenizer::load(&empty, &dev).unwrap_err().to_string();
    assert!(err.contains("speech_tokenizer"), "{err}");
}

#[test]
fn seanet_in_pieces_equals_one_pass() {
    let c = codec();
    let t = load_tensors(&format!("{DIR}/expected/encode_synth.safetensors"));
    let wave = t["waveform"].unsqueeze(1).unwrap();
    let whole = c.encoder().seanet_pieces(&wave, usize::MAX, true).unwrap();
    // 24 samples per hop: pieces of 1, 5 and 100 hops (the last piece is partial: 4801 samples).
    for piece in [24, 120, 2400, 50] {
        let p = c.encoder().seanet_pieces(&wave, piece, true).unwrap();
        let d = max_abs(&to_f32_vec(&p.out), &to_f32_vec(&whole.out));
        assert!(d < 1e-5, "pieces of {piece}: {d:e}");
        for (a, b) in p.stages.iter().zip(&whole.stages) {
            assert!(max_abs(&to_f32_vec(a), &to_f32_vec(b)) < 1e-5);
        }
        close("seanet in pieces", &p.out, &t["seanet_out"]);
    }
}
