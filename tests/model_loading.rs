//! Loading checkpoints the way they are released: bf16 weights, sharded safetensors with an
//! index, and clear errors for missing or mismatched files and tensors.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use common::*;
use qwen3_speech::ModelDir;
use qwen3_speech::models::asr::{AsrModel, EncoderAttention};

/// The message of the error that loading `dir` must give.
fn load_error(dir: &Path) -> String {
    AsrModel::load(&ModelDir::open(dir).unwrap(), &Device::Cpu, DType::F32)
        .unwrap_err()
        .to_string()
}

/// Copies the tiny checkpoint's non-weight files into `dst`.
fn copy_side_files(dst: &Path) {
    let src = fixture("asr-tiny");
    for entry in std::fs::read_dir(&src).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() && p.file_name().unwrap() != "model.safetensors" {
            std::fs::copy(&p, dst.join(p.file_name().unwrap())).unwrap();
        }
    }
}

fn tiny_tensors() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture("asr-tiny/model.safetensors"), &Device::Cpu).unwrap()
}

/// Writes `tensors` as `n` bf16 shards plus `model.safetensors.index.json`.
fn write_sharded_bf16(dst: &Path, tensors: &HashMap<String, Tensor>, n: usize) {
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    let mut weight_map = BTreeMap::new();
    for (i, chunk) in names.chunks(names.len().div_ceil(n)).enumerate() {
        let file = format!("model-{:05}-of-{:05}.safetensors", i + 1, n);
        let shard: HashMap<String, Tensor> = chunk
            .iter()
            .map(|k| ((*k).clone(), tensors[*k].to_dtype(DType::BF16).unwrap()))
            .collect();
        candle_core::safetensors::save(&shard, dst.join(&file)).unwrap();
        for k in chunk {
            weight_map.insert((*k).clone(), file.clone());
        }
    }
    let index = serde_json::json!({"metadata": {"total_size": 0}, "weight_map": weight_map});
    std::fs::write(dst.join("model.safetensors.index.json"), index.to_string()).unwrap();
}

#[test]
fn bf16_sharded_checkpoint_loads_and_computes() {
    let tmp = tempfile::tempdir().unwrap();
    copy_side_files(tmp.path());
    write_sharded_bf16(tmp.path(), &tiny_tensors(), 3);
    let dir = ModelDir::open(tmp.path()).unwrap();
    assert_eq!(dir.weight_files().unwrap().len(), 3);

    let sharded = AsrModel::load(&dir, &Device::Cpu, DType::F32).unwrap();
    let original = AsrModel::load(
        &ModelDir::open(fixture("asr-tiny")).unwrap(),
        &Device::Cpu,
        DType::F32,
    )
    .unwrap();
    let mel = &load_tensors("asr-tiny/expected/clip_speech_3p0s.safetensors")["mel"];
    let a = sharded
        .thinker()
        .encode_audio(mel, EncoderAttention::Windowed)
        .unwrap();
    let b = original
        .thinker()
        .encode_audio(mel, EncoderAttention::Windowed)
        .unwrap();
    // bf16-rounded weights computed in f32: close to, not equal to, the f32 checkpoint.
    let (_, rel) = diff(&a, &b);
    assert!(rel > 0.0 && rel < 0.05, "relative difference {rel}");

    // Computing in bf16 works too.
    let bf16 = AsrModel::load(&dir, &Device::Cpu, DType::BF16).unwrap();
    let c = bf16
        .thinker()
        .encode_audio(mel, EncoderAttention::Windowed)
        .unwrap();
    assert_eq!(c.dtype(), DType::BF16);
    let (_, rel) = diff(&c, &a);
    assert!(rel < 0.1, "bf16 compute relative difference {rel}");
}

#[test]
fn missing_shard_and_mismatched_tensor_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    copy_side_files(tmp.path());
    let mut tensors = tiny_tensors();
    write_sharded_bf16(tmp.path(), &tensors, 2);
    std::fs::remove_file(tmp.path().join("model-00002-of-00002.safetensors")).unwrap();
    let err = load_error(tmp.path());
    assert!(err.contains("model-00002-of-00002.safetensors"), "{err}");

    // A tensor with the wrong shape: the error names it and both shapes.
    let tmp = tempfile::tempdir().unwrap();
    copy_side_files(tmp.path());
    let name = "thinker.model.layers.1.mlp.up_proj.weight".to_string();
    tensors.insert(
        name.clone(),
        Tensor::zeros((7, 48), DType::F32, &Device::Cpu).unwrap(),
    );
    candle_core::safetensors::save(&tensors, tmp.path().join("model.safetensors")).unwrap();
    let err = load_error(tmp.path());
    assert!(
        err.contains(&name) && err.contains("[7, 48]") && err.contains("[96, 48]"),
        "{err}"
    );

    // A missing tensor.
    tensors.remove(&name);
    candle_core::safetensors::save(&tensors, tmp.path().join("model.safetensors")).unwrap();
    let err = load_error(tmp.path());
    assert!(
        err.contains("missing tensor") && err.contains(&name),
        "{err}"
    );
}

#[test]
fn broken_configs_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    copy_side_files(tmp.path());
    std::fs::copy(
        fixture("asr-tiny/model.safetensors"),
        tmp.path().join("model.safetensors"),
    )
    .unwrap();
    let cfg_path = tmp.path().join("config.json");
    let good = std::fs::read_to_string(&cfg_path).unwrap();

    std::fs::write(&cfg_path, "{ not json").unwrap();
    let err = load_error(tmp.path());
    assert!(err.contains("config.json"), "{err}");

    let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
    v["thinker_config"]["audio_config"]["n_window"] = serde_json::json!(64);
    std::fs::write(&cfg_path, v.to_string()).unwrap();
    let err = load_error(tmp.path());
    assert!(err.contains("n_window"), "{err}");

    // A tokenizer that lacks the model's special tokens.
    std::fs::write(&cfg_path, &good).unwrap();
    std::fs::write(tmp.path().join("tokenizer_config.json"), "{}").unwrap();
    std::fs::remove_file(tmp.path().join("tokenizer.json")).ok();
    let err = load_error(tmp.path());
    assert!(
        err.contains("<|im_end|>") || err.contains("audio_pad"),
        "{err}"
    );
}
