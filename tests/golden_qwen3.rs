//! The shared Qwen3 decoder against the reference thinker of the tiny ASR checkpoint (text-only
//! prompts, float32): RoPE tables, q after q_norm, layer 0, final norm, logits, a left-padded
//! batch and greedy decoding with the KV cache.
#![allow(clippy::needless_range_loop)]

mod common;

use candle_core::{DType, Device, IndexOp, Tensor};
use common::*;
use qwen3_speech::ModelDir;
use qwen3_speech::engine::sampling::SamplingConfig;
use qwen3_speech::engine::transformer::Positions;
use qwen3_speech::models::asr::AsrModel;
use qwen3_speech::models::asr::generate::{DecodeOptions, DecodeRequest, generate};

const REL: f32 = 1e-4;

fn model() -> AsrModel {
    let dir = ModelDir::open(fixture("asr-tiny")).unwrap();
    AsrModel::load(&dir, &Device::Cpu, DType::F32).unwrap()
}

#[test]
fn rope_tables_match_reference() {
    let m = model();
    let t = load_tensors("asr-tiny/expected/thinker_text.safetensors");
    let pos = to_u32_vec(&t["rope_positions"]);
    let rope = m.thinker().decoder().rope();
    let tables = rope
        .tables(
            &Positions::from_rows(&[pos]).unwrap(),
            DType::F32,
            &Device::Cpu,
        )
        .unwrap();
    // The reference stores [cos(a), cos(a)] over the full head_dim; we keep the first half.
    let half = tables.cos.dim(1).unwrap();
    assert_close(
        "rope cos",
        &tables.cos,
        &t["rope_cos"].narrow(1, 0, half).unwrap(),
        1e-6,
    );
    assert_close(
        "rope sin",
        &tables.sin,
        &t["rope_sin"].narrow(1, 0, half).unwrap(),
        1e-6,
    );
}

#[test]
fn single_prompt_matches_reference() {
    let m = model();
    let t = load_tensors("asr-tiny/expected/thinker_text.safetensors");
    let ids = to_u32_vec(&t["single_input_ids"]);
    let th = m.thinker();
    let embeds = th.embed_prompt(std::slice::from_ref(&ids), None).unwrap();
    assert_close(
        "inputs_embeds",
        &embeds.i(0).unwrap(),
        &t["single_inputs_embeds"],
        1e-6,
    );

    let pos = Positions::contiguous(1, 0, ids.len());
    let layer0 = th.decoder().layers()[0].clone();
    let normed_in = layer0.input_norm().forward(&embeds).unwrap();
    let q = layer0.attention().normed_queries(&normed_in).unwrap(); // [1, heads, L, hd]
    let q = q.i(0).unwrap().transpose(0, 1).unwrap(); // [L, heads, hd]
    assert_close(
        "layer0 q after q_norm",
        &q,
        &t["single_layer0_q_normed"],
        REL,
    );

    let mut cache = th.new_cache();
    let l0 = th
        .decoder()
        .forward_layers(&embeds, &pos, None, &mut cache, 1)
        .unwrap();
    assert_close(
        "layer0 out",
        &l0.i(0).unwrap(),
        &t["single_layer0_out"],
        REL,
    );

    let mut cache = th.new_cache();
    let hidden = th.decode(&embeds, &pos, None, &mut cache).unwrap();
    assert_close(
        "final normed",
        &hidden.i(0).unwrap(),
        &t["single_final_normed"],
        REL,
    );
    let logits = th.logits(&hidden).unwrap();
    let rel = assert_close("logits", &logits.i(0).unwrap(), &t["single_logits"], REL);
    eprintln!("single prompt logits: relative max diff {rel:e}");
}

#[test]
fn left_padded_batch_matches_reference() {
    let m = model();
    let t = load_tensors("asr-tiny/expected/thinker_text.safetensors");
    let ids_t = &t["batch_input_ids"];
    let mask_t = &t["batch_attention_mask"];
    let (b, l) = ids_t.dims2().unwrap();
    let ids: Vec<Vec<u32>> = (0..b).map(|r| to_u32_vec(&ids_t.i(r).unwrap())).collect();
    let mask: Vec<Vec<bool>> = (0..b)
        .map(|r| {
            to_u32_vec(&mask_t.i(r).unwrap())
                .iter()
                .map(|&v| v == 1)
                .collect()
        })
        .collect();
    // Positions as the reference: cumsum(mask) - 1, pads at 1.
    let positions: Vec<Vec<u32>> = mask
        .iter()
        .map(|row| {
            let mut c = 0u32;
            row.iter()
                .map(|&v| {
                    if v {
                        c += 1;
                        c - 1
                    } else {
                        1
                    }
                })
                .collect()
        })
        .collect();
    let th = m.thinker();
    let embeds = th.embed_prompt(&ids, None).unwrap();
    let mut cache = th.new_cache();
    let hidden = th
        .decode(
            &embeds,
            &Positions::from_rows(&positions).unwrap(),
            Some(&mask),
            &mut cache,
        )
        .unwrap();
    let logits = th.logits(&hidden).unwrap();
    for r in 0..b {
        let valid: Vec<u32> = (0..l as u32).filter(|&i| mask[r][i as usize]).collect();
        let idx = Tensor::new(valid.as_slice(), &Device::Cpu).unwrap();
        let sel = |x: &Tensor| x.i(r).unwrap().index_select(&idx, 0).unwrap();
        assert_close(
            &format!("batch row {r} final normed"),
            &sel(&hidden),
            &sel(&t["batch_final_normed"]),
            REL,
        );
        assert_close(
            &format!("batch row {r} logits"),
            &sel(&logits),
            &sel(&t["batch_logits"]),
            REL,
        );
    }
}

#[test]
fn greedy_continuations_match_reference() {
    let m = model();
    let t = load_tensors("asr-tiny/expected/thinker_text.safetensors");
    let meta = load_json("asr-tiny/expected/thinker_text.json");
    let single = to_u32_vec(&t["single_input_ids"]);
    let expected_single = to_u32_vec(&t["single_greedy_ids"]);
    let options = DecodeOptions {
        sampling: SamplingConfig::greedy(),
        // The reference continuation ran without stop tokens.
        stop_ids: vec![],
        pad_id: m.special_tokens().endoftext,
    };
    let n = expected_single.len();
    let req = |p: Vec<u32>| DecodeRequest {
        prompt: p,
        audio: None,
        max_new_tokens: n,
    };
    let out = generate(m.thinker(), &[req(single.clone())], &options, |_, _| {}).unwrap();
    assert_eq!(
        out[0].tokens, expected_single,
        "greedy ids of the single prompt"
    );

    // The batch: prompts a and b, left-padded by us, must give the reference's batched ids.
    let a = json_ids(&meta["prompt_a_ids"]);
    let b = json_ids(&meta["prompt_b_ids"]);
    let batch_ids = &t["batch_greedy_ids"];
    let out = generate(m.thinker(), &[req(a), req(b)], &options, |_, _| {}).unwrap();
    for r in 0..2 {
        assert_eq!(
            out[r].tokens,
            to_u32_vec(&batch_ids.i(r).unwrap()),
            "batch row {r}"
        );
    }
}
