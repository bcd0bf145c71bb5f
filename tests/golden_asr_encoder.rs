//! The Qwen3-ASR audio encoder against the reference on the tiny checkpoint (float32), for
//! clips that cover every path: several chunks with a padded tail and more than one attention
//! window (5.3 s), a whole number of chunks (3.0 s), a single short chunk (0.35 s) and a single
//! frame (250 samples); both attention modes.

mod common;

use candle_core::{DType, Device, IndexOp};
use common::*;
use qwen3_speech::ModelDir;
use qwen3_speech::models::asr::{AsrModel, EncoderAttention};

const REL: f32 = 1e-4;
const CLIPS: [&str; 4] = [
    "speech_5p3s",
    "speech_3p0s",
    "speech_0p35s",
    "speech_250samples",
];

fn model() -> AsrModel {
    let dir = ModelDir::open(fixture("asr-tiny")).unwrap();
    AsrModel::load(&dir, &Device::Cpu, DType::F32).unwrap()
}

#[test]
fn features_stem_layers_and_embeddings_match_reference() {
    let m = model();
    let enc = m.thinker().audio_encoder();
    let meta = load_json("asr-tiny/expected/clips.json");
    for clip in CLIPS {
        let t = load_tensors(&format!("asr-tiny/expected/clip_{clip}.safetensors"));
        let info = &meta["clips"][clip];
        let wave = to_f32_vec(&t["waveform"]);

        let mel = m.features(&wave).unwrap();
        assert_close(&format!("{clip} log-mel"), &mel, &t["mel"], REL);
        // From here on, feed the reference mel so each stage is tested on its own.
        let mel = &t["mel"];

        let stem = enc.stem(mel).unwrap();
        assert_eq!(
            stem.chunk_tokens,
            to_u32_vec(&t["chunk_lengths_after_cnn"])
                .iter()
                .map(|&v| v as usize)
                .collect::<Vec<_>>(),
            "{clip} tokens per chunk"
        );
        assert_close(
            &format!("{clip} conv_out"),
            &stem.conv_out,
            &t["conv_out"],
            REL,
        );
        assert_close(
            &format!("{clip} after positions"),
            &stem.embedded,
            &t["after_pos_gather"],
            REL,
        );

        for (mode, name) in [
            (EncoderAttention::Full, "full"),
            (EncoderAttention::Windowed, "windowed"),
        ] {
            let window = enc.window_tokens(&stem.chunk_tokens, mode);
            if mode == EncoderAttention::Windowed {
                assert_eq!(
                    window as u64,
                    info["window_tokens"].as_u64().unwrap(),
                    "{clip} window"
                );
            }
            let l0 = enc.run_layers(&stem.embedded, window, 1).unwrap();
            assert_close(
                &format!("{clip} {name} layer 0"),
                &l0,
                &t[&format!("{name}_layer0_out")],
                REL,
            );
            let last = enc
                .run_layers(&stem.embedded, window, enc.num_layers())
                .unwrap();
            assert_close(
                &format!("{clip} {name} last layer"),
                &last,
                &t[&format!("{name}_last_layer_out")],
                REL,
            );
            let out = m.thinker().encode_audio(mel, mode).unwrap();
            let rel = assert_close(
                &format!("{clip} {name} embeddings"),
                &out,
                &t[&format!("{name}_audio_embeds")],
                REL,
            );
            eprintln!("{clip} {name}: audio embeddings relative max diff {rel:e}");
        }
    }
}

#[test]
fn windowed_and_full_differ_only_beyond_one_window() {
    // A sanity check that the two modes are really different computations on long clips.
    let m = model();
    let t = load_tensors("asr-tiny/expected/clip_speech_5p3s.safetensors");
    let full = m
        .thinker()
        .encode_audio(&t["mel"], EncoderAttention::Full)
        .unwrap();
    let win = m
        .thinker()
        .encode_audio(&t["mel"], EncoderAttention::Windowed)
        .unwrap();
    let (abs, _) = diff(&full, &win);
    assert!(
        abs > 1e-2,
        "modes should differ on a 3-window clip, diff {abs}"
    );
    let t = load_tensors("asr-tiny/expected/clip_speech_0p35s.safetensors");
    let full = m
        .thinker()
        .encode_audio(&t["mel"], EncoderAttention::Full)
        .unwrap();
    let win = m
        .thinker()
        .encode_audio(&t["mel"], EncoderAttention::Windowed)
        .unwrap();
    assert_eq!(
        to_f32_vec(&full.i(0).unwrap()),
        to_f32_vec(&win.i(0).unwrap())
    );
}
