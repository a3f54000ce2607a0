"""Tensor-train decompositions: TT-SVD, TT-matrix and TT rounding.

TT-SVD (Oseledets, 2011) walks left to right: the remainder is reshaped
(a free C-order reshape, never a permuted copy) to ``(r_{k-1} I_k, rest)``
and truncated by an SVD. With ``eps`` every bond discards at most
``(eps / sqrt(d - 1)) ||T||`` in Frobenius norm, so the whole train is
within ``eps ||T||``. When the rank cap is small compared with an
unfolding, the SVD is randomized (the energy outside the sketch is still
accounted exactly from the remainder's norm, so ``eps`` stays honest).
"""

from __future__ import annotations

import logging
import math

import numpy as np
import tensorly as tl
from tensorly.tt_matrix import TTMatrix
from tensorly.tt_tensor import TTTensor

from .._backend import array_backend, backend_for
from .._validation import _short, check_option, check_random_state, check_shape_tuple
from ._common import check_eps, dtype_eps, prepare_array, prod, resolve_tt_rank
from ._svd import matrix_svd, sqnorm

__all__ = ["tt", "tt_matrix", "tt_round"]

logger = logging.getLogger(__name__)

_SVD_METHODS = ("auto", "full", "randomized")


def _tt_svd(X, caps, eps, rng, method):
    shape = tuple(int(s) for s in X.shape)
    d = len(shape)
    if d == 1:
        return [tl.reshape(X, (1, shape[0], 1))]
    norm2 = sqnorm(X)
    delta2 = None if eps is None else (eps * eps) * norm2 / (d - 1)
    numerical = caps is None and eps is None
    mach = dtype_eps(X)
    cores = []
    C = X
    r_prev = 1
    for k in range(d - 1):
        M = tl.reshape(C, (r_prev * shape[k], -1))
        rtol = max(M.shape) * mach if numerical else None
        cap = None if caps is None else caps[k + 1]
        U, S, C = matrix_svd(M, rank_cap=cap, delta2=delta2, rtol=rtol, rng=rng,
                             method=method, norm2=norm2)
        r = int(U.shape[1])
        cores.append(tl.reshape(U, (r_prev, shape[k], r)))
        norm2 = float(np.sum(tl.to_numpy(S).astype(np.float64) ** 2))
        r_prev = r
    cores.append(tl.reshape(C, (r_prev, shape[-1], 1)))
    return cores


def _common_args(rank, eps, svd, random_state, shape):
    caps = resolve_tt_rank(shape, rank)
    eps = check_eps(eps)
    svd = check_option(svd, "svd", _SVD_METHODS)
    rng = check_random_state(random_state)
    return caps, eps, svd, rng


def tt(tensor, rank=None, eps=None, *, svd="auto", random_state=None):
    """Tensor-train (MPS) decomposition by TT-SVD.

    ``tensor[i_1, ..., i_d] ~= G_1[:, i_1, :] @ G_2[:, i_2, :] @ ... @ G_d[:, i_d, :]``
    with cores ``G_k`` of shape ``(r_{k-1}, I_k, r_k)``, ``r_0 = r_d = 1``.

    Parameters
    ----------
    tensor : array of order >= 1
        NumPy array, PyTorch tensor (CPU or CUDA) or CuPy array, finite.
    rank : None, int, tuple or float
        Cap on the TT ranks. An int caps every bond (clipped to what each
        bond allows: ``min(prod(shape[:k]), prod(shape[k:]))``); larger than
        every bond allows is an error. A tuple gives the ``d - 1`` inner
        ranks (or all ``d + 1`` with ones at the ends), each at most the
        bond's maximum. A float in (0, 1] picks the largest uniform cap whose
        parameter count fits that fraction of ``prod(shape)``. With a rank
        alone the ranks are exactly these caps (so layer shapes are
        predictable), even where the tensor's own rank is lower; add ``eps``
        to also drop negligible singular values.
    eps : None or float in [0, 1)
        Relative error tolerance: each bond discards at most
        ``eps / sqrt(d - 1) * ||tensor||``, so ``||tensor - tt|| <= eps ||tensor||``
        (when a rank cap is also given, the cap wins). With neither
        ``rank`` nor ``eps`` the ranks are the numerical ranks (exact to
        working precision).
    svd : {'auto', 'full', 'randomized'}, default 'auto'
        ``'auto'`` uses a randomized SVD for an unfolding larger than about
        10^6 entries whose rank cap is at most a quarter of its short side,
        a dense SVD otherwise.
    random_state : None, int or numpy.random.Generator
        Seed for the randomized SVD.

    Returns
    -------
    tensorly.tt_tensor.TTTensor
        Cores of the input's type, dtype and device.

    Examples
    --------
    >>> import tensorly as tl
    >>> from tensornet.datasets import make_low_rank_tensor
    >>> from tensornet.decomposition import tt
    >>> X, _ = make_low_rank_tensor((4, 5, 6, 7), 3, kind="tt", random_state=0)
    >>> est = tt(X, eps=1e-10)
    >>> est.rank
    (1, 3, 3, 3, 1)
    >>> bool(tl.norm(est.to_tensor() - X) / tl.norm(X) < 1e-10)
    True
    """
    X, backend = prepare_array(tensor, "tensor", min_ndim=1)
    caps, eps, svd, rng = _common_args(rank, eps, svd, random_state, X.shape)
    with backend_for(backend):
        return TTTensor(_tt_svd(X, caps, eps, rng, svd))


def _check_shapes(matrix, in_shape, out_shape):
    in_shape = check_shape_tuple(in_shape, "in_shape")
    out_shape = check_shape_tuple(out_shape, "out_shape")
    if len(in_shape) != len(out_shape):
        raise ValueError("in_shape and out_shape must have the same length (one input and one "
                         f"output mode per TT core); got in_shape={in_shape} and "
                         f"out_shape={out_shape}")
    rows, cols = (int(s) for s in matrix.shape)
    if prod(out_shape) != rows:
        raise ValueError(f"out_shape must multiply to the matrix's number of rows {rows} "
                         f"(matrix is (out_features, in_features) = {(rows, cols)}); got "
                         f"out_shape={out_shape} with product {prod(out_shape)}")
    if prod(in_shape) != cols:
        raise ValueError(f"in_shape must multiply to the matrix's number of columns {cols} "
                         f"(matrix is (out_features, in_features) = {(rows, cols)}); got "
                         f"in_shape={in_shape} with product {prod(in_shape)}")
    return in_shape, out_shape


def tt_matrix(matrix, in_shape, out_shape, rank=None, eps=None, *, svd="auto",
              random_state=None):
    """TT-matrix decomposition of a ``(prod(out_shape), prod(in_shape))`` matrix.

    The matrix follows the ``torch.nn.Linear.weight`` layout
    ``(out_features, in_features)``, so ``tt_matrix(linear.weight, in_shape,
    out_shape)`` works directly. Row index ``(o_1, ..., o_d)`` and column
    index ``(i_1, ..., i_d)`` are both read in C order, and

    ``W[(o_1..o_d), (i_1..i_d)] ~= G_1[:, o_1, i_1, :] @ ... @ G_d[:, o_d, i_d, :]``

    with cores of shape ``(r_{k-1}, out_shape[k], in_shape[k], r_k)``. This is
    TensorLy's TTMatrix convention (left = rows, right = columns), so the
    result's ``.to_matrix()`` returns ``W`` itself (not its transpose).

    Parameters
    ----------
    matrix : 2-D array of shape (prod(out_shape), prod(in_shape))
    in_shape, out_shape : tuple of int
        Factorizations of the number of columns and rows, same length ``d``.
    rank, eps, svd, random_state
        As in :func:`tt`, for the ``d``-way tensor with modes
        ``out_shape[k] * in_shape[k]``; ``eps`` bounds the relative
        Frobenius error of the matrix.

    Returns
    -------
    tensorly.tt_matrix.TTMatrix

    Examples
    --------
    >>> import numpy as np
    >>> from tensornet.decomposition import tt_matrix
    >>> W = np.random.default_rng(0).standard_normal((6, 20))   # (out, in)
    >>> ttm = tt_matrix(W, in_shape=(4, 5), out_shape=(2, 3))
    >>> [c.shape for c in ttm.factors]
    [(1, 2, 4, 8), (8, 3, 5, 1)]
    >>> bool(np.allclose(ttm.to_matrix(), W))
    True
    """
    W, backend = prepare_array(matrix, "matrix", ndim=2, what="a (out_features, in_features) "
                               "matrix")
    in_shape, out_shape = _check_shapes(W, in_shape, out_shape)
    d = len(in_shape)
    merged = tuple(o * i for o, i in zip(out_shape, in_shape))
    caps, eps, svd, rng = _common_args(rank, eps, svd, random_state, merged)
    with backend_for(backend):
        if d == 1:
            T = tl.reshape(W, merged)
        else:
            T = tl.reshape(W, out_shape + in_shape)
            perm = [ax for k in range(d) for ax in (k, d + k)]
            T = tl.reshape(tl.transpose(T, perm), merged)
        cores = _tt_svd(T, caps, eps, rng, svd)
        cores = [tl.reshape(c, (c.shape[0], o, i, c.shape[-1]))
                 for c, o, i in zip(cores, out_shape, in_shape)]
        return TTMatrix(cores)


def _check_cores(tt_tensor):
    """Return (cores, backend, is_matrix, matrix_shapes) after validating a TT object."""
    is_matrix = isinstance(tt_tensor, TTMatrix)
    if isinstance(tt_tensor, (TTTensor, TTMatrix)):
        cores = list(tt_tensor.factors)
    elif isinstance(tt_tensor, (list, tuple)):
        cores = list(tt_tensor)
    else:
        raise TypeError("tt_tensor must be a TTTensor, a TTMatrix or a list of TT cores; got "
                        f"{_short(tt_tensor)} ({type(tt_tensor).__name__})")
    if not cores:
        raise ValueError("tt_tensor must have at least one core; got none")
    backends = {array_backend(c) for c in cores}
    if None in backends or len(backends) != 1:
        raise TypeError("tt_tensor cores must all be arrays of one library (NumPy, PyTorch or "
                        f"CuPy); got {[type(c).__name__ for c in cores]}")
    backend = backends.pop()
    ndims = {len(c.shape) for c in cores}
    if ndims == {4}:
        is_matrix = True
    elif ndims != {3}:
        raise ValueError("tt_tensor cores must all be 3-D (r_{k-1}, I_k, r_k) or all 4-D "
                         f"TT-matrix cores; got core shapes {[tuple(c.shape) for c in cores]}")
    prepared = []
    for k, c in enumerate(cores):
        c, _ = prepare_array(c, f"tt_tensor core {k}")
        prepared.append(c)
    cores = prepared
    if cores[0].shape[0] != 1 or cores[-1].shape[-1] != 1:
        raise ValueError("tt_tensor boundary ranks must be 1 (first core's first dimension "
                         "and last core's last dimension); got core shapes "
                         f"{[tuple(c.shape) for c in cores]}")
    for k in range(1, len(cores)):
        if cores[k].shape[0] != cores[k - 1].shape[-1]:
            raise ValueError(f"tt_tensor cores {k - 1} and {k} have mismatched ranks "
                             f"{cores[k - 1].shape[-1]} and {cores[k].shape[0]}; core shapes "
                             f"{[tuple(c.shape) for c in cores]}")
    dtypes = {c.dtype for c in cores}
    if len(dtypes) != 1:
        raise TypeError(f"tt_tensor cores must share one dtype; got {sorted(map(str, dtypes))}")
    mshapes = [tuple(c.shape[1:3]) for c in cores] if is_matrix else None
    return cores, backend, is_matrix, mshapes


def _round(cores, caps, eps, rng, method):
    d = len(cores)
    cores = list(cores)
    mach = dtype_eps(cores[0])
    # right-to-left orthogonalisation: cores 1..d-1 get orthonormal rows
    for k in range(d - 1, 0, -1):
        r0, n, r1 = (int(s) for s in cores[k].shape)
        M = tl.reshape(cores[k], (r0, n * r1))
        Q, R = tl.qr(tl.transpose(M))  # M^T = Q R, M = R^T Q^T
        rn = int(Q.shape[1])
        cores[k] = tl.reshape(tl.transpose(Q), (rn, n, r1))
        p0, pn, _ = (int(s) for s in cores[k - 1].shape)
        cores[k - 1] = tl.reshape(tl.matmul(tl.reshape(cores[k - 1], (p0 * pn, r0)),
                                            tl.transpose(R)), (p0, pn, rn))
    norm2 = sqnorm(cores[0])
    if d == 1:
        return cores
    delta2 = None if eps is None else (eps * eps) * norm2 / (d - 1)
    numerical = caps is None and eps is None
    for k in range(d - 1):
        r0, n, r1 = (int(s) for s in cores[k].shape)
        M = tl.reshape(cores[k], (r0 * n, r1))
        rtol = max(M.shape) * mach if numerical else None
        cap = None if caps is None else caps[k + 1]
        U, S, SVt = matrix_svd(M, rank_cap=cap, delta2=delta2, rtol=rtol, rng=rng,
                               method=method, norm2=norm2)
        r = int(U.shape[1])
        cores[k] = tl.reshape(U, (r0, n, r))
        q0, qn, q1 = (int(s) for s in cores[k + 1].shape)
        nxt = tl.matmul(SVt, tl.reshape(cores[k + 1], (q0, qn * q1)))
        cores[k + 1] = tl.reshape(nxt, (r, qn, q1))
    return cores


def tt_round(tt_tensor, rank=None, eps=None, *, svd="auto", random_state=None):
    """TT rounding: recompress a TT tensor (or TT matrix) to smaller ranks.

    Right-to-left QR orthogonalisation followed by left-to-right truncated
    SVDs of the cores (Oseledets, 2011); costs ``O(d n r^3)`` and never
    forms the full tensor.

    Parameters
    ----------
    tt_tensor : TTTensor, TTMatrix or list of cores
        3-D cores ``(r_{k-1}, I_k, r_k)`` or 4-D TT-matrix cores.
    rank : None, int, tuple or float
        Rank caps as in :func:`tt` (for a TT matrix, of the tensor with
        modes ``out_k * in_k``); a float is a fraction of the *full*
        tensor's entry count.
    eps : None or float in [0, 1)
        Relative error tolerance with respect to the TT tensor's norm. With
        neither ``rank`` nor ``eps`` the result has the numerical ranks
        (exact to working precision; removes redundant ranks).
    svd, random_state
        As in :func:`tt`.

    Returns
    -------
    TTTensor or TTMatrix
        Same class as the input (a list of 4-D cores gives a TTMatrix).

    Examples
    --------
    >>> import numpy as np
    >>> import tensorly as tl
    >>> from tensornet.decomposition import tt, tt_round
    >>> from tensornet.datasets import make_low_rank_tensor
    >>> X, _ = make_low_rank_tensor((5, 6, 7), 2, kind="tt", random_state=0)
    >>> t = tt(X)
    >>> doubled = tl.tt_tensor.TTTensor([np.concatenate([t[0], t[0]], axis=2),
    ...     np.concatenate([np.concatenate([t[1], 0 * t[1]], axis=2),
    ...                     np.concatenate([0 * t[1], t[1]], axis=2)], axis=0),
    ...     np.concatenate([t[2], t[2]], axis=0)])            # X + X with ranks 4
    >>> doubled.rank
    (1, 4, 4, 1)
    >>> r = tt_round(doubled)
    >>> r.rank
    (1, 2, 2, 1)
    >>> bool(np.allclose(r.to_tensor(), 2 * X))
    True
    """
    cores, backend, is_matrix, mshapes = _check_cores(tt_tensor)
    if is_matrix:
        cores = [c.reshape(c.shape[0], c.shape[1] * c.shape[2], c.shape[3]) for c in cores]
    shape = tuple(int(c.shape[1]) for c in cores)
    caps, eps, svd, rng = _common_args(rank, eps, svd, random_state, shape)
    with backend_for(backend):
        out = _round(cores, caps, eps, rng, svd)
        if is_matrix:
            out = [tl.reshape(c, (c.shape[0], o, i, c.shape[-1]))
                   for c, (o, i) in zip(out, mshapes)]
            return TTMatrix(out)
        return TTTensor(out)
