//! Weight loading.
//!
//! A [`WeightSource`] is where tensors come from: memory-mapped safetensors files today (one file,
//! or the shards of a `model.safetensors.index.json`), a quantized GGUF-style file tomorrow. Model
//! code never talks to a source directly: it asks a [`Weights`] view for a tensor by name and
//! expected shape, and gets it on the right device in the compute dtype, or an error that names
//! the tensor, the files and both shapes. A quantized source plugs in by answering
//! [`WeightSource::load_quantized`]; [`crate::nn::Linear`] picks that up without any change to
//! model code.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use candle_core::quantized::QTensor;
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Shape, Tensor};

use crate::{Error, Result};

/// Shape and stored dtype of one tensor in a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub shape: Vec<usize>,
    pub dtype: DType,
}

/// A store of named tensors.
pub trait WeightSource: Send + Sync {
    /// Shape and stored dtype of `name`, or `None` when the source lacks it.
    fn info(&self, name: &str) -> Option<TensorInfo>;

    /// Loads `name` in its stored dtype onto `device`.
    fn load(&self, name: &str, device: &Device) -> Result<Tensor>;

    /// A quantized form of `name`, when the source stores one. Dense sources return `None`.
    fn load_quantized(&self, _name: &str, _device: &Device) -> Result<Option<Arc<QTensor>>> {
        Ok(None)
    }

    /// All tensor names, sorted.
    fn names(&self) -> Vec<String>;

    /// What the source is, for error messages (e.g. the file names).
    fn describe(&self) -> String;
}

/// Memory-mapped safetensors files (a single file or the shards of a sharded checkpoint).
pub struct SafetensorsSource {
    tensors: MmapedSafetensors,
    files: Vec<PathBuf>,
    /// Bytes of all tensors in the files, and of those loaded so far: load progress
    /// ([`crate::progress`]).
    total_bytes: u64,
    loaded_bytes: AtomicU64,
    /// Last reported progress, in permille (reports are sent when it moves).
    reported: AtomicU32,
}

impl SafetensorsSource {
    /// Maps the given files. A tensor name present in several files resolves to the last one.
    pub fn open(files: &[PathBuf]) -> Result<Self> {
        if files.is_empty() {
            return Err(Error::Model("no safetensors weight files given".into()));
        }
        for f in files {
            if !f.is_file() {
                return Err(Error::Model(format!(
                    "weight file {} does not exist",
                    f.display()
                )));
            }
        }
        // SAFETY: the files are memory-mapped read-only; like every mmap-based loader we rely
        // on nobody truncating them while the model is alive.
        let tensors = unsafe { MmapedSafetensors::multi(files) }.map_err(|e| {
            Error::Model(format!(
                "cannot read safetensors {}: {e}",
                display_files(files)
            ))
        })?;
        let total_bytes = tensors
            .tensors()
            .iter()
            .map(|(_, view)| view.data().len() as u64)
            .sum();
        crate::progress::report(
            crate::progress::LoadStage::Weights,
            0.0,
            files[0].display().to_string(),
        );
        Ok(SafetensorsSource {
            tensors,
            files: files.to_vec(),
            total_bytes,
            loaded_bytes: AtomicU64::new(0),
            reported: AtomicU32::new(0),
        })
    }

    /// Counts `bytes` as read and reports the progress when it moved by at least 1%.
    fn count_loaded(&self, bytes: u64) {
        let loaded = self.loaded_bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if self.total_bytes == 0 || !crate::progress::is_active() {
            return;
        }
        let permille = (loaded.min(self.total_bytes) * 1000 / self.total_bytes) as u32;
        let last = self.reported.load(Ordering::Relaxed);
        if permille >= last + 10 || (permille == 1000 && last < 1000) {
            self.reported.store(permille, Ordering::Relaxed);
            crate::progress::report(
                crate::progress::LoadStage::Weights,
                permille as f32 / 1000.0,
                self.files[0].display().to_string(),
            );
        }
    }

    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
}

fn display_files(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn convert_dtype(dtype: safetensors::Dtype) -> Option<DType> {
    use safetensors::Dtype as S;
    Some(match dtype {
        S::F32 => DType::F32,
        S::F16 => DType::F16,
        S::BF16 => DType::BF16,
        S::F64 => DType::F64,
        S::U8 => DType::U8,
        S::U32 => DType::U32,
        S::I64 => DType::I64,
        _ => return None,
    })
}

impl WeightSource for SafetensorsSource {
    fn info(&self, name: &str) -> Option<TensorInfo> {
        let view = self.tensors.get(name).ok()?;
        Some(TensorInfo {
            shape: view.shape().to_vec(),
            dtype: convert_dtype(view.dtype())?,
        })
    }

    fn load(&self, name: &str, device: &Device) -> Result<Tensor> {
        // Loading a large model takes a while: let a cancelled load stop between tensors.
        crate::cancel::checkpoint()?;
        let tensor = self.tensors.load(name, device).map_err(|e| {
            Error::Weights(format!(
                "cannot load tensor '{name}' from {}: {e}",
                self.describe()
            ))
        })?;
        if let Ok(view) = self.tensors.get(name) {
            self.count_loaded(view.data().len() as u64);
        }
        Ok(tensor)
    }

    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.tensors.tensors().into_iter().map(|(n, _)| n).collect();
        names.sort();
        names
    }

    fn describe(&self) -> String {
        display_files(&self.files)
    }
}

/// An in-memory source, for tests and for weights computed at load time.
#[derive(Default)]
pub struct MemorySource {
    tensors: std::collections::BTreeMap<String, Tensor>,
}

impl MemorySource {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, name: impl Into<String>, tensor: Tensor) {
        self.tensors.insert(name.into(), tensor);
    }
}

impl WeightSource for MemorySource {
    fn info(&self, name: &str) -> Option<TensorInfo> {
        self.tensors.get(name).map(|t| TensorInfo {
            shape: t.dims().to_vec(),
            dtype: t.dtype(),
        })
    }

    fn load(&self, name: &str, device: &Device) -> Result<Tensor> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| Error::Weights(format!("missing tensor '{name}'")))?;
        Ok(t.to_device(device)?)
    }

    fn names(&self) -> Vec<String> {
        self.tensors.keys().cloned().collect()
    }

    fn describe(&self) -> String {
        "in-memory weights".into()
    }
}

/// A view on a weight source under a name prefix, with the device and dtype to load into.
#[derive(Clone)]
pub struct Weights {
    source: Arc<dyn WeightSource>,
    prefix: String,
    device: Device,
    dtype: DType,
}

impl fmt::Debug for Weights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Weights")
            .field("source", &self.source.describe())
            .field("prefix", &self.prefix)
            .field("dtype", &self.dtype)
            .finish()
    }
}

impl Weights {
    pub fn new(source: Arc<dyn WeightSource>, device: &Device, dtype: DType) -> Self {
        Weights {
            source,
            prefix: String::new(),
            device: device.clone(),
            dtype,
        }
    }

    /// Opens safetensors files (see [`SafetensorsSource::open`]).
    pub fn from_safetensors(files: &[PathBuf], device: &Device, dtype: DType) -> Result<Self> {
        Ok(Self::new(
            Arc::new(SafetensorsSource::open(files)?),
            device,
            dtype,
        ))
    }

    /// A view one level deeper: `w.pp("layers").pp(3)` reads `layers.3.*`.
    pub fn pp(&self, name: impl fmt::Display) -> Self {
        Weights {
            prefix: self.path(&name.to_string()),
            ..self.clone()
        }
    }

    /// The same view, loading into another dtype (e.g. f32 for norms or positional tables).
    pub fn with_dtype(&self, dtype: DType) -> Self {
        Weights {
            dtype,
            ..self.clone()
        }
    }

    /// The full name of `name` under this view's prefix.
    pub fn path(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else if name.is_empty() {
            self.prefix.clone()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn source(&self) -> &Arc<dyn WeightSource> {
        &self.source
    }

    pub fn contains(&self, name: &str) -> bool {
        self.source.info(&self.path(name)).is_some()
    }

    /// Dtype `name` is stored in, if present.
    pub fn stored_dtype(&self, name: &str) -> Option<DType> {
        self.source.info(&self.path(name)).map(|i| i.dtype)
    }

    /// Shape of `name`, if present.
    pub fn shape_of(&self, name: &str) -> Option<Vec<usize>> {
        self.source.info(&self.path(name)).map(|i| i.shape)
    }

    /// Loads `name`, checks its shape and converts it to the view's dtype.
    pub fn get(&self, shape: impl Into<Shape>, name: &str) -> Result<Tensor> {
        self.get_as(shape, name, self.dtype)
    }

    /// Like [`Weights::get`] with an explicit dtype.
    pub fn get_as(&self, shape: impl Into<Shape>, name: &str, dtype: DType) -> Result<Tensor> {
        let full = self.path(name);
        let expected: Shape = shape.into();
        let info = self.source.info(&full).ok_or_else(|| self.missing(&full))?;
        if info.shape.as_slice() != expected.dims() {
            return Err(Error::Weights(format!(
                "tensor '{full}' in {} has shape {:?}, expected {:?}: the weights do not match \
                 config.json",
                self.source.describe(),
                info.shape,
                expected.dims()
            )));
        }
        let t = self.source.load(&full, &self.device)?;
        Ok(t.to_dtype(dtype)?)
    }

    /// A quantized form of `name` when the source stores one (see [`WeightSource`]).
    pub fn get_quantized(&self, name: &str) -> Result<Option<Arc<QTensor>>> {
        self.source.load_quantized(&self.path(name), &self.device)
    }

    fn missing(&self, full: &str) -> Error {
        // Point at near misses: a different prefix layout is the usual cause.
        let leaf = full.rsplit('.').take(2).collect::<Vec<_>>();
        let hint = self
            .source
            .names()
            .into_iter()
            .find(|n| leaf.len() == 2 && n.ends_with(&format!("{}.{}", leaf[1], leaf[0])));
        match hint {
            Some(h) => Error::Weights(format!(
                "missing tensor '{full}' in {} (found '{h}': is this the right kind of model?)",
                self.source.describe()
            )),
            None => Error::Weights(format!(
                "missing tensor '{full}' in {}: is this the right kind of model?",
                self.source.describe()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> Arc<dyn WeightSource> {
        let mut s = MemorySource::new();
        let t = Tensor::arange(0f32, 6., &Device::Cpu)
            .unwrap()
            .reshape((2, 3))
            .unwrap();
        s.insert("model.layers.0.w", t);
        Arc::new(s)
    }

    #[test]
    fn prefixes_shapes_and_dtypes() {
        let w = Weights::new(source(), &Device::Cpu, DType::BF16);
        let l = w.pp("model").pp("layers").pp(0);
        assert_eq!(l.path("w"), "model.layers.0.w");
        assert!(l.contains("w"));
        let t = l.get((2, 3), "w").unwrap();
        assert_eq!(t.dtype(), DType::BF16);
        let f = l.get_as((2, 3), "w", DType::F32).unwrap();
        assert_eq!(f.to_vec2::<f32>().unwrap()[1], vec![3., 4., 5.]);
    }

    #[test]
    fn errors_name_the_tensor_and_shapes() {
        let w = Weights::new(source(), &Device::Cpu, DType::F32);
        let err = w
            .pp("model.layers.0")
            .get((3, 2), "w")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("model.layers.0.w") && err.contains("[2, 3]"),
            "{err}"
        );
        let err = w
            .pp("thinker.layers.0")
            .get((2, 3), "w")
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing tensor 'thinker.layers.0.w'"), "{err}");
        assert!(err.contains("found 'model.layers.0.w'"), "{err}");
    }

    #[test]
    fn missing_files_are_errors() {
        let err = SafetensorsSource::open(&[PathBuf::from("/nonexistent/model.safetensors")])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("does not exist"), "{err}");
    }
}
