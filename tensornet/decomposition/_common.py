"""Shared helpers for the decompositions: input checks, rank resolution, random arrays.

Everything here runs inside the caller's :func:`tensornet._backend.backend_for`
context, so ``tl.*`` calls dispatch to the input's array library.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

import numpy as np
import tensorly as tl

from .._backend import array_backend, backend_name
from .._validation import _short, check_finite

__all__ = [
    "prepare_array",
    "resolve_cp_rank",
    "resolve_tucker_rank",
    "resolve_tt_rank",
    "tt_max_ranks",
    "random_normal",
    "dtype_eps",
    "to_float",
]


def prod(xs) -> int:
    return math.prod(int(x) for x in xs) if len(xs) else 1


# --------------------------------------------------------------------------- arrays
def prepare_array(x: Any, name: str, *, min_ndim: int | None = None,
                  ndim: int | None = None, what: str = "") -> tuple[Any, str]:
    """Check an input array and return ``(array, backend name)``.

    * NumPy arrays, PyTorch tensors and CuPy arrays are accepted as they are;
      other array-likes (lists) become NumPy arrays.
    * Integer and boolean data are converted to the backend's default float
      type; complex data are refused (the decompositions here are real).
    * PyTorch tensors are detached (no autograd graph is recorded).
    * Empty arrays and NaN / infinite values are refused.
    """
    backend = array_backend(x)
    if backend is None:
        if isinstance(x, (str, bytes)) or x is None or isinstance(x, numbers.Number):
            raise TypeError(f"{name} must be an array (NumPy, PyTorch or CuPy), got "
                            f"{_short(x)} ({type(x).__name__})")
        try:
            x = np.asarray(x)
        except Exception:  # pragma: no cover - exotic objects
            raise TypeError(f"{name} must be an array (NumPy, PyTorch or CuPy), got "
                            f"{type(x).__name__}") from None
        if x.dtype == object:
            raise TypeError(f"{name} must be a numeric array, got an array of Python objects")
        backend = "numpy"
    if backend == "pytorch":
        x = x.detach()
        if x.is_complex():
            raise TypeError(f"{name} must be real, got a complex tensor of dtype {x.dtype}")
        if not x.is_floating_point():
            import torch

            x = x.to(torch.get_default_dtype())
    else:
        kind = np.dtype(x.dtype).kind
        if kind == "c":
            raise TypeError(f"{name} must be real, got a complex array of dtype {x.dtype}")
        if kind not in "f":
            if kind not in "biu":
                raise TypeError(f"{name} must be a numeric array, got dtype {x.dtype}")
            x = x.astype(np.float64)
    shape = tuple(x.shape)
    if ndim is not None and len(shape) != ndim:
        extra = f" ({what})" if what else ""
        raise ValueError(f"{name} must have {ndim} dimensions{extra}; got an array of "
                         f"shape {shape}")
    if min_ndim is not None and len(shape) < min_ndim:
        extra = f" ({what})" if what else ""
        raise ValueError(f"{name} must have at least {min_ndim} dimensions{extra}; got an "
                         f"array of shape {shape}")
    if any(s == 0 for s in shape):
        raise ValueError(f"{name} must not be empty; got an array of shape {shape}")
    check_finite(x, name)
    return contiguous(x), backend


def same_backend(name: str, value: Any, expected: str, what: str) -> None:
    got = array_backend(value)
    if got != expected:
        raise TypeError(f"{what} must hold {expected!r} arrays like the tensor, got "
                        f"{got or type(value).__name__!r} arrays ({name})")


def dtype_eps(x) -> float:
    """Machine epsilon of ``x``'s floating dtype."""
    return float(tl.finfo(x.dtype).eps)


def to_float(x) -> float:
    """A 0-d (or 1-element) array as a Python float."""
    return float(x)


def random_normal(rng: np.random.Generator, shape: Sequence[int], like) -> Any:
    """Standard normal array of ``shape`` with the dtype and device of ``like``.

    Drawn on the host from ``rng`` (so a seed gives the same numbers on every
    backend) and copied once to ``like``'s device.
    """
    data = rng.standard_normal(tuple(int(s) for s in shape))
    return tl.tensor(data, **_context(like))


def random_uniform(rng: np.random.Generator, shape: Sequence[int], like) -> Any:
    data = rng.random(tuple(int(s) for s in shape))
    return tl.tensor(data, **_context(like))


def _context(like) -> dict:
    ctx = dict(tl.context(like))
    ctx.pop("requires_grad", None)
    return ctx


def from_host(data, like):
    """NumPy data as an array of ``like``'s type, dtype and device."""
    return tl.tensor(np.asarray(data), **_context(like))


# --------------------------------------------------------------------------- ranks
def _check_fraction(rank: float, name: str) -> float:
    if not (0.0 < rank <= 1.0) or not math.isfinite(rank):
        raise ValueError(f"{name} as a float is the fraction of the full tensor's parameter "
                         f"count to keep and must be in (0, 1]; got {rank!r}")
    return float(rank)


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_float(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, numbers.Integral))


def cp_max_rank(shape: Sequence[int]) -> int:
    """Upper bound on the CP rank of any tensor of ``shape``: min over k of prod_{j != k} I_j."""
    total = prod(shape)
    return min(total // s for s in shape)


def resolve_cp_rank(shape: Sequence[int], rank: Any) -> int:
    """CP rank from an int or a parameter fraction.

    Ranks above the largest mode size are allowed (CP rank can exceed every
    dimension); ranks above ``min_k prod_{j != k} I_j``, which no tensor of
    this shape needs, are refused.
    """
    bound = cp_max_rank(shape)
    if _is_float(rank):
        frac = _check_fraction(float(rank), "rank")
        budget = frac * prod(shape)
        r = int(budget // (sum(shape) + 1))
        return max(1, min(r, bound))
    if not _is_int(rank):
        raise TypeError(f"rank must be a positive int or a float in (0, 1], got "
                        f"{_short(rank)} ({type(rank).__name__})")
    rank = int(rank)
    if rank < 1:
        raise ValueError(f"rank must be >= 1, got {rank}")
    if rank > bound:
        raise ValueError(f"rank must be <= {bound} for a tensor of shape {tuple(shape)} (no "
                         f"tensor of this shape has a higher CP rank); got {rank}")
    return rank


def tucker_max_ranks(shape: Sequence[int]) -> tuple[int, ...]:
    total = prod(shape)
    return tuple(min(s, total // s) for s in shape)


def _consistent_tucker(ranks: list[int]) -> tuple[int, ...]:
    """Reduce each r_k to at most prod_{j != k} r_j (larger is never used)."""
    ranks = list(ranks)
    changed = True
    while changed:
        changed = False
        for k in range(len(ranks)):
            others = prod(ranks[:k] + ranks[k + 1:])
            if ranks[k] > others:
                ranks[k] = others
                changed = True
    return tuple(ranks)


def tucker_n_params(shape, ranks) -> int:
    return prod(ranks) + sum(s * r for s, r in zip(shape, ranks))


def resolve_tucker_rank(shape: Sequence[int], rank: Any) -> tuple[int, ...] | None:
    """Tucker ranks from ``None``, an int, a tuple or a parameter fraction.

    ``None`` means "decided by ``eps``". An int is a cap applied to every mode
    (clipped to what each mode allows); a tuple is taken literally and each
    entry must be allowed.
    """
    if rank is None:
        return None
    shape = tuple(shape)
    maxr = tucker_max_ranks(shape)
    if _is_float(rank):
        frac = _check_fraction(float(rank), "rank")
        budget = frac * prod(shape)

        def ranks_for(s):
            return _consistent_tucker([max(1, min(m, int(math.floor(s * d + 1e-9))))
                                       for d, m in zip(shape, maxr)])

        lo, hi = 0.0, 1.0
        if tucker_n_params(shape, ranks_for(hi)) <= budget:
            return ranks_for(hi)
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            if tucker_n_params(shape, ranks_for(mid)) <= budget:
                lo = mid
            else:
                hi = mid
        return ranks_for(lo)
    if _is_int(rank):
        rank = int(rank)
        if rank < 1:
            raise ValueError(f"rank must be >= 1, got {rank}")
        if rank > max(maxr):
            raise ValueError(f"rank must be <= {max(maxr)} (the largest Tucker rank a tensor of "
                             f"shape {shape} allows); got {rank}")
        return _consistent_tucker([min(rank, m) for m in maxr])
    try:
        ranks = tuple(rank)
    except TypeError:
        raise TypeError(f"rank must be an int, a float in (0, 1] or a tuple of ints, got "
                        f"{_short(rank)} ({type(rank).__name__})") from None
    if len(ranks) != len(shape):
        raise ValueError(f"rank must have one entry per mode ({len(shape)} for shape {shape}); "
                         f"got {len(ranks)} entries: {ranks}")
    out = []
    for k, (r, m) in enumerate(zip(ranks, maxr)):
        if not _is_int(r):
            raise TypeError(f"rank[{k}] must be an int, got {_short(r)}")
        if r < 1:
            raise ValueError(f"rank[{k}] must be >= 1, got {r}")
        if r > m:
            raise ValueError(f"rank[{k}] must be <= {m} for mode {k} of a tensor of shape "
                             f"{shape}; got {r} (rank={ranks})")
        out.append(int(r))
    return _consistent_tucker(out)


def tt_max_ranks(shape: Sequence[int]) -> tuple[int, ...]:
    """Largest TT ranks of a tensor of ``shape``: ``(1, r_1, ..., r_{d-1}, 1)``."""
    shape = tuple(shape)
    d = len(shape)
    out = [1]
    for k in range(1, d):
        out.append(min(prod(shape[:k]), prod(shape[k:])))
    out.append(1)
    return tuple(out)


def tt_n_params(shape, ranks) -> int:
    return sum(ranks[k] * shape[k] * ranks[k + 1] for k in range(len(shape)))


def resolve_tt_rank(shape: Sequence[int], rank: Any, name: str = "rank") -> tuple[int, ...] | None:
    """TT rank caps ``(1, r_1, ..., r_{d-1}, 1)`` from None, an int, a tuple or a fraction.

    An int is a cap for every bond (clipped to what each bond allows). A
    tuple lists either the ``d - 1`` inner bonds or all ``d + 1`` ranks
    with ones at both ends; each entry must be allowed. A float picks the
    largest uniform cap whose parameter count fits that fraction of the
    full tensor's.
    """
    if rank is None:
        return None
    shape = tuple(shape)
    maxr = tt_max_ranks(shape)
    d = len(shape)
    if _is_float(rank):
        frac = _check_fraction(float(rank), name)
        budget = frac * prod(shape)

        def ranks_for(c):
            return tuple(min(c, m) for m in maxr)

        hi_cap = max(maxr)
        lo, hi = 1, hi_cap
        if tt_n_params(shape, ranks_for(hi)) <= budget:
            return ranks_for(hi)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if tt_n_params(shape, ranks_for(mid)) <= budget:
                lo = mid
            else:
                hi = mid
        return ranks_for(lo)
    if _is_int(rank):
        rank = int(rank)
        if rank < 1:
            raise ValueError(f"{name} must be >= 1, got {rank}")
        if rank > max(maxr):
            raise ValueError(f"{name} must be <= {max(maxr)} (the largest TT rank a tensor of "
                             f"shape {shape} allows; bond maxima {maxr}); got {rank}")
        return tuple(min(rank, m) for m in maxr)
    try:
        ranks = tuple(rank)
    except TypeError:
        raise TypeError(f"{name} must be an int, a float in (0, 1] or a tuple of ints, got "
                        f"{_short(rank)} ({type(rank).__name__})") from None
    if len(ranks) == d - 1:
        ranks = (1,) + ranks + (1,)
    elif len(ranks) == d + 1:
        if ranks[0] != 1 or ranks[-1] != 1:
            raise ValueError(f"{name} with d + 1 = {d + 1} entries must start and end with 1 "
                             f"(boundary ranks); got {ranks}")
    else:
        raise ValueError(f"{name} must list the {d - 1} inner TT ranks (or all {d + 1} with "
                         f"ones at both ends) for a tensor of order {d}; got {len(ranks)} "
                         f"entries: {ranks}")
    for k, (r, m) in enumerate(zip(ranks, maxr)):
        if not _is_int(r):
            raise TypeError(f"{name}[{k}] must be an int, got {_short(r)}")
        if r < 1:
            raise ValueError(f"{name}[{k}] must be >= 1, got {r}")
        if r > m:
            raise ValueError(f"{name}[{k}] must be <= {m} for a tensor of shape {shape} (bond "
                             f"maxima {maxr}); got {r} ({name}={ranks})")
    return tuple(int(r) for r in ranks)


def check_eps(eps: Any, name: str = "eps") -> float | None:
    if eps is None:
        return None
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        raise TypeError(f"{name} must be a float in [0, 1) or None, got {_short(eps)} "
                        f"({type(eps).__name__})")
    eps = float(eps)
    if not (0.0 <= eps < 1.0):
        raise ValueError(f"{name} is a relative error tolerance and must be in [0, 1); "
                         f"got {eps!r}")
    return eps


def backend_of(*arrays) -> str:
    return backend_name(*arrays)


def contiguous(x):
    """``x`` in C order (a copy only when it is not already)."""
    backend = array_backend(x)
    if backend == "pytorch":
        return x.contiguous()
    if backend == "cupy":  # pragma: no cover - needs a GPU
        import cupy

        return cupy.ascontiguousarray(x)
    return np.ascontiguousarray(x)
