"""Options shared by the model classes: devices and dtypes as the reference spells them."""

from __future__ import annotations

from typing import Any, Dict, Optional

# Keyword arguments of the reference's from_pretrained that have no meaning here.
_IGNORED = ("attn_implementation", "low_cpu_mem_usage", "trust_remote_code")


def device_and_dtype(device: Optional[str], dtype: Any, kwargs: Dict[str, Any], what: str):
    """``(device, dtype)`` strings from our arguments and the reference's ``device_map`` /
    ``dtype`` / ``torch_dtype`` keyword arguments; unknown keyword arguments are errors."""
    if "device_map" in kwargs:
        dm = kwargs.pop("device_map")
        if device is not None and device != dm:
            raise ValueError("give either device or device_map, not both")
        if not isinstance(dm, str):
            raise TypeError(f"device_map must be a device name such as 'cuda:0', got {dm!r}")
        device = dm
    for key in ("torch_dtype",):
        if key in kwargs:
            if dtype is not None:
                raise ValueError(f"give either dtype or {key}, not both")
            dtype = kwargs.pop(key)
    for key in _IGNORED:
        kwargs.pop(key, None)
    if kwargs:
        names = ", ".join(sorted(kwargs))
        raise TypeError(f"{what}: unexpected keyword argument(s): {names}")
    return (device or "auto"), dtype_name(dtype)


def dtype_name(dtype: Any) -> Optional[str]:
    """'f32' / 'bf16' / 'f16' from a string or a torch/numpy dtype (without importing torch)."""
    if dtype is None:
        return None
    name = str(dtype).lower()
    if name.startswith("torch."):
        name = name[len("torch.") :]
    return {"float": "f32", "float32": "f32", "bfloat16": "bf16", "float16": "f16", "half": "f16"}.get(
        name, name
    )
