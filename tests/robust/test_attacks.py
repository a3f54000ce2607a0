import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tensornet.datasets import load_digits_tensor
from tensornet.robust import adversarial_training_step, fgm, fgsm, pgd, robustness_curve


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def trained():
    """A small MLP trained on the 8x8 digits (pixels in [0, 1])."""
    images, labels = load_digits_tensor()
    x = torch.as_tensor(images, dtype=torch.float32).reshape(-1, 64)
    y = torch.as_tensor(labels)
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        opt.zero_grad()
        F.cross_entropy(model(x[:1500]), y[:1500]).backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    model.eval()
    return model, x[1500:], y[1500:]


def _loss(model, x, y):
    with torch.no_grad():
        return float(F.cross_entropy(model(x), y))


def test_model_is_accurate(trained):
    model, x, y = trained
    with torch.no_grad():
        assert (model(x).argmax(1) == y).float().mean() > 0.85


def test_fgsm_norm_and_loss(trained):
    model, x, y = trained
    eps = 0.05
    adv = fgsm(model, x, y, eps, clip=None)
    delta = (adv - x).reshape(len(x), -1)
    assert torch.allclose(delta.abs().amax(1), torch.full((len(x),), eps), atol=1e-6)
    assert _loss(model, adv, y) > _loss(model, x, y) + 0.05
    for p in model.parameters():
        assert p.grad is None


def test_fgm_norm_and_loss(trained):
    model, x, y = trained
    eps = 0.5
    adv = fgm(model, x, y, eps, clip=None)
    norms = torch.linalg.vector_norm((adv - x).reshape(len(x), -1), dim=1)
    assert torch.allclose(norms, torch.full_like(norms, eps), atol=1e-5)
    assert _loss(model, adv, y) > _loss(model, x, y) + 0.05


@pytest.mark.parametrize("norm,eps", [("inf", 0.05), ("2", 0.5)])
def test_pgd_stays_in_ball_and_clip(trained, norm, eps):
    model, x, y = trained
    g = torch.Generator().manual_seed(1)
    adv = pgd(model, x, y, eps, norm=norm, steps=10, generator=g)
    d = (adv - x).reshape(len(x), -1)
    size = d.abs().amax(1) if norm == "inf" else torch.linalg.vector_norm(d, dim=1)
    assert (size <= eps + 1e-5).all()
    assert adv.min() >= 0 and adv.max() <= 1
    one_step = fgsm(model, x, y, eps) if norm == "inf" else fgm(model, x, y, eps)
    assert _loss(model, adv, y) >= _loss(model, one_step, y) - 1e-3
    again = pgd(model, x, y, eps, norm=norm, steps=10, generator=torch.Generator().manual_seed(1))
    assert torch.equal(adv, again)


def test_clipping_respected(trained):
    model, x, y = trained
    for attack in (fgsm, fgm):
        adv = attack(model, x, y, 2.0, clip=(0.0, 1.0))
        assert adv.min() >= 0 and adv.max() <= 1


def test_robustness_curve_and_modes(trained):
    model, x, y = trained
    model.train()
    loader = [(x[:150], y[:150]), (x[150:], y[150:])]
    curve = robustness_curve(model, loader, "pgd", [0.0, 0.1, 0.3], steps=5)
    assert model.training  # mode restored
    model.eval()
    with torch.no_grad():
        clean = float((model(x).argmax(1) == y).float().mean())
    assert curve["n"] == len(x)
    assert curve["accuracy"][0] == pytest.approx(clean)
    assert curve["accuracy"][2] < curve["accuracy"][1] < clean


def test_adversarial_training_step():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(16, 4, generator=g), torch.randint(0, 3, (16,), generator=g)
    before = [p.detach().clone() for p in model.parameters()]
    loss = adversarial_training_step(model, opt, x, y, attack="fgsm", eps=0.1, mix=0.5)
    assert loss > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert model.training


@pytest.mark.parametrize("optimizer", ["LinBreg", "AdaBreg"])
def test_adversarial_training_with_bregman_optimizers(optimizer):
    """FGSM / PGD adversarial training steps drive LinBreg / AdaBreg + RankL1 like any optimizer:
    the model learns, becomes more robust than its clean-trained twin, and keeps sparse ranks."""
    from tensornet.nn import TTLinear
    from tensornet.optim import (
        AdaBreg,
        LinBreg,
        RankL1,
        low_rank_init,
        rank_groups,
        rank_param_groups,
    )

    images, labels = load_digits_tensor()
    x = torch.as_tensor(images, dtype=torch.float32).reshape(-1, 64)
    y = torch.as_tensor(labels)

    def train(adversarial):
        with torch.random.fork_rng():
            torch.manual_seed(0)
            model = nn.Sequential(TTLinear(64, 64, rank=6), nn.ReLU(), nn.Linear(64, 10))
        low_rank_init(model, rank=1)
        groups = rank_param_groups(model, reg=RankL1(0.01 if optimizer == "LinBreg" else 0.2))
        opt = (LinBreg(groups, lr=0.5, momentum=0.9) if optimizer == "LinBreg"
               else AdaBreg(groups, lr=1e-2))
        g = torch.Generator().manual_seed(1)
        for _ in range(250):
            idx = torch.randint(0, 1500, (64,), generator=g)
            if adversarial:
                adversarial_training_step(model, opt, x[idx], y[idx], attack="fgsm", eps=0.1,
                                          mix=0.5)
            else:
                adversarial_training_step(model, opt, x[idx], y[idx], eps=0.0)
        model.eval()
        return model

    plain, robust = train(False), train(True)
    xt, yt = x[1500:], y[1500:]
    for model in (plain, robust):
        with torch.no_grad():
            assert (model(xt).argmax(1) == yt).float().mean() > 0.85
        groups = rank_groups(model)
        assert any(grp.active < grp.size for grp in groups)      # ranks stayed sparse
        assert any(grp.active > 1 for grp in groups)             # ... and grew from 1
    curves = [robustness_curve(m, [(xt, yt)], "fgsm", [0.1])["accuracy"][0]
              for m in (plain, robust)]
    assert curves[1] > curves[0] + 0.1

def test_bad_input(trained):
    model, x, y = trained
    with pytest.raises(ValueError, match="eps must be >= 0"):
        fgsm(model, x, y, -0.1)
    with pytest.raises(ValueError, match="norm must be one of"):
        pgd(model, x, y, 0.1, norm="1")
    with pytest.raises(ValueError, match="y must be"):
        fgm(model, x, y[:3], 0.1)
    with pytest.raises(TypeError, match="x must be a floating-point"):
        fgsm(model, x.long(), y, 0.1)
    with pytest.raises(ValueError, match="clip must be"):
        fgsm(model, x, y, 0.1, clip=(1, 0))
    with pytest.raises(ValueError, match="attack must be one of"):
        robustness_curve(model, [(x, y)], "deepfool", [0.1])
    with pytest.raises(ValueError, match="NaN"):
        fgsm(model, x * float("nan"), y, 0.1)
    with pytest.raises(ValueError, match="mix must be"):
        adversarial_training_step(model, torch.optim.SGD(model.parameters(), lr=0.1), x, y,
                                  mix=1.5)
