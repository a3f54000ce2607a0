"""Shared argument checks.

Every check raises ``ValueError`` or ``TypeError`` with a message that names
the argument, says what was expected and quotes what was given.
"""

from __future__ import annotations

import numbers
from typing import Any, Iterable

import numpy as np

from ._backend import array_backend

__all__ = [
    "check_int",
    "check_float",
    "check_bool",
    "check_option",
    "check_finite",
    "check_ndim",
    "check_shape_tuple",
    "check_random_state",
]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_int(value: Any, name: str, *, min_value: int | None = None,
              max_value: int | None = None) -> int:
    """Return ``value`` as an ``int`` after checking its type and bounds."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {_short(value)} "
                        f"({type(value).__name__})")
    value = int(value)
    if min_value is not None and value < min_value:
        raise ValueError(f"{name} must be >= {min_value}, got {value}")
    if max_value is not None and value > max_value:
        raise ValueError(f"{name} must be <= {max_value}, got {value}")
    return value


def check_float(value: Any, name: str, *, min_value: float | None = None,
                max_value: float | None = None, min_inclusive: bool = True,
                max_inclusive: bool = True) -> float:
    """Return ``value`` as a finite ``float`` after checking its type and bounds."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {_short(value)} "
                        f"({type(value).__name__})")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if min_value is not None:
        bad = value < min_value if min_inclusive else value <= min_value
        if bad:
            op = ">=" if min_inclusive else ">"
            raise ValueError(f"{name} must be {op} {min_value}, got {value}")
    if max_value is not None:
        bad = value > max_value if max_inclusive else value >= max_value
        if bad:
            op = "<=" if max_inclusive else "<"
            raise ValueError(f"{name} must be {op} {max_value}, got {value}")
    return value


def check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {_short(value)}")
    return bool(value)


def check_option(value: Any, name: str, options: Iterable[str]) -> str:
    """Check that ``value`` is one of ``options`` (strings)."""
    options = tuple(options)
    if not isinstance(value, str) or value not in options:
        raise ValueError(
            f"{name} must be one of {', '.join(map(repr, options))}; got {_short(value)}"
        )
    return value


def check_finite(x: Any, name: str) -> None:
    """Raise ValueError if array ``x`` holds NaN or infinite values."""
    backend = array_backend(x)
    if backend == "pytorch":
        import torch

        ok = bool(torch.isfinite(x).all()) if x.is_floating_point() or x.is_complex() else True
    elif backend == "cupy":  # pragma: no cover - needs a GPU
        import cupy

        ok = bool(cupy.isfinite(x).all())
    else:
        arr = np.asarray(x)
        ok = bool(np.isfinite(arr).all()) if arr.dtype.kind in "fc" else True
    if not ok:
        raise ValueError(f"{name} contains NaN or infinite values; clean or impute "
                         "them before calling")


def check_ndim(x: Any, name: str, ndim: int | tuple[int, ...], what: str = "") -> None:
    """Check the number of dimensions of array ``x``."""
    allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    got = len(x.shape)
    if got not in allowed:
        want = " or ".join(str(a) for a in allowed)
        extra = f" ({what})" if what else ""
        raise ValueError(f"{name} must have {want} dimensions{extra}; got an array of "
                         f"shape {tuple(x.shape)}")


def check_shape_tuple(shape: Any, name: str) -> tuple[int, ...]:
    """Return ``shape`` as a tuple of positive ints."""
    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        items = tuple(shape)
    except TypeError:
        raise TypeError(f"{name} must be a tuple of positive integers, got "
                        f"{_short(shape)}") from None
    if not items:
        raise ValueError(f"{name} must not be empty")
    out = []
    for s in items:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1:
            raise ValueError(f"{name} must be a tuple of positive integers, got "
                             f"{_short(shape)}")
        out.append(int(s))
    return tuple(out)


def check_random_state(seed: Any) -> np.random.Generator:
    """Turn ``None``, an int or a Generator into a ``numpy.random.Generator``."""
    if seed is None or isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        return np.random.default_rng(seed)
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, np.random.RandomState):
        return np.random.default_rng(seed.randint(0, 2**31 - 1))
    raise TypeError("random_state must be None, an int or a numpy.random.Generator, "
                    f"got {_short(seed)}")
