import numpy as np
import pytest
from tensorly.cp_tensor import CPTensor
from tensorly.tt_tensor import TTTensor
from tensorly.tucker_tensor import TuckerTensor

from tensornet.datasets import make_low_rank_tensor


@pytest.mark.parametrize("kind,rank,cls", [("cp", 3, CPTensor), ("tucker", (2, 3, 2), TuckerTensor),
                                           ("tt", 2, TTTensor)])
def test_make_low_rank_tensor_matches_its_decomposition(kind, rank, cls):
    X, truth = make_low_rank_tensor((5, 6, 7), rank, kind=kind, random_state=0)
    assert isinstance(truth, cls)
    assert X.shape == (5, 6, 7) and X.dtype == np.float64
    np.testing.assert_allclose(truth.to_tensor(), X, atol=1e-12)


def test_ranks_are_the_planted_ones():
    X, truth = make_low_rank_tensor((6, 7, 8), 3, kind="cp", random_state=1)
    assert np.linalg.matrix_rank(X.reshape(6, -1)) == 3
    X, truth = make_low_rank_tensor((6, 7, 8), (2, 3, 4), kind="tucker", random_state=1)
    assert [np.linalg.matrix_rank(np.moveaxis(X, k, 0).reshape(X.shape[k], -1))
            for k in range(3)] == [2, 3, 4]
    X, truth = make_low_rank_tensor((3, 4, 5, 6), 30, kind="tt", random_state=1)
    assert truth.rank == (1, 3, 12, 6, 1)  # clipped to the bond maxima


def test_noise_level_and_seed():
    X0, _ = make_low_rank_tensor((8, 8, 8), 2, random_state=2)
    X1, truth = make_low_rank_tensor((8, 8, 8), 2, noise=0.1, random_state=2)
    rel = np.linalg.norm(X1 - truth.to_tensor()) / np.linalg.norm(truth.to_tensor())
    assert abs(rel - 0.1) < 1e-12
    again, _ = make_low_rank_tensor((8, 8, 8), 2, noise=0.1, random_state=2)
    np.testing.assert_array_equal(X1, again)


def test_dtype_float32():
    X, truth = make_low_rank_tensor((4, 5, 6), 2, kind="tt", random_state=3, dtype=np.float32)
    assert X.dtype == np.float32
    assert all(c.dtype == np.float32 for c in truth.factors)


def test_bad_input():
    with pytest.raises(ValueError, match="kind"):
        make_low_rank_tensor((3, 4), 2, kind="pca")
    with pytest.raises(ValueError, match="rank"):
        make_low_rank_tensor((3, 4), 0)
    with pytest.raises(ValueError, match=r"rank\[1\] must be <= shape\[1\] = 4"):
        make_low_rank_tensor((3, 4, 5), (2, 5, 2), kind="tucker")
    with pytest.raises(ValueError, match="noise"):
        make_low_rank_tensor((3, 4), 2, noise=-1.0)
    with pytest.raises(ValueError, match="shape"):
        make_low_rank_tensor((3, 0), 2)
    with pytest.raises(TypeError, match="dtype"):
        make_low_rank_tensor((3, 4), 2, dtype=np.int32)
