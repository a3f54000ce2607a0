"""Document-topic inference with fixed topics, and held-out likelihood by document completion.

Both work for any model that provides topics ``β`` (k x V, rows on the
simplex) and a Dirichlet prior ``α`` (k), so every topic model -- spectral,
variational, Gibbs -- is scored by the same code.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import tensorly as tl

from .._backend import backend_for
from ._counts import CountMatrix, _from_host, _to_host, as_count_matrix

__all__ = [
    "document_completion_loglik",
    "refine_topics",
    "split_counts",
    "variational_doc_topics",
]

_EPS = np.finfo(np.float64).eps


def _nnz_bounds(C: CountMatrix, n_topics: int, budget: float = 2e6) -> list[tuple[int, int]]:
    """Batches of consecutive documents holding about ``budget / n_topics`` non-zeros each.

    The E-step's (nnz, k) temporaries are then about 16 MB: on the 2-core
    benchmark machine 2e6 was 5-18 % faster than 4e6 (cache), and 2.5e5 or
    less slower again (per-batch overhead).
    """
    ip = C.host_indptr
    per = max(int(budget // max(n_topics, 1)), 1)
    bounds, a, n = [], 0, C.n_docs
    while a < n:
        b = int(np.searchsorted(ip, ip[a] + per, side="right")) - 1
        b = min(max(b, a + 1), n)
        bounds.append((a, b))
        a = b
    return bounds


def _digamma(x):
    return tl.digamma(x)


def _rowdot(a, b):
    """``(a * b).sum(1)`` without the (nnz, k) product temporary on NumPy."""
    if isinstance(a, np.ndarray):
        return np.einsum("ij,ij->i", a, b)
    return (a * b).sum(1)


def _estep_batch(bt, betaT, alpha, max_iter: int, tol: float, stats: bool = False):
    """Variational E-step for one batch (online-LDA style updates, β and α fixed).

    Each document stops updating once its own mean absolute change of γ is
    below ``tol``, so its result does not depend on the other documents of
    the batch.
    """
    rows, cols, vals = bt.coo()
    k = betaT.shape[1]
    lengths = bt.row_sums()
    gamma = alpha[None, :] + lengths[:, None] / k
    beta_nz = betaT[cols]  # (nnz, k), fixed during the iterations
    active = None
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        # E[log θ] <= 0, so exp never overflows
        elog = _digamma(gamma) - _digamma(gamma.sum(1))[:, None]
        eth = tl.exp(elog)
        phinorm = _rowdot(eth[rows], beta_nz) + _EPS
        R = bt.with_data(vals / phinorm)
        new = alpha[None, :] + eth * (R @ betaT)
        change = tl.abs(new - gamma).mean(1)
        if active is None:
            gamma = new
            active = change >= tol
        else:
            gamma = tl.where(active[:, None], new, gamma)
            active = active & (change >= tol)
        if not bool(active.any()):
            break
    if stats:
        # Σ_d c_dw φ_dwk / β_kw = Σ_d exp(E[log θ_dk]) c_dw / phinorm_dw at the final γ
        eth = tl.exp(_digamma(gamma) - _digamma(gamma.sum(1))[:, None])
        phinorm = _rowdot(eth[rows], beta_nz) + _EPS
        weights = vals / phinorm
        if bt.backend == "pytorch":  # index_add; the batch keeps nnz * k small
            import torch

            out = torch.zeros((betaT.shape[0], k), dtype=eth.dtype, device=eth.device)
            return gamma, n_iter, out.index_add_(0, cols, weights[:, None] * eth[rows])
        return gamma, n_iter, bt.with_data(weights).T @ eth
    return gamma, n_iter


def variational_doc_topics(C: CountMatrix, components, alpha, max_iter: int = 100,
                           tol: float = 1e-3, progress=None):
    """Variational Dirichlet parameters ``γ`` (n x k, on C's backend) for fixed topics.

    Updates, per document d and word w with count c_dw:
    ``φ_dwk ∝ exp(E[log θ_dk]) β_kw`` and ``γ_dk = α_k + Σ_w c_dw φ_dwk``,
    iterated until the mean absolute change of ``γ_d`` is below ``tol``
    for every document of the batch (or ``max_iter``). Each iteration is
    two products over the non-zeros (O(nnz k)).
    """
    components = np.asarray(components, dtype=np.float64)
    alpha = np.asarray(alpha, dtype=np.float64)
    k = components.shape[0]
    betaT = _from_host(np.ascontiguousarray(components.T), C)
    alpha_b = _from_host(alpha, C)
    out = []
    with backend_for(C.backend):
        for a, b in _nnz_bounds(C, k):
            gamma, _ = _estep_batch(C.batch(a, b), betaT, alpha_b, max_iter, tol)
            out.append(gamma)
            if progress is not None:
                progress.update(b - a)
        return tl.concatenate(out, axis=0) if len(out) > 1 else out[0]


def refine_topics(C: CountMatrix, components, alpha, n_passes: int, max_iter: int = 5,
                  tol: float = 1e-2, topic_word_prior: float = 0.01, progress=None):
    """Variational EM passes over the corpus starting from given topics (α held fixed).

    Each pass runs the E-step of :func:`variational_doc_topics` on every
    document (at most ``max_iter`` updates per document, γ started afresh:
    carrying γ over from the previous pass was tried and gave less coherent
    topics at no saving) and sets ``β_kw ∝ topic_word_prior + Σ_d c_dw φ_dwk``.
    Used to polish spectral topics; returns the new topics (k x V, NumPy,
    rows on the simplex).
    """
    beta = np.asarray(components, dtype=np.float64)
    alpha_b = _from_host(np.asarray(alpha, dtype=np.float64), C)
    k, V = beta.shape
    bounds = _nnz_bounds(C, k)
    with backend_for(C.backend):
        for _ in range(n_passes):
            betaT = _from_host(np.ascontiguousarray(beta.T), C)
            sst = None
            for a, b in bounds:
                _, _, part = _estep_batch(C.batch(a, b), betaT, alpha_b, max_iter, tol,
                                          stats=True)
                sst = part if sst is None else sst + part
                if progress is not None:
                    progress.update(b - a)
            beta = _refine_mstep(beta, np.asarray(_to_host(sst), dtype=np.float64),
                                 topic_word_prior)
    return beta


def _refine_mstep(beta, sst, topic_word_prior):
    """New topics from the E-step statistics ``sst`` (V x k): ``β ∝ prior + β · sst^T``."""
    new = beta * sst.T + topic_word_prior
    return new / new.sum(1, keepdims=True)


def split_counts(X: sp.csr_matrix, fraction: float = 0.5, random_state=0):
    """Split every document's tokens at random into (observed, held-out) count matrices.

    Each token independently goes to the observed part with probability
    ``fraction`` (binomial thinning of integer counts; non-integer counts
    are split proportionally). Deterministic for a fixed ``random_state``.
    """
    rng = np.random.default_rng(random_state)
    X = sp.csr_matrix(X, dtype=np.float64)
    data = X.data
    if np.all(data == np.round(data)):
        obs = rng.binomial(data.astype(np.int64), fraction).astype(np.float64)
    else:
        obs = data * fraction
    # separate index arrays: eliminate_zeros works in place
    observed = sp.csr_matrix((obs, X.indices.copy(), X.indptr.copy()), shape=X.shape)
    held = sp.csr_matrix((data - obs, X.indices.copy(), X.indptr.copy()), shape=X.shape)
    observed.eliminate_zeros()
    held.eliminate_zeros()
    return observed, held


def document_completion_loglik(X, components, alpha, *, fraction: float = 0.5,
                               random_state=0, max_iter: int = 100, tol: float = 1e-3,
                               return_counts: bool = False):
    """Held-out per-word log-likelihood by document completion, for any LDA-type model.

    Each document's tokens are split at random into an observed half and a
    held-out half (:func:`split_counts`); ``θ_d`` is inferred from the
    observed half with the variational E-step (topics ``components`` and
    prior ``alpha`` fixed; ``θ_d = γ_d / Σ_k γ_dk``), and the held-out half
    is scored: ``Σ_dw h_dw log(Σ_k θ_dk β_kw) / Σ_dw h_dw``.
    The same split (``random_state``) and the same estimator serve every
    model, so numbers are comparable across methods. Runs on the host.

    Parameters
    ----------
    X : sparse or dense count matrix (n_docs, n_words)
    components : array (n_topics, n_words)
        Topic-word distributions (rows are renormalised to sum to one).
    alpha : float or array (n_topics,)
        Dirichlet prior of the document-topic proportions.
    fraction : float
        Share of each document's tokens that is observed.
    random_state : int
        Seed of the split.
    return_counts : bool
        Also return the total held-out log-likelihood and token count.

    Returns
    -------
    float
        Mean log-likelihood per held-out token (higher is better).

    Examples
    --------
    >>> import numpy as np
    >>> from tensornet.topics import document_completion_loglik
    >>> beta = np.array([[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5]]) * 0.98 + 0.005
    >>> X = np.array([[4, 4, 0, 0], [0, 0, 3, 5]])
    >>> bool(document_completion_loglik(X, beta, 0.5) > np.log(1 / 4))  # beats a uniform model
    True
    """
    components = np.asarray(_to_host(components), dtype=np.float64)
    if components.ndim != 2 or not np.isfinite(components).all() or (components < 0).any():
        raise ValueError("components must be a finite non-negative (n_topics, n_words) array")
    sums = components.sum(1, keepdims=True)
    if (sums <= 0).any():
        raise ValueError("every row of components must have positive mass")
    beta = components / sums
    k, V = beta.shape
    alpha = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (k,)).copy()
    if not np.isfinite(alpha).all() or (alpha <= 0).any():
        raise ValueError(f"alpha must be positive and finite; got {alpha}")
    C = as_count_matrix(X)
    if C.n_words != V:
        raise ValueError(f"X has {C.n_words} words (columns) but components has {V}")
    Xs = C.to_scipy()
    observed, held = split_counts(Xs, fraction, random_state)
    Cobs = as_count_matrix(observed)
    gamma = np.asarray(variational_doc_topics(Cobs, beta, alpha, max_iter, tol))
    theta = gamma / gamma.sum(1, keepdims=True)
    rows = np.repeat(np.arange(held.shape[0]), np.diff(held.indptr))
    total = 0.0
    step = max(1, int(4e6 // k))
    for s in range(0, held.nnz, step):
        r, c = rows[s:s + step], held.indices[s:s + step]
        p = np.einsum("ij,ij->i", theta[r], beta[:, c].T)
        total += float(np.dot(held.data[s:s + step], np.log(np.maximum(p, 1e-300))))
    n_tokens = float(held.data.sum())
    value = total / n_tokens if n_tokens > 0 else float("nan")
    if return_counts:
        return value, total, n_tokens
    return value
