"""Document-topic inference with fixed topics and the shared document-completion estimator."""

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.special import digamma

from tensornet.datasets import make_lda_corpus
from tensornet.topics import (
    as_count_matrix,
    document_completion_loglik,
    split_counts,
    variational_doc_topics,
)


@pytest.fixture(scope="module")
def corpus():
    return make_lda_corpus(800, 80, 5, alpha=0.2, doc_length=80, random_state=0)


def test_split_counts_partitions_every_document(corpus):
    X, _, _ = corpus
    obs, held = split_counts(X, 0.5, random_state=1)
    np.testing.assert_array_equal((obs + held).toarray(), X.toarray())
    assert (obs.data > 0).all() and (held.data > 0).all()
    share = obs.sum() / X.sum()
    assert 0.48 < share < 0.52
    again, _ = split_counts(X, 0.5, random_state=1)
    np.testing.assert_array_equal(again.toarray(), obs.toarray())
    other, _ = split_counts(X, 0.5, random_state=2)
    assert (other != obs).nnz > 0
    frac = sp.csr_matrix(np.array([[0.5, 1.5, 0.0]]))
    o, h = split_counts(frac, 0.5)
    np.testing.assert_allclose(o.toarray(), [[0.25, 0.75, 0.0]])


def _reference_estep(x, beta, alpha, iters=2000):
    """Per-document coordinate ascent written out with dense vectors (the textbook update)."""
    k = beta.shape[0]
    gamma = alpha + x.sum() / k
    for _ in range(iters):
        eth = np.exp(digamma(gamma) - digamma(gamma.sum()))
        phi = eth[:, None] * beta  # k x V
        phi /= phi.sum(0, keepdims=True)
        gamma = alpha + phi @ x
    return gamma


def test_variational_update_matches_the_textbook_fixed_point(corpus):
    X, topics, alpha = corpus
    gamma = variational_doc_topics(as_count_matrix(X[:5]), topics, alpha, max_iter=2000,
                                   tol=1e-12)
    for d in range(5):
        ref = _reference_estep(X[d].toarray().ravel(), topics, alpha)
        np.testing.assert_allclose(gamma[d], ref, rtol=1e-8)


def test_doc_topics_follow_the_generating_proportions():
    # long documents: inferred proportions must be close to the true ones
    rng = np.random.default_rng(0)
    topics = rng.dirichlet(np.full(100, 0.1), size=4)
    theta = rng.dirichlet(np.full(4, 0.5), size=50)
    X = sp.csr_matrix(np.vstack([rng.multinomial(5000, t @ topics) for t in theta]))
    gamma = variational_doc_topics(as_count_matrix(X), topics, np.full(4, 0.5))
    est = gamma / gamma.sum(1, keepdims=True)
    assert np.abs(est - theta).max() < 0.05


def test_loglik_is_best_for_the_true_model(corpus):
    X, topics, alpha = corpus
    truth = document_completion_loglik(X, topics, alpha)
    rng = np.random.default_rng(0)
    noisy = topics + 0.02 * rng.random(topics.shape)
    assert document_completion_loglik(X, noisy, alpha) < truth
    assert document_completion_loglik(X, np.ones_like(topics), alpha) < truth
    # entropy bound: a perfect predictor cannot beat the entropy of the mixture on average
    assert truth < 0
    value, total, n = document_completion_loglik(X, topics, alpha, return_counts=True)
    assert value == pytest.approx(total / n)
    assert n == pytest.approx(split_counts(X, 0.5, 0)[1].sum())


def test_loglik_same_result_on_torch_input(corpus):
    torch = pytest.importorskip("torch")
    X, topics, alpha = corpus
    ref = document_completion_loglik(X, topics, alpha)
    got = document_completion_loglik(torch.as_tensor(X.toarray()), torch.as_tensor(topics),
                                     alpha)
    assert got == pytest.approx(ref, rel=1e-12)


def test_loglik_rejects_bad_models(corpus):
    X, topics, alpha = corpus
    with pytest.raises(ValueError, match="components must be"):
        document_completion_loglik(X, -topics, alpha)
    with pytest.raises(ValueError, match="positive mass"):
        document_completion_loglik(X, np.zeros_like(topics), alpha)
    with pytest.raises(ValueError, match="alpha must be positive"):
        document_completion_loglik(X, topics, 0.0)
    with pytest.raises(ValueError, match="X has 80 words"):
        document_completion_loglik(X, topics[:, :70], alpha)


def test_refine_topics_improves_a_perturbed_start(corpus):
    from tensornet.topics._inference import refine_topics

    X, topics, alpha = corpus
    rng = np.random.default_rng(0)
    start = topics + 0.01 * rng.random(topics.shape)
    start /= start.sum(1, keepdims=True)
    C = as_count_matrix(X)
    refined = refine_topics(C, start, alpha, 3)
    np.testing.assert_allclose(refined.sum(1), 1.0)
    assert np.abs(refined - topics).sum() < np.abs(start - topics).sum()
    assert document_completion_loglik(X, refined, alpha) > document_completion_loglik(
        X, start, alpha)
    torch = pytest.importorskip("torch")
    via_torch = refine_topics(as_count_matrix(torch.as_tensor(X.toarray())), start, alpha, 3)
    np.testing.assert_allclose(via_torch, refined, rtol=1e-9, atol=1e-12)
