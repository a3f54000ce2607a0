"""Forward-path planning: ContractionPlan.program, broadcast steps, re-planning after pruning."""

import math
import types

import pytest
import torch

from tensornet.contraction import EinsumStep, MatmulStep, PlanProgram, contract_plan
from tensornet.nn import TTLinear
from tensornet.nn._base import Cost, _broadcast_gemm_cost, _program_for, plan_program, run_steps
from tensornet.optim import prune_ranks


@pytest.mark.parametrize("eq, shapes", [
    ("bi,ij,jk->bk", [(5, 6), (6, 3), (3, 4)]),
    ("bijk,aixc,cjyd,dkze->bxyz", [(4, 2, 3, 2), (1, 2, 3, 2), (2, 3, 2, 3), (3, 2, 2, 1)]),
    ("ii,ij->j", [(3, 3), (3, 4)]),           # a trace: an einsum step
    ("ij->ji", [(3, 4)]),                     # one operand: direct
])
def test_plan_program_is_public_and_runs(eq, shapes):
    plan = contract_plan(eq, *shapes)
    prog = plan.program
    assert isinstance(prog, PlanProgram)
    assert prog is plan.program                     # computed once, read-only view
    assert prog.direct == (len(shapes) == 1)
    assert all(isinstance(s, (MatmulStep, EinsumStep)) for s in prog.steps)
    if not prog.direct:
        assert len(prog.steps) == len(plan.path)
    g = torch.Generator().manual_seed(0)
    ops = [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]
    program, cost = plan_program(eq, *shapes)
    assert cost.flops == plan.flops
    torch.testing.assert_close(run_steps(program, ops), torch.einsum(eq, *ops))


def test_broadcast_step_cost_counts_the_fold_copies():
    # W @ X with X batched (torch.matmul copies X and the product) costs more than X @ W,
    # which folds X into one matrix for free; both cost more than the bare GEMM
    def step(swap, a_shape, b_shape):
        return types.SimpleNamespace(swap=swap, a_shape=a_shape, b_shape=b_shape, a_t=False,
                                     b_t=False)

    B, m, k, n = 64, 24, 16, 32
    x_left = Cost("cpu", grad=True)
    _broadcast_gemm_cost(x_left, step(False, (B, m, k), (k, n)), m, k, n, B)
    w_left = Cost("cpu", grad=True)
    _broadcast_gemm_cost(w_left, step(False, (m, k), (B, k, n)), m, k, n, B)
    bare = Cost("cpu", grad=True).gemm(B * m, k, n, calls=4)
    assert x_left.flops == w_left.flops == 2 * B * m * k * n
    assert x_left.units == pytest.approx(bare.units)
    assert w_left.units > x_left.units


def _uneven_tt():
    torch.manual_seed(0)
    shp = (4, 8, 8, 4)
    return TTLinear(1024, 1024, 8, in_shape=shp, out_shape=shp)


def test_select_ranks_replans_for_uneven_ranks():
    layer = _uneven_tt()
    x = torch.randn(32, 1024)
    layer(x)                                           # plans and caches the full-rank path
    pruned = layer.select_ranks([[0, 1, 2], list(range(7)), [0, 1]])
    assert pruned.rank == (1, 3, 7, 2, 1)
    for B in (1, 32, 256):
        assert pruned.flops(B) < layer.flops(B)
    shape = (32, 1024)
    prog_full = _program_for(layer.spec, shape)
    prog_pruned = _program_for(pruned.spec, shape)
    assert prog_pruned != prog_full
    y = pruned(x)
    assert pruned._programs[x.shape] == prog_pruned  # the forward runs the re-planned path
    assert pruned.flops(32) == prog_pruned[1]
    with torch.no_grad():
        ref = pruned.to_dense()(x)
        assert float((y - ref).norm() / ref.norm()) < 1e-5
    # the re-planned path is the cheapest under the cost model among the pruned layer's
    # candidates, and needs no more FLOPs than the fewest of the full-rank layer's
    cands = TTLinear._candidates(pruned.spec, shape, False)
    best = min(cands, key=lambda c: c[1].units)
    assert best[0] == _program_for(pruned.spec, shape, False)
    assert pruned.flops(32) <= min(c[1].flops for c in TTLinear._candidates(layer.spec, shape,
                                                                             False))


def test_prune_ranks_replaces_layer_and_its_plan():
    layer = _uneven_tt()
    with torch.no_grad():
        layer.cores[0][..., 3:] = 0          # bond 1: 8 -> 3
        layer.cores[2][1:] = 0               # bond 2: 8 -> 1
        layer.cores[3][2:] = 0               # bond 3: 8 -> 2
    model = torch.nn.Sequential(layer)
    x = torch.randn(32, 1024)
    before = model(x).detach()
    flops_before = layer.flops(32)
    report = prune_ranks(model)
    new = model[0]
    assert new is not layer and new.rank == (1, 3, 1, 2, 1)
    assert report.params_after < report.params_before
    assert new.flops(32) < flops_before
    assert _program_for(new.spec, (32, 1024)) != _program_for(layer.spec, (32, 1024))
    torch.testing.assert_close(model(x), before, rtol=1e-4, atol=1e-5)
    assert math.prod(new.rank) < math.prod(layer.rank)


@pytest.mark.parametrize("make", [
    lambda: __import__("tensornet.nn", fromlist=["CPLinear"]).CPLinear(
        256, 256, 0.5, in_shape=(16, 16), out_shape=(16, 16)),
    lambda: TTLinear(256, 256, 16, in_shape=(16, 16), out_shape=(16, 16),
                     implementation="dense"),
])
def test_rebuilt_weight_is_kept_without_autograd_and_follows_updates(make):
    torch.manual_seed(0)
    layer = make()
    x = torch.randn(4, 256)
    assert layer.path(x.shape, grad=False) in ("cp_dense", "tt_dense")
    with torch.no_grad():
        y1 = layer(x)
        assert "w" in layer._products                  # kept for the next call
        torch.testing.assert_close(layer(x), y1)
        torch.testing.assert_close(y1, layer.to_dense()(x), rtol=1e-4, atol=1e-5)
        next(layer.parameters()).mul_(2.0)             # in-place update: rebuilt
        torch.testing.assert_close(layer(x), layer.to_dense()(x), rtol=1e-4, atol=1e-5)
    # with autograd the weight is rebuilt from the factors (gradients reach them)
    layer(x).sum().backward()
    assert all(p.grad is not None for p in layer.parameters())
