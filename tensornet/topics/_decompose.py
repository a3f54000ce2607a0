"""Orthogonal decomposition of a small symmetric k x k x k tensor.

``T ≈ Σ_i λ_i u_i ⊗ u_i ⊗ u_i`` with orthonormal ``u_i`` (the whitened
third LDA moment). Two methods:

* :func:`tensor_power_method` -- the robust tensor power method of
  Anandkumar et al. (JMLR 2014, Alg. 1): for each component, several
  random restarts iterated together (one matrix product per step), keep
  the restart with the largest ``T(u, u, u)``, polish it, deflate.
* :func:`orthogonal_als` -- simultaneous power iteration with
  re-orthonormalisation of all k vectors each step (orthogonalised ALS for
  a symmetric tensor), with restarts; the run with the smallest residual wins.

Both run on the host in float64: the tensor has k^3 entries (k <= a few
hundred), so moving it to an accelerator would cost more than it saves.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DECOMPOSITIONS", "decomposition_residual", "orthogonal_als", "tensor_power_method"]


def _t_iuu(Tm: np.ndarray, U: np.ndarray) -> np.ndarray:
    """``T(I, u, u)`` for every column u of U (Tm is T unfolded to k x k^2)."""
    k, L = U.shape
    return Tm @ (U[:, None, :] * U[None, :, :]).reshape(k * k, L)


def _t_uuu(Tm: np.ndarray, U: np.ndarray) -> np.ndarray:
    return np.einsum("il,il->l", U, _t_iuu(Tm, U))


def decomposition_residual(T: np.ndarray, weights: np.ndarray, U: np.ndarray) -> float:
    """Relative Frobenius residual ``||T - Σ λ_i u_i^⊗3|| / ||T||``."""
    approx = np.einsum("r,ir,jr,kr->ijk", weights, U, U, U, optimize=True)
    norm = np.linalg.norm(T)
    return float(np.linalg.norm(T - approx) / norm) if norm > 0 else 0.0


#: power iterations given to every restart before the best one is chosen and polished
RESTART_ITERS = 15


def tensor_power_method(T: np.ndarray, n_components: int, n_restarts: int = 10,
                        max_iter: int = 100, tol: float = 1e-10,
                        rng: np.random.Generator | None = None):
    """Robust tensor power method with restarts and deflation.

    For each component: ``n_restarts`` random unit vectors take
    ``min(max_iter, 15)`` power steps ``u <- T(I, u, u) / ||T(I, u, u)||``
    together (one matrix product per step); the one with the largest
    ``T(u, u, u)`` is polished for up to ``max_iter`` more steps (until the
    largest change is below ``tol``), and ``λ u⊗u⊗u`` is subtracted.

    Returns
    -------
    weights : ndarray (n_components,)
        ``λ_i = T(u_i, u_i, u_i)`` on the deflated tensor, made non-negative
        by the sign of ``u_i``.
    U : ndarray (k, n_components)
    n_iter : int
        Power steps run in total (a step of all restarts counts once).
    """
    rng = np.random.default_rng(rng)
    k = T.shape[0]
    T = np.array(T, dtype=np.float64, copy=True)
    weights = np.zeros(n_components)
    U = np.zeros((k, n_components))
    total = 0
    for c in range(n_components):
        Tm = T.reshape(k, k * k)
        X = rng.standard_normal((k, n_restarts))
        X /= np.linalg.norm(X, axis=0, keepdims=True)
        for _ in range(min(max_iter, RESTART_ITERS)):
            Y = _t_iuu(Tm, X)
            norms = np.linalg.norm(Y, axis=0, keepdims=True)
            norms[norms == 0] = 1.0
            X = Y / norms
            total += 1
        u = X[:, int(np.argmax(_t_uuu(Tm, X)))]
        for _ in range(max_iter):  # polish the winner
            y = Tm @ np.kron(u, u)
            ny = np.linalg.norm(y)
            if ny == 0:
                break
            y /= ny
            total += 1
            done = np.max(np.abs(y - u)) < tol
            u = y
            if done:
                break
        lam = float(u @ (Tm @ np.kron(u, u)))
        if lam < 0:
            u, lam = -u, -lam
        weights[c] = lam
        U[:, c] = u
        T -= lam * u[:, None, None] * u[None, :, None] * u[None, None, :]
    return weights, U, total


def _als_steps(Tm, U, n_steps, tol):
    """Up to ``n_steps`` orthogonalised power steps on all columns; returns (U, steps, done).

    Stops when the largest change of an entry of ``U`` is below ``tol``, or when the
    objective ``Σ_i T(u_i, u_i, u_i)^2`` (for orthonormal ``U`` it is ``||T||^2`` minus
    the squared residual) no longer grows by more than ``tol`` relative to itself: on
    a noisy tensor with no exact orthogonal decomposition the columns creep on slowly
    long after the fit (and the topics) stopped changing.
    """
    steps = 0
    prev = None
    for _ in range(n_steps):
        Y = _t_iuu(Tm, U)
        obj = float(np.sum(np.einsum("il,il->l", U, Y) ** 2))
        if prev is not None and obj - prev <= tol * max(obj, 1e-300):
            return U, steps, True
        prev = obj
        Qn, Rn = np.linalg.qr(Y)
        Qn *= np.where(np.diag(Rn) < 0, -1.0, 1.0)[None, :]
        steps += 1
        done = np.max(np.abs(Qn - U)) < tol
        U = Qn
        if done:
            return U, steps, True
    return U, steps, False


def _als_restarts(Tm, U, n_steps):
    """``n_steps`` orthogonalised power steps of several restarts at once.

    ``U`` is (R, k, L): R orthonormal starts. Every step is one matrix product
    ``T_(1) [u ⊗ u]`` over all R L columns and a stacked QR. Returns the
    iterates and each restart's objective ``Σ_i T(u_i, u_i, u_i)^2``.
    """
    R, k, L = U.shape
    for _ in range(n_steps):
        Up = U.transpose(1, 0, 2)  # (k, R, L)
        KR = (Up[:, None] * Up[None, :]).reshape(k * k, R * L)
        Y = (Tm @ KR).reshape(k, R, L).transpose(1, 0, 2)
        Qn, Rn = np.linalg.qr(Y)
        Qn *= np.where(np.diagonal(Rn, axis1=1, axis2=2) < 0, -1.0, 1.0)[:, None, :]
        U = Qn
    Up = U.transpose(1, 0, 2)
    KR = (Up[:, None] * Up[None, :]).reshape(k * k, R * L)
    Y = (Tm @ KR).reshape(k, R, L).transpose(1, 0, 2)
    w = np.einsum("ril,ril->rl", U, Y)
    return U, (w ** 2).sum(1)


def _signed_weights(Tm, U):
    w = _t_uuu(Tm, U)
    sign = np.where(w < 0, -1.0, 1.0)
    return U * sign[None, :], w * sign


#: restarts of orthogonal ALS run together (one matrix product per step for the group)
RESTART_GROUP = 4


def orthogonal_als(T: np.ndarray, n_components: int, n_restarts: int = 10,
                   max_iter: int = 100, tol: float = 1e-10,
                   rng: np.random.Generator | None = None):
    """Orthogonalised simultaneous power iteration (orthogonal ALS) with restarts.

    Each step maps every column to ``T(I, u, u)`` and re-orthonormalises the
    columns by QR. Restarts (random orthonormal starts) run in groups of
    ``RESTART_GROUP``, each group iterated together for ``min(max_iter, 15)``
    steps (one matrix product per step for the whole group); after every
    group the best restart so far is the one with the largest
    ``Σ_i T(u_i, u_i, u_i)^2`` (for orthonormal columns, the smallest residual
    ``||T - Σ λ_i u_i^⊗3||``). Restarting stops early once a group fails to
    improve on the best by more than ``1e-6`` relative (the starts keep
    landing in the same optimum), or after ``n_restarts`` starts. The best
    restart then continues until its columns or its objective stop changing
    (``tol``), or ``max_iter`` steps in all. Same outputs as
    :func:`tensor_power_method`, ordered by decreasing weight.
    """
    rng = np.random.default_rng(rng)
    k = T.shape[0]
    T = np.asarray(T, dtype=np.float64)
    Tm = T.reshape(k, k * k)
    first = min(max_iter, RESTART_ITERS)
    # bound the k^2 x (group k) Khatri-Rao block of a group to about 64 MB
    group = int(max(1, min(RESTART_GROUP, 2**23 // max(k * k * n_components, 1))))
    best_U, best_obj, total, done_restarts = None, -np.inf, 0, 0
    while done_restarts < n_restarts:
        r = min(group, n_restarts - done_restarts)
        U0, _ = np.linalg.qr(rng.standard_normal((r, k, n_components)))
        U, obj = _als_restarts(Tm, U0, first)
        total += first
        done_restarts += r
        i = int(np.argmax(obj))
        improved = obj[i] > best_obj + 1e-6 * abs(obj[i])
        if obj[i] > best_obj:
            best_U, best_obj = U[i], float(obj[i])
        if not improved and done_restarts > r:
            break
    U = best_U
    if max_iter > first:
        U, steps, _ = _als_steps(Tm, U, max_iter - first, tol)
        total += steps
    U, w = _signed_weights(Tm, U)
    order = np.argsort(w)[::-1]
    return w[order], U[:, order], total


#: decomposition name -> function
DECOMPOSITIONS = {"power": tensor_power_method, "als": orthogonal_als}
