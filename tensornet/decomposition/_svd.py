"""Truncated and randomized SVDs, and left singular vectors of tensor unfoldings.

* :func:`randomized_range_finder` and :func:`randomized_svd` (Halko,
  Martinsson and Tropp, 2011): a Gaussian sketch of the column space of
  the taller side, ``n_power_iter`` power iterations re-orthonormalised
  with QR, then an exact SVD of the small projected matrix.
* ``matrix_svd`` picks a dense SVD, the randomized one or a Gram matrix
  by a flop model, and truncates by a rank cap and / or an absolute error
  budget.
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

#: Power iterations of the randomized route inside the decompositions: 4 keeps
#: the truncation error within about 0.1% of a dense SVD's even on flat spectra.
AUTO_POWER_ITER = 4
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


def _plan(m: int, n: int, cap, delta2, rtol, norm2, exact_gram: bool, method: str,
          gram_side: int | None = None, extra: float = 0.0) -> str:
    """Pick 'full', 'randomized' or 'gram' for a truncated SVD of an (m, n) matrix.

    A rough flop model: dense SVD ~ 6 m n k, randomized (4 power iterations)
    ~ 20 m n (cap + 10), Gram + eigh ~ s^2 * (m n / s) + 4 s^3 for the side
    ``s`` it is formed on. The Gram route squares the singular values, so it
    is only used when its precision is enough for the decision at hand: a
    fixed rank cap, or an error budget well above round-off (``exact_gram``
    says the Gram is accumulated in float64). ``extra`` is the cost of forming
    the matrix for the non-Gram routes (a permuted copy of a tensor).
    """
    k = min(m, n)
    if method == "full":
        return "full"
    if method == "randomized":
        return "randomized" if cap is not None and cap < k else "full"
    if m * n <= 4096:
        return "full"
    costs = {"full": 6.0 * m * n * k + extra}
    if cap is not None and cap < k:
        size = min(cap + 10, k)
        if 2 * size <= k:
            costs["randomized"] = 20.0 * m * n * size + extra
    side = k if gram_side is None else gram_side
    if side <= GRAM_MAX_ROWS and rtol is None:
        precise = delta2 is None or (exact_gram and norm2 is not None
                                     and delta2 >= 1e-10 * norm2)
        if precise:
            costs["gram"] = float(side) * m * n + 4.0 * side ** 3
    return min(costs, key=costs.get)


def matrix_svd(M, *, rank_cap=None, delta2=None, rtol=None, rng=None, method="auto",
               norm2=None):
    """Truncated SVD of a 2-D array: ``(U, S, SVt)`` with ``SVt = diag(S) @ Vt``.

    ``delta2`` is the absolute squared-error budget of the truncation; the
    energy outside the computed singular values (randomized route) is
    accounted from ``norm2 = ||M||_F^2``. The route (dense, randomized or a
    Gram matrix of its short side) is chosen by :func:`_plan`.
    """
    m, n = (int(v) for v in M.shape)
    exact = M.dtype == tl.float64
    if norm2 is None and delta2 is not None:
        norm2 = sqnorm(M)
    route = _plan(m, n, rank_cap, delta2, rtol, norm2, exact, method)
    rest2 = 0.0
    if route == "randomized":
        U, S, Vt = _randomized_svd(M, rank_cap, 10, AUTO_POWER_ITER, rng)
        SVt = S[:, None] * Vt
        S_host = tl.to_numpy(S).astype(np.float64)
        if delta2 is not None:
            rest2 = max(norm2 - float(np.sum(S_host ** 2)), 0.0)
    elif route == "gram":
        partial = rank_cap if (delta2 is None and rtol is None) else None
        Mt = tl.transpose(M)
        wide = m <= n
        lam, W = _eigh_desc(tl.matmul(M, Mt) if wide else tl.matmul(Mt, M), partial)
        S_host = np.sqrt(np.clip(tl.to_numpy(lam).astype(np.float64), 0.0, None))
        S = tl.sqrt(tl.clip(lam, 0.0, None))
        r = choose_rank(S_host, rank_cap, delta2, 0.0, rtol)
        W = W[:, :r]
        if wide:  # W holds left singular vectors
            return W, S[:r], tl.matmul(tl.transpose(W), M)
        # W holds right singular vectors: M W = U (S) up to rotation; a QR keeps U
        # exactly orthonormal and M W W^T = U (R W^T) exactly, with no division by S
        U, R = tl.qr(tl.matmul(M, W))
        return U, S[:r], tl.matmul(R, tl.transpose(W))
    else:
        U, S, Vt = tl.svd(M, full_matrices=False)
        SVt = S[:, None] * Vt
        S_host = tl.to_numpy(S).astype(np.float64)
    r = choose_rank(S_host, rank_cap, delta2, rest2, rtol)
    return U[:, :r], S[:r], SVt[:r]


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
             accurate=True, method="auto", norm2=None):
    """Leading left singular vectors ``U`` and values ``S`` of the mode-``mode`` unfolding.

    The Gram route never forms the unfolding; it is accumulated in float64
    for a float32 tensor when its eigenvalues decide a truncation
    (``accurate`` and ``delta2`` given). Other routes unfold (one copy for
    modes other than the first).
    """
    shape = tuple(int(s) for s in X.shape)
    I = shape[mode]
    Q = prod(shape) // I
    cap = None if rank_cap is None else min(rank_cap, I, Q)
    if I > Q:  # a tall unfolding: its short side is not the mode, decide on the matrix
        U, S, _ = matrix_svd(unfold(X, mode), rank_cap=cap, delta2=delta2, rtol=rtol,
                             rng=rng, method=method, norm2=norm2)
        return U, S
    low = X.dtype != tl.float64
    acc = tl.float64 if (accurate and low and delta2 is not None) else None
    if delta2 is not None and norm2 is None:
        norm2 = sqnorm(X)
    route = _plan(I, Q, cap, delta2, rtol, norm2, not low or acc is not None, method,
                  gram_side=I, extra=0.0 if mode == 0 else 4.0 * I * Q)
    if route == "gram":
        G = mode_gram(X, mode, acc)
        partial = cap if (delta2 is None and rtol is None) else None
        lam, V = _eigh_desc(G, partial)
        S_host = np.sqrt(np.clip(tl.to_numpy(lam).astype(np.float64), 0.0, None))
        r = choose_rank(S_host, cap, delta2, 0.0, rtol)
        U = V[:, :r]
        S = tl.sqrt(tl.clip(lam[:r], 0.0, None))
        if acc is not None:
            U, S = _cast(U, X.dtype), _cast(S, X.dtype)
        return U, S
    U, S, _ = matrix_svd(unfold(X, mode), rank_cap=cap, delta2=delta2, rtol=rtol, rng=rng,
                         method=route if route != "gram" else "full", norm2=norm2)
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
