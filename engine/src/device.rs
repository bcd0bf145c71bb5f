//! Device and compute dtype selection.
//!
//! Users name a device (`cpu`, `cuda`, `cuda:1`, `auto`) and optionally a dtype (`f32`, `bf16`,
//! `f16`). The defaults follow what is fast on each backend: candle's CPU matmuls have no bf16
//! kernel (both operands are widened on every call), so CPU computes in f32; CUDA computes in
//! bf16, the dtype the released checkpoints are stored in.

use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Device};

use crate::{Error, Result};

/// Where the model runs, as a user names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// CUDA device 0 when the `cuda` feature is built and a GPU is present, else CPU.
    #[default]
    Auto,
    Cpu,
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "auto" => Ok(DeviceSpec::Auto),
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" | "gpu" => Ok(DeviceSpec::Cuda(0)),
            _ => match s.strip_prefix("cuda:") {
                Some(ordinal) => ordinal.parse().map(DeviceSpec::Cuda).map_err(|_| {
                    Error::InvalidArgument(format!(
                        "invalid CUDA device '{s}': expected cuda:<index>, e.g. cuda:0"
                    ))
                }),
                None => Err(Error::InvalidArgument(format!(
                    "unknown device '{s}': expected cpu, cuda, cuda:<index> or auto"
                ))),
            },
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Auto => f.write_str("auto"),
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

/// True when this build has the CUDA backend compiled in.
pub const fn cuda_compiled() -> bool {
    cfg!(feature = "cuda")
}

impl DeviceSpec {
    /// Opens the device. Asking for CUDA in a CPU-only build, or on a machine without a usable
    /// GPU, is an error that says which of the two it is.
    pub fn open(self) -> Result<Device> {
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Auto => {
                if cuda_compiled()
                    && let Ok(device) = Device::new_cuda(0)
                {
                    return Ok(device);
                }
                Ok(Device::Cpu)
            }
            DeviceSpec::Cuda(ordinal) => {
                if !cuda_compiled() {
                    return Err(Error::InvalidArgument(
                        "this build of qwen3-speech has no CUDA support: rebuild with \
                         `--features cuda`, or use --device cpu"
                            .into(),
                    ));
                }
                Device::new_cuda(ordinal).map_err(|e| {
                    Error::InvalidArgument(format!("cannot open CUDA device {ordinal}: {e}"))
                })
            }
        }
    }
}

/// The floating-point type the model computes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComputeDType {
    F32,
    BF16,
    F16,
}

impl ComputeDType {
    /// The default for a device: f32 on CPU, bf16 on accelerators.
    pub fn default_for(device: &Device) -> Self {
        if device.is_cpu() {
            ComputeDType::F32
        } else {
            ComputeDType::BF16
        }
    }

    pub fn dtype(self) -> DType {
        match self {
            ComputeDType::F32 => DType::F32,
            ComputeDType::BF16 => DType::BF16,
            ComputeDType::F16 => DType::F16,
        }
    }
}

impl FromStr for ComputeDType {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "f32" | "float32" | "fp32" => Ok(ComputeDType::F32),
            "bf16" | "bfloat16" => Ok(ComputeDType::BF16),
            "f16" | "float16" | "fp16" | "half" => Ok(ComputeDType::F16),
            other => Err(Error::InvalidArgument(format!(
                "unknown dtype '{other}': expected f32, bf16 or f16"
            ))),
        }
    }
}

impl fmt::Display for ComputeDType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ComputeDType::F32 => "f32",
            ComputeDType::BF16 => "bf16",
            ComputeDType::F16 => "f16",
        })
    }
}

/// A resolved device together with the dtype to compute in.
#[derive(Debug, Clone)]
pub struct Placement {
    pub device: Device,
    pub dtype: DType,
}

impl Placement {
    /// Opens `device` and picks `dtype`, or the device's default dtype when `None`.
    pub fn new(device: DeviceSpec, dtype: Option<ComputeDType>) -> Result<Self> {
        let device = device.open()?;
        let dtype = dtype
            .unwrap_or_else(|| ComputeDType::default_for(&device))
            .dtype();
        Ok(Placement { device, dtype })
    }

    /// CPU, f32: what golden tests use.
    pub fn cpu_f32() -> Self {
        Placement {
            device: Device::Cpu,
            dtype: DType::F32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices() {
        assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("CUDA".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        assert_eq!("cuda:3".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(3));
        assert_eq!("auto".parse::<DeviceSpec>().unwrap(), DeviceSpec::Auto);
        assert!("tpu".parse::<DeviceSpec>().is_err());
        assert!("cuda:x".parse::<DeviceSpec>().is_err());
        assert_eq!(DeviceSpec::Cuda(2).to_string(), "cuda:2");
    }

    #[test]
    fn parses_dtypes_and_defaults() {
        assert_eq!("bf16".parse::<ComputeDType>().unwrap(), ComputeDType::BF16);
        assert_eq!("F32".parse::<ComputeDType>().unwrap(), ComputeDType::F32);
        assert!("int8".parse::<ComputeDType>().is_err());
        assert_eq!(ComputeDType::default_for(&Device::Cpu), ComputeDType::F32);
        let p = Placement::new(DeviceSpec::Cpu, None).unwrap();
        assert_eq!(p.dtype, DType::F32);
    }

    #[test]
    fn cuda_without_feature_is_a_clear_error() {
        if !cuda_compiled() {
            let err = DeviceSpec::Cuda(0).open().unwrap_err().to_string();
            assert!(err.contains("--features cuda"), "{err}");
            // Auto falls back to the CPU.
            assert!(DeviceSpec::Auto.open().unwrap().is_cpu());
        }
    }
}
