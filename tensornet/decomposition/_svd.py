"""Truncated and randomized SVDs, and left singular vectors of tensor unfoldings.

* :func:`randomized_range_finder` and :func:`randomized_svd` (Halko,
  Martinsson and Tropp, 2011): a Gaussian sketch of the column space of
  the taller side, ``n_power_iter`` power iterations re-orthonormalised
  with QR, then an exact SVD of the small projected matrix.
* ``matrix_svd`` picks between a dense SVD and the randomized one, and
  truncates by a rank cap and / or an absolute error budget.
* ``mode_svd`` gives the leading left singular vectors of a mode-``k``
  unfolding without forming it when that would be large: for small modes
  it accumulates the Gram matrix ``X_(k) X_(k)^T`` chunk by chunk.

All arithmetic runs on the input's backend and dtype (the Gram matrix of
a float32 tensor is accumulated in float64 when its eigenvalues decide a
truncation).
"""

from __future__ import annotations

import logging
import math

import numpy as np
import tensorly as tl

from .._backend import array_backend, backend_for
from .._validation import check_int, check_random_state
from ._common import dtype_eps, prepare_array, prod, random_normal, to_float

__all__ = ["randomized_range_finder", "randomized_svd"]

logger = logging.getLogger(__name__)

#: Matrices with at most this many entries always get a dense SVD.
SMALL_SVD = 1 << 20
#: Mode unfoldings with at most this many rows may use a Gram matrix.
GRAM_MAX_ROWS = 4096
#: Elements per chunk when a Gram matrix is accumulated.
GRAM_CHUNK = 1 << 22


# --------------------------------------------------------------------------- randomized
def _range_finder(A, size: int, n_power_iter: int, rng):
    """Orthonormal (m, size) basis approximately spanning the range of A (m, n)."""
    omega = random_normal(rng, (A.shape[1], size), A)
    Q, _ = tl.qr(tl.matmul(A, omega))
    At = tl.transpose(A)
    for _ in range(n_power_iter):
        Z, _ = tl.qr(tl.matmul(At, Q))
        Q, _ = tl.qr(tl.matmul(A, Z))
    return Q


def _randomized_svd(M, rank: int, n_oversamples: int, n_power_iter: int, rng):
    m, n = M.shape
    # sketch the column space of the taller orientation: the Gaussian test
    # matrix then lives on the short side and stays small
    transpose = m < n
    A = tl.transpose(M) if transpose else M
    short = min(m, n)
    size = min(rank + n_oversamples, short)
    Q = _range_finder(A, size, n_power_iter, rng)
    B = tl.matmul(tl.transpose(Q), A)  # (size, short)
    Ub, S, Vt = tl.svd(B, full_matrices=False)
    U = tl.matmul(Q, Ub)
    U, S, Vt = U[:, :rank], S[:rank], Vt[:rank]
    if transpose:
        return tl.transpose(Vt), S, tl.transpose(U)
    return U, S, Vt


def randomized_range_finder(matrix, size, n_power_iter=2, random_state=None):
    """Orthonormal basis of an approximate range of ``matrix`` (randomized).

    Parameters
    ----------
    matrix : array of shape (m, n)
        NumPy, PyTorch or CuPy matrix; the result has the same type, dtype and device.
    size : int
        Number of basis vectors, ``1 <= size <= min(m, n)``.
    n_power_iter : int, default 2
        Power iterations (each re-orthonormalised) that sharpen the basis
        when the spectrum decays slowly.
    random_state : None, int or numpy.random.Generator

    Returns
    -------
    Q : array of shape (m, size)
        Orthonormal columns.

    Examples
    --------
    >>> import numpy as np
    >>> from tensornet.decomposition import randomized_range_finder
    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((50, 3)) @ rng.standard_normal((3, 40))
    >>> Q = randomized_range_finder(A, 3, random_state=0)
    >>> bool(np.allclose(Q @ (Q.T @ A), A))
    True
    """
    matrix, backend = prepare_array(matrix, "matrix", ndim=2, what="a matrix")
    m, n = matrix.shape
    size = check_int(size, "size", min_value=1, max_value=min(m, n))
    n_power_iter = check_int(n_power_iter, "n_power_iter", min_value=0)
    rng = check_random_state(random_state)
    with backend_for(backend):
        return _range_finder(matrix, size, n_power_iter, rng)


def randomized_svd(matrix, rank, n_oversamples=10, n_power_iter=2, random_state=None):
    """Truncated SVD by a randomized range finder (Halko, Martinsson & Tropp, 2011).

    ``matrix ~= U @ diag(S) @ Vt`` with ``rank`` singular triplets. The
    Gaussian sketch is taken on the short side of the matrix, so the extra
    memory is ``O((m + n) * (rank + n_oversamples))``.

    Parameters
    ----------
    matrix : array of shape (m, n)
        NumPy, PyTorch or CuPy matrix; results keep its type, dtype and device.
    rank : int
        Number of singular triplets, ``1 <= rank <= min(m, n)``.
    n_oversamples : int, default 10
        Extra sketch columns.
    n_power_iter : int, default 2
        Power iterations.
    random_state : None, int or numpy.random.Generator

    Returns
    -------
    U : array of shape (m, rank)
    S : array of shape (rank,)
        Singular values in decreasing order.
    Vt : array of shape (rank, n)

    Examples
    --------
    >>> import numpy as np
    >>> from tensornet.decomposition import randomized_svd
    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((60, 5)) @ rng.standard_normal((5, 80))
    >>> U, S, Vt = randomized_svd(A, 5, random_state=0)
    >>> U.shape, S.shape, Vt.shape
    ((60, 5), (5,), (5, 80))
    >>> bool(np.allclose(U * S @ Vt, A))
    True
    """
    matrix, backend = prepare_array(matrix, "matrix", ndim=2, what="a matrix")
    m, n = matrix.shape
    rank = check_int(rank, "rank", min_value=1, max_value=min(m, n))
    n_oversamples = check_int(n_oversamples, "n_oversamples", min_value=0)
    n_power_iter = check_int(n_power_iter, "n_power_iter", min_value=0)
    rng = check_random_state(random_state)
    with backend_for(backend):
        return _randomized_svd(matrix, rank, n_oversamples, n_power_iter, rng)


# --------------------------------------------------------------------------- truncation
def choose_rank(S_host: np.ndarray, rank_cap: int | None, delta2: float | None,
                rest2: float = 0.0, rtol: float | None = None) -> int:
    """Smallest rank whose discarded energy fits ``delta2``, capped by ``rank_cap``.

    ``S_host`` are the computed singular values (host, decreasing), ``rest2``
    the energy outside them (0 when the spectrum is complete). ``rtol``
    drops singular values below ``rtol * S[0]`` (numerical rank). At least
    one singular value is always kept.
    """
    k = len(S_host)
    r = k if rank_cap is None else min(rank_cap, k)
    if rtol is not None and k:
        r = min(r, max(1, int(np.count_nonzero(S_host > rtol * S_host[0]))))
    if delta2 is not None and k:
        s2 = np.asarray(S_host, dtype=np.float64) ** 2
        # tail[j] = energy discarded when keeping j values
        tail = np.concatenate([np.cumsum(s2[::-1])[::-1], [0.0]]) + max(rest2, 0.0)
        ok = np.nonzero(tail <= delta2)[0]
        r_eps = int(ok[0]) if len(ok) else k
        r = min(r, max(1, r_eps))
    return max(1, r)


def _use_randomized(m: int, n: int, rank_cap: int | None, method: str,
                    n_oversamples: int = 10) -> bool:
    if method == "randomized":
        return rank_cap is not None and rank_cap < min(m, n)
    if method == "full" or rank_cap is None:
        return False
    return m * n > SMALL_SVD and 4 * (rank_cap + n_oversamples) <= min(m, n)


def matrix_svd(M, *, rank_cap=None, delta2=None, rtol=None, rng=None, method="auto",
               norm2=None):
    """Truncated SVD of a 2-D array: ``(U, S, Vt)`` with the chosen rank.

    ``delta2`` is the absolute squared-error budget of the truncation.
    With the randomized method the energy outside the sketch is accounted
    from ``norm2 = ||M||_F^2`` (computed when not given).
    """
    m, n = M.shape
    if _use_randomized(m, n, rank_cap, method):
        U, S, Vt = _randomized_svd(M, rank_cap, 10, 2, rng)
        S_host = tl.to_numpy(S).astype(np.float64)
        rest2 = 0.0
        if delta2 is not None:
            if norm2 is None:
                norm2 = sqnorm(M)
            rest2 = max(norm2 - float(np.sum(S_host ** 2)), 0.0)
    else:
        U, S, Vt = tl.svd(M, full_matrices=False)
        S_host = tl.to_numpy(S).astype(np.float64)
        rest2 = 0.0
    r = choose_rank(S_host, rank_cap, delta2, rest2, rtol)
    return U[:, :r], S[:r], Vt[:r]


# --------------------------------------------------------------------------- unfoldings
def sqnorm(X) -> float:
    """Squared Frobenius norm as a Python float, without a temporary copy."""
    v = tl.reshape(X, (-1,))
    return to_float(tl.dot(v, v))


def unfold(X, mode: int):
    """Mode-``mode`` unfolding (rows = that mode), a view for mode 0, else one copy."""
    if mode == 0:
        return tl.reshape(X, (X.shape[0], -1))
    return tl.reshape(tl.moveaxis(X, mode, 0), (X.shape[mode], -1))


def mode_gram(X, mode: int, acc_dtype=None):
    """``X_(mode) @ X_(mode)^T`` without forming the unfolding (bounded extra memory).

    With ``acc_dtype`` the products are accumulated in that dtype, casting
    one bounded chunk of the tensor at a time.
    """
    shape = tuple(X.shape)
    I = shape[mode]
    A = prod(shape[:mode])
    B = prod(shape[mode + 1:])

    def cast(Y):
        return Y if acc_dtype is None else _cast(Y, acc_dtype)

    if A == 1:
        X2 = tl.reshape(X, (I, B))
        if acc_dtype is None:
            return tl.matmul(X2, tl.transpose(X2))
        step = max(1, GRAM_CHUNK // I)
        G = None
        for b0 in range(0, B, step):
            Xc = cast(X2[:, b0:b0 + step])
            part = tl.matmul(Xc, tl.transpose(Xc))
            G = part if G is None else G + part
        return G
    if B == 1:
        X2 = tl.reshape(X, (A, I))
        if acc_dtype is None:
            return tl.matmul(tl.transpose(X2), X2)
        step = max(1, GRAM_CHUNK // I)
        G = None
        for a0 in range(0, A, step):
            Xc = cast(X2[a0:a0 + step])
            part = tl.matmul(tl.transpose(Xc), Xc)
            G = part if G is None else G + part
        return G
    X3 = tl.reshape(X, (A, I, B))
    chunk = max(1, GRAM_CHUNK // (I * B))
    G = None
    for a0 in range(0, A, chunk):
        Xc = X3[a0:a0 + chunk]
        Xc = cast(tl.reshape(tl.moveaxis(Xc, 1, 0), (I, -1)))
        part = tl.matmul(Xc, tl.transpose(Xc))
        G = part if G is None else G + part
    return G


def _cast(Y, dtype):
    if array_backend(Y) == "pytorch":
        return Y.to(dtype)
    return Y.astype(dtype)


def _eigh_desc(G, top=None):
    """Eigenpairs of a symmetric matrix in decreasing order; only the ``top`` largest if given.

    For host arrays (NumPy, or PyTorch on the CPU, viewed without a copy) a
    partial request uses LAPACK's MRRR driver through SciPy, which skips
    the eigenvectors that are not wanted; elsewhere the backend's full
    ``eigh`` runs and is sliced.
    """
    n = int(G.shape[0])
    backend = array_backend(G)
    on_host = backend == "numpy" or (backend == "pytorch" and G.device.type == "cpu")
    if top is not None and on_host and n >= 128 and top < n // 2:
        import scipy.linalg

        Gh = G if backend == "numpy" else G.numpy()
        lam, V = scipy.linalg.eigh(Gh, subset_by_index=[n - top, n - 1], driver="evr",
                                   check_finite=False)
        lam = np.ascontiguousarray(lam[::-1])
        V = np.ascontiguousarray(V[:, ::-1])
        if backend == "pytorch":
            import torch

            lam, V = torch.from_numpy(lam), torch.from_numpy(V)
        return lam, V
    lam, V = tl.eigh(G)
    lam = tl.flip(lam, axis=0)
    V = tl.flip(V, axis=1)
    if top is not None:
        lam, V = lam[:top], V[:, :top]
    return lam, V


def mode_svd(X, mode: int, *, rank_cap=None, delta2=None, rtol=None, rng=None,
             accurate=True, method="auto"):
    """Leading left singular vectors ``U`` and values ``S`` of the mode-``mode`` unfolding.

    ``accurate=False`` allows a Gram matrix in the input's own precision
    (good enough for initialisations); otherwise a Gram matrix of a float32
    tensor is accumulated in float64.
    """
    shape = tuple(X.shape)
    I = shape[mode]
    Q = prod(shape) // I
    size = I * Q
    cap = None if rank_cap is None else min(rank_cap, I, Q)
    if size <= SMALL_SVD or method == "full":
        U, S, _ = matrix_svd(unfold(X, mode), rank_cap=cap, delta2=delta2, rtol=rtol,
                             rng=rng, method="full")
        return U, S
    if _use_randomized(I, Q, cap, method) and delta2 is None:
        M = unfold(X, mode)
        U, S, _ = _randomized_svd(M, cap, 10, 2, rng)
        return U, S
    if I <= GRAM_MAX_ROWS:
        low_precision = X.dtype in (tl.float32,) or str(X.dtype).endswith("float16")
        acc = tl.float64 if (accurate and low_precision) else None
        G = mode_gram(X, mode, acc)
        partial = cap if (delta2 is None and rtol is None) else None
        lam, V = _eigh_desc(G, partial)
        lam_host = np.clip(tl.to_numpy(lam).astype(np.float64), 0.0, None)
        S_host = np.sqrt(lam_host)
        r = choose_rank(S_host, cap, delta2, 0.0, rtol)
        U = V[:, :r]
        S = tl.sqrt(tl.clip(lam[:r], 0.0, None))
        if acc is not None:
            U = _cast(U, X.dtype)
            S = _cast(S, X.dtype)
        return U, S
    M = unfold(X, mode)
    U, S, _ = matrix_svd(M, rank_cap=cap, delta2=delta2, rtol=rtol, rng=rng, method=method)
    return U, S


def ttm(X, U, mode: int, transpose: bool = True):
    """Mode product ``X x_mode U^T`` (``U`` is (I_mode, r)); ``transpose=False`` uses ``U``.

    Works on the C-order layout: a single GEMM for the first and last
    modes, a broadcast matrix product for middle modes with a long
    trailing part, and a permuted copy of the tensor only for middle modes
    followed by short trailing dimensions.
    """
    shape = tuple(X.shape)
    I = shape[mode]
    A = prod(shape[:mode])
    B = prod(shape[mode + 1:])
    Ut = tl.transpose(U) if transpose else U  # (r, I)
    r = Ut.shape[0]
    new_shape = shape[:mode] + (r,) + shape[mode + 1:]
    if A == 1:
        out = tl.matmul(Ut, tl.reshape(X, (I, B)))
    elif B == 1:
        out = tl.matmul(tl.reshape(X, (A, I)), tl.transpose(Ut))
    elif B >= 64:
        out = tl.matmul(Ut, tl.reshape(X, (A, I, B)))
    else:
        Xm = tl.moveaxis(tl.reshape(X, (A, I, B)), 1, 2)  # (A, B, I) view
        Y = tl.matmul(tl.reshape(Xm, (A * B, I)), tl.transpose(Ut))  # (A*B, r)
        out = tl.moveaxis(tl.reshape(Y, (A, B, r)), 2, 1)
    return tl.reshape(out, new_shape)
