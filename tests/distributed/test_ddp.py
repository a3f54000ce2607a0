"""Two gloo ranks on the CPU against single-process references.

* tensorized layers with LinBreg / AdaBreg under DDP give the parameters of
  one process on the global batch;
* rank pruning cuts the same components on every rank (even after the
  replicas drifted) and training goes on identically;
* the majority vote (function and DDP hook, with Signum and with SGD)
  equals a hand-computed vote, and its traffic is 1 bit per coordinate.
"""

import pytest
import torch

from . import _workers as W
from ._launch import run_ranks

WORLD = 2


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    run_ranks(W.scenario_all, str(out), world_size=WORLD, timeout=300)
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]


def _assert_states_close(got, want, atol, rtol=1e-5):
    assert got.keys() == want.keys()
    for k in want:
        torch.testing.assert_close(got[k], want[k], atol=atol, rtol=rtol, msg=k)


def test_tensorized_bregman_ddp_equals_single_process(ranks):
    ref = W.reference_equivalence()
    for r in ranks:
        _assert_states_close(r["linbreg"], ref["linbreg"], atol=1e-5)
        _assert_states_close(r["adabreg_conv"], ref["adabreg_conv"], atol=1e-5)
    # DDP keeps the replicas bitwise identical
    assert ranks[0]["deviation_linbreg"] == 0.0
    for k in ranks[0]["linbreg"]:
        assert torch.equal(ranks[0]["linbreg"][k], ranks[1]["linbreg"][k]), k


def test_pruning_is_identical_on_every_rank(ranks):
    ref = W.reference_pruning()
    before = {"0": {"cp": 6}, "2": {"out0": 2, "out1": 3, "in0": 3, "in1": 2},
              "4": {"bond1": 4}}
    # something was really cut (the sparse start keeps most components at zero)
    cut = sum(before[l][d] - ref["ranks"][l][d] for l in before for d in before[l])
    assert cut > 0
    for r in ranks:
        # rank 1 zeroed one extra CP component before pruning; rank 0's weights decided
        assert r["ranks"] == ref["ranks"]
        _assert_states_close(r["after"], ref["after"], atol=1e-5)
    assert ranks[0]["deviation_after"] == 0.0
    assert ranks[0]["deviation_perturbed"] == pytest.approx(0.25)
    assert ranks[1]["deviation_perturbed"] == pytest.approx(0.25)


def test_majority_vote_function_matches_hand_computed(ranks):
    inputs = [r["vote_input"] for r in ranks]
    want = W.reference_vote(inputs)
    # zeros on both ranks tie at 0; a zero against a sign follows the sign of the odd rank rule
    assert want[2] == 0 and want[5] == 0
    for r in ranks:
        assert torch.equal(r["vote"], want)
    assert set(want.tolist()) <= {-1.0, 0.0, 1.0}


@pytest.mark.parametrize("name,momentum", [("signum", 0.9), ("sgd_hook", 0.0)])
def test_majority_vote_hook_matches_simulation(ranks, name, momentum):
    ref = W.reference_signum(WORLD, momentum=momentum, lr=0.01)
    for r in ranks:
        _assert_states_close(r[name], ref, atol=1e-6)
        assert r[name + "_deviation"] == 0.0
    # every coordinate moved by 0 or lr at every step: the parameters stay on the lr grid
    init = W.state(W.plain_mlp())
    for k in ref:
        steps = (ranks[0][name][k] - init[k]) / 0.01
        torch.testing.assert_close(steps, steps.round(), atol=1e-3, rtol=0)


def test_hook_traffic_is_one_bit_per_coordinate(ranks):
    n = sum(p.numel() for p in W.plain_mlp().parameters())
    t = ranks[0]["signum_traffic"]
    assert t["world_size"] == WORLD
    assert t["coordinates"] == n
    # one byte per 8 coordinates of each bucket (a partial byte per bucket at most)
    assert n / 8 <= t["payload_bytes"] < n / 8 + 16
    assert t["allreduce_fp32_sent_bytes"] == 4 * n            # ring all-reduce, 2 ranks
    assert t["ratio"] >= 16


def test_three_ranks_vote_by_real_majority(tmp_path):
    # with 2 ranks the vote is unanimity-or-zero; 3 gloo ranks exercise a 2-1 majority,
    # the 3-block all-gather and the SignSGD optimizer behind the hook
    run_ranks(W.scenario_vote3, str(tmp_path), world_size=3, timeout=300)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(3)]
    inputs = [r["vote_input"] for r in ranks]
    want = W.reference_vote(inputs)
    assert (want != 0).all()                                   # odd world: no ties
    assert want[3] == 1                                        # zeros sent as +1, -1, +1
    sent = torch.stack([W._signs_sent(x, w) for w, x in enumerate(inputs)])
    assert (sent.sum(0).abs() == 1).any()                      # some coordinates are 2-1 votes
    n = sum(p.numel() for p in W.plain_mlp().parameters())
    for name, momentum in (("signsgd", 0.0), ("signum", 0.9)):
        ref = W.reference_signum(3, momentum=momentum, lr=0.01)
        for r in ranks:
            assert torch.equal(r["vote"], want)
            _assert_states_close(r[name], ref, atol=1e-6)
            assert r[name + "_deviation"] == 0.0
        t = ranks[0][name + "_traffic"]
        assert t["world_size"] == 3 and t["coordinates"] == n
        assert t["sent_bytes"] == 2 * round(t["payload_bytes"])   # ring all-gather: (M-1) blocks
        assert t["ratio"] == pytest.approx(64 / 3, rel=0.01)       # 21x less than fp32 at M = 3
