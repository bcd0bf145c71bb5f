//! Shared helpers of the golden tests: fixture paths, tensor loading and comparisons.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};

/// `tests/fixtures/<rel>`.
pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// All tensors of a safetensors fixture, on the CPU.
pub fn load_tensors(rel: &str) -> HashMap<String, Tensor> {
    let path = fixture(rel);
    candle_core::safetensors::load(&path, &Device::Cpu)
        .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()))
}

/// A JSON fixture.
pub fn load_json(rel: &str) -> serde_json::Value {
    let path = fixture(rel);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn to_f32_vec(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

pub fn to_u32_vec(t: &Tensor) -> Vec<u32> {
    t.to_dtype(DType::I64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<i64>()
        .unwrap()
        .into_iter()
        .map(|v| v as u32)
        .collect()
}

/// max |a - b| and max |a - b| / max |b|.
pub fn diff(actual: &Tensor, expected: &Tensor) -> (f32, f32) {
    assert_eq!(
        actual.dims(),
        expected.dims(),
        "shape mismatch: actual {:?}, expected {:?}",
        actual.dims(),
        expected.dims()
    );
    let a = to_f32_vec(actual);
    let b = to_f32_vec(expected);
    let max_abs = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    let scale = b.iter().map(|y| y.abs()).fold(0f32, f32::max).max(1e-12);
    (max_abs, max_abs / scale)
}

/// Asserts `actual` matches `expected` to `rel_tol` relative to the largest expected value.
pub fn assert_close(what: &str, actual: &Tensor, expected: &Tensor, rel_tol: f32) -> f32 {
    let (abs, rel) = diff(actual, expected);
    assert!(
        rel <= rel_tol,
        "{what}: max abs diff {abs:e}, relative {rel:e} > {rel_tol:e}"
    );
    rel
}

/// JSON array of integers as u32.
pub fn json_ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an id array, got {v}"))
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}
