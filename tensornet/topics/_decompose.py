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
    """Up to ``n_steps`` orthogonalised power steps on all columns; returns (U, steps, done)."""
    steps = 0
    for _ in range(n_steps):
        Qn, Rn = np.linalg.qr(_t_iuu(Tm, U))
        Qn *= np.where(np.diag(Rn) < 0, -1.0, 1.0)[None, :]
        steps += 1
        done = np.max(np.abs(Qn - U)) < tol
        U = Qn
        if done:
            return U, steps, True
    return U, steps, False


def _signed_weights(Tm, U):
    w = _t_uuu(Tm, U)
    sign = np.where(w < 0, -1.0, 1.0)
    return U * sign[None, :], w * sign


def orthogonal_als(T: np.ndarray, n_components: int, n_restarts: int = 10,
                   max_iter: int = 100, tol: float = 1e-10,
                   rng: np.random.Generator | None = None):
    """Orthogonalised simultaneous power iteration (orthogonal ALS) with restarts.

    Each step maps every column to ``T(I, u, u)`` and re-orthonormalises the
    columns by QR. Every restart (random orthonormal start) takes
    ``min(max_iter, 15)`` steps; the one with the smallest residual
    ``||T - Σ λ_i u_i^⊗3||`` continues to convergence (``tol``) or
    ``max_iter`` steps in all. Same outputs as :func:`tensor_power_method`,
    ordered by decreasing weight.
    """
    rng = np.random.default_rng(rng)
    k = T.shape[0]
    T = np.asarray(T, dtype=np.float64)
    Tm = T.reshape(k, k * k)
    best = None
    total = 0
    first = min(max_iter, RESTART_ITERS)
    for _ in range(n_restarts):
        U, _ = np.linalg.qr(rng.standard_normal((k, n_components)))
        U, steps, done = _als_steps(Tm, U, first, tol)
        total += steps
        Us, w = _signed_weights(Tm, U)
        res = decomposition_residual(T, w, Us)
        if best is None or res < best[0]:
            best = (res, U, done)
    _, U, done = best
    if not done and max_iter > first:
        U, steps, _ = _als_steps(Tm, U, max_iter - first, tol)
        total += steps
    U, w = _signed_weights(Tm, U)
    order = np.argsort(w)[::-1]
    return w[order], U[:, order], total


#: decomposition name -> function
DECOMPOSITIONS = {"power": tensor_power_method, "als": orthogonal_als}
