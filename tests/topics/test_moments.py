"""LDA moments: the formulas of ALGORITHMS.md §1 checked by derivation and by dense computation."""

import itertools
from math import comb, factorial

import numpy as np
import pytest
import scipy.sparse as sp

from tensornet.datasets import make_lda_corpus
from tensornet.topics import (
    MomentSums,
    accumulate_moment_sums,
    as_count_matrix,
    project_moments,
    range_basis,
    whiten,
    whitened_tensor,
)
from tensornet.topics._moments import first_pass, sym3


# ----------------------------------------------------------------------------- population level
def _dirichlet_moments(alpha):
    """E[θ_i θ_j] and E[θ_i θ_j θ_k] of a Dirichlet, from its rising-factorial moments."""
    a0 = alpha.sum()
    k = len(alpha)
    e2 = (np.outer(alpha, alpha) + np.diag(alpha)) / (a0 * (a0 + 1))
    e3 = np.einsum("i,j,k->ijk", alpha, alpha, alpha)
    eye = np.eye(k)
    e3 += np.einsum("ij,i,k->ijk", eye, alpha, alpha)  # i = j
    e3 += np.einsum("ik,i,j->ijk", eye, alpha, alpha)  # i = k
    e3 += np.einsum("jk,j,i->ijk", eye, alpha, alpha)  # j = k
    e3 += 2 * np.einsum("ij,jk,i->ijk", eye, eye, alpha)  # i = j = k
    return e2, e3 / (a0 * (a0 + 1) * (a0 + 2))


def test_dirichlet_moment_formula_matches_monte_carlo():
    rng = np.random.default_rng(0)
    alpha = np.array([0.3, 0.5, 1.2])
    theta = rng.dirichlet(alpha, size=400_000)
    e2, e3 = _dirichlet_moments(alpha)
    np.testing.assert_allclose(theta.T @ theta / len(theta), e2, atol=2e-3)
    mc3 = np.einsum("ni,nj,nk->ijk", theta, theta, theta) / len(theta)
    np.testing.assert_allclose(mc3, e3, atol=2e-3)


def test_m2_m3_corrections_isolate_the_topics():
    """With exact E1, E2, E3 the corrected moments are sums of rank-one topic terms."""
    rng = np.random.default_rng(1)
    k, V = 4, 9
    alpha = rng.uniform(0.1, 0.8, k)
    a0 = alpha.sum()
    mu = rng.dirichlet(np.ones(V), size=k).T  # V x k
    t2, t3 = _dirichlet_moments(alpha)
    M1 = mu @ alpha / a0
    E2 = mu @ t2 @ mu.T
    E3 = np.einsum("abc,ia,jb,kc->ijk", t3, mu, mu, mu)
    M2 = E2 - a0 / (a0 + 1) * np.outer(M1, M1)
    np.testing.assert_allclose(M2, (mu * alpha / (a0 * (a0 + 1))) @ mu.T, atol=1e-15)
    M3 = (E3 - a0 / (a0 + 2) * sym3(E2[:, :, None] * M1[None, None, :])
          + 2 * a0 ** 2 / ((a0 + 1) * (a0 + 2)) * np.einsum("i,j,k->ijk", M1, M1, M1))
    want = np.einsum("r,ir,jr,kr->ijk", 2 * alpha / (a0 * (a0 + 1) * (a0 + 2)), mu, mu, mu)
    np.testing.assert_allclose(M3, want, atol=1e-15)


def _multinomial_outcomes(n, V):
    for cut in itertools.combinations(range(n + V - 1), V - 1):
        bounds = (-1,) + cut + (n + V - 1,)
        yield np.array([bounds[i + 1] - bounds[i] - 1 for i in range(V)])


def _per_doc_estimators(c):
    l = c.sum()
    E2 = (np.outer(c, c) - np.diag(c)) / (l * (l - 1))
    V = len(c)
    eye = np.eye(V)
    E3 = np.einsum("i,j,k->ijk", c, c, c)
    E3 -= np.einsum("t,ti,tj,k->ijk", c, eye, eye, c)
    E3 -= np.einsum("t,ti,j,tk->ijk", c, eye, c, eye)
    E3 -= np.einsum("t,i,tj,tk->ijk", c, c, eye, eye)
    E3 += 2 * np.einsum("t,ti,tj,tk->ijk", c, eye, eye, eye)
    return E2, E3 / (l * (l - 1) * (l - 2))


@pytest.mark.parametrize("length", [3, 4, 6])
def test_per_document_estimators_are_exactly_unbiased(length):
    """Expectation over every multinomial outcome equals p⊗p and p⊗p⊗p."""
    p = np.array([0.5, 0.3, 0.15, 0.05])
    V = len(p)
    m2, m3, total = np.zeros((V, V)), np.zeros((V, V, V)), 0.0
    for c in _multinomial_outcomes(length, V):
        prob = factorial(length) / np.prod([factorial(x) for x in c]) * np.prod(p ** c)
        e2, e3 = _per_doc_estimators(c.astype(float))
        m2 += prob * e2
        m3 += prob * e3
        total += prob
    assert total == pytest.approx(1.0)
    np.testing.assert_allclose(m2, np.outer(p, p), atol=1e-14)
    np.testing.assert_allclose(m3, np.einsum("i,j,k->ijk", p, p, p), atol=1e-14)
    assert comb(length + V - 1, V - 1) > 1


# ----------------------------------------------------------------------------- sample level
def _token_triples_dense(X):
    """E2 and E3 by brute force: average over ordered pairs/triples of distinct token positions."""
    X = sp.csr_matrix(X)
    V = X.shape[1]
    E1, E2, E3, n = np.zeros(V), np.zeros((V, V)), np.zeros((V, V, V)), 0
    for d in range(X.shape[0]):
        row = X[d]
        tokens = np.repeat(row.indices, row.data.astype(int))
        l = len(tokens)
        if l < 3:
            continue
        n += 1
        E1 += np.bincount(tokens, minlength=V) / l
        pairs = np.array([(a, b) for a, b in itertools.permutations(tokens, 2)])
        np.add.at(E2, (pairs[:, 0], pairs[:, 1]), 1.0 / (l * (l - 1)))
        trip = np.array(list(itertools.permutations(tokens, 3)))
        np.add.at(E3, (trip[:, 0], trip[:, 1], trip[:, 2]), 1.0 / (l * (l - 1) * (l - 2)))
    return E1 / n, E2 / n, E3 / n


@pytest.fixture(scope="module")
def small_corpus():
    X, topics, alpha = make_lda_corpus(120, 11, 3, alpha=0.4, doc_length=6, random_state=3)
    X = X.tolil()
    X[0] = 0
    X[1, 0] = 2  # a document of 2 tokens: must be left out of the moments
    return sp.csr_matrix(X)


def test_whitened_third_moment_equals_dense_v3_computation(small_corpus):
    X = small_corpus
    a0 = 1.2
    k = 3
    C = as_count_matrix(X)
    rng = np.random.default_rng(0)
    Q, first = range_basis(C, 6, 2, 50, rng, n_keep=4)
    Qh = np.asarray(Q)
    sums = accumulate_moment_sums(C, Q, Qh, batch_size=17)
    assert sums.n_docs == sum(1 for s in np.asarray(X.sum(1)).ravel() if s >= 3)
    assert sums.n_dropped == X.shape[0] - sums.n_docs
    pm = project_moments(sums)
    wh = whiten(pm, k, a0)
    T = whitened_tensor(pm, wh, a0)

    E1, E2, E3 = _token_triples_dense(X)
    M2 = E2 - a0 / (a0 + 1) * np.outer(E1, E1)
    M3 = (E3 - a0 / (a0 + 2) * sym3(E2[:, :, None] * E1[None, None, :])
          + 2 * a0 ** 2 / ((a0 + 1) * (a0 + 2)) * np.einsum("i,j,k->ijk", E1, E1, E1))
    W = Qh @ wh.R
    np.testing.assert_allclose(W.T @ M2 @ W, np.eye(k), atol=1e-10)
    T_dense = np.einsum("abc,ai,bj,ck->ijk", M3, W, W, W)
    scale = np.abs(T_dense).max()
    np.testing.assert_allclose(T, T_dense, rtol=1e-10, atol=1e-10 * scale)
    # the projected pair moment and M1 are exact as well
    np.testing.assert_allclose(pm.e2, Qh.T @ E2 @ Qh, atol=1e-12)
    np.testing.assert_allclose(pm.m1_full, E1, atol=1e-14)


def test_moment_sums_add_across_batches_and_chunks(small_corpus):
    X = small_corpus
    C = as_count_matrix(X)
    Q, _ = range_basis(C, 5, 1, 1000, np.random.default_rng(1))
    Qh = np.asarray(Q)
    whole = accumulate_moment_sums(C, Q, Qh, batch_size=1000)
    parts = (accumulate_moment_sums(as_count_matrix(X[:50]), Q, Qh, batch_size=7)
             + accumulate_moment_sums(as_count_matrix(X[50:]), Q, Qh, batch_size=13))
    for name in MomentSums.ARRAYS:
        np.testing.assert_allclose(getattr(parts, name), getattr(whole, name), atol=1e-13)
    assert (parts.n_docs, parts.n_dropped) == (whole.n_docs, whole.n_dropped)
    other = MomentSums.zeros(Qh + 1.0)
    with pytest.raises(ValueError, match="same basis"):
        whole + other


def test_range_basis_spans_the_topics():
    X, topics, _ = make_lda_corpus(20_000, 200, 5, alpha=0.2, doc_length=60, random_state=2)
    C = as_count_matrix(X)
    Q, first = range_basis(C, 15, 2, 4096, np.random.default_rng(0), n_keep=8)
    Q = np.asarray(Q)
    np.testing.assert_allclose(Q.T @ Q, np.eye(Q.shape[1]), atol=1e-10)
    resid = topics.T - Q @ (Q.T @ topics.T)
    rel = np.linalg.norm(resid, axis=0) / np.linalg.norm(topics.T, axis=0)
    assert rel.max() < 0.05
    assert first.n_docs == X.shape[0]


def test_first_pass_counts_short_documents():
    X = sp.csr_matrix(np.array([[1, 1, 0], [2, 1, 1], [0, 0, 0], [3, 0, 0]]))
    first = first_pass(as_count_matrix(X), 2)
    assert (first.n_docs, first.n_dropped) == (2, 2)
    np.testing.assert_allclose(first.m1, [2 / 4 + 1, 1 / 4, 1 / 4])


def test_whiten_refuses_unsupported_rank():
    # identical documents: M2 has one positive direction at most
    X = sp.csr_matrix(np.tile([3, 2, 1, 1, 0], (50, 1)))
    C = as_count_matrix(X)
    Q, _ = range_basis(C, 4, 1, 100, np.random.default_rng(0))
    pm = project_moments(accumulate_moment_sums(C, Q, np.asarray(Q), 100))
    with pytest.raises(ValueError, match="cannot support n_topics=2"):
        whiten(pm, 2, 1.0)
