import numpy as np
import pytest
import tensorly as tl
from hypothesis import given, settings, strategies as st
from tensorly.tt_matrix import TTMatrix
from tensorly.tt_tensor import TTTensor

from tensornet._backend import backend_for
from tensornet.datasets import make_low_rank_tensor
from tensornet.decomposition import tt, tt_matrix, tt_round

from ..conftest import to_np
from ._helpers import assert_like, full, rel_err


def _tt_sum(a, b):
    """Cores of the TT tensor a + b (ranks add up)."""
    cores = []
    d = len(a)
    for k, (x, y) in enumerate(zip(a, b)):
        x, y = np.asarray(x), np.asarray(y)
        if k == 0:
            cores.append(np.concatenate([x, y], axis=-1))
        elif k == d - 1:
            cores.append(np.concatenate([x, y], axis=0))
        else:
            top = np.concatenate([x, np.zeros(x.shape[:2] + (y.shape[-1],))], axis=-1)
            bot = np.concatenate([np.zeros((y.shape[0],) + x.shape[1:2] + (x.shape[-1],)), y],
                                 axis=-1)
            cores.append(np.concatenate([top, bot], axis=0))
    return TTTensor(cores)


@pytest.mark.parametrize("shape,rank", [((4, 5, 6, 7), 3), ((8, 9, 10), (2, 4)), ((30, 40), 5)])
def test_tt_recovers_exact_low_rank(shape, rank, array_lib):
    X, truth = make_low_rank_tensor(shape, rank, kind="tt", random_state=1)
    Xa = array_lib(X)
    est = tt(Xa, rank)
    assert isinstance(est, TTTensor)
    assert est.rank == truth.rank
    for c in est.factors:
        assert_like(c, Xa)
    assert rel_err(full(est, Xa), X) < 1e-10


def test_tt_float32(array_lib):
    X, truth = make_low_rank_tensor((6, 7, 8, 9), 3, kind="tt", random_state=2,
                                    dtype=np.float32)
    Xa = array_lib(X)
    est = tt(Xa, eps=1e-4)
    assert est.rank == truth.rank
    for c in est.factors:
        assert_like(c, Xa)
    assert rel_err(full(est, Xa), X) < 1e-4


def test_tt_numerical_rank_by_default():
    X, truth = make_low_rank_tensor((5, 6, 7, 8), (2, 3, 2), kind="tt", random_state=3)
    est = tt(X)
    assert est.rank == (1, 2, 3, 2, 1)
    assert rel_err(est.to_tensor(), X) < 1e-12


@pytest.mark.parametrize("eps", [0.3, 0.1, 0.01, 1e-4])
def test_tt_eps_achieves_tolerance(eps, array_lib):
    g = np.linspace(0, 1, 10)
    X = np.sin(g[:, None, None, None] + 2 * g[None, :, None, None] * g[None, None, :, None]
               + g[None, None, None, :] ** 2) + 0.01 * g[:, None, None, None] ** 3
    Xa = array_lib(X)
    est = tt(Xa, eps=eps)
    assert rel_err(full(est, Xa), X) <= eps
    assert max(est.rank) < 10  # it did truncate


def test_tt_rank_cap_wins_over_eps():
    X, _ = make_low_rank_tensor((6, 6, 6), 4, kind="tt", random_state=4)
    est = tt(X, rank=2, eps=1e-12)
    assert est.rank == (1, 2, 2, 1)


def test_tt_rank_forms():
    X, _ = make_low_rank_tensor((3, 4, 5, 6), 2, kind="tt", random_state=5)
    assert tt(X, (1, 2, 2, 2, 1)).rank == (1, 2, 2, 2, 1)
    assert tt(X, (2, 2, 2)).rank == (1, 2, 2, 2, 1)
    # an int caps every bond and is clipped where a bond allows less
    # a cap alone gives exactly the (clipped) caps, even above the tensor's own rank
    assert tt(X, 12).rank == (1, 3, 12, 6, 1)
    assert tt(X, 12, eps=1e-12).rank == (1, 2, 2, 2, 1)
    X2 = np.random.default_rng(0).standard_normal((3, 4, 5, 6))
    assert tt(X2, 12).rank == (1, 3, 12, 6, 1)
    assert tt(X2, 4).rank == (1, 3, 4, 4, 1)


def test_tt_rank_fraction():
    X = np.random.default_rng(6).standard_normal((8, 8, 8, 8))
    est = tt(X, 0.25)
    n_params = sum(c.size for c in est.factors)
    assert n_params <= 0.25 * X.size
    caps = est.rank
    bigger = tuple(min(r + 1, m) if 0 < i < 4 else 1 for i, (r, m) in
                   enumerate(zip(caps, (1, 8, 64, 8, 1))))
    assert sum(bigger[k] * 8 * bigger[k + 1] for k in range(4)) > 0.25 * X.size


def test_tt_randomized_path_is_exact_on_low_rank():
    X, truth = make_low_rank_tensor((128, 128, 128), 4, kind="tt", random_state=7)
    est = tt(X, 4, random_state=0)  # unfolding (128, 16384): randomized SVD
    assert est.rank == (1, 4, 4, 1)
    assert rel_err(est.to_tensor(), X) < 1e-10
    forced = tt(X[:16, :16, :16].copy(), 2, svd="randomized", random_state=0)
    assert forced.rank == (1, 2, 2, 1)


def test_tt_randomized_with_eps_accounts_unsketched_energy():
    X, _ = make_low_rank_tensor((40, 40, 40), 3, kind="tt", noise=1e-3, random_state=8)
    # the noise is far below eps: the eps criterion cuts to the planted ranks
    loose = tt(X, rank=10, eps=0.1, svd="randomized", random_state=0)
    assert loose.rank == (1, 3, 3, 1)
    assert rel_err(loose.to_tensor(), X) <= 0.1
    # eps below the noise: the energy outside the sketch (the noise beyond rank 10) counts,
    # so the cap binds instead of the sketch's own tail looking small enough
    tight = tt(X, rank=10, eps=1e-5, svd="randomized", random_state=0)
    assert tight.rank == (1, 10, 10, 1)


def test_tt_order_one_and_two():
    v = np.arange(1.0, 6.0)
    est = tt(v)
    assert est.rank == (1, 1)
    np.testing.assert_allclose(est.to_tensor(), v)
    M = np.outer(np.arange(1.0, 4.0), np.arange(1.0, 5.0))
    assert tt(M).rank == (1, 1, 1)


def test_tt_tensorly_functions_work_on_result():
    X, _ = make_low_rank_tensor((4, 5, 6), 2, kind="tt", random_state=9)
    est = tt(X, 2)
    with backend_for("numpy"):
        np.testing.assert_allclose(tl.tt_to_tensor(est), X, atol=1e-12)
        np.testing.assert_allclose(tl.tt_tensor.tt_to_unfolded(est, 1), tl.unfold(X, 1),
                                   atol=1e-12)


def test_tt_on_torch_cpu_stays_torch():
    torch = pytest.importorskip("torch")
    X, _ = make_low_rank_tensor((5, 6, 7), 2, kind="tt", random_state=10)
    est = tt(torch.tensor(X), 2)
    assert all(isinstance(c, torch.Tensor) for c in est.factors)


# ----------------------------------------------------------------------------- tt_matrix
def test_tt_matrix_linear_weight_round_trip(array_lib):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    lin = torch.nn.Linear(20, 6, dtype=torch.float64)
    W = lin.weight.detach().numpy()
    Wa = array_lib(W)
    ttm = tt_matrix(Wa, in_shape=(4, 5), out_shape=(2, 3))
    assert isinstance(ttm, TTMatrix)
    assert [tuple(c.shape)[1:3] for c in ttm.factors] == [(2, 4), (3, 5)]
    for c in ttm.factors:
        assert_like(c, Wa)
    with backend_for(tl.get_backend() if False else ("numpy" if isinstance(Wa, np.ndarray)
                                                         else "pytorch")):
        M = ttm.to_matrix()
    assert tuple(M.shape) == (6, 20)
    np.testing.assert_allclose(to_np(M), W, atol=1e-12)
    # y = W x, computed from the cores, equals the layer (without bias)
    x = np.random.default_rng(0).standard_normal(20)
    y = lin(torch.tensor(x)).detach().numpy() - lin.bias.detach().numpy()
    np.testing.assert_allclose(to_np(M) @ x, y, atol=1e-12)


def test_tt_matrix_parameter_input():
    torch = pytest.importorskip("torch")
    lin = torch.nn.Linear(16, 12)
    ttm = tt_matrix(lin.weight, in_shape=(4, 4), out_shape=(3, 4), rank=2)
    assert ttm.factors[0].dtype == torch.float32
    assert not ttm.factors[0].requires_grad
    assert ttm.rank == (1, 2, 1)


def test_tt_matrix_agrees_with_tensorly_convention():
    rng = np.random.default_rng(1)
    out_shape, in_shape = (2, 3, 2), (3, 2, 4)
    W = rng.standard_normal((12, 24))
    ours = tt_matrix(W, in_shape, out_shape)
    with backend_for("numpy"):
        ref = tl.decomposition.tensor_train_matrix(W.reshape(out_shape + in_shape), rank=100)
        np.testing.assert_allclose(ref.to_matrix(), W, atol=1e-10)
        np.testing.assert_allclose(ours.to_matrix(), W, atol=1e-10)
        np.testing.assert_allclose(tl.tt_matrix.tt_matrix_to_tensor(ours),
                                   W.reshape(out_shape + in_shape), atol=1e-10)
    assert [c.shape[1:3] for c in ours.factors] == [c.shape[1:3] for c in ref.factors]


def test_tt_matrix_low_rank_and_eps():
    rng = np.random.default_rng(2)
    # a TT-matrix of ranks (1, 3, 2, 1) built from random cores
    cores = [rng.standard_normal(s) for s in [(1, 4, 2, 3), (3, 4, 3, 2), (2, 2, 5, 1)]]
    W = TTMatrix(cores).to_matrix()
    est = tt_matrix(W, (2, 3, 5), (4, 4, 2), eps=1e-10)
    assert est.rank == (1, 3, 2, 1)
    assert rel_err(est.to_matrix(), W) < 1e-10
    loose = tt_matrix(W, (2, 3, 5), (4, 4, 2), eps=0.5)
    assert rel_err(loose.to_matrix(), W) <= 0.5


def test_tt_matrix_single_core():
    W = np.arange(12.0).reshape(3, 4)
    est = tt_matrix(W, (4,), (3,))
    assert est.factors[0].shape == (1, 3, 4, 1)
    np.testing.assert_allclose(est.to_matrix(), W)


def test_tt_matrix_bad_input_messages():
    W = np.ones((6, 20))
    with pytest.raises(ValueError, match="in_shape must multiply to the matrix's number of "
                                         "columns 20"):
        tt_matrix(W, (4, 4), (2, 3))
    with pytest.raises(ValueError, match="out_shape must multiply to the matrix's number of "
                                         "rows 6"):
        tt_matrix(W, (4, 5), (2, 2))
    with pytest.raises(ValueError, match="same length"):
        tt_matrix(W, (4, 5), (6,))
    with pytest.raises(ValueError, match="matrix must have 2 dimensions"):
        tt_matrix(np.ones(20), (4, 5), (1, 1))
    with pytest.raises(ValueError, match="in_shape must be a tuple of positive integers"):
        tt_matrix(W, (4, 0), (2, 3))
    with pytest.raises(ValueError, match="rank"):
        tt_matrix(W, (4, 5), (2, 3), rank=(1, 40, 1))
    bad = W.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="matrix contains NaN"):
        tt_matrix(bad, (4, 5), (2, 3))


# ----------------------------------------------------------------------------- tt_round
def test_tt_round_removes_redundant_ranks(array_lib):
    X, truth = make_low_rank_tensor((5, 6, 7, 4), 2, kind="tt", random_state=3)
    doubled = _tt_sum(truth, truth)
    assert doubled.rank == (1, 4, 4, 4, 1)
    cores = [array_lib(c) for c in doubled.factors]
    out = tt_round(TTTensor(cores))
    assert isinstance(out, TTTensor)
    assert out.rank == (1, 2, 2, 2, 1)
    for c in out.factors:
        assert_like(c, cores[0])
    assert rel_err(full(out, cores[0]), 2 * X) < 1e-10


def test_tt_round_eps_and_rank():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((6, 7, 8, 5))
    t = tt(X)
    for eps in (0.2, 0.5):
        r = tt_round(t, eps=eps)
        assert rel_err(r.to_tensor(), X) <= eps
        assert max(r.rank) < max(t.rank)
    r = tt_round(t, rank=3)
    assert max(r.rank) <= 3
    # rounding to rank r is quasi-optimal: compare with TT-SVD at the same caps
    direct = tt(X, rank=3)
    assert rel_err(r.to_tensor(), X) <= rel_err(direct.to_tensor(), X) * 1.0 + 1e-12


def test_tt_round_tt_matrix_and_list_of_cores():
    rng = np.random.default_rng(5)
    W = rng.standard_normal((12, 10))
    m = tt_matrix(W, (2, 5), (3, 4))
    big = TTMatrix([np.concatenate([m[0], m[0]], axis=-1) / 2,
                    np.concatenate([m[1], m[1]], axis=0)])
    out = tt_round(big)
    assert isinstance(out, TTMatrix)
    assert out.rank == m.rank
    np.testing.assert_allclose(out.to_matrix(), W, atol=1e-10)
    out2 = tt_round(list(big.factors))
    assert isinstance(out2, TTMatrix)
    out3 = tt_round([c for c in tt(rng.standard_normal((3, 4, 5))).factors], rank=2)
    assert isinstance(out3, TTTensor)


def test_tt_round_bad_input_messages():
    with pytest.raises(TypeError, match="tt_tensor must be"):
        tt_round(np.ones((2, 3)))
    with pytest.raises(ValueError, match="mismatched ranks"):
        tt_round([np.ones((1, 2, 3)), np.ones((2, 2, 1))])
    with pytest.raises(ValueError, match="boundary ranks must be 1"):
        tt_round([np.ones((2, 2, 3)), np.ones((3, 2, 1))])
    with pytest.raises(ValueError, match="core 1 contains NaN"):
        tt_round([np.ones((1, 2, 3)), np.full((3, 2, 1), np.nan)])


def test_tt_bad_input_messages():
    X = np.ones((3, 4, 5))
    with pytest.raises(ValueError, match=r"rank must be <= 5"):
        tt(X, 6)
    with pytest.raises(ValueError, match=r"rank\[1\] must be <= 3"):
        tt(X, (1, 4, 2, 1))
    with pytest.raises(ValueError, match="must start and end with 1"):
        tt(X, (2, 2, 2, 2))
    with pytest.raises(ValueError, match="inner TT ranks"):
        tt(X, (2, 2, 2))
    with pytest.raises(ValueError, match="rank"):
        tt(X, 0)
    with pytest.raises(ValueError, match="rank as a float"):
        tt(X, 1.5)
    with pytest.raises(ValueError, match="eps"):
        tt(X, eps=-0.1)
    with pytest.raises(TypeError, match="eps"):
        tt(X, eps="small")
    with pytest.raises(ValueError, match="svd"):
        tt(X, 2, svd="lanczos")
    with pytest.raises(TypeError, match="must be real"):
        tt(X.astype(complex), 2)


@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(2, 6), min_size=2, max_size=5),
       eps=st.floats(0.01, 0.6), seed=st.integers(0, 2**31 - 1))
def test_tt_and_round_meet_eps_property(shape, eps, seed):
    X = np.random.default_rng(seed).standard_normal(shape)
    t = tt(X, eps=eps)
    assert rel_err(t.to_tensor(), X) <= eps * (1 + 1e-9)
    r = tt_round(tt(X), eps=eps)
    assert rel_err(r.to_tensor(), X) <= eps * (1 + 1e-9)
