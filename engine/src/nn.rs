//! Basic layers built from [`Weights`]: linear projections, normalisations, embeddings.
//!
//! `Linear` is the one place where a matmul kernel is chosen. Dense weights use candle's matmul;
//! quantized weights (when the weight source provides them) use candle's `QMatMul`. Model code
//! only ever calls `Linear::load` and `forward`.

use candle_core::quantized::QMatMul;
use candle_core::{D, DType, Module, Tensor};

use crate::Result;
use crate::gemv;
use crate::weights::Weights;

/// A linear projection `y = x Wᵀ + b`, with W stored as `[out, in]` (PyTorch layout).
#[derive(Debug, Clone)]
pub struct Linear {
    kernel: LinearKernel,
    bias: Option<Tensor>,
    in_dim: usize,
    out_dim: usize,
}

#[derive(Debug, Clone)]
enum LinearKernel {
    /// `[out, in]`.
    Dense(Tensor),
    Quantized(QMatMul),
}

/// True when candle has no matmul kernel for `dtype` on `device` (bf16 on the CPU).
fn needs_f32_matmul(t: &Tensor) -> bool {
    t.dtype() == DType::BF16 && t.device().is_cpu()
}

/// `a @ b` (batched over leading dimensions). candle's CPU backend has no bf16 matmul, so bf16
/// operands on the CPU are multiplied in f32 and the result is rounded back to bf16.
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if needs_f32_matmul(a) || needs_f32_matmul(b) {
        let dtype = a.dtype();
        let y = a.to_dtype(DType::F32)?.matmul(&b.to_dtype(DType::F32)?)?;
        return Ok(y.to_dtype(dtype)?);
    }
    Ok(a.matmul(b)?)
}

impl Linear {
    /// Loads `weight` `[out, in]` and, when `bias`, `bias` `[out]` from the view `w`.
    pub fn load(w: &Weights, in_dim: usize, out_dim: usize, bias: bool) -> Result<Self> {
        let bias = if bias {
            Some(w.get(out_dim, "bias")?)
        } else {
            None
        };
        if let Some(q) = w.get_quantized("weight")? {
            let dims = q.shape().dims().to_vec();
            if dims != [out_dim, in_dim] {
                return Err(crate::Error::Weights(format!(
                    "tensor '{}' has shape {dims:?}, expected {:?}",
                    w.path("weight"),
                    [out_dim, in_dim]
                )));
            }
            return Ok(Linear {
                kernel: LinearKernel::Quantized(QMatMul::from_arc(q)?),
                bias,
                in_dim,
                out_dim,
            });
        }
        let weight = w.get((out_dim, in_dim), "weight")?;
        Ok(Self::from_tensors(weight, bias))
    }

    /// Wraps an existing weight `[out, in]` (e.g. a tied embedding matrix).
    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>) -> Self {
        let (out_dim, in_dim) = weight.dims2().unwrap_or((0, 0));
        Linear {
            kernel: LinearKernel::Dense(weight),
            bias,
            in_dim,
            out_dim,
        }
    }

    /// The decode fast path: a few f32 rows on the CPU go through [`gemv::gemv_f32`], which
    /// streams the weights once at memory speed. `None` when the case is not covered.
    fn decode_gemv(&self, x: &Tensor, w: &Tensor, rows: usize) -> Result<Option<Tensor>> {
        if rows == 0
            || rows > gemv::MAX_ROWS
            || !w.device().is_cpu()
            || w.dtype() != DType::F32
            || x.dtype() != DType::F32
        {
            return Ok(None);
        }
        let xv: Vec<f32> = x.flatten_all()?.to_vec1()?;
        let (storage, layout) = w.storage_and_layout();
        let candle_core::Storage::Cpu(cpu) = &*storage else {
            return Ok(None);
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            return Ok(None);
        };
        let data = &cpu.as_slice::<f32>()?[start..end];
        let mut y = vec![0f32; rows * self.out_dim];
        gemv::gemv_f32(&xv, rows, data, self.out_dim, self.in_dim, &mut y);
        drop(storage);
        Ok(Some(Tensor::from_vec(y, (rows, self.out_dim), x.device())?))
    }

    pub fn in_dim(&self) -> usize {
        self.in_dim
    }

    pub fn out_dim(&self) -> usize {
        self.out_dim
    }

    /// Applies the projection to `x` of shape `[..., in]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = match &self.kernel {
            LinearKernel::Dense(w) => {
                // Fold leading dimensions into rows: one [rows, in] x [in, out] product.
                let dims = x.dims();
                let rows: usize = dims[..dims.len() - 1].iter().product();
                let x2 = x.reshape((rows, self.in_dim))?;
                let y = match self.decode_gemv(&x2, w, rows)? {
                    Some(y) => y,
                    None => matmul(&x2, &w.t()?)?,
                };
                let mut out_dims = dims.to_vec();
                *out_dims.last_mut().expect("x has a last dimension") = self.out_dim;
                y.reshape(out_dims)?
            }
            LinearKernel::Quantized(q) => {
                let dtype = x.dtype();
                q.forward(&x.to_dtype(DType::F32)?)?.to_dtype(dtype)?
            }
        };
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }
}

/// RMSNorm with the Qwen numerics: normalise in f32, cast back, then scale by the weight.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    pub fn load(w: &Weights, dim: usize, eps: f64) -> Result<Self> {
        Ok(RmsNorm {
            weight: w.get(dim, "weight")?,
            eps,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.dtype() == DType::F32 {
            // The fused kernel computes exactly the f32 reference.
            let x = x.contiguous()?;
            return Ok(candle_nn::ops::rms_norm(&x, &self.weight, self.eps as f32)?);
        }
        let dtype = x.dtype();
        let xf = x.to_dtype(DType::F32)?;
        let var = xf.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = xf.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        Ok(normed
            .to_dtype(dtype)?
            .broadcast_mul(&self.weight.to_dtype(dtype)?)?)
    }
}

/// LayerNorm with weight and bias (PyTorch `nn.LayerNorm`).
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    pub fn load(w: &Weights, dim: usize, eps: f64) -> Result<Self> {
        Ok(LayerNorm {
            weight: w.get(dim, "weight")?,
            bias: w.get(dim, "bias")?,
            eps,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dtype = x.dtype();
        // Normalise in f32 like PyTorch does for half types, then return the input dtype.
        let xf = x.to_dtype(DType::F32)?.contiguous()?;
        let y = candle_nn::ops::layer_norm(
            &xf,
            &self.weight.to_dtype(DType::F32)?,
            &self.bias.to_dtype(DType::F32)?,
            self.eps as f32,
        )?;
        Ok(y.to_dtype(dtype)?)
    }
}

/// A lookup table `[vocab, dim]`.
#[derive(Debug, Clone)]
pub struct Embedding {
    weight: Tensor,
}

impl Embedding {
    pub fn load(w: &Weights, vocab: usize, dim: usize) -> Result<Self> {
        Ok(Embedding {
            weight: w.get((vocab, dim), "weight")?,
        })
    }

    pub fn from_tensor(weight: Tensor) -> Self {
        Embedding { weight }
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    pub fn vocab_size(&self) -> usize {
        self.weight.dim(0).unwrap_or(0)
    }

    /// Looks up `ids` (any shape, integer dtype) and returns `[..ids.shape, dim]`.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let vocab = self.vocab_size();
        let flat = ids.flatten_all()?.to_dtype(DType::U32)?;
        if let Some(&bad) = flat
            .to_vec1::<u32>()?
            .iter()
            .find(|&&i| i as usize >= vocab)
        {
            return Err(crate::Error::InvalidArgument(format!(
                "token id {bad} is outside the embedding table of {vocab} rows"
            )));
        }
        let mut dims = ids.dims().to_vec();
        dims.push(self.weight.dim(1)?);
        Ok(self.weight.index_select(&flat, 0)?.reshape(dims)?)
    }
}

/// Exact (erf-based) GELU, as `nn.GELU()` / `ACT2FN["gelu"]`.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    Ok(x.gelu_erf()?)
}

/// SiLU, as `ACT2FN["silu"]`.
pub fn silu(x: &Tensor) -> Result<Tensor> {
    Ok(candle_nn::ops::silu(x)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::MemorySource;
    use candle_core::Device;
    use std::sync::Arc;

    #[test]
    fn linear_rmsnorm_embedding() -> Result<()> {
        let dev = Device::Cpu;
        let mut s = MemorySource::new();
        s.insert(
            "l.weight",
            Tensor::new(&[[1f32, 2.], [3., 4.], [5., 6.]], &dev)?,
        );
        s.insert("l.bias", Tensor::new(&[0.5f32, 0., -0.5], &dev)?);
        s.insert("n.weight", Tensor::new(&[1f32, 2.], &dev)?);
        s.insert("e.weight", Tensor::new(&[[1f32, 1.], [2., 2.]], &dev)?);
        let w = Weights::new(Arc::new(s), &dev, DType::F32);

        let lin = Linear::load(&w.pp("l"), 2, 3, true)?;
        let y = lin.forward(&Tensor::new(&[[[1f32, 1.]]], &dev)?)?;
        assert_eq!(y.to_vec3::<f32>()?, vec![vec![vec![3.5, 7., 10.5]]]);

        let n = RmsNorm::load(&w.pp("n"), 2, 0.0)?;
        let y = n.forward(&Tensor::new(&[[3f32, 4.]], &dev)?)?;
        let rms = (12.5f32).sqrt();
        let v = y.to_vec2::<f32>()?;
        assert!((v[0][0] - 3. / rms).abs() < 1e-6 && (v[0][1] - 8. / rms).abs() < 1e-6);
        // The bf16 path follows the same math.
        let yb = n.forward(&Tensor::new(&[[3f32, 4.]], &dev)?.to_dtype(DType::BF16)?)?;
        let vb = yb.to_dtype(DType::F32)?.to_vec2::<f32>()?;
        assert!((vb[0][1] - v[0][1]).abs() < 2e-2);

        let e = Embedding::load(&w.pp("e"), 2, 2)?;
        let y = e.forward(&Tensor::new(&[[1u32, 0]], &dev)?)?;
        assert_eq!(y.dims(), &[1, 2, 2]);
        assert!(e.forward(&Tensor::new(&[7u32], &dev)?).is_err());
        Ok(())
    }
}
