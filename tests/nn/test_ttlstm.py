"""TT-LSTM cell and layer: contraction against the explicit tensor, gradients, conventions."""

import itertools

import pytest
import torch

from tensornet.nn import TTLSTM, TTLSTMCell
from tensornet.nn._ttlstm import (
    tt_transition,
    tt_transition_full_state,
    ttlstm_step_flops,
)


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _explicit(s, cores):
    """W(s, ..., s) by building the full weight tensor entry by entry (no shortcuts)."""
    P = len(cores)
    D = s.shape[1]
    out_dim = cores[-1].shape[2]
    W = torch.zeros((D,) * P + (out_dim,), dtype=s.dtype)
    for idx in itertools.product(range(D), repeat=P):
        M = cores[0][:, idx[0], :]
        for k in range(1, P):
            M = M @ cores[k][:, idx[k], :]
        W[idx] = M[0]
    z = torch.zeros(s.shape[0], out_dim, dtype=s.dtype)
    for b in range(s.shape[0]):
        T = W
        for _ in range(P):
            T = torch.tensordot(s[b], T, dims=([0], [0]))
        z[b] = T
    return z


@pytest.mark.parametrize("order", [2, 3])
def test_core_by_core_equals_full_tensor(order):
    g = torch.Generator().manual_seed(order)
    cell = TTLSTMCell(2, 3, lags=2, order=order, rank=[2, 3][:order - 1], dtype=torch.float64)
    with torch.no_grad():
        for a in cell.cores:
            a.copy_(torch.randn(a.shape, generator=g, dtype=torch.float64))
    s = torch.cat([torch.ones(4, 1, dtype=torch.float64),
                   torch.randn(4, cell.state_size - 1, generator=g, dtype=torch.float64)], 1)
    ref = _explicit(s, list(cell.cores))
    assert torch.allclose(tt_transition(s, list(cell.cores)), ref, atol=1e-6, rtol=1e-9)
    assert torch.allclose(tt_transition_full_state(s, list(cell.cores)), ref, atol=1e-6,
                          rtol=1e-9)
    W = cell.full_weight()
    assert W.shape == (cell.state_size,) * order + (12,)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_cell_step_matches_lstm_equations(order):
    torch.manual_seed(0)
    cell = TTLSTMCell(3, 4, lags=2, order=order, rank=3, dtype=torch.float64)
    x = torch.randn(5, 3, dtype=torch.float64)
    h_lags = torch.randn(5, 2, 4, dtype=torch.float64)
    c = torch.randn(5, 4, dtype=torch.float64)
    h, (new_lags, c_new) = cell(x, (h_lags, c))
    s = torch.cat([torch.ones(5, 1, dtype=torch.float64), h_lags.reshape(5, -1)], 1)
    z = x @ cell.weight_ih.T + cell.bias + _explicit(s, list(cell.cores))
    i, f, gg, o = z.chunk(4, 1)
    c_ref = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
    h_ref = torch.sigmoid(o) * torch.tanh(c_ref)
    assert torch.allclose(h, h_ref, atol=1e-10)
    assert torch.allclose(c_new, c_ref, atol=1e-10)
    assert torch.equal(new_lags[:, 0], h) and torch.equal(new_lags[:, 1], h_lags[:, 0])


def test_full_state_contraction_gives_same_layer_output():
    torch.manual_seed(1)
    a = TTLSTM(2, 5, lags=2, order=3, rank=2, dtype=torch.float64)
    b = TTLSTM(2, 5, lags=2, order=3, rank=2, contraction="full_state", dtype=torch.float64)
    b.load_state_dict(a.state_dict())
    x = torch.randn(3, 6, 2, dtype=torch.float64)
    assert torch.allclose(a(x)[0], b(x)[0], atol=1e-12)


def test_layer_equals_repeated_cell_steps():
    torch.manual_seed(2)
    layer = TTLSTM(2, 6, lags=3, order=2, rank=4, dtype=torch.float64)
    x = torch.randn(4, 7, 2, dtype=torch.float64)
    out, (h_lags, c) = layer(x)
    state = None
    for t in range(7):
        h, state = layer.cell(x[:, t], state)
        assert torch.allclose(out[:, t], h, atol=1e-12)
    assert torch.allclose(h_lags, state[0]) and torch.allclose(c, state[1])
    # time-major input gives the same numbers
    tm = TTLSTM(2, 6, lags=3, order=2, rank=4, batch_first=False, dtype=torch.float64)
    tm.load_state_dict(layer.state_dict())
    assert torch.allclose(tm(x.transpose(0, 1))[0].transpose(0, 1), out, atol=1e-12)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_gradcheck(order):
    torch.manual_seed(3)
    layer = TTLSTM(2, 3, lags=2, order=order, rank=2, dtype=torch.float64)
    x = torch.randn(2, 4, 2, dtype=torch.float64, requires_grad=True)

    names = [n for n, _ in layer.named_parameters()]

    def f(x, *ps):
        out, (h, c) = torch.func.functional_call(layer, dict(zip(names, ps)), (x,))
        return out.sum(dim=(1, 2)), c

    ps = [p.detach().clone().requires_grad_(True) for p in layer.parameters()]
    assert torch.autograd.gradcheck(f, (x, *ps), eps=1e-6, atol=1e-6)


def test_initialisation_is_stable_and_seeded():
    g1 = torch.Generator().manual_seed(5)
    g2 = torch.Generator().manual_seed(5)
    a = TTLSTM(1, 32, lags=3, order=3, rank=8)
    b = TTLSTM(1, 32, lags=3, order=3, rank=8)
    a.reset_parameters(g1)
    b.reset_parameters(g2)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    # a long sequence keeps bounded, non-degenerate activity
    x = torch.randn(8, 200, 1, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out, _ = a(x)
    assert torch.isfinite(out).all()
    assert 0.01 < out[:, -50:].std() < 0.9
    # the forget gate starts open
    assert torch.all(a.cell.bias[32:64] == 1)


def test_shapes_params_and_repr():
    cell = TTLSTMCell(3, 8, lags=2, order=3, rank=[4, 5])
    assert cell.ranks == (1, 4, 5, 32)
    assert [tuple(a.shape) for a in cell.cores] == [(1, 17, 4), (4, 17, 5), (5, 17, 32)]
    assert cell.num_tt_parameters == 17 * 4 + 4 * 17 * 5 + 5 * 17 * 32
    assert "order=3" in repr(cell) and "ranks=(1, 4, 5, 32)" in repr(cell)
    one = TTLSTMCell(3, 8, lags=2, order=1, rank=99, bias=False)
    assert one.ranks == (1, 32) and one.bias is None
    assert [tuple(a.shape) for a in one.cores] == [(1, 17, 32)]
    h, _ = one(torch.zeros(2, 3))
    assert h.shape == (2, 8)


def test_order_one_with_one_lag_is_an_lstm_cell():
    torch.manual_seed(4)
    ref = torch.nn.LSTMCell(3, 5, dtype=torch.float64)
    cell = TTLSTMCell(3, 5, lags=1, order=1, dtype=torch.float64)
    with torch.no_grad():
        cell.weight_ih.copy_(ref.weight_ih)
        cell.bias.copy_(ref.bias_ih + ref.bias_hh)
        cell.cores[0][0, 0].zero_()
        cell.cores[0][0, 1:].copy_(ref.weight_hh.T)
    x = torch.randn(4, 3, dtype=torch.float64)
    h0, c0 = torch.randn(4, 5, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    h_ref, c_ref = ref(x, (h0, c0))
    h, (_, c) = cell(x, (h0.unsqueeze(1), c0))
    assert torch.allclose(h, h_ref, atol=1e-12) and torch.allclose(c, c_ref, atol=1e-12)


def test_flops_count_is_linear_in_order_for_cores():
    f = [ttlstm_step_flops(1, 64, 3, p, 8, batch_size=1) for p in (1, 2, 3, 4)]
    D = 3 * 64 + 1
    # each extra middle core adds 2*D*r^2 (its projection) + 2*r^2 (chain) flops
    assert f[3] - f[2] == f[2] - f[1] == 2 * D * 64 + 2 * 64
    full = ttlstm_step_flops(1, 64, 3, 3, 8, contraction="full_state")
    assert full > 100 * f[2]


def test_dtype_device_factory_kwargs():
    cell = TTLSTMCell(2, 3, dtype=torch.float64, device="cpu")
    assert all(p.dtype == torch.float64 for p in cell.parameters())


@pytest.mark.parametrize("kwargs, exc, word", [
    (dict(input_size=2, hidden_size=0), ValueError, "hidden_size"),
    (dict(input_size=2, hidden_size=3, order=0), ValueError, "order"),
    (dict(input_size=2, hidden_size=3, lags=1.5), TypeError, "lags"),
    (dict(input_size=2, hidden_size=3, order=3, rank=[2]), ValueError, "rank"),
    (dict(input_size=2, hidden_size=3, rank=0), ValueError, "rank"),
    (dict(input_size=2, hidden_size=3, contraction="dense"), ValueError, "contraction"),
])
def test_bad_arguments(kwargs, exc, word):
    with pytest.raises(exc, match=word):
        TTLSTMCell(**kwargs)


def test_bad_inputs():
    cell = TTLSTMCell(2, 3, lags=2)
    with pytest.raises(ValueError, match="input_size=2"):
        cell(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="h_lags"):
        cell(torch.zeros(4, 2), (torch.zeros(4, 3, 3), torch.zeros(4, 3)))
    with pytest.raises(TypeError, match="torch.Tensor"):
        cell([[0.0, 0.0]])
    with pytest.raises(ValueError, match="batch, time"):
        TTLSTM(2, 3)(torch.zeros(4, 2))


@pytest.mark.gpu
def test_cuda_matches_cpu():
    torch.manual_seed(0)
    layer = TTLSTM(2, 8, lags=2, order=3, rank=3)
    x = torch.randn(3, 5, 2)
    ref, _ = layer(x)
    out, _ = layer.to("cuda")(x.cuda())
    assert torch.allclose(out.cpu(), ref, atol=1e-5)


def test_autocast_bfloat16_runs_close_to_float32():
    torch.manual_seed(6)
    layer = TTLSTM(2, 8, lags=2, order=3, rank=3)
    x = torch.randn(4, 6, 2)
    ref, _ = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, (h_lags, c) = layer(x)
    assert torch.isfinite(out).all()
    assert (out.float() - ref).abs().max() < 0.05


# --------------------------------------------------------------------------- rank interface
def _zeroed_model(order, seed=0):
    """Encoder layer + decoder cell with some components zeroed (lead or other member)."""
    torch.manual_seed(seed)
    model = torch.nn.ModuleDict({"enc": TTLSTM(3, 6, lags=2, order=order, rank=5),
                                 "dec": TTLSTMCell(3, 6, lags=2, order=order, rank=4)})
    with torch.no_grad():
        enc, dec = model["enc"].cell, model["dec"]
        enc.cores[0][:, :, [1, 3]] = 0            # bond1 lead slices
        dec.cores[1][2] = 0                       # bond1 other member
        if order == 3:
            enc.cores[1][:, :, 4] = 0             # bond2 lead
            dec.cores[2][0] = 0                   # bond2 other member
    return model


def _outputs(model, x):
    out, (hl, c) = model["enc"](x)
    h, (hl2, c2) = model["dec"](x[:, 0], (hl, c))
    return torch.cat([out.flatten(), hl.flatten(), c.flatten(), h.flatten(), c2.flatten()])


def test_rank_dims_are_the_inner_bonds():
    from tensornet.optim import rank_groups

    cell = TTLSTMCell(2, 4, lags=2, order=3, rank=[3, 5])
    dims = cell.rank_dims()
    assert [(d.name, d.size) for d in dims] == [("bond1", 3), ("bond2", 5)]
    assert dims[1].members == (("cores.1", 2, 1), ("cores.2", 0, 1))
    assert TTLSTMCell(2, 4, order=1).rank_dims() == ()
    model = torch.nn.Sequential(TTLSTM(2, 4, lags=2, order=2, rank=3))
    groups = rank_groups(model)
    assert [(g.layer, g.kind, g.rank, g.size, g.active) for g in groups] == \
        [("0", "TTLSTM", "bond1", 3, 3)]
    assert groups[0].members == (("0.cell.cores.0", 2, 1), ("0.cell.cores.1", 0, 1))
    norms = cell.rank_group_norms()
    assert [tuple(n.shape) for n in norms] == [(3,), (5,)]
    want = (cell.cores[0].detach()[:, :, 1] ** 2).sum() + (cell.cores[1].detach()[1] ** 2).sum()
    assert float(norms[0][1]) == pytest.approx(float(want.sqrt()), rel=1e-6)


@pytest.mark.parametrize("order", [2, 3])
def test_prune_ranks_keeps_outputs_and_state_dict_loads(order):
    from tensornet.optim import prune_ranks

    model = _zeroed_model(order)
    x = torch.randn(4, 7, 3)
    before = _outputs(model, x).detach()
    report = prune_ranks(model)
    want_enc = {"bond1": 3} if order == 2 else {"bond1": 3, "bond2": 4}
    want_dec = {"bond1": 3} if order == 2 else {"bond1": 3, "bond2": 3}
    assert report.ranks() == {"enc": want_enc, "dec": want_dec}
    assert report.params_after < report.params_before
    assert 0 < report.flops_after < report.flops_before
    assert isinstance(model["enc"], TTLSTM) and isinstance(model["dec"], TTLSTMCell)
    after = _outputs(model, x).detach()
    assert torch.allclose(after, before, atol=1e-6)
    fresh = torch.nn.ModuleDict({
        "enc": TTLSTM(3, 6, lags=2, order=order, rank=list(want_enc.values())),
        "dec": TTLSTMCell(3, 6, lags=2, order=order, rank=list(want_dec.values()))})
    fresh.load_state_dict(model.state_dict())
    assert torch.equal(_outputs(fresh, x).detach(), after)


def test_low_rank_init_and_rank_l1_groups():
    from tensornet.optim import LinBreg, RankL1, low_rank_init, rank_groups, rank_param_groups

    torch.manual_seed(1)
    model = torch.nn.ModuleDict({"enc": TTLSTM(2, 5, lags=2, order=3, rank=4),
                                 "head": torch.nn.Linear(5, 1)})
    low_rank_init(model, rank=1)
    assert [g.active for g in rank_groups(model)] == [1, 1]
    cores = model["enc"].cell.cores
    assert torch.count_nonzero(cores[0][:, :, 1:]) == 0
    assert torch.count_nonzero(cores[1][1:]) > 0          # partners stay: gradients flow
    groups = rank_param_groups(model, reg=RankL1(0.5))
    opt = LinBreg(groups, lr=0.05)
    x = torch.randn(8, 6, 2)
    for _ in range(3):
        loss = model["head"](model["enc"](x)[0]).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert [g.active for g in rank_groups(model)] == [1, 1]   # strong penalty keeps it sparse


def test_select_ranks_bad_keep():
    cell = TTLSTMCell(2, 4, lags=1, order=2, rank=3)
    with pytest.raises(ValueError, match="one entry per rank dimension"):
        cell.select_ranks([None, None])
    with pytest.raises(ValueError, match="at least one"):
        cell.select_ranks([[]])
    with pytest.raises(ValueError, match=r"indices in \[0, 3\)"):
        cell.select_ranks([[0, 3]])
    with pytest.raises(ValueError, match="length 3"):
        cell.select_ranks([torch.tensor([True, False])])
    with pytest.raises(TypeError, match="keep must be a sequence"):
        cell.select_ranks(3)
    new = cell.select_ranks([torch.tensor([True, False, True])])
    assert new.ranks == (1, 2, 16)
    assert torch.equal(new.cores[1], cell.cores[1][[0, 2]])
