"""Backend follows the data.

tensornet never calls :func:`tensorly.set_backend`. Every public function
looks at the type of its array arguments, picks the matching TensorLy
backend and runs inside :func:`backend_for`, a context manager that sets
that backend for the *current thread only* and restores the thread's
previous state exactly on exit (TensorLy's own ``backend_context`` rewrites
the global default on exit, which is why it is not used here).

Array types are recognised without importing the optional libraries: a
CuPy array is detected by the name of the module that defines its type, so
``import tensornet`` never imports CuPy.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from typing import Any

import numpy as np

__all__ = [
    "BACKENDS",
    "backend_name",
    "backend_for",
    "require_backend",
    "to_numpy",
    "ArrayOps",
    "ops_for",
]

#: TensorLy backend names tensornet supports, with the pip extra that installs each.
BACKENDS = {
    "numpy": ("numpy", None),
    "pytorch": ("torch", None),
    "cupy": ("cupy", "gpu"),
}

_lock = threading.Lock()


def _module_root(obj: Any) -> str:
    return type(obj).__module__.partition(".")[0]


def array_backend(obj: Any) -> str | None:
    """TensorLy backend name for one array, or ``None`` when ``obj`` is not an array."""
    root = _module_root(obj)
    if root == "numpy" and isinstance(obj, (np.ndarray, np.generic)):
        return "numpy"
    if root == "torch":
        import torch

        if isinstance(obj, torch.Tensor):
            return "pytorch"
    if root in ("cupy", "cupyx"):
        return "cupy"
    if root == "scipy":
        return "numpy"  # scipy.sparse matrices live in host memory
    return None


def backend_name(*arrays: Any, default: str = "numpy") -> str:
    """Return the TensorLy backend name matching the array arguments.

    Non-array arguments (``None``, numbers, lists) are ignored. Mixing
    array libraries is an error: tensornet does not copy data between
    libraries or devices behind the user's back.

    Parameters
    ----------
    *arrays : array-like
        NumPy arrays, PyTorch tensors, CuPy arrays or SciPy sparse matrices.
    default : str
        Backend returned when no argument is an array.

    Raises
    ------
    TypeError
        If arrays from different libraries are mixed.
    """
    found = None
    for a in arrays:
        name = array_backend(a)
        if name is None:
            continue
        if found is None:
            found = name
        elif name != found:
            raise TypeError(
                "all array arguments must come from one array library; got a mix of "
                f"{found!r} and {name!r} arrays (convert them explicitly, tensornet "
                "never moves data between libraries or devices implicitly)"
            )
    return default if found is None else found


def require_backend(name: str) -> None:
    """Raise an ImportError naming the extra to install when a backend is missing."""
    if name not in BACKENDS:
        raise ValueError(
            f"backend must be one of {sorted(BACKENDS)}, got {name!r}"
        )
    module, extra = BACKENDS[name]
    try:
        importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        hint = f"pip install tensornet[{extra}]" if extra else f"pip install {module}"
        raise ImportError(
            f"the {name!r} backend needs the {module!r} package, which is not "
            f"installed; install it with `{hint}`"
        ) from exc


def _manager():
    import tensorly  # noqa: F401  (imports tensorly.backend)
    import sys

    return type(sys.modules["tensorly.backend"])


_MISSING = object()


@contextlib.contextmanager
def backend_for(name: str):
    """Use TensorLy backend ``name`` in the current thread, then restore it.

    Unlike ``tensorly.backend_context(..., local_threadsafe=True)``, which
    on exit resets the *global* default backend to the thread's old one,
    this touches only thread-local state and restores it exactly: a thread
    that had no backend of its own before has none after.
    """
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {sorted(BACKENDS)}, got {name!r}")
    mgr = _manager()
    local = mgr._THREAD_LOCAL_DATA.__dict__
    old = local.get("backend", _MISSING)
    if old is not _MISSING and old.backend_name == name:
        yield
        return
    backend = mgr._loaded_backends.get(name)
    if backend is None:
        require_backend(name)
        with _lock:
            backend = mgr._loaded_backends.get(name) or mgr.load_backend(name)
    local["backend"] = backend
    try:
        yield
    finally:
        if old is _MISSING:
            local.pop("backend", None)
        else:
            local["backend"] = old


def backend_for_data(*arrays: Any):
    """Shorthand for ``backend_for(backend_name(*arrays))``."""
    return backend_for(backend_name(*arrays))


def to_numpy(x: Any) -> np.ndarray:
    """Copy any supported array to a host NumPy array (for reporting, not hot paths)."""
    name = array_backend(x)
    if name == "pytorch":
        return x.detach().cpu().numpy()
    if name == "cupy":
        return x.get()
    return np.asarray(x)


class ArrayOps:
    """The handful of raw array operations the contraction executor needs.

    Calling the array library directly (instead of through TensorLy's
    dispatch) keeps the per-call overhead of a cached plan to a few
    microseconds per step.
    """

    __slots__ = ("name", "transpose", "reshape", "matmul", "einsum", "sum")

    def __init__(self, name, transpose, reshape, matmul, einsum, sum_):
        self.name = name
        self.transpose = transpose
        self.reshape = reshape
        self.matmul = matmul
        self.einsum = einsum
        self.sum = sum_


def _numpy_ops() -> ArrayOps:
    return ArrayOps(
        "numpy",
        np.transpose,
        np.reshape,
        np.matmul,
        lambda eq, *ops: np.einsum(eq, *ops, optimize=False),
        lambda a, axes: a.sum(axis=axes),
    )


def _torch_ops() -> ArrayOps:
    import torch

    return ArrayOps(
        "pytorch",
        torch.permute,
        torch.reshape,
        torch.matmul,
        torch.einsum,
        lambda a, axes: a.sum(dim=axes),
    )


def _cupy_ops() -> ArrayOps:  # pragma: no cover - needs a GPU
    require_backend("cupy")
    import cupy

    return ArrayOps(
        "cupy",
        cupy.transpose,
        cupy.reshape,
        cupy.matmul,
        cupy.einsum,
        lambda a, axes: a.sum(axis=axes),
    )


_OPS_FACTORIES = {"numpy": _numpy_ops, "pytorch": _torch_ops, "cupy": _cupy_ops}
_OPS_CACHE: dict[str, ArrayOps] = {}


def ops_for(name: str) -> ArrayOps:
    """Raw array operations for backend ``name`` (cached)."""
    ops = _OPS_CACHE.get(name)
    if ops is None:
        try:
            factory = _OPS_FACTORIES[name]
        except KeyError:
            raise ValueError(
                f"backend must be one of {sorted(_OPS_FACTORIES)}, got {name!r}"
            ) from None
        ops = _OPS_CACHE[name] = factory()
    return ops
