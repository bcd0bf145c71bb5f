//! Basic layers built from [`Weights`]: linear projections, normalisations, embeddings.
//!
//! `Linear` and `Embedding` are the places where a kernel is chosen; model code only calls
//! `load` and `forward`:
//! * on CPUs with AVX-512, weights are packed once into [`PackedMatrix`] panels (kept in bf16
//!   when the checkpoint is bf16: lossless, half the memory and memory traffic) and multiplied
//!   with the engine's own GEMM/GEMV kernels;
//! * elsewhere (CUDA, other CPUs) weights are tensors in the compute dtype and use candle;
//! * quantized weights, when a weight source provides them, use candle's `QMatMul`.

use std::sync::Arc;

use candle_core::quantized::QMatMul;
use candle_core::{D, DType, Device, Module, Tensor};

use crate::kernels::{self, PackedMatrix};
use crate::weights::Weights;
use crate::{Error, Result};

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
    /// `[out, in]` in the compute dtype.
    Dense(Tensor),
    /// Panels for the engine's CPU kernels.
    Packed(Arc<PackedMatrix>),
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

/// Whether weights for `device` go to the packed CPU kernels ([`PackedMatrix`]).
pub fn use_packed(device: &Device) -> bool {
    device.is_cpu() && kernels::packed_kernels_available()
}

/// Loads `name` of shape `[n, k]` for the packed kernels: bf16 checkpoints stay bf16, anything
/// else becomes f32.
fn load_packable(w: &Weights, n: usize, k: usize, name: &str) -> Result<Tensor> {
    let dtype = match w.stored_dtype(name) {
        Some(DType::BF16) => DType::BF16,
        _ => DType::F32,
    };
    w.get_as((n, k), name, dtype)
}

/// `x` as a row-major f32 buffer with its leading dimensions folded: `([rows * k], rows)`.
fn rows_f32(x: &Tensor, k: usize) -> Result<(Vec<f32>, usize)> {
    let rows = x.elem_count() / k.max(1);
    let v = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    Ok((v, rows))
}

impl Linear {
    /// Loads `weight` `[out, in]` and, when `bias`, `bias` `[out]` from the view `w`.
    pub fn load(w: &Weights, in_dim: usize, out_dim: usize, bias: bool) -> Result<Self> {
        Self::load_fused(std::slice::from_ref(w), in_dim, &[out_dim], bias)
    }

    /// Loads several projections of the same input as one (e.g. q, k and v): their outputs are
    /// concatenated in order, so one pass over the input serves all of them.
    pub fn load_fused(
        parts: &[Weights],
        in_dim: usize,
        out_dims: &[usize],
        bias: bool,
    ) -> Result<Self> {
        if parts.len() != out_dims.len() || parts.is_empty() {
            return Err(Error::InvalidArgument(
                "fused linear: one output size per part".into(),
            ));
        }
        let out_dim: usize = out_dims.iter().sum();
        let bias = if bias {
            let b = parts
                .iter()
                .zip(out_dims)
                .map(|(w, &o)| w.get(o, "bias"))
                .collect::<Result<Vec<_>>>()?;
            Some(Tensor::cat(&b, 0)?)
        } else {
            None
        };
        if parts.len() == 1
            && let Some(q) = parts[0].get_quantized("weight")?
        {
            let dims = q.shape().dims().to_vec();
            if dims != [out_dim, in_dim] {
                return Err(Error::Weights(format!(
                    "tensor '{}' has shape {dims:?}, expected {:?}",
                    parts[0].path("weight"),
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
        let device = parts[0].device();
        let weights = parts
            .iter()
            .zip(out_dims)
            .map(|(w, &o)| {
                if use_packed(device) {
                    load_packable(w, o, in_dim, "weight")
                } else {
                    w.get((o, in_dim), "weight")
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let weight = if weights.len() == 1 {
            weights.into_iter().next().expect("one part")
        } else {
            Tensor::cat(&weights, 0)?
        };
        Self::from_tensors(weight, bias)
    }

    /// Wraps a weight `[out, in]`; on a CPU with AVX-512 it is packed for the engine's kernels.
    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>) -> Result<Self> {
        let (out_dim, in_dim) = weight.dims2()?;
        let kernel = if use_packed(weight.device()) {
            LinearKernel::Packed(Arc::new(PackedMatrix::from_tensor(&weight)?))
        } else {
            LinearKernel::Dense(weight)
        };
        Ok(Linear {
            kernel,
            bias,
            in_dim,
            out_dim,
        })
    }

    /// Shares an already packed matrix (e.g. a tied embedding used as the output head).
    pub fn from_packed(weight: Arc<PackedMatrix>, bias: Option<Tensor>) -> Self {
        Linear {
            in_dim: weight.k(),
            out_dim: weight.n(),
            kernel: LinearKernel::Packed(weight),
            bias,
        }
    }

    pub fn in_dim(&self) -> usize {
        self.in_dim
    }

    pub fn out_dim(&self) -> usize {
        self.out_dim
    }

    /// `rows` f32 input rows to output rows on the host, when the weights are packed for the
    /// CPU kernels (`None` otherwise). Used by the CPU decode step to avoid tensor round trips.
    pub fn forward_f32(&self, x: &[f32], rows: usize) -> Result<Option<Vec<f32>>> {
        let LinearKernel::Packed(p) = &self.kernel else {
            return Ok(None);
        };
        let mut y = p.matmul(x, rows)?;
        if let Some(b) = &self.bias {
            let b: Vec<f32> = b.to_dtype(DType::F32)?.to_vec1()?;
            for row in y.chunks_mut(self.out_dim) {
                row.iter_mut().zip(&b).for_each(|(v, b)| *v += b);
            }
        }
        Ok(Some(y))
    }

    /// True when the weights use the packed CPU kernels.
    pub fn is_packed(&self) -> bool {
        matches!(self.kernel, LinearKernel::Packed(_))
    }

    /// Bytes of weight data read by one product (for bandwidth accounting).
    pub fn weight_bytes(&self) -> usize {
        match &self.kernel {
            LinearKernel::Packed(p) => p.bytes(),
            LinearKernel::Dense(w) => w.elem_count() * w.dtype().size_in_bytes(),
            LinearKernel::Quantized(q) => match q {
                QMatMul::QTensor(t) => t.storage_size_in_bytes(),
                QMatMul::Tensor(t) | QMatMul::TensorF16(t) => {
                    t.elem_count() * t.dtype().size_in_bytes()
                }
            },
        }
    }

    /// Applies the projection to `x` of shape `[..., in]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims();
        let mut out_dims = dims.to_vec();
        *out_dims
            .last_mut()
            .ok_or_else(|| Error::InvalidArgument("linear: scalar input".into()))? = self.out_dim;
        let y = match &self.kernel {
            LinearKernel::Packed(p) => {
                let (xv, rows) = rows_f32(x, self.in_dim)?;
                let y = p.matmul(&xv, rows)?;
                Tensor::from_vec(y, out_dims, x.device())?.to_dtype(x.dtype())?
            }
            LinearKernel::Dense(w) => {
                // Fold leading dimensions into rows: one [rows, in] x [in, out] product.
                let rows: usize = dims[..dims.len() - 1].iter().product();
                let x2 = x.reshape((rows, self.in_dim))?;
                matmul(&x2, &w.t()?)?.reshape(out_dims)?
            }
            LinearKernel::Quantized(q) => {
                let dtype = x.dtype();
                q.forward(&x.to_dtype(DType::F32)?)?.to_dtype(dtype)?
            }
        };
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(&b.to_dtype(y.dtype())?)?,
            None => y,
        })
    }
}

/// RMSNorm with the Qwen numerics: normalise in f32, cast back, then scale by the weight.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    /// The weight in f32 on the host, for the CPU decode step.
    weight_f32: Vec<f32>,
    eps: f64,
}

impl RmsNorm {
    pub fn load(w: &Weights, dim: usize, eps: f64) -> Result<Self> {
        let weight = w.get(dim, "weight")?;
        let weight_f32 = weight.to_dtype(DType::F32)?.to_vec1()?;
        Ok(RmsNorm {
            weight,
            weight_f32,
            eps,
        })
    }

    /// Normalises each row of `x` (`rows × dim`, f32) in place, as [`RmsNorm::forward`].
    pub fn forward_rows_f32(&self, x: &mut [f32]) {
        let dim = self.weight_f32.len();
        for row in x.chunks_mut(dim) {
            let ms = kernels::elementwise::dot(row, row) / dim as f32;
            let inv = 1.0 / (ms + self.eps as f32).sqrt();
            for (v, w) in row.iter_mut().zip(&self.weight_f32) {
                *v = *v * inv * w;
            }
        }
    }

    /// Normalises each row of `x` (`rows × dim`, f32) in place with exactly the arithmetic of
    /// [`RmsNorm::forward`] on an f32 tensor (candle's fused kernel: sequential sum of squares,
    /// `x / rms * w`), so host code paths give bit-identical results to the tensor path.
    pub fn forward_rows_f32_exact(&self, x: &mut [f32]) {
        let dim = self.weight_f32.len();
        let eps = self.eps as f32;
        for row in x.chunks_mut(dim) {
            let sum2 = row.iter().map(|&v| v * v).sum::<f32>();
            let m = (sum2 / dim as f32 + eps).sqrt();
            for (v, w) in row.iter_mut().zip(&self.weight_f32) {
                *v = *v / m * w;
            }
        }
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
    table: EmbeddingTable,
    vocab: usize,
    dim: usize,
    /// Dtype of the looked-up vectors (the compute dtype).
    dtype: DType,
    device: Device,
}

#[derive(Debug, Clone)]
enum EmbeddingTable {
    Tensor(Tensor),
    /// The packed layout of the CPU kernels; rows are gathered from it, and the same storage
    /// can serve as a tied output head.
    Packed(Arc<PackedMatrix>),
}

impl Embedding {
    pub fn load(w: &Weights, vocab: usize, dim: usize) -> Result<Self> {
        let table = if use_packed(w.device()) {
            EmbeddingTable::Packed(Arc::new(PackedMatrix::from_tensor(&load_packable(
                w, vocab, dim, "weight",
            )?)?))
        } else {
            EmbeddingTable::Tensor(w.get((vocab, dim), "weight")?)
        };
        Ok(Embedding {
            table,
            vocab,
            dim,
            dtype: w.dtype(),
            device: w.device().clone(),
        })
    }

    /// A table from a `[vocab, dim]` tensor, looked up in the tensor's dtype.
    pub fn from_tensor(weight: Tensor) -> Result<Self> {
        let (vocab, dim) = weight.dims2()?;
        Ok(Embedding {
            dtype: weight.dtype(),
            device: weight.device().clone(),
            table: EmbeddingTable::Tensor(weight),
            vocab,
            dim,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The table as an output head `[vocab, dim]` (tied embeddings), sharing its storage.
    pub fn as_linear(&self) -> Result<Linear> {
        match &self.table {
            EmbeddingTable::Packed(p) => Ok(Linear::from_packed(p.clone(), None)),
            EmbeddingTable::Tensor(t) => Linear::from_tensors(t.clone(), None),
        }
    }

    /// Rows `ids` as host f32 values (`ids.len() × dim`), the same values [`Embedding::forward`]
    /// returns in an f32 model, without tensors.
    pub fn rows_f32(&self, ids: &[u32]) -> Result<Vec<f32>> {
        if let Some(&bad) = ids.iter().find(|&&i| i as usize >= self.vocab) {
            return Err(Error::InvalidArgument(format!(
                "token id {bad} is outside the embedding table of {} rows",
                self.vocab
            )));
        }
        match &self.table {
            EmbeddingTable::Packed(p) if self.dtype == DType::F32 => {
                let mut out = vec![0f32; ids.len() * self.dim];
                for (o, &id) in out.chunks_mut(self.dim).zip(ids) {
                    p.row(id as usize, o)?;
                }
                Ok(out)
            }
            _ => {
                let idx = Tensor::new(ids, &self.device)?;
                Ok(self
                    .forward(&idx)?
                    .to_dtype(DType::F32)?
                    .flatten_all()?
                    .to_vec1()?)
            }
        }
    }

    /// Looks up `ids` (any shape, integer dtype) and returns `[..ids.shape, dim]`.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let flat: Vec<u32> = ids.flatten_all()?.to_dtype(DType::U32)?.to_vec1()?;
        if let Some(&bad) = flat.iter().find(|&&i| i as usize >= self.vocab) {
            return Err(Error::InvalidArgument(format!(
                "token id {bad} is outside the embedding table of {} rows",
                self.vocab
            )));
        }
        let mut dims = ids.dims().to_vec();
        dims.push(self.dim);
        match &self.table {
            EmbeddingTable::Tensor(w) => {
                let idx = Tensor::new(flat.as_slice(), w.device())?;
                Ok(w.index_select(&idx, 0)?.reshape(dims)?)
            }
            EmbeddingTable::Packed(p) => {
                let mut out = vec![0f32; flat.len() * self.dim];
                for (i, &id) in flat.iter().enumerate() {
                    p.row(id as usize, &mut out[i * self.dim..(i + 1) * self.dim])?;
                }
                Ok(Tensor::from_vec(out, dims, &self.device)?.to_dtype(self.dtype)?)
            }
        }
    }
}

/// Exact (erf-based) GELU, as `nn.GELU()` / `ACT2FN["gelu"]`. On the CPU in f32 it runs on
/// all threads (candle's is single-threaded, and the audio encoder's conv stem applies it to
/// millions of values).
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        let mut v = x.flatten_all()?.to_vec1::<f32>()?;
        kernels::elementwise::gelu_erf_inplace(&mut v);
        return Ok(Tensor::from_vec(v, x.dims(), x.device())?);
    }
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
