"""Shared fixtures: backends, GPU skipping, and the global-backend guard."""

import importlib.util
import sys

import numpy as np
import pytest
import tensorly as tl


def _cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        return False


HAS_CUDA = _cuda_available()
HAS_CUPY = importlib.util.find_spec("cupy") is not None and HAS_CUDA


def pytest_collection_modifyitems(config, items):
    if HAS_CUDA:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def _global_backend_state():
    mgr = type(sys.modules["tensorly.backend"])
    return mgr._backend.backend_name, mgr._default_backend, tl.get_backend()


@pytest.fixture(autouse=True)
def _tensorly_global_backend_unchanged():
    """Every test also proves that tensornet leaves TensorLy's backend alone."""
    before = _global_backend_state()
    yield
    after = _global_backend_state()
    assert after == before, f"TensorLy's global backend changed from {before} to {after}"


_BACKEND_PARAMS = [
    "numpy",
    "pytorch",
    pytest.param("torch-cuda", marks=pytest.mark.gpu),
    pytest.param("cupy", marks=[pytest.mark.gpu,
                                pytest.mark.skipif(not HAS_CUPY, reason="needs CuPy")]),
]


@pytest.fixture(params=_BACKEND_PARAMS)
def array_lib(request):
    """Convert a NumPy array to the array type under test: ``array_lib(x)``."""
    name = request.param
    if name == "numpy":
        return lambda x: np.asarray(x)
    import torch

    if name == "pytorch":
        return lambda x: torch.as_tensor(np.asarray(x))
    if name == "torch-cuda":
        return lambda x: torch.as_tensor(np.asarray(x), device="cuda")
    import cupy

    return lambda x: cupy.asarray(np.asarray(x))


def to_np(x):
    """Any supported array back to NumPy (test helper)."""
    from tensornet._backend import to_numpy

    return to_numpy(x)
