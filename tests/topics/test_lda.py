"""TensorLDA: recovery, inference, persistence, scikit-learn conventions, bad input."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import NotFittedError
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from tensornet.datasets import load_lee_corpus, make_lda_corpus
from tensornet.topics import TensorLDA, document_completion_loglik, match_topics
from tests.conftest import to_np


@pytest.fixture(scope="module")
def corpus50k():
    return make_lda_corpus(50_000, 500, 10, alpha=np.full(10, 0.1), doc_length=100,
                           random_state=0)


@pytest.fixture(scope="module")
def small():
    return make_lda_corpus(3000, 60, 4, alpha=0.25, doc_length=40, random_state=1)


# ----------------------------------------------------------------------------- recovery
@pytest.mark.parametrize("decomposition", ["power", "als"])
def test_recovers_topics_and_alpha_at_50k_documents(corpus50k, decomposition):
    X, topics, alpha = corpus50k
    model = TensorLDA(10, alpha0=1.0, decomposition=decomposition, random_state=0).fit(X)
    match = match_topics(topics, model.components_)
    assert match.mean_l1 <= 0.05
    rel = np.abs(model.alpha_[match.order] - alpha) / alpha
    assert rel.max() <= 0.10
    assert model.n_docs_ == X.shape[0] - model.n_dropped_docs_
    np.testing.assert_allclose(model.components_.sum(1), 1.0, atol=1e-12)
    assert (model.components_ > 0).all()
    assert np.isfinite(model.components_).all() and np.isfinite(model.alpha_).all()
    assert model.decomposition_residual_ < 0.05
    np.testing.assert_allclose(model.topic_mass_, 1.0, atol=0.05)


def test_error_falls_as_documents_grow(corpus50k):
    _, topics, alpha = corpus50k
    errors = []
    for n in (2_000, 10_000, 50_000):
        X, _, _ = make_lda_corpus(n, 500, 10, alpha=alpha, doc_length=100, topics=topics,
                                  random_state=n)
        model = TensorLDA(10, alpha0=1.0, random_state=0).fit(X)
        errors.append(match_topics(topics, model.components_).mean_l1)
    assert errors[0] > errors[1] > errors[2]


def test_alpha0_auto_picks_the_generating_concentration():
    X, topics, _ = make_lda_corpus(20_000, 300, 8, alpha=3.0 / 8, doc_length=80,
                                   random_state=4)
    model = TensorLDA(8, alpha0="auto", alpha0_grid=(0.3, 3.0, 30.0), random_state=0).fit(X)
    assert set(model.alpha0_scores_) == {0.3, 3.0, 30.0}
    assert model.alpha0_ == 3.0
    assert model.alpha0_scores_[3.0] == max(model.alpha0_scores_.values())
    assert match_topics(topics, model.components_).mean_l1 < 0.1
    assert model.alpha_.sum() == pytest.approx(3.0, rel=0.1)


# ----------------------------------------------------------------------------- inference
def test_transform_puts_single_topic_documents_on_their_topic(small):
    X, topics, alpha = small
    model = TensorLDA(4, alpha0=1.0, random_state=0).fit(X)
    order = match_topics(topics, model.components_).order
    # documents drawn from one topic each
    docs = []
    for t in range(4):
        Xt, _, _ = make_lda_corpus(20, 60, 4, alpha=0.25, doc_length=60, random_state=t,
                                   topics=np.tile(topics[t], (4, 1)))
        docs.append(Xt)
    Xd = sp.vstack(docs).tocsr()
    theta = model.transform(Xd)
    assert theta.shape == (80, 4)
    np.testing.assert_allclose(theta.sum(1), 1.0, atol=1e-12)
    assert (theta >= 0).all()
    expected = np.repeat(order, 20)
    assert (theta.argmax(1) == expected).mean() == 1.0


def test_transform_keeps_short_and_empty_documents(small):
    X, _, _ = small
    model = TensorLDA(4, random_state=0).fit(X)
    dense = np.zeros((3, 60))
    dense[1, 5] = 1
    dense[2, 7] = 2
    Xs = sp.csr_matrix(dense)
    theta = model.transform(Xs)
    np.testing.assert_allclose(theta[0], model.alpha_ / model.alpha_.sum(), atol=1e-12)
    assert np.isfinite(theta).all()


def test_transform_is_independent_of_batch_composition(small):
    X, _, _ = small
    model = TensorLDA(4, random_state=0).fit(X)
    full = model.transform(X[:200])
    single = np.vstack([model.transform(X[i:i + 1]) for i in range(0, 200, 37)])
    np.testing.assert_allclose(single, full[::37], rtol=1e-12, atol=1e-14)


def test_fit_transform_matches_fit_then_transform(small):
    X, _, _ = small
    a = TensorLDA(4, random_state=3).fit_transform(X)
    b = TensorLDA(4, random_state=3).fit(X).transform(X)
    np.testing.assert_array_equal(a, b)


def test_score_is_document_completion_loglik(small):
    X, topics, alpha = small
    model = TensorLDA(4, random_state=0).fit(X)
    s = model.score(X[:500])
    assert s == document_completion_loglik(X[:500], model.components_, model.alpha_,
                                           random_state=0)
    truth = document_completion_loglik(X[:500], topics, alpha, random_state=0)
    uniform = document_completion_loglik(X[:500], np.ones((4, 60)), alpha, random_state=0)
    assert uniform < s <= truth + 0.01
    assert s > truth - 0.1


# ----------------------------------------------------------------------------- determinism, io
def test_deterministic_for_fixed_random_state(small):
    X, _, _ = small
    a = TensorLDA(4, random_state=7).fit(X)
    b = TensorLDA(4, random_state=7).fit(X)
    np.testing.assert_array_equal(a.components_, b.components_)
    np.testing.assert_array_equal(a.alpha_, b.alpha_)


def test_save_load_round_trip(small, tmp_path):
    X, _, _ = small
    model = TensorLDA(4, alpha0="auto", alpha0_grid=(0.5, 1.0), random_state=0).fit(X[:2000])
    path = model.save(tmp_path / "model")
    assert sorted(p.name for p in path.iterdir()) == ["tensorlda.json", "tensorlda.npz"]
    loaded = TensorLDA.load(path)
    assert loaded.get_params() == model.get_params()
    np.testing.assert_array_equal(loaded.components_, model.components_)
    np.testing.assert_array_equal(loaded.alpha_, model.alpha_)
    assert loaded.alpha0_ == model.alpha0_ and loaded.alpha0_scores_ == model.alpha0_scores_
    np.testing.assert_array_equal(loaded.transform(X[:50]), model.transform(X[:50]))
    assert loaded.score(X[2000:]) == model.score(X[2000:])
    # a loaded model keeps its moments and can go on learning
    loaded.partial_fit(X[2000:])
    assert loaded.n_docs_ > model.n_docs_


def test_load_rejects_other_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not hold a saved TensorLDA"):
        TensorLDA.load(tmp_path)
    (tmp_path / "tensorlda.json").write_text('{"format": "something else"}')
    np.savez(tmp_path / "tensorlda.npz", a=np.zeros(1))
    with pytest.raises(ValueError, match="not a saved TensorLDA"):
        TensorLDA.load(tmp_path)


# ----------------------------------------------------------------------------- streaming
def test_partial_fit_is_exact_given_the_first_chunk(small):
    X, topics, _ = small
    a = TensorLDA(4, random_state=0)
    for lo, hi in [(0, 1000), (1000, 1700), (1700, 3000)]:
        a.partial_fit(X[lo:hi])
    b = TensorLDA(4, random_state=0).partial_fit(X[:1000]).partial_fit(X[1000:])
    np.testing.assert_allclose(a.components_, b.components_, atol=1e-9)
    np.testing.assert_allclose(a.alpha_, b.alpha_, rtol=1e-8)
    assert a.n_docs_ == b.n_docs_ == TensorLDA(4).fit(X).n_docs_
    full = TensorLDA(4, random_state=0).fit(X)
    assert match_topics(topics, a.components_).mean_l1 < 2 * match_topics(
        topics, full.components_).mean_l1 + 0.02


def test_partial_fit_checks_vocabulary_size(small):
    X, _, _ = small
    model = TensorLDA(4, random_state=0).partial_fit(X[:1000])
    with pytest.raises(ValueError, match="X has 59 features, but TensorLDA is expecting 60"):
        model.partial_fit(X[1000:, :59])


# ----------------------------------------------------------------------------- inputs
def test_input_formats_and_dtypes_agree(small):
    X, _, _ = small
    X = X[:1500]
    ref = TensorLDA(4, random_state=0).fit(X).components_
    for variant in (X.tocsc(), X.tocoo(), X.astype(np.int64), X.astype(np.float32),
                    X.astype(np.int8), X.toarray(), X.toarray().tolist(),
                    sp.csr_array(X)):
        got = TensorLDA(4, random_state=0).fit(variant).components_
        np.testing.assert_allclose(got, ref, atol=1e-9)


def test_backends_agree_and_results_follow_the_data(small, array_lib, tmp_path):
    X, _, _ = small
    X = X[:1500]
    ref = TensorLDA(4, random_state=0).fit(X)
    Xb = array_lib(X.toarray().astype(np.float64))
    model = TensorLDA(4, random_state=0).fit(Xb)
    # the range finder runs in single precision, rounded differently by each library
    np.testing.assert_allclose(model.components_, ref.components_, atol=1e-6)
    theta = model.transform(Xb[:20])
    assert type(theta) is type(Xb)
    np.testing.assert_allclose(to_np(theta), ref.transform(X[:20]), atol=1e-5)
    # inference alone is double precision throughout: same topics, same proportions
    same = TensorLDA.load(ref.save(tmp_path / "ref"))
    np.testing.assert_allclose(to_np(same.transform(Xb[:20])), ref.transform(X[:20]),
                               atol=1e-10)


def test_torch_sparse_layouts():
    torch = pytest.importorskip("torch")
    X, _, _ = make_lda_corpus(1200, 40, 3, alpha=0.3, doc_length=30, random_state=2)
    ref = TensorLDA(3, random_state=0).fit(X).components_
    dense = torch.as_tensor(X.toarray())
    for Xt in (dense.to_sparse_coo(), dense.to_sparse_csr(), dense.to_sparse_csc(),
               dense.to(torch.int32)):
        model = TensorLDA(3, random_state=0).fit(Xt)
        np.testing.assert_allclose(model.components_, ref, atol=1e-6)
    assert isinstance(model.transform(Xt), torch.Tensor)


def test_pipeline_after_count_vectorizer():
    texts = load_lee_corpus().texts
    pipe = make_pipeline(CountVectorizer(stop_words="english", min_df=2),
                         TensorLDA(5, random_state=0))
    theta = pipe.fit_transform(texts)
    assert theta.shape == (len(texts), 5)
    np.testing.assert_allclose(theta.sum(1), 1.0, atol=1e-12)
    assert np.isfinite(pipe.score(texts[:50]))
    names = pipe.get_feature_names_out()
    assert list(names) == [f"tensorlda{i}" for i in range(5)]


# ----------------------------------------------------------------------------- bad input
def test_rejects_negative_and_non_finite_counts(small):
    X, _, _ = small
    bad = X[:100].toarray().astype(float)
    bad[3, 4] = -1
    with pytest.raises(ValueError, match="Negative values"):
        TensorLDA(2).fit(bad)
    for value in (np.nan, np.inf):
        bad = X[:100].toarray().astype(float)
        bad[3, 4] = value
        with pytest.raises(ValueError, match="NaN|infinity"):
            TensorLDA(2).fit(sp.csr_matrix(bad))
    torch = pytest.importorskip("torch")
    bad = torch.as_tensor(X[:100].toarray(), dtype=torch.float64)
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        TensorLDA(2).fit(bad)
    bad[0, 0] = -2
    with pytest.raises(ValueError, match="non-negative"):
        TensorLDA(2).fit(bad)


def test_rejects_empty_and_short_corpora():
    with pytest.raises(ValueError, match="0 sample"):
        TensorLDA(2).fit(np.zeros((0, 5)))
    with pytest.raises(ValueError, match="fewer than 3 tokens"):
        TensorLDA(2).fit(np.array([[1, 1, 0], [0, 2, 0], [0, 0, 0]] * 10))
    with pytest.raises(ValueError, match="2-D|2D"):
        TensorLDA(2).fit(np.ones(5))
    with pytest.raises((TypeError, ValueError)):
        TensorLDA(2).fit(np.array([["a", "b"], ["c", "d"]]))


def test_rejects_unsupported_numbers_of_topics(small):
    X, _, _ = small
    with pytest.raises(ValueError, match="larger than the vocabulary"):
        TensorLDA(61).fit(X)
    few = X[:5]
    with pytest.raises(ValueError, match="smaller than the number of documents"):
        TensorLDA(5).fit(few)
    same = sp.csr_matrix(np.tile([3, 2, 1, 1, 0], (50, 1)))
    with pytest.raises(ValueError, match="cannot support n_topics=3"):
        TensorLDA(3).fit(same)


@pytest.mark.parametrize("param, value, exc", [
    ("n_topics", 0, ValueError), ("n_topics", 2.5, TypeError), ("alpha0", -1.0, ValueError),
    ("alpha0", "big", ValueError), ("alpha0", float("nan"), ValueError),
    ("decomposition", "svd", ValueError), ("n_restarts", 0, ValueError),
    ("oversampling", -1, ValueError), ("n_power_iter", -1, ValueError),
    ("batch_size", 0, ValueError), ("alpha0_grid", (), ValueError),
    ("alpha0_grid", (1.0, -2.0), ValueError), ("validation_fraction", 1.0, ValueError),
    ("random_state", "seed", TypeError), ("verbose", "yes", TypeError),
    ("max_iter", 0, ValueError), ("tol", -1.0, ValueError), ("refine_passes", -1, ValueError),
    ("refine_max_docs", 0, ValueError), ("refine_max_docs", 2.5, TypeError),
])
def test_rejects_bad_parameters(small, param, value, exc):
    X, _, _ = small
    with pytest.raises(exc, match=f"'{param}' parameter of TensorLDA"):
        TensorLDA(**{"n_topics": 3, param: value}).fit(X[:200])


def test_transform_needs_a_fitted_model_and_matching_vocabulary(small):
    X, _, _ = small
    with pytest.raises(NotFittedError):
        TensorLDA(3).transform(X)
    model = TensorLDA(3, random_state=0).fit(X)
    with pytest.raises(ValueError, match="expecting 60 features"):
        model.transform(X[:, :50])
    with pytest.raises(NotFittedError):
        TensorLDA(3).save("unused")


# ----------------------------------------------------------------------------- scikit-learn checks
# Checks skipped, and why. Each of them feeds data such as 3 * uniform(0, 1) - min, whose rows
# ("documents") all hold fewer than 3 tokens; TensorLDA then raises its documented error
# ("every document of X has fewer than 3 tokens") instead of fitting, as the issue requires.
# What those checks test is covered above: sparse CSR/CSC/COO input
# (test_input_formats_and_dtypes_agree), NaN/inf rejection (test_rejects_negative_and_non_finite
# _counts), fit(X, y) accepting y (test_pipeline_after_count_vectorizer), one-feature input
# (n_topics > vocabulary is refused: test_rejects_unsupported_numbers_of_topics).
SKIPPED_CHECKS = {
    name: "its data has no document with 3 or more tokens; TensorLDA refuses such corpora"
    for name in ("check_fit_score_takes_y", "check_estimators_nan_inf",
                 "check_estimator_sparse_tag", "check_estimator_sparse_array",
                 "check_estimator_sparse_matrix", "check_fit2d_1feature")
}


@parametrize_with_checks([TensorLDA(n_topics=1, random_state=0)],
                         expected_failed_checks=lambda est: SKIPPED_CHECKS)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_refine_passes_polish_the_spectral_topics(small):
    # 400 documents: the moments are noisy, and EM passes from the spectral topics help
    X, topics, alpha = small
    pure = TensorLDA(4, random_state=0, refine_passes=0).fit(X[:400])
    refined = TensorLDA(4, random_state=0, refine_passes=2).fit(X[:400])
    assert refined.n_iter_ == pure.n_iter_ + 2
    np.testing.assert_array_equal(refined.alpha_, pure.alpha_)
    np.testing.assert_allclose(refined.components_.sum(1), 1.0)
    assert refined.score(X[2500:]) > pure.score(X[2500:])
    assert match_topics(topics, refined.components_).mean_l1 < match_topics(
        topics, pure.components_).mean_l1


def test_refinement_runs_on_a_systematic_sample_of_at_most_refine_max_docs(small):
    from tensornet.topics import as_count_matrix
    from tensornet.topics._inference import refine_topics

    X, _, _ = small
    X = X[:1000]
    pure = TensorLDA(4, random_state=0, refine_passes=0).fit(X)
    got = TensorLDA(4, random_state=0, refine_passes=2, refine_max_docs=300).fit(X)
    # stride ceil(1000 / 300) = 4: documents 0, 4, 8, ... (250 of them)
    sample = as_count_matrix(sp.csr_matrix(X)[np.arange(0, 1000, 4)])
    want = refine_topics(sample, pure.components_, pure.alpha_, 2)
    np.testing.assert_allclose(got.components_, want, rtol=0, atol=1e-12)
    everything = TensorLDA(4, random_state=0, refine_passes=2, refine_max_docs=None).fit(X)
    assert np.abs(everything.components_ - got.components_).max() > 1e-6
    # a limit at or above the corpus size is the whole corpus
    same = TensorLDA(4, random_state=0, refine_passes=2, refine_max_docs=1000).fit(X)
    np.testing.assert_array_equal(same.components_, everything.components_)


def test_verbose_shows_progress_and_default_is_silent(small, capsys):
    X, _, _ = small
    TensorLDA(4, random_state=0).fit(X)
    assert capsys.readouterr().err == ""
    TensorLDA(4, random_state=0, verbose=True).fit(X)
    assert "TensorLDA passes" in capsys.readouterr().err


def test_components_of_noise_get_almost_no_prior_weight():
    # 6 components for 4 true topics: the extra tensor components are noise with a tiny
    # eigenvalue; the eigenvalue formula would give them a prior larger than alpha0
    X, _, _ = make_lda_corpus(3000, 200, 4, alpha=0.25, doc_length=60, random_state=3)
    model = TensorLDA(6, alpha0=1.0, random_state=0).fit(X)
    assert model.alpha_.sum() == pytest.approx(1.0, rel=1e-9)
    assert np.all(model.alpha_ > 0) and np.all(model.alpha_ <= 1.0)
    noise = model.topic_mass_ < 0.2
    assert noise.any()
    lam = model.tensor_eigenvalues_
    from_eigenvalues = 4.0 * 2.0 / (9.0 * lam ** 2)
    assert from_eigenvalues[noise].max() > 1.0          # what the old estimate did
    assert model.alpha_[noise].max() < 0.01
    Xh = X[:1000]
    ours = document_completion_loglik(Xh, model.components_, model.alpha_)
    theirs = document_completion_loglik(Xh, model.components_, np.minimum(from_eigenvalues, 1e3))
    assert ours > theirs
