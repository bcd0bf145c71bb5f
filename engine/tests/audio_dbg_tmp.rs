use candle_core::Device;
#[test]
fn dump() {
    let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/audio/speaker_mel_24k.safetensors");
    let t = candle_core::safetensors::load(&p, &Device::Cpu).unwrap();
    let x = t["input"].to_vec1::<f32>().unwrap();
    let m = qwen3_speech_engine::audio::speaker_encoder_mel(&x).unwrap();
    let bytes: Vec<u8> = m.data.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write("/tmp/dbg/spk.bin", bytes).unwrap();
}
