use qwen3_speech::engine::kernels::PackedMatrix;
use std::time::Instant;
fn main() {
    let shapes = [
        (4096usize, 1024usize),
        (1024, 2048),
        (6144, 1024),
        (1024, 3072),
    ];
    let mut mats = Vec::new();
    for _ in 0..28 {
        for &(n, k) in &shapes {
            let w: Vec<half::bf16> = (0..n * k)
                .map(|i| half::bf16::from_f32((i % 13) as f32 * 0.01))
                .collect();
            mats.push(PackedMatrix::from_bf16(&w, n, k).unwrap());
        }
    }
    let bytes: usize = mats.iter().map(|m| m.bytes()).sum();
    let x: Vec<f32> = (0..3072).map(|i| i as f32 * 1e-3).collect();
    for round in 0..5 {
        let s = Instant::now();
        for m in &mats {
            let _ = m.matmul(&x[..m.k()], 1).unwrap();
        }
        let t = s.elapsed().as_secs_f64();
        println!(
            "round {round}: layers-shaped {:.2} ms, {:.1} GB/s",
            t * 1e3,
            bytes as f64 / t / 1e9
        );
    }
    let big: Vec<half::bf16> = (0..bytes / 2)
        .map(|i| half::bf16::from_f32((i % 13) as f32 * 0.01))
        .collect();
    let n = bytes / 2 / 1024;
    let pb = PackedMatrix::from_bf16(&big[..n * 1024], n, 1024).unwrap();
    for round in 0..3 {
        let s = Instant::now();
        let _ = pb.matmul(&x[..1024], 1).unwrap();
        let t = s.elapsed().as_secs_f64();
        println!(
            "round {round}: one matrix {:.2} ms, {:.1} GB/s",
            t * 1e3,
            pb.bytes() as f64 / t / 1e9
        );
    }
}
