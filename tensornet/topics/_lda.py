"""``TensorLDA``: latent Dirichlet allocation by the method of moments.

The estimator wraps the functions of :mod:`._moments` (moments from sparse
counts, whitening, whitened third moment), :mod:`._decompose` (orthogonal
tensor decomposition) and :mod:`._inference` (document-topic inference,
held-out likelihood).
"""

from __future__ import annotations

import json
import logging
import numbers
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
)
from sklearn.utils.validation import check_is_fitted, check_non_negative, validate_data

from .._validation import check_random_state
from ._counts import CountMatrix, _from_host, _to_host, as_count_matrix, is_count_input
from ._decompose import DECOMPOSITIONS, decomposition_residual
from ._inference import (
    document_completion_loglik,
    refine_topics,
    variational_doc_topics,
)
from ._moments import (
    MomentSums,
    accumulate_moment_sums,
    auto_batch_size,
    first_pass,
    project_moments,
    range_basis,
    whiten,
    whitened_tensor,
)

__all__ = ["TensorLDA"]

logger = logging.getLogger(__name__)

_FORMAT_VERSION = 1
#: mass spread uniformly over the vocabulary in every topic so no word has probability 0
_TOPIC_FLOOR = 1e-6
#: Ritz vectors beyond n_topics kept in the basis of the third moment
_RITZ_EXTRA = 5


# ------------------------------------------------------------------ parameter declarations
def _int(low, high=None):
    def check(name, v):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"The {name!r} parameter of TensorLDA must be an int; got {v!r} "
                            f"({type(v).__name__})")
        if v < low or (high is not None and v > high):
            rng = f"[{low}, {'inf' if high is None else high}]"
            raise ValueError(f"The {name!r} parameter of TensorLDA must be an int in {rng}; "
                             f"got {v!r}")
    check.doc = f"int >= {low}"
    return check


def _real(low, high=None, low_open=False, high_open=False):
    def check(name, v):
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError(f"The {name!r} parameter of TensorLDA must be a real number; got "
                            f"{v!r} ({type(v).__name__})")
        bad = (not np.isfinite(v) or (v <= low if low_open else v < low)
               or (high is not None and (v >= high if high_open else v > high)))
        if bad:
            lo = "(" if low_open else "["
            hi = ")" if high_open or high is None else "]"
            raise ValueError(f"The {name!r} parameter of TensorLDA must be a finite number in "
                             f"{lo}{low}, {'inf' if high is None else high}{hi}; got {v!r}")
    return check


def _options(*opts):
    def check(name, v):
        if not isinstance(v, str) or v not in opts:
            raise ValueError(f"The {name!r} parameter of TensorLDA must be one of "
                             f"{', '.join(map(repr, opts))}; got {v!r}")
    return check


def _alpha0(name, v):
    if isinstance(v, str):
        if v != "auto":
            raise ValueError(f"The {name!r} parameter of TensorLDA must be a positive number or "
                             f"'auto'; got {v!r}")
        return
    _real(0.0, low_open=True)(name, v)


def _grid(name, v):
    try:
        vals = [float(x) for x in v]
    except TypeError:
        raise TypeError(f"The {name!r} parameter of TensorLDA must be a sequence of positive "
                        f"numbers; got {v!r}") from None
    if not vals or any(not np.isfinite(x) or x <= 0 for x in vals):
        raise ValueError(f"The {name!r} parameter of TensorLDA must be a non-empty sequence of "
                         f"positive finite numbers; got {v!r}")


def _optional(check):
    def inner(name, v):
        if v is not None:
            check(name, v)
    return inner


def _bool(name, v):
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"The {name!r} parameter of TensorLDA must be True or False; got {v!r}")


def _seed(name, v):
    if v is None or isinstance(v, np.random.Generator):
        return
    if isinstance(v, numbers.Integral) and not isinstance(v, bool):
        return
    if isinstance(v, np.random.RandomState):
        return
    raise TypeError(f"The {name!r} parameter of TensorLDA must be None, an int or a numpy "
                    f"random Generator; got {v!r}")


class TensorLDA(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Latent Dirichlet allocation learned by the method of moments (spectral LDA).

    Two or three passes over the sparse counts give the whitened third-order
    moment of the word co-occurrences (k x k x k); its orthogonal
    decomposition gives the topics and the Dirichlet prior. There is no
    iterative inference over the corpus: fitting costs O(nnz (k + p) (q + 2) + n k^3)
    for p = ``oversampling`` and q = ``n_power_iter``.

    Parameters
    ----------
    n_topics : int, default 10
        Number of topics k. Must be at most the vocabulary size and below the
        number of documents with at least 3 tokens.
    alpha0 : float or 'auto', default 1.0
        Sum of the Dirichlet prior ``Σ_i α_i`` (the only input the method of
        moments needs; the individual ``α_i`` are learned). ``'auto'``
        chooses it from ``alpha0_grid`` by held-out document-completion
        likelihood on ``validation_fraction`` of the documents (the moments
        are computed once for all candidates).
    alpha0_grid : sequence of float, default (0.1, 0.3, 1, 3, 10)
        Candidates for ``alpha0='auto'``.
    decomposition : {'als', 'power'}, default 'als'
        Orthogonal ALS (all components at once, re-orthonormalised every
        step) or the robust tensor power method with deflation. Both recover
        synthetic LDA topics equally well; on real text ALS gives more
        coherent topics and better held-out likelihood (benchmarks/README.md).
    n_restarts : int, default 10
        Random restarts per component (power) or per run (ALS).
    max_iter : int, default 100
        Iterations per restart of the tensor decomposition.
    tol : float, default 1e-10
        Convergence tolerance of the tensor decomposition.
    oversampling : int, default 20
        Extra dimensions of the randomized range finder (k + p columns); the
        basis is then cut to k + 5 Ritz vectors plus the M1 direction for the
        third moment, so p costs only range-finder time.
    n_power_iter : int, default 2
        Power iterations of the range finder (each is one pass over the data).
        Word co-occurrences of real text have no clear spectral gap, so the
        basis keeps improving: on the news articles ``n_power_iter=3`` raised
        the NPMI of the topics by about 0.015 at k = 20 and 50 (mean of two
        seeds) for one more pass; the default stays at 2 because the
        1,000,000-document scale run used 259 s of its 300 s budget with 5
        passes, and a sixth would likely exceed it (not measured).
    batch_size : int or None, default None
        Documents per batch when reading the counts; ``None`` picks it so a
        batch needs about 64 MB.
    refine_passes : int, default 3
        Variational EM passes after the spectral fit, starting from its
        topics with α held fixed (each pass: at most 5 updates per document,
        then ``β ∝ 0.01 + expected counts``). On real text, where the LDA
        model fits less well than on synthetic data, the pure method-of-
        moments topics are much less coherent than sampled or variational
        ones (NPMI 0.06-0.08 against 0.19-0.24 on the parliamentary
        speeches); three passes close most of that gap and raise the
        held-out likelihood (benchmarks/README.md). 0 keeps the pure
        method-of-moments estimate (the fastest fit). ``partial_fit`` never
        refines (it has only its chunk).
    refine_max_docs : int or None, default None
        Run the passes on at most this many documents, a systematic sample
        (every s-th document, s = ceil(n_docs / refine_max_docs)), to bound
        their cost on large corpora; ``None`` uses every document. The
        sample's counts then replace the moments' estimate of the topics:
        on the 1,000,000-document synthetic benchmark a 50,000-document
        sample raised the recovery error from 0.08 to 0.21, so bound it only
        when time matters more than accuracy (or use ``refine_passes=0``).
    max_doc_update_iter : int, default 100
        Iterations of the per-document variational update in ``transform``.
    mean_change_tol : float, default 1e-3
        Stopping tolerance of that update (mean absolute change of γ_d).
    validation_fraction : float, default 0.1
        Share of documents held out to choose ``alpha0='auto'`` (at most 5,000).
    random_state : int, Generator or None
        Seed for the range finder, restarts and validation split.
    verbose : bool, default False
        Show a progress bar over the passes.

    Attributes
    ----------
    components_ : ndarray (n_topics, n_features)
        Topic-word distributions, rows on the simplex, ordered by decreasing ``alpha_``.
    alpha_ : ndarray (n_topics,)
        Estimated Dirichlet prior of the document-topic proportions, summing
        to ``alpha0_``: each topic's share of the corpus's words (non-negative
        least squares ``M1 ≈ Σ_i (α_i/α0) β_i``), so components of noise get
        almost none.
    alpha0_ : float
        The ``alpha0`` used (the chosen one for ``'auto'``).
    alpha0_scores_ : dict
        Held-out per-word log-likelihood of each candidate (``'auto'`` only).
    n_iter_ : int
        Passes over the data made by the last ``fit`` / ``partial_fit``.
    n_docs_ : int
        Documents in the moments (those with at least 3 tokens).
    n_dropped_docs_ : int
        Documents left out of the moments for having fewer than 3 tokens.
    whitening_eigenvalues_ : ndarray (n_topics,)
        Kept eigenvalues of the second moment M2.
    tensor_eigenvalues_ : ndarray (n_topics,)
        ``λ_i`` of the whitened tensor, in the order of ``components_``.
    decomposition_residual_ : float
        ``||T - Σ λ_i u_i^⊗3|| / ||T||``.
    topic_mass_ : ndarray (n_topics,)
        Total mass of each unwhitened topic before clipping (1 in theory;
        far from 1 signals a poor fit).
    negative_mass_ : ndarray (n_topics,)
        Mass removed from each topic by clipping negative entries.
    n_features_in_ : int

    Notes
    -----
    Moments follow Anandkumar et al., "A spectral algorithm for latent
    Dirichlet allocation" (2012) and "Tensor decompositions for learning
    latent variable models" (JMLR 2014), with unbiased per-document
    estimators; see ``docs/topics.md`` for the derivation. Data-sized work
    runs on the backend of ``X`` (NumPy/SciPy, PyTorch or CuPy); the k-sized
    steps run on the host in float64.

    If the second moment cannot support ``n_topics`` topics at ``alpha0`` (a
    kept eigenvalue is not clearly positive), ``fit`` raises ``ValueError``
    rather than returning unreliable topics.

    Examples
    --------
    >>> from tensornet.datasets import make_lda_corpus
    >>> from tensornet.topics import TensorLDA
    >>> X, topics, alpha = make_lda_corpus(2000, 50, 3, alpha=0.3, doc_length=50,
    ...                                    random_state=0)
    >>> lda = TensorLDA(n_topics=3, alpha0=0.9, random_state=0).fit(X)
    >>> lda.components_.shape
    (3, 50)
    >>> theta = lda.transform(X[:5])
    >>> theta.shape
    (5, 3)
    """

    _parameter_constraints = {
        "n_topics": _int(1),
        "alpha0": _alpha0,
        "alpha0_grid": _grid,
        "decomposition": _options(*DECOMPOSITIONS),
        "n_restarts": _int(1),
        "max_iter": _int(1),
        "tol": _real(0.0),
        "oversampling": _int(0),
        "n_power_iter": _int(0),
        "batch_size": _optional(_int(1)),
        "refine_passes": _int(0),
        "refine_max_docs": _optional(_int(1)),
        "max_doc_update_iter": _int(1),
        "mean_change_tol": _real(0.0),
        "validation_fraction": _real(0.0, 1.0, low_open=True, high_open=True),
        "random_state": _seed,
        "verbose": _bool,
    }

    def __init__(self, n_topics=10, *, alpha0=1.0, alpha0_grid=(0.1, 0.3, 1.0, 3.0, 10.0),
                 decomposition="als", n_restarts=10, max_iter=100, tol=1e-10,
                 oversampling=20, n_power_iter=2, batch_size=None, refine_passes=3,
                 refine_max_docs=None,
                 max_doc_update_iter=100, mean_change_tol=1e-3, validation_fraction=0.1,
                 random_state=None, verbose=False):
        self.n_topics = n_topics
        self.alpha0 = alpha0
        self.alpha0_grid = alpha0_grid
        self.decomposition = decomposition
        self.n_restarts = n_restarts
        self.max_iter = max_iter
        self.tol = tol
        self.oversampling = oversampling
        self.n_power_iter = n_power_iter
        self.batch_size = batch_size
        self.refine_passes = refine_passes
        self.refine_max_docs = refine_max_docs
        self.max_doc_update_iter = max_doc_update_iter
        self.mean_change_tol = mean_change_tol
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.verbose = verbose

    # ---------------------------------------------------------------- sklearn plumbing
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.positive_only = True
        tags.transformer_tags.preserves_dtype = ["float64"]
        return tags

    @property
    def _n_features_out(self):
        return self.components_.shape[0]

    def _validate_params(self):
        for name, check in self._parameter_constraints.items():
            check(name, getattr(self, name))

    def _counts(self, X, *, reset: bool) -> CountMatrix:
        """Validate ``X`` (and n_features_in_) and wrap it as a CountMatrix."""
        if is_count_input(X) is None:
            X = validate_data(self, X, reset=reset, accept_sparse=("csr", "csc", "coo"),
                              dtype="numeric")
            check_non_negative(X, f"{type(self).__name__} (X)")
            return as_count_matrix(X)
        C = as_count_matrix(X)
        if reset:
            self.n_features_in_ = C.n_words
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        elif C.n_words != self.n_features_in_:
            raise ValueError(f"X has {C.n_words} features, but {type(self).__name__} is "
                             f"expecting {self.n_features_in_} features as input.")
        return C

    def _progress(self, total, desc):
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit="doc", disable=not self.verbose, leave=False)

    # ---------------------------------------------------------------- fitting
    def fit(self, X, y=None):
        """Learn topics and prior from the counts ``X`` (documents x words).

        Parameters
        ----------
        X : {array-like, sparse matrix, torch/cupy/dask array} of shape (n_docs, n_words)
            Word counts (non-negative, finite). A Dask array (chunked along
            documents) is fitted out of core, every pass a sum over its
            chunks on the Dask scheduler: see :func:`tensornet.distributed.fit_dask`.
        y : ignored

        Returns
        -------
        self
        """
        if callable(getattr(X, "__dask_graph__", None)):
            from ..distributed import fit_dask

            return fit_dask(self, X)
        self._validate_params()
        for attr in ("_sums", "_validation", "_seed"):
            self.__dict__.pop(attr, None)
        C = self._counts(X, reset=True)
        k = self.n_topics
        self._check_vocabulary(C.n_words)
        rng = check_random_state(self.random_state)
        m = min(C.n_words, k + self.oversampling)
        batch = self.batch_size or auto_batch_size(m, C.n_docs)
        passes = self.n_power_iter + 3
        with self._progress(C.n_docs * passes, "TensorLDA passes") as bar:
            first = first_pass(C, batch, progress=bar)
            self._check_usable(first.n_docs)
            Q, first = range_basis(C, m, self.n_power_iter, batch, rng,
                                   n_keep=self._n_keep(C.n_words), progress=bar, first=first)
            Q_host = np.asarray(_to_host(Q), dtype=np.float64)
            sums = accumulate_moment_sums(C, Q, Q_host, batch, progress=bar)
        self._sums = sums
        self.n_iter_ = passes
        self._validation = None
        if self.alpha0 == "auto":
            self._validation = self._validation_split(C, rng, Q, Q_host, batch)
        self._seed = int(rng.integers(2**31 - 1))
        self._finalize()
        if self.refine_passes:
            rows = self._refine_rows(C.n_docs)
            Cr = C if rows is None else C.row_subset(rows)
            with self._progress(Cr.n_docs * self.refine_passes, "TensorLDA refine") as bar:
                self.components_ = refine_topics(Cr, self.components_, self.alpha_,
                                                 self.refine_passes, progress=bar)
            self.n_iter_ += self.refine_passes
        return self

    def _refine_rows(self, n_docs):
        """Rows of the refinement sample (every s-th document), or None for all of them."""
        limit = self.refine_max_docs
        if limit is None or n_docs <= limit:
            return None
        stride = -(-n_docs // limit)
        return np.arange(0, n_docs, stride)

    def partial_fit(self, X, y=None):
        """Add a chunk of documents to the moments and update the topics.

        The first call fixes the basis of the topic subspace from its chunk
        (randomized range finder over that chunk); every later chunk adds its
        exact moment sums on that basis, so the result does not depend on how
        the later documents are split into chunks. Make the first chunk large
        enough to show every topic (thousands of documents, not tens). With
        ``alpha0='auto'`` the validation documents are taken from the first
        chunk. The decomposition (k-sized, milliseconds) is redone after
        every call.

        Returns
        -------
        self
        """
        first_call = not hasattr(self, "_sums")
        if first_call:
            self._validate_params()
        C = self._counts(X, reset=first_call)
        k = self.n_topics
        rng = check_random_state(self.random_state) if first_call else None
        if first_call:
            self._check_vocabulary(C.n_words)
            m = min(C.n_words, k + self.oversampling)
            batch = self.batch_size or auto_batch_size(m, C.n_docs)
            with self._progress(C.n_docs * (self.n_power_iter + 2), "TensorLDA basis") as bar:
                first = first_pass(C, batch, progress=bar)
                if first.n_docs == 0:
                    raise ValueError("the first partial_fit chunk has no document with at least "
                                     "3 tokens; the topic subspace cannot be found from it")
                Q, first = range_basis(C, m, self.n_power_iter, batch, rng,
                                       n_keep=self._n_keep(C.n_words), progress=bar,
                                       first=first)
            Q_host = np.asarray(_to_host(Q), dtype=np.float64)
            sums = MomentSums.zeros(Q_host)
            validation = None
            if self.alpha0 == "auto":
                validation, C = self._reserve_validation(C, rng)
            self._validation = validation
            passes = self.n_power_iter + 3
        else:
            Q_host = self._sums.basis
            Q = _from_host(Q_host, C)
            sums = self._sums
            batch = self.batch_size or auto_batch_size(Q_host.shape[1], C.n_docs)
            passes = 1
        with self._progress(C.n_docs, "TensorLDA moments") as bar:
            sums = sums + accumulate_moment_sums(C, Q, Q_host, batch, progress=bar)
        self._check_usable(sums.n_docs)
        self._sums = sums
        if first_call:
            self._seed = int(rng.integers(2**31 - 1))
        self.n_iter_ = passes
        self._finalize()
        return self

    def _n_keep(self, n_words):
        """Ritz vectors kept for the third-moment basis (plus the M1 direction)."""
        return min(n_words - 1, self.n_topics + _RITZ_EXTRA)

    def _check_vocabulary(self, n_words):
        if self.n_topics > n_words:
            raise ValueError(f"n_topics={self.n_topics} is larger than the vocabulary: X has "
                             f"n_features = {n_words} word(s); use n_topics <= {n_words}")

    def _check_usable(self, n_usable):
        if n_usable == 0:
            raise ValueError("every document of X has fewer than 3 tokens; the method of "
                             "moments needs documents of at least 3 words (n_samples = 0 usable)")
        if self.n_topics >= n_usable:
            raise ValueError(f"n_topics={self.n_topics} must be smaller than the number of "
                             f"documents with at least 3 tokens (n_samples = {n_usable} usable)")

    # ---------------------------------------------------------------- alpha0 = 'auto'
    def _validation_rows(self, n, rng):
        n_val = min(max(1, int(round(self.validation_fraction * n))), 5000, n - 1)
        if n_val < 1:
            raise ValueError("alpha0='auto' needs at least 2 documents to hold some out")
        return np.sort(rng.choice(n, size=n_val, replace=False))

    def _validation_split(self, C, rng, Q, Q_host, batch):
        rows = self._validation_rows(C.n_docs, rng)
        Cv = C.row_subset(rows)
        with self._progress(Cv.n_docs, "TensorLDA validation moments") as bar:
            vsums = accumulate_moment_sums(Cv, Q, Q_host, batch, progress=bar)
        return {"sums": vsums, "X": Cv.to_scipy()}

    def _reserve_validation(self, C, rng):
        rows = self._validation_rows(C.n_docs, rng)
        mask = np.ones(C.n_docs, dtype=bool)
        mask[rows] = False
        return {"sums": None, "X": C.row_subset(rows).to_scipy()}, C.row_subset(
            np.flatnonzero(mask))

    def _select_alpha0(self, train_sums, val_X):
        pm = project_moments(train_sums)
        scores = {}
        seed = self._seed
        for a0 in map(float, self.alpha0_grid):
            try:
                res = self._solve(pm, a0, np.random.default_rng(seed))
            except ValueError as exc:
                logger.info("alpha0=%g skipped: %s", a0, exc)
                continue
            scores[a0] = document_completion_loglik(
                val_X, res["components"], res["alpha"], random_state=seed,
                max_iter=self.max_doc_update_iter, tol=self.mean_change_tol)
            logger.info("alpha0=%g: held-out per-word log-likelihood %.4f", a0, scores[a0])
        if not scores:
            raise ValueError(f"no alpha0 in alpha0_grid={tuple(self.alpha0_grid)} lets the second "
                             f"moment support n_topics={self.n_topics} topics")
        best = max(scores, key=lambda a: (scores[a], -a))
        return best, scores

    # ---------------------------------------------------------------- from moments to topics
    def _finalize(self):
        """Choose alpha0 (for 'auto') and compute the topics from the moment sums.

        ``self._validation`` holds the validation documents and, when they are
        part of ``self._sums`` (``fit``), their own sums, which are taken out
        while alpha0 is chosen; the final topics use every document.
        """
        sums = self._sums
        scores = None
        if self.alpha0 == "auto":
            val = getattr(self, "_validation", None)
            if val is None:
                raise ValueError("alpha0='auto' needs validation documents; this model was fitted "
                                 "with a numeric alpha0, so refit it with alpha0='auto'")
            train = sums if val["sums"] is None else _subtract(sums, val["sums"])
            if train.n_docs <= self.n_topics:
                raise ValueError("too few documents with at least 3 tokens to hold some out "
                                 "for alpha0='auto'; pass a number for alpha0")
            alpha0, scores = self._select_alpha0(train, val["X"])
        else:
            alpha0 = float(self.alpha0)
        pm = project_moments(sums)
        res = self._solve(pm, alpha0, np.random.default_rng(self._seed))
        self.alpha0_ = alpha0
        self.alpha0_scores_ = scores or {}
        self.components_ = res["components"]
        self.alpha_ = res["alpha"]
        self.whitening_eigenvalues_ = res["whitening_eigenvalues"]
        self.tensor_eigenvalues_ = res["tensor_eigenvalues"]
        self.decomposition_residual_ = res["residual"]
        self.topic_mass_ = res["mass"]
        self.negative_mass_ = res["negative_mass"]
        self.n_tensor_iter_ = res["n_tensor_iter"]
        self.n_docs_ = sums.n_docs
        self.n_dropped_docs_ = sums.n_dropped

    def _solve(self, pm, alpha0, rng):
        """Whiten, decompose and unwhiten for one alpha0 (all k-sized work)."""
        k = self.n_topics
        wh = whiten(pm, k, alpha0)
        T = whitened_tensor(pm, wh, alpha0)
        decompose = DECOMPOSITIONS[self.decomposition]
        lam, U, n_iter = decompose(T, k, n_restarts=self.n_restarts, max_iter=self.max_iter,
                                   tol=self.tol, rng=rng)
        residual = decomposition_residual(T, lam, U)
        # unwhiten: mu_i = Q E diag(sqrt(sigma)) u_i * lambda_i (alpha0 + 2) / 2
        back = pm.basis @ (wh.eigenvectors * np.sqrt(wh.eigenvalues)[None, :])  # (V, k)
        mu = back @ U * (lam * (alpha0 + 2.0) / 2.0)[None, :]
        mass = mu.sum(0)
        flip = mass < 0
        mu[:, flip] *= -1
        mass = np.abs(mass)
        pos = np.clip(mu, 0.0, None)
        negative = pos.sum(0) - mu.sum(0)
        total = pos.sum(0)
        V = mu.shape[0]
        degenerate = total <= 0
        if degenerate.any():
            warnings.warn(f"{int(degenerate.sum())} recovered topic(s) had no positive mass and "
                          "were replaced by the uniform distribution", RuntimeWarning,
                          stacklevel=3)
            pos[:, degenerate] = 1.0
            total = pos.sum(0)
        beta = (pos / total[None, :]).T
        beta = (1.0 - _TOPIC_FLOOR) * beta + _TOPIC_FLOOR / V
        alpha = _prior_from_mixture(beta, pm.m1_full, alpha0, lam)
        order = np.argsort(-alpha, kind="stable")
        return {"components": beta[order], "alpha": alpha[order],
                "whitening_eigenvalues": wh.eigenvalues.copy(),
                "tensor_eigenvalues": lam[order], "residual": residual,
                "mass": mass[order],
                "negative_mass": (negative / np.maximum(total + negative, 1e-300))[order],
                "n_tensor_iter": n_iter}

    # ---------------------------------------------------------------- using the model
    def transform(self, X):
        """Document-topic proportions (rows sum to one) by the variational E-step.

        Topics and prior are held fixed; documents of any length (including
        those too short for the moments) are accepted. The result is on the
        backend of ``X`` (NumPy for NumPy/SciPy input).

        Parameters
        ----------
        X : {array-like, sparse matrix, torch.Tensor, cupy array} of shape (n_docs, n_words)

        Returns
        -------
        doc_topic : array of shape (n_docs, n_topics)
        """
        check_is_fitted(self, "components_")
        C = self._counts(X, reset=False)
        with self._progress(C.n_docs, "TensorLDA transform") as bar:
            gamma = variational_doc_topics(C, self.components_, self.alpha_,
                                           self.max_doc_update_iter, self.mean_change_tol,
                                           progress=bar)
        return gamma / gamma.sum(1)[:, None]

    def score(self, X, y=None):
        """Held-out per-word log-likelihood by document completion (higher is better).

        Each document's tokens are split in half at random (fixed seed); the
        proportions are inferred from one half and the other half is scored.
        See :func:`tensornet.topics.document_completion_loglik`.
        """
        check_is_fitted(self, "components_")
        C = self._counts(X, reset=False)
        return document_completion_loglik(C.to_scipy(), self.components_, self.alpha_,
                                          random_state=0, max_iter=self.max_doc_update_iter,
                                          tol=self.mean_change_tol)

    # ---------------------------------------------------------------- persistence
    _FITTED_ARRAYS = ("components_", "alpha_", "whitening_eigenvalues_", "tensor_eigenvalues_",
                      "topic_mass_", "negative_mass_")
    _FITTED_SCALARS = ("alpha0_", "n_iter_", "n_docs_", "n_dropped_docs_", "n_features_in_",
                       "decomposition_residual_", "n_tensor_iter_")

    def save(self, path):
        """Save the fitted model to the directory ``path`` (JSON + ``.npz``, no pickle).

        The moment sums are saved too, so a loaded model can continue with
        ``partial_fit``.
        """
        check_is_fitted(self, "components_")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        params = self.get_params()
        rs = params["random_state"]
        if rs is not None and not isinstance(rs, numbers.Integral):
            params["random_state"] = None
        params["alpha0_grid"] = [float(a) for a in params["alpha0_grid"]]
        meta = {
            "format": "tensornet.TensorLDA",
            "version": _FORMAT_VERSION,
            "params": params,
            "fitted": {name: _jsonable(getattr(self, name)) for name in self._FITTED_SCALARS},
            "alpha0_scores": [[float(a), float(s)] for a, s in self.alpha0_scores_.items()],
            "seed": int(self._seed),
            "moments": {name: _jsonable(getattr(self._sums, name))
                        for name in MomentSums.SCALARS} if hasattr(self, "_sums") else None,
        }
        if hasattr(self, "feature_names_in_"):
            meta["feature_names_in"] = [str(f) for f in self.feature_names_in_]
        arrays = {name: np.asarray(getattr(self, name)) for name in self._FITTED_ARRAYS}
        if hasattr(self, "_sums"):
            for name in MomentSums.ARRAYS:
                arrays["moments." + name] = getattr(self._sums, name)
        val = getattr(self, "_validation", None)
        if val is not None:
            v = val["X"].tocsr()
            arrays.update({"validation.data": v.data, "validation.indices": v.indices,
                           "validation.indptr": v.indptr,
                           "validation.shape": np.asarray(v.shape)})
            if val["sums"] is not None:
                meta["validation_moments"] = {name: _jsonable(getattr(val["sums"], name))
                                              for name in MomentSums.SCALARS}
                for name in MomentSums.ARRAYS[1:]:
                    arrays["validation_moments." + name] = getattr(val["sums"], name)
        (path / "tensorlda.json").write_text(json.dumps(meta, indent=1) + "\n")
        np.savez(path / "tensorlda.npz", **arrays)
        return path

    @classmethod
    def load(cls, path):
        """Load a model written by :meth:`save`."""
        path = Path(path)
        meta_file, arr_file = path / "tensorlda.json", path / "tensorlda.npz"
        if not meta_file.exists() or not arr_file.exists():
            raise FileNotFoundError(f"{path} does not hold a saved TensorLDA (expected "
                                    "tensorlda.json and tensorlda.npz)")
        meta = json.loads(meta_file.read_text())
        if meta.get("format") != "tensornet.TensorLDA":
            raise ValueError(f"{meta_file} is not a saved TensorLDA model")
        if meta.get("version", 0) > _FORMAT_VERSION:
            raise ValueError(f"{meta_file} was written by a newer tensornet (format version "
                             f"{meta['version']}); upgrade tensornet to read it")
        params = meta["params"]
        params["alpha0_grid"] = tuple(params["alpha0_grid"])
        model = cls(**params)
        with np.load(arr_file, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        for name in cls._FITTED_ARRAYS:
            setattr(model, name, arrays[name])
        for name, value in meta["fitted"].items():
            setattr(model, name, value)
        model.alpha0_scores_ = {a: s for a, s in meta.get("alpha0_scores", [])}
        if "feature_names_in" in meta:
            model.feature_names_in_ = np.asarray(meta["feature_names_in"], dtype=object)
        if meta.get("moments") is not None:
            sums = MomentSums(basis=arrays["moments.basis"], **meta["moments"])
            for name in MomentSums.ARRAYS[1:]:
                setattr(sums, name, arrays["moments." + name])
            model._sums = sums
            model._seed = int(meta["seed"])
        if "validation.data" in arrays:
            vsums = None
            if meta.get("validation_moments") is not None:
                vsums = MomentSums(basis=arrays["moments.basis"], **meta["validation_moments"])
                for name in MomentSums.ARRAYS[1:]:
                    setattr(vsums, name, arrays["validation_moments." + name])
            model._validation = {"sums": vsums, "X": sp.csr_matrix(
                (arrays["validation.data"], arrays["validation.indices"],
                 arrays["validation.indptr"]), shape=tuple(arrays["validation.shape"]))}
        return model


#: smallest α_i, relative to α0 / k (topics the corpus does not use still need α_i > 0)
_ALPHA_FLOOR = 1e-3


def _prior_from_mixture(beta, m1, alpha0, lam):
    """``α`` from ``M1 = Σ_i (α_i / α0) μ_i``: non-negative least squares over the topics.

    The tensor eigenvalues also determine the prior, ``α_i = 4 α0 (α0 + 1) /
    ((α0 + 2)^2 λ_i^2)``, but on real text some components have ``λ_i`` near
    zero (directions of noise rather than topics, with almost no mass before
    clipping), which that formula turns into an enormous ``α_i`` that swamps
    every document's proportions. The first moment gives each topic its share
    of the corpus's words instead, satisfies ``Σ α_i = α0`` by construction, and
    gives such components almost no weight. When the least squares fail, the
    eigenvalue formula is used, each ``α_i`` capped at ``α0`` and rescaled to sum
    to ``α0``.
    """
    from scipy.optimize import nnls

    k = beta.shape[0]
    m1 = np.clip(np.asarray(m1, dtype=np.float64), 0.0, None)
    w = None
    if m1.sum() > 0:
        try:
            # the same least squares on the k x k normal equations: ||B w - m||^2 =
            # ||L^T w - L^-1 B^T m||^2 + const for B^T B = L L^T (V x k would cost seconds)
            G = beta @ beta.T
            G[np.diag_indices_from(G)] += 1e-12 * np.trace(G) / k
            L = np.linalg.cholesky(G)
            w, _ = nnls(L.T, np.linalg.solve(L, beta @ (m1 / m1.sum())))
        except (RuntimeError, ValueError, np.linalg.LinAlgError) as exc:
            logger.info("prior by least squares failed (%s); using the tensor eigenvalues", exc)
            w = None
    if w is None or not np.isfinite(w).all() or w.sum() <= 0:
        top = max(float(lam.max()), 1e-300)
        lam_safe = np.maximum(lam, 1e-12 * top)
        w = np.minimum(4.0 * alpha0 * (alpha0 + 1.0) / ((alpha0 + 2.0) ** 2 * lam_safe ** 2),
                       alpha0)
    alpha = alpha0 * w / w.sum()
    floor = _ALPHA_FLOOR * alpha0 / k
    alpha = np.maximum(alpha, floor)
    return alpha * (alpha0 / alpha.sum())


def _subtract(a: MomentSums, b: MomentSums) -> MomentSums:
    return MomentSums(basis=a.basis, n_docs=a.n_docs - b.n_docs,
                      n_dropped=a.n_dropped - b.n_dropped, n_tokens=a.n_tokens - b.n_tokens,
                      m1=a.m1 - b.m1, tau2=a.tau2 - b.tau2, tau3=a.tau3 - b.tau3,
                      pp2=a.pp2 - b.pp2, rho=a.rho - b.rho, ppp3=a.ppp3 - b.ppp3)


def _jsonable(v):
    if isinstance(v, np.generic):
        return v.item()
    return v
