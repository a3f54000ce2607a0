"""Coherence (against gensim), top words, topic matching."""

import numpy as np
import pytest
import scipy.sparse as sp

from tensornet.datasets import load_lee_corpus
from tensornet.topics import TensorLDA, coherence, match_topics, top_words


@pytest.fixture(scope="module")
def lee():
    corpus = load_lee_corpus()
    X, vocab, _ = corpus.vectorize()
    model = TensorLDA(6, random_state=0).fit(X)
    return X, vocab, top_words(model, vocab, 10)


def _texts(X, vocab):
    X = sp.csr_matrix(X)
    texts = []
    for d in range(X.shape[0]):
        lo, hi = X.indptr[d], X.indptr[d + 1]
        texts.append([vocab[j] for j, c in zip(X.indices[lo:hi], X.data[lo:hi])
                      for _ in range(int(c))])
    return texts


@pytest.mark.parametrize("measure, gensim_name", [("npmi", "c_npmi"), ("umass", "u_mass")])
def test_coherence_matches_gensim(lee, measure, gensim_name):
    gensim = pytest.importorskip("gensim")
    from gensim.corpora import Dictionary
    from gensim.models import CoherenceModel

    X, vocab, topics = lee
    texts = _texts(X, vocab)
    dictionary = Dictionary(texts)
    kwargs = dict(topics=topics, dictionary=dictionary, coherence=gensim_name, processes=1,
                  topn=10)
    if measure == "npmi":
        kwargs.update(texts=texts, window_size=max(len(t) for t in texts))
    else:
        kwargs.update(corpus=[dictionary.doc2bow(t) for t in texts])
    cm = CoherenceModel(**kwargs)
    theirs = np.array(cm.get_coherence_per_topic())
    ours = coherence(topics, X, measure, feature_names=vocab, aggregate=False)
    np.testing.assert_allclose(ours, theirs, atol=1e-4)
    assert coherence(topics, X, measure, feature_names=vocab) == pytest.approx(
        cm.get_coherence(), abs=1e-4)
    assert gensim.__version__


def test_coherence_by_hand():
    X = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1], [1, 0, 1]])
    # D(0)=3, D(1)=2, D(0,1)=2, D(2)=2, D(0,2)=1, D(1,2)=0, N=4
    eps = 1e-12
    npmi01 = np.log((0.5 + eps) / (0.75 * 0.5)) / -np.log(0.5 + eps)
    npmi12 = np.log(eps / (0.5 * 0.5)) / -np.log(eps)
    assert coherence([[0, 1]], X, "npmi") == pytest.approx(npmi01)
    assert coherence([[1, 2]], X, "npmi") == pytest.approx(npmi12)
    assert npmi12 == pytest.approx(-1.0, abs=0.1)
    # umass over pairs (w_i, w_j), j < i: log((D(wi, wj)/N + eps) / (D(wj)/N))
    want = np.mean([np.log((0.5 + eps) / 0.75), np.log((0.25 + eps) / 0.75),
                    np.log((0.0 + eps) / 0.5)])
    assert coherence([[0, 1, 2]], X, "umass") == pytest.approx(want)
    per = coherence([[0, 1], [1, 2]], X, "npmi", aggregate=False)
    np.testing.assert_allclose(per, [npmi01, npmi12])


def test_coherence_words_absent_from_the_reference_count_zero():
    X = np.array([[1, 1, 0], [1, 1, 0]])
    assert coherence([[0, 2]], X, "npmi") == 0.0
    assert np.isfinite(coherence([[2, 0, 1]], X, "umass"))


def test_coherence_rejects_bad_arguments():
    X = np.eye(3)
    with pytest.raises(ValueError, match="measure must be one of"):
        coherence([[0, 1]], X, "cv")
    with pytest.raises(ValueError, match="outside X's 3 columns"):
        coherence([[0, 5]], X)
    with pytest.raises(TypeError, match="feature_names"):
        coherence([["a", "b"]], X)
    with pytest.raises(ValueError, match="not in feature_names"):
        coherence([["a", "z"]], X, feature_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="at least 2 words"):
        coherence([[0]], X)


def test_top_words_orders_by_probability():
    comps = np.array([[0.1, 0.5, 0.2, 0.2], [0.4, 0.0, 0.3, 0.3]])
    assert top_words(comps, n=3) == [[1, 2, 3], [0, 2, 3]]
    assert top_words(comps, ["a", "b", "c", "d"], n=2) == [["b", "c"], ["a", "c"]]
    assert top_words(comps, n=10)[0] == [1, 2, 3, 0]
    with pytest.raises(ValueError, match="feature_names has 2 entries"):
        top_words(comps, ["a", "b"])
    with pytest.raises(ValueError, match="positive integer"):
        top_words(comps, n=0)


def test_match_topics_finds_the_permutation():
    rng = np.random.default_rng(0)
    true = rng.dirichlet(np.ones(30), size=5)
    perm = np.array([3, 0, 4, 1, 2])
    est = true[perm] * 0.9 + 0.1 / 30
    m = match_topics(true, est)
    np.testing.assert_array_equal(perm[m.order], np.arange(5))
    np.testing.assert_allclose(m.l1, 0.1 * np.abs(true - 1 / 30).sum(1))
    with pytest.raises(ValueError, match="same V"):
        match_topics(true, est[:, :10])
