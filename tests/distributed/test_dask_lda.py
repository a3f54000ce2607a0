"""TensorLDA fitted on a Dask LocalCluster of 2 workers equals the in-memory fit."""

import numpy as np
import pytest
import scipy.sparse as sp

da = pytest.importorskip("dask.array")
db = pytest.importorskip("dask.bag")
distributed = pytest.importorskip("dask.distributed")

from tensornet.datasets import make_lda_corpus
from tensornet.distributed import counts_from_bag, fit_dask
from tensornet.topics import TensorLDA, as_count_matrix, range_basis
from tensornet.topics._moments import first_pass


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def corpus():
    X, topics, alpha = make_lda_corpus(6000, 300, 5, alpha=0.2, doc_length=40, random_state=0)
    return X, topics, alpha


def _chunked(X, rows):
    return da.from_array(X, chunks=(rows, X.shape[1]), asarray=False)


@pytest.mark.parametrize("alpha0", [1.0, "auto"])
def test_fit_on_cluster_equals_in_memory_fit(client, corpus, alpha0):
    X = corpus[0]
    kw = {"n_topics": 5, "alpha0": alpha0, "random_state": 0}
    ref = TensorLDA(**kw).fit(X)
    got = TensorLDA(**kw).fit(_chunked(X, 1300))      # chunks unlike the in-memory batches
    np.testing.assert_allclose(got.components_, ref.components_, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.alpha_, ref.alpha_, rtol=1e-10)
    assert got.alpha0_ == ref.alpha0_
    assert (got.n_docs_, got.n_dropped_docs_, got.n_iter_) == \
        (ref.n_docs_, ref.n_dropped_docs_, ref.n_iter_)
    assert got.n_features_in_ == 300
    # the fitted model works like any other
    np.testing.assert_allclose(got.transform(X[:20]), ref.transform(X[:20]), atol=1e-10)


def test_chunks_aligned_with_batches_give_the_identical_model(client, corpus):
    X = corpus[0]
    # the moment passes follow batch_size; the refinement's E-step batches do not
    # (their own non-zero budget), so it is left out of this bit-for-bit check
    kw = {"n_topics": 5, "alpha0": 1.0, "random_state": 3, "batch_size": 1000,
          "refine_passes": 0}
    ref = TensorLDA(**kw).fit(X)
    got = fit_dask(TensorLDA(**kw), _chunked(X, 1000), client=client)
    assert np.array_equal(got.components_, ref.components_)
    assert np.array_equal(got.alpha_, ref.alpha_)


def test_recovers_the_planted_topics(client, corpus):
    X, topics, _ = corpus
    from tensornet.topics import match_topics

    lda = TensorLDA(n_topics=5, alpha0=1.0, random_state=0).fit(_chunked(X, 2000))
    assert match_topics(topics, lda.components_).mean_l1 < 0.15


def test_bag_of_documents_with_vocabulary(client):
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(40)]
    X, _, _ = make_lda_corpus(1500, 40, 3, alpha=0.3, doc_length=30, random_state=1)
    docs = []
    for row in X.toarray():
        tokens = [words[j] for j in np.repeat(np.arange(40), row)]
        rng.shuffle(tokens)
        docs.append(" ".join(tokens + ["out-of-vocabulary"]))
    bag = db.from_sequence(docs, npartitions=4)
    C = counts_from_bag(bag, words)
    assert C.shape[1] == 40 and np.isnan(C.shape[0])
    assert (C.compute() != X).nnz == 0
    kw = {"n_topics": 3, "alpha0": 0.9, "random_state": 0}
    ref = TensorLDA(**kw).fit(X)
    got = fit_dask(TensorLDA(**kw), bag, vocabulary={w: i for i, w in enumerate(words)})
    np.testing.assert_allclose(got.components_, ref.components_, atol=1e-12)


def test_range_basis_from_an_external_sum_equals_the_pass_over_the_counts(corpus):
    X = corpus[0][:2000]
    C = as_count_matrix(X)
    first = first_pass(C, 500)
    Q0, _ = range_basis(C, 9, 2, 500, np.random.default_rng(0), n_keep=6, first=first)
    from tensornet.topics import e2_product

    def e2_sum(Xq):
        # the sum over two halves of the corpus, as partitions would give it
        return sum(e2_product(as_count_matrix(part), Xq, 400, first=first, dtype=Xq.dtype,
                              normalize=False)[0] for part in (X[:900], X[900:]))

    Q1, _ = range_basis(as_count_matrix(sp.csr_matrix((1, 300))), 9, 2, 500,
                        np.random.default_rng(0), n_keep=6, first=first, e2_sum=e2_sum)
    np.testing.assert_allclose(np.abs(Q0.T @ Q1), np.eye(Q0.shape[1]), atol=1e-5)
    with pytest.raises(ValueError, match="first=..."):
        range_basis(C, 9, 2, 500, np.random.default_rng(0), e2_sum=e2_sum)


def test_bad_input(client, corpus):
    X = corpus[0]
    lda = TensorLDA(n_topics=5, random_state=0)
    with pytest.raises(ValueError, match="chunked along documents only"):
        fit_dask(lda, da.from_array(X, chunks=(1000, 100), asarray=False))
    with pytest.raises(TypeError, match="must be a tensornet.topics.TensorLDA"):
        fit_dask(object(), _chunked(X, 3000))
    with pytest.raises(TypeError, match="dask.array.Array"):
        fit_dask(lda, X)
    with pytest.raises(ValueError, match="needs vocabulary"):
        fit_dask(lda, db.from_sequence(["a b c"]))
    with pytest.raises(ValueError, match="only for a Dask bag"):
        fit_dask(lda, _chunked(X, 3000), vocabulary=["a"])
    with pytest.raises(ValueError, match="split_every"):
        fit_dask(lda, _chunked(X, 3000), split_every=1)
    with pytest.raises(ValueError, match="twice"):
        counts_from_bag(db.from_sequence(["a"]), ["a", "a"])
    with pytest.raises(ValueError, match=r"index in \[0, 2\)"):
        counts_from_bag(db.from_sequence(["a"]), {"a": 0, "b": 5})
    with pytest.raises(TypeError, match="dask.bag.Bag"):
        counts_from_bag(["a b"], ["a"])
    with pytest.raises(ValueError, match="n_topics=5 is larger than the vocabulary"):
        fit_dask(TensorLDA(n_topics=5), _chunked(X[:, :3], 3000))


def test_worker_processes_reading_chunk_files_equal_the_in_memory_fit(corpus, tmp_path):
    # the out-of-core path: 2 worker *processes*, each chunk read from its file by every pass
    import dask

    X = corpus[0]
    paths, sizes = [], []
    for i, start in enumerate(range(0, X.shape[0], 1500)):
        part = X[start:start + 1500].astype(np.int32)
        paths.append(str(tmp_path / f"chunk-{i}.npz"))
        sp.save_npz(paths[-1], part, compressed=False)
        sizes.append(part.shape[0])
    meta = sp.csr_matrix((0, X.shape[1]), dtype=np.int32)
    chunks = da.concatenate([da.from_delayed(dask.delayed(sp.load_npz)(p), shape=(n, X.shape[1]),
                                             dtype=np.int32, meta=meta)
                             for p, n in zip(paths, sizes)])
    kw = {"n_topics": 5, "alpha0": 1.0, "random_state": 1}
    ref = TensorLDA(**kw).fit(X)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as c:
        got = fit_dask(TensorLDA(**kw), chunks, client=c)
        assert len(c.scheduler_info()["workers"]) == 2
    np.testing.assert_allclose(got.components_, ref.components_, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.alpha_, ref.alpha_, rtol=1e-10)
    assert got.n_docs_ == ref.n_docs_ == X.shape[0]


def test_refinement_passes_on_the_cluster_equal_the_in_memory_refinement(client, corpus):
    X = corpus[0]
    kw = {"n_topics": 5, "alpha0": 1.0, "random_state": 2, "refine_passes": 2}
    ref = TensorLDA(**kw).fit(X)
    plain = TensorLDA(**{**kw, "refine_passes": 0}).fit(X)
    got = fit_dask(TensorLDA(**kw), _chunked(X, 1300), client=client)
    # the refinement moved the topics, and the cluster moved them the same way
    assert np.abs(ref.components_ - plain.components_).max() > 1e-4
    np.testing.assert_allclose(got.components_, ref.components_, rtol=0, atol=1e-10)
    np.testing.assert_allclose(got.alpha_, ref.alpha_, rtol=1e-10)
    assert got.n_iter_ == ref.n_iter_ == plain.n_iter_ + 2


def test_the_refinement_sample_spans_the_chunks_as_in_memory(client, corpus):
    # refine_max_docs picks every s-th document of the whole corpus; on the
    # cluster each chunk refines its share of those documents
    X = corpus[0]
    kw = {"n_topics": 5, "alpha0": 1.0, "random_state": 2, "refine_passes": 2,
          "refine_max_docs": 700}
    ref = TensorLDA(**kw).fit(X)
    full = TensorLDA(**{**kw, "refine_max_docs": None}).fit(X)
    got = fit_dask(TensorLDA(**kw), _chunked(X, 1300), client=client)
    assert np.abs(ref.components_ - full.components_).max() > 1e-6
    np.testing.assert_allclose(got.components_, ref.components_, rtol=0, atol=1e-10)


def test_the_basis_is_sent_to_the_workers_once_not_in_every_graph(client, corpus, monkeypatch):
    X = corpus[0]
    sent = []
    scatter = type(client).scatter

    def spy(self, data, *args, **kwargs):
        sent.append((getattr(data, "shape", None), kwargs.get("broadcast")))
        return scatter(self, data, *args, **kwargs)

    monkeypatch.setattr(type(client), "scatter", spy)
    kw = {"n_topics": 5, "alpha0": 1.0, "random_state": 0, "refine_passes": 1}
    fit_dask(TensorLDA(**kw), _chunked(X, 3000), client=client)
    lda = TensorLDA(**kw)
    # range finder products (1 + n_power_iter), the moment pass, alpha and one refinement pass
    assert len(sent) == 1 + lda.n_power_iter + 1 + 2
    assert all(b is True for _, b in sent)
    assert (X.shape[1], 5) in [shape for shape, _ in sent]      # beta^T of the refinement
