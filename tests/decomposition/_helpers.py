"""Shared helpers for the decomposition tests."""

import numpy as np
import tensorly as tl

from tensornet._backend import array_backend, backend_for

from ..conftest import to_np


def rel_err(approx, target) -> float:
    a, t = to_np(approx).astype(np.float64), to_np(target).astype(np.float64)
    return float(np.linalg.norm(a - t) / np.linalg.norm(t))


def assert_like(arr, ref):
    """``arr`` has the array type, dtype and device of ``ref``."""
    assert array_backend(arr) == array_backend(ref)
    assert arr.dtype == ref.dtype, (arr.dtype, ref.dtype)
    if hasattr(ref, "device"):
        assert str(arr.device) == str(ref.device)


def full(obj, like):
    """Reconstruct a TensorLy factorized object with the backend of ``like``."""
    with backend_for(array_backend(like)):
        return obj.to_tensor()
