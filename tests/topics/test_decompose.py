"""Orthogonal decomposition of symmetric k x k x k tensors."""

import numpy as np
import pytest

from tensornet.topics import orthogonal_als, tensor_power_method
from tensornet.topics._decompose import decomposition_residual


def _odeco(k, n_comp, seed):
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((k, k)))
    U = U[:, :n_comp]
    lam = rng.uniform(1.0, 5.0, n_comp)
    T = np.einsum("r,ir,jr,kr->ijk", lam, U, U, U)
    return T, lam, U


def _match(lam, U, lam_hat, U_hat):
    """Max errors after matching components by |<u, u_hat>|."""
    sim = np.abs(U.T @ U_hat)
    order = sim.argmax(1)
    assert len(set(order)) == len(order)
    return (np.abs(lam - lam_hat[order]).max(),
            np.abs(np.abs(np.sum(U * U_hat[:, order], 0)) - 1).max(),
            np.sum(U * U_hat[:, order], 0))


@pytest.mark.parametrize("method", [tensor_power_method, orthogonal_als])
@pytest.mark.parametrize("k", [1, 4, 12])
def test_exact_orthogonal_tensor_is_recovered(method, k):
    T, lam, U = _odeco(k, k, seed=k)
    lam_hat, U_hat, n_iter = method(T, k, n_restarts=8, max_iter=200, tol=1e-13,
                                    rng=np.random.default_rng(0))
    dl, du, signs = _match(lam, U, lam_hat, U_hat)
    assert dl < 1e-8 and du < 1e-8
    assert np.all(signs > 0)  # signs fixed so that the weights are positive
    assert np.all(lam_hat > 0)
    assert decomposition_residual(T, lam_hat, U_hat) < 1e-8
    assert n_iter > 0


def test_power_method_is_robust_to_small_noise():
    T, lam, U = _odeco(8, 8, seed=5)
    noise = np.random.default_rng(1).standard_normal(T.shape) * 1e-3
    noise = sum(noise.transpose(p) for p in
                [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)]) / 6
    lam_hat, U_hat, _ = tensor_power_method(T + noise, 8, rng=np.random.default_rng(0))
    dl, du, _ = _match(lam, U, lam_hat, U_hat)
    assert dl < 0.02 and du < 1e-3


def test_deterministic_for_a_seed():
    T, _, _ = _odeco(6, 6, seed=2)
    a = tensor_power_method(T, 6, rng=np.random.default_rng(3))
    b = tensor_power_method(T, 6, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[0], b[0])


def test_power_method_leaves_input_unchanged():
    T, _, _ = _odeco(5, 5, seed=4)
    before = T.copy()
    tensor_power_method(T, 5, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(T, before)


def test_als_stops_restarting_once_restarts_agree():
    from tensornet.topics._decompose import RESTART_GROUP, RESTART_ITERS

    T, lam, U = _odeco(10, 10, seed=7)
    lam_hat, U_hat, n_iter = orthogonal_als(T, 10, n_restarts=5 * RESTART_GROUP, max_iter=200,
                                            tol=1e-12, rng=np.random.default_rng(0))
    dl, du, _ = _match(lam, U, lam_hat, U_hat)
    assert dl < 1e-8 and du < 1e-8
    # the second group lands in the same optimum as the first: no third group
    assert n_iter < 3 * RESTART_ITERS


def test_als_polish_stops_when_the_objective_stalls():
    T, lam, U = _odeco(8, 8, seed=3)
    noise = np.random.default_rng(2).standard_normal(T.shape) * 0.05
    noise = sum(noise.transpose(p) for p in
                [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)]) / 6
    lam_a, U_a, n_a = orthogonal_als(T + noise, 8, n_restarts=4, max_iter=2000, tol=1e-10,
                                     rng=np.random.default_rng(0))
    assert n_a < 2000
    # the fit is as good as after many more steps with the columns converged
    lam_b, U_b, _ = orthogonal_als(T + noise, 8, n_restarts=4, max_iter=2000, tol=0.0,
                                   rng=np.random.default_rng(0))
    ra = decomposition_residual(T + noise, lam_a, U_a)
    rb = decomposition_residual(T + noise, lam_b, U_b)
    assert ra <= rb + 1e-8
