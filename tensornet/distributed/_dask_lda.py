"""Spectral LDA on a Dask cluster: every moment a sum over partitions.

:class:`~tensornet.topics.TensorLDA` needs a few passes over the counts,
and every quantity a pass produces is a sum over documents
(:mod:`tensornet.topics._moments`). :func:`fit_dask` runs each pass as one
task per partition of a Dask array of count chunks, adds the partial sums
in a tree on the workers, and does the k-sized work (range-finder
orthonormalisation, whitening, tensor decomposition) on the client,
exactly as ``TensorLDA.fit`` does in memory:

1. first pass: document counts, ``Σ c/l`` and ``Σ s2 c`` (O(nnz));
2. ``1 + n_power_iter`` products ``Σ_d s2_d c_d (c_d^T X)`` of the range
   finder (X: V x m, float32, scattered to the workers once per pass);
3. one pass accumulating :class:`~tensornet.topics.MomentSums` on the basis;
4. ``refine_passes`` variational EM passes, each an E-step per partition
   returning its V x k sufficient statistics, the M-step on the client.

No partition is ever gathered: a worker holds one chunk (plus one batch of
pair products) at a time, and a chunk is re-read from its source on each
pass unless the user persisted the array. With the same data, seed and
batch size the result equals the in-memory fit up to the summation order
of floating-point sums.
"""

from __future__ import annotations

import copy
import inspect
import logging
import numbers

import numpy as np
import scipy.sparse as sp

__all__ = ["counts_from_bag", "fit_dask"]

logger = logging.getLogger(__name__)


def _require_dask():
    try:
        import dask
        import dask.array  # noqa: F401
    except ImportError as exc:  # pragma: no cover - dask is a test dependency
        raise ImportError("fit_dask needs Dask: pip install 'tensornet[dist]'") from exc


def _is_dask_array(X) -> bool:
    try:
        import dask.array as da
    except ImportError:  # pragma: no cover
        return False
    return isinstance(X, da.Array)


def _is_dask_bag(X) -> bool:
    try:
        import dask.bag as db
    except ImportError:  # pragma: no cover
        return False
    return isinstance(X, db.Bag)


# --------------------------------------------------------------------------- bags of documents
def _vocabulary_index(vocabulary) -> dict:
    if isinstance(vocabulary, dict):
        index = {}
        V = len(vocabulary)
        for word, i in vocabulary.items():
            if isinstance(i, bool) or not isinstance(i, numbers.Integral) or not 0 <= i < V:
                raise ValueError(f"vocabulary must map each word to an index in [0, {V}); "
                                 f"got {word!r} -> {i!r}")
            index[word] = int(i)
        if len(set(index.values())) != V:
            raise ValueError("vocabulary maps two words to the same index")
        return index
    if isinstance(vocabulary, (str, bytes)) or not hasattr(vocabulary, "__iter__"):
        raise TypeError("vocabulary must be a sequence of words or a dict word -> index; got "
                        f"{type(vocabulary).__name__}")
    words = list(vocabulary)
    index = {w: i for i, w in enumerate(words)}
    if len(index) != len(words):
        raise ValueError("vocabulary holds a word twice; words must be unique")
    if not index:
        raise ValueError("vocabulary is empty")
    return index


def _documents_to_csr(docs, index: dict, n_words: int) -> sp.csr_matrix:
    """Documents (strings split on whitespace, or sequences of tokens) -> CSR counts."""
    indptr, indices = [0], []
    for doc in docs:
        tokens = doc.split() if isinstance(doc, str) else doc
        ids = [index[t] for t in tokens if t in index]
        indices.extend(ids)
        indptr.append(len(indices))
    ind = np.asarray(indices, dtype=np.int64)
    rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    mat = sp.csr_matrix((np.ones(len(ind)), (rows, ind)), shape=(len(indptr) - 1, n_words))
    mat.sum_duplicates()
    return mat


def counts_from_bag(bag, vocabulary):
    """A Dask bag of documents as a Dask array of sparse count chunks (one per partition).

    Parameters
    ----------
    bag : dask.bag.Bag
        Each element one document: a string (split on whitespace) or a
        sequence of tokens. Tokens outside ``vocabulary`` are ignored.
    vocabulary : sequence of str or dict
        The words (column ``i`` is ``vocabulary[i]``), or a dict word -> column.

    Returns
    -------
    dask.array.Array
        Shape ``(n_docs, len(vocabulary))`` with ``scipy.sparse.csr_matrix``
        chunks, chunked along documents only (the number of documents per
        chunk is unknown until computed).

    Examples
    --------
    >>> import dask.bag as db
    >>> from tensornet.distributed import counts_from_bag
    >>> docs = db.from_sequence(["a b a", "c b", "a a a d"], npartitions=2)
    >>> X = counts_from_bag(docs, ["a", "b", "c"])
    >>> X.compute(scheduler="sync").toarray()
    array([[2., 1., 0.],
           [0., 1., 1.],
           [3., 0., 0.]])
    """
    _require_dask()
    import dask
    import dask.array as da

    if not _is_dask_bag(bag):
        raise TypeError(f"bag must be a dask.bag.Bag of documents; got {type(bag).__name__}")
    index = _vocabulary_index(vocabulary)
    V = len(index)
    meta = sp.csr_matrix((0, V))
    chunks = [da.from_delayed(dask.delayed(_documents_to_csr)(part, index, V),
                              shape=(np.nan, V), dtype=np.float64, meta=meta)
              for part in bag.to_delayed()]
    return da.concatenate(chunks, axis=0)


# --------------------------------------------------------------------------- partition tasks
def _count_matrix(chunk):
    """The chunk as a CountMatrix, or None for a chunk without documents."""
    from ..topics import as_count_matrix

    if chunk.shape[0] == 0:
        return None
    return as_count_matrix(chunk, name="a chunk of X")


def _on_backend(Q: np.ndarray, C):
    """The host array ``Q`` on the backend and device of the count matrix ``C``."""
    if C.backend == "pytorch":
        import torch

        return torch.as_tensor(Q, device=C.device)
    if C.backend == "cupy":  # pragma: no cover - needs a GPU
        import cupy

        with cupy.cuda.Device(C.device):
            return cupy.asarray(Q)
    return Q


def _to_host(x):
    from .._backend import to_numpy

    return to_numpy(x)


def _first_part(chunk, batch_size):
    from ..topics import first_pass

    C = _count_matrix(chunk)
    if C is None:
        return None, 0
    f = first_pass(C, batch_size)
    f.m1 = _to_host(f.m1)
    f.tau2 = _to_host(f.tau2)
    return f, C.n_docs


def _e2_part(chunk, X, first, batch_size):
    from ..topics import e2_product

    C = _count_matrix(chunk)
    if C is None:
        return None
    Y, _ = e2_product(C, _on_backend(X, C), batch_size, first=first, dtype=X.dtype,
                      normalize=False)
    return None if Y is None else _to_host(Y)


def _moments_part(chunk, Q, batch_size):
    from ..topics import accumulate_moment_sums

    C = _count_matrix(chunk)
    if C is None:
        return None
    return accumulate_moment_sums(C, _on_backend(Q, C), Q, batch_size)


def _refine_part(chunk, betaT, alpha, max_iter, tol, rows=None):
    """Σ_d c_dw φ_dwk / β_kw over the documents of one chunk (V x k, host).

    ``rows``: the chunk's documents in the refinement sample (None: all).
    """
    from .._backend import backend_for
    from ..topics._counts import _from_host
    from ..topics._inference import _estep_batch, _nnz_bounds

    C = _count_matrix(chunk)
    if C is None:
        return None
    if rows is not None:
        C = C.row_subset(rows)
    bT = _from_host(betaT, C)
    a = _from_host(alpha, C)
    total = None
    with backend_for(C.backend):
        for lo, hi in _nnz_bounds(C, betaT.shape[1]):
            _, _, part = _estep_batch(C.batch(lo, hi), bT, a, max_iter, tol, stats=True)
            total = part if total is None else total + part
    return None if total is None else np.asarray(_to_host(total), dtype=np.float64)


def _by_chunk(chosen, rows):
    """Sorted global row numbers ``chosen`` split into each chunk's local row numbers.

    ``rows``: the number of documents in each chunk, in order.
    """
    offsets = np.concatenate([[0], np.cumsum(rows)])
    return [chosen[(chosen >= lo) & (chosen < hi)] - lo
            for lo, hi in zip(offsets[:-1], offsets[1:])]


def _rows_part(chunk, rows):
    return sp.csr_matrix(chunk)[rows]


def _add_first(a, b):
    out = copy.copy(a)
    out.n_docs, out.n_dropped = a.n_docs + b.n_docs, a.n_dropped + b.n_dropped
    out.n_tokens = a.n_tokens + b.n_tokens
    out.m1, out.tau2 = a.m1 + b.m1, a.tau2 + b.tau2
    return out


def _tree_sum(items, add, split_every):
    """Delayed sum of delayed ``items`` (``None`` terms skipped), ``split_every`` at a time."""
    import dask

    def add_many(*xs):
        xs = [x for x in xs if x is not None]
        if not xs:
            return None
        out = xs[0]
        for x in xs[1:]:
            out = add(out, x)
        return out

    level = list(items)
    while len(level) > 1:
        level = [dask.delayed(add_many)(*level[i:i + split_every])
                 for i in range(0, len(level), split_every)]
    return level[0] if len(level) == 1 else dask.delayed(add_many)(*level)


def _plus(a, b):
    return a + b


# --------------------------------------------------------------------------- the fit
def _partitions(X, vocabulary):
    if _is_dask_bag(X):
        if vocabulary is None:
            raise ValueError("a Dask bag of documents needs vocabulary= (the words of the "
                             "columns); or convert it with counts_from_bag(bag, vocabulary)")
        X = counts_from_bag(X, vocabulary)
    elif not _is_dask_array(X):
        raise TypeError("X must be a dask.array.Array of document x word counts (chunks of "
                        "scipy.sparse matrices or NumPy arrays) or a dask.bag.Bag of documents; "
                        f"got {type(X).__name__}")
    elif vocabulary is not None:
        raise ValueError("vocabulary= is only for a Dask bag of documents; X is a Dask array")
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (documents x words); got {X.ndim} dimensions")
    if X.numblocks[1] != 1:
        raise ValueError(f"X must be chunked along documents only (one chunk spans all "
                         f"{X.shape[1]} words); got {X.numblocks[1]} column chunks: use "
                         "X.rechunk({1: -1})")
    if not np.isfinite(X.shape[1]) or X.shape[1] < 1:
        raise ValueError(f"X must have a known, positive number of words; got shape {X.shape}")
    return list(X.to_delayed()[:, 0]), int(X.shape[1])


def fit_dask(model, X, *, vocabulary=None, client=None, split_every: int = 8):
    """Fit a :class:`~tensornet.topics.TensorLDA` on a corpus held by Dask, out of core.

    Each pass over the documents runs as one task per chunk of ``X`` on
    the Dask scheduler (a ``dask.distributed`` cluster when a client is
    active or given), and the partial sums are added in a tree on the
    workers; only k-sized and V x (k + oversampling) arrays reach the
    client. The fitted model is the one ``model.fit`` would give on the
    same counts with the same ``random_state`` and ``batch_size`` (equal up
    to the order of floating-point sums).

    Parameters
    ----------
    model : TensorLDA
        Its parameters are used; it is fitted in place and returned.
        ``refine_passes`` variational EM passes run on the cluster too:
        each is one E-step task per chunk returning its k x V sufficient
        statistics, added in the same tree, then the M-step on the client.
    X : dask.array.Array or dask.bag.Bag
        Counts, documents x words, chunked along documents only, with chunks
        that are SciPy sparse matrices or NumPy arrays (or torch / CuPy
        ones on GPU workers); or a bag of documents with ``vocabulary``
        (see :func:`counts_from_bag`).
    vocabulary : sequence of str or dict, optional
        Only for a bag.
    client : dask.distributed.Client, optional
        Default: the active client if any, else Dask's default scheduler.
    split_every : int >= 2, default 8
        Partial sums added per task of the reduction tree.

    Returns
    -------
    TensorLDA
        ``model``, fitted.

    Examples
    --------
    >>> import dask.array as da
    >>> from tensornet.datasets import make_lda_corpus
    >>> from tensornet.distributed import fit_dask
    >>> from tensornet.topics import TensorLDA
    >>> X, topics, alpha = make_lda_corpus(2000, 50, 3, alpha=0.3, doc_length=50,
    ...                                    random_state=0)
    >>> chunks = da.from_array(X, chunks=(500, 50), asarray=False)
    >>> lda = fit_dask(TensorLDA(n_topics=3, alpha0=0.9, random_state=0), chunks)
    >>> ref = TensorLDA(n_topics=3, alpha0=0.9, random_state=0).fit(X)
    >>> bool(abs(lda.components_ - ref.components_).max() < 1e-6)
    True
    """
    _require_dask()
    import dask

    from .._validation import check_random_state
    from ..topics import TensorLDA, as_count_matrix, range_basis
    from ..topics import accumulate_moment_sums as _accumulate
    from ..topics._moments import auto_batch_size

    if not isinstance(model, TensorLDA):
        raise TypeError(f"model must be a tensornet.topics.TensorLDA; got {type(model).__name__}")
    if isinstance(split_every, bool) or not isinstance(split_every, numbers.Integral) \
            or split_every < 2:
        raise ValueError(f"split_every must be an int >= 2; got {split_every!r}")
    parts, V = _partitions(X, vocabulary)

    active = client if client is not None else _active_client()

    def compute(*objs):
        if client is not None:
            return tuple(client.compute(list(objs), sync=True))
        return dask.compute(*objs)

    def share(array):
        """``array`` for the tasks of one pass: sent to every worker once, not in the graph."""
        if active is not None:
            return active.scatter(array, broadcast=True, hash=False)
        return dask.delayed(array)

    # --- the steps of TensorLDA.fit, with the passes over the data on the cluster
    model._validate_params()
    for attr in ("_sums", "_validation", "_seed", "feature_names_in_"):
        model.__dict__.pop(attr, None)
    model.n_features_in_ = V
    model._check_vocabulary(V)
    k = model.n_topics
    rng = check_random_state(model.random_state)
    m = min(V, k + model.oversampling)
    known = X.shape[0] if _is_dask_array(X) and np.isfinite(X.shape[0]) else None
    batch = model.batch_size or auto_batch_size(m, known or (1 << 17))

    firsts = [dask.delayed(_first_part, nout=2)(p, batch) for p in parts]
    first, rows = compute(_tree_sum([f[0] for f in firsts], _add_first, split_every),
                          [f[1] for f in firsts])
    n_rows = int(sum(rows))
    logger.info("fit_dask: %d documents in %d chunks (%d with >= 3 tokens)", n_rows,
                len(parts), 0 if first is None else first.n_docs)
    model._check_usable(0 if first is None else first.n_docs)
    if model.batch_size is None and known is None:
        batch = auto_batch_size(m, n_rows)
    first_d = dask.delayed(first)

    def e2_sum(Xq):
        Xd = share(np.asarray(Xq))
        total, = compute(_tree_sum([dask.delayed(_e2_part)(p, Xd, first_d, batch)
                                    for p in parts], _plus, split_every))
        return total

    # C only supplies the vocabulary size and the backend of the basis (NumPy on the client)
    template = as_count_matrix(sp.csr_matrix((1, V)))
    Q, first = range_basis(template, m, model.n_power_iter, batch, rng,
                           n_keep=model._n_keep(V), first=first, e2_sum=e2_sum)
    Q_host = np.asarray(Q, dtype=np.float64)
    Qd = share(Q_host)
    sums, = compute(_tree_sum([dask.delayed(_moments_part)(p, Qd, batch) for p in parts],
                              _plus, split_every))
    model._sums = sums
    model.n_iter_ = model.n_power_iter + 3
    model._validation = None
    if model.alpha0 == "auto":
        # the same held-out rows as the in-memory fit, gathered from their chunks
        chosen = _by_chunk(model._validation_rows(n_rows, rng), rows)
        pieces = [dask.delayed(_rows_part)(p, sel) for p, sel in zip(parts, chosen) if sel.size]
        Xv = sp.vstack(compute(*pieces), format="csr")
        Cv = as_count_matrix(Xv)
        vsums = _accumulate(Cv, Q_host, Q_host, batch)
        model._validation = {"sums": vsums, "X": Cv.to_scipy()}
    model._seed = int(rng.integers(2**31 - 1))
    model._finalize()
    if model.refine_passes:
        # the same documents as the in-memory refinement (TensorLDA.refine_max_docs)
        chosen = model._refine_rows(n_rows)
        selections = [None] * len(parts) if chosen is None else _by_chunk(chosen, rows)
        model.components_ = _refine(model, parts, selections, share, compute, split_every)
        model.n_iter_ += model.refine_passes
    return model


def _refine(model, parts, selections, share, compute, split_every):
    """``refine_topics`` with its sum over documents done per chunk on the cluster."""
    import dask

    from ..topics._inference import _refine_mstep, refine_topics

    # the settings TensorLDA.fit uses in memory: refine_topics' defaults
    defaults = {name: p.default for name, p in inspect.signature(refine_topics).parameters.items()
                if p.default is not inspect.Parameter.empty}
    max_iter, tol = defaults["max_iter"], defaults["tol"]
    prior = defaults["topic_word_prior"]
    beta = np.asarray(model.components_, dtype=np.float64)
    alpha_d = share(np.asarray(model.alpha_, dtype=np.float64))
    for i in range(model.refine_passes):
        betaT = share(np.ascontiguousarray(beta.T))
        sst, = compute(_tree_sum([dask.delayed(_refine_part)(p, betaT, alpha_d, max_iter, tol, sel)
                                  for p, sel in zip(parts, selections)
                                  if sel is None or sel.size], _plus, split_every))
        if sst is None:
            raise ValueError("no documents to refine the topics on")
        beta = _refine_mstep(beta, sst, prior)
        logger.info("fit_dask: refinement pass %d of %d done", i + 1, model.refine_passes)
    return beta


def _active_client():
    """The active ``dask.distributed`` client, or None."""
    try:
        from distributed import get_client
    except ImportError:  # pragma: no cover - dask without distributed
        return None
    try:
        return get_client()
    except ValueError:
        return None
