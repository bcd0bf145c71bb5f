//! The audio encoder's convolution stem on the CPU: three 3×3 stride-2 convolutions with exact
//! GELU, computed as im2col + the engine's packed GEMM over channels-last (NHWC) images.
//!
//! candle's CPU conv2d reaches about 90 GFLOP/s on these shapes; the stem is ~4.4 GFLOP per
//! second of audio, so it dominated the encoder. Channels-last keeps every im2col copy a
//! contiguous run of input channels and makes each GEMM output the next layer's input as is.

use std::sync::Arc;

use candle_core::Tensor;
use rayon::prelude::*;

use qwen3_speech_engine::kernels::PackedMatrix;
use qwen3_speech_engine::kernels::elementwise::gelu_erf_inplace;
use qwen3_speech_engine::{Error, Result};

/// im2col buffers are built for as many images at once as fit in this many bytes.
const IM2COL_BYTES: usize = 64 << 20;

/// Output size of a 3-tap, stride-2, padding-1 convolution.
pub fn conv_out_size(n: usize) -> usize {
    n.div_ceil(2)
}

/// A 3×3, stride 2, padding 1 convolution followed by exact GELU, on NHWC f32 images.
#[derive(Debug, Clone)]
pub struct PackedConvGelu {
    /// `[cout, 3·3·cin]`, columns ordered (kh, kw, cin) to match NHWC patches.
    weight: Arc<PackedMatrix>,
    bias: Vec<f32>,
    cin: usize,
    cout: usize,
}

impl PackedConvGelu {
    /// From PyTorch weights `[cout, cin, 3, 3]` and bias `[cout]`.
    pub fn new(weight: &Tensor, bias: &Tensor) -> Result<Self> {
        let (cout, cin, kh, kw) = weight.dims4()?;
        if (kh, kw) != (3, 3) {
            return Err(Error::Model(format!(
                "expected a 3x3 convolution, got {kh}x{kw}"
            )));
        }
        // [cout, cin, kh, kw] -> [cout, kh, kw, cin]
        let w = weight
            .permute((0, 2, 3, 1))?
            .contiguous()?
            .reshape((cout, 9 * cin))?;
        Ok(PackedConvGelu {
            weight: Arc::new(PackedMatrix::from_tensor(&w)?),
            bias: bias.to_dtype(candle_core::DType::F32)?.to_vec1()?,
            cin,
            cout,
        })
    }

    pub fn out_channels(&self) -> usize {
        self.cout
    }

    /// `x`: `n` images of `h × w × cin` (NHWC). Returns `n` images of `ho × wo × cout` and
    /// `(ho, wo)`.
    pub fn forward(
        &self,
        x: &[f32],
        n: usize,
        h: usize,
        w: usize,
    ) -> Result<(Vec<f32>, usize, usize)> {
        let cin = self.cin;
        if x.len() != n * h * w * cin {
            return Err(Error::InvalidArgument(format!(
                "conv: input has {} values, expected {n}x{h}x{w}x{cin}",
                x.len()
            )));
        }
        let (ho, wo) = (conv_out_size(h), conv_out_size(w));
        let patch = 9 * cin;
        let per_image = ho * wo * patch * 4;
        let group = (IM2COL_BYTES / per_image.max(1)).clamp(1, n.max(1));
        let mut out = Vec::with_capacity(n * ho * wo * self.cout);
        let mut cols = Vec::new();
        for first in (0..n).step_by(group) {
            let count = group.min(n - first);
            let rows = count * ho * wo;
            cols.clear();
            cols.resize(rows * patch, 0f32);
            cols.par_chunks_mut(patch).enumerate().for_each(|(r, dst)| {
                let img = first + r / (ho * wo);
                let (i, j) = ((r / wo) % ho, r % wo);
                let src = &x[img * h * w * cin..(img + 1) * h * w * cin];
                for di in 0..3 {
                    let y = (2 * i + di) as isize - 1;
                    for dj in 0..3 {
                        let xx = (2 * j + dj) as isize - 1;
                        let d = &mut dst[(di * 3 + dj) * cin..(di * 3 + dj + 1) * cin];
                        if y < 0 || y >= h as isize || xx < 0 || xx >= w as isize {
                            d.fill(0.0);
                        } else {
                            let s = (y as usize * w + xx as usize) * cin;
                            d.copy_from_slice(&src[s..s + cin]);
                        }
                    }
                }
            });
            let mut y = self.weight.matmul(&cols, rows)?;
            y.par_chunks_mut(self.cout).for_each(|row| {
                for (v, b) in row.iter_mut().zip(&self.bias) {
                    *v += b;
                }
            });
            gelu_erf_inplace(&mut y);
            out.extend_from_slice(&y);
        }
        Ok((out, ho, wo))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, IndexOp};

    #[test]
    fn matches_candle_conv2d_and_gelu() {
        if !qwen3_speech_engine::kernels::packed_kernels_available() {
            return;
        }
        let dev = Device::Cpu;
        let (n, cin, cout, h, w) = (2, 3, 5, 7, 10);
        let weight = Tensor::randn(0f32, 1.0, (cout, cin, 3, 3), &dev).unwrap();
        let bias = Tensor::randn(0f32, 1.0, cout, &dev).unwrap();
        let x = Tensor::randn(0f32, 1.0, (n, cin, h, w), &dev).unwrap();
        let expected = x
            .conv2d(&weight, 1, 2, 1, 1)
            .unwrap()
            .broadcast_add(&bias.reshape((1, cout, 1, 1)).unwrap())
            .unwrap()
            .gelu_erf()
            .unwrap();
        let conv = PackedConvGelu::new(&weight, &bias).unwrap();
        let nhwc: Vec<f32> = x
            .permute((0, 2, 3, 1))
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let (y, ho, wo) = conv.forward(&nhwc, n, h, w).unwrap();
        assert_eq!((ho, wo), (4, 5));
        let y = Tensor::from_vec(y, (n, ho, wo, cout), &dev)
            .unwrap()
            .permute((0, 3, 1, 2))
            .unwrap();
        for b in 0..n {
            let d = (y.i(b).unwrap() - expected.i(b).unwrap())
                .unwrap()
                .abs()
                .unwrap();
            let m: f32 = d
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar()
                .unwrap();
            assert!(m < 1e-4, "max diff {m}");
        }
    }
}
