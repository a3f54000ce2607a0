import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
import opt_einsum
import torch

import tensornet as tn
from tensornet import contract, contract_plan, multilinear, plan_cache_info

from .conftest import to_np

CASES = [
    ("bi,ij,jk->bk", [(4, 5), (5, 6), (6, 7)]),
    ("abc,cd,bd->ad", [(3, 4, 5), (5, 6), (4, 6)]),
    ("ii->i", [(4, 4)]),
    ("ij,ij->", [(3, 4), (3, 4)]),
    ("...i,ij->...j", [(2, 3, 4), (4, 5)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("ijk,kji->", [(2, 3, 4), (4, 3, 2)]),
    ("ab,cd->abcd", [(2, 3), (4, 5)]),
    ("iij,jk->ik", [(3, 3, 4), (4, 2)]),
    ("abc,bd,ce,af->def", [(3, 4, 5), (4, 2), (5, 3), (3, 6)]),
    ("ij,jk", [(3, 4), (4, 5)]),  # implicit output
    ("bijkl,aimc,cjnd,dkoe,elpf->bmnop", [(3, 2, 3, 2, 2), (1, 2, 3, 3), (3, 3, 2, 2),
                                          (2, 2, 4, 3), (3, 2, 2, 1)]),
    ("ab,b1->a1".replace("1", "c"), [(3, 1), (1, 4)]),
    ("ij,i->j", [(1, 5), (3,)]),  # size-1 broadcasting, as numpy.einsum allows
]


@pytest.mark.parametrize("eq,shapes", CASES)
def test_contract_matches_einsum(eq, shapes, array_lib):
    rng = np.random.default_rng(0)
    ops = [rng.standard_normal(s) for s in shapes]
    expected = np.einsum(eq, *ops)
    got = contract(eq, *[array_lib(o) for o in ops])
    assert type(got) is type(array_lib(ops[0]))
    np.testing.assert_allclose(to_np(got), expected, rtol=1e-10, atol=1e-10)


_letters = "abcdefg"


@st.composite
def random_contraction(draw):
    n_ops = draw(st.integers(1, 4))
    sizes = {c: draw(st.integers(1, 4)) for c in _letters}
    inputs = []
    for _ in range(n_ops):
        k = draw(st.integers(0, 4))
        labels = draw(st.lists(st.sampled_from(_letters), min_size=k, max_size=k))
        inputs.append("".join(labels))
    present = sorted(set("".join(inputs)))
    out = draw(st.lists(st.sampled_from(present), unique=True, max_size=len(present))
               if present else st.just([]))
    eq = ",".join(inputs) + "->" + "".join(out)
    shapes = [tuple(sizes[c] for c in lab) for lab in inputs]
    return eq, shapes


@settings(max_examples=150, deadline=None)
@given(random_contraction(), st.sampled_from(["auto", "greedy", "optimal"]))
def test_contract_property_numpy(case, optimize):
    eq, shapes = case
    rng = np.random.default_rng(1)
    ops = [rng.standard_normal(s) for s in shapes]
    np.testing.assert_allclose(contract(eq, *ops, optimize=optimize), np.einsum(eq, *ops),
                               rtol=1e-9, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(random_contraction())
def test_contract_property_torch(case):
    torch = pytest.importorskip("torch")
    eq, shapes = case
    rng = np.random.default_rng(2)
    ops = [rng.standard_normal(s) for s in shapes]
    got = contract(eq, *[torch.as_tensor(o) for o in ops])
    np.testing.assert_allclose(got.numpy(), np.einsum(eq, *ops), rtol=1e-9, atol=1e-9)


def test_plan_cache_is_reused():
    tn.clear_plan_cache()
    a, b = np.ones((3, 4)), np.ones((4, 5))
    contract("ij,jk->ik", a, b)
    info = plan_cache_info()
    assert (info.hits, info.misses) == (0, 1)
    for _ in range(5):
        contract("ij,jk->ik", a, b)
    info = plan_cache_info()
    assert (info.hits, info.misses) == (5, 1)
    # same shapes on another backend and dtype reuse the plan (it depends on neither)
    torch = pytest.importorskip("torch")
    contract("ij,jk->ik", torch.ones(3, 4, dtype=torch.float32), torch.ones(4, 5))
    assert plan_cache_info().misses == 1
    contract("ij,jk->ik", np.ones((3, 6)), np.ones((6, 5)))
    assert plan_cache_info().misses == 2
    assert contract_plan("ij,jk->ik", (3, 4), (4, 5)) is contract_plan("ij,jk->ik", (3, 4), (4, 5))


def test_plan_attributes_and_reuse():
    plan = contract_plan("bi,ij,jk->bk", (32, 64), (64, 8), (8, 64))
    # (x A) B is cheaper than x (A B): 2*32*64*8 + 2*32*8*64 flops
    assert plan.path == [(0, 1), (0, 1)]
    assert plan.flops == 2 * 32 * 64 * 8 + 2 * 32 * 8 * 64
    assert plan.largest_intermediate == 32 * 64
    assert plan.output_shape == (32, 64)
    assert plan.flops < plan.naive_flops
    rng = np.random.default_rng(0)
    x, a, b = (rng.standard_normal(s) for s in plan.shapes)
    for _ in range(3):
        np.testing.assert_allclose(plan(x, a, b), x @ a @ b)
    assert "flops" in repr(plan)


def test_plan_output_layout_is_chosen_to_avoid_copies(monkeypatch):
    import tensornet.contraction as C

    eq = "abcd,bcde,efgh->afgh"
    shapes = [(2, 3, 4, 5), (3, 4, 5, 6), (6, 7, 8, 9)]
    searched = C.ContractionPlan(eq, shapes)
    monkeypatch.setattr(C, "_EXHAUSTIVE_STEPS", 0)
    default = C.ContractionPlan(eq, shapes)
    assert searched.copy_cost <= default.copy_cost
    rng = np.random.default_rng(0)
    ops = [rng.standard_normal(s) for s in shapes]
    np.testing.assert_allclose(searched(*ops), np.einsum(eq, *ops))
    np.testing.assert_allclose(default(*ops), np.einsum(eq, *ops))
    # a TT-matrix chain: at most one large intermediate is copied
    plan = contract_plan("bijkl,aimc,cjnd,dkoe,elpf->bmnop", (256, 8, 8, 8, 8), (1, 8, 8, 16),
                         (16, 8, 8, 16), (16, 8, 8, 16), (16, 8, 8, 1))
    # (the intermediate, the input, the output and the two small core products)
    assert plan.copied_elements <= 256 * 8 ** 4 * 16 + 2 * 256 * 8 ** 4 + 2 * 8 ** 4 * 16


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_outer_batch_and_reordered_kept_labels_avoid_the_large_copy(lib):
    # TT-matrix chain: the big (batch, k, l, d, m, n) intermediate is read as an
    # outer batch of products without being permuted; only small arrays move
    shapes = [(256, 8, 8, 8, 8), (1, 8, 8, 16), (16, 8, 8, 16), (16, 8, 8, 16), (16, 8, 8, 1)]
    eq = "bijkl,aimc,cjnd,dkoe,elpf->bmnop"
    plan = contract_plan(eq, *shapes)
    assert plan.copied_elements <= 256 * 8 ** 4 + 4 * 8 ** 4 * 16
    assert any(len(st.a_shape) != len(st.b_shape) for st in plan._steps)  # a broadcast batch
    rng = np.random.default_rng(1)
    ops = [rng.standard_normal(s) for s in shapes]
    expected = opt_einsum.contract(eq, *ops)
    if lib == "torch":
        got = plan(*[torch.as_tensor(o) for o in ops]).numpy()
    else:
        got = plan(*ops)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


def test_outer_batch_gradients_match_einsum():
    shapes = [(3, 2, 4, 5), (4, 6), (2, 6, 7)]
    eq = "xabc,bd,ade->xcde"
    plan = contract_plan(eq, *shapes)
    ops = [torch.randn(s, dtype=torch.float64, requires_grad=True) for s in shapes]
    torch.autograd.gradcheck(lambda *t: plan(*t), ops)
    np.testing.assert_allclose(plan(*ops).detach().numpy(),
                               torch.einsum(eq, *ops).detach().numpy(), rtol=1e-12)


def test_plan_rejects_wrong_operands():
    plan = contract_plan("ij,jk->ik", (4, 6), (6, 5))
    with pytest.raises(ValueError, match="operand 0 must have shape"):
        plan(np.ones((6, 4)), np.ones((6, 5)))
    with pytest.raises(ValueError, match="contracts 2 operands"):
        plan(np.ones((4, 6)))
    with pytest.raises(TypeError, match="one array library"):
        torch = pytest.importorskip("torch")
        plan(np.ones((4, 6)), torch.ones(6, 5, dtype=torch.float64))
    with pytest.raises(TypeError, match="NumPy arrays"):
        plan([[1.0] * 6] * 4, [[1.0] * 5] * 6)


def test_contract_bad_input():
    with pytest.raises(ValueError, match="optimize must be one of"):
        contract("ij,jk->ik", np.ones((2, 3)), np.ones((3, 4)), optimize="fastest")
    with pytest.raises(ValueError, match="label 'j'"):
        contract("ij,jk->ik", np.ones((2, 3)), np.ones((4, 4)))
    with pytest.raises(TypeError, match="subscripts must be an einsum string"):
        contract(3, np.ones(2))
    with pytest.raises(ValueError, match="at least one array"):
        contract("i->i")
    with pytest.raises(TypeError, match="operands must be"):
        contract("i->i", [1, 2])
    with pytest.raises(ValueError, match="shapes"):
        contract_plan("i->i")
    with pytest.raises(ValueError, match="negative"):
        contract_plan("i->i", (-1,))


def test_explicit_path():
    rng = np.random.default_rng(0)
    a, b, c = rng.standard_normal((3, 4)), rng.standard_normal((4, 5)), rng.standard_normal((5, 2))
    plan = contract_plan("ij,jk,kl->il", a.shape, b.shape, c.shape, optimize=[(0, 1), (0, 1)])
    assert plan.path == [(0, 1), (0, 1)]
    np.testing.assert_allclose(plan(a, b, c), a @ b @ c)


def test_multilinear(array_lib):
    rng = np.random.default_rng(0)
    T = rng.standard_normal((3, 4, 5))
    u, v, W = rng.standard_normal(3), rng.standard_normal(4), rng.standard_normal((5, 2))
    got = multilinear(array_lib(T), [array_lib(u), array_lib(v), None])
    np.testing.assert_allclose(to_np(got), np.einsum("ijk,i,j->k", T, u, v))
    got = multilinear(array_lib(T), [None, array_lib(v), array_lib(W)])
    np.testing.assert_allclose(to_np(got), np.einsum("ijk,j,kr->ir", T, v, W))
    np.testing.assert_allclose(to_np(multilinear(array_lib(T), [None] * 3)), T)
    with pytest.raises(ValueError, match="one entry"):
        multilinear(T, [u, v])
    with pytest.raises(ValueError, match=r"factors\[1\] must be a vector of length 4"):
        multilinear(T, [u, u, None])


def test_torch_autograd_through_plan():
    torch = pytest.importorskip("torch")
    a = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    c = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, c: contract("ij,jk,kl->il", a, b, c), (a, b, c))
