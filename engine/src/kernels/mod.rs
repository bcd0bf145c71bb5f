//! CPU compute kernels that candle does not provide fast enough for speech models.
//!
//! * [`packed`]: weight matrices stored once in a panel layout (f32, or bf16 when the checkpoint
//!   is bf16, which is lossless), multiplied by activations with an AVX-512 GEMM micro-kernel
//!   (prefill, encoders, convolutions as im2col) or a bandwidth-bound GEMV (decode steps).
//! * [`elementwise`]: multi-threaded element-wise activations (exact GELU).
//!
//! Everything here is used only where the CPU supports it (checked at run time); other machines
//! and devices use candle's kernels.

pub mod elementwise;
pub mod packed;
pub mod pool;

pub use packed::PackedMatrix;

/// True when the packed kernels can run on this CPU and are not switched off.
///
/// `QWEN3_SPEECH_KERNELS=candle` (read once, at first use) makes the engine use candle's
/// kernels everywhere: for comparisons and for testing the fallback path on AVX-512 machines.
pub fn packed_kernels_available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        if std::env::var("QWEN3_SPEECH_KERNELS").is_ok_and(|v| v.eq_ignore_ascii_case("candle")) {
            return false;
        }
        cpu_has_avx512f()
    })
}

fn cpu_has_avx512f() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}
