"""Topic-quality metrics shared by every model: coherence, top words, recovery error."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from ._counts import _to_host, as_count_matrix

__all__ = ["COHERENCE_MEASURES", "TopicMatch", "coherence", "match_topics", "top_words"]

#: the epsilon gensim adds inside its logarithms (gensim.topic_coherence.direct_confirmation_measure)
_EPSILON = 1e-12

COHERENCE_MEASURES = ("npmi", "umass")


def _topic_ids(top_words, feature_names):
    if isinstance(top_words, (str, bytes)) or not hasattr(top_words, "__iter__"):
        raise TypeError("top_words must be a sequence of topics, each a sequence of word "
                        f"indices or words; got {top_words!r}")
    topics = [list(t) for t in top_words]
    if not topics or any(len(t) < 2 for t in topics):
        raise ValueError("top_words must hold at least one topic, each with at least 2 words")
    lookup = None
    out = []
    for t in topics:
        ids = []
        for w in t:
            if isinstance(w, (int, np.integer)) and not isinstance(w, bool):
                ids.append(int(w))
                continue
            if feature_names is None:
                raise TypeError("top_words holds words, not column indices; pass feature_names "
                                "to map them to the columns of X")
            if lookup is None:
                lookup = {str(f): i for i, f in enumerate(feature_names)}
            try:
                ids.append(lookup[str(w)])
            except KeyError:
                raise ValueError(f"word {w!r} of top_words is not in feature_names") from None
        out.append(ids)
    return out


def coherence(top_words, X, measure: str = "npmi", *, feature_names=None,
              aggregate: bool = True):
    """Topic coherence of top-word lists from document co-occurrence in ``X``.

    Probabilities are document frequencies: ``P(w) = D(w) / N`` and
    ``P(w1, w2) = D(w1, w2) / N`` with ``N`` the number of documents.

    * ``'npmi'``: mean over ordered pairs ``i != j`` of
      ``log((P(wi, wj) + ε) / (P(wi) P(wj))) / -log(P(wi, wj) + ε)``
      -- gensim's ``c_npmi`` with a window as long as the longest document.
    * ``'umass'``: mean over pairs ``i > j`` (``wj`` ranked higher) of
      ``log((P(wi, wj) + ε) / P(wj))`` -- gensim's ``u_mass``.

    ``ε = 1e-12`` as in gensim. Pairs with a word that occurs in no document
    contribute 0 (gensim would return an infinite value).

    Parameters
    ----------
    top_words : sequence of sequences
        Per topic, its top words in rank order: column indices of ``X``, or
        words together with ``feature_names``.
    X : sparse or dense count matrix (n_docs, n_words)
        Reference corpus (any backend; only which words occur matters).
    measure : {'npmi', 'umass'}
    feature_names : sequence of str, optional
        Column names of ``X`` (e.g. ``CountVectorizer.get_feature_names_out()``).
    aggregate : bool, default True
        Return the mean over topics (gensim's ``get_coherence``); with False,
        one value per topic.

    Returns
    -------
    float or ndarray of shape (n_topics,)

    Examples
    --------
    >>> import numpy as np
    >>> from tensornet.topics import coherence
    >>> X = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1], [1, 0, 1]])
    >>> round(coherence([[0, 1]], X, "npmi"), 4)
    0.415
    >>> round(coherence([[0, 1]], X, "umass"), 4)
    -0.4055
    """
    if measure not in COHERENCE_MEASURES:
        raise ValueError(f"measure must be one of {', '.join(map(repr, COHERENCE_MEASURES))}; "
                         f"got {measure!r}")
    topics = _topic_ids(top_words, feature_names)
    C = as_count_matrix(X)
    V = C.n_words
    for t in topics:
        bad = [w for w in t if not 0 <= w < V]
        if bad:
            raise ValueError(f"top_words holds column indices {bad} outside X's {V} columns")
    Xs = C.to_scipy()
    vocab = np.unique(np.concatenate([np.asarray(t) for t in topics]))
    pos = {w: i for i, w in enumerate(vocab)}
    B = Xs[:, vocab]
    B.data = (B.data > 0).astype(np.float64)
    B.eliminate_zeros()
    D = np.asarray((B.T @ B).toarray())  # document co-occurrence counts
    N = float(C.n_docs)
    scores = np.empty(len(topics))
    for ti, t in enumerate(topics):
        idx = np.array([pos[w] for w in t])
        occ = np.diag(D)[idx] / N
        co = D[np.ix_(idx, idx)] / N
        n = len(idx)
        vals = []
        for i in range(n):
            for j in range(n):
                if measure == "npmi":
                    if i == j:
                        continue
                    if occ[i] == 0 or occ[j] == 0:
                        vals.append(0.0)
                        continue
                    num = np.log((co[i, j] + _EPSILON) / (occ[i] * occ[j]))
                    vals.append(num / -np.log(co[i, j] + _EPSILON))
                else:
                    if j >= i:
                        continue
                    if occ[j] == 0:
                        vals.append(0.0)
                        continue
                    vals.append(np.log((co[i, j] + _EPSILON) / occ[j]))
        scores[ti] = float(np.mean(vals))
    return float(scores.mean()) if aggregate else scores


def top_words(model, feature_names: Sequence[str] | None = None, n: int = 10):
    """The ``n`` most probable words of every topic, most probable first.

    Parameters
    ----------
    model : fitted estimator with ``components_`` (e.g. TensorLDA, scikit-learn's
        LatentDirichletAllocation) or an array (n_topics, n_words)
    feature_names : sequence of str, optional
        Vocabulary; without it the column indices are returned.
    n : int
        Words per topic.

    Returns
    -------
    list of lists
        Words (or column indices), one list per topic.

    Examples
    --------
    >>> import numpy as np
    >>> from tensornet.topics import top_words
    >>> top_words(np.array([[0.1, 0.7, 0.2], [0.5, 0.1, 0.4]]), ["a", "b", "c"], n=2)
    [['b', 'c'], ['a', 'c']]
    """
    comps = getattr(model, "components_", model)
    comps = np.asarray(_to_host(comps), dtype=np.float64)
    if comps.ndim != 2:
        raise ValueError(f"model must have components_ of shape (n_topics, n_words); got shape "
                         f"{comps.shape}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer; got {n!r}")
    if feature_names is not None and len(feature_names) != comps.shape[1]:
        raise ValueError(f"feature_names has {len(feature_names)} entries but the model has "
                         f"{comps.shape[1]} words")
    n = min(int(n), comps.shape[1])
    order = np.argsort(-comps, axis=1, kind="stable")[:, :n]
    if feature_names is None:
        return [[int(i) for i in row] for row in order]
    names = list(feature_names)
    return [[str(names[i]) for i in row] for row in order]


class TopicMatch(NamedTuple):
    """Result of :func:`match_topics`."""

    mean_l1: float
    l1: np.ndarray  # per true topic
    order: np.ndarray  # estimated topic matched to each true topic


def match_topics(true_topics, estimated_topics) -> TopicMatch:
    """Match estimated to true topics (Hungarian, L1 cost) and report the L1 errors.

    Both arguments are (k, V) arrays with rows on the simplex (rows are
    renormalised). ``mean_l1`` is the mean over true topics of
    ``||β_true - β_matched||_1`` (between 0 and 2).

    Examples
    --------
    >>> import numpy as np
    >>> from tensornet.topics import match_topics
    >>> t = np.array([[0.5, 0.5, 0.0], [0.0, 0.2, 0.8]])
    >>> m = match_topics(t, t[::-1])
    >>> m.mean_l1, m.order.tolist()
    (0.0, [1, 0])
    """
    A = np.asarray(_to_host(true_topics), dtype=np.float64)
    B = np.asarray(_to_host(estimated_topics), dtype=np.float64)
    if A.ndim != 2 or B.ndim != 2 or A.shape[1] != B.shape[1]:
        raise ValueError(f"true_topics and estimated_topics must be (k, V) arrays with the same V; "
                         f"got shapes {A.shape} and {B.shape}")
    A = A / A.sum(1, keepdims=True)
    B = B / B.sum(1, keepdims=True)
    cost = cdist(A, B, "cityblock")
    r, c = linear_sum_assignment(cost)
    l1 = cost[r, c]
    return TopicMatch(float(l1.mean()), l1, c)
