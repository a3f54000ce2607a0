"""Synthetic tensors with a known low-rank decomposition."""

from __future__ import annotations

import numpy as np

from .._validation import _short, check_float, check_option, check_random_state, \
    check_shape_tuple

__all__ = ["make_low_rank_tensor"]

_KINDS = ("cp", "tucker", "tt")


def _ranks(rank, n, name="rank"):
    if isinstance(rank, (int, np.integer)) and not isinstance(rank, bool):
        if rank < 1:
            raise ValueError(f"{name} must be >= 1, got {rank}")
        return (int(rank),) * n
    try:
        ranks = tuple(rank)
    except TypeError:
        raise TypeError(f"{name} must be a positive int or a tuple of positive ints, got "
                        f"{_short(rank)}") from None
    if len(ranks) != n:
        raise ValueError(f"{name} must have {n} entries here, got {len(ranks)}: {ranks}")
    for r in ranks:
        if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r < 1:
            raise ValueError(f"{name} must contain positive ints, got {ranks}")
    return tuple(int(r) for r in ranks)


def make_low_rank_tensor(shape, rank, kind="cp", noise=0.0, random_state=None,
                         dtype=np.float64):
    """A random tensor of known CP, Tucker or TT rank, and its decomposition.

    Parameters
    ----------
    shape : tuple of int
        Shape of the tensor (order >= 2; order >= 1 for ``kind='tt'``).
    rank : int or tuple of int
        ``'cp'``: number of components (int). ``'tucker'``: multilinear rank,
        an int for every mode or one per mode (each at most the mode size).
        ``'tt'``: an int for every bond or the ``d - 1`` inner ranks; each
        is clipped to what the bond allows, ``min(prod(shape[:k]),
        prod(shape[k:]))``.
    kind : {'cp', 'tucker', 'tt'}, default 'cp'
    noise : float, default 0.0
        Relative noise level: Gaussian noise scaled to ``noise * ||T||``
        (Frobenius) is added to the tensor; the returned decomposition is the
        noise-free one.
    random_state : None, int or numpy.random.Generator
    dtype : numpy dtype, default float64

    Returns
    -------
    tensor : numpy.ndarray of ``shape``
    decomposition : CPTensor, TuckerTensor or TTTensor
        The noise-free ground truth, NumPy arrays. CP factors are Gaussian
        with unit-norm columns and weights in [1, 2]; Tucker factors are
        orthonormal with a Gaussian core; TT cores are Gaussian scaled by
        ``1 / sqrt(r_{k-1} I_k)``.

    Notes
    -----
    Everything comes back as NumPy. For PyTorch, convert the arrays:
    ``torch.from_numpy(tensor)`` and, for the decomposition,
    ``CPTensor((torch.from_numpy(w), [torch.from_numpy(f) for f in factors]))``
    (similarly ``TuckerTensor((core, factors))`` and ``TTTensor(cores)``).

    Examples
    --------
    >>> from tensornet.datasets import make_low_rank_tensor
    >>> X, truth = make_low_rank_tensor((4, 5, 6), 2, kind="cp", random_state=0)
    >>> X.shape, truth.rank
    ((4, 5, 6), 2)
    >>> import numpy as np
    >>> bool(np.allclose(truth.to_tensor(), X))
    True
    """
    from tensorly.cp_tensor import CPTensor
    from tensorly.tt_tensor import TTTensor
    from tensorly.tucker_tensor import TuckerTensor

    shape = check_shape_tuple(shape, "shape")
    kind = check_option(kind, "kind", _KINDS)
    noise = check_float(noise, "noise", min_value=0.0)
    rng = check_random_state(random_state)
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"dtype must be a floating dtype, got {dtype}")
    d = len(shape)
    if kind != "tt" and d < 2:
        raise ValueError(f"shape must have at least 2 modes for kind={kind!r}, got {shape}")

    if kind == "cp":
        if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)):
            raise TypeError(f"rank must be a positive int for kind='cp', got {_short(rank)}")
        rank = int(rank)
        if rank < 1:
            raise ValueError(f"rank must be >= 1, got {rank}")
        factors = []
        for s in shape:
            f = rng.standard_normal((s, rank))
            f /= np.linalg.norm(f, axis=0, keepdims=True)
            factors.append(f.astype(dtype))
        weights = rng.uniform(1.0, 2.0, rank).astype(dtype)
        X = np.einsum("r," + ",".join(f"{chr(97 + k)}r" for k in range(d))
                      + "->" + "".join(chr(97 + k) for k in range(d)), weights, *factors,
                      optimize=True)
        truth = CPTensor((weights, factors))
    elif kind == "tucker":
        ranks = _ranks(rank, d)
        for k, (r, s) in enumerate(zip(ranks, shape)):
            if r > s:
                raise ValueError(f"rank[{k}] must be <= shape[{k}] = {s}, got {r} "
                                 f"(rank={ranks})")
        factors = [np.linalg.qr(rng.standard_normal((s, r)))[0].astype(dtype)
                   for s, r in zip(shape, ranks)]
        core = rng.standard_normal(ranks).astype(dtype)
        X = core
        for k, U in enumerate(factors):
            X = np.moveaxis(np.tensordot(U, X, axes=(1, k)), 0, k)
        X = np.ascontiguousarray(X)
        truth = TuckerTensor((core, factors))
    else:
        if isinstance(rank, (int, np.integer)) and not isinstance(rank, bool):
            inner = _ranks(rank, max(d - 1, 0)) if d > 1 else ()
        else:
            inner = _ranks(rank, d - 1)
        full = [1] + list(inner) + [1]
        for k in range(1, d):
            full[k] = min(full[k], int(np.prod(shape[:k])), int(np.prod(shape[k:])))
        cores = [(rng.standard_normal((full[k], shape[k], full[k + 1]))
                  / np.sqrt(full[k] * shape[k])).astype(dtype) for k in range(d)]
        X = cores[0].reshape(shape[0], full[1])
        for k in range(1, d):
            X = (X @ cores[k].reshape(full[k], -1)).reshape(-1, full[k + 1])
        X = X.reshape(shape)
        truth = TTTensor(cores)
    X = np.ascontiguousarray(X, dtype=dtype)
    if noise > 0:
        E = rng.standard_normal(shape)
        E *= noise * np.linalg.norm(X) / np.linalg.norm(E)
        X = (X + E).astype(dtype)
    return X, truth
