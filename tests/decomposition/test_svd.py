import numpy as np
import pytest

from tensornet._backend import backend_for
from tensornet.decomposition import randomized_range_finder, randomized_svd
from tensornet.decomposition._svd import choose_rank, mode_gram, mode_svd, ttm, unfold

from ..conftest import to_np
from ._helpers import assert_like


def _low_rank(m, n, r, seed=0, decay=None):
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.standard_normal((m, r)))[0]
    V = np.linalg.qr(rng.standard_normal((n, r)))[0]
    s = np.geomspace(1.0, 1e-3, r) if decay else np.linspace(3.0, 1.0, r)
    return (U * s) @ V.T, s


@pytest.mark.parametrize("shape", [(80, 50), (50, 80)])
def test_randomized_svd_exact_on_low_rank(shape, array_lib):
    A, s = _low_rank(*shape, 6)
    Aa = array_lib(A)
    U, S, Vt = randomized_svd(Aa, 6, random_state=0)
    for arr in (U, S, Vt):
        assert_like(arr, Aa)
    assert tuple(U.shape) == (shape[0], 6) and tuple(Vt.shape) == (6, shape[1])
    np.testing.assert_allclose(to_np(S), s, rtol=1e-10)
    np.testing.assert_allclose((to_np(U) * to_np(S)) @ to_np(Vt), A, atol=1e-10)
    np.testing.assert_allclose(to_np(U).T @ to_np(U), np.eye(6), atol=1e-10)


def test_randomized_svd_near_optimal_on_noisy_matrix():
    rng = np.random.default_rng(1)
    A, _ = _low_rank(200, 150, 10, seed=1)
    A = A + 1e-2 * rng.standard_normal(A.shape)
    U, S, Vt = randomized_svd(A, 10, random_state=0)
    s_exact = np.linalg.svd(A, compute_uv=False)
    best = np.sqrt(np.sum(s_exact[10:] ** 2))
    err = np.linalg.norm(A - (U * S) @ Vt)
    assert err <= 1.01 * best
    np.testing.assert_allclose(S, s_exact[:10], rtol=1e-6)


def test_randomized_svd_float32_and_seed_reproducible():
    A, _ = _low_rank(60, 40, 4, seed=2)
    A = A.astype(np.float32)
    a = randomized_svd(A, 4, random_state=3)
    b = randomized_svd(A, 4, random_state=3)
    assert a[0].dtype == np.float32
    np.testing.assert_array_equal(a[1], b[1])


def test_range_finder(array_lib):
    A, _ = _low_rank(70, 30, 5, seed=3)
    Q = randomized_range_finder(array_lib(A), 5, random_state=0)
    Qn = to_np(Q)
    np.testing.assert_allclose(Qn @ (Qn.T @ A), A, atol=1e-10)


def test_randomized_svd_bad_input():
    with pytest.raises(ValueError, match="matrix must have 2 dimensions"):
        randomized_svd(np.ones(5), 1)
    with pytest.raises(ValueError, match="rank must be <= 4"):
        randomized_svd(np.ones((4, 6)), 5)
    with pytest.raises(ValueError, match="rank must be >= 1"):
        randomized_svd(np.ones((4, 6)), 0)
    with pytest.raises(ValueError, match="n_power_iter"):
        randomized_svd(np.ones((4, 6)), 2, n_power_iter=-1)
    with pytest.raises(ValueError, match="matrix contains NaN"):
        randomized_svd(np.full((4, 6), np.nan), 2)
    with pytest.raises(ValueError, match="size must be <= 4"):
        randomized_range_finder(np.ones((4, 6)), 5)


def test_choose_rank_rules():
    s = np.array([4.0, 2.0, 1.0, 0.5])
    assert choose_rank(s, None, None) == 4
    assert choose_rank(s, 2, None) == 2
    # discarding [1, 0.5] costs 1.25; [0.5] costs 0.25
    assert choose_rank(s, None, 1.25) == 2
    assert choose_rank(s, None, 1.2) == 3
    assert choose_rank(s, None, 0.1) == 4
    # energy outside the computed values counts too
    assert choose_rank(s, None, 1.25, rest2=0.1) == 3
    assert choose_rank(s, None, None, rtol=0.2) == 3
    assert choose_rank(s, None, 1e9) == 1  # never zero


@pytest.mark.parametrize("mode", [0, 1, 2, 3])
def test_mode_gram_and_mode_svd(mode, monkeypatch):
    import tensornet.decomposition._svd as svdmod

    rng = np.random.default_rng(4)
    X = rng.standard_normal((5, 6, 7, 8))
    G = unfold(X, mode) @ unfold(X, mode).T
    with backend_for("numpy"):
        np.testing.assert_allclose(mode_gram(X, mode), G, rtol=1e-12)
        np.testing.assert_allclose(mode_gram(X.astype(np.float32), mode, np.float64), G,
                                   rtol=1e-5)
        # force the chunked Gram path (tiny chunks, no dense SVD)
        monkeypatch.setattr(svdmod, "_plan", lambda *a, **k: "gram")
        monkeypatch.setattr(svdmod, "GRAM_CHUNK", 50)
        np.testing.assert_allclose(mode_gram(X, mode, np.float64), G, rtol=1e-12)
        U, S = mode_svd(X, mode, rank_cap=3)
    s_ref = np.linalg.svd(unfold(X, mode), compute_uv=False)[:3]
    np.testing.assert_allclose(S, s_ref, rtol=1e-8)
    assert U.shape == (X.shape[mode], 3)


@pytest.mark.parametrize("mode", [0, 1, 2, 3])
@pytest.mark.parametrize("shape", [(4, 5, 6, 70), (4, 5, 6, 2)])
def test_ttm_matches_einsum(mode, shape):
    rng = np.random.default_rng(5)
    X = rng.standard_normal(shape)
    U = rng.standard_normal((shape[mode], 3))
    letters = "abcd"
    out = letters.replace(letters[mode], "r")
    ref = np.einsum(f"{letters},{letters[mode]}r->{out}", X, U)
    with backend_for("numpy"):
        np.testing.assert_allclose(ttm(X, U, mode), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(40, 300), (300, 40)])
@pytest.mark.parametrize("route", ["gram", "randomized", "full"])
def test_matrix_svd_routes_agree(shape, route, monkeypatch, array_lib):
    import tensornet.decomposition._svd as svdmod

    A, s = _low_rank(*shape, 6, seed=6, decay=True)
    Aa = array_lib(A)
    monkeypatch.setattr(svdmod, "_plan", lambda *a, **k: route)
    with backend_for("numpy" if isinstance(Aa, np.ndarray) else "pytorch"):
        U, S, SVt = svdmod.matrix_svd(Aa, rank_cap=6, rng=np.random.default_rng(0))
    assert_like(U, Aa)
    Un, SVtn = to_np(U), to_np(SVt)
    np.testing.assert_allclose(Un.T @ Un, np.eye(6), atol=1e-8)
    np.testing.assert_allclose(Un @ SVtn, A, atol=1e-8)
    np.testing.assert_allclose(to_np(S), s, rtol=1e-6)


def test_partial_eigh_matches_full(array_lib):
    from tensornet.decomposition._svd import _eigh_desc

    rng = np.random.default_rng(7)
    B = rng.standard_normal((300, 300))
    G = B @ B.T
    Ga = array_lib(G)
    with backend_for("numpy" if isinstance(Ga, np.ndarray) else "pytorch"):
        lam, V = _eigh_desc(Ga, 5)
        lam_all, _ = _eigh_desc(Ga)
    assert_like(lam, Ga)
    np.testing.assert_allclose(to_np(lam), to_np(lam_all)[:5], rtol=1e-10)
    Vn = to_np(V)
    np.testing.assert_allclose(G @ Vn, Vn * to_np(lam), atol=1e-7 * to_np(lam)[0])
