use candle_core::{DType, Device, Tensor};

use crate::{Error, Result};

/// Per-row token positions of a batch: `rows[b][t]` is the RoPE position of token `t` of row `b`.
///
/// Left-padded rows carry their own positions (the reference uses `cumsum(mask) - 1`, so real
/// tokens are numbered from 0 whatever the padding); pad positions are arbitrary because pads
/// are masked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Positions {
    batch: usize,
    len: usize,
    flat: Vec<u32>,
}

impl Positions {
    /// `batch` rows numbered `start, start+1, ..., start+len-1`.
    pub fn contiguous(batch: usize, start: usize, len: usize) -> Self {
        let row: Vec<u32> = (start..start + len).map(|p| p as u32).collect();
        Positions {
            batch,
            len,
            flat: row.repeat(batch),
        }
    }

    /// Explicit positions per row; all rows must have the same length.
    pub fn from_rows(rows: &[Vec<u32>]) -> Result<Self> {
        let len = rows.first().map_or(0, |r| r.len());
        if rows.iter().any(|r| r.len() != len) {
            return Err(Error::InvalidArgument(
                "position rows of a batch must have equal length".into(),
            ));
        }
        Ok(Positions {
            batch: rows.len(),
            len,
            flat: rows.concat(),
        })
    }

    pub fn batch(&self) -> usize {
        self.batch
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn as_flat(&self) -> &[u32] {
        &self.flat
    }
}

/// Rotate-half (NeoX style) rotary embedding. Angles are computed in f32 exactly as the reference
/// (`inv_freq = 1 / θ^(2i/d)`, `angle = pos · inv_freq`), then cos/sin are cast to the
/// activation dtype.
#[derive(Debug, Clone)]
pub struct RotaryEmbedding {
    inv_freq: Vec<f32>,
}

/// cos and sin tables for one forward pass, shaped for `candle_nn::rotary_emb::rope`.
pub struct RopeTables {
    pub cos: Tensor,
    pub sin: Tensor,
}

impl RotaryEmbedding {
    pub fn new(head_dim: usize, theta: f64) -> Self {
        let base = theta as f32;
        let inv_freq = (0..head_dim / 2)
            .map(|i| 1.0 / base.powf((2 * i) as f32 / head_dim as f32))
            .collect();
        RotaryEmbedding { inv_freq }
    }

    pub fn inv_freq(&self) -> &[f32] {
        &self.inv_freq
    }

    /// Builds cos/sin of shape `[batch, len, head_dim/2]` (or `[len, head_dim/2]` for one row).
    pub fn tables(
        &self,
        positions: &Positions,
        dtype: DType,
        device: &Device,
    ) -> Result<RopeTables> {
        let half = self.inv_freq.len();
        let n = positions.as_flat().len();
        let mut cos = Vec::with_capacity(n * half);
        let mut sin = Vec::with_capacity(n * half);
        for &p in positions.as_flat() {
            let p = p as f32;
            for &f in &self.inv_freq {
                let a = p * f;
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
        let shape: Vec<usize> = if positions.batch() == 1 {
            vec![positions.len(), half]
        } else {
            vec![positions.batch(), positions.len(), half]
        };
        let cos = Tensor::from_vec(cos, shape.as_slice(), device)?.to_dtype(dtype)?;
        let sin = Tensor::from_vec(sin, shape.as_slice(), device)?.to_dtype(dtype)?;
        Ok(RopeTables { cos, sin })
    }

    /// Rotates `x` of shape `[batch, heads, len, head_dim]`.
    pub fn apply(x: &Tensor, tables: &RopeTables) -> Result<Tensor> {
        Ok(candle_nn::rotary_emb::rope(
            &x.contiguous()?,
            &tables.cos,
            &tables.sin,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rope_matches_rotate_half_definition() -> Result<()> {
        let dev = Device::Cpu;
        let rope = RotaryEmbedding::new(8, 10_000.0);
        let pos = Positions::from_rows(&[vec![0, 1, 2], vec![5, 6, 7]])?;
        let t = rope.tables(&pos, DType::F32, &dev)?;
        let x = Tensor::arange(0f32, 2. * 3. * 8., &dev)?.reshape((2, 1, 3, 8))?;
        let y = RotaryEmbedding::apply(&x, &t)?;
        // Check one element by hand: row 1, token 2 (position 7), dim 1.
        let xs = x.flatten_all()?.to_vec1::<f32>()?;
        let ys = y.flatten_all()?.to_vec1::<f32>()?;
        let base = (3 + 2) * 8;
        let a = 7f32 * rope.inv_freq()[1];
        let expect = xs[base + 1] * a.cos() - xs[base + 5] * a.sin();
        assert!((ys[base + 1] - expect).abs() < 1e-4);
        let expect_hi = xs[base + 5] * a.cos() + xs[base + 1] * a.sin();
        assert!((ys[base + 5] - expect_hi).abs() < 1e-4);
        Ok(())
    }
}
