use candle_core::{Device, Tensor};

use crate::Result;

/// Keys and values of one attention layer, `[batch, kv_heads, len, head_dim]`.
///
/// Storage is preallocated and grows by doubling, and new steps are written in place, so a
/// decode step costs O(new tokens) instead of re-concatenating the whole history.
#[derive(Debug, Clone, Default)]
pub struct LayerKvCache {
    k: Option<Tensor>,
    v: Option<Tensor>,
    len: usize,
}

const MIN_CAPACITY: usize = 64;

impl LayerKvCache {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn capacity(&self) -> usize {
        self.k.as_ref().map_or(0, |k| k.dim(2).unwrap_or(0))
    }

    /// Appends `k`, `v` (`[b, h, new, d]`) and returns views of the whole history.
    pub fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let new = k.dim(2)?;
        let needed = self.len + new;
        if needed > self.capacity() {
            let cap = needed.max(2 * self.capacity()).max(MIN_CAPACITY);
            self.k = Some(grow(self.k.as_ref(), k, cap, self.len)?);
            self.v = Some(grow(self.v.as_ref(), v, cap, self.len)?);
        }
        let (kc, vc) = match (&self.k, &self.v) {
            (Some(kc), Some(vc)) => (kc, vc),
            _ => unreachable!("storage allocated above"),
        };
        kc.slice_set(&k.contiguous()?, 2, self.len)?;
        vc.slice_set(&v.contiguous()?, 2, self.len)?;
        self.len = needed;
        Ok((kc.narrow(2, 0, self.len)?, vc.narrow(2, 0, self.len)?))
    }

    /// Appends `l` positions per row from host f32 data (`[b, h, l, d]` each) and calls `f` with
    /// the whole history as host slices laid out `[b, h, capacity, d]`, plus the capacity and
    /// the new length. Only for CPU f32 caches (the CPU decode step).
    pub fn append_and_read_f32<R>(
        &mut self,
        k: Vec<f32>,
        v: Vec<f32>,
        (b, h, l, d): (usize, usize, usize, usize),
        f: impl FnOnce(&[f32], &[f32], usize, usize) -> R,
    ) -> Result<R> {
        let device = candle_core::Device::Cpu;
        let k = Tensor::from_vec(k, (b, h, l, d), &device)?;
        let v = Tensor::from_vec(v, (b, h, l, d), &device)?;
        self.append(&k, &v)?;
        let (kc, vc) = match (&self.k, &self.v) {
            (Some(kc), Some(vc)) => (kc, vc),
            _ => unreachable!("appended above"),
        };
        let cap = kc.dim(2)?;
        let (ks, kl) = kc.storage_and_layout();
        let (vs, vl) = vc.storage_and_layout();
        let (candle_core::Storage::Cpu(kcpu), candle_core::Storage::Cpu(vcpu)) = (&*ks, &*vs)
        else {
            return Err(crate::Error::InvalidArgument(
                "KV cache is not on the CPU".into(),
            ));
        };
        let kd = &kcpu.as_slice::<f32>()?[kl.start_offset()..];
        let vd = &vcpu.as_slice::<f32>()?[vl.start_offset()..];
        Ok(f(kd, vd, cap, self.len))
    }

    /// Forgets everything after the first `len` positions (rolling back a speculative prefix).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    pub fn reset(&mut self) {
        self.len = 0;
    }
}

fn grow(old: Option<&Tensor>, like: &Tensor, cap: usize, keep: usize) -> Result<Tensor> {
    let (b, h, _, d) = like.dims4()?;
    let fresh = Tensor::zeros((b, h, cap, d), like.dtype(), like.device())?;
    if let Some(old) = old
        && keep > 0
    {
        fresh.slice_set(&old.narrow(2, 0, keep)?.contiguous()?, 2, 0)?;
    }
    Ok(fresh)
}

/// The caches of every layer of a decoder, plus the number of positions they hold.
#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<LayerKvCache>,
}

impl KvCache {
    pub fn new(num_layers: usize) -> Self {
        KvCache {
            layers: vec![LayerKvCache::default(); num_layers],
        }
    }

    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.layers.first().map_or(0, |l| l.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn layer_mut(&mut self, i: usize) -> &mut LayerKvCache {
        &mut self.layers[i]
    }

    pub fn truncate(&mut self, len: usize) {
        self.layers.iter_mut().for_each(|l| l.truncate(len));
    }

    pub fn reset(&mut self) {
        self.layers.iter_mut().for_each(|l| l.reset());
    }

    /// Reorders/selects batch rows (e.g. dropping finished rows of a batch).
    pub fn select_rows(&mut self, rows: &[u32], device: &Device) -> Result<()> {
        let idx = Tensor::new(rows, device)?;
        for l in &mut self.layers {
            if let (Some(k), Some(v)) = (&l.k, &l.v) {
                l.k = Some(k.index_select(&idx, 0)?.contiguous()?);
                l.v = Some(v.index_select(&idx, 0)?.contiguous()?);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

    #[test]
    fn grows_and_keeps_history() -> Result<()> {
        let dev = Device::Cpu;
        let mut c = LayerKvCache::default();
        let mut all = Vec::new();
        for step in 0..100u32 {
            let n = if step == 0 { 70 } else { 1 };
            let k = Tensor::full(step as f32, (1, 2, n, 4), &dev)?;
            let (ka, va) = c.append(&k, &k)?;
            all.extend(std::iter::repeat_n(step as f32, n));
            assert_eq!(ka.dims(), &[1, 2, all.len(), 4]);
            let col: Vec<f32> = ka
                .narrow(1, 1, 1)?
                .narrow(3, 2, 1)?
                .flatten_all()?
                .to_vec1()?;
            assert_eq!(col, all);
            assert_eq!(va.dtype(), DType::F32);
        }
        c.truncate(10);
        assert_eq!(c.len(), 10);
        let (ka, _) = c.append(
            &Tensor::full(-1f32, (1, 2, 1, 4), &dev)?,
            &Tensor::zeros((1, 2, 1, 4), DType::F32, &dev)?,
        )?;
        assert_eq!(ka.dim(2)?, 11);
        Ok(())
    }
}
