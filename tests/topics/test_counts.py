"""Count matrices on every backend: validation, batches, products."""

import numpy as np
import pytest
import scipy.sparse as sp

from tensornet.topics import as_count_matrix
from tests.conftest import to_np


@pytest.fixture
def counts():
    rng = np.random.default_rng(0)
    X = rng.poisson(0.7, size=(23, 9)).astype(np.int64)
    X[4] = 0
    return X


def test_batches_cover_the_matrix_and_products_are_exact(counts, array_lib):
    C = as_count_matrix(array_lib(counts.astype(np.float64)))
    assert (C.n_docs, C.n_words) == counts.shape and C.nnz == np.count_nonzero(counts)
    rng = np.random.default_rng(1)
    D = rng.standard_normal((9, 3))
    E = rng.standard_normal((23, 3))
    mm, tmm, sums, rows = [], np.zeros((9, 3)), [], []
    for bt in C.batches(5):
        Db = array_lib(D)
        mm.append(to_np(bt.mm(Db)))
        tmm += to_np(bt.tmm(array_lib(E[bt.start:bt.stop])))
        sums.append(to_np(bt.row_sums()))
        r, c, v = bt.coo()
        dense = np.zeros((len(bt), 9))
        dense[to_np(r), to_np(c)] = to_np(v)
        rows.append(dense)
    np.testing.assert_allclose(np.vstack(mm), counts @ D, atol=1e-12)
    np.testing.assert_allclose(tmm, counts.T @ E, atol=1e-12)
    np.testing.assert_allclose(np.concatenate(sums), counts.sum(1))
    np.testing.assert_array_equal(np.vstack(rows), counts)


def test_single_precision_batches(counts):
    C = as_count_matrix(sp.csr_matrix(counts))
    bt = C.batch(0, 10, np.float32)
    assert bt.mat.dtype == np.float32
    np.testing.assert_array_equal(bt.mat.toarray(), counts[:10])


def test_row_subset_and_to_scipy(counts, array_lib):
    C = as_count_matrix(array_lib(counts.astype(np.float64)))
    rows = np.array([7, 0, 4, 22])
    sub = C.row_subset(rows)
    np.testing.assert_array_equal(sub.to_scipy().toarray(), counts[rows])
    np.testing.assert_array_equal(C.to_scipy().toarray(), counts)


def test_no_copy_for_csr_input(counts):
    X = sp.csr_matrix(counts)
    C = as_count_matrix(X)
    assert C.data is X.data and C.indices is X.indices


@pytest.mark.parametrize("bad, exc, match", [
    (np.array([[1, -1]]), ValueError, "non-negative"),
    (np.array([[1.0, np.nan]]), ValueError, "NaN or infinite"),
    (np.array([[1.0, np.inf]]), ValueError, "NaN or infinite"),
    (np.zeros((0, 3)), ValueError, "empty"),
    (np.zeros((3, 0)), ValueError, "empty"),
    (np.ones(4), ValueError, "2-D"),
    (np.array([["a"]], dtype=object), TypeError, "numeric"),
    (np.array([[1 + 1j]]), TypeError, "numeric"),
    (sp.csr_matrix(np.array([[0.0, -2.0]])), ValueError, "non-negative"),
])
def test_rejects_bad_counts(bad, exc, match):
    with pytest.raises(exc, match=match):
        as_count_matrix(bad, "X")


def test_torch_layouts_and_errors(counts):
    torch = pytest.importorskip("torch")
    dense = torch.as_tensor(counts)
    for t in (dense, dense.to_sparse_coo(), dense.to_sparse_csr(), dense.to_sparse_csc(),
              dense.to(torch.bool)):
        C = as_count_matrix(t)
        expect = counts if t.dtype != torch.bool else (counts > 0).astype(float)
        np.testing.assert_array_equal(C.to_scipy().toarray(), expect)
    with pytest.raises(ValueError, match="2-D"):
        as_count_matrix(torch.ones(3))
    with pytest.raises(TypeError, match="real"):
        as_count_matrix(torch.ones(2, 2, dtype=torch.complex64))
    with pytest.raises(ValueError, match="empty"):
        as_count_matrix(torch.ones(0, 2))
