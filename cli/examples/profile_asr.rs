use candle_core::{DType, Device, Tensor};
use qwen3_speech::ModelDir;
use qwen3_speech::models::asr::{AsrModel, EncoderAttention};
use std::time::Instant;

fn t<F: FnMut() -> R, R>(name: &str, n: usize, mut f: F) -> R {
    let mut r = f();
    let s = Instant::now();
    for _ in 0..n {
        r = f();
    }
    println!(
        "{name:40} {:8.2} ms",
        s.elapsed().as_secs_f64() * 1000.0 / n as f64
    );
    r
}

fn main() {
    let dir = ModelDir::open("bench-models/asr-0.6b").unwrap();
    let m = AsrModel::load(&dir, &Device::Cpu, DType::F32).unwrap();
    let wav = qwen3_speech::engine::audio::load_audio(
        "bench-models/asr-0.6b/bench-audio/speech_10s.wav",
        16000,
    )
    .unwrap();
    let mel = m.features(&wav).unwrap();
    let enc = m.thinker().audio_encoder();
    let stem = t("stem (conv + conv_out + pos)", 3, || {
        enc.stem(&mel).unwrap()
    });
    let w = enc.window_tokens(&stem.chunk_tokens, EncoderAttention::Windowed);
    let h = t("encoder layers", 3, || {
        enc.run_layers(&stem.embedded, w, enc.num_layers()).unwrap()
    });
    t("encoder head", 3, || enc.head(&h).unwrap());
    // gelu on a conv-sized tensor
    let x = Tensor::randn(0f32, 1.0, (10, 480, 64, 50), &Device::Cpu).unwrap();
    t("gelu_erf 15M", 3, || x.gelu_erf().unwrap());
    t("gelu (tanh) 15M", 3, || x.gelu().unwrap());
    let inp = Tensor::randn(0f32, 1.0, (10, 480, 64, 50), &Device::Cpu).unwrap();
    let k = Tensor::randn(0f32, 1.0, (480, 480, 3, 3), &Device::Cpu).unwrap();
    t("conv2d 480->480 10 chunks", 3, || {
        inp.conv2d(&k, 1, 2, 1, 1).unwrap()
    });
    // prefill-shaped matmuls
    let a = Tensor::randn(0f32, 1.0, (145, 1024), &Device::Cpu).unwrap();
    let wt = Tensor::randn(0f32, 1.0, (3072, 1024), &Device::Cpu).unwrap();
    t("145x1024 @ (3072x1024)^T", 10, || {
        a.matmul(&wt.t().unwrap()).unwrap()
    });
    let wc = wt.t().unwrap().contiguous().unwrap();
    t("145x1024 @ 1024x3072 contiguous", 10, || {
        a.matmul(&wc).unwrap()
    });
    let a2 = Tensor::randn(0f32, 1.0, (145, 3072), &Device::Cpu).unwrap();
    let wd = Tensor::randn(0f32, 1.0, (1024, 3072), &Device::Cpu).unwrap();
    t("145x3072 @ (1024x3072)^T", 10, || {
        a2.matmul(&wd.t().unwrap()).unwrap()
    });
    let e = Tensor::randn(0f32, 1.0, (130, 896), &Device::Cpu).unwrap();
    let we = Tensor::randn(0f32, 1.0, (3584, 896), &Device::Cpu).unwrap();
    t("130x896 @ (3584x896)^T (enc fc1)", 10, || {
        e.matmul(&we.t().unwrap()).unwrap()
    });
    {
        use qwen3_speech::engine::kernels::PackedMatrix;
        let w: Vec<f32> = wt.flatten_all().unwrap().to_vec1().unwrap();
        let p = PackedMatrix::from_f32(&w, 3072, 1024).unwrap();
        let x: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
        t("packed 145x1024 x 3072", 10, || p.matmul(&x, 145).unwrap());
        t("packed 1x1024 x 3072 (gemv)", 50, || {
            p.matmul(&x[..1024], 1).unwrap()
        });
        let wb: Vec<half::bf16> = w.iter().map(|&v| half::bf16::from_f32(v)).collect();
        let pb = PackedMatrix::from_bf16(&wb, 3072, 1024).unwrap();
        t("packed bf16 145x1024 x 3072", 10, || {
            pb.matmul(&x, 145).unwrap()
        });
        t("packed bf16 1x1024 x 3072 (gemv)", 50, || {
            pb.matmul(&x[..1024], 1).unwrap()
        });
        let big: Vec<f32> = (0..151936usize * 1024).map(|i| (i % 7) as f32).collect();
        let ph = PackedMatrix::from_f32(&big, 151936, 1024).unwrap();
        t("packed head 1x1024 x 151936 f32", 10, || {
            ph.matmul(&x[..1024], 1).unwrap()
        });
        let bigb: Vec<half::bf16> = big.iter().map(|&v| half::bf16::from_f32(v)).collect();
        drop(big);
        let phb = PackedMatrix::from_bf16(&bigb, 151936, 1024).unwrap();
        t("packed head 1x1024 x 151936 bf16", 10, || {
            phb.matmul(&x[..1024], 1).unwrap()
        });
    }
    let s = Tensor::randn(0f32, 1.0, (145, 3072), &Device::Cpu).unwrap();
    t("silu 145x3072", 20, || candle_nn::ops::silu(&s).unwrap());
    t("mul 145x3072", 20, || (&s * &s).unwrap());
}
