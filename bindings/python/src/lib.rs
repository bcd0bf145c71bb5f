//! Python bindings of qwen3-speech (built into a wheel with maturin).

use pyo3::prelude::*;

/// The `qwen3_speech` Python module.
#[pymodule]
fn qwen3_speech(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", speech::VERSION)?;
    Ok(())
}
