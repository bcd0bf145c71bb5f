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

/// True when the packed kernels can run on this CPU.
pub fn packed_kernels_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}
