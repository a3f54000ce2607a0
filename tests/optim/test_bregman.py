"""LinBreg / AdaBreg / ProxSGD: equivalences with torch.optim, state, serialisation, errors."""

import copy
import io
import math

import pytest
import torch
from torch import nn

from tensornet.nn import TTLinear
from tensornet.optim import (
    L1,
    AdaBreg,
    GroupL1,
    LinBreg,
    ProxSGD,
    RankL1,
    low_rank_init,
    rank_param_groups,
)
from tensornet.optim.functional import subgradient


def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).double()


def _data(seed=0, n=32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 6, generator=g, dtype=torch.float64), \
        torch.randn(n, 3, generator=g, dtype=torch.float64)


def _run(model, opt, steps=15, seed=0):
    X, Y = _data(seed)
    traj = []
    for k in range(steps):
        xb, yb = X[k % 4 * 8:(k % 4 + 1) * 8], Y[k % 4 * 8:(k % 4 + 1) * 8]
        opt.zero_grad()
        loss = ((model(xb) - yb) ** 2).mean()
        loss.backward()
        opt.step()
        traj.append([p.detach().clone() for p in model.parameters()])
    return traj


def _assert_same(ta, tb, atol=1e-12):
    for sa, sb in zip(ta, tb):
        for a, b in zip(sa, sb):
            torch.testing.assert_close(a, b, atol=atol, rtol=1e-10)


# ----------------------------------------------------------------- equivalences
def test_linbreg_without_regularizer_is_sgd():
    m1, m2 = _mlp(), _mlp()
    _assert_same(_run(m1, LinBreg(m1.parameters(), lr=0.1)),
                 _run(m2, torch.optim.SGD(m2.parameters(), lr=0.1)))


def test_linbreg_delta_scales_the_sgd_step():
    m1, m2 = _mlp(), _mlp()
    _assert_same(_run(m1, LinBreg(m1.parameters(), lr=0.05, delta=3.0)),
                 _run(m2, torch.optim.SGD(m2.parameters(), lr=0.15)))


def test_linbreg_momentum_is_sgd_momentum_with_scaled_lr():
    """Paper form m <- b m + (1-b) lr g (m0 = 0), v <- v - m  ==  SGD(lr (1-b), momentum=b).

    torch's SGD starts its buffer at the first gradient, so the 'dampened'
    SGD(lr, momentum=b, dampening=b), which looks like the same formula, is not
    the same method: it differs from the first step.
    """
    b, lr = 0.9, 0.2
    m1, m2, m3 = _mlp(), _mlp(), _mlp()
    t1 = _run(m1, LinBreg(m1.parameters(), lr=lr, momentum=b))
    t2 = _run(m2, torch.optim.SGD(m2.parameters(), lr=lr * (1 - b), momentum=b))
    _assert_same(t1, t2)
    t3 = _run(m3, torch.optim.SGD(m3.parameters(), lr=lr, momentum=b, dampening=b), steps=1)
    assert not torch.allclose(t1[0][0], t3[0][0])


def test_adabreg_without_regularizer_is_adam():
    m1, m2 = _mlp(), _mlp()
    _assert_same(_run(m1, AdaBreg(m1.parameters(), lr=0.01, betas=(0.8, 0.99), eps=1e-6)),
                 _run(m2, torch.optim.Adam(m2.parameters(), lr=0.01, betas=(0.8, 0.99),
                                           eps=1e-6)))


def test_adabreg_bias_correction():
    """First steps by hand: without bias correction the first move would be (1-b1) lr = 0.1 lr."""
    p = nn.Parameter(torch.zeros(3, dtype=torch.float64))
    opt = AdaBreg([p], lr=0.1, betas=(0.9, 0.99), eps=1e-8)
    g1 = torch.tensor([2.0, -0.5, 1e-3], dtype=torch.float64)
    p.grad = g1.clone()
    opt.step()
    step1 = 0.1 * g1 / (g1.abs() + 1e-8)
    torch.testing.assert_close(p.detach(), -step1, atol=1e-12, rtol=1e-12)
    g2 = torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)
    p.grad = g2.clone()
    opt.step()
    m = (0.9 * 0.1 * g1 + 0.1 * g2) / (1 - 0.9 ** 2)
    s = (0.99 * 0.01 * g1 ** 2 + 0.01 * g2 ** 2) / (1 - 0.99 ** 2)
    expected = -step1 - 0.1 * m / (s.sqrt() + 1e-8)
    torch.testing.assert_close(p.detach(), expected, atol=1e-12, rtol=1e-12)


def test_proxsgd_without_regularizer_is_sgd():
    m1, m2 = _mlp(), _mlp()
    _assert_same(_run(m1, ProxSGD(m1.parameters(), lr=0.1, momentum=0.5)),
                 _run(m2, torch.optim.SGD(m2.parameters(), lr=0.1, momentum=0.5)))


def test_proxsgd_step_closed_form():
    p = nn.Parameter(torch.tensor([[1.0, 0.0], [0.1, 0.1]], dtype=torch.float64))
    opt = ProxSGD([p], lr=0.5, reg=GroupL1(0.2, dim=0))
    p.grad = torch.tensor([[0.0, -1.0], [0.0, 0.0]], dtype=torch.float64)
    opt.step()
    x = torch.tensor([1.0, 0.5], dtype=torch.float64)            # row 0 after the step
    t = 0.5 * 0.2 * math.sqrt(2)
    torch.testing.assert_close(p.detach()[0], x * (1 - t / float(x.norm())))
    assert p.detach()[1].abs().sum() == 0                        # ||row 1|| = 0.141 < t


# ----------------------------------------------------------------- regularized steps
def test_linbreg_l1_step_by_hand():
    p = nn.Parameter(torch.tensor([0.0, 1.0, -2.0], dtype=torch.float64))
    opt = LinBreg([p], lr=0.5, reg=L1(0.4), delta=2.0)
    p.grad = torch.tensor([-1.0, 0.2, 0.0], dtype=torch.float64)
    opt.step()
    v0 = torch.tensor([0.0, 0.5 + 0.4, -1.0 - 0.4], dtype=torch.float64)
    v1 = v0 - 0.5 * p.grad
    torch.testing.assert_close(opt.state[p]["dual"], v1)
    expected = torch.sign(v1) * torch.clamp(2.0 * v1.abs() - 2.0 * 0.4, min=0)
    torch.testing.assert_close(p.detach(), expected)
    assert float(p.detach()[0]) == pytest.approx(0.2)    # |v| = 0.5 > lam: switched on


@pytest.mark.parametrize("make", [
    lambda ps, reg: LinBreg(ps, lr=0.1, reg=reg, delta=0.7, momentum=0.5),
    lambda ps, reg: AdaBreg(ps, lr=0.1, reg=reg, delta=0.7),
])
@pytest.mark.parametrize("reg", [L1(0.3), GroupL1(0.3, dim=0), GroupL1(0.2, dim=(0, 1))])
def test_dual_initialisation_keeps_the_parameters(make, reg):
    """With a zero gradient the first step leaves theta where it was: prox(delta v0) = theta0."""
    torch.manual_seed(0)
    w = nn.Parameter(torch.randn(4, 3, 2, dtype=torch.float64))
    with torch.no_grad():
        w[1] = 0
    before = w.detach().clone()
    opt = make([w], reg)
    w.grad = torch.zeros_like(w)
    opt.step()
    torch.testing.assert_close(w.detach(), before, atol=1e-12, rtol=1e-12)
    layout = opt.param_groups[0]["reg"]["layout"][0]
    torch.testing.assert_close(opt.state[w]["dual"],
                               before / 0.7 + subgradient(before, layout, reg.lam))


def test_inactive_groups_switch_on_in_order_of_their_gradient():
    """Inverse scale space: from zero, group g switches on once ||v_g|| > lam sqrt(|g|).

    While row g is zero its dual grows by lr * ||target_g|| per step (v0 = 0), so it
    switches on at the first k with lr * k * ||target_g|| > lam * sqrt(4); afterwards
    the iteration converges to the unregularized minimiser (no shrinkage bias).
    """
    W = nn.Parameter(torch.zeros(3, 4, dtype=torch.float64))
    target = torch.tensor([[2.0] * 4, [1.0] * 4, [0.2] * 4], dtype=torch.float64)
    lr, lam = 0.047, 1.0
    opt = LinBreg([W], lr=lr, reg=GroupL1(lam, dim=0))
    switched = {}
    for k in range(1, 601):
        opt.zero_grad()
        (0.5 * ((W - target) ** 2).sum()).backward()
        opt.step()
        for r, on in enumerate((W.detach().norm(dim=1) > 0).tolist()):
            if on and r not in switched:
                switched[r] = k
    expected = {r: math.floor(lam * 2 / (lr * float(target[r].norm()))) + 1 for r in range(3)}
    assert switched == expected
    assert list(switched) == [0, 1, 2]
    torch.testing.assert_close(W.detach(), target, atol=1e-8, rtol=0)


def test_per_group_hyperparameters():
    a = nn.Parameter(torch.ones(3, dtype=torch.float64))
    b = nn.Parameter(torch.ones(3, dtype=torch.float64))
    opt = LinBreg([{"params": [a], "lr": 0.5, "reg": L1(0.1)}, {"params": [b]}], lr=0.1,
                  delta=2.0)
    assert opt.param_groups[0]["lr"] == 0.5 and opt.param_groups[1]["lr"] == 0.1
    assert opt.param_groups[0]["reg"]["name"] == "L1" and opt.param_groups[1]["reg"] is None
    a.grad = torch.ones(3, dtype=torch.float64)
    b.grad = torch.ones(3, dtype=torch.float64)
    opt.step()
    # b: plain SGD with step delta * lr = 0.2
    torch.testing.assert_close(b.detach(), torch.full((3,), 0.8, dtype=torch.float64))
    # a: v0 = 1/2 + 0.1 = 0.6 -> 0.1; theta = soft(2 * 0.1, 0.2) = 0
    torch.testing.assert_close(a.detach(), torch.zeros(3, dtype=torch.float64))


def test_step_returns_the_closure_loss():
    m = _mlp()
    X, Y = _data()
    opt = AdaBreg(m.parameters(), lr=0.01, reg=L1(0.01))

    def closure():
        opt.zero_grad()
        loss = ((m(X) - Y) ** 2).mean()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert isinstance(loss, torch.Tensor) and loss.ndim == 0
    assert LinBreg(m.parameters(), lr=0.1).step() is None


def test_apply_prox_after_changing_lambda():
    p = nn.Parameter(torch.tensor([1.0, 0.3], dtype=torch.float64))
    opt = LinBreg([p], lr=0.1, reg=L1(0.1))
    p.grad = torch.zeros(2, dtype=torch.float64)
    opt.step()                                      # v = theta + 0.1 sign(theta)
    opt.param_groups[0]["reg"]["lam"] = 0.5
    opt.apply_prox()                                # theta = soft(v, 0.5)
    torch.testing.assert_close(p.detach(), torch.tensor([0.6, 0.0], dtype=torch.float64))
    assert opt.regularization() == pytest.approx(0.5 * 0.6)


# ----------------------------------------------------------------- serialisation
def _tt_model(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(TTLinear(16, 16, rank=4, in_shape=(4, 4), out_shape=(4, 4)),
                          nn.ReLU(), nn.Linear(16, 2)).double()
    low_rank_init(model, rank=1)
    return model


@pytest.mark.parametrize("make", [
    lambda groups: LinBreg(groups, lr=0.05, momentum=0.9),
    lambda groups: AdaBreg(groups, lr=0.01, eps=1e-3),
])
def test_state_dict_round_trip_with_weights_only(make):
    g = torch.Generator().manual_seed(1)
    X = torch.randn(64, 16, generator=g, dtype=torch.float64)
    Y = torch.randn(64, 2, generator=g, dtype=torch.float64)

    def train(model, opt, steps, start=0):
        for k in range(start, start + steps):
            opt.zero_grad()
            ((model(X[k % 4 * 16:(k % 4 + 1) * 16]) - Y[k % 4 * 16:(k % 4 + 1) * 16]) ** 2
             ).mean().backward()
            opt.step()

    ref = _tt_model()
    ref_opt = make(rank_param_groups(ref, reg=RankL1(0.01), rest_reg=GroupL1(0.01, dim=0)))
    train(ref, ref_opt, 20)

    model = _tt_model()
    opt = make(rank_param_groups(model, reg=RankL1(0.01), rest_reg=GroupL1(0.01, dim=0)))
    train(model, opt, 10)
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buf)
    buf.seek(0)
    ck = torch.load(buf, weights_only=True)
    model2 = _tt_model(seed=5)
    opt2 = make(rank_param_groups(model2, reg=RankL1(0.5), rest_reg=None))
    model2.load_state_dict(ck["model"])
    opt2.load_state_dict(ck["opt"])
    assert opt2.param_groups[0]["reg"]["lam"] == 0.01
    assert opt2.param_groups[-1]["reg"]["name"] == "GroupL1"
    train(model2, opt2, 10, start=10)
    for a, b in zip(ref.parameters(), model2.parameters()):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)


def test_state_dict_is_plain():
    model = _tt_model()
    opt = LinBreg(rank_param_groups(model, reg=RankL1(0.1)), lr=0.1)
    sd = opt.state_dict()

    def check(x):
        if isinstance(x, dict):
            for k, v in x.items():
                check(k)
                check(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                check(v)
        else:
            assert x is None or isinstance(x, (bool, int, float, str, torch.Tensor)), type(x)

    check(sd)


# ----------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs,match", [
    ({"lr": 0.0}, "lr must be > 0"),
    ({"lr": -1.0}, "lr must be > 0"),
    ({"lr": 0.1, "delta": -1.0}, "delta must be > 0"),
    ({"lr": 0.1, "delta": 0.0}, "delta must be > 0"),
    ({"lr": 0.1, "momentum": 1.0}, "momentum must be < 1"),
    ({"lr": float("nan")}, "lr must be finite"),
])
def test_linbreg_rejects_bad_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LinBreg([nn.Parameter(torch.ones(2))], **kwargs)


@pytest.mark.parametrize("kwargs,match", [
    ({"lr": 0.0}, "lr must be > 0"),
    ({"delta": -0.5}, "delta must be > 0"),
    ({"betas": (0.9, 1.0)}, r"betas\[1\] must be < 1"),
    ({"eps": -1e-8}, "eps must be >= 0"),
])
def test_adabreg_rejects_bad_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AdaBreg([nn.Parameter(torch.ones(2))], **kwargs)


def test_bad_hyperparameter_in_a_param_group():
    with pytest.raises(ValueError, match="lr must be > 0"):
        LinBreg([{"params": [nn.Parameter(torch.ones(2))], "lr": -0.1}], lr=0.1)
    with pytest.raises(ValueError, match="lam must be"):
        LinBreg([{"params": [nn.Parameter(torch.ones(2))],
                  "reg": {"name": "L1", "lam": -1.0}}], lr=0.1)


@pytest.mark.parametrize("make", [lambda: L1(-0.1), lambda: GroupL1(-1.0), lambda: RankL1(-2),
                                  lambda: L1(float("inf"))])
def test_negative_lambda_is_rejected(make):
    with pytest.raises(ValueError, match="lam must be a finite number >= 0"):
        make()


def test_lambda_type_is_checked():
    with pytest.raises(TypeError, match="lam must be a non-negative real number"):
        L1("0.1")


def test_regularizer_that_cannot_group_a_parameter():
    with pytest.raises(ValueError, match=r"GroupL1\(dim=\(2,\)\) cannot group parameter 0"):
        LinBreg([nn.Parameter(torch.ones(3, 4))], lr=0.1, reg=GroupL1(0.1, dim=2))
    with pytest.raises(ValueError, match="RankL1 cannot group these parameters"):
        LinBreg(nn.Linear(3, 4).parameters(), lr=0.1, reg=RankL1(0.1))
    with pytest.raises(TypeError, match="reg must be None or a tensornet.optim regularizer"):
        AdaBreg([nn.Parameter(torch.ones(3))], reg="l1")


def test_sparse_gradients_are_rejected():
    emb = nn.Embedding(5, 3, sparse=True)
    opt = LinBreg(emb.parameters(), lr=0.1)
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match="sparse gradients"):
        opt.step()


def test_deepcopy_and_repr_of_regularizers():
    r = GroupL1(0.5, dim=(0, 1))
    assert repr(r) == "GroupL1(lam=0.5, dim=[0, 1])"
    assert copy.deepcopy(r) == r and r != GroupL1(0.5, dim=0)
