"""Prox operators, subgradients and the v0 initialisation against closed forms."""

import math

import numpy as np
import pytest
import torch

from tensornet.optim.functional import (
    group_norms,
    group_size,
    group_soft_threshold,
    penalty,
    prox,
    soft_threshold,
    subgradient,
)


def _rand(shape, seed=0, zero_groups=None, dim=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    if zero_groups:
        idx = [slice(None)] * len(shape)
        for z in zero_groups:
            idx[dim] = z
            x[tuple(idx)] = 0
    return x


def test_soft_threshold_closed_form():
    x = _rand((50,), 1) * 2
    t = 0.7
    expected = np.array([xi - t if xi > t else (xi + t if xi < -t else 0.0)
                         for xi in x.numpy()])
    np.testing.assert_allclose(soft_threshold(x, t).numpy(), expected, rtol=0, atol=1e-15)
    np.testing.assert_allclose(prox(x, ["l1"], lam=0.35, scale=2.0).numpy(), expected,
                               atol=1e-15)


def test_soft_threshold_is_the_argmin():
    # prox_{t|.|}(x) minimises 0.5 (p - x)^2 + t |p| elementwise: compare with a fine grid
    x = torch.tensor([-1.3, -0.2, 0.05, 0.9], dtype=torch.float64)
    t = 0.4
    grid = torch.linspace(-3, 3, 600001, dtype=torch.float64)
    for xi, pi in zip(x, soft_threshold(x, t)):
        obj = 0.5 * (grid - xi) ** 2 + t * grid.abs()
        assert abs(float(grid[obj.argmin()]) - float(pi)) < 2e-5


@pytest.mark.parametrize("shape,dims", [((6, 5), [0]), ((6, 5), [1]), ((4, 3, 2, 2), [0, 1]),
                                        ((3, 4, 5), [2])])
def test_group_soft_threshold_closed_form(shape, dims):
    x = _rand(shape, 2)
    t = 0.3
    out = group_soft_threshold(x, t, dims)
    # loop over the groups: entries sharing their indices along dims
    other = [d for d in range(len(shape)) if d not in dims]
    size = math.prod(shape[d] for d in other)
    assert group_size(shape, dims) == size
    xs = x.permute(dims + other).reshape(-1, size)
    os_ = out.permute(dims + other).reshape(-1, size)
    for xg, og in zip(xs, os_):
        n = float(xg.norm())
        factor = max(0.0, 1.0 - t * math.sqrt(size) / n)
        np.testing.assert_allclose(og.numpy(), (factor * xg).numpy(), atol=1e-14)


def test_group_threshold_zeroes_small_groups_exactly():
    x = torch.tensor([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]], dtype=torch.float64)
    out = prox(x, ["group", [0], 1], lam=1 / math.sqrt(2), scale=1.0)   # threshold 1
    assert out[1].abs().sum() == 0 and out[2].abs().sum() == 0
    np.testing.assert_allclose(out[0].numpy(), [2.4, 3.2], atol=1e-14)


def test_group_blocks_match_explicit_index_groups():
    # a dim of 2 blocks x 3 groups: group r = indices {r, 3 + r}
    x = _rand((5, 6), 3)
    t = 0.2
    out = group_soft_threshold(x, t, [1], blocks=2)
    norms = group_norms(x, [1], blocks=2)
    assert norms.shape == (3,)
    for r in range(3):
        cols = [r, 3 + r]
        xg = x[:, cols]
        n = float(xg.norm())
        assert abs(float(norms[r]) - n) < 1e-12
        factor = max(0.0, 1.0 - t * math.sqrt(xg.numel()) / n)
        np.testing.assert_allclose(out[:, cols].numpy(), (factor * xg).numpy(), atol=1e-14)


def test_group_norms_follow_the_order_of_dims():
    x = _rand((3, 4, 5), 4)
    a = group_norms(x, [0, 2])
    b = group_norms(x, [2, 0])
    assert a.shape == (3, 5) and b.shape == (5, 3)
    torch.testing.assert_close(a, b.T)
    torch.testing.assert_close(a, x.pow(2).sum(1).sqrt())


@pytest.mark.parametrize("layout,shape,dim", [
    (["l1"], (7, 4), 0),
    (["group", [0], 1], (7, 4), 0),
    (["group", [1], 1], (3, 6, 2), 1),
    (["group", [1], 2], (3, 6, 2), 1),
    (["group", [0, 1], 1], (4, 3, 2, 2), 0),
])
@pytest.mark.parametrize("delta", [0.5, 1.0, 3.0])
def test_v0_initialisation_reproduces_theta(layout, shape, dim, delta):
    """v0 = theta/delta + dJ(theta) gives prox_{delta J}(delta v0) = theta (zero groups too)."""
    lam = 0.37
    theta = _rand(shape, 5, zero_groups=[0, 2], dim=dim)
    v0 = theta / delta + subgradient(theta, layout, lam)
    back = prox(delta * v0, layout, lam, scale=delta)
    torch.testing.assert_close(back, theta, atol=1e-12, rtol=1e-12)


def test_subgradient_is_a_subgradient():
    # J(y) >= J(x) + <p, y - x> for random y
    lam = 0.5
    for layout in (["l1"], ["group", [0], 1]):
        x = _rand((5, 4), 6, zero_groups=[1])
        p = subgradient(x, layout, lam)
        jx = penalty(x, layout, lam)
        for s in range(20):
            y = _rand((5, 4), 100 + s)
            assert penalty(y, layout, lam) >= jx + float((p * (y - x)).sum()) - 1e-12
        # on a zero group the subgradient is 0 (inside the ball)
        if layout[0] == "group":
            assert p[1].abs().sum() == 0


def test_penalty_values():
    x = torch.tensor([[3.0, 4.0], [0.0, 1.0]])
    assert penalty(x, ["l1"], 2.0) == pytest.approx(16.0)
    assert penalty(x, ["group", [0], 1], 1.0) == pytest.approx(math.sqrt(2) * 6.0)
    assert penalty(x, None, 1.0) == 0.0


def test_zero_lambda_is_identity():
    x = _rand((4, 4), 7)
    torch.testing.assert_close(prox(x, ["group", [0], 1], 0.0, 1.0), x)
    torch.testing.assert_close(prox(x, ["l1"], 0.0, 1.0), x)
    torch.testing.assert_close(subgradient(x, ["l1"], 0.0), torch.zeros_like(x))


def test_unknown_layout_is_rejected():
    with pytest.raises(ValueError, match="unknown layout"):
        prox(torch.ones(2), ["nuclear"], 1.0)


def test_multi_tensor_updates_match_the_single_tensor_ones():
    from tensornet.optim.functional import (
        adabreg_foreach_,
        adabreg_update_,
        linbreg_foreach_,
        linbreg_update_,
    )

    layouts = [["l1"], ["group", [0], 1, 2.5], None]
    shapes = [(4, 3), (5, 2), (6,)]

    def fresh():
        return [_rand(s, 10 + k) for k, s in enumerate(shapes)]

    grads = [[_rand(s, 20 + 3 * t + k) for k, s in enumerate(shapes)] for t in range(3)]
    # LinBreg with momentum
    p1, v1, b1 = fresh(), fresh(), [None] * 3
    p2, v2, b2 = fresh(), fresh(), [torch.zeros(s, dtype=torch.float64) for s in shapes]
    for gs in grads:
        for k in range(3):
            b1[k] = linbreg_update_(p1[k], gs[k], v1[k], b1[k], lr=0.3, momentum=0.7,
                                    delta=1.5, lam=0.2, layout=layouts[k])
        linbreg_foreach_(p2, gs, v2, b2, lr=0.3, momentum=0.7, delta=1.5, lam=0.2,
                         layouts=layouts)
    for a, b in zip(p1 + v1 + b1, p2 + v2 + b2):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)
    # AdaBreg
    p1, v1 = fresh(), fresh()
    p2, v2 = fresh(), fresh()
    m1, s1 = [torch.zeros(s, dtype=torch.float64) for s in shapes], \
        [torch.zeros(s, dtype=torch.float64) for s in shapes]
    m2, s2 = [x.clone() for x in m1], [x.clone() for x in s1]
    for t, gs in enumerate(grads, start=1):
        for k in range(3):
            adabreg_update_(p1[k], gs[k], v1[k], m1[k], s1[k], t, lr=0.1, beta1=0.8,
                            beta2=0.95, eps=1e-3, delta=0.5, lam=0.1, layout=layouts[k])
        adabreg_foreach_(p2, gs, v2, m2, s2, [t] * 3, lr=0.1, beta1=0.8, beta2=0.95, eps=1e-3,
                         delta=0.5, lam=0.1, layouts=layouts)
    for a, b in zip(p1 + v1 + m1 + s1, p2 + v2 + m2 + s2):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)


def test_explicit_group_weight():
    from tensornet.optim.functional import group_weight

    x = torch.tensor([[3.0, 4.0], [0.3, 0.4]], dtype=torch.float64)
    assert group_weight(x.shape, ["group", [0], 1]) == pytest.approx(math.sqrt(2))
    out = prox(x, ["group", [0], 1, 10.0], lam=0.1, scale=1.0)        # threshold 1
    np.testing.assert_allclose(out.numpy(), [[2.4, 3.2], [0.0, 0.0]], atol=1e-14)
    assert penalty(x, ["group", [0], 1, 10.0], 0.1) == pytest.approx(5.0 + 0.5)
