//! Qwen3-TTS (talker, code predictor, prompts, frame loop, decode) against the reference on the
//! three tiny checkpoints of `tests/fixtures/tts-tiny` (float32; see its CASES.md): prompt
//! embeddings and trailing text of every layout (1e-5), unit tensors (text projection, prefill
//! logits, code predictor, frame feedback; 1e-4 relative), greedy code sequences of every case
//! and batch (exact), code-0 logits processing, the x-vector, the ICL trim and the end-to-end
//! waveform; plus the request checks of the wrapper (errors).

mod common;

use std::collections::HashMap;

use candle_core::{DType, Device, IndexOp, Tensor};
use common::*;
use qwen3_speech::engine::sampling::{TokenConstraints, process_logits};
use qwen3_speech::models::tts::pipeline::{
    PreparedRequest, SpeakRequest, TextInput, TtsModel, VoiceReference, icl_cut,
};
use qwen3_speech::models::tts::{FrameSampling, FrameStop, TtsGenerationConfig};
use qwen3_speech::{ModelDir, Synthesizer, SynthesizerConfig};
use serde_json::Value;

fn model(ckpt: &str) -> TtsModel {
    TtsModel::load(
        &ModelDir::open(fixture(&format!("tts-tiny/{ckpt}"))).unwrap(),
        &Device::Cpu,
        DType::F32,
    )
    .unwrap()
}

fn cases(ckpt: &str) -> Vec<Value> {
    load_json(&format!("tts-tiny/{ckpt}/expected/cases.json"))["cases"]
        .as_array()
        .unwrap()
        .clone()
}

fn tensors(ckpt: &str, file: &str) -> HashMap<String, Tensor> {
    load_tensors(&format!("tts-tiny/{ckpt}/expected/{file}"))
}

/// The reference clip of the base checkpoint (24 kHz).
fn ref_wav() -> Vec<f32> {
    to_f32_vec(&tensors("base", "speaker.safetensors")["ref_wav"])
}

const ICL_REF_TEXT: &str = "This is the reference voice.";

/// `inputs[key]` for sample `b` (a scalar broadcasts, a list is indexed).
fn input<'a>(inputs: &'a Value, key: &str, b: usize) -> Option<&'a Value> {
    match inputs.get(key)? {
        Value::Array(a) => a.get(b).or_else(|| a.first()),
        Value::Null => None,
        v => Some(v),
    }
}

fn input_str(inputs: &Value, key: &str, b: usize) -> Option<String> {
    input(inputs, key, b)
        .and_then(|v| v.as_str())
        .map(str::to_owned)
}

/// The wrapper-level request of sample `b` of a case.
fn request(case: &Value, b: usize) -> SpeakRequest {
    let inputs = &case["inputs"];
    let mut req = SpeakRequest::new(input_str(inputs, "text", b).unwrap());
    req.language = input_str(inputs, "language", b);
    req.speaker = input_str(inputs, "speaker", b);
    req.instruct = input_str(inputs, "instruct", b);
    req.text_input = Some(if inputs["non_streaming_mode"].as_bool().unwrap() {
        TextInput::Whole
    } else {
        TextInput::Streaming
    });
    if let Some(item) = input_str(inputs, "voice_clone_prompt", b) {
        let icl = item.contains("'icl'");
        req.reference = Some(VoiceReference {
            samples_24k: ref_wav(),
            text: icl.then(|| ICL_REF_TEXT.to_owned()),
            x_vector_only: !icl,
        });
    } else if inputs.get("ref_audio").is_some() {
        req.reference = Some(VoiceReference {
            samples_24k: ref_wav(),
            text: input_str(inputs, "ref_text", b),
            x_vector_only: inputs["x_vector_only_mode"].as_bool().unwrap_or(false),
        });
    }
    req
}

/// Cases the wrapper runs (model.generate cases and empty text are covered separately).
fn wrapper_cases(ckpt: &str) -> Vec<Value> {
    cases(ckpt)
        .into_iter()
        .filter(|c| c["api"].as_str().unwrap() != "model.generate")
        .filter(|c| input_str(&c["inputs"], "text", 0).unwrap() != "")
        .collect()
}

fn greedy(m: &TtsModel, max_new_tokens: usize) -> FrameSampling {
    let mut s = m.default_sampling(0).greedy();
    s.talker.repetition_penalty = 1.05;
    s.max_new_tokens = max_new_tokens;
    s
}

fn prepare_case(m: &TtsModel, case: &Value) -> Vec<PreparedRequest> {
    (0..case["batch"].as_u64().unwrap() as usize)
        .map(|b| {
            m.prepare(&request(case, b))
                .unwrap_or_else(|e| panic!("{}[{b}]: {e}", case["name"]))
        })
        .collect()
}

#[test]
fn prompts_and_trailing_text_match_every_layout() {
    for ckpt in ["base", "custom_voice", "voice_design"] {
        let m = model(ckpt);
        let t = tensors(ckpt, "cases.safetensors");
        for case in wrapper_cases(ckpt) {
            let name = case["name"].as_str().unwrap();
            if name.starts_with("cv_sampled") {
                continue;
            }
            let prepared = prepare_case(&m, &case);
            let expected = &t[&format!("{name}.prompt_embeds")];
            let trailing = &t[&format!("{name}.trailing_text")];
            for (b, p) in prepared.iter().enumerate() {
                let s = &case["samples"][b];
                let pad = s["left_pad"].as_u64().unwrap() as usize;
                let len = s["prompt_len"].as_u64().unwrap() as usize;
                let want = expected.i((b, pad..pad + len)).unwrap();
                let (abs, _) = diff(&p.prompt.embeds, &want);
                assert!(
                    abs <= 1e-5,
                    "{ckpt}/{name}[{b}] prompt: max abs diff {abs:e}"
                );
                let tl = s["trailing_len"].as_u64().unwrap() as usize;
                let want = trailing.i((b, ..tl)).unwrap();
                let (abs, _) = diff(&p.prompt.trailing, &want);
                assert!(
                    abs <= 1e-5,
                    "{ckpt}/{name}[{b}] trailing: max abs diff {abs:e}"
                );
            }
        }
    }
}

fn expected_codes(t: &HashMap<String, Tensor>, name: &str, b: usize) -> Vec<Vec<u32>> {
    let c = &t[&format!("{name}.codes.{b}")];
    let (n, g) = c.dims2().unwrap();
    let flat = to_u32_vec(c);
    (0..n).map(|i| flat[i * g..(i + 1) * g].to_vec()).collect()
}

#[test]
fn greedy_codes_match_every_case_and_batch() {
    for ckpt in ["base", "custom_voice", "voice_design"] {
        let m = model(ckpt);
        let t = tensors(ckpt, "cases.safetensors");
        for case in wrapper_cases(ckpt) {
            let name = case["name"].as_str().unwrap();
            if name.starts_with("cv_sampled") {
                continue;
            }
            let max = case["settings"]["max_new_tokens"].as_u64().unwrap() as usize;
            let prepared = prepare_case(&m, &case);
            let refs: Vec<&PreparedRequest> = prepared.iter().collect();
            let out = m
                .start(&refs, &greedy(&m, max))
                .unwrap()
                .run_to_end()
                .unwrap();
            for (b, (frames, stop)) in out.iter().enumerate() {
                let s = &case["samples"][b];
                assert_eq!(
                    frames,
                    &expected_codes(&t, name, b),
                    "{ckpt}/{name}[{b}] codes"
                );
                let want_stop = if s["stop"] == "max_new_tokens" {
                    FrameStop::MaxFrames
                } else {
                    FrameStop::Eos
                };
                assert_eq!(*stop, want_stop, "{ckpt}/{name}[{b}] stop");
            }
        }
    }
}

#[test]
fn instruction_block_through_the_low_level_prompt() {
    // `cv_instruct_lowlevel`: a 1.7B CustomVoice wrapper would pass the instruction; the tiny
    // checkpoint is 0b6, so build the prompt with the instruction directly.
    use qwen3_speech::models::tts::{PromptSpec, SpeakerSlot, build_prompt};
    let m = model("custom_voice");
    let t = tensors("custom_voice", "cases.safetensors");
    let case = cases("custom_voice")
        .into_iter()
        .find(|c| c["name"] == "cv_instruct_lowlevel")
        .unwrap();
    let s = &case["samples"][0];
    let spk = m.config().talker_config.spk_id["ryan"];
    let spec = PromptSpec {
        text_ids: json_ids(&s["input_ids"]),
        instruct_ids: Some(json_ids(&s["instruct_ids"])),
        language_id: s["resolved_language_id"].as_u64().map(|v| v as u32),
        speaker: SpeakerSlot::Id(spk),
        icl: None,
        whole_text: true,
    };
    let p = build_prompt(m.talker(), m.config(), &spec).unwrap();
    let want = t["cv_instruct_lowlevel.prompt_embeds"].i(0).unwrap();
    let (abs, _) = diff(&p.embeds, &want);
    assert!(abs <= 1e-5, "prompt: {abs:e}");
    let out = m
        .start(
            &[&PreparedRequest {
                prompt: p,
                reference_codes: None,
                codec_speaker: None,
                warnings: vec![],
            }],
            &greedy(&m, 12),
        )
        .unwrap()
        .run_to_end()
        .unwrap();
    assert_eq!(out[0].0, expected_codes(&t, "cv_instruct_lowlevel", 0));
}

#[test]
fn unit_tensors_match() {
    for ckpt in ["base", "custom_voice", "voice_design"] {
        let m = model(ckpt);
        let u = tensors(ckpt, "talker_unit.safetensors");
        let talker = m.talker();
        let ids = to_u32_vec(&u["text_special_ids"]);
        assert_close(
            &format!("{ckpt} text projection"),
            &talker.text(&ids).unwrap(),
            &u["text_proj_specials"],
            1e-5,
        );
        // Prefill on the recorded prompt: last final-normed hidden state and logits.
        let x = u["prefill.inputs_embeds"].unsqueeze(0).unwrap();
        let len = x.dim(1).unwrap();
        let mut cache = talker.new_cache();
        let h = talker
            .forward(
                &x,
                &qwen3_speech::engine::transformer::Positions::contiguous(1, 0, len),
                None,
                &mut cache,
            )
            .unwrap();
        assert_close(
            &format!("{ckpt} final normed"),
            &h.i(0).unwrap(),
            &u["prefill.final_normed"],
            1e-4,
        );
        let logits = talker.logits(&h.i((0, len - 1)).unwrap()).unwrap();
        assert_close(
            &format!("{ckpt} prefill logits"),
            &logits,
            &u["prefill.logits_last"],
            1e-4,
        );
        // Code predictor on frame 0 (teacher-forced on the reference codes).
        let hcp = u["cp.h"].unsqueeze(0).unwrap();
        let code0 = u["cp.code0"]
            .to_dtype(DType::U32)
            .unwrap()
            .to_scalar::<u32>()
            .unwrap();
        let c0 = talker.codec(&[code0]).unwrap();
        let codes = to_u32_vec(&u["cp.codes"]);
        let logits = talker
            .code_predictor()
            .expect("12 Hz talker")
            .logits_for(&hcp, &c0, std::slice::from_ref(&codes))
            .unwrap();
        assert_close(
            &format!("{ckpt} code predictor logits"),
            &logits.i(0).unwrap(),
            &u["cp.logits"],
            1e-4,
        );
        let greedy_codes = talker
            .code_predictor()
            .expect("12 Hz talker")
            .predict(&hcp, &c0, |_, _, l| {
                qwen3_speech::engine::sampling::argmax(l)
            })
            .unwrap();
        assert_eq!(greedy_codes[0], codes, "{ckpt} code predictor codes");
        // Frame feedback.
        let frame = to_u32_vec(&u["feedback.frame_codes"]);
        assert_close(
            &format!("{ckpt} frame feedback"),
            &talker.frame_embeddings(&[frame]).unwrap().i(0).unwrap(),
            &u["feedback.codec_sum"],
            1e-5,
        );
    }
}

#[test]
fn code0_logits_processing_matches() {
    let m = model("custom_voice");
    // The file holds -Infinity for suppressed logits (Python's JSON), which serde rejects; the
    // histories needed here are plain ids.
    let text = std::fs::read_to_string(fixture(
        "tts-tiny/custom_voice/expected/logits_processing.json",
    ))
    .unwrap()
    .replace("-Infinity", "null")
    .replace("Infinity", "null")
    .replace("NaN", "null");
    let j: Value = serde_json::from_str(&text).unwrap();
    let t = tensors("custom_voice", "logits_processing.safetensors");
    let raw = to_f32_vec(&t["raw"]);
    let eos = m.config().talker_config.codec_eos_token_id;
    let constraints = TokenConstraints {
        suppress: m.config().suppressed_ids(),
        eos: vec![eos],
        min_new_tokens: 2,
    };
    let histories = j["histories"]
        .as_object()
        .expect("histories in logits_processing.json");
    assert!(!histories.is_empty());
    for (name, h) in histories {
        let h = json_ids(h);
        let mut l = raw.clone();
        process_logits(&mut l, &h, &constraints, 1.05);
        let want = to_f32_vec(&t[&format!("greedy.{name}.stage3")]);
        for (i, (a, b)) in l.iter().zip(&want).enumerate() {
            assert!(
                (a == b) || (a - b).abs() <= 1e-6 * b.abs().max(1.0),
                "history {name}: id {i}: {a} vs {b}"
            );
        }
        let arg = t[&format!("greedy.{name}.argmax")]
            .to_dtype(DType::U32)
            .unwrap()
            .to_scalar::<u32>()
            .unwrap();
        assert_eq!(
            qwen3_speech::engine::sampling::argmax(&l).unwrap(),
            arg,
            "history {name}"
        );
    }
}

#[test]
fn speaker_embedding_and_icl_trim_match() {
    let m = model("base");
    let s = tensors("base", "speaker.safetensors");
    let x = m.speaker_encoder().unwrap().embed(&ref_wav()).unwrap();
    let x = Tensor::new(x.as_slice(), &Device::Cpu).unwrap();
    assert_close("x-vector", &x, &s["xvector"], 1e-4);
    // Reference codes of the clip (the ICL prompt's ref_code).
    let codes = m.speech_tokenizer().encode(&ref_wav()).unwrap();
    let flat: Vec<u32> = codes.iter_frames().flatten().copied().collect();
    assert_eq!(flat, to_u32_vec(&s["ref_codes"]), "reference clip codes");
    let trim = load_json("tts-tiny/base/expected/icl_trim.json");
    let rows = trim["rows"].as_array().expect("icl_trim rows");
    assert!(!rows.is_empty());
    for r in rows {
        let (mm, tt, n) = (
            r["M"].as_u64().unwrap() as usize,
            r["T"].as_u64().unwrap() as usize,
            r["n_samples"].as_u64().unwrap() as usize,
        );
        assert_eq!(
            icl_cut(mm, mm + tt, n),
            r["cut"].as_u64().unwrap() as usize,
            "{r}"
        );
    }
}

#[test]
fn end_to_end_waveform_matches() {
    let m = model("custom_voice");
    let case = cases("custom_voice")
        .into_iter()
        .find(|c| c["name"] == "cv_ryan_en_stream")
        .unwrap();
    let w = tensors("custom_voice", "waveform.safetensors");
    let speech = m.speak(&request(&case, 0), &greedy(&m, 12)).unwrap();
    let want = to_f32_vec(&w["codes"]);
    let got: Vec<u32> = speech.frames.iter().flatten().copied().collect();
    assert_eq!(got, want.iter().map(|&v| v as u32).collect::<Vec<_>>());
    assert_eq!(speech.sample_rate, 24_000);
    let wav = Tensor::new(speech.samples.as_slice(), &Device::Cpu).unwrap();
    assert_close("waveform", &wav, &w["wav"], 1e-4);
    // ICL clones return the generated part only (reference frames cut off).
    let case = cases("base")
        .into_iter()
        .find(|c| c["name"] == "base_icl_stream_short")
        .unwrap();
    let mb = model("base");
    let speech = mb.speak(&request(&case, 0), &greedy(&mb, 12)).unwrap();
    assert_eq!(
        speech.samples.len(),
        case["samples"][0]["wav_len"].as_u64().unwrap() as usize
    );
}

#[test]
fn facade_reports_the_frame_limit() {
    let synth = Synthesizer::from_dir(
        ModelDir::open(fixture("tts-tiny/custom_voice")).unwrap(),
        SynthesizerConfig::default(),
    )
    .unwrap();
    let mut req = SpeakRequest::new("Hello world.");
    req.speaker = Some("Ryan".into());
    req.language = Some("English".into());
    let opts = qwen3_speech::SynthesisOptions {
        greedy: true,
        max_frames: Some(4),
        repetition_penalty: Some(1.05),
        ..Default::default()
    };
    let out = synth.speak(&req, &opts).unwrap();
    assert_eq!(out.frames.len(), 3, "max_frames counts talker steps");
    assert!(out.truncated);
    assert!(out.warnings.iter().any(|w| w.contains("frame limit")));
    assert_eq!(out.audio.samples.len(), 3 * 48);
    // The frame stream yields the same frames one at a time.
    let stream: Vec<Vec<u32>> = synth
        .frames(&req, &opts)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(stream, out.frames);
}

#[test]
fn requests_the_model_cannot_serve_are_clear_errors() {
    let cv = model("custom_voice");
    let err = |m: &TtsModel, r: SpeakRequest| m.prepare(&r).err().expect("an error").to_string();
    let mut r = SpeakRequest::new("Hi.");
    r.speaker = Some("nobody".into());
    let e = err(&cv, r);
    assert!(e.contains("unknown speaker") && e.contains("ryan"), "{e}");
    let mut r = SpeakRequest::new("Hi.");
    r.language = Some("klingon".into());
    let e = err(&cv, r);
    assert!(
        e.contains("unsupported language") && e.contains("english"),
        "{e}"
    );
    let mut r = SpeakRequest::new("Hi.");
    r.language = Some("beijing_dialect".into());
    assert!(err(&cv, r).contains("unsupported language"));
    assert!(err(&cv, SpeakRequest::new("   ")).contains("empty"));
    let mut r = SpeakRequest::new("Hi.");
    r.reference = Some(VoiceReference {
        samples_24k: ref_wav(),
        text: None,
        x_vector_only: true,
    });
    assert!(err(&cv, r).contains("does not support voice cloning"));
    // 0b6 CustomVoice drops instructions with a warning, as the reference (silently) does.
    let mut r = SpeakRequest::new("Hi.");
    r.instruct = Some("Whisper.".into());
    assert!(!cv.prepare(&r).unwrap().warnings.is_empty());

    let vd = model("voice_design");
    let p = vd.prepare(&SpeakRequest::new("Hi.")).unwrap();
    assert!(p.warnings.iter().any(|w| w.contains("voice description")));
    let mut r = SpeakRequest::new("Hi.");
    r.speaker = Some("ryan".into());
    assert!(err(&vd, r).contains("does not support named speakers"));

    let base = model("base");
    assert!(err(&base, SpeakRequest::new("Hi.")).contains("reference clip"));
    let mut r = SpeakRequest::new("Hi.");
    r.reference = Some(VoiceReference {
        samples_24k: ref_wav(),
        text: None,
        x_vector_only: false,
    });
    assert!(err(&base, r).contains("transcript"));
    let mut r = SpeakRequest::new("Hi.");
    r.reference = Some(VoiceReference {
        samples_24k: vec![0.0; 10],
        text: None,
        x_vector_only: true,
    });
    let _ = err(&base, r); // too short for the speaker encoder: an error, not a panic
    let mut r = SpeakRequest::new("x ".repeat(5000));
    r.reference = Some(VoiceReference {
        samples_24k: ref_wav(),
        text: None,
        x_vector_only: true,
    });
    assert!(err(&base, r).contains("too long"));
}

#[test]
fn generation_defaults_come_from_generation_config() {
    let g = TtsGenerationConfig::from_dir(&fixture("tts-tiny/custom_voice")).unwrap();
    assert!(g.do_sample && g.subtalker_dosample);
    assert_eq!((g.top_k, g.max_new_tokens), (50, 8192));
    assert!((g.temperature - 0.9).abs() < 1e-6 && (g.repetition_penalty - 1.05).abs() < 1e-6);
}

/// Sampled runs replayed with the reference's random draws: torch's multinomial is
/// `argmax(p / q)` with Exp(1) noise `q`; feeding the recorded `q` to our probabilities must
/// give the reference's codes (temperature, top-k, top-p, repetition penalty, sub-talker
/// settings).
#[test]
fn sampled_runs_match_with_the_reference_draws() {
    use qwen3_speech::models::tts::{DrawSite, FrameSession};
    let m = model("custom_voice");
    let t = tensors("custom_voice", "sampling.safetensors");
    let cases: Vec<Value> = cases("custom_voice")
        .into_iter()
        .filter(|c| c["name"].as_str().unwrap().starts_with("cv_sampled"))
        .collect();
    assert_eq!(cases.len(), 2);
    for case in cases {
        let name = case["name"].as_str().unwrap().to_owned();
        let k = &case["merged_generate_kwargs"];
        let f = |key: &str| k[key].as_f64().unwrap() as f32;
        let mut s = m.default_sampling(0);
        s.talker.do_sample = k["do_sample"].as_bool().unwrap();
        s.talker.temperature = f("temperature");
        s.talker.top_k = k["top_k"].as_u64().unwrap() as usize;
        s.talker.top_p = f("top_p");
        s.talker.repetition_penalty = f("repetition_penalty");
        s.code_predictor.do_sample = k["subtalker_dosample"].as_bool().unwrap();
        s.code_predictor.temperature = f("subtalker_temperature");
        s.code_predictor.top_k = k["subtalker_top_k"].as_u64().unwrap() as usize;
        s.code_predictor.top_p = f("subtalker_top_p");
        s.max_new_tokens = k["max_new_tokens"].as_u64().unwrap() as usize;
        let order = case["sampling"]["draw_order"].as_array().unwrap().clone();
        let mut next = 0usize;
        let prepared = prepare_case(&m, &case);
        let draws = |site: DrawSite, p: &[f32]| {
            let d = &order[next];
            let kind = d["kind"].as_str().unwrap();
            match site {
                DrawSite::Talker { .. } => assert_eq!(kind, "talker", "{name} draw {next}"),
                DrawSite::CodePredictor { step, .. } => {
                    assert_eq!(kind, "code_predictor", "{name} draw {next}");
                    assert_eq!(d["sub_step"].as_u64().unwrap() as usize, step);
                }
            }
            let want_p = to_f32_vec(&t[&format!("{name}.draw{next}.p")]);
            let q = to_f32_vec(&t[&format!("{name}.draw{next}.q")]);
            assert_eq!(p.len(), want_p.len());
            let max = p
                .iter()
                .zip(&want_p)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(
                max <= 1e-5,
                "{name} draw {next}: probabilities differ by {max:e}"
            );
            let mut best = (0usize, f32::NEG_INFINITY);
            for (i, (pi, qi)) in p.iter().zip(&q).enumerate() {
                let v = pi / qi;
                if v > best.1 {
                    best = (i, v);
                }
            }
            let want = to_u32_vec(&t[&format!("{name}.draw{next}.id")])[0];
            assert_eq!(best.0 as u32, want, "{name} draw {next}");
            next += 1;
            Ok(best.0 as u32)
        };
        let prompts: Vec<_> = prepared.iter().map(|p| p.prompt.clone()).collect();
        let out = FrameSession::new_with_draws(
            m.talker(),
            m.config(),
            &prompts,
            &s,
            Some(Box::new(draws)),
        )
        .unwrap()
        .run_to_end()
        .unwrap();
        let ct = tensors("custom_voice", "cases.safetensors");
        assert_eq!(out[0].0, expected_codes(&ct, &name, 0), "{name} codes");
    }
}

/// Streaming synthesis: chunks arrive as frames are generated and their concatenation equals
/// the offline result (CustomVoice, and an in-context clone whose reference part is cut).
#[test]
fn streamed_audio_equals_the_offline_audio() {
    use qwen3_speech::SynthesisOptions;
    use qwen3_speech::synthesizer::StreamOptions;
    let opts = SynthesisOptions {
        greedy: true,
        repetition_penalty: Some(1.05),
        max_frames: Some(12),
        ..Default::default()
    };
    for (ckpt, name) in [
        ("custom_voice", "cv_ryan_en_nonstream"),
        ("base", "base_icl_stream_short"),
    ] {
        let synth = Synthesizer::from_dir(
            ModelDir::open(fixture(&format!("tts-tiny/{ckpt}"))).unwrap(),
            SynthesizerConfig::default(),
        )
        .unwrap();
        let case = cases(ckpt).into_iter().find(|c| c["name"] == name).unwrap();
        let req = request(&case, 0);
        let offline = synth.speak(&req, &opts).unwrap();
        for so in [
            StreamOptions {
                first_chunk_frames: 1,
                chunk_frames: 1,
            },
            StreamOptions {
                first_chunk_frames: 2,
                chunk_frames: 3,
            },
        ] {
            let mut stream = synth.speak_stream(&req, &opts, &so).unwrap();
            let first = stream.next_chunk().unwrap().unwrap();
            assert_eq!(
                first.len(),
                so.first_chunk_frames * 48,
                "{name}: first chunk"
            );
            let mut all = first;
            for chunk in stream.by_ref() {
                let chunk = chunk.unwrap();
                assert!(chunk.len() <= so.chunk_frames * 48 && !chunk.is_empty());
                all.extend(chunk);
            }
            assert_eq!(stream.frames(), offline.frames.as_slice(), "{name}: frames");
            assert_eq!(stream.truncated(), offline.truncated);
            assert_eq!(all.len(), offline.audio.samples.len(), "{name}: length");
            let a = Tensor::new(all.as_slice(), &Device::Cpu).unwrap();
            let b = Tensor::new(offline.audio.samples.as_slice(), &Device::Cpu).unwrap();
            assert_close(&format!("{name} streamed vs offline"), &a, &b, 1e-4);
        }
    }
}
