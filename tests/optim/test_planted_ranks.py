"""Planted-rank recovery: a TT teacher of known ranks, a student with 4x the ranks.

The student starts at rank 1 (low_rank_init) and is trained with LinBreg /
AdaBreg and RankL1; the components that switch on must match the teacher's
TT ranks within +-1 on every bond, with the fit at the noise floor (so
the ranks are not "recovered" by underfitting).
"""

import pytest
import torch
from torch import nn

from tensornet.nn import TTLinear
from tensornet.optim import (
    AdaBreg,
    LinBreg,
    RankL1,
    low_rank_init,
    prune_ranks,
    rank_groups,
    rank_param_groups,
)

TRUE_RANKS = (2, 3)
NOISE = 0.01


def planted_problem(seed, n=2000):
    """Teacher TT-matrix 64 -> 64, cores (1,16,2) (2,16,3) (3,16,1), unit-variance outputs."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    shape = (4, 4, 4)
    teacher = TTLinear(64, 64, rank=TRUE_RANKS, in_shape=shape, out_shape=shape)
    with torch.no_grad():
        for c in teacher.cores:
            c.normal_(0, 1, generator=g)
        s = float(teacher.dense_weight().std())
        for c in teacher.cores:
            c /= (8 * s) ** (1 / 3)                        # W entries ~ 1/8: y ~ unit variance
        teacher.bias.zero_()
    X = torch.randn(n, 64, generator=g)
    with torch.no_grad():
        Y = teacher(X) + NOISE * torch.randn(n, 64, generator=g)
    student = nn.Sequential(TTLinear(64, 64, rank=tuple(4 * r for r in TRUE_RANKS),
                                     in_shape=shape, out_shape=shape))
    return student, X, Y, g


def train(student, X, Y, g, opt, steps, batch=100):
    for _ in range(steps):
        idx = torch.randint(0, X.shape[0], (batch,), generator=g)
        opt.zero_grad()
        loss = ((student(X[idx]) - Y[idx]) ** 2).mean()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return float(((student(X) - Y) ** 2).mean())


def _check(student, X, Y, mse):
    ranks = [g.active for g in rank_groups(student)]
    assert all(abs(r - t) <= 1 for r, t in zip(ranks, TRUE_RANKS)), ranks
    assert mse < 2 * NOISE ** 2, mse                        # at the noise floor
    x = X[:50]
    with torch.no_grad():
        before = student(x)
    report = prune_ranks(student)
    assert list(report.layers[0].ranks_after.values()) == ranks
    with torch.no_grad():
        # float32 model: the smaller layer may take another contraction path, so allow
        # float32 rounding relative to the outputs' size (~1) on top of 1e-6
        torch.testing.assert_close(student(x), before, atol=1e-6, rtol=1e-6)
    return ranks


@pytest.mark.parametrize("seed", [0, 1])
def test_linbreg_recovers_planted_ranks(seed):
    student, X, Y, g = planted_problem(seed)
    low_rank_init(student, rank=1, decay=0.2)
    opt = LinBreg(rank_param_groups(student, reg=RankL1(0.1)), lr=1.0, momentum=0.9)
    mse = train(student, X, Y, g, opt, steps=4000)
    _check(student, X, Y, mse)


@pytest.mark.parametrize("seed", [0, 1])
def test_adabreg_recovers_planted_ranks(seed):
    student, X, Y, g = planted_problem(seed)
    low_rank_init(student, rank=1, decay=0.3)
    # eps of the order of the inactive groups' gradients keeps their ordering by size
    # (Adam would otherwise scale every consistently pushed group up to a step of lr)
    opt = AdaBreg(rank_param_groups(student, reg=RankL1(0.1)), lr=0.01, eps=1e-2)
    mse = train(student, X, Y, g, opt, steps=2000)
    _check(student, X, Y, mse)
