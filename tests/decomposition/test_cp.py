import numpy as np
import pytest
import tensorly as tl
from tensorly.cp_tensor import CPTensor

from tensornet._backend import backend_for
from tensornet.datasets import make_low_rank_tensor
from tensornet.decomposition import cp
from tensornet.decomposition._cp import _DimTree

from ..conftest import to_np
from ._helpers import assert_like, full, rel_err


@pytest.mark.parametrize("shape,rank", [((12, 13, 14), 4), ((6, 7, 5, 8), 3),
                                        ((9, 8, 3, 3, 3), 5), ((20, 15), 3)])
def test_cp_recovers_exact_low_rank(shape, rank, array_lib):
    X, _ = make_low_rank_tensor(shape, rank, kind="cp", random_state=1)
    Xa = array_lib(X)
    est = cp(Xa, rank, random_state=0, n_iter_max=300, tol=1e-14)
    assert isinstance(est, CPTensor)
    assert est.rank == rank
    for f, s in zip(est.factors, shape):
        assert f.shape == (s, rank)
        assert_like(f, Xa)
    assert_like(est.weights, Xa)
    # exact low-rank data: the fit is at round-off level
    assert rel_err(full(est, Xa), X) < 1e-6


def test_cp_float32_stays_float32(array_lib):
    X, _ = make_low_rank_tensor((10, 11, 12), 3, random_state=2, dtype=np.float32)
    Xa = array_lib(X)
    est, errors = cp(Xa, 3, random_state=0, return_errors=True)
    for arr in (est.weights, *est.factors):
        assert_like(arr, Xa)
    assert rel_err(full(est, Xa), X) < 1e-3
    assert all(isinstance(e, float) for e in errors)


def test_cp_factors_unit_norm_and_tensorly_functions_work():
    X, _ = make_low_rank_tensor((8, 9, 10), 3, random_state=3)
    est = cp(X, 3, random_state=0)
    for f in est.factors:
        np.testing.assert_allclose(np.linalg.norm(f, axis=0), 1.0, rtol=1e-10)
    with backend_for("numpy"):
        np.testing.assert_allclose(tl.cp_to_tensor(est), est.to_tensor())
        assert abs(tl.cp_tensor.cp_norm(est) - np.linalg.norm(X)) / np.linalg.norm(X) < 1e-6
        unf = tl.cp_tensor.cp_to_unfolded(est, 1)
    np.testing.assert_allclose(unf, tl.unfold(X, 1), atol=1e-6 * np.abs(X).max())


def test_cp_errors_decrease_and_match_true_error():
    X, _ = make_low_rank_tensor((15, 16, 17), 4, noise=0.2, random_state=4)
    est, errors = cp(X, 4, init="random", random_state=1, n_iter_max=40, tol=0,
                     return_errors=True)
    assert len(errors) == 40
    assert all(b <= a + 1e-12 for a, b in zip(errors, errors[1:]))  # ALS is monotone
    assert abs(errors[-1] - rel_err(est.to_tensor(), X)) < 1e-8
    # noise of relative size 0.2: the best rank-4 fit leaves about that much
    assert 0.15 < errors[-1] < 0.21


def test_cp_tol_stops_early():
    X, _ = make_low_rank_tensor((10, 10, 10), 2, random_state=5)
    _, errors = cp(X, 2, tol=1e-6, n_iter_max=500, return_errors=True)
    assert len(errors) < 500


def test_cp_n_iter_max_zero_returns_init():
    X, _ = make_low_rank_tensor((6, 7, 8), 2, random_state=6)
    init = cp(X, 2, init="random", n_iter_max=0, random_state=3)
    again = cp(X, 2, init="random", n_iter_max=0, random_state=3)
    for a, b in zip(init.factors, again.factors):
        np.testing.assert_array_equal(a, b)


def test_cp_init_cptensor_continues():
    X, _ = make_low_rank_tensor((10, 11, 12), 3, noise=0.05, random_state=7)
    first, e1 = cp(X, 3, n_iter_max=3, tol=0, random_state=0, return_errors=True)
    second, e2 = cp(X, 3, init=first, n_iter_max=3, tol=0, return_errors=True)
    assert e2[0] <= e1[-1] + 1e-12
    # the given init is not modified
    np.testing.assert_allclose(np.linalg.norm(first.factors[0], axis=0), 1.0)


def test_cp_rank_above_mode_sizes_is_allowed():
    # rank 5 exceeds the first two mode sizes (3 and 4)
    X, _ = make_low_rank_tensor((3, 4, 20), 5, random_state=8)
    est = cp(X, 5, random_state=0, n_iter_max=2000, tol=1e-14)
    assert est.rank == 5
    assert [f.shape for f in est.factors] == [(3, 5), (4, 5), (20, 5)]
    assert rel_err(est.to_tensor(), X) < 1e-5


def test_cp_rank_deficient_gram_is_handled():
    # rank 5 on a rank-1 tensor: the Gram matrices are (nearly) singular
    a, b, c = (np.arange(1.0, s + 1) for s in (6, 7, 8))
    X = np.einsum("i,j,k->ijk", a, b, c)
    est = cp(X, 5, random_state=0, n_iter_max=50)
    for arr in (est.weights, *est.factors):
        assert np.isfinite(arr).all()
    assert rel_err(est.to_tensor(), X) < 1e-6


def test_cp_rank_as_fraction():
    X, _ = make_low_rank_tensor((10, 10, 10), 3, random_state=9)
    est = cp(X, 0.1, n_iter_max=5)
    # 0.1 * 1000 / (30 + 1) -> 3 components
    assert est.rank == 3
    assert est.rank * (30 + 1) <= 0.1 * 1000


def test_cp_nonnegative_recovers(array_lib):
    rng = np.random.default_rng(10)
    factors = [rng.random((s, 3)) for s in (9, 10, 11)]
    X = np.einsum("ir,jr,kr->ijk", *factors)
    Xa = array_lib(X)
    est = cp(Xa, 3, nonnegative=True, random_state=0, n_iter_max=1000, tol=1e-12)
    for arr in (est.weights, *est.factors):
        assert_like(arr, Xa)
        assert to_np(arr).min() >= 0
    assert rel_err(full(est, Xa), X) < 1e-4


def test_cp_nonnegative_random_init_float32():
    rng = np.random.default_rng(11)
    factors = [rng.random((s, 2)).astype(np.float32) for s in (6, 7, 8)]
    X = np.einsum("ir,jr,kr->ijk", *factors)
    est = cp(X, 2, nonnegative=True, init="random", random_state=1, n_iter_max=500)
    assert est.weights.dtype == np.float32
    assert min(f.min() for f in est.factors) >= 0
    assert rel_err(est.to_tensor(), X) < 1e-3


def test_cp_torch_parameter_input_is_detached():
    torch = pytest.importorskip("torch")
    X, _ = make_low_rank_tensor((6, 7, 8), 2, random_state=12)
    p = torch.nn.Parameter(torch.tensor(X))
    est = cp(p, 2, random_state=0)
    assert not est.factors[0].requires_grad
    assert est.factors[0].grad_fn is None


def test_cp_does_not_modify_input(array_lib):
    X, _ = make_low_rank_tensor((6, 7, 8), 2, random_state=13)
    Xa = array_lib(X.copy())
    cp(Xa, 2, random_state=0)
    np.testing.assert_array_equal(to_np(Xa), X)


def test_cp_same_seed_same_result_across_backends():
    torch = pytest.importorskip("torch")
    X, _ = make_low_rank_tensor((7, 8, 9), 3, noise=0.1, random_state=14)
    a = cp(X, 3, init="random", random_state=5, n_iter_max=5, tol=0)
    b = cp(torch.tensor(X), 3, init="random", random_state=5, n_iter_max=5, tol=0)
    for fa, fb in zip(a.factors, b.factors):
        np.testing.assert_allclose(fa, fb.numpy(), atol=1e-8)


@pytest.mark.parametrize("shape", [(5, 6, 7), (4, 5, 3, 6), (6, 5, 3, 3, 3), (3, 2, 4, 2, 3, 2)])
def test_dimension_tree_mttkrp_matches_naive(shape):
    """Every leaf's MTTKRP equals X_(k) times the Khatri-Rao product of the other factors."""
    rng = np.random.default_rng(15)
    r = 3
    X = rng.standard_normal(shape)
    Ft = [rng.standard_normal((r, s)) for s in shape]
    tree = _DimTree(shape)
    seen = {}

    def on_leaf(k, Mt):
        letters = "abcdefgh"[:len(shape)]
        ops = [Ft[j] for j in range(len(shape)) if j != k]
        subs = ",".join("r" + letters[j] for j in range(len(shape)) if j != k)
        naive = np.einsum(f"{letters},{subs}->r{letters[k]}", X, *ops)
        np.testing.assert_allclose(Mt, naive, rtol=1e-10, atol=1e-10)
        seen[k] = True
        Ft[k] = rng.standard_normal((r, shape[k]))  # updates must be picked up by later modes

    with backend_for("numpy"):
        tree.sweep(X, Ft, on_leaf)
    assert sorted(seen) == list(range(len(shape)))


def test_cp_bad_input_messages():
    X = np.ones((3, 4, 5))
    with pytest.raises(ValueError, match="rank"):
        cp(X, 0)
    with pytest.raises(ValueError, match="rank"):
        cp(X, -2)
    with pytest.raises(ValueError, match="rank must be <= 12"):
        cp(X, 13)
    with pytest.raises(TypeError, match="rank"):
        cp(X, "3")
    with pytest.raises(ValueError, match="rank"):
        cp(X, 1.5)
    with pytest.raises(ValueError, match="init"):
        cp(X, 2, init="hosvd")
    with pytest.raises(ValueError, match="tensor"):
        cp(np.ones(5), 1)
    bad = X.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="tensor contains NaN"):
        cp(bad, 2)
    bad[0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="tensor contains NaN or infinite"):
        cp(bad, 2)
    with pytest.raises(ValueError, match="n_iter_max"):
        cp(X, 2, n_iter_max=-1)
    with pytest.raises(ValueError, match="tol"):
        cp(X, 2, tol=-1.0)
    with pytest.raises(ValueError, match="init factor 1 must have shape"):
        cp(X, 2, init=CPTensor((np.ones(2), [np.ones((3, 2)), np.ones((5, 2)), np.ones((5, 2))])))
    with pytest.raises(ValueError, match="init factor 0 contains NaN"):
        cp(X, 2, init=CPTensor((np.ones(2), [np.full((3, 2), np.nan), np.ones((4, 2)),
                                              np.ones((5, 2))])))
    with pytest.raises(TypeError, match="tensor must be"):
        cp("abc", 2)
    with pytest.raises(TypeError, match="nonnegative"):
        cp(X, 2, nonnegative="yes")


def test_cp_init_from_other_library_is_refused():
    torch = pytest.importorskip("torch")
    X = np.ones((3, 4, 5))
    init = CPTensor((torch.ones(2), [torch.ones((s, 2)) for s in X.shape]))
    with pytest.raises(TypeError, match="init factors must be 'numpy' arrays"):
        cp(X, 2, init=init)


def test_verbose_logs_instead_of_printing(caplog, capsys):
    import logging

    X, _ = make_low_rank_tensor((6, 7, 8), 2, random_state=16)
    with caplog.at_level(logging.INFO, logger="tensornet.decomposition"):
        cp(X, 2, n_iter_max=3, tol=0, verbose=True, random_state=0)
    assert sum("cp sweep" in r.getMessage() for r in caplog.records) == 3
    assert capsys.readouterr().out == ""
