"""CP (CANDECOMP / PARAFAC) decomposition by alternating least squares.

The expensive part of CP-ALS is the MTTKRP, ``X_(k) (A_N ⊙ ... ⊙ A_1)``
(all factors but ``A_k``), once per mode and sweep. Here a *dimension
tree* shares the work between modes:

* the modes are split into a left and a right half; the tensor is
  contracted once with the right-half factors (one GEMM over the C-order
  layout, no permuted copy of the tensor), and that partial result serves
  every left-half mode; then once with the freshly updated left-half
  factors for every right-half mode. A sweep therefore reads the tensor
  twice, whatever its order, instead of once per mode;
* inside each half the same split recurses on the small partial results,
  kept in an ``(rank, modes...)`` layout so each step is a batched
  matrix-vector product;
* a Khatri–Rao product of a block of modes is formed only when it is
  smaller than the intermediate it saves (e.g. the three 3-sized modes of
  a conv kernel); the full-size Khatri–Rao product of all other modes is
  never built for a tensor of order 3 and up.

Each mode's least-squares update multiplies the MTTKRP by the
pseudo-inverse of the Hadamard product of the other factors' Gram
matrices (eigen-decomposition with a relative cut-off, so rank-deficient
Grams do not blow up). Factors are kept with unit-norm columns and the
scale goes into ``weights``.

With ``nonnegative=True`` the per-mode update is HALS (hierarchical ALS,
Cichocki & Phan 2009): a projected coordinate update of one component at
a time using the same MTTKRP and Gram matrices.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import tensorly as tl
from tensorly.cp_tensor import CPTensor

from .._backend import array_backend, backend_for, ops_for
from .._validation import _short, check_bool, check_finite, check_float, check_int, \
    check_option, check_random_state
from ._common import contiguous, dtype_eps, from_host, prepare_array, prod, random_normal, \
    random_uniform, resolve_cp_rank, to_float
from ._svd import mode_svd, sqnorm

__all__ = ["cp"]

logger = logging.getLogger(__name__)

_INITS = ("svd", "random")


# --------------------------------------------------------------------------- the tree
def _best_split(shape, lo, hi):
    best, best_cost = lo, None
    for mid in range(lo, hi):
        cost = prod(shape[lo:mid + 1]) + prod(shape[mid + 1:hi + 1])
        if best_cost is None or cost < best_cost:
            best, best_cost = mid, cost
    return best


def _trailing_group(shape, lo, hi, mid):
    """First mode j of the trailing block j..hi contracted at once (KR when j < hi)."""
    size = prod(shape[lo:hi + 1])
    best, best_cost = hi, None
    for j in range(hi, mid, -1):
        pg = prod(shape[j:hi + 1])
        cost = (pg if j < hi else 0) + size // pg
        if best_cost is None or cost < best_cost:
            best, best_cost = j, cost
    return best


def _leading_group(shape, lo, hi, mid):
    """Last mode j of the leading block lo..j contracted at once (KR when j > lo)."""
    size = prod(shape[lo:hi + 1])
    best, best_cost = lo, None
    for j in range(lo, mid + 1):
        pg = prod(shape[lo:j + 1])
        cost = (pg if j > lo else 0) + size // pg
        if best_cost is None or cost < best_cost:
            best, best_cost = j, cost
    return best


class _Node:
    __slots__ = ("lo", "hi", "mid", "tj", "lj", "left", "right")


def _plan(shape, lo, hi):
    node = _Node()
    node.lo, node.hi = lo, hi
    if lo == hi:
        node.mid = None
        return node
    node.mid = mid = _best_split(shape, lo, hi)
    node.tj = _trailing_group(shape, lo, hi, mid)
    node.lj = _leading_group(shape, lo, hi, mid)
    node.left = _plan(shape, lo, mid)
    node.right = _plan(shape, mid + 1, hi)
    return node


def _kr_rows(Ft, modes):
    """Khatri–Rao product of factors ``modes`` in the (rank, prod sizes) layout, C order."""
    K = Ft[modes[0]]
    r = K.shape[0]
    for m in modes[1:]:
        K = tl.reshape(K[:, :, None] * Ft[m][:, None, :], (r, -1))
    return K


class _DimTree:
    """Executes CP-ALS sweeps over a dimension tree for a fixed tensor shape.

    Partial results are kept in a ``(rank, modes...)`` layout; every step is
    a matrix product with the rank as the batch dimension, written as
    ``factor_row @ block`` (the form BLAS and PyTorch run fastest for these
    batched matrix-vector products).
    """

    def __init__(self, shape, backend="numpy"):
        self.shape = tuple(int(s) for s in shape)
        self.root = _plan(self.shape, 0, len(self.shape) - 1)
        ops = ops_for(backend)
        self.mm, self.rs = ops.matmul, ops.reshape

    def sweep(self, X, Ft, on_leaf):
        self._visit(X, self.root, True, Ft, on_leaf)

    def _visit(self, T, node, root, Ft, on_leaf):
        if node.mid is None:
            on_leaf(node.lo, T)  # already (rank, I_k)
            return
        TL = self._trailing(T, node, root, Ft)
        self._visit(TL, node.left, False, Ft, on_leaf)
        del TL
        TR = self._leading(T, node, root, Ft)
        self._visit(TR, node.right, False, Ft, on_leaf)

    def _trailing(self, T, node, root, Ft):
        """Contract modes mid+1..hi of T; result (rank, I_lo..I_mid)."""
        mm, rs, s = self.mm, self.rs, self.shape
        lo, hi, mid, j = node.lo, node.hi, node.mid, node.tj
        pg = prod(s[j:hi + 1])
        pb = prod(s[lo:j])
        G = Ft[hi] if j == hi else _kr_rows(Ft, list(range(j, hi + 1)))
        r = G.shape[0]
        if root:
            out = mm(G, rs(T, (pb, pg)).T)  # (r, pb)
        else:
            out = rs(mm(G[:, None, :], rs(T, (r, pb, pg)).swapaxes(1, 2)), (r, pb))
        for m in range(j - 1, mid, -1):
            size = s[m]
            pb //= size
            out = rs(mm(Ft[m][:, None, :], rs(out, (r, pb, size)).swapaxes(1, 2)), (r, pb))
        return out  # (r, I_lo * ... * I_mid), C order

    def _leading(self, T, node, root, Ft):
        """Contract modes lo..mid of T; result (rank, I_mid+1..I_hi)."""
        mm, rs, s = self.mm, self.rs, self.shape
        lo, hi, mid, j = node.lo, node.hi, node.mid, node.lj
        pg = prod(s[lo:j + 1])
        pa = prod(s[j + 1:hi + 1])
        G = Ft[lo] if j == lo else _kr_rows(Ft, list(range(lo, j + 1)))
        r = G.shape[0]
        if root:
            out = mm(G, rs(T, (pg, pa)))  # (r, pa)
        else:
            out = rs(mm(G[:, None, :], rs(T, (r, pg, pa))), (r, pa))
        for m in range(j + 1, mid + 1):
            size = s[m]
            pa //= size
            out = rs(mm(Ft[m][:, None, :], rs(out, (r, size, pa))), (r, pa))
        return out  # (r, I_mid+1 * ... * I_hi), C order


# --------------------------------------------------------------------------- updates
def _pinv_psd(V, eps):
    """Pseudo-inverse of a symmetric positive semi-definite matrix by eigen-decomposition."""
    lam, Q = tl.eigh(V)
    cut = tl.max(tl.abs(lam)) * (V.shape[0] * eps * 10.0) + float(tl.finfo(V.dtype).tiny)
    inv = (lam > cut) / tl.clip(lam, cut, None)
    return tl.matmul(Q * inv[None, :], tl.transpose(Q))


def _spd_solve(V, Mt, eps):
    """``pinv(V) @ Mt`` for the symmetric PSD Gram product ``V``.

    A Cholesky solve when ``V`` is numerically positive definite (LAPACK
    ``potrf``/``potrs`` for host arrays, ``cholesky_ex``/``cholesky_solve``
    for PyTorch), otherwise -- rank-deficient or ill-conditioned Grams --
    an eigen-decomposition pseudo-inverse that drops the null space.
    """
    r = V.shape[0]
    limit = r * eps * 100.0
    backend = array_backend(V)
    if backend == "numpy":
        from scipy.linalg import lapack

        potrf, potrs = lapack.get_lapack_funcs(("potrf", "potrs"), (V,))
        c, info = potrf(V, lower=1, clean=0)
        if info == 0:
            d = np.diagonal(c).tolist()  # positive when the factorization succeeded
            if min(d) ** 2 > limit * max(d) ** 2:
                x, info = potrs(c, Mt, lower=1)
                if info == 0:
                    return x
    elif backend == "pytorch":
        import torch

        L, info = torch.linalg.cholesky_ex(V)
        if int(info) == 0:
            d = torch.diagonal(L).tolist()  # positive when the factorization succeeded
            if min(d) ** 2 > limit * max(d) ** 2:
                return torch.cholesky_solve(Mt, L)
    return tl.matmul(_pinv_psd(V, eps), Mt)


def _hadamard_except(G, k):
    V = None
    for j, g in enumerate(G):
        if j != k:
            V = g if V is None else V * g
    return V


def _row_norms(Bt):
    backend = array_backend(Bt)
    if backend == "pytorch":
        import torch

        return torch.linalg.vector_norm(Bt, dim=1)
    if backend == "numpy":
        return np.sqrt(np.einsum("ij,ij->i", Bt, Bt))
    return tl.sqrt(tl.sum(Bt * Bt, axis=1))


def _normalize_rows(Bt):
    """Rows scaled to unit norm (zero rows stay zero) and the norms."""
    norms = _row_norms(Bt)
    return Bt / tl.clip(norms, _TINY[Bt.dtype], None)[:, None], norms


class _Tiny(dict):
    def __missing__(self, dtype):
        value = self[dtype] = float(tl.finfo(dtype).tiny)
        return value


_TINY = _Tiny()


# --------------------------------------------------------------------------- init
def _init_factors(X, rank, init, rng, nonnegative, need_first):
    """Factors in the (rank, I_k) layout with unit rows, and weights."""
    shape = tuple(X.shape)
    Ft = []
    if isinstance(init, CPTensor):
        weights, factors = init
        w = tl.ones((rank,), **_ctx(X)) if weights is None else weights
        for f in factors:
            Ft.append(contiguous(tl.transpose(f)))
        if nonnegative:
            Ft = [tl.clip(f, 0.0, None) for f in Ft]
            w = tl.abs(w)
        for k in range(len(Ft)):
            Ft[k], n = _normalize_rows(Ft[k])
            w = w * n
        return Ft, w
    for k, size in enumerate(shape):
        if init == "svd" and (k > 0 or need_first):
            U, _ = mode_svd(X, k, rank_cap=min(rank, size), rng=rng, accurate=False)
            Uk = tl.transpose(U)  # (<= rank, I_k)
            if nonnegative:
                Uk = tl.abs(Uk)
            if Uk.shape[0] < rank:
                extra = random_normal(rng, (rank - Uk.shape[0], size), X)
                if nonnegative:
                    extra = tl.abs(extra)
                Uk = tl.concatenate([Uk, extra], axis=0)
            Fk = contiguous(Uk)
        elif nonnegative:
            Fk = random_uniform(rng, (rank, size), X)
        else:
            Fk = random_normal(rng, (rank, size), X)
        Fk, _ = _normalize_rows(Fk)
        Ft.append(Fk)
    return Ft, tl.ones((rank,), **_ctx(X))


def _ctx(X):
    ctx = dict(tl.context(X))
    ctx.pop("requires_grad", None)
    return ctx


def _check_init(init, shape, rank, backend):
    if isinstance(init, str):
        return check_option(init, "init", _INITS)
    if isinstance(init, CPTensor) or (isinstance(init, (tuple, list)) and len(init) == 2):
        try:
            weights, factors = init
            factors = list(factors)
        except (TypeError, ValueError):
            raise TypeError("init must be 'svd', 'random' or a CPTensor / (weights, factors) "
                            f"pair; got {_short(init)}") from None
        if len(factors) != len(shape):
            raise ValueError(f"init must have one factor per mode of the tensor ({len(shape)}); "
                             f"got {len(factors)} factors")
        for k, f in enumerate(factors):
            if array_backend(f) != backend:
                raise TypeError(f"init factors must be {backend!r} arrays like the tensor; "
                                f"factor {k} is {type(f).__name__}")
            check_finite(f, f"init factor {k}")
            if tuple(f.shape) != (shape[k], rank):
                raise ValueError(f"init factor {k} must have shape {(shape[k], rank)} for a "
                                 f"tensor of shape {tuple(shape)} and rank={rank}; got "
                                 f"{tuple(f.shape)}")
        if weights is not None:
            if array_backend(weights) != backend or tuple(weights.shape) != (rank,):
                raise ValueError(f"init weights must be a {backend!r} array of shape "
                                 f"({rank},); got {_short(weights)}")
        return ("cp", weights, factors)
    raise TypeError("init must be 'svd', 'random' or a CPTensor; got "
                    f"{_short(init)} ({type(init).__name__})")


# --------------------------------------------------------------------------- main
def cp(tensor, rank, *, init="svd", n_iter_max=100, tol=1e-8, random_state=None,
       nonnegative=False, verbose=False, return_errors=False):
    """CP decomposition by alternating least squares (ALS) or non-negative HALS.

    ``tensor ~= sum_r weights[r] * factors[0][:, r] ⊗ ... ⊗ factors[-1][:, r]``

    Each sweep reads the tensor twice (a dimension tree shares the MTTKRP
    work between modes; no full-size Khatri–Rao product and no permuted
    copy of the tensor is made). Runs on the input's backend, device and
    dtype (float32 stays float32).

    Parameters
    ----------
    tensor : array of order >= 2
        NumPy array, PyTorch tensor (CPU or CUDA) or CuPy array, finite.
    rank : int or float
        Number of components, ``>= 1``. Ranks above the largest mode size
        are allowed (a CP rank can exceed every dimension), up to
        ``min_k prod_{j != k} I_j``, a bound no tensor of this shape needs
        to exceed. A float in (0, 1] picks the largest rank whose parameter
        count ``rank * (sum(shape) + 1)`` fits in that fraction of
        ``prod(shape)`` (at least 1).
    init : {'svd', 'random'} or CPTensor, default 'svd'
        ``'svd'``: leading left singular vectors of each unfolding (padded
        with random columns where a mode is smaller than ``rank``;
        randomized SVD or a Gram matrix for large unfoldings, so the
        unfolding is never decomposed densely when that would be large).
        ``'random'``: Gaussian factors (uniform when ``nonnegative``).
        A CPTensor (or ``(weights, factors)``) of matching shapes on the
        tensor's backend starts from those factors.
    n_iter_max : int, default 100
        Maximum number of sweeps.
    tol : float, default 1e-8
        Stop when the relative error changes by less than ``tol`` between
        two sweeps; ``0`` runs all ``n_iter_max`` sweeps.
    random_state : None, int or numpy.random.Generator
        Seed for the random parts of the initialisation.
    nonnegative : bool, default False
        Constrain all factors (and weights) to be non-negative (HALS updates).
    verbose : bool, default False
        Log the error of each sweep at INFO level (``logging``).
    return_errors : bool, default False
        Also return the list of relative errors, one per sweep.

    Returns
    -------
    cp_tensor : tensorly.cp_tensor.CPTensor
        ``(weights, factors)``, factors with unit-norm columns, arrays of the
        input's type, dtype and device.
    errors : list of float
        Only when ``return_errors``. Computed from norms and inner products
        (no reconstruction), so values below about ``sqrt(machine eps)``
        (1e-8 in float64, 3e-4 in float32) are at round-off level.

    Raises
    ------
    ValueError
        Bad ``rank``, ``init`` or iteration settings, non-finite values,
        fewer than 2 dimensions.

    Examples
    --------
    >>> import tensorly as tl
    >>> from tensornet.datasets import make_low_rank_tensor
    >>> from tensornet.decomposition import cp
    >>> X, _ = make_low_rank_tensor((10, 11, 12), 3, kind="cp", random_state=0)
    >>> est = cp(X, 3, random_state=0)
    >>> [f.shape for f in est.factors]
    [(10, 3), (11, 3), (12, 3)]
    >>> err = tl.norm(est.to_tensor() - X) / tl.norm(X)
    >>> bool(err < 1e-6)
    True
    """
    X, backend = prepare_array(tensor, "tensor", min_ndim=2, what="CP needs a tensor of "
                               "order >= 2")
    shape = tuple(int(s) for s in X.shape)
    rank = resolve_cp_rank(shape, rank)
    n_iter_max = check_int(n_iter_max, "n_iter_max", min_value=0)
    tol = check_float(tol, "tol", min_value=0.0)
    nonnegative = check_bool(nonnegative, "nonnegative")
    verbose = check_bool(verbose, "verbose")
    return_errors = check_bool(return_errors, "return_errors")
    init_spec = _check_init(init, shape, rank, backend)
    rng = check_random_state(random_state)

    with backend_for(backend):
        if isinstance(init_spec, tuple):
            _, w0, f0 = init_spec
            init_obj = CPTensor((w0 if w0 is not None else tl.ones((rank,), **_ctx(X)),
                                 [tl.tensor(f, dtype=X.dtype) if f.dtype != X.dtype else f
                                  for f in f0]))
        else:
            init_obj = init_spec
        # ALS overwrites mode 0 before reading it: its SVD is skipped unless HALS
        # (which starts from it) runs or the initialisation itself is returned
        Ft, w = _init_factors(X, rank, init_obj, rng, nonnegative,
                              need_first=nonnegative or n_iter_max == 0)
        Ft, w, errors = _als(X, Ft, w, n_iter_max, tol, nonnegative, verbose,
                             need_errors=return_errors)
        factors = [contiguous(tl.transpose(f)) for f in Ft]
        result = CPTensor((w, factors))
    if return_errors:
        return result, errors
    return result


def _als(X, Ft, w, n_iter_max, tol, nonnegative, verbose, need_errors=True):
    shape = tuple(X.shape)
    N = len(shape)
    r = Ft[0].shape[0]
    eps = dtype_eps(X)
    tree = _DimTree(shape, array_backend(X))
    norm_x2 = sqnorm(X)
    norm_x = math.sqrt(norm_x2)
    G = [tl.matmul(f, tl.transpose(f)) for f in Ft]
    state = {"w": w, "last": None, "first": True}

    def on_leaf_als(k, Mt):
        V = _hadamard_except(G, k)
        Bt = contiguous(_spd_solve(V, Mt, eps))  # LAPACK hands back column-major
        Ft[k], state["w"] = _normalize_rows(Bt)
        G[k] = tl.matmul(Ft[k], tl.transpose(Ft[k]))
        if k == N - 1:
            state["last"] = (Mt, V)

    def on_leaf_hals(k, Mt):
        V = _hadamard_except(G, k)
        if state["first"]:
            # the first update sets the overall scale: projected least squares
            Bt = contiguous(tl.clip(_spd_solve(V, Mt, eps), 0.0, None))
            state["first"] = False
        else:
            Bt = Ft[k] * state["w"][:, None]
            diag = tl.to_numpy(tl.diag(V))
            for c in range(r):
                vcc = float(diag[c])
                if vcc <= eps:
                    continue
                row = Bt[c] + (Mt[c] - tl.matmul(V[c], Bt)) / vcc
                Bt[c] = tl.clip(row, 0.0, None)
        Bt_n, norms = _normalize_rows(Bt)
        # a component that died gets a flat unit profile (weight 0) so Grams stay defined
        dead = norms == 0
        if bool(tl.any(dead)):
            flat = tl.ones((1, Bt.shape[1]), **_ctx(Bt)) / math.sqrt(Bt.shape[1])
            Bt_n = Bt_n + dead[:, None] * flat
        Ft[k], state["w"] = Bt_n, norms
        G[k] = tl.matmul(Ft[k], tl.transpose(Ft[k]))
        if k == N - 1:
            state["last"] = (Mt, V)

    on_leaf = on_leaf_hals if nonnegative else on_leaf_als
    errors = []
    for it in range(n_iter_max):
        tree.sweep(X, Ft, on_leaf)
        if not (tol > 0 or verbose or need_errors or logger.isEnabledFor(logging.DEBUG)):
            continue  # nothing reads the error: skip its reductions (and device syncs)
        Mt, V = state["last"]
        wv = state["w"]
        inner = to_float(tl.sum(wv * tl.sum(Mt * Ft[N - 1], axis=1)))
        gram = V * G[N - 1]
        model2 = to_float(tl.sum(wv[:, None] * gram * wv[None, :]))
        err2 = max(norm_x2 - 2.0 * inner + model2, 0.0)
        err = math.sqrt(err2) / norm_x if norm_x > 0 else 0.0
        errors.append(err)
        if verbose:
            logger.info("cp sweep %d: relative error %.3e", it + 1, err)
        else:
            logger.debug("cp sweep %d: relative error %.3e", it + 1, err)
        if tol > 0 and it >= 1 and abs(errors[-2] - errors[-1]) < tol:
            break
    return Ft, state["w"], errors
