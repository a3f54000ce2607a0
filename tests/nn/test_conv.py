import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tensornet.nn import CPConv2d, TTConv2d, TuckerConv2d

from ._layer_helpers import (candidate_programs, gradcheck_layer, rel_err, run_with,
                             state_dict_round_trip)

F64 = torch.float64
RANKS = {CPConv2d: 4, TuckerConv2d: (4, 4), TTConv2d: (3, 4, 3)}
OPTIONS = [
    dict(),
    dict(stride=2, padding=1),
    dict(stride=(2, 1), padding=(2, 0), dilation=(1, 2)),
    dict(padding=(1, 2), dilation=2, bias=False),
    dict(padding="same"),
    dict(padding="same", dilation=(2, 1), kernel_size=(4, 3)),
    dict(padding="valid", kernel_size=(3, 1)),
    dict(padding=1, padding_mode="reflect", stride=2),
    dict(padding=(1, 2), padding_mode="circular"),
    dict(padding=1, padding_mode="replicate"),
    dict(kernel_size=1),
    dict(groups=2, padding=1),
    dict(groups=4, stride=2, dilation=2, padding=2),
]


def make(cls, opts, S=8, T=12, rank=None):
    torch.manual_seed(0)
    opts = dict(opts)
    k = opts.pop("kernel_size", 3)
    G = opts.get("groups", 1)
    rank = rank or RANKS[cls]
    if cls is TuckerConv2d and G > 1:
        rank = (4 * G // 2 if 4 * G // 2 <= T else T, 4 * G // 2 if 4 * G // 2 <= S else S)
        rank = tuple(r - r % G for r in rank)
    if cls is CPConv2d and G > 1:
        rank = 2 * G
    return cls(S, T, k, rank, dtype=F64, **opts)


def cases():
    for cls in (CPConv2d, TuckerConv2d, TTConv2d):
        for i, opts in enumerate(OPTIONS):
            if cls is TTConv2d and opts.get("groups", 1) > 1:
                continue
            yield pytest.param(cls, opts, id=f"{cls.__name__}-{i}")


@pytest.mark.parametrize("cls,opts", list(cases()))
def test_matches_conv2d_with_rebuilt_kernel(cls, opts):
    layer = make(cls, opts)
    x = torch.randn(2, 8, 9, 10, dtype=F64)
    dense = layer.to_dense()
    assert isinstance(dense, nn.Conv2d)
    assert (dense.stride, dense.padding, dense.dilation, dense.groups, dense.padding_mode) \
        == (layer.stride, layer.padding, layer.dilation, layer.groups, layer.padding_mode)
    ref = dense(x)
    if layer.padding_mode == "zeros":  # the functional form with the rebuilt kernel
        torch.testing.assert_close(
            F.conv2d(x, layer.dense_weight(), layer.bias, layer.stride, layer.padding,
                     layer.dilation, layer.groups), ref)
    for prog in candidate_programs(layer, x.shape):
        torch.testing.assert_close(run_with(layer, x, prog), ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(layer(x[0]), dense(x[0]), rtol=1e-10, atol=1e-12)  # unbatched


@pytest.mark.parametrize("cls,groups", [(CPConv2d, 1), (CPConv2d, 2), (TuckerConv2d, 1),
                                        (TuckerConv2d, 2), (TTConv2d, 1)])
def test_from_dense_recovers_exact_low_rank_kernel(cls, groups):
    rank = {CPConv2d: 2 * groups, TuckerConv2d: (4, 2 * groups), TTConv2d: (3, 4, 3)}[cls]
    src = cls(8, 12, 3, rank, stride=2, padding=1, groups=groups, dtype=F64)
    dense = src.to_dense()
    layer = cls.from_dense(dense, rank=src.rank)
    assert layer.approximation_error < 1e-5
    assert (layer.stride, layer.padding, layer.groups) == ((2, 2), (1, 1), groups)
    x = torch.randn(2, 8, 7, 7, dtype=F64)
    assert rel_err(layer(x), dense(x)) < 1e-5


@pytest.mark.parametrize("cls", [CPConv2d, TuckerConv2d, TTConv2d])
def test_from_dense_lossy(cls):
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 16, 3, padding=1, dtype=F64)
    layer = cls.from_dense(conv, rank=0.3, **({} if cls is TTConv2d else {'n_iter_max': 20}))
    assert layer.n_params < 0.3 * conv.weight.numel() + 16 + 1
    assert 0 < layer.approximation_error < 1
    assert layer.approximation_error == pytest.approx(
        rel_err(layer.dense_weight(), conv.weight), rel=1e-9)


@pytest.mark.parametrize("cls,opts", [(CPConv2d, dict(stride=2, padding=1)),
                                      (TuckerConv2d, dict(groups=2, padding=1)),
                                      (TTConv2d, dict(dilation=2, padding="same"))])
def test_gradients_match_finite_differences(cls, opts):
    torch.manual_seed(0)
    layer = make(cls, opts, S=4, T=4, rank={CPConv2d: 2, TuckerConv2d: (2, 2),
                                            TTConv2d: (2, 2, 2)}[cls])
    x = torch.randn(1, 4, 5, 5, dtype=F64)
    for prog in candidate_programs(layer, x.shape):
        layer._programs[x.shape] = prog
        assert gradcheck_layer(layer, x)
    layer.clear_plans()


@pytest.mark.parametrize("cls,rank,groups", [(CPConv2d, 8, 1), (CPConv2d, 8, 2),
                                             (TuckerConv2d, (8, 8), 1),
                                             (TuckerConv2d, (8, 8), 2), (TTConv2d, 6, 1)])
def test_init_keeps_dense_variance(cls, rank, groups):
    torch.manual_seed(0)
    fan_in = (16 // groups) * 9
    var = np.mean([cls(16, 16, 3, rank, groups=groups).dense_weight().var().item()
                   for _ in range(60)])
    assert var == pytest.approx(1 / (3 * fan_in), rel=0.25)


@pytest.mark.parametrize("cls", [CPConv2d, TuckerConv2d, TTConv2d])
def test_state_dict_and_rank_groups(cls):
    layer = make(cls, dict(padding=1))
    x = torch.randn(2, 8, 6, 6, dtype=F64)
    fresh = cls(8, 12, 3, layer.rank, padding=1, dtype=F64)
    state_dict_round_trip(layer, fresh)
    torch.testing.assert_close(fresh(x), layer(x))
    dims = layer.rank_dims()
    params = dict(layer.named_parameters())
    with torch.no_grad():
        for name, dim, blocks in dims[-1].members:
            p = params[name]
            q = p.movedim(dim, 0).unflatten(0, (blocks, dims[-1].size))
            q[:, 0].zero_()
    assert float(layer.rank_group_norms()[-1][0]) == 0.0
    keep = [None] * (len(dims) - 1) + [list(range(1, dims[-1].size))]
    small = layer.select_ranks(keep)
    torch.testing.assert_close(small(x), layer(x), rtol=1e-10, atol=1e-12)
    fresh = cls(8, 12, 3, small.rank, padding=1, dtype=F64)
    state_dict_round_trip(small, fresh)
    torch.testing.assert_close(fresh(x), small(x))


def test_grouped_rank_groups_select_every_group():
    torch.manual_seed(0)
    layer = TuckerConv2d(8, 12, 3, (6, 4), groups=2, dtype=F64)
    assert [(d.name, d.size) for d in layer.rank_dims()] == [("out", 3), ("in", 2)]
    assert layer.rank_dims()[0].members == (("factors.0", 1, 1), ("core", 0, 2))
    small = layer.select_ranks([[0, 2], None])
    assert small.rank == (4, 4) and tuple(small.core.shape) == (4, 2, 3, 3)
    cp = CPConv2d(8, 12, 3, 6, groups=2, dtype=F64)
    assert cp.select_ranks([[1]]).rank == (2,)


def test_flops_sizes_and_repr():
    layer = TuckerConv2d(256, 256, 3, (64, 64), padding=1)
    dense = 2 * 32 * 32 * 256 * 256 * 9
    assert layer.dense_flops(1, (32, 32)) == dense
    seq = 2 * 32 * 32 * (256 * 64 + 64 * 64 * 9 + 64 * 256)
    assert layer.flops(1, (32, 32)) == seq
    assert layer.flops(4, (32, 32)) == 4 * seq
    assert layer.dense_params == 256 * 256 * 9 + 256
    assert layer.compression_ratio == pytest.approx(layer.dense_params / layer.n_params)
    assert "rank=(64, 64)" in repr(layer) and "padding=(1, 1)" in repr(layer)
    with pytest.raises(ValueError, match="input_size"):
        layer.flops(1)


def test_path_choice():
    big = TuckerConv2d(64, 64, 3, (8, 8), padding=1)
    assert big.path((8, 64, 32, 32)) == "conv_seq"
    tiny = CPConv2d(4, 4, 3, 32, padding=1)  # a rank far above the channel counts
    assert tiny.path((8, 4, 32, 32)) == "conv_dense"


def test_bf16_autocast_and_compile():
    torch.manual_seed(0)
    layer = CPConv2d(8, 16, 3, 6, padding=1)
    x = torch.randn(2, 8, 8, 8)
    ref = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for prog in candidate_programs(layer, x.shape):
            y = run_with(layer, x, prog)
            assert y.dtype == torch.bfloat16 and rel_err(y, ref) < 3e-2
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(x), ref, rtol=1e-5, atol=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="groups must be 1 for TTConv2d"):
        TTConv2d(8, 8, 3, 2, groups=2)
    with pytest.raises(ValueError, match="divisible by groups"):
        CPConv2d(8, 8, 3, 3, groups=2)
    with pytest.raises(ValueError, match="divisible by groups"):
        TuckerConv2d(8, 8, 3, (3, 4), groups=2)
    with pytest.raises(ValueError, match=r"in_channels \(8\) and out_channels \(6\)"):
        CPConv2d(8, 6, 3, 4, groups=4)
    with pytest.raises(ValueError, match="padding='same' is not supported for strided"):
        CPConv2d(8, 8, 3, 4, stride=2, padding="same")
    with pytest.raises(ValueError, match="padding_mode"):
        TuckerConv2d(8, 8, 3, 4, padding_mode="mirror")
    with pytest.raises(ValueError, match="padding must be 'same'"):
        TuckerConv2d(8, 8, 3, 4, padding="full")
    with pytest.raises(ValueError, match="stride must be >= 1"):
        TTConv2d(8, 8, 3, 4, stride=0)
    with pytest.raises(ValueError, match="kernel_size"):
        TTConv2d(8, 8, (3, 3, 3), 4)
    with pytest.raises(ValueError, match="rank"):
        CPConv2d(8, 8, 3, 0)
    with pytest.raises(ValueError, match="rank"):
        CPConv2d(8, 8, 3, 10 ** 5)
    with pytest.raises(ValueError, match=r"rank\[0\] \(R_out\) must be between 1 and 8"):
        TuckerConv2d(4, 8, 3, (9, 2))
    with pytest.raises(ValueError, match="rank"):
        TTConv2d(4, 8, 3, (1000, 2, 2))
    with pytest.raises(TypeError, match="rank"):
        TTConv2d(4, 8, 3, "low")
    layer = CPConv2d(8, 8, 3, 4)
    with pytest.raises(ValueError, match="in_channels=8"):
        layer(torch.randn(1, 7, 5, 5))
    with pytest.raises(ValueError, match="smaller than the"):
        layer(torch.randn(1, 8, 2, 2))
    with pytest.raises(TypeError, match="nn.Conv2d"):
        CPConv2d.from_dense(nn.Linear(3, 3), 2)
    with pytest.raises(ValueError, match="groups=1"):
        TTConv2d.from_dense(nn.Conv2d(4, 4, 3, groups=2), 2)


def test_state_dict_loads_with_weights_only():
    layer = TTConv2d(4, 6, 3, 2)
    buf = io.BytesIO()
    torch.save(layer.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    assert sorted(state) == ["bias", "cores.0", "cores.1", "cores.2", "cores.3"]


@pytest.mark.gpu
@pytest.mark.parametrize("cls,rank", [(CPConv2d, 8), (TuckerConv2d, (8, 8)), (TTConv2d, 4)])
def test_cuda_matches_dense(cls, rank):
    torch.manual_seed(0)
    layer = cls(16, 32, 3, rank, padding=1, stride=2).cuda()
    x = torch.randn(4, 16, 12, 12, device="cuda")
    ref = layer.to_dense()(x)
    for prog in candidate_programs(layer, x.shape):
        assert rel_err(run_with(layer, x, prog), ref) < 1e-4


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_inductor_with_dynamic_shapes():
    # the default compiler backend, symbolic batch and map sizes, with autograd
    torch.manual_seed(0)
    layer = CPConv2d(4, 8, 3, 4, padding=1)
    compiled = torch.compile(layer, dynamic=True)
    for shape in ((2, 4, 6, 6), (3, 4, 5, 7)):
        x = torch.randn(shape, requires_grad=True)
        y = compiled(x)
        torch.testing.assert_close(y, layer(x), rtol=1e-4, atol=1e-5)
        y.sum().backward()
        assert x.grad.shape == x.shape
