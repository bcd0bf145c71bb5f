use candle_core::{DType, Device, Tensor};

use crate::{Error, Result};

/// Builds the additive attention mask `[batch, 1, q_len, kv_len]` for queries at the last
/// `q_len` of `kv_len` positions: causal, plus key padding when `key_valid` is given
/// (`key_valid[b][t]` is false for pad tokens of row `b`, over all `kv_len` positions).
///
/// Masked entries hold the dtype's most negative finite value (as transformers does), so a fully
/// masked row (a pad query) softmaxes to a uniform row instead of NaN. Returns `None` when
/// nothing needs masking (one query, no padding).
pub fn attention_mask(
    batch: usize,
    q_len: usize,
    kv_len: usize,
    key_valid: Option<&[Vec<bool>]>,
    dtype: DType,
    device: &Device,
) -> Result<Option<Tensor>> {
    if q_len > kv_len {
        return Err(Error::InvalidArgument(format!(
            "attention mask: {q_len} queries but only {kv_len} keys"
        )));
    }
    if let Some(kv) = key_valid
        && (kv.len() != batch || kv.iter().any(|r| r.len() != kv_len))
    {
        return Err(Error::InvalidArgument(
            "attention mask: key padding rows do not match the batch".into(),
        ));
    }
    let has_padding = key_valid.is_some_and(|kv| kv.iter().any(|r| r.iter().any(|&v| !v)));
    if q_len == 1 && !has_padding {
        return Ok(None);
    }
    let neg = match dtype {
        DType::F16 => -65504.0f32,
        DType::BF16 => -3.389_531_4e38,
        _ => f32::MIN,
    };
    let offset = kv_len - q_len;
    let rows = if has_padding { batch } else { 1 };
    let mut data = vec![0f32; rows * q_len * kv_len];
    for b in 0..rows {
        for i in 0..q_len {
            let row = &mut data[(b * q_len + i) * kv_len..(b * q_len + i + 1) * kv_len];
            for (j, m) in row.iter_mut().enumerate() {
                let future = j > offset + i;
                let pad = has_padding && !key_valid.unwrap()[b][j];
                if future || pad {
                    *m = neg;
                }
            }
        }
    }
    let mask = Tensor::from_vec(data, (rows, 1, q_len, kv_len), device)?.to_dtype(dtype)?;
    Ok(Some(if rows == batch {
        mask
    } else {
        mask.broadcast_as((batch, 1, q_len, kv_len))?
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causal_with_offset_and_padding() -> Result<()> {
        let dev = Device::Cpu;
        assert!(attention_mask(2, 1, 5, None, DType::F32, &dev)?.is_none());
        let m = attention_mask(1, 2, 4, None, DType::F32, &dev)?.unwrap();
        let v: Vec<f32> = m.flatten_all()?.to_vec1()?;
        let masked: Vec<bool> = v.iter().map(|&x| x < -1e30).collect();
        assert_eq!(
            masked,
            [false, false, false, true, false, false, false, false]
        );
        let valid = vec![vec![false, true, true], vec![true, true, true]];
        let m = attention_mask(2, 1, 3, Some(&valid), DType::F32, &dev)?.unwrap();
        let v: Vec<f32> = m.flatten_all()?.to_vec1()?;
        assert!(v[0] < -1e30 && v[1] == 0.0 && v[3] == 0.0);
        assert!(attention_mask(1, 3, 2, None, DType::F32, &dev).is_err());
        Ok(())
    }
}
