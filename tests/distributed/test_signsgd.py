"""SignSGD / Signum in one process: the update, torch.optim conventions, errors."""

import io

import pytest
import torch

from tensornet.distributed import SignSGD, Signum, register_majority_vote


def _quadratic(seed=0):
    g = torch.Generator().manual_seed(seed)
    target = torch.randn(20, generator=g)
    w = torch.nn.Parameter(torch.zeros(20))
    return w, target


def test_signsgd_moves_every_coordinate_by_lr():
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5, 0.0]))
    opt = SignSGD([w], lr=0.1)
    w.grad = torch.tensor([3.0, -1e-8, 0.0, -5.0])
    opt.step()
    torch.testing.assert_close(w.detach(), torch.tensor([0.9, -1.9, 0.5, 0.1]))


def test_signum_momentum_and_weight_decay_by_hand():
    w = torch.nn.Parameter(torch.tensor([1.0, 1.0]))
    opt = Signum([w], lr=0.1, momentum=0.5, weight_decay=0.2)
    m = torch.zeros(2)
    p = w.detach().clone()
    for g in ([1.0, -1.0], [-3.0, 0.5], [-0.1, 0.2]):
        g = torch.tensor(g)
        w.grad = g
        opt.step()
        m = 0.5 * m + 0.5 * g
        p = p * (1 - 0.1 * 0.2) - 0.1 * torch.sign(m)
        torch.testing.assert_close(w.detach(), p)
    torch.testing.assert_close(opt.state[w]["momentum_buffer"], m)


@pytest.mark.parametrize("cls,kw", [(SignSGD, {}), (Signum, {"momentum": 0.9})])
def test_converges_on_a_quadratic(cls, kw):
    w, target = _quadratic()
    opt = cls([w], lr=0.01, **kw)
    for _ in range(400):
        opt.zero_grad()
        ((w - target) ** 2).sum().backward()
        opt.step()
    # sign methods end within a few lr of the optimum
    assert (w.detach() - target).abs().max() < 0.1


def test_state_dict_round_trip_with_weights_only():
    w, target = _quadratic()
    opt = Signum([w], lr=0.01, momentum=0.9)
    for _ in range(3):
        opt.zero_grad()
        ((w - target) ** 2).sum().backward()
        opt.step()
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    buf.seek(0)
    sd = torch.load(buf, weights_only=True)
    w2 = torch.nn.Parameter(w.detach().clone())
    opt2 = Signum([w2], lr=0.5, momentum=0.1)
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["lr"] == 0.01 and opt2.param_groups[0]["momentum"] == 0.9
    for o, p in ((opt, w), (opt2, w2)):
        o.zero_grad()
        ((p - target) ** 2).sum().backward()
        o.step()
    torch.testing.assert_close(w2, w)


def test_step_returns_closure_loss():
    w, target = _quadratic()
    opt = SignSGD([w], lr=0.01)

    def closure():
        opt.zero_grad()
        loss = ((w - target) ** 2).sum()
        loss.backward()
        return loss

    assert float(opt.step(closure).detach()) == pytest.approx(float((target ** 2).sum()))


@pytest.mark.parametrize("kw,exc,match", [
    ({"lr": 0.0}, ValueError, "lr must be > 0"),
    ({"lr": "a"}, TypeError, "lr must be a real number"),
    ({"lr": 0.1, "momentum": 1.0}, ValueError, "momentum must be < 1"),
    ({"lr": 0.1, "momentum": -0.1}, ValueError, "momentum must be >= 0"),
    ({"lr": 0.1, "weight_decay": float("nan")}, ValueError, "weight_decay must be finite"),
])
def test_bad_hyperparameters(kw, exc, match):
    w = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(exc, match=match):
        Signum([w], **kw)


def test_bad_param_group_is_rejected_and_not_kept():
    w, v = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    opt = Signum([w], lr=0.1)
    with pytest.raises(ValueError, match="lr must be > 0"):
        opt.add_param_group({"params": [v], "lr": -1.0})
    assert len(opt.param_groups) == 1


def test_register_majority_vote_checks_its_arguments():
    with pytest.raises(TypeError, match="DistributedDataParallel"):
        register_majority_vote(torch.nn.Linear(2, 2))
