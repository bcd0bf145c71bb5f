//! Streaming ASR against the reference streaming algorithm.
//!
//! Fixture: `tests/fixtures/asr-stream/streaming.json`, written by
//! `tools/reference/gen_asr_stream.py`: the reference's own `init_streaming_state` /
//! `streaming_transcribe` / `finish_streaming_transcribe` run on the tiny checkpoint, with the
//! vLLM call replaced by the transformers model with vLLM's semantics (audio zero-padded to a
//! multiple of 160 samples, windowed encoder attention, greedy). The audio is real speech
//! (`asr-real/waveforms.safetensors` clips concatenated, starting with digital silence in two
//! cases so the features' dynamic-range floor moves while the stream grows).
//!
//! Checked, in both modes (`Exact`: everything recomputed per chunk as the reference;
//! `Incremental`: kept features, kept encoder windows, reused decoder cache):
//! * every decode: stream length, raw output (prefix + generated) and parsed (language, text)
//!   equal the reference's, and the final state too;
//! * the incremental encoder equals the whole-stream windowed encoder at every chunk;
//! * pushing the audio in random-sized pieces gives the same updates as whole chunks;
//! * the incremental mode really reuses work (kept windows, reused decoder positions).

mod common;

use candle_core::{DType, Device};
use common::*;
use qwen3_speech::engine::audio::mel::whisper_log_mel;
use qwen3_speech::models::asr::streaming::encoder::IncrementalEncoder;
use qwen3_speech::models::asr::streaming::features::StreamFeatures;
use qwen3_speech::models::asr::streaming::join_segments;
use qwen3_speech::models::asr::{
    AsrModel, AsrStream, EncoderAttention, StreamMode, StreamOptions, StreamUpdate,
};
use qwen3_speech::{ModelDir, StreamingConfig, StreamingTranscriber};
use serde_json::Value;

fn model() -> AsrModel {
    let dir = ModelDir::open(fixture("asr-tiny")).unwrap();
    AsrModel::load(&dir, &Device::Cpu, DType::F32).unwrap()
}

fn doc() -> Value {
    load_json("asr-stream/streaming.json")
}

fn audio_of(case: &Value) -> Vec<f32> {
    let t = load_tensors("asr-real/waveforms.safetensors");
    let mut out = Vec::new();
    for c in case["clips"].as_array().unwrap() {
        out.extend(to_f32_vec(&t[c.as_str().unwrap()]));
    }
    assert_eq!(out.len() as u64, case["num_samples"].as_u64().unwrap());
    out
}

fn options_of(case: &Value, mode: StreamMode, max_new_tokens: usize) -> StreamOptions {
    let init = &case["init"];
    StreamOptions {
        chunk_seconds: init["chunk_size_sec"].as_f64().unwrap(),
        unfixed_chunks: init["unfixed_chunk_num"].as_u64().unwrap() as usize,
        rollback_tokens: init["unfixed_token_num"].as_u64().unwrap() as usize,
        mode,
        language: init["language"].as_str().map(str::to_string),
        context: init["context"].as_str().unwrap().to_string(),
        max_new_tokens: Some(max_new_tokens),
        // The reference's algorithm has no segments.
        max_segment_seconds: None,
    }
}

/// Pushes `audio` in pieces of `sizes` (cycled) and finishes.
fn run(
    model: &AsrModel,
    options: StreamOptions,
    audio: &[f32],
    sizes: &mut dyn FnMut() -> usize,
) -> Vec<StreamUpdate> {
    let mut stream = AsrStream::new(model, options).unwrap();
    let mut updates = Vec::new();
    let mut pos = 0;
    while pos < audio.len() {
        let n = sizes().min(audio.len() - pos);
        updates.extend(stream.push(model, &audio[pos..pos + n]).unwrap());
        pos += n;
    }
    updates.push(stream.finish(model).unwrap());
    updates
}

fn untimed(u: &StreamUpdate) -> StreamUpdate {
    StreamUpdate {
        stats: u.stats.without_times(),
        ..u.clone()
    }
}

fn check_case(model: &AsrModel, case: &Value, max_new_tokens: usize, mode: StreamMode) {
    let name = case["name"].as_str().unwrap();
    let audio = audio_of(case);
    let options = options_of(case, mode, max_new_tokens);
    assert_eq!(
        options.chunk_samples() as u64,
        case["chunk_size_samples"].as_u64().unwrap()
    );
    let sizes: Vec<usize> = case["push_sizes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let mut i = 0;
    let updates = run(model, options, &audio, &mut || {
        i += 1;
        sizes[i - 1]
    });
    let steps = case["steps"].as_array().unwrap();
    let finish_decoded = case["finish_decoded"].as_bool().unwrap();
    // One update per decode, plus the final one (which repeats the last state when the
    // reference did not decode at finish).
    let decodes = if finish_decoded {
        updates.len()
    } else {
        updates.len() - 1
    };
    assert_eq!(decodes, steps.len(), "{name} ({mode}): number of decodes");
    for (k, (u, s)) in updates.iter().zip(steps).enumerate() {
        let what = format!("{name} ({mode}) decode {k}");
        assert_eq!(
            u.audio_samples as u64,
            s["samples"].as_u64().unwrap(),
            "{what}"
        );
        assert_eq!(u.raw, s["raw_decoded"].as_str().unwrap(), "{what}: raw");
        let parsed = s["parsed"].as_array().unwrap();
        assert_eq!(u.language, parsed[0].as_str().unwrap(), "{what}: language");
        assert_eq!(u.text, parsed[1].as_str().unwrap(), "{what}: text");
        assert_eq!(
            u.stats.generated_tokens,
            s["generated_ids"].as_array().unwrap().len(),
            "{what}: generated tokens"
        );
        assert_eq!(format!("{}{}", u.fixed, u.unfixed), u.text, "{what}");
    }
    let last = updates.last().unwrap();
    assert!(last.is_final);
    let fin = &case["final"];
    assert_eq!(
        last.text,
        fin["text"].as_str().unwrap(),
        "{name} ({mode}): final"
    );
    assert_eq!(last.language, fin["language"].as_str().unwrap(), "{name}");
    assert_eq!(last.raw, fin["raw_decoded"].as_str().unwrap(), "{name}");
    assert_eq!(last.fixed, last.text);
    eprintln!(
        "{name} ({mode}): {} decodes, final {:?}",
        steps.len(),
        last.text.chars().take(40).collect::<String>()
    );
}

#[test]
fn exact_mode_matches_reference_streaming() {
    let m = model();
    let d = doc();
    let max_new = d["max_new_tokens"].as_u64().unwrap() as usize;
    for case in d["cases"].as_array().unwrap() {
        check_case(&m, case, max_new, StreamMode::Exact);
    }
}

#[test]
fn incremental_mode_matches_reference_streaming() {
    let m = model();
    let d = doc();
    let max_new = d["max_new_tokens"].as_u64().unwrap() as usize;
    for case in d["cases"].as_array().unwrap() {
        check_case(&m, case, max_new, StreamMode::Incremental);
    }
}

/// The incremental encoder (kept features, kept complete windows, only the open part encoded)
/// equals the windowed encoder over the whole stream recomputed from scratch, at every chunk.
#[test]
fn incremental_encoder_equals_full_windowed_encoder() {
    let m = model();
    let d = doc();
    let case = &d["cases"][0];
    let audio = audio_of(case);
    let thinker = m.thinker();
    let mut features = StreamFeatures::new();
    let mut enc = IncrementalEncoder::new();
    let mut reencoded = 0;
    let mut max_chunks = 0;
    let mut max_rel = 0f32;
    let mut pos = 0;
    let mut chunks = 0;
    // 0.5 s chunks (a window of the tiny model is 2 s), then odd sizes.
    for n in (0..).map(|i| if i < 12 { 8000 } else { 3001 + 977 * (i % 5) }) {
        if pos >= audio.len() {
            break;
        }
        let n = n.min(audio.len() - pos);
        features.extend(&audio[pos..pos + n]);
        pos += n;
        features.update().unwrap();
        let out = enc
            .encode(thinker.audio_encoder(), &features, DType::F32, &Device::Cpu)
            .unwrap();
        reencoded += out.reencoded_windows;
        max_chunks = max_chunks.max(enc.cached_chunks());
        let mut padded = audio[..pos].to_vec();
        padded.resize(pos.div_ceil(160) * 160, 0.0);
        let mel = whisper_log_mel(&padded)
            .unwrap()
            .into_tensor(&Device::Cpu)
            .unwrap();
        let full = thinker
            .encode_audio(&mel, EncoderAttention::Windowed)
            .unwrap();
        let rel = assert_close(
            &format!("incremental encoder after {pos} samples"),
            &out.embeds,
            &full,
            1e-4,
        );
        max_rel = max_rel.max(rel);
        assert_eq!(out.complete.len(), enc.cached_windows());
        chunks += 1;
    }
    eprintln!(
        "{chunks} chunks, {} windows kept, {reencoded} re-encoded after the floor moved, max rel diff {max_rel:e}",
        enc.cached_windows()
    );
    assert!(enc.cached_windows() >= 5);
    assert!(
        max_chunks >= 1,
        "final chunks of the open window keep their conv stem"
    );
    assert!(
        reencoded > 0,
        "the stream starts with silence: the floor should have moved under a kept window"
    );
}

/// Audio pushed in random-sized pieces gives exactly the updates of whole-chunk pushes.
#[test]
fn random_sized_pushes_equal_whole_chunks() {
    let m = model();
    let d = doc();
    for case in d["cases"].as_array().unwrap().iter().take(2) {
        let audio = audio_of(case);
        let options = options_of(case, StreamMode::Incremental, 32);
        let chunk = options.chunk_samples();
        let whole = run(&m, options.clone(), &audio, &mut || chunk);
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let random = run(&m, options, &audio, &mut || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // From 1 sample to 1.5 chunks.
            1 + (seed % (chunk as u64 * 3 / 2)) as usize
        });
        assert_eq!(whole.len(), random.len());
        for (a, b) in whole.iter().zip(&random) {
            assert_eq!(untimed(a), untimed(b));
        }
    }
}

/// The incremental mode keeps the decoder cache of the prompt head and of complete windows.
#[test]
fn incremental_mode_reuses_work() {
    let m = model();
    let d = doc();
    let case = &d["cases"][1];
    let audio = audio_of(case);
    let inc = run(
        &m,
        options_of(case, StreamMode::Incremental, 32),
        &audio,
        &mut || 16000,
    );
    let exact = run(
        &m,
        options_of(case, StreamMode::Exact, 32),
        &audio,
        &mut || 16000,
    );
    let enc_inc: usize = inc.iter().map(|u| u.stats.encoder_tokens).sum();
    let enc_exact: usize = exact.iter().map(|u| u.stats.encoder_tokens).sum();
    let pre_inc: usize = inc.iter().map(|u| u.stats.prefill_positions).sum();
    let pre_exact: usize = exact.iter().map(|u| u.stats.prefill_positions).sum();
    eprintln!(
        "encoder tokens: exact {enc_exact}, incremental {enc_inc}; prefill positions: exact {pre_exact}, incremental {pre_inc}"
    );
    assert!(exact.iter().all(|u| u.stats.reused_positions == 0));
    assert!(inc.iter().skip(2).all(|u| u.stats.reused_positions > 0));
    assert!(enc_inc < enc_exact && pre_inc < pre_exact);
    for (a, b) in inc.iter().zip(&exact) {
        assert_eq!(a.text, b.text);
    }
}

/// The facade: any rate, i16 or f32, events with fixed + unfixed = text.
#[test]
fn facade_resamples_and_converts() {
    let d = doc();
    let case = &d["cases"][1];
    let audio = audio_of(case);
    let config = StreamingConfig {
        options: options_of(case, StreamMode::Incremental, 32),
        ..StreamingConfig::default()
    };
    let dir = ModelDir::open(fixture("asr-tiny")).unwrap();
    // 16 kHz f32 through the facade = the library stream.
    let mut st = StreamingTranscriber::from_dir(dir.clone(), config.clone()).unwrap();
    let mut events = Vec::new();
    for piece in audio.chunks(4000) {
        events.extend(st.push_f32(piece, 16000).unwrap());
    }
    events.push(st.finish().unwrap());
    let fin = &case["final"];
    assert_eq!(
        events.last().unwrap().text,
        fin["text"].as_str().unwrap(),
        "facade final text"
    );
    for e in &events {
        assert_eq!(format!("{}{}", e.fixed, e.unfixed), e.text);
    }
    // i16 at 16 kHz: x / 32768, as the reference converts int16.
    let pcm: Vec<i16> = audio
        .iter()
        .map(|x| (x * 32768.0).round().clamp(-32768.0, 32767.0) as i16)
        .collect();
    let as_f32: Vec<f32> = pcm.iter().map(|&s| f32::from(s) / 32768.0).collect();
    let mut a = StreamingTranscriber::from_dir(dir.clone(), config.clone()).unwrap();
    let mut b = StreamingTranscriber::from_dir(dir.clone(), config.clone()).unwrap();
    let mut ea = Vec::new();
    let mut eb = Vec::new();
    for (p, q) in pcm.chunks(3333).zip(as_f32.chunks(3333)) {
        ea.extend(a.push_i16(p, 16000).unwrap());
        eb.extend(b.push_f32(q, 16000).unwrap());
    }
    ea.push(a.finish().unwrap());
    eb.push(b.finish().unwrap());
    assert_eq!(ea.len(), eb.len());
    for (x, y) in ea.iter().zip(&eb) {
        assert_eq!(
            (&x.text, &x.fixed, &x.raw, x.chunk),
            (&y.text, &y.fixed, &y.raw, y.chunk)
        );
    }
    // 48 kHz input is resampled to 16 kHz on the way in (streaming resampler = offline).
    let at48 = qwen3_speech::engine::audio::resample(&audio, 16000, 48000).unwrap();
    let back = qwen3_speech::engine::audio::resample(&at48, 48000, 16000).unwrap();
    let mut c = StreamingTranscriber::from_dir(dir.clone(), config.clone()).unwrap();
    let mut lib = AsrStream::new(&model(), config.options.clone()).unwrap();
    let m = model();
    let mut ec = Vec::new();
    for piece in at48.chunks(7777) {
        ec.extend(c.push_f32(piece, 48000).unwrap());
    }
    ec.push(c.finish().unwrap());
    let mut el = lib.push(&m, &back).unwrap();
    el.push(lib.finish(&m).unwrap());
    assert_eq!(ec.len(), el.len());
    for (e, u) in ec.iter().zip(&el) {
        assert_eq!(e.text, u.text);
        assert_eq!(e.language, u.language);
        assert_eq!(e.is_final, u.is_final);
    }
    // Changing the rate in the middle of a stream is an error.
    let mut d2 = StreamingTranscriber::from_dir(dir, config).unwrap();
    d2.push_f32(&[0.0; 100], 48000).unwrap();
    assert!(d2.push_f32(&[0.0; 100], 16000).is_err());
}

/// Switching modes in the middle of a stream (what `bench stream` does) changes nothing in the
/// result; `finish_with` a tail inside one chunk equals push + finish.
#[test]
fn mode_switches_and_finish_with() {
    let m = model();
    let d = doc();
    let case = &d["cases"][1];
    let audio = audio_of(case);
    let options = options_of(case, StreamMode::Incremental, 32);
    let chunk = options.chunk_samples();
    let reference = run(&m, options.clone(), &audio, &mut || chunk);
    let mut stream = AsrStream::new(&m, options.clone()).unwrap();
    let mut updates = Vec::new();
    for (i, piece) in audio.chunks(chunk).enumerate() {
        stream.set_mode(if i % 3 == 1 {
            StreamMode::Exact
        } else {
            StreamMode::Incremental
        });
        updates.extend(stream.push(&m, piece).unwrap());
    }
    updates.push(stream.finish(&m).unwrap());
    assert_eq!(updates.len(), reference.len());
    for (a, b) in updates.iter().zip(&reference) {
        assert_eq!((&a.raw, &a.text, &a.fixed), (&b.raw, &b.text, &b.fixed));
    }
    // finish_with: the last partial chunk given to finish directly.
    let whole = audio.len() / chunk * chunk;
    let mut stream = AsrStream::new(&m, options.clone()).unwrap();
    let mut got = stream.push(&m, &audio[..whole]).unwrap();
    got.push(stream.finish_with(&m, &audio[whole..]).unwrap());
    assert_eq!(got.last().unwrap().text, reference.last().unwrap().text);
    assert!(
        stream.push(&m, &audio[..10]).is_err(),
        "a finished stream takes no audio"
    );
    // More than a chunk at once: one decode for all of it.
    let mut stream = AsrStream::new(&m, options).unwrap();
    stream.push(&m, &audio[..chunk]).unwrap();
    let last = stream.finish_with(&m, &audio[chunk..]).unwrap();
    assert!(last.is_final);
    assert_eq!(last.chunk, 1);
    assert_eq!(last.audio_samples, audio.len());
}

/// A long stream is cut into segments, and each segment is exactly the reference's stream of
/// its own audio (its decodes, then the `finish` decode where it was cut); the transcript is
/// the segments' texts joined. A stream shorter than the limit is not cut at all.
#[test]
fn segments_are_reference_streams_of_their_own_audio() {
    let m = model();
    let d = doc();
    let case = &d["cases"][0];
    let audio = audio_of(case);
    let unbounded = options_of(case, StreamMode::Incremental, 32);
    let chunk = unbounded.chunk_samples();

    // Shorter than the default limit: the same updates as the reference's algorithm.
    assert!(audio.len() < unbounded.chunk_samples() * 15);
    let default_limit = StreamOptions {
        max_segment_seconds: StreamOptions::default().max_segment_seconds,
        ..unbounded.clone()
    };
    let plain = run(&m, unbounded.clone(), &audio, &mut || chunk);
    let limited = run(&m, default_limit, &audio, &mut || chunk);
    assert_eq!(
        plain.iter().map(untimed).collect::<Vec<_>>(),
        limited.iter().map(untimed).collect::<Vec<_>>()
    );
    assert!(plain.iter().all(|u| u.segment == 0 && !u.segment_closed));

    for mode in [StreamMode::Incremental, StreamMode::Exact] {
        let options = StreamOptions {
            max_segment_seconds: Some(5.0),
            mode,
            ..unbounded.clone()
        };
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let updates = run(&m, options, &audio, &mut || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            1 + (seed % (chunk as u64 * 2)) as usize
        });
        let last = updates.last().unwrap();
        assert!(last.is_final);
        assert_eq!(last.audio_samples, audio.len());
        let closes: Vec<&StreamUpdate> = updates.iter().filter(|u| u.segment_closed).collect();
        assert!(closes.len() >= 2, "{} segments closed", closes.len());
        // Segment boundaries: where each closing decode ended its segment.
        let mut bounds = vec![0];
        bounds.extend(closes.iter().map(|u| u.audio_samples));
        bounds.push(audio.len());
        let mut texts = Vec::new();
        for (k, w) in bounds.windows(2).enumerate() {
            let (start, end) = (w[0], w[1]);
            // Each segment ends within the chunk that would take it past 5 s.
            if k + 1 < bounds.len() - 1 {
                let len = end - start;
                assert!(
                    len + chunk > 5 * 16000 && len <= 5 * 16000 + chunk,
                    "segment {k}: {len}"
                );
            }
            let own: Vec<&StreamUpdate> = updates.iter().filter(|u| u.segment == k).collect();
            let reference = run(
                &m,
                StreamOptions {
                    mode,
                    ..unbounded.clone()
                },
                &audio[start..end],
                &mut || chunk,
            );
            assert_eq!(own.len(), reference.len(), "segment {k} decodes");
            for (a, b) in own.iter().zip(reference.iter()) {
                assert_eq!(a.raw, b.raw, "segment {k}");
                assert!(a.text.ends_with(&b.text), "segment {k}");
                assert_eq!(a.audio_samples - start, b.audio_samples);
                assert!(a.text.starts_with(&a.fixed));
                assert_eq!(a.text, format!("{}{}", a.fixed, a.unfixed));
            }
            let closing = own.last().unwrap();
            assert!(closing.segment_closed || closing.is_final);
            assert!(closing.unfixed.is_empty());
            texts.push(reference.last().unwrap().text.clone());
        }
        let joined = texts
            .iter()
            .fold(String::new(), |acc, t| join_segments(&acc, t));
        assert_eq!(last.text, joined, "{mode}");
    }
}
