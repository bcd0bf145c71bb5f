//! [`Codes`]: the discrete codes of an utterance, `[frame][level]`.

use candle_core::{DType, Device, Tensor};

use qwen3_speech_engine::{Error, Result};

/// Codes of one utterance: `frames` rows of `num_quantizers` code indices (row-major,
/// `[frame][level]`, the layout of the reference's `audio_codes` items, `(T, Q)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Codes {
    num_quantizers: usize,
    data: Vec<u32>,
}

impl Codes {
    /// From row-major values (`data.len()` must be a multiple of `num_quantizers`).
    pub fn new(data: Vec<u32>, num_quantizers: usize) -> Result<Self> {
        if num_quantizers == 0 {
            return Err(Error::InvalidArgument(
                "codes need at least one quantizer level".into(),
            ));
        }
        if !data.len().is_multiple_of(num_quantizers) {
            return Err(Error::InvalidArgument(format!(
                "{} code values are not a whole number of frames of {num_quantizers} levels",
                data.len()
            )));
        }
        Ok(Codes {
            num_quantizers,
            data,
        })
    }

    /// From one row per frame; every row must have the same length.
    pub fn from_frames<R: AsRef<[u32]>>(frames: &[R]) -> Result<Self> {
        let q = frames.first().map_or(0, |f| f.as_ref().len());
        if let Some((i, f)) = frames
            .iter()
            .enumerate()
            .find(|(_, f)| f.as_ref().len() != q)
        {
            return Err(Error::InvalidArgument(format!(
                "code frame {i} has {} levels, frame 0 has {q}",
                f.as_ref().len()
            )));
        }
        Self::new(frames.iter().flat_map(|f| f.as_ref().to_vec()).collect(), q)
    }

    /// From a `(frames, num_quantizers)` integer tensor (negative values are errors).
    pub fn from_tensor(t: &Tensor) -> Result<Self> {
        let (frames, q) = t.dims2().map_err(|_| {
            Error::InvalidArgument(format!(
                "codes must be a (frames, levels) tensor, got shape {:?}",
                t.dims()
            ))
        })?;
        let v: Vec<i64> = t.to_dtype(DType::I64)?.flatten_all()?.to_vec1()?;
        let data = v
            .into_iter()
            .map(|x| {
                u32::try_from(x)
                    .map_err(|_| Error::InvalidArgument(format!("code {x} is not a valid index")))
            })
            .collect::<Result<Vec<_>>>()?;
        let c = Self::new(data, q.max(1))?;
        debug_assert_eq!(c.frames(), frames);
        Ok(c)
    }

    /// A `(frames, num_quantizers)` u32 tensor.
    pub fn to_tensor(&self, device: &Device) -> Result<Tensor> {
        Ok(Tensor::from_slice(
            &self.data,
            (self.frames(), self.num_quantizers),
            device,
        )?)
    }

    pub fn frames(&self) -> usize {
        self.data.len() / self.num_quantizers
    }

    pub fn num_quantizers(&self) -> usize {
        self.num_quantizers
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The codes of frame `i`.
    pub fn frame(&self, i: usize) -> Option<&[u32]> {
        let q = self.num_quantizers;
        self.data.get(i * q..(i + 1) * q)
    }

    /// Iterates over frames.
    pub fn iter_frames(&self) -> impl Iterator<Item = &[u32]> {
        self.data.chunks(self.num_quantizers)
    }

    /// All values, `[frame][level]`.
    pub fn as_slice(&self) -> &[u32] {
        &self.data
    }

    /// Frames `start..end` (clamped to the available frames).
    pub fn slice(&self, start: usize, end: usize) -> Codes {
        let q = self.num_quantizers;
        let end = end.min(self.frames());
        let start = start.min(end);
        Codes {
            num_quantizers: q,
            data: self.data[start * q..end * q].to_vec(),
        }
    }

    /// Level `q` of every frame.
    pub fn level(&self, q: usize) -> Vec<u32> {
        self.iter_frames()
            .filter_map(|f| f.get(q).copied())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_round_trip() {
        let c = Codes::from_frames(&[[1u32, 2, 3], [4, 5, 6]]).unwrap();
        assert_eq!(c.frames(), 2);
        assert_eq!(c.frame(1), Some(&[4u32, 5, 6][..]));
        assert_eq!(c.level(2), vec![3, 6]);
        let t = c.to_tensor(&Device::Cpu).unwrap();
        assert_eq!(t.dims(), &[2, 3]);
        assert_eq!(Codes::from_tensor(&t).unwrap(), c);
        assert_eq!(c.slice(1, 9).as_slice(), &[4, 5, 6]);
        assert!(Codes::new(vec![1, 2, 3], 2).is_err());
        assert!(Codes::from_frames(&[vec![1u32, 2], vec![3]]).is_err());
        let neg = Tensor::new(&[[1i64, -1]], &Device::Cpu).unwrap();
        assert!(Codes::from_tensor(&neg).is_err());
        assert!(Codes::from_tensor(&Tensor::new(&[1u32, 2], &Device::Cpu).unwrap()).is_err());
    }
}
