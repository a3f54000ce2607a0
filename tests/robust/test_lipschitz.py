import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tensornet.nn import (
    TCL,
    TRL,
    CPConv2d,
    CPLinear,
    TTConv2d,
    TTLinear,
    TuckerConv2d,
    TuckerLinear,
)
from tensornet.robust import empirical_lipschitz, lipschitz_upper_bound, operator_norm
from tensornet.robust._lipschitz import _GELU, _GELU_TANH, _MISH, _SILU


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _seeded(fn, seed=0):
    """Build a module under a fixed seed without leaving the global RNG changed."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return fn()


def _svd_norm(w):
    return float(torch.linalg.matrix_norm(w.detach().double(), ord=2))


def _explicit_operator_norm(module, shape):
    """Norm of the bias-free layer's matrix, built column by column (small shapes only)."""
    n = math.prod(shape)
    eye = torch.eye(n, dtype=torch.float64).reshape((n,) + tuple(shape))
    m = module.double()
    with torch.no_grad():
        cols = m(eye) - m(torch.zeros_like(eye[:1]))
    return _svd_norm(cols.reshape(n, -1))


@pytest.fixture
def no_dense_rebuild(monkeypatch):
    """Make every way of rebuilding a dense weight fail."""
    def boom(self, *a, **k):
        raise AssertionError(f"{type(self).__name__} rebuilt its dense weight")

    for cls in (CPLinear, TuckerLinear, TTLinear, TCL, TRL, CPConv2d, TuckerConv2d, TTConv2d):
        monkeypatch.setattr(cls, "dense_weight", boom)
        monkeypatch.setattr(cls, "to_dense", boom)


LINEARS = [
    ("cp", lambda: CPLinear(64, 48, rank=6)),
    ("tucker", lambda: TuckerLinear(64, 48, rank=0.3)),
    ("tt", lambda: TTLinear(784, 256, rank=6)),
    ("tt-bias-free", lambda: TTLinear(120, 60, rank=4, bias=False)),
    ("tcl", lambda: TCL((4, 5, 6), (3, 4, 2))),
    ("trl-tucker", lambda: TRL((4, 5, 6), 10, rank=0.5)),
    ("trl-cp", lambda: TRL((4, 5, 6), 10, rank=5, factorization="cp")),
]


@pytest.mark.parametrize("name,make", LINEARS, ids=[n for n, _ in LINEARS])
def test_tensorized_linear_equals_dense_spectral_norm(name, make):
    layer = _seeded(make)
    shape = tuple(layer.input_shape) if isinstance(layer, (TCL, TRL)) else (layer.in_features,)
    exact = _svd_norm(layer.dense_weight())
    rep = lipschitz_upper_bound(layer, shape, generator=_gen())
    (entry,) = rep.layers
    assert entry.method == "power iteration (factorized)"
    assert entry.constant == pytest.approx(exact, rel=1e-4)
    assert rep.upper_bound == entry.constant
    if not isinstance(layer, (TCL, TRL)):
        assert entry.constant == pytest.approx(_svd_norm(layer.to_dense().weight), rel=1e-4)


@pytest.mark.parametrize("name,make", LINEARS[:3], ids=[n for n, _ in LINEARS[:3]])
def test_tensorized_norm_never_rebuilds_the_weight(name, make, no_dense_rebuild):
    layer = _seeded(make)
    impl = layer.implementation
    s = operator_norm(layer, (layer.in_features,), generator=_gen())
    assert s > 0
    assert layer.implementation == impl          # the user's layer is untouched


CONVS = [
    ("cp", lambda **kw: CPConv2d(6, 10, 3, rank=5, **kw)),
    ("tucker", lambda **kw: TuckerConv2d(6, 10, 3, rank=0.5, **kw)),
    ("tt", lambda **kw: TTConv2d(6, 10, 3, rank=3, **kw)),
]


@pytest.mark.parametrize("opts", [{"padding": 1}, {"padding": 1, "stride": 2}, {"padding": 0},
                                  {"padding": 2, "dilation": 2}],
                         ids=["same", "stride2", "valid", "dilated"])
@pytest.mark.parametrize("name,make", CONVS, ids=[n for n, _ in CONVS])
def test_tensorized_conv_equals_dense_convolution_operator(name, make, opts):
    layer = _seeded(lambda: make(**opts))
    shape = (6, 9, 11)
    rep = lipschitz_upper_bound(layer, shape, generator=_gen(1))
    (entry,) = rep.layers
    assert entry.method == "power iteration (factorized)"
    dense = layer.to_dense()
    # power iteration on the dense convolution, and the explicit matrix of that operator
    assert entry.constant == pytest.approx(operator_norm(dense, shape, generator=_gen(2)),
                                           rel=1e-4)
    assert entry.constant == pytest.approx(_explicit_operator_norm(dense, shape), rel=1e-4)


@pytest.mark.parametrize("mode", ["zeros", "circular", "reflect"])
def test_dense_conv_operator_norm_depends_on_the_input_shape(mode):
    conv = _seeded(lambda: nn.Conv2d(3, 4, 3, padding=1, padding_mode=mode))
    small, large = (3, 5, 5), (3, 12, 12)
    a = operator_norm(conv, small, generator=_gen())
    b = operator_norm(conv, large, generator=_gen())
    assert a == pytest.approx(_explicit_operator_norm(conv, small), rel=1e-4)
    assert b == pytest.approx(_explicit_operator_norm(conv, large), rel=1e-4)
    if mode == "circular":
        # a circular convolution is diagonalised by the 2-D DFT: the norm is the largest
        # spectral norm of the kernel's symbol over the frequencies of the grid
        w = conv.weight.detach().double()
        sym = torch.fft.fft2(w, s=(12, 12))                      # (out, in, 12, 12)
        sym = sym.permute(2, 3, 0, 1)
        assert b == pytest.approx(float(torch.linalg.matrix_norm(sym, ord=2).max()), rel=1e-4)


def test_conv1d_and_transposed_and_pools():
    net = _seeded(lambda: nn.Sequential(
        nn.Conv1d(2, 3, 3, padding=1), nn.ReLU(), nn.AvgPool1d(2), nn.ConvTranspose1d(3, 2, 2,
                                                                                      stride=2)))
    rep = lipschitz_upper_bound(net, (2, 10), generator=_gen())
    consts = [r.constant for r in rep.layers]
    assert consts[2] == pytest.approx(1 / math.sqrt(2), rel=1e-6)    # mean of 2 disjoint
    assert consts[0] == pytest.approx(_explicit_operator_norm(net[0], (2, 10)), rel=1e-4)
    assert consts[3] == pytest.approx(_explicit_operator_norm(net[3], (3, 5)), rel=1e-4)


def _trained_cnn():
    """A small CNN with batch norm, pooling and tensorized layers, trained a little on digits."""
    from tensornet.datasets import load_digits_tensor

    images, labels = load_digits_tensor()
    x = torch.as_tensor(images, dtype=torch.float32)[:, None]
    y = torch.as_tensor(labels)

    def build():
        return nn.Sequential(
            CPConv2d(1, 8, 3, rank=4, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.MaxPool2d(2), TTConv2d(8, 16, 3, rank=3, padding=1), nn.LeakyReLU(0.2),
            nn.AvgPool2d(2), nn.Flatten(), nn.Dropout(0.1), TTLinear(64, 32, rank=3),
            nn.Tanh(), nn.Linear(32, 10))

    model = _seeded(build)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = _gen(3)
    for _ in range(60):
        idx = torch.randint(0, 1500, (128,), generator=g)
        opt.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    return model, x[1500:], y[1500:]


def test_network_bound_is_never_below_the_empirical_estimate():
    model, x, _ = _trained_cnn()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rep = lipschitz_upper_bound(model, x=x[:120], generator=_gen())
    assert model.training and all(m.training for m in model.modules())     # modes restored
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)           # nothing changed
    assert all(p.grad is None for p in model.parameters())
    assert rep.n_points == 120
    assert rep.upper_bound == pytest.approx(math.prod(r.constant for r in rep.layers))
    assert rep.upper_bound >= rep.empirical >= rep.empirical_mean > 0
    methods = [r.method for r in rep.layers]
    assert methods == ["power iteration (factorized)", "batch norm scale", "activation",
                       "max pool overlap", "power iteration (factorized)", "activation",
                       "power iteration", "identity", "identity",
                       "power iteration (factorized)", "activation", "svd"]
    assert [r.output_shape for r in rep.layers][-1] == (10,)
    # the per-example norms are local constants: each is below the bound too, and the
    # model changes by no more than the bound allows between two nearby points
    norms = empirical_lipschitz(model, x[:120])
    assert float(norms.max()) == pytest.approx(rep.empirical)
    model.eval()
    d = 1e-3 * torch.randn(x[:120].shape, generator=_gen(5))
    with torch.no_grad():
        ratio = (model(x[:120] + d) - model(x[:120])).norm(dim=1) / d.flatten(1).norm(dim=1)
    assert float(ratio.max()) <= rep.upper_bound
    bn = model[1]
    assert rep.layers[1].constant == pytest.approx(float(
        (bn.weight.detach().abs() / torch.sqrt(bn.running_var + bn.eps)).max()), rel=1e-6)
    text = str(rep)
    assert "upper bound (product)" in text and "TTConv2d" in text
    d = rep.to_dict()
    assert d["ratio"] == pytest.approx(rep.upper_bound / rep.empirical)


def test_one_linear_layer_bound_is_tight():
    lin = _seeded(lambda: nn.Linear(20, 7))
    x = torch.randn(5, 20, generator=_gen())
    rep = lipschitz_upper_bound(lin, x=x)
    assert rep.upper_bound == pytest.approx(_svd_norm(lin.weight), rel=1e-12)
    assert rep.empirical == pytest.approx(rep.upper_bound, rel=1e-6)


def test_empirical_power_iteration_matches_the_exact_jacobian_norm():
    model = _seeded(lambda: nn.Sequential(nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 5)))
    x = torch.randn(6, 12, generator=_gen())
    exact = empirical_lipschitz(model, x)
    power = empirical_lipschitz(model, x, exact_max_outputs=0, n_iter=200, generator=_gen(1))
    torch.testing.assert_close(power, exact, rtol=1e-4, atol=0)
    # the exact route agrees with torch.func on one example
    J = torch.autograd.functional.jacobian(model, x[0])
    assert float(exact[0]) == pytest.approx(_svd_norm(J), rel=1e-5)


@pytest.mark.parametrize("module,constant", [
    (nn.GELU(), _GELU), (nn.GELU(approximate="tanh"), _GELU_TANH), (nn.SiLU(), _SILU),
    (nn.Mish(), _MISH), (nn.Sigmoid(), 0.25), (nn.Tanh(), 1.0), (nn.ELU(alpha=1.5), 1.5),
    (nn.LeakyReLU(0.3), 1.0), (nn.LeakyReLU(-2.0), 2.0), (nn.Softplus(), 1.0),
    (nn.Hardswish(), 1.5), (nn.Hardsigmoid(), 1 / 6),
])
def test_activation_constants(module, constant):
    t = torch.linspace(-12, 12, 480001, dtype=torch.float64, requires_grad=True)
    (slope,) = torch.autograd.grad(module(t).sum(), t)
    steepest = float(slope.abs().max())
    assert steepest <= constant * (1 + 1e-7)      # (Hardsigmoid's backward uses a float 1/6)
    assert steepest >= constant - 1e-4
    rep = lipschitz_upper_bound(nn.Sequential(module), (3,))
    assert rep.upper_bound == constant


def test_max_pool_overlap():
    for pool, expected in [(nn.MaxPool2d(2), 1.0), (nn.MaxPool2d(3, stride=1), 3.0),
                           (nn.MaxPool2d(3, stride=2, padding=1), 2.0),
                           (nn.MaxPool2d(2, stride=1, dilation=2), 3.0),
                           (nn.AdaptiveMaxPool2d((2, 2)), 1.0),
                           (nn.AdaptiveMaxPool2d((4, 4)), 2.0)]:
        rep = lipschitz_upper_bound(pool, (2, 6, 6), x=torch.rand(30, 2, 6, 6,
                                                                   generator=_gen()))
        assert rep.upper_bound == pytest.approx(expected), pool
        assert rep.empirical <= rep.upper_bound + 1e-9


def test_bad_input():
    with pytest.raises(TypeError, match=r"module '1' \(LayerNorm\).*constants="):
        lipschitz_upper_bound(nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4)), (4,))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def forward(self, x):
            return x + self.lin(x)

    with pytest.raises(TypeError, match=r"module '0' \(Block\)"):
        lipschitz_upper_bound(nn.Sequential(Block()), (4,))
    # a known constant for a custom module (a residual block: 1 + ||W||)
    blk = _seeded(Block)
    c = 1 + _svd_norm(blk.lin.weight)
    rep = lipschitz_upper_bound(nn.Sequential(blk, nn.ReLU()), (4,), constants={Block: c})
    assert rep.upper_bound == pytest.approx(c) and rep.layers[0].method == "user constant"
    with pytest.raises(ValueError, match="track_running_stats"):
        lipschitz_upper_bound(nn.BatchNorm1d(4, track_running_stats=False), (4,))
    with pytest.raises(ValueError, match="input_shape must be given"):
        lipschitz_upper_bound(nn.Linear(4, 2))
    with pytest.raises(ValueError, match="input_shape must be a tuple of positive"):
        lipschitz_upper_bound(nn.Linear(4, 2), (0, 4))
    with pytest.raises(ValueError, match=r"module '1' \(Linear\) does not accept"):
        lipschitz_upper_bound(nn.Sequential(nn.Linear(4, 3), nn.Linear(4, 2)), (4,))
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        lipschitz_upper_bound("net", (4,))
    with pytest.raises(ValueError, match="tol must be > 0"):
        lipschitz_upper_bound(nn.Linear(4, 2), (4,), tol=0)
    with pytest.raises(ValueError, match=r"constants\[Linear\] must be >= 0"):
        lipschitz_upper_bound(nn.Linear(4, 2), (4,), constants={nn.Linear: -1.0})
    with pytest.raises(ValueError, match="NaN"):
        empirical_lipschitz(nn.Linear(4, 2), torch.full((2, 4), float("nan")))
    with pytest.raises(TypeError, match="floating-point"):
        empirical_lipschitz(nn.Linear(4, 2), torch.ones(2, 4, dtype=torch.long))


@pytest.mark.gpu
def test_attacks_and_bounds_on_cuda():
    from tensornet.robust import fgsm, pgd

    model = _seeded(lambda: nn.Sequential(
        TTConv2d(1, 4, 3, rank=2, padding=1), nn.ReLU(), nn.Flatten(),
        TTLinear(4 * 8 * 8, 10, rank=3))).cuda()
    x = torch.rand(16, 1, 8, 8, generator=_gen()).cuda()
    y = torch.arange(16).remainder(10).cuda()
    adv = fgsm(model, x, y, 0.1)
    assert adv.is_cuda and float((adv - x).abs().max()) <= 0.1 + 1e-6
    adv = pgd(model, x, y, 0.1, generator=torch.Generator(device="cuda").manual_seed(0))
    assert adv.is_cuda
    rep = lipschitz_upper_bound(model, x=x, generator=torch.Generator(device="cuda").manual_seed(0))
    cpu = lipschitz_upper_bound(model.cpu(), x=x.cpu(), generator=_gen())
    assert rep.upper_bound == pytest.approx(cpu.upper_bound, rel=1e-4)
    assert rep.upper_bound >= rep.empirical
