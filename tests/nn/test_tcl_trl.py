import numpy as np
import pytest
import torch
from torch import nn

from tensornet.nn import TCL, TRL

from ._layer_helpers import (candidate_programs, gradcheck_layer, rel_err, run_with,
                             state_dict_round_trip)

F64 = torch.float64
TRL_CASES = [("tucker", (2, 3, 2, 4)), ("cp", 5), ("tt", (2, 3, 2))]


def test_tcl_matches_mode_products_and_dense():
    torch.manual_seed(0)
    tcl = TCL((4, 6, 3), (2, 3, 2), bias=True, dtype=F64)
    x = torch.randn(5, 4, 6, 3, dtype=F64)
    U = [f.detach() for f in tcl.factors]
    ref = torch.einsum("bijk,ri,sj,tk->brst", x, *U) + tcl.bias
    for prog in candidate_programs(tcl, x.shape) + candidate_programs(tcl, x.shape, True):
        torch.testing.assert_close(run_with(tcl, x, prog), ref)
    torch.testing.assert_close(tcl.to_dense()(x), ref)
    assert tcl(x[None]).shape == (1, 5, 2, 3, 2)  # extra leading dimensions
    assert gradcheck_layer(tcl, x[:2])


def test_tcl_from_dense_nearest_kronecker_and_init():
    torch.manual_seed(0)
    tcl = TCL((4, 6), (2, 3), bias=True, dtype=F64)
    lin = tcl.to_dense()[1]
    same = TCL.from_dense(lin, (4, 6), (2, 3))
    assert same.approximation_error < 1e-6
    x = torch.randn(3, 4, 6, dtype=F64)
    torch.testing.assert_close(same(x), tcl(x))
    noisy = nn.Linear(24, 6, dtype=F64)
    approx = TCL.from_dense(noisy, (4, 6), (2, 3))
    assert 0 < approx.approximation_error < 1
    var = np.mean([TCL((8, 8), (4, 4)).dense_weight().var().item() for _ in range(100)])
    assert var == pytest.approx(1 / (3 * 64), rel=0.2)
    assert TCL((4, 6), (2, 3)).rank_dims() == ()
    with pytest.raises(ValueError, match="one output size per input mode"):
        TCL((4, 6), (2, 3, 1))
    with pytest.raises(ValueError, match="input must have shape"):
        tcl(torch.randn(3, 6, 4, dtype=F64))
    with pytest.raises(ValueError, match="out_features=6"):
        TCL.from_dense(noisy, (4, 6), (2, 2))


@pytest.mark.parametrize("fac,rank", TRL_CASES)
def test_trl_paths_dense_and_gradients(fac, rank):
    torch.manual_seed(0)
    trl = TRL((4, 6, 3), 7, rank, fac, dtype=F64)
    x = torch.randn(5, 4, 6, 3, dtype=F64)
    W = trl.weight_tensor().detach()
    ref = torch.einsum("bijk,ijko->bo", x, W) + trl.bias
    for prog in candidate_programs(trl, x.shape) + candidate_programs(trl, x.shape, True):
        torch.testing.assert_close(run_with(trl, x, prog), ref)
    torch.testing.assert_close(trl.to_dense()(x), ref)
    assert gradcheck_layer(trl, x[:2])


@pytest.mark.parametrize("fac,rank", TRL_CASES)
def test_trl_from_dense_exact_and_rank_groups(fac, rank):
    torch.manual_seed(0)
    src = TRL((4, 6, 3), 7, rank, fac, dtype=F64)
    lin = src.to_dense()[1]
    trl = TRL.from_dense(lin, (4, 6, 3), src.rank if fac != "cp" else src.rank[0], fac)
    assert trl.approximation_error < 1e-5
    x = torch.randn(3, 4, 6, 3, dtype=F64)
    assert rel_err(trl(x), src(x)) < 1e-5
    keep = [list(range(max(1, d.size - 1))) for d in trl.rank_dims()]
    small = trl.select_ranks(keep)
    fresh = TRL((4, 6, 3), 7, small.rank, fac, dtype=F64)
    state_dict_round_trip(small, fresh)
    torch.testing.assert_close(fresh(x), small(x))


@pytest.mark.parametrize("fac,rank", [("tucker", 3), ("cp", 8), ("tt", 4)])
def test_trl_init_variance(fac, rank):
    torch.manual_seed(0)
    var = np.mean([TRL((8, 4, 4), 10, rank, fac).dense_weight().var().item()
                   for _ in range(60)])
    assert var == pytest.approx(1 / (3 * 128), rel=0.25)


def test_trl_head_is_smaller_and_bad_input():
    trl = TRL((32, 4, 4), 10, 0.1, "tucker")
    assert trl.n_params < 0.1 * 512 * 10 + 10 + 1
    assert "factorization='tucker'" in repr(trl)
    with pytest.raises(ValueError, match="factorization"):
        TRL((4, 4), 3, 2, "svd")
    with pytest.raises(ValueError, match="input_shape must multiply"):
        TRL.from_dense(nn.Linear(10, 3), (4, 4), 2)
    with pytest.raises(ValueError, match="rank"):
        TRL((4, 4), 3, 0, "cp")
    with pytest.raises(ValueError, match="input must have shape"):
        trl(torch.randn(2, 32, 4, 5))
