"""Unbiased LDA moments from sparse counts, whitening, and the whitened third moment.

Notation (ALGORITHMS.md §1): ``C`` is the n x V count matrix, ``l_d`` the
length of document d, ``s2_d = 1 / (l_d (l_d - 1))`` and
``s3_d = 1 / (l_d (l_d - 1) (l_d - 2))``. Only documents with at least three
tokens enter the moments. Per document, unbiased estimators of the word
co-occurrence moments are

* ``E1 = c / l``
* ``E2 = (c c^T - diag c) s2``   (pairs of distinct tokens)
* ``E3 = (c⊗c⊗c - Σ_t c_t (e_t⊗e_t⊗c + e_t⊗c⊗e_t + c⊗e_t⊗e_t) + 2 Σ_t c_t e_t⊗e_t⊗e_t) s3``
  (ordered triples of distinct tokens, by inclusion-exclusion)

and the LDA moments are ``M2 = E2 - a0/(a0+1) M1 M1^T`` and
``M3 = E3 - a0/(a0+2) sym3(E2 ⊗ M1) + 2 a0^2/((a0+1)(a0+2)) M1⊗M1⊗M1``.

Nothing V x V or V x V x V is ever formed:

1. A randomized range finder on the implicit ``E2`` (products ``E2 X`` cost
   O(nnz k), one pass over the documents each) gives an orthonormal basis
   ``Q`` (V x m, m = k + oversampling) of the topic subspace. ``E2`` and
   ``M2`` have the same range (span of the topics) for every ``a0 > 0``,
   so one basis serves every ``a0`` -- which is what makes choosing ``a0``
   by held-out likelihood cheap.
2. One more pass accumulates :class:`MomentSums`, plain sums over
   documents of the moments projected on ``Q`` (m x m x m at most). They
   add up across batches, ``partial_fit`` calls and Dask partitions.
3. For any ``a0``, :func:`whiten` eigendecomposes ``Q^T M2 Q`` (m x m) and
   :func:`whitened_tensor` forms ``T = M3(W, W, W)`` (k x k x k) with
   ``W = Q R`` from the projected sums, exactly (multilinearity).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._backend import backend_for
from ._counts import CountMatrix, _from_host, _to_host

__all__ = [
    "MIN_DOC_LENGTH",
    "MomentSums",
    "ProjectedMoments",
    "Whitening",
    "accumulate_moment_sums",
    "auto_batch_size",
    "document_weights",
    "e2_product",
    "first_pass",
    "project_moments",
    "range_basis",
    "sym3",
    "whiten",
    "whitened_tensor",
]

logger = logging.getLogger(__name__)

#: Documents shorter than this carry no third-order information and are left out of the moments.
MIN_DOC_LENGTH = 3


def auto_batch_size(m: int, n_docs: int, budget_mb: float = 64.0) -> int:
    """Documents per batch so the m(m+1)/2 pair products of a batch fit in ``budget_mb``."""
    pairs = m * (m + 1) // 2
    b = int(budget_mb * 2**20 / 8 / max(pairs, 1))
    return int(max(256, min(b, max(n_docs, 1), 1 << 17)))


def document_weights(lengths, xp_like=None):
    """Per-document weights ``(keep, 1/l, s2, s3)`` with zeros for documents of < 3 tokens."""
    keep = lengths >= MIN_DOC_LENGTH
    safe = lengths * keep + (~keep) * 10.0  # avoid division by zero on dropped documents
    inv_l = keep / safe
    s2 = inv_l / (safe - 1.0)
    s3 = s2 / (safe - 2.0)
    return keep, inv_l, s2, s3


def _backend_sum(x):
    s = x.sum()
    return float(s.item()) if hasattr(s, "item") else float(s)


def _cholqr_step(Q, shift: float = 0.0):
    """One CholeskyQR step ``Q <- Q L^-T`` with ``L L^T = Q^T Q + shift I`` (Gram on the host).

    Returns the new ``Q`` and the 2-norm condition number of ``L``.
    """
    G = np.asarray(_to_host(Q.T @ Q), dtype=np.float64)
    G = (G + G.T) / 2
    if shift:
        G[np.diag_indices_from(G)] += shift
    L = np.linalg.cholesky(G)
    Linv_t = np.linalg.inv(L).T
    if not np.isfinite(Linv_t).all():
        raise np.linalg.LinAlgError("non-finite Cholesky factor")
    return Q @ _from_host_like(Linv_t, Q), float(np.linalg.cond(L))


def _qr(Y, backend):
    """Orthonormal basis of the columns of a tall matrix ``Y`` (V x m) on its backend.

    CholeskyQR2 (two rounds of ``Y <- Y L^-T`` with ``L L^T = Y^T Y``): tall-
    skinny products on the backend plus m x m work on the host, an order of
    magnitude faster than Householder QR when V >> m. It is orthonormal to
    working precision when cond(Y) < 1e6 (read off the first factor, as
    cond(L) = cond(Y)); otherwise shifted CholeskyQR3 (Fukaya et al., SIAM
    J. Sci. Comput. 2020) is used, and Householder QR if that fails too.
    """
    import tensorly as tl

    try:
        Q, cond = _cholqr_step(Y)
        if cond < 1e6:
            return _cholqr_step(Q)[0]
    except np.linalg.LinAlgError:
        pass
    try:
        V, m = Y.shape
        norm2 = float(np.asarray(_to_host((Y * Y).sum())))
        shift = 11.0 * (V * m + m * (m + 1)) * np.finfo(np.float64).eps * norm2
        Q = _cholqr_step(_cholqr_step(_cholqr_step(Y, shift)[0])[0])[0]
        G = np.asarray(_to_host(Q.T @ Q), dtype=np.float64)
        if np.abs(G - np.eye(m)).max() < 1e-10:
            return Q
    except np.linalg.LinAlgError:
        pass
    with backend_for(backend):
        Q, _ = tl.qr(Y)
    return Q


def _basis_step(Y, backend):
    """A well-conditioned basis of the columns of ``Y`` between range-finder products.

    The next product only needs the span, not orthonormality to working
    precision, so one CholeskyQR step serves (orthogonality error about
    cond(Y)^2 eps); :func:`_qr` when ``Y`` is too ill-conditioned for it.
    """
    try:
        Q, cond = _cholqr_step(Y)
        if cond < 1e5:
            return Q
    except np.linalg.LinAlgError:
        pass
    return _qr(Y, backend)


def _from_host_like(x: np.ndarray, like):
    """Move a host array to the library and device of the array ``like``."""
    from .._backend import array_backend

    name = array_backend(like)
    if name == "pytorch":
        import torch

        return torch.as_tensor(x, dtype=like.dtype, device=like.device)
    if name == "cupy":  # pragma: no cover - needs a GPU
        import cupy

        with cupy.cuda.Device(like.device):
            return cupy.asarray(x, dtype=like.dtype)
    return x


# -------------------------------------------------------------------- pass 1: E2 products
@dataclass
class _FirstPass:
    n_docs: int = 0
    n_dropped: int = 0
    n_tokens: float = 0.0
    m1: Any = None  # (V,) Σ_d c_d / l_d
    tau2: Any = None  # (V,) Σ_d s2_d c_d


def e2_product(C: CountMatrix, X, batch_size: int, first: _FirstPass | None = None,
               progress=None, dtype=np.float64, *, normalize: bool = True):
    """``E2 @ X`` for the implicit unbiased pair moment (X: V x m on the backend).

    Returns ``(E2 X, first_pass)``. When ``first`` is ``None`` the per-word
    sums needed later (``m1``, ``tau2``) and the document counts are
    collected in the same pass. With ``normalize=False`` the first element
    is the plain sum ``Σ_d s2_d c_d (c_d^T X)`` over the documents of ``C``
    (``None`` for no document), which adds up across partitions of a corpus
    (see ``e2_sum`` of :func:`range_basis`).
    """
    collect = first is None
    if collect:
        first = _FirstPass()
    Y = None
    for bt in C.batches(batch_size, dtype):
        lengths = bt.row_sums()
        keep, inv_l, s2, s3 = document_weights(lengths)
        Z = bt.mm(X) * s2[:, None]
        part = bt.tmm(Z)
        Y = part if Y is None else Y + part
        if collect:
            nk = int(_backend_sum(keep))
            first.n_docs += nk
            first.n_dropped += len(bt) - nk
            first.n_tokens += _backend_sum(lengths * keep)
            m1 = bt.tmm(inv_l)
            t2 = bt.tmm(s2)
            first.m1 = m1 if first.m1 is None else first.m1 + m1
            first.tau2 = t2 if first.tau2 is None else first.tau2 + t2
        if progress is not None:
            progress.update(len(bt))
    if not normalize:
        return Y, first
    if first.n_docs == 0:
        return None, first
    return _normalize_e2(Y, X, first, dtype), first


def _normalize_e2(Y, X, first: _FirstPass, dtype):
    """``(Σ_d s2_d c_d c_d^T X - diag(tau2) X) / n``: the sum over documents made ``E2 X``."""
    tau2 = first.tau2 if dtype == np.float64 else _astype(first.tau2, dtype)
    return (Y - tau2[:, None] * X) / first.n_docs


def _astype(x, dtype):
    """``x`` converted to the float ``dtype`` (NumPy name) in its own array library."""
    from .._backend import array_backend

    if array_backend(x) == "pytorch":
        import torch

        return x.to(torch.float32 if np.dtype(dtype) == np.float32 else torch.float64)
    return x.astype(dtype)


def first_pass(C: CountMatrix, batch_size: int, progress=None) -> _FirstPass:
    """Document counts and the per-word sums ``m1 = Σ c/l`` and ``tau2 = Σ s2 c`` (one pass, O(nnz))."""
    first = _FirstPass()
    for bt in C.batches(batch_size):
        lengths = bt.row_sums()
        keep, inv_l, s2, s3 = document_weights(lengths)
        nk = int(_backend_sum(keep))
        first.n_docs += nk
        first.n_dropped += len(bt) - nk
        first.n_tokens += _backend_sum(lengths * keep)
        m1 = bt.tmm(inv_l)
        t2 = bt.tmm(s2)
        first.m1 = m1 if first.m1 is None else first.m1 + m1
        first.tau2 = t2 if first.tau2 is None else first.tau2 + t2
        if progress is not None:
            progress.update(len(bt))
    return first


def range_basis(C: CountMatrix, m: int, n_power_iter: int, batch_size: int,
                rng: np.random.Generator, n_keep: int | None = None, progress=None,
                first: _FirstPass | None = None, *, e2_sum=None):
    """Orthonormal basis (on the backend) of the dominant range of the implicit E2.

    Randomized subspace iteration (Halko, Martinsson & Tropp 2011, Alg. 4.4)
    with ``m`` columns: ``Y = E2 Q`` starting from a Gaussian ``Q`` (drawn
    on the host, so the basis does not depend on the backend; well
    conditioned as it is), re-orthonormalising between the ``1 +
    n_power_iter`` products by one CholeskyQR step (one pass over the
    documents each). The products run in single
    precision (about three times faster for sparse data): the basis only has
    to span the dominant range, and rounding at 1e-7 is far below the
    sampling noise of the moments, which are then accumulated in double
    precision on the final basis (:func:`accumulate_moment_sums`).

    With ``n_keep < m``, the basis is then reduced by Rayleigh-Ritz: the top
    ``n_keep`` eigenvectors ``U`` of ``Q^T E2 Q = Q^T Y`` (from the last
    product, no extra pass) give ``Y U = E2 Q U``, and the result is an
    orthonormal basis of ``[Y U, M1]`` (``n_keep + 1`` columns; ``M1`` is
    added because ``M2 = E2 - c M1 M1^T`` moves the top eigenvectors within
    ``span(E2 top, M1)``). This keeps the range finder's oversampling
    (accuracy) apart from the size of the third-moment basis (cost ~ m^3).

    ``e2_sum``, a callable ``X -> Σ_d s2_d c_d (c_d^T X)`` (the sum over
    all documents, in the dtype of ``X``), replaces the passes over ``C``
    for counts held elsewhere (the partitions of a Dask array, summed on a
    cluster); ``first`` must then be given, and ``C`` only supplies the
    vocabulary size and the backend.

    Returns ``(Q, first_pass)``; ``Q`` is ``None`` when no document has 3 tokens.
    """
    if e2_sum is not None and first is None:
        raise ValueError("range_basis needs the first-pass sums (first=...) when e2_sum is given")
    V = C.n_words
    if first is None:
        first = first_pass(C, batch_size)
    if first.n_docs == 0:
        return None, first
    f32 = np.float32
    # a Gaussian matrix is well conditioned already: no orthonormalisation of the start
    Q = _from_host(rng.standard_normal((V, m)) / np.sqrt(V), C)
    Y = None
    for it in range(1 + n_power_iter):
        if it:
            Q = _basis_step(_astype(Y, np.float64), C.backend)
        # products in single precision: the basis only has to span the range; the moments
        # themselves are accumulated in double precision on the final basis
        if e2_sum is None:
            Y, first = e2_product(C, _astype(Q, f32), batch_size, first=first,
                                  progress=progress, dtype=f32)
        else:
            X = _astype(Q, f32)
            Y = _normalize_e2(e2_sum(X), X, first, f32)
    Y = _astype(Y, np.float64)
    if n_keep is None or n_keep >= m:
        return _qr(Y, C.backend), first
    B = np.asarray(_to_host(Q.T @ Y), dtype=np.float64)
    vals, vecs = np.linalg.eigh((B + B.T) / 2)
    top = vecs[:, np.argsort(vals)[::-1][:n_keep]]
    m1 = first.m1 / first.n_docs
    Q = _qr(Y @ _from_host_like(top, Y), C.backend)
    # add the part of M1 outside span(Q) (twice projected), unless it is negligible
    r = m1
    for _ in range(2):
        r = r - Q @ (Q.T @ r)
    nr = float(np.sqrt(_backend_sum(r * r)))
    if nr > 1e-8 * float(np.sqrt(_backend_sum(m1 * m1))):
        Q = _hstack([Q, (r / nr)[:, None]], C.backend)
    return Q, first


def _hstack(arrays, backend):
    import tensorly as tl

    with backend_for(backend):
        return tl.concatenate(arrays, axis=1)


# -------------------------------------------------------------------- pass 2: projected sums
@dataclass
class MomentSums:
    """Sums over documents of the moments projected on a basis ``Q`` (V x m).

    Every field is a sum over documents, so two ``MomentSums`` with the same
    basis add up (``a + b``): batches, ``partial_fit`` calls and Dask
    partitions combine exactly. All arrays are NumPy float64 on the host.

    Attributes
    ----------
    basis : ndarray (V, m)
    n_docs, n_dropped : int
        Documents used (>= 3 tokens) and left out.
    n_tokens : float
        Tokens in the documents used.
    m1 : ndarray (V,)
        ``Σ_d c_d / l_d``.
    tau2, tau3 : ndarray (V,)
        ``Σ_d s2_d c_d`` and ``Σ_d s3_d c_d``.
    pp2 : ndarray (m, m)
        ``Σ_d s2_d p_d p_d^T`` with ``p_d = Q^T c_d``.
    rho : ndarray (V, m)
        ``Σ_d s3_d c_d p_d^T``.
    ppp3 : ndarray (m, m (m + 1) / 2)
        ``Σ_d s3_d p_d ⊗ p_d ⊗ p_d``, stored over the pairs ``j <= k`` of its last two modes.
    """

    basis: np.ndarray
    n_docs: int = 0
    n_dropped: int = 0
    n_tokens: float = 0.0
    m1: np.ndarray = None
    tau2: np.ndarray = None
    tau3: np.ndarray = None
    pp2: np.ndarray = None
    rho: np.ndarray = None
    ppp3: np.ndarray = None

    @classmethod
    def zeros(cls, basis: np.ndarray) -> MomentSums:
        V, m = basis.shape
        npairs = m * (m + 1) // 2
        return cls(basis=basis, m1=np.zeros(V), tau2=np.zeros(V), tau3=np.zeros(V),
                   pp2=np.zeros((m, m)), rho=np.zeros((V, m)), ppp3=np.zeros((m, npairs)))

    def __add__(self, other: MomentSums) -> MomentSums:
        if not isinstance(other, MomentSums):
            return NotImplemented
        if self.basis.shape != other.basis.shape or not np.array_equal(self.basis, other.basis):
            raise ValueError("MomentSums can only be added when they were accumulated on the "
                             "same basis")
        return MomentSums(basis=self.basis, n_docs=self.n_docs + other.n_docs,
                          n_dropped=self.n_dropped + other.n_dropped,
                          n_tokens=self.n_tokens + other.n_tokens,
                          m1=self.m1 + other.m1, tau2=self.tau2 + other.tau2,
                          tau3=self.tau3 + other.tau3, pp2=self.pp2 + other.pp2,
                          rho=self.rho + other.rho, ppp3=self.ppp3 + other.ppp3)

    ARRAYS = ("basis", "m1", "tau2", "tau3", "pp2", "rho", "ppp3")
    SCALARS = ("n_docs", "n_dropped", "n_tokens")


def _pair_index(m: int):
    j, k = np.triu_indices(m)
    return j, k


def accumulate_moment_sums(C: CountMatrix, basis_backend, basis_host: np.ndarray,
                           batch_size: int, progress=None) -> MomentSums:
    """One pass over ``C`` accumulating :class:`MomentSums` on the basis ``Q``.

    Cost O(nnz m + n m^3 / 2); memory one batch of ``batch x m(m+1)/2``.
    """
    m = basis_host.shape[1]
    # pair (j, l), j <= l, lives in row off[j] + (l - j) of the pair products
    off = np.concatenate([[0], np.cumsum(np.arange(m, 0, -1))]).astype(int)
    out = MomentSums.zeros(basis_host)
    acc = {}
    buf = None
    for bt in C.batches(batch_size):
        lengths = bt.row_sums()
        keep, inv_l, s2, s3 = document_weights(lengths)
        nk = int(_backend_sum(keep))
        out.n_dropped += len(bt) - nk
        if nk == 0:
            if progress is not None:
                progress.update(len(bt))
            continue
        out.n_docs += nk
        out.n_tokens += _backend_sum(lengths * keep)
        P = bt.mm(basis_backend)  # (b, m)
        P3 = P * s3[:, None]
        # pair products p_j p_l (j <= l) as rows of length b: contiguous slices, no gathers
        PT = _contiguous(P.T)
        if buf is None or buf.shape[1] != PT.shape[1]:
            buf = _empty_like(PT, (off[-1], PT.shape[1]))
        for j in range(m):
            _mul_into(PT[j:j + 1], PT[j:], buf[off[j]:off[j + 1]])
        # one transposed product for rho and the three per-word sums
        stacked = bt.tmm(_hstack([P3, inv_l[:, None], s2[:, None], s3[:, None]], C.backend))
        parts = {
            "m1": stacked[:, m],
            "tau2": stacked[:, m + 1],
            "tau3": stacked[:, m + 2],
            "pp2": (P * s2[:, None]).T @ P,
            "rho": stacked[:, :m],
            "ppp3": (buf @ P3).T,
        }
        for key, val in parts.items():
            acc[key] = val if key not in acc else acc[key] + val
        if progress is not None:
            progress.update(len(bt))
    for key, val in acc.items():
        setattr(out, key, np.asarray(_to_host(val), dtype=np.float64))
    return out


def _contiguous(x):
    from .._backend import array_backend

    if array_backend(x) == "pytorch":
        return x.contiguous()
    if array_backend(x) == "cupy":  # pragma: no cover
        import cupy

        return cupy.ascontiguousarray(x)
    return np.ascontiguousarray(x)


def _empty_like(x, shape):
    from .._backend import array_backend

    if array_backend(x) == "pytorch":
        import torch

        return torch.empty(shape, dtype=x.dtype, device=x.device)
    if array_backend(x) == "cupy":  # pragma: no cover
        import cupy

        return cupy.empty(shape, dtype=x.dtype)
    return np.empty(shape, dtype=x.dtype)


def _mul_into(a, b, out):
    """``out[...] = a * b`` without a temporary where the library allows it."""
    from .._backend import array_backend

    if array_backend(out) == "pytorch":
        import torch

        torch.mul(a, b, out=out)
    elif array_backend(out) == "cupy":  # pragma: no cover
        import cupy

        cupy.multiply(a, b, out=out)
    else:
        np.multiply(a, b, out=out)


# -------------------------------------------------------------------- normalised, projected
def sym3(A: np.ndarray) -> np.ndarray:
    """``A_ijk + A_ikj + A_jki``: the sum over the three placements of the odd mode.

    ``A`` must be symmetric in its first two modes, the odd mode last
    (``A_ijk = Σ_t a_ti a_tj b_tk``); the result is a symmetric tensor.
    """
    return A + A.transpose(0, 2, 1) + A.transpose(2, 0, 1)


def _outer_sym3(M: np.ndarray, v: np.ndarray) -> np.ndarray:
    """sym3 of M⊗v for a symmetric matrix M: ``M_ij v_k + M_ik v_j + M_jk v_i``."""
    return sym3(M[:, :, None] * v[None, None, :])


def _expand_pairs(half: np.ndarray, m: int) -> np.ndarray:
    """(m, m(m+1)/2) over pairs j <= k -> the full symmetric (m, m, m) tensor."""
    j, k = _pair_index(m)
    full = np.zeros((m, m, m))
    full[:, j, k] = half
    full[:, k, j] = half
    return full


def _expand_first_pairs(half: np.ndarray, m: int) -> np.ndarray:
    """(m(m+1)/2, m) over pairs i <= j of the first two modes -> the full (m, m, m) tensor."""
    j, k = _pair_index(m)
    full = np.zeros((m, m, m))
    full[j, k, :] = half
    full[k, j, :] = half
    return full


@dataclass
class ProjectedMoments:
    """Normalised moments on the basis ``Q``: ``Q^T E2 Q``, ``Q^T M1`` and ``E3(Q, Q, Q)``."""

    basis: np.ndarray  # (V, m)
    n_docs: int
    e2: np.ndarray  # (m, m)
    m1: np.ndarray  # (m,)
    e3: np.ndarray  # (m, m, m)
    m1_full: np.ndarray = field(default=None, repr=False)  # (V,)


def project_moments(sums: MomentSums, chunk: int = 2048) -> ProjectedMoments:
    """Divide the sums by the document count and add the diagonal corrections.

    ``E3(Q,Q,Q) = (1/n)[Σ_d s3_d p_d^⊗3 - sym3(Σ_t q_t⊗q_t⊗ρ_t) + 2 Σ_t τ3_t q_t^⊗3]``
    and ``Q^T E2 Q = (1/n)[Σ_d s2_d p_d p_d^T - Q^T diag(τ2) Q]``, where ``q_t``
    is row t of ``Q``. Cost O(V m^3), done once.
    """
    n = sums.n_docs
    if n == 0:
        raise ValueError("no document has at least 3 tokens; the moments are undefined")
    Q = sums.basis
    V, m = Q.shape
    e2 = (sums.pp2 - (Q * sums.tau2[:, None]).T @ Q) / n
    e2 = (e2 + e2.T) / 2
    # G_ijk = Σ_t Q_ti Q_tj ρ_tk and H_ijk = Σ_t τ3_t Q_ti Q_tj Q_tk enter E3 as
    # 2 H - sym3(G) = -sym3(G - (2/3) H), as sym3(H) = 3 H for the symmetric H; so one
    # product over the words, G' = Σ_t q_t ⊗ q_t ⊗ (ρ_t - (2/3) τ3_t q_t), serves both.
    # It is symmetric in (i, j): computed over the pairs i <= j only, chunked over words.
    off = np.concatenate([[0], np.cumsum(np.arange(m, 0, -1))]).astype(int)
    Gp = np.zeros((off[-1], m))
    buf = np.empty((off[-1], min(chunk, V)))
    for a in range(0, V, chunk):
        qT = np.ascontiguousarray(Q[a:a + chunk].T)
        krT = buf[:, :qT.shape[1]]
        for j in range(m):
            np.multiply(qT[j:j + 1], qT[j:], out=krT[off[j]:off[j + 1]])
        Gp += krT @ (sums.rho[a:a + chunk] - (2.0 / 3.0) * sums.tau3[a:a + chunk, None]
                     * Q[a:a + chunk])
    e3 = (_expand_pairs(sums.ppp3, m) - sym3(_expand_first_pairs(Gp, m))) / n
    return ProjectedMoments(basis=Q, n_docs=n, e2=e2, m1=Q.T @ sums.m1 / n, e3=e3,
                            m1_full=sums.m1 / n)


# -------------------------------------------------------------------- whitening for one alpha0
@dataclass
class Whitening:
    """``W = Q R`` with ``W^T M2 W = I``; ``eigenvalues`` are the kept eigenvalues of M2."""

    R: np.ndarray  # (m, k)
    eigenvalues: np.ndarray  # (k,) descending
    eigenvectors: np.ndarray  # (m, k)
    all_eigenvalues: np.ndarray  # (m,) descending


def whiten(pm: ProjectedMoments, n_topics: int, alpha0: float, rtol: float = 1e-8) -> Whitening:
    """Whiten ``M2 = E2 - a0/(a0+1) M1 M1^T`` within the basis: top ``n_topics`` eigenpairs.

    Raises
    ------
    ValueError
        When a kept eigenvalue is <= 0 or below ``rtol`` times the largest:
        the corpus cannot support ``n_topics`` topics at this ``alpha0``.
    """
    m2 = pm.e2 - alpha0 / (alpha0 + 1.0) * np.outer(pm.m1, pm.m1)
    vals, vecs = np.linalg.eigh((m2 + m2.T) / 2)
    order = np.argsort(vals)[::-1]
    vals, vecs = vals[order], vecs[:, order]
    kept = vals[:n_topics]
    top = vals[0] if vals.size else 0.0
    if top <= 0 or kept[-1] <= rtol * top:
        n_ok = int(np.sum(vals > rtol * max(top, 0.0))) if top > 0 else 0
        raise ValueError(
            f"the second moment of this corpus cannot support n_topics={n_topics} at "
            f"alpha0={alpha0:g}: its {n_topics}th largest eigenvalue is {kept[-1]:.3g} "
            f"(largest {top:.3g}); at most {n_ok} topic(s) are supported. Use fewer topics, "
            "a smaller alpha0, or more (and longer) documents")
    R = vecs[:, :n_topics] / np.sqrt(kept)[None, :]
    return Whitening(R=R, eigenvalues=kept, eigenvectors=vecs[:, :n_topics],
                     all_eigenvalues=vals)


def whitened_tensor(pm: ProjectedMoments, wh: Whitening, alpha0: float) -> np.ndarray:
    """``T = M3(W, W, W)`` (k x k x k) for ``W = Q R``, from the projected moments.

    ``T = E3(W,W,W) - a0/(a0+2) sym3((W^T E2 W) ⊗ q) + 2 a0^2/((a0+1)(a0+2)) q⊗q⊗q``
    with ``q = W^T M1``. For exact whitening ``W^T E2 W = I + a0/(a0+1) q q^T``;
    the product is used as computed.
    """
    R = wh.R
    e3w = np.einsum("abc,ai,bj,ck->ijk", pm.e3, R, R, R, optimize=True)
    e2w = R.T @ pm.e2 @ R
    q = R.T @ pm.m1
    T = (e3w - alpha0 / (alpha0 + 2.0) * _outer_sym3(e2w, q)
         + 2.0 * alpha0 ** 2 / ((alpha0 + 1.0) * (alpha0 + 2.0))
         * q[:, None, None] * q[None, :, None] * q[None, None, :])
    return T
