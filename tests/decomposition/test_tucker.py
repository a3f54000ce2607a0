import numpy as np
import pytest
import tensorly as tl
from tensorly.tucker_tensor import TuckerTensor

from tensornet._backend import backend_for
from tensornet.datasets import make_low_rank_tensor
from tensornet.decomposition import tucker

from ..conftest import to_np
from ._helpers import assert_like, full, rel_err


@pytest.mark.parametrize("method", ["hooi", "hosvd"])
@pytest.mark.parametrize("shape,rank", [((10, 11, 12), (2, 3, 4)), ((6, 7, 5, 8), (3, 2, 4, 2))])
def test_tucker_recovers_exact_low_rank(shape, rank, method, array_lib):
    X, _ = make_low_rank_tensor(shape, rank, kind="tucker", random_state=1)
    Xa = array_lib(X)
    est = tucker(Xa, rank, method=method)
    assert isinstance(est, TuckerTensor)
    assert est.rank == rank
    assert_like(est.core, Xa)
    for f in est.factors:
        assert_like(f, Xa)
        g = to_np(f).T @ to_np(f)
        np.testing.assert_allclose(g, np.eye(g.shape[0]), atol=1e-10)
    assert rel_err(full(est, Xa), X) < 1e-10


def test_tucker_float32(array_lib):
    X, _ = make_low_rank_tensor((12, 10, 8), (3, 3, 2), kind="tucker", random_state=2,
                                dtype=np.float32)
    Xa = array_lib(X)
    est = tucker(Xa, (3, 3, 2))
    assert_like(est.core, Xa)
    for f in est.factors:
        assert_like(f, Xa)
    assert rel_err(full(est, Xa), X) < 1e-5


def test_hooi_improves_on_hosvd_with_noise():
    X, _ = make_low_rank_tensor((20, 21, 22), (4, 5, 6), kind="tucker", noise=0.3,
                                random_state=3)
    h = tucker(X, (4, 5, 6), method="hosvd")
    o, errors = tucker(X, (4, 5, 6), method="hooi", return_errors=True)
    assert rel_err(o.to_tensor(), X) <= rel_err(h.to_tensor(), X) + 1e-12
    assert abs(errors[-1] - rel_err(o.to_tensor(), X)) < 1e-8
    assert all(b <= a + 1e-12 for a, b in zip(errors, errors[1:]))


@pytest.mark.parametrize("eps", [0.3, 0.1, 0.02])
@pytest.mark.parametrize("method", ["hosvd", "hooi"])
def test_tucker_eps_achieves_tolerance(eps, method):
    # smooth tensor with a decaying multilinear spectrum
    g = np.linspace(0, 1, 20)
    X = 1.0 / (1.0 + g[:, None, None] + 2 * g[None, :, None] ** 2 + 3 * g[None, None, :])
    est = tucker(X, eps=eps, method=method)
    assert rel_err(est.to_tensor(), X) <= eps
    assert max(est.rank) < 20  # it did truncate


def test_tucker_eps_float32_truncates():
    X, _ = make_low_rank_tensor((30, 31, 32), (3, 4, 5), kind="tucker", random_state=4,
                                dtype=np.float32)
    est = tucker(X, eps=1e-4, method="hosvd")
    assert est.rank == (3, 4, 5)
    assert est.core.dtype == np.float32


def test_tucker_numerical_rank_without_rank_or_eps():
    X, _ = make_low_rank_tensor((9, 10, 11), (2, 3, 4), kind="tucker", random_state=5)
    est = tucker(X)
    assert est.rank == (2, 3, 4)
    assert rel_err(est.to_tensor(), X) < 1e-12


def test_tucker_full_rank_modes_use_identity_and_stay_exact():
    X, _ = make_low_rank_tensor((16, 12, 3, 3), (4, 5, 3, 3), kind="tucker", random_state=6)
    est = tucker(X, (4, 5, 3, 3))
    np.testing.assert_array_equal(est.factors[2], np.eye(3))
    assert rel_err(est.to_tensor(), X) < 1e-10


def test_tucker_int_rank_is_clipped_per_mode():
    X, _ = make_low_rank_tensor((8, 3, 9), (2, 3, 2), kind="tucker", random_state=7)
    est = tucker(X, 4)
    assert est.rank == (4, 3, 4)


def test_tucker_rank_fraction():
    X, _ = make_low_rank_tensor((20, 20, 20), (5, 5, 5), kind="tucker", random_state=8)
    est = tucker(X, 0.05)
    n_params = np.prod(est.rank) + sum(s * r for s, r in zip(X.shape, est.rank))
    assert n_params <= 0.05 * X.size
    assert est.rank == (4, 4, 4)  # 304 parameters; (5, 5, 5) would need 425 > 400
    bigger = [r + 1 for r in est.rank]
    assert np.prod(bigger) + sum(s * r for s, r in zip(X.shape, bigger)) > 0.05 * X.size


def test_tucker_random_init_and_tuckertensor_init():
    X, _ = make_low_rank_tensor((10, 11, 12), (2, 3, 2), kind="tucker", noise=0.01,
                                random_state=9)
    a = tucker(X, (2, 3, 2), init="random", random_state=0, n_iter_max=50)
    b = tucker(X, (2, 3, 2), init=a, n_iter_max=2)
    assert rel_err(a.to_tensor(), X) < 0.02
    assert rel_err(b.to_tensor(), X) <= rel_err(a.to_tensor(), X) + 1e-9
    # without rank, the ranks come from the given TuckerTensor
    c = tucker(X, init=a, n_iter_max=2)
    assert c.rank == (2, 3, 2)


def test_tucker_tensorly_functions_work_on_result():
    X, _ = make_low_rank_tensor((6, 7, 8), (2, 2, 3), kind="tucker", random_state=10)
    est = tucker(X, (2, 2, 3))
    with backend_for("numpy"):
        np.testing.assert_allclose(tl.tucker_to_tensor(est), X, atol=1e-10)
        np.testing.assert_allclose(tl.tucker_tensor.tucker_to_unfolded(est, 2),
                                   tl.unfold(X, 2), atol=1e-10)


def test_tucker_core_is_not_the_input():
    X = np.random.default_rng(11).standard_normal((3, 4, 5))
    est = tucker(X, (3, 4, 5))
    assert est.core is not X
    est.core[0, 0, 0] = 99.0
    assert X[0, 0, 0] != 99.0


def test_tucker_bad_input_messages():
    X = np.ones((3, 4, 5))
    with pytest.raises(ValueError, match=r"rank\[1\] must be <= 4"):
        tucker(X, (2, 5, 2))
    with pytest.raises(ValueError, match="rank must be <= 5"):
        tucker(X, 6)
    with pytest.raises(ValueError, match="rank must have one entry per mode"):
        tucker(X, (2, 2))
    with pytest.raises(ValueError, match="rank"):
        tucker(X, 0)
    with pytest.raises(ValueError, match="method"):
        tucker(X, 2, method="tt")
    with pytest.raises(ValueError, match="init"):
        tucker(X, 2, init="hosvd")
    with pytest.raises(ValueError, match="eps"):
        tucker(X, eps=1.5)
    with pytest.raises(ValueError, match="tensor must have at least 2 dimensions"):
        tucker(np.ones(4), 2)
    X[1, 1, 1] = np.inf
    with pytest.raises(ValueError, match="tensor contains NaN or infinite"):
        tucker(X, 2)
