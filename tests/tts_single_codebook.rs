//! A single-codebook (25 Hz) talker: `num_code_groups = 1`, no code predictor, the 25 Hz speech
//! tokenizer. No 25 Hz talker is released and the reference cannot run one end to end (its
//! talker assumes >= 2 code groups), so these tests check consistency, not reference values:
//! shapes, the stop conditions, that the frame loop feeds back exactly the codec embedding of
//! the previous code (against a hand-written loop over the public talker API), streaming vs
//! offline, the decode hand-off (length at the tokenizer's rate), the voice-clone reference
//! codes, cancellation and the errors.
//!
//! The checkpoints are built at test time from the tiny 12 Hz fixtures (`tts-tiny/base`,
//! `tts-tiny/custom_voice`: codec vocabulary 1088 = 64 audio codes + 1024 control ids) with
//! `num_code_groups` set to 1, and the tiny 25 Hz tokenizer (`codec25-tiny`: 64 codes, 16 kHz
//! in, 1500 Hz out, 60 samples per code) as their `speech_tokenizer/`.

mod common;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, IndexOp, Tensor};
use common::*;
use qwen3_speech::engine::transformer::Positions;
use qwen3_speech::models::tts::pipeline::{SpeakRequest, TtsModel, VoiceReference};
use qwen3_speech::models::tts::{FrameSampling, FrameSession, FrameStop, TtsConfig};
use qwen3_speech::{
    AudioInput, ModelDir, SpeechStreamOptions, SynthesisOptions, Synthesizer, SynthesizerConfig,
};
use serde_json::Value;

/// What to do with the codec head's EOS row.
#[derive(Clone, Copy, PartialEq)]
enum Eos {
    /// The fixture's weights.
    AsIs,
    /// A large bias towards EOS: it wins as soon as min-new-tokens allows (third code 0).
    Forced,
    /// EOS can never win: generation runs to the frame limit.
    Never,
}

struct Variant {
    /// `tts-tiny/<source>`.
    source: &'static str,
    groups: u64,
    /// Keep `code_predictor_config` (with this many groups) instead of removing it.
    predictor_groups: Option<u64>,
    /// Keep the `talker.code_predictor.*` weights.
    keep_predictor_weights: bool,
    eos: Eos,
    /// `codec25-tiny` (25 Hz) or the fixture's own 12 Hz tokenizer.
    tokenizer_25hz: bool,
}

impl Variant {
    fn new(source: &'static str) -> Self {
        Variant {
            source,
            groups: 1,
            predictor_groups: None,
            keep_predictor_weights: false,
            eos: Eos::AsIs,
            tokenizer_25hz: true,
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Writes a checkpoint folder for `v` under `dir`.
fn build(v: &Variant, dir: &Path) {
    let src = fixture(&format!("tts-tiny/{}", v.source));
    for f in [
        "generation_config.json",
        "merges.txt",
        "tokenizer_config.json",
        "vocab.json",
    ] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    // config.json: G code groups, the predictor config removed (or kept with its own count).
    let mut cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    let t = cfg["talker_config"].as_object_mut().unwrap();
    t.insert("num_code_groups".into(), v.groups.into());
    match v.predictor_groups {
        None => {
            t.remove("code_predictor_config");
        }
        Some(g) => {
            t["code_predictor_config"]["num_code_groups"] = g.into();
        }
    }
    if v.tokenizer_25hz {
        cfg["tokenizer_type"] = "qwen3_tts_tokenizer_25hz".into();
    }
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(&cfg).unwrap(),
    )
    .unwrap();
    // Weights: without the code predictor; the EOS row of the codec head scaled.
    let eos = cfg["talker_config"]["codec_eos_token_id"].as_u64().unwrap() as usize;
    let mut w: HashMap<String, Tensor> =
        candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    if !v.keep_predictor_weights {
        w.retain(|k, _| !k.starts_with("talker.code_predictor."));
    }
    if v.eos != Eos::AsIs {
        pin_eos(&mut w, eos, if v.eos == Eos::Forced { 1e6 } else { -1e6 });
    }
    candle_core::safetensors::save(&w, dir.join("model.safetensors")).unwrap();
    let tok = dir.join("speech_tokenizer");
    if v.tokenizer_25hz {
        copy_dir(&fixture("codec25-tiny"), &tok);
    } else {
        copy_dir(&src.join("speech_tokenizer"), &tok);
    }
}

/// `f` applied to the rows of a tensor (`[out, ..]`; a 1-D tensor is one row).
fn edit_rows(w: &mut HashMap<String, Tensor>, name: &str, mut f: impl FnMut(usize, &mut [f32])) {
    let t = &w[name];
    let shape = t.dims().to_vec();
    let cols: usize = if shape.len() == 1 {
        shape[0]
    } else {
        shape[1..].iter().product()
    };
    let mut data = to_f32_vec(t);
    for (r, row) in data.chunks_mut(cols).enumerate() {
        f(r, row);
    }
    let new = Tensor::from_vec(data, shape, &Device::Cpu).unwrap();
    w.insert(name.to_owned(), new);
}

/// Makes the EOS logit `scale / rms(x)` for every input: residual channel 0 of the talker is
/// held at exactly 1 at every position (only the text projection's bias writes it; embeddings,
/// the x-vector, attention and MLP outputs leave it alone), its final-norm weight is 1, and the
/// EOS row of the codec head reads channel 0 alone. A large positive `scale` makes EOS win
/// whenever it is allowed, a large negative one never.
fn pin_eos(w: &mut HashMap<String, Tensor>, eos: usize, scale: f32) {
    edit_rows(w, "talker.text_projection.linear_fc2.weight", |r, row| {
        if r == 0 {
            row.fill(0.0);
        }
    });
    edit_rows(w, "talker.text_projection.linear_fc2.bias", |_, row| {
        row[0] = 1.0
    });
    edit_rows(w, "talker.model.codec_embedding.weight", |_, row| {
        row[0] = 0.0
    });
    let names: Vec<String> = w.keys().cloned().collect();
    for name in names {
        let zero_out_row0 = name.ends_with("self_attn.o_proj.weight")
            || name.ends_with("mlp.down_proj.weight")
            || name == "speaker_encoder.fc.weight";
        if name.starts_with("talker.model.layers.") || name.starts_with("speaker_encoder.fc") {
            if zero_out_row0 {
                edit_rows(w, &name, |r, row| {
                    if r == 0 {
                        row.fill(0.0);
                    }
                });
            } else if name == "speaker_encoder.fc.bias" {
                edit_rows(w, &name, |_, row| row[0] = 0.0);
            }
        }
    }
    edit_rows(w, "talker.model.norm.weight", |_, row| row[0] = 1.0);
    edit_rows(w, "talker.codec_head.weight", |r, row| {
        if r == eos {
            row.fill(0.0);
            row[0] = scale;
        }
    });
}

fn load(v: &Variant) -> (tempfile::TempDir, qwen3_speech::Result<TtsModel>) {
    let dir = tempfile::tempdir().unwrap();
    build(v, dir.path());
    let m = TtsModel::load(
        &ModelDir::open(dir.path()).unwrap(),
        &Device::Cpu,
        DType::F32,
    );
    (dir, m)
}

fn model(v: &Variant) -> (tempfile::TempDir, TtsModel) {
    let (d, m) = load(v);
    (d, m.unwrap())
}

/// A reference clip: the espeak sentence of the audio fixtures, twice (about 1.8 s), at 24 kHz.
fn ref_wav() -> Vec<f32> {
    let once =
        Synthesizer::load_reference(AudioInput::Path(&fixture("audio/float32_22k_mono.wav")))
            .unwrap();
    once.repeat(2)
}

fn clone_request(text: &str, ref_text: Option<&str>) -> SpeakRequest {
    SpeakRequest {
        reference: Some(VoiceReference {
            samples_24k: ref_wav(),
            text: ref_text.map(str::to_owned),
            x_vector_only: ref_text.is_none(),
        }),
        ..SpeakRequest::new(text)
    }
}

fn greedy(m: &TtsModel, max_new_tokens: usize) -> FrameSampling {
    let mut s = m.default_sampling(7).greedy();
    s.max_new_tokens = max_new_tokens;
    s
}

const CODES_25HZ: u32 = 64;
const SAMPLES_PER_CODE: usize = 60;

#[test]
fn config_accepts_one_group_and_needs_no_code_predictor() {
    let (_d, m) = model(&Variant::new("base"));
    assert_eq!(m.talker().num_code_groups(), 1);
    assert!(m.talker().code_predictor().is_none());
    assert_eq!(m.config().codebook_size(), CODES_25HZ as usize);
    assert_eq!(m.speech_tokenizer().num_quantizers(), 1);
    assert_eq!(m.sample_rate(), 1500);
    assert_eq!(m.samples_per_frame(), SAMPLES_PER_CODE);
    // The feedback of a one-code frame is that code's codec embedding, bit for bit.
    let t = m.talker();
    let frames = vec![vec![3u32], vec![63], vec![0]];
    let fb = t.frame_embeddings(&frames).unwrap();
    let direct = t.codec(&[3, 63, 0]).unwrap();
    assert_eq!(
        to_f32_vec(&fb.flatten_all().unwrap()),
        to_f32_vec(&direct.flatten_all().unwrap())
    );
    // A frame with more codes than the model uses is an error, not a panic.
    assert!(t.frame_embeddings(&[vec![1, 2]]).is_err());
    // No predictor: no further codes and the picker is never consulted.
    let h = Tensor::zeros((2, t.hidden_size()), DType::F32, &Device::Cpu).unwrap();
    let rest = t
        .predict_rest(&h, &[5, 6], |_, _, _| panic!("no code predictor"))
        .unwrap();
    assert_eq!(rest, vec![Vec::<u32>::new(), Vec::new()]);
}

#[test]
fn a_present_code_predictor_is_ignored_with_one_group() {
    // The predictor's config (with 1 group) and weights stay in the files: they are not used.
    let v = Variant {
        predictor_groups: Some(1),
        keep_predictor_weights: true,
        ..Variant::new("base")
    };
    let (_d, m) = model(&v);
    assert!(m.talker().code_predictor().is_none());
    assert_eq!(m.config().codebook_size(), CODES_25HZ as usize);
    // Same talker as without them: the same greedy codes.
    let (_d2, plain) = model(&Variant::new("base"));
    let req = clone_request("Hello there.", None);
    let a = m.speak(&req, &greedy(&m, 6)).unwrap();
    let b = plain.speak(&req, &greedy(&plain, 6)).unwrap();
    assert_eq!(a.frames, b.frames);
}

#[test]
fn config_errors_are_clear() {
    let err = |v: &Variant| match load(v).1 {
        Ok(_) => panic!("loaded"),
        Err(e) => e.to_string(),
    };
    // A predictor config that says another group count.
    let e = err(&Variant {
        predictor_groups: Some(4),
        ..Variant::new("base")
    });
    assert!(e.contains("num_code_groups"), "{e}");
    // Zero groups.
    let e = err(&Variant {
        groups: 0,
        ..Variant::new("base")
    });
    assert!(e.contains("at least 1 codebook"), "{e}");
    // Several groups without a code predictor.
    let e = err(&Variant {
        groups: 4,
        ..Variant::new("base")
    });
    assert!(e.contains("needs a code_predictor_config"), "{e}");
    // One group with the 16-codebook-style 12 Hz tokenizer.
    let e = err(&Variant {
        tokenizer_25hz: false,
        ..Variant::new("base")
    });
    assert!(
        e.contains("emits 1") && e.contains("qwen3_tts_tokenizer_25hz"),
        "{e}"
    );
    // The 12 Hz talker (4 groups, predictor kept) with the 25 Hz tokenizer.
    let e = err(&Variant {
        groups: 4,
        predictor_groups: Some(4),
        keep_predictor_weights: true,
        ..Variant::new("base")
    });
    assert!(e.contains("takes 1 codebook(s) per frame"), "{e}");
}

#[test]
fn config_parses_without_a_code_predictor() {
    let dir = tempfile::tempdir().unwrap();
    build(&Variant::new("custom_voice"), dir.path());
    let cfg = TtsConfig::from_file(&dir.path().join("config.json")).unwrap();
    assert_eq!(cfg.talker_config.num_code_groups, 1);
    assert!(cfg.talker_config.code_predictor().is_none());
    // Code 0 may take the audio codes and EOS; the top 1024 ids but EOS are suppressed.
    let eos = cfg.talker_config.codec_eos_token_id;
    let suppressed = cfg.suppressed_ids();
    assert_eq!(suppressed.len(), 1023);
    assert!(!suppressed.contains(&eos));
    assert_eq!(
        *suppressed.first().unwrap() as usize,
        cfg.codebook_size(),
        "the first suppressed id is the first control id"
    );
}

/// The frame loop by hand with the public talker API: prefill, then per step the input is the
/// codec embedding of the previous code plus the next queued text vector (or the pad vector);
/// greedy over the audio codes, EOS allowed from the third code on (min-new-tokens 2).
fn manual_greedy(
    m: &TtsModel,
    prepared_prompt: &qwen3_speech::models::tts::TalkerPrompt,
    max_new: usize,
) -> (Vec<u32>, bool) {
    let t = m.talker();
    let cfg = m.config();
    let eos = cfg.talker_config.codec_eos_token_id;
    let audio = cfg.codebook_size();
    let pad = t.text(&[cfg.tts_pad_token_id]).unwrap();
    let len = prepared_prompt.embeds.dim(0).unwrap();
    let mut cache = t.new_cache();
    let h = t
        .forward(
            &prepared_prompt.embeds.unsqueeze(0).unwrap(),
            &Positions::contiguous(1, 0, len),
            None,
            &mut cache,
        )
        .unwrap();
    let mut hidden = h.i((.., len - 1, ..)).unwrap();
    let pick = |hidden: &Tensor, drawn: usize| -> u32 {
        let logits = to_f32_vec(&t.logits(hidden).unwrap().flatten_all().unwrap());
        let mut best = (f32::NEG_INFINITY, 0u32);
        for (i, &l) in logits.iter().enumerate() {
            let allowed = i < audio || (i as u32 == eos && drawn >= 2);
            if allowed && l > best.0 {
                best = (l, i as u32);
            }
        }
        best.1
    };
    let mut codes = Vec::new();
    let mut code = pick(&hidden, 0);
    let trailing = &prepared_prompt.trailing;
    // `step + 1` code-0 samples have been drawn when frame `step` is expanded.
    for step in 0..max_new {
        if code == eos {
            return (codes, true);
        }
        if step + 1 >= max_new {
            break;
        }
        codes.push(code);
        let text = if step < trailing.dim(0).unwrap() {
            trailing.narrow(0, step, 1).unwrap()
        } else {
            pad.clone()
        };
        let input = (t.codec(&[code]).unwrap() + text)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let h = t
            .forward(
                &input,
                &Positions::contiguous(1, len + step, 1),
                None,
                &mut cache,
            )
            .unwrap();
        hidden = h.i((.., 0, ..)).unwrap();
        code = pick(&hidden, step + 1);
    }
    (codes, false)
}

#[test]
fn frame_loop_feeds_back_the_codec_embedding_of_the_previous_code() {
    let (_d, m) = model(&Variant::new("base"));
    for ref_text in [None, Some("This is the reference voice.")] {
        let prepared = m
            .prepare(&clone_request("Hello there, how are you?", ref_text))
            .unwrap();
        let mut sampling = greedy(&m, 10);
        sampling.talker.repetition_penalty = 1.0;
        let session = FrameSession::new(
            m.talker(),
            m.config(),
            std::slice::from_ref(&prepared.prompt),
            &sampling,
        )
        .unwrap();
        let (frames, stop) = session.run_to_end().unwrap().pop().unwrap();
        let (manual, ended) = manual_greedy(&m, &prepared.prompt, 10);
        let codes: Vec<u32> = frames.iter().map(|f| f[0]).collect();
        assert!(frames.iter().all(|f| f.len() == 1));
        assert_eq!(codes, manual, "ref_text {ref_text:?}");
        // Enough variety that a wrong feedback would show.
        let mut distinct = codes.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert!(distinct.len() >= 3, "codes {codes:?}");
        assert_eq!(stop == FrameStop::Eos, ended);
    }
}

#[test]
fn codes_are_one_per_frame_and_in_the_codebook() {
    let (_d, m) = model(&Variant::new("base"));
    let mut s = m.default_sampling(11);
    s.max_new_tokens = 12;
    // Sampled (temperature, top-k, repetition penalty) and greedy.
    for sampling in [s.clone(), s.greedy()] {
        let speech = m
            .speak(&clone_request("One single codebook.", None), &sampling)
            .unwrap();
        assert!(!speech.frames.is_empty());
        for f in &speech.frames {
            assert_eq!(f.len(), 1);
            assert!(f[0] < CODES_25HZ, "code {} outside the codebook", f[0]);
        }
        assert_eq!(speech.samples.len(), speech.frames.len() * SAMPLES_PER_CODE);
        assert_eq!(speech.sample_rate, 1500);
        assert!(speech.samples.iter().all(|x| x.is_finite()));
    }
}

#[test]
fn stops_on_eos_and_at_the_frame_limit() {
    // EOS as early as allowed: codes 1 and 2 cannot be EOS, the third is -> 2 frames.
    let (_d, m) = model(&Variant {
        eos: Eos::Forced,
        ..Variant::new("base")
    });
    let speech = m
        .speak(&clone_request("Stop early.", None), &greedy(&m, 50))
        .unwrap();
    assert_eq!(speech.stop, FrameStop::Eos);
    assert_eq!(speech.frames.len(), 2);
    assert_eq!(speech.samples.len(), 2 * SAMPLES_PER_CODE);
    assert!(speech.warnings.iter().all(|w| !w.contains("frame limit")));

    // EOS never wins: max_new_tokens code-0 samples give max_new_tokens - 1 frames.
    let (_d, m) = model(&Variant {
        eos: Eos::Never,
        ..Variant::new("base")
    });
    for max in [1, 2, 7] {
        let speech = m
            .speak(&clone_request("Never stop.", None), &greedy(&m, max))
            .unwrap();
        assert_eq!(speech.stop, FrameStop::MaxFrames);
        assert_eq!(speech.frames.len(), max - 1);
        assert_eq!(speech.samples.len(), (max - 1) * SAMPLES_PER_CODE);
        if max > 1 {
            assert!(speech.warnings.iter().any(|w| w.contains("frame limit")));
        }
    }
}

#[test]
fn voice_clone_reference_codes_and_decode_hand_off() {
    let (_d, m) = model(&Variant {
        eos: Eos::Never,
        ..Variant::new("base")
    });
    let wav = ref_wav();
    let req = clone_request("Cloned speech.", Some("This is the reference voice."));
    let prepared = m.prepare(&req).unwrap();
    // (M, 1) codes of the clip at 16 kHz: one per 640 samples (padded up).
    let at16k = qwen3_speech::engine::audio::resample(&wav, 24_000, 16_000).unwrap();
    let expected = m
        .speech_tokenizer()
        .as_codec25()
        .unwrap()
        .encode_codes(&at16k)
        .unwrap();
    let refc = prepared.reference_codes.as_ref().unwrap();
    assert_eq!(refc.len(), at16k.len().div_ceil(640));
    assert!(refc.iter().all(|f| f.len() == 1 && f[0] < CODES_25HZ));
    assert_eq!(refc.iter().map(|f| f[0]).collect::<Vec<_>>(), expected);
    // The decoder's voice comes from the clip: CAM++ x-vector (192) and its reference mel.
    let sp = prepared.codec_speaker.as_ref().unwrap();
    assert_eq!(sp.xvector.len(), 192);
    assert!(sp.ref_mel_frames > 0);
    assert_eq!(sp.ref_mel.len(), sp.ref_mel_frames * 80);

    // ICL: the reference codes are decoded first and their share cut off.
    let speech = m.speak(&req, &greedy(&m, 6)).unwrap();
    assert_eq!(speech.frames.len(), 5);
    let n = speech.frames.len() * SAMPLES_PER_CODE;
    assert!(
        speech.samples.len() == n || speech.samples.len() == n + 1,
        "{} samples for {} frames",
        speech.samples.len(),
        speech.frames.len()
    );
    // The hand-off is the tokenizer's decode of [reference; generated] with the clip's voice.
    let decoded = m.decode_prepared(&prepared, &speech.frames, 7).unwrap();
    assert_eq!(decoded, speech.samples);
    // The 12 Hz-style decode without the voice is refused clearly.
    let e = m.decode(&speech.frames, None).unwrap_err().to_string();
    assert!(e.contains("x-vector"), "{e}");
}

#[test]
fn named_speakers_need_a_recording_for_the_25hz_decoder() {
    let (_d, m) = model(&Variant::new("custom_voice"));
    let req = SpeakRequest {
        speaker: Some("ryan".into()),
        language: Some("english".into()),
        ..SpeakRequest::new("Hello.")
    };
    let e = m.prepare(&req).err().expect("refused");
    assert!(
        matches!(e, qwen3_speech::Error::InvalidArgument(_)),
        "{e:?}"
    );
    let e = e.to_string();
    assert!(
        e.contains("codec_speaker") && e.contains("custom_voice"),
        "{e}"
    );
    // An empty recording is refused too.
    let empty = SpeakRequest {
        codec_speaker: Some(Vec::new()),
        ..req.clone()
    };
    let e = m.prepare(&empty).err().expect("refused").to_string();
    assert!(e.contains("empty"), "{e}");
    // With a recording of the voice the request runs end to end.
    let with = SpeakRequest {
        codec_speaker: Some(ref_wav()),
        ..req
    };
    let prepared = m.prepare(&with).unwrap();
    assert!(prepared.reference_codes.is_none());
    assert_eq!(prepared.codec_speaker.as_ref().unwrap().xvector.len(), 192);
    let speech = m.speak(&with, &greedy(&m, 5)).unwrap();
    assert!(
        speech
            .frames
            .iter()
            .all(|f| f.len() == 1 && f[0] < CODES_25HZ)
    );
    assert_eq!(speech.samples.len(), speech.frames.len() * SAMPLES_PER_CODE);
}

#[test]
fn twelve_hz_models_ignore_a_codec_speaker_with_a_warning() {
    let m = TtsModel::load(
        &ModelDir::open(fixture("tts-tiny/custom_voice")).unwrap(),
        &Device::Cpu,
        DType::F32,
    )
    .unwrap();
    let req = SpeakRequest {
        speaker: Some("ryan".into()),
        codec_speaker: Some(vec![0.0; 2400]),
        ..SpeakRequest::new("Hello.")
    };
    let p = m.prepare(&req).unwrap();
    assert!(p.codec_speaker.is_none());
    assert!(p.warnings.iter().any(|w| w.contains("codec_speaker")));
}

#[test]
fn streaming_gives_the_offline_codes_and_audio_in_one_chunk() {
    let dir = tempfile::tempdir().unwrap();
    build(
        &Variant {
            eos: Eos::Never,
            ..Variant::new("base")
        },
        dir.path(),
    );
    let synth = Synthesizer::from_dir(
        ModelDir::open(dir.path()).unwrap(),
        SynthesizerConfig {
            device: qwen3_speech::engine::device::DeviceSpec::Cpu,
            dtype: Some(qwen3_speech::engine::device::ComputeDType::F32),
            ..SynthesizerConfig::default()
        },
    )
    .unwrap();
    let opts = SynthesisOptions {
        seed: 3,
        max_frames: Some(7),
        ..SynthesisOptions::default()
    };
    for ref_text in [None, Some("This is the reference voice.")] {
        let req = clone_request("Streamed or not.", ref_text);
        let offline = synth.speak(&req, &opts).unwrap();
        assert_eq!(offline.frames.len(), 6);
        assert!(offline.truncated);
        let frames: Vec<Vec<u32>> = synth
            .frames(&req, &opts)
            .unwrap()
            .collect::<qwen3_speech::Result<_>>()
            .unwrap();
        assert_eq!(frames, offline.frames);
        let mut stream = synth
            .speak_stream(&req, &opts, &SpeechStreamOptions::default())
            .unwrap();
        let mut chunks = Vec::new();
        while let Some(c) = stream.next_chunk().unwrap() {
            chunks.push(c);
        }
        assert_eq!(
            chunks.len(),
            1,
            "the 25 Hz decoder yields the whole audio once"
        );
        assert_eq!(stream.frames(), offline.frames.as_slice());
        assert!(stream.truncated());
        assert_eq!(chunks[0], offline.audio.samples);
    }
}

#[test]
fn cancellation_stops_the_single_codebook_frame_loop() {
    use qwen3_speech::engine::cancel::CancelToken;
    let (_d, m) = model(&Variant {
        eos: Eos::Never,
        ..Variant::new("base")
    });
    let prepared = m.prepare(&clone_request("Cancel me.", None)).unwrap();
    let token = CancelToken::new();
    let mut got = 0;
    let r = token.scope(|| -> qwen3_speech::Result<()> {
        let mut session = m.start(&[&prepared], &greedy(&m, 50))?;
        loop {
            let out = session.step()?;
            got += out.len();
            if got == 2 {
                token.cancel();
            }
        }
    });
    assert!(matches!(r, Err(qwen3_speech::Error::Cancelled)), "{r:?}");
    assert_eq!(got, 2, "the frame after cancel() is not generated");
}
