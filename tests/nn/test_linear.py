import math

import numpy as np
import pytest
import torch
from torch import nn

from tensornet.nn import CPLinear, TTLinear, TuckerLinear
from tensornet.nn._base import balanced_factors, resolve_feature_shapes

from ._layer_helpers import (candidate_programs, gradcheck_layer, rel_err, run_with,
                             state_dict_round_trip)

F64 = torch.float64
CASES = [
    (CPLinear, 5, dict()),
    (CPLinear, 3, dict(in_shape=(6, 4), out_shape=(3, 3, 2))),
    (TuckerLinear, 2, dict()),
    (TuckerLinear, (2, 1, 3, 2, 3), dict(in_shape=(4, 6), out_shape=(2, 3, 3))),
    (TTLinear, 3, dict()),
    (TTLinear, (2, 4), dict(in_shape=(2, 3, 4), out_shape=(3, 2, 3))),
]
IDS = [f"{c[0].__name__}-{i}" for i, c in enumerate(CASES)]


def make(cls, rank, kw, bias=True, n_in=24, n_out=18):
    torch.manual_seed(0)
    return cls(n_in, n_out, rank, bias=bias, dtype=F64, **kw)


@pytest.mark.parametrize("cls,rank,kw", CASES, ids=IDS)
@pytest.mark.parametrize("shape", [(7, 24), (2, 3, 24), (1, 24)])
@pytest.mark.parametrize("bias", [True, False])
def test_every_path_matches_dense(cls, rank, kw, shape, bias):
    layer = make(cls, rank, kw, bias)
    dense = layer.to_dense()
    assert isinstance(dense, nn.Linear) and dense.weight.dtype == F64
    x = torch.randn(shape, dtype=F64)
    ref = dense(x)
    progs = candidate_programs(layer, shape) + candidate_programs(layer, shape, cached=True)
    assert len({p[0] + str(p[3:5]) for p in progs}) >= 2
    for prog in progs:
        y = run_with(layer, x, prog)
        assert y.shape == ref.shape
        torch.testing.assert_close(y, ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(layer(x), ref, rtol=1e-10, atol=1e-12)
    with torch.no_grad():  # cached factor products
        torch.testing.assert_close(layer(x), ref, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(layer(x), ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cls,rank,kw", CASES, ids=IDS)
def test_from_dense_recovers_exact_low_rank_weight(cls, rank, kw):
    src = make(cls, rank, kw)
    dense = src.to_dense()
    layer = cls.from_dense(dense, rank=src.rank if cls is not CPLinear else src.rank[0],
                           in_shape=src.in_shape, out_shape=src.out_shape)
    assert layer.approximation_error < 1e-5
    assert layer.rank == src.rank
    torch.testing.assert_close(layer.dense_weight(), dense.weight, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(layer.bias, dense.bias)
    x = torch.randn(4, 24, dtype=F64)
    assert rel_err(layer(x), dense(x)) < 1e-5


@pytest.mark.parametrize("cls", [CPLinear, TuckerLinear, TTLinear])
def test_from_dense_reports_error_of_a_lossy_approximation(cls):
    torch.manual_seed(1)
    dense = nn.Linear(32, 24, dtype=F64)
    layer = cls.from_dense(dense, rank=0.3)
    err = rel_err(layer.dense_weight(), dense.weight)
    assert 0.05 < err < 1.0
    assert layer.approximation_error == pytest.approx(err, rel=1e-9)
    assert layer.n_params < 0.3 * 32 * 24 + 24 + 1


@pytest.mark.parametrize("cls,rank,kw", CASES, ids=IDS)
def test_gradients_match_finite_differences(cls, rank, kw):
    layer = make(cls, rank, kw)
    x = torch.randn(2, 24, dtype=F64)
    for prog in candidate_programs(layer, x.shape):
        layer._programs[x.shape] = prog
        assert gradcheck_layer(layer, x)
    layer.clear_plans()


@pytest.mark.parametrize("cls,rank", [(CPLinear, 16), (TuckerLinear, 3), (TTLinear, 4)])
def test_init_keeps_dense_variance(cls, rank):
    # nn.Linear draws U(-1/sqrt(fan_in), 1/sqrt(fan_in)): variance 1 / (3 fan_in)
    torch.manual_seed(0)
    n_in, n_out = 64, 48
    var = np.mean([cls(n_in, n_out, rank).dense_weight().var().item() for _ in range(60)])
    assert var == pytest.approx(1 / (3 * n_in), rel=0.2)
    x = torch.randn(4096, n_in)
    layer = cls(n_in, n_out, rank, bias=False)
    with torch.no_grad():
        out_var = np.mean([cls(n_in, n_out, rank, bias=False)(x).var().item()
                           for _ in range(30)])
        dense_var = np.mean([nn.Linear(n_in, n_out, bias=False)(x).var().item()
                             for _ in range(30)])
    assert out_var == pytest.approx(dense_var, rel=0.25)
    # the bias is drawn as in nn.Linear
    assert layer.bias is None
    b = cls(n_in, n_out, rank).bias
    assert b.abs().max() <= 1 / math.sqrt(n_in)


@pytest.mark.parametrize("cls,rank,kw", CASES, ids=IDS)
def test_state_dict_round_trip(cls, rank, kw):
    layer = make(cls, rank, kw)
    torch.manual_seed(5)
    fresh = cls(24, 18, layer.rank if cls is not CPLinear else layer.rank[0],
                in_shape=layer.in_shape, out_shape=layer.out_shape, dtype=F64)
    x = torch.randn(3, 24, dtype=F64)
    assert not torch.allclose(fresh(x), layer(x))
    state_dict_round_trip(layer, fresh)
    torch.testing.assert_close(fresh(x), layer(x))


@pytest.mark.parametrize("cls,rank,kw", CASES, ids=IDS)
def test_rank_groups_select_and_rebuild(cls, rank, kw):
    layer = make(cls, rank, kw)
    dims = layer.rank_dims()
    norms = layer.rank_group_norms()
    assert [n.shape[0] for n in norms] == [d.size for d in dims]
    params = dict(layer.named_parameters())
    for d in dims:
        for name, dim, blocks in d.members:
            assert params[name].shape[dim] == d.size * blocks
    # zero the last group of the first rank dimension: cutting it changes nothing
    d0 = dims[0]
    with torch.no_grad():
        for name, dim, _ in d0.members:
            params[name].select(dim, d0.size - 1).zero_()
    assert layer.rank_group_norms()[0][-1] == 0
    keep = [list(range(d0.size - 1))] + [None] * (len(dims) - 1)
    small = layer.select_ranks(keep)
    assert type(small) is cls and small.n_params < layer.n_params
    x = torch.randn(5, 24, dtype=F64)
    torch.testing.assert_close(small(x), layer(x), rtol=1e-10, atol=1e-12)
    # a freshly built layer of the pruned ranks takes the pruned state dict
    fresh = cls(24, 18, small.rank if cls is not CPLinear else small.rank[0],
                in_shape=small.in_shape, out_shape=small.out_shape, dtype=F64)
    state_dict_round_trip(small, fresh)
    torch.testing.assert_close(fresh(x), small(x))
    # masks and tensors are accepted as keep entries
    mask = torch.ones(d0.size, dtype=torch.bool)
    mask[0] = False
    assert layer.select_ranks([mask] + [None] * (len(dims) - 1)).rank != layer.rank


def test_rank_dims_of_each_factorization():
    cp = CPLinear(24, 18, 5)
    assert [(d.name, d.size) for d in cp.rank_dims()] == [("cp", 5)]
    tk = TuckerLinear(24, 18, (2, 2, 2, 2, 2, 3), in_shape=(2, 3, 4), out_shape=(3, 2, 3))
    assert [d.name for d in tk.rank_dims()] == ["out0", "out1", "out2", "in0", "in1", "in2"]
    assert tk.rank_dims()[1].members == (("factors.1", 1, 1), ("core", 1, 1))
    tt = TTLinear(24, 18, (2, 3), in_shape=(2, 3, 4), out_shape=(3, 2, 3))
    assert [(d.name, d.size) for d in tt.rank_dims()] == [("bond1", 2), ("bond2", 3)]
    assert tt.rank_dims()[0].members == (("cores.0", 3, 1), ("cores.1", 0, 1))


def test_from_factors_and_shapes():
    torch.manual_seed(0)
    out_f = [torch.randn(3, 4), torch.randn(2, 4)]
    in_f = [torch.randn(5, 4), torch.randn(2, 4)]
    layer = CPLinear.from_factors(out_f, in_f, bias=torch.zeros(6))
    assert (layer.in_features, layer.out_features, layer.rank) == (10, 6, (4,))
    W = torch.einsum("ar,br,cr,dr->abcd", *out_f, *in_f).reshape(6, 10)
    torch.testing.assert_close(layer.dense_weight(), W)
    with pytest.raises(ValueError, match="columns"):
        CPLinear.from_factors(out_f, [torch.randn(5, 3)])
    with pytest.raises(ValueError, match="core must have shape"):
        TuckerLinear.from_factors(torch.randn(2, 2), [torch.randn(3, 2)], [torch.randn(4, 3)])
    with pytest.raises(ValueError, match="mismatched ranks"):
        TTLinear.from_factors([torch.randn(1, 2, 2, 3), torch.randn(2, 2, 2, 1)])


def test_balanced_factors_and_auto_shapes():
    assert balanced_factors(1024, 3) == (16, 8, 8)
    assert math.prod(balanced_factors(784, 3)) == 784
    assert balanced_factors(7, 3) == (7, 1, 1)
    assert resolve_feature_shapes(512, 10, n_modes=3) == ((8, 8, 8), (5, 2))
    assert resolve_feature_shapes(512, 10, n_modes=3, same_length=True) == ((8, 8, 8),
                                                                             (5, 1, 2))
    layer = TTLinear(512, 10, 2)
    assert layer.in_shape == (8, 8, 8) and layer.out_shape == (5, 1, 2)
    assert CPLinear(512, 10, 2).out_shape == (5, 2)


def test_sizes_flops_and_repr():
    layer = TTLinear(1024, 1024, 4)
    assert layer.n_params == sum(p.numel() for p in layer.parameters())
    assert layer.dense_params == 1024 * 1024 + 1024
    assert layer.compression_ratio == pytest.approx(layer.dense_params / layer.n_params)
    assert layer.dense_flops(32) == 2 * 32 * 1024 * 1024
    assert layer.flops(1) < layer.dense_flops(1) / 4
    for b in (1, 32, 256):
        assert layer.flops(b) == type(layer)._make_program(layer.spec, (b, 1024))[1]
    dense = TTLinear(1024, 1024, 4, implementation="dense")
    assert dense.flops(8) > 2 * 8 * 1024 * 1024
    text = repr(layer)
    assert "in_features=1024" in text and "rank=(1, 4, 4, 1)" in text
    assert "implementation='dense'" in repr(dense)
    with pytest.raises(ValueError, match="batch_size"):
        layer.flops(0)


def test_path_choice_follows_batch_and_shape():
    tiny = TTLinear(16, 16, 4, in_shape=(4, 4), out_shape=(4, 4))
    assert tiny.path((8192, 16)) == "tt_dense"   # rebuilding W once is cheaper
    big = TTLinear(1024, 1024, 4)
    assert big.path((1, 1024)).startswith("tt_") and big.path((1, 1024)) != "tt_dense"
    cp = CPLinear(1024, 1024, 128)
    assert cp.path((256, 1024)) == "cp"
    layer = CPLinear(64, 32, 4)
    layer(torch.randn(3, 64))
    layer(torch.randn(5, 64))
    assert len(layer._programs) == 2           # one cached path per input shape
    layer.implementation = "dense"
    assert len(layer._programs) == 0 and layer.path((3, 64)) == "cp_dense"


def test_cached_products_follow_parameter_updates():
    torch.manual_seed(0)
    layer = TuckerLinear(64, 32, 3)
    x = torch.randn(4, 64)
    with torch.no_grad():
        before = layer(x)
    opt = torch.optim.SGD(layer.parameters(), lr=0.5)
    layer(x).pow(2).sum().backward()
    opt.step()
    with torch.no_grad():
        after = layer(x)
        expected = layer.to_dense()(x)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, expected, rtol=1e-5, atol=1e-6)
    with torch.inference_mode():
        torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls,rank", [(CPLinear, 4), (TuckerLinear, 2), (TTLinear, 3)])
def test_bf16_autocast(cls, rank):
    torch.manual_seed(0)
    layer = cls(64, 32, rank)
    x = torch.randn(8, 64)
    ref = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for prog in candidate_programs(layer, x.shape):
            y = run_with(layer, x, prog)
            assert y.dtype == torch.bfloat16
            assert rel_err(y, ref) < 3e-2
        y = layer(x)
        y.float().sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32
               for p in layer.parameters())


def test_torch_compile_smoke():
    torch.manual_seed(0)
    layer = TTLinear(64, 48, 3)
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    for b in (5, 7):   # a second batch size makes the batch dimension dynamic
        x = torch.randn(b, 64, requires_grad=True)
        y = compiled(x)
        torch.testing.assert_close(y, layer(x), rtol=1e-5, atol=1e-6)
        y.sum().backward()
        assert x.grad is not None


def test_device_dtype_factory_arguments():
    layer = CPLinear(16, 8, 2, dtype=F64, device="cpu")
    assert all(p.dtype == F64 for p in layer.parameters())
    layer = layer.float()
    assert layer(torch.randn(2, 16)).dtype == torch.float32
    assert TTLinear(16, 8, 2, device="meta").cores[0].device.type == "meta"


@pytest.mark.parametrize("cls", [CPLinear, TuckerLinear, TTLinear])
def test_bad_arguments(cls):
    with pytest.raises(ValueError, match="in_shape must multiply to in_features=24"):
        cls(24, 18, 2, in_shape=(5, 5))
    with pytest.raises(ValueError, match="out_shape must multiply"):
        cls(24, 18, 2, out_shape=(4, 4))
    with pytest.raises(ValueError, match="rank"):
        cls(24, 18, 0)
    with pytest.raises(ValueError, match="rank"):
        cls(24, 18, 10 ** 6)
    with pytest.raises(ValueError, match="rank"):
        cls(24, 18, 1.5)
    with pytest.raises(TypeError, match="rank"):
        cls(24, 18, "big")
    with pytest.raises(TypeError, match="in_features"):
        cls(24.0, 18, 2)
    with pytest.raises(ValueError, match="implementation"):
        cls(24, 18, 2, implementation="fast")
    with pytest.raises(TypeError, match="bias"):
        cls(24, 18, 2, bias="yes")
    layer = cls(24, 18, 2)
    with pytest.raises(ValueError, match=r"in_features=24"):
        layer(torch.randn(3, 25))
    with pytest.raises(TypeError, match="nn.Linear"):
        cls.from_dense(nn.Conv2d(3, 3, 1), 2)
    with pytest.raises(ValueError, match="keep"):
        layer.select_ranks([[0]] * (len(layer.rank_dims()) + 1))
    with pytest.raises(ValueError, match="at least one"):
        layer.select_ranks([[]] + [None] * (len(layer.rank_dims()) - 1))
    with pytest.raises(ValueError, match=r"indices in \[0"):
        layer.select_ranks([[99]] + [None] * (len(layer.rank_dims()) - 1))


def test_tucker_and_tt_rank_tuples_are_checked():
    with pytest.raises(ValueError, match=r"rank\[0\] must be between 1 and the mode size 4"):
        TuckerLinear(16, 16, (5, 1, 1, 1), in_shape=(4, 4), out_shape=(4, 4))
    with pytest.raises(ValueError, match="one entry per mode"):
        TuckerLinear(16, 16, (2, 2), in_shape=(4, 4), out_shape=(4, 4))
    with pytest.raises(ValueError, match="rank"):
        TTLinear(16, 16, (2, 2, 2, 2), in_shape=(4, 4), out_shape=(4, 4))
    with pytest.raises(ValueError, match="same number of modes"):
        TTLinear(16, 16, 2, in_shape=(4, 4), out_shape=(16,))


@pytest.mark.gpu
@pytest.mark.parametrize("cls,rank", [(CPLinear, 16), (TuckerLinear, 4), (TTLinear, 4)])
def test_cuda_matches_dense(cls, rank):
    torch.manual_seed(0)
    layer = cls(256, 128, rank).cuda()
    assert layer.spec[1] == "cuda"
    x = torch.randn(64, 256, device="cuda")
    ref = layer.to_dense()(x)
    for prog in candidate_programs(layer, x.shape):
        y = run_with(layer, x, prog)
        assert y.device.type == "cuda"
        assert rel_err(y, ref) < 1e-4
    layer(x).sum().backward()
    assert all(p.grad.device.type == "cuda" for p in layer.parameters())
