"""rank_groups, rank_param_groups, low_rank_init and prune_ranks on every tensorized layer."""

import math

import pytest
import torch
from torch import nn

from tensornet.nn import (
    CPConv2d,
    CPLinear,
    TTConv2d,
    TTLinear,
    TuckerConv2d,
    TuckerLinear,
)
from tensornet.optim import (
    LinBreg,
    RankL1,
    low_rank_init,
    prune_ranks,
    rank_groups,
    rank_param_groups,
)
from tensornet.optim._ranks import effective_params, tensorized_layers

# (name, builder(rank) -> layer, rank at build, input shape)
LAYERS = [
    ("cp", lambda r: CPLinear(24, 12, rank=r, in_shape=(2, 3, 4), out_shape=(3, 4)), 6,
     (5, 24)),
    ("tucker", lambda r: TuckerLinear(24, 12, rank=r, in_shape=(4, 6), out_shape=(3, 4)),
     (3, 4, 4, 5), (5, 24)),
    ("tt", lambda r: TTLinear(24, 12, rank=r, in_shape=(2, 3, 4), out_shape=(3, 2, 2)),
     (1, 4, 5, 1), (5, 24)),
    ("cpconv", lambda r: CPConv2d(4, 6, 3, rank=r, padding=1, groups=2), 8, (2, 4, 5, 5)),
    ("tuckerconv", lambda r: TuckerConv2d(4, 6, 3, rank=r, padding=1, groups=2), (6, 4),
     (2, 4, 5, 5)),
    ("ttconv", lambda r: TTConv2d(4, 6, 3, rank=r, padding=1), (1, 3, 4, 3, 1), (2, 4, 5, 5)),
]


def _model(build, rank, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(build(rank), nn.Tanh()).double()


def _zero_components(layer, seed):
    """Zero a few components, each on a randomly chosen member; returns kept counts per dim."""
    g = torch.Generator().manual_seed(seed)
    params = dict(layer.named_parameters())
    kept = []
    with torch.no_grad():
        for rd in layer.rank_dims():
            n_zero = max(1, rd.size // 2)
            comps = torch.randperm(rd.size, generator=g)[:n_zero].tolist()
            for r in comps:
                name, dim, blocks = rd.members[int(torch.randint(len(rd.members), (1,),
                                                                 generator=g))]
                p = params[name]
                idx = [b * rd.size + r for b in range(blocks)]
                p.index_fill_(dim, torch.tensor(idx), 0.0)
            kept.append(rd.size - n_zero)
    return kept


@pytest.mark.parametrize("name,build,rank,shape", LAYERS, ids=[l[0] for l in LAYERS])
def test_prune_keeps_outputs_and_state_dict_loads(name, build, rank, shape):
    model = _model(build, rank)
    kept = _zero_components(model[0], seed=3)
    x = torch.randn(shape, dtype=torch.float64)
    with torch.no_grad():
        before = model(x)
    groups = rank_groups(model)
    assert [g.active for g in groups] == kept
    report = prune_ranks(model, example_input=x)
    with torch.no_grad():
        after = model(x)
    torch.testing.assert_close(after, before, atol=1e-6, rtol=0)
    lp = report.layers[0]
    assert list(lp.ranks_after.values()) == kept
    assert [g.size for g in rank_groups(model)] == kept
    assert lp.params_after < lp.params_before
    assert lp.params_after == sum(p.numel() for p in model[0].parameters())
    assert report.params_after == sum(p.numel() for p in model.parameters())
    assert 0 < lp.flops_after < lp.flops_before
    # a freshly built model of the pruned ranks loads the pruned state dict
    fresh = _model(build, model[0].rank, seed=9)
    fresh.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), before, atol=1e-6, rtol=0)


def test_prune_report_and_untouched_layers():
    torch.manual_seed(0)
    model = nn.Sequential(TTLinear(16, 16, rank=3, in_shape=(4, 4), out_shape=(4, 4)),
                          nn.ReLU(), TTLinear(16, 8, rank=2, in_shape=(4, 4), out_shape=(2, 4)),
                          nn.Linear(8, 2))
    with torch.no_grad():
        model[0].cores[0][..., 1] = 0
    first, second = model[0], model[2]
    report = prune_ranks(model)
    assert report.ranks() == {"0": {"bond1": 2}, "2": {"bond1": 2}}
    assert model[0] is not first and model[2] is second        # nothing to cut: kept as is
    assert report.params_before - report.params_after == 4 * 4 + 4 * 4
    md = report.to_markdown()
    assert "bond1=3" in md and "bond1=2" in md and "**total**" in md


def test_prune_keeps_one_component_when_all_are_zero():
    torch.manual_seed(0)
    model = nn.Sequential(CPLinear(16, 8, rank=4, in_shape=(4, 4), out_shape=(8,)))
    with torch.no_grad():
        model[0].factors[0].zero_()
    x = torch.randn(3, 16)
    before = model(x)
    prune_ranks(model)
    assert model[0].rank == (1,)
    torch.testing.assert_close(model(x), before)


def test_prune_a_bare_layer_returns_the_new_layer():
    torch.manual_seed(0)
    layer = TTLinear(16, 16, rank=4, in_shape=(4, 4), out_shape=(4, 4))
    with torch.no_grad():
        layer.cores[1][2:] = 0
    report = prune_ranks(layer)
    assert report.model is not layer and report.model.rank == (1, 2, 1)


def test_prune_with_tolerance_cuts_small_components():
    torch.manual_seed(0)
    model = nn.Sequential(CPLinear(16, 8, rank=4, in_shape=(4, 4), out_shape=(8,)))
    with torch.no_grad():
        model[0].factors[0][:, 3] *= 1e-9
    assert prune_ranks(model).ranks() == {"0": {"cp": 4}}
    assert prune_ranks(model, tol=1e-6).ranks() == {"0": {"cp": 3}}
    with pytest.raises(ValueError, match="tol must be a number in"):
        prune_ranks(model, tol=-1)


@pytest.mark.parametrize("name,build,rank,shape", LAYERS, ids=[l[0] for l in LAYERS])
def test_low_rank_init_zeroes_lead_slices_and_staggers_the_rest(name, build, rank, shape):
    model = _model(build, rank)
    layer = model[0]
    low_rank_init(model, rank=1, decay=0.5)
    params = dict(layer.named_parameters())
    for rd in layer.rank_dims():
        lead, dim, blocks = rd.members[0]
        for r in range(rd.size):
            idx = torch.tensor([b * rd.size + r for b in range(blocks)])
            sl = params[lead].index_select(dim, idx)
            if r == 0:
                assert torch.linalg.vector_norm(sl) > 0
            else:
                assert sl.abs().sum() == 0
        for name_, dim_, blocks_ in rd.members[1:]:        # partners stay non-zero
            assert bool((torch.linalg.vector_norm(params[name_].detach().movedim(dim_, 0)
                                                  .reshape(blocks_ * rd.size, -1), dim=1)
                         > 0).all())
    assert [g.active for g in rank_groups(model)] == [1] * len(layer.rank_dims())


def test_low_rank_init_rescale_and_decay_exactly():
    torch.manual_seed(0)
    layer = TTLinear(16, 16, rank=4, in_shape=(4, 4), out_shape=(4, 4))   # one bond
    c0, c1 = (c.detach().clone() for c in layer.cores)
    low_rank_init(layer, rank=2, decay=0.5)
    torch.testing.assert_close(layer.cores[0][..., :2], c0[..., :2] * math.sqrt(2))
    assert layer.cores[0][..., 2:].abs().sum() == 0
    torch.testing.assert_close(layer.cores[1][:2], c1[:2])
    torch.testing.assert_close(layer.cores[1][2], c1[2] * 0.5)
    torch.testing.assert_close(layer.cores[1][3], c1[3] * 0.25)


def test_low_rank_init_keeps_output_scale():
    torch.manual_seed(0)
    layer = TTLinear(256, 256, rank=8, in_shape=(4, 8, 8), out_shape=(4, 8, 8), bias=False)
    x = torch.randn(512, 256)
    with torch.no_grad():
        full = layer(x).std()
        low_rank_init(layer, rank=1)
        low = layer(x).std()
    assert 0.4 < float(low / full) < 2.5


def test_low_rank_init_errors():
    with pytest.raises(ValueError, match="rank must be an int >= 1"):
        low_rank_init(nn.Sequential(TTLinear(16, 16, rank=2)), rank=0)
    with pytest.raises(ValueError, match="decay must be a number in"):
        low_rank_init(nn.Sequential(TTLinear(16, 16, rank=2)), decay=0.0)
    with pytest.raises(ValueError, match="no tensorized layer"):
        low_rank_init(nn.Linear(3, 3))


def test_rank_groups_lists_every_layer():
    torch.manual_seed(0)
    model = nn.Sequential(CPLinear(16, 16, rank=3), TuckerLinear(16, 16, rank=2),
                          nn.Sequential(TTLinear(16, 16, rank=2)))
    groups = rank_groups(model)
    assert [(g.layer, g.kind, g.rank) for g in groups][:2] == [("0", "CPLinear", "cp"),
                                                               ("1", "TuckerLinear", "out0")]
    assert groups[-1].layer == "2.0" and groups[-1].kind == "TTLinear"
    assert groups[0].members[0] == ("0.factors.0", 1, 1)
    assert len(groups[0].norms) == 3 and all(n > 0 for n in groups[0].lead_norms)
    expected = [n.tolist() for layer in (model[0], model[1], model[2][0])
                for n in layer.rank_group_norms()]          # the layers' own computation
    assert len(expected) == len(groups)
    for e, g in zip(expected, groups):
        assert g.norms == pytest.approx(e, rel=1e-6)
    assert [name for name, _ in tensorized_layers(model)] == ["0", "1", "2.0"]


def test_rank_param_groups_and_effective_params():
    torch.manual_seed(0)
    model = nn.Sequential(TTLinear(16, 16, rank=4, in_shape=(4, 4), out_shape=(4, 4)),
                          nn.Linear(16, 2))
    groups = rank_param_groups(model, reg=RankL1(0.1), lr=0.3)
    assert len(groups) == 2 and groups[1]["reg"] is None and groups[0]["lr"] == 0.3
    assert groups[0]["rank_dims"] == [["bond1", 4, [[1, 3, 1], [2, 0, 1]]]]
    with torch.no_grad():
        model[0].cores[0][..., 1:] = 0
    kept, total = effective_params(groups[0])
    assert total == 16 + 16 * 4 * 2
    assert kept == 16 + 16 * 1 * 2
    assert kept == sum(p.numel() for p in prune_ranks(model).model[0].parameters())


def test_rank_param_groups_errors():
    with pytest.raises(ValueError, match="no tensorized layer"):
        rank_param_groups(nn.Linear(2, 2), reg=RankL1(0.1))
    with pytest.raises(TypeError, match="reg must be a tensornet.optim regularizer"):
        rank_param_groups(nn.Sequential(TTLinear(16, 16, rank=2)), reg=0.1)


def test_stale_param_groups_after_pruning_are_detected():
    torch.manual_seed(0)
    model = nn.Sequential(TTLinear(16, 16, rank=4, in_shape=(4, 4), out_shape=(4, 4)))
    groups = rank_param_groups(model, reg=RankL1(0.1))
    with torch.no_grad():
        model[0].cores[0][..., 2:] = 0
    prune_ranks(model)
    groups[0]["params"] = list(model[0].parameters())     # metadata still says rank 4
    with pytest.raises(ValueError, match="was the model pruned after"):
        LinBreg(groups, lr=0.1)


def test_rank_l1_weights_are_the_whole_components_size():
    torch.manual_seed(0)
    layer = TTLinear(64, 64, rank=(8, 12), in_shape=(4, 4, 4), out_shape=(4, 4, 4))
    model = nn.Sequential(layer)
    opt = LinBreg(rank_param_groups(model, reg=RankL1(0.1)), lr=0.1)
    lay = opt.param_groups[0]["reg"]["layout"]
    names = opt.param_groups[0]["param_names"]
    c0, c1 = names.index("0.cores.0"), names.index("0.cores.1")
    # bond 1: cores.0[..., r] (16 entries) + cores.1[r] (16 * 12); bond 2: 8 * 16 + 16
    assert lay[c0][:3] == ["group", [3], 1] and lay[c0][3] == pytest.approx(math.sqrt(208))
    assert lay[c1][:3] == ["group", [3], 1] and lay[c1][3] == pytest.approx(math.sqrt(144))
    lead = LinBreg(rank_param_groups(model, reg=RankL1(0.1, weight="lead")), lr=0.1)
    assert lead.param_groups[0]["reg"]["layout"][c0] == ["group", [3], 1]
    assert lead.param_groups[0]["reg"]["weight"] == "lead"
    with pytest.raises(ValueError, match="weight must be 'component' or 'lead'"):
        RankL1(0.1, weight="all")
