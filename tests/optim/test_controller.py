"""RankController: steering lam to a target size."""

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
    RankController,
    RankL1,
    low_rank_init,
    prune_ranks,
    rank_param_groups,
    regularized_params,
)


def test_l1_target_is_reached_with_the_largest_entries():
    torch.manual_seed(0)
    w = nn.Parameter(torch.zeros(100))
    target = torch.linspace(1.0, 0.01, 100)
    opt = AdaBreg([w], lr=0.01, reg=L1(1e-3))
    ctrl = RankController(opt, target=20)
    for _ in range(10):
        for _ in range(20):
            opt.zero_grad()
            ((w - target) ** 2).sum().backward()
            opt.step()
        kept = ctrl.step()
    assert kept == 20 == int((w != 0).sum())
    assert bool((w[:20] != 0).all())
    assert len(ctrl.history) == 10 and ctrl.history[-1]["kept"] == 20
    assert ctrl.lams()[0] > 1e-3                  # lam had to rise by orders of magnitude


def _tt_problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    teacher = TTLinear(64, 64, rank=(1, 3, 3, 1), in_shape=(4, 4, 4), out_shape=(4, 4, 4))
    X = torch.randn(512, 64, generator=g)
    with torch.no_grad():
        Y = teacher(X)
    model = nn.Sequential(TTLinear(64, 64, rank=8, in_shape=(4, 4, 4), out_shape=(4, 4, 4)))
    return model, X, Y


def test_rank_target_as_fraction_matches_the_pruned_size():
    model, X, Y = _tt_problem()
    opt = LinBreg(rank_param_groups(model, reg=RankL1(1e-3)), lr=0.5, momentum=0.9)
    kept0, total = regularized_params(opt)
    assert kept0 == total                          # dense start: nothing prunable
    ctrl = RankController(opt, target=0.25)
    assert ctrl.target_params == round(0.25 * total)
    for epoch in range(8):
        for k in range(8):
            opt.zero_grad()
            ((model(X[k * 64:(k + 1) * 64]) - Y[k * 64:(k + 1) * 64]) ** 2).mean().backward()
            opt.step()
        kept = ctrl.step()
    assert kept <= ctrl.target_params * 1.05
    assert kept >= ctrl.target_params * 0.5
    pruned = prune_ranks(model)
    assert sum(p.numel() for p in pruned.model[0].parameters()) == kept


def test_lam_falls_when_growth_has_stalled():
    torch.manual_seed(0)
    model = nn.Sequential(TTLinear(16, 16, rank=4, in_shape=(4, 4), out_shape=(4, 4)))
    low_rank_init(model, rank=1)
    opt = LinBreg(rank_param_groups(model, reg=RankL1(100.0)), lr=0.01)
    ctrl = RankController(opt, target=10_000, max_factor=4.0)
    ctrl.step()                                    # first call: no history, no change
    assert ctrl.lams() == [100.0]
    ctrl.step()                                    # no growth and far below: fall by <= 4x
    assert ctrl.lams() == [25.0]
    ctrl.step()
    assert ctrl.lams() == [6.25]


def test_lam_rises_just_enough():
    # dual levels 1..10 (v = theta + lam sign(theta)); target 4 -> the 4 largest stay
    w = nn.Parameter(torch.arange(1.0, 11.0))
    opt = LinBreg([w], lr=0.1, reg=L1(0.5))
    w.grad = torch.zeros(10)
    opt.step()
    ctrl = RankController(opt, target=4)
    assert ctrl.step() == 4
    assert (w.detach() != 0).tolist() == [False] * 6 + [True] * 4
    assert 6.5 - 1e-5 <= ctrl.lams()[0] <= 7.5 + 1e-5


def test_dense_groups_count_nonzero_groups():
    w = nn.Parameter(torch.tensor([[1.0, 1.0], [0.0, 0.0], [2.0, 0.0]]))
    b = nn.Parameter(torch.zeros(3))
    opt = LinBreg([{"params": [w], "reg": GroupL1(0.1, dim=0)}, {"params": [b]}], lr=0.1)
    assert regularized_params(opt) == (4, 6)


def test_state_dict_round_trip():
    w = nn.Parameter(torch.arange(1.0, 11.0))
    opt = LinBreg([w], lr=0.1, reg=L1(0.5))
    ctrl = RankController(opt, target=4)
    ctrl.step()
    ctrl2 = RankController(opt, target=7)
    ctrl2.load_state_dict(ctrl.state_dict())
    assert ctrl2.target_params == 4 and ctrl2.history == ctrl.history
    assert "RankController(target_params=4" in repr(ctrl2)


@pytest.mark.parametrize("kwargs,err,match", [
    ({"target": 0}, ValueError, "parameter count must be >= 1"),
    ({"target": 1.5}, ValueError, r"fraction must be in \(0, 1\]"),
    ({"target": "10"}, TypeError, "target must be an int"),
    ({"target": 10, "max_factor": 1.0}, ValueError, "max_factor must be > 1"),
    ({"target": 10, "groups": [3]}, ValueError, "indices of regularized param groups"),
])
def test_bad_arguments(kwargs, err, match):
    opt = LinBreg([nn.Parameter(torch.ones(4))], lr=0.1, reg=L1(0.1))
    with pytest.raises(err, match=match):
        RankController(opt, **kwargs)


def test_bad_optimizers():
    p = nn.Parameter(torch.ones(4))
    with pytest.raises(TypeError, match="Bregman optimizer"):
        RankController(torch.optim.Adam([p]), target=2)
    with pytest.raises(TypeError, match="Bregman optimizer"):
        RankController(ProxSGD([p], lr=0.1, reg=L1(0.1)), target=2)
    with pytest.raises(ValueError, match="no regularized param group"):
        RankController(LinBreg([p], lr=0.1), target=2)
    with pytest.raises(ValueError, match="lam = 0"):
        RankController(LinBreg([p], lr=0.1, reg=L1(0.0)), target=2)
