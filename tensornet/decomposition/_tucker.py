"""Tucker decomposition: sequentially truncated HOSVD and HOOI.

* ``method='hosvd'``: ST-HOSVD (Vannieuwenhoven, Vandebril & Meerbergen,
  2012): modes are truncated one after the other, each SVD working on the
  tensor already shrunk by the previous modes. With ``eps`` each mode
  discards at most ``eps^2 ||T||^2 / N``, so the error is at most
  ``eps ||T||``.
* ``method='hooi'`` (default): higher-order orthogonal iteration started
  from ST-HOSVD. One sweep updates every mode's factor from the tensor
  projected on all other factors; a dimension tree shares those
  projections, so a sweep reads the full tensor twice instead of once per
  mode (plus once for the core, in TensorLy's loop). Modes kept at full
  size get an identity factor and are never touched.

Leading singular vectors come from a dense SVD for small unfoldings, a
randomized SVD when the rank is small compared with a large unfolding,
or a Gram matrix accumulated chunk by chunk for short modes; the input
is never copied to float64.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import tensorly as tl
from tensorly.tucker_tensor import TuckerTensor

from .._backend import array_backend, backend_for
from .._validation import _short, check_bool, check_float, check_int, check_option, \
    check_random_state
from ._common import check_eps, dtype_eps, prepare_array, prod, random_normal, \
    resolve_tucker_rank, _consistent_tucker
from ._svd import mode_svd, sqnorm, ttm

__all__ = ["tucker"]

logger = logging.getLogger(__name__)

_METHODS = ("hooi", "hosvd")
_INITS = ("svd", "random")
_SVD_METHODS = ("auto", "full", "randomized")


def _ctx(X):
    ctx = dict(tl.context(X))
    ctx.pop("requires_grad", None)
    return ctx


def _st_hosvd(X, ranks, eps, rng, method):
    """Sequentially truncated HOSVD; returns core, factors, ranks."""
    shape = tuple(int(s) for s in X.shape)
    N = len(shape)
    norm2 = sqnorm(X)
    delta2 = None if eps is None else (eps * eps) * norm2 / N
    numerical = ranks is None and eps is None
    mach = dtype_eps(X)
    factors = [None] * N
    Y = X
    # biggest expected reduction first (largest mode when ranks are unknown)
    if ranks is None:
        order = sorted(range(N), key=lambda k: -shape[k])
    else:
        order = sorted(range(N), key=lambda k: ranks[k] / shape[k])
    for k in order:
        cap = None if ranks is None else ranks[k]
        if cap is not None and cap == shape[k] and eps is None:
            factors[k] = tl.eye(shape[k], **_ctx(X))
            continue
        rtol = max(shape[k], prod(Y.shape) // shape[k]) * mach if numerical else None
        U, _ = mode_svd(Y, k, rank_cap=cap, delta2=delta2, rtol=rtol, rng=rng,
                        accurate=(delta2 is not None or numerical), method=method)
        if U.shape[1] == shape[k]:
            # nothing truncated: an identity factor is exact and keeps the core as it is
            factors[k] = tl.eye(shape[k], **_ctx(X))
            continue
        factors[k] = U
        Y = ttm(Y, U, k)
    if Y is X:
        Y = tl.copy(X)  # never hand the caller's array back as the core
    return Y, factors


def _random_orthonormal(rng, n, r, like):
    Q, _ = tl.qr(random_normal(rng, (n, r), like))
    return Q


def _hooi(X, core, factors, ranks, n_iter_max, tol, rng, method, verbose):
    shape = tuple(int(s) for s in X.shape)
    N = len(shape)
    active = [k for k in range(N) if ranks[k] < shape[k]]
    norm2 = sqnorm(X)
    norm = math.sqrt(norm2)
    errors = []
    if not active or n_iter_max == 0:
        if core is None:
            core = X
            for k in active:
                core = ttm(core, factors[k], k)
            if core is X:
                core = tl.copy(X)
        err = math.sqrt(max(norm2 - sqnorm(core), 0.0)) / norm if norm > 0 else 0.0
        return core, factors, [err]

    state = {}

    def contract(T, modes):
        for m in sorted(modes, key=lambda j: ranks[j] / shape[j]):
            T = ttm(T, factors[m], m)
        return T

    def visit(T, lo, hi):
        if lo == hi:
            k = active[lo]
            U, _ = mode_svd(T, k, rank_cap=ranks[k], rng=rng, accurate=False, method=method)
            if U.shape[1] < ranks[k]:  # pragma: no cover - guarded by rank resolution
                extra = _random_orthonormal(rng, shape[k], ranks[k] - U.shape[1], T)
                U = tl.concatenate([U, extra], axis=1)
            factors[k] = U
            if lo == len(active) - 1:
                state["core"] = ttm(T, U, k)
            return
        mid = (lo + hi) // 2
        TL = contract(T, active[mid + 1:hi + 1])
        visit(TL, lo, mid)
        del TL
        TR = contract(T, active[lo:mid + 1])
        visit(TR, mid + 1, hi)

    for it in range(n_iter_max):
        visit(X, 0, len(active) - 1)
        core = state.pop("core")
        err = math.sqrt(max(norm2 - sqnorm(core), 0.0)) / norm if norm > 0 else 0.0
        errors.append(err)
        (logger.info if verbose else logger.debug)("tucker sweep %d: relative error %.3e",
                                                   it + 1, err)
        if tol > 0 and it >= 1 and abs(errors[-2] - errors[-1]) < tol:
            break
    return core, factors, errors


def _check_init(init, shape, ranks, backend):
    if isinstance(init, str):
        return check_option(init, "init", _INITS)
    if isinstance(init, TuckerTensor) or (isinstance(init, (tuple, list)) and len(init) == 2):
        try:
            core, factors = init
            factors = list(factors)
        except (TypeError, ValueError):
            raise TypeError("init must be 'svd', 'random' or a TuckerTensor; got "
                            f"{_short(init)}") from None
        if len(factors) != len(shape):
            raise ValueError(f"init must have one factor per mode ({len(shape)}); got "
                             f"{len(factors)}")
        for k, f in enumerate(factors):
            if array_backend(f) != backend:
                raise TypeError(f"init factors must be {backend!r} arrays like the tensor; "
                                f"factor {k} is {type(f).__name__}")
            if f.shape[0] != shape[k] or (ranks is not None and f.shape[1] != ranks[k]):
                want = (shape[k], ranks[k] if ranks is not None else "r")
                raise ValueError(f"init factor {k} must have shape {want}; got "
                                 f"{tuple(f.shape)}")
        return factors
    raise TypeError(f"init must be 'svd', 'random' or a TuckerTensor; got {_short(init)} "
                    f"({type(init).__name__})")


def tucker(tensor, rank=None, *, method="hooi", eps=None, init="svd", n_iter_max=100,
           tol=1e-8, svd="auto", random_state=None, verbose=False, return_errors=False):
    """Tucker decomposition: ``tensor ~= core x_1 U_1 x_2 U_2 ... x_N U_N``.

    Parameters
    ----------
    tensor : array of order >= 2
        NumPy array, PyTorch tensor (CPU or CUDA) or CuPy array, finite.
    rank : None, int, tuple or float
        Multilinear rank. An int caps every mode (clipped to what each mode
        allows, ``min(I_k, prod_{j != k} I_j)``); a tuple gives one rank per
        mode, each at most that maximum; a float in (0, 1] scales all modes
        alike to the largest ranks whose parameter count (core + factors)
        fits that fraction of ``prod(shape)``. A rank above the product of
        the other ranks is reduced to it (the extra columns could never be
        used).
    method : {'hooi', 'hosvd'}, default 'hooi'
        ``'hosvd'``: sequentially truncated HOSVD only. ``'hooi'``: then
        higher-order orthogonal iteration at the chosen ranks.
    eps : None or float in [0, 1)
        Relative error tolerance deciding the ranks (with ``rank`` as a cap):
        each mode discards at most ``eps^2 ||T||^2 / N``, so the HOSVD is
        within ``eps ||T||`` and HOOI can only improve on it. With neither
        ``rank`` nor ``eps`` the ranks are the numerical ranks.
    init : {'svd', 'random'} or TuckerTensor, default 'svd'
        Starting point of HOOI (ignored by ``'hosvd'``): ST-HOSVD, random
        orthonormal factors, or the factors of a given TuckerTensor
        (re-orthonormalised).
    n_iter_max : int, default 100
        Maximum HOOI sweeps.
    tol : float, default 1e-8
        Stop when the relative error changes by less than ``tol``; 0 runs
        all sweeps.
    svd : {'auto', 'full', 'randomized'}, default 'auto'
        How leading singular vectors are computed (see
        :func:`tensornet.decomposition.tt`).
    random_state : None, int or numpy.random.Generator
    verbose : bool, default False
        Log each sweep's error at INFO level.
    return_errors : bool, default False
        Also return the relative error after each sweep.

    Returns
    -------
    tensorly.tucker_tensor.TuckerTensor
        ``(core, factors)`` with orthonormal factors of shape
        ``(I_k, rank_k)``; arrays of the input's type, dtype and device.
    errors : list of float
        Only with ``return_errors``.

    Examples
    --------
    >>> import tensorly as tl
    >>> from tensornet.datasets import make_low_rank_tensor
    >>> from tensornet.decomposition import tucker
    >>> X, _ = make_low_rank_tensor((10, 11, 12), (2, 3, 4), kind="tucker", random_state=0)
    >>> est = tucker(X, (2, 3, 4))
    >>> est.rank
    (2, 3, 4)
    >>> bool(tl.norm(est.to_tensor() - X) / tl.norm(X) < 1e-10)
    True
    """
    X, backend = prepare_array(tensor, "tensor", min_ndim=2, what="Tucker needs a tensor of "
                               "order >= 2")
    shape = tuple(int(s) for s in X.shape)
    ranks = resolve_tucker_rank(shape, rank)
    method = check_option(method, "method", _METHODS)
    eps = check_eps(eps)
    n_iter_max = check_int(n_iter_max, "n_iter_max", min_value=0)
    tol = check_float(tol, "tol", min_value=0.0)
    svd = check_option(svd, "svd", _SVD_METHODS)
    verbose = check_bool(verbose, "verbose")
    return_errors = check_bool(return_errors, "return_errors")
    init_spec = _check_init(init, shape, ranks, backend)
    if isinstance(init_spec, list) and ranks is None and method == "hooi":
        ranks = resolve_tucker_rank(shape, tuple(int(f.shape[1]) for f in init_spec))
    rng = check_random_state(random_state)

    with backend_for(backend):
        if method == "hosvd" or isinstance(init_spec, str) and init_spec == "svd" \
                or ranks is None:
            core, factors = _st_hosvd(X, ranks, eps, rng, svd)
            ranks = tuple(int(f.shape[1]) for f in factors)
        if method == "hosvd":
            norm2 = sqnorm(X)
            err = math.sqrt(max(norm2 - sqnorm(core), 0.0) / norm2) if norm2 > 0 else 0.0
            errors = [err]
        else:
            if isinstance(init_spec, list):
                factors = []
                for f in init_spec:
                    f = f if f.dtype == X.dtype else tl.tensor(f, dtype=X.dtype)
                    factors.append(tl.qr(f)[0])
                core = None
            elif init_spec == "random":
                factors = [tl.eye(s, **_ctx(X)) if r == s else
                           _random_orthonormal(rng, s, r, X) for s, r in zip(shape, ranks)]
                core = None
            # HOOI at fixed ranks; modes at full size keep identity factors
            for k in range(len(shape)):
                if ranks[k] == shape[k]:
                    factors[k] = tl.eye(shape[k], **_ctx(X))
            core = None
            core, factors, errors = _hooi(X, core, factors, ranks, n_iter_max, tol, rng,
                                          svd, verbose)
        result = TuckerTensor((core, factors))
    if return_errors:
        return result, errors
    return result
