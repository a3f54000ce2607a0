"""Robustness curves and adversarial training steps built on the attacks."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_float
from ._attacks import ATTACKS

__all__ = ["adversarial_training_step", "robustness_curve"]


def _resolve_attack(attack):
    if callable(attack):
        return attack
    if isinstance(attack, str) and attack in ATTACKS:
        return ATTACKS[attack]
    raise ValueError(f"attack must be one of {sorted(ATTACKS)} or a callable "
                     f"attack(model, x, y, eps, **kwargs); got {attack!r}")


class _eval_mode:
    """Put a module in eval mode and restore every submodule's own mode afterwards."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.modes = [(m, m.training) for m in self.model.modules()] \
            if isinstance(self.model, nn.Module) else []
        if isinstance(self.model, nn.Module):
            self.model.eval()

    def __exit__(self, *exc):
        for m, mode in self.modes:
            m.training = mode


def robustness_curve(model: nn.Module, loader: Iterable, attack="fgsm",
                     eps_grid: Sequence[float] = (0.0, 0.05, 0.1, 0.2), *, device=None,
                     **attack_kwargs) -> dict:
    """Accuracy of ``model`` under ``attack`` for every ``eps`` in ``eps_grid``.

    Parameters
    ----------
    model : nn.Module
        Classifier returning logits (evaluated in eval mode; its modes are
        restored afterwards).
    loader : iterable of (x, y)
        Batches, e.g. a ``DataLoader``.
    attack : {'fgsm', 'fgm', 'pgd'} or callable
    eps_grid : sequence of float >= 0
    device : torch.device, optional
        Where to move batches (default: the model's parameters' device).
    **attack_kwargs
        Passed to the attack (``clip``, ``norm``, ``steps`` ...).

    Returns
    -------
    dict
        ``{"eps": [...], "accuracy": [...], "n": number of examples}``.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from tensornet.robust import robustness_curve
    >>> model = nn.Sequential(nn.Linear(4, 3))
    >>> data = [(torch.rand(8, 4), torch.randint(0, 3, (8,)))]
    >>> curve = robustness_curve(model, data, "fgsm", [0.0, 0.1])
    >>> curve["eps"]
    [0.0, 0.1]
    """
    fn = _resolve_attack(attack)
    grid = [check_float(e, "eps_grid", min_value=0.0) for e in eps_grid]
    if not grid:
        raise ValueError("eps_grid must hold at least one value")
    if device is None and isinstance(model, nn.Module):
        p = next(model.parameters(), None)
        device = p.device if p is not None else None
    correct = [0] * len(grid)
    n = 0
    with _eval_mode(model):
        for batch in loader:
            try:
                x, y = batch[0], batch[1]
            except (TypeError, IndexError):
                raise TypeError("loader must yield (x, y) pairs") from None
            if device is not None:
                x, y = x.to(device), y.to(device)
            n += x.shape[0]
            for i, eps in enumerate(grid):
                x_adv = x if eps == 0 else fn(model, x, y, eps, **attack_kwargs)
                with torch.no_grad():
                    correct[i] += int((model(x_adv).argmax(-1) == y).sum())
    if n == 0:
        raise ValueError("loader yielded no examples")
    return {"eps": grid, "accuracy": [c / n for c in correct], "n": n}


def adversarial_training_step(model: nn.Module, optimizer: torch.optim.Optimizer,
                              x: torch.Tensor, y: torch.Tensor, *, attack="fgsm", eps: float = 0.1,
                              mix: float = 0.5, loss_fn: Callable | None = None,
                              **attack_kwargs) -> float:
    """One optimizer step on a batch where a fraction ``mix`` is replaced by adversarial examples.

    The adversarial examples are made against the current model (in eval
    mode, so batch-norm statistics are not updated by the attack), then the
    model is trained on the mixed batch with any optimizer — SGD, Adam,
    or tensornet's LinBreg / AdaBreg.

    Parameters
    ----------
    model, optimizer
    x, y : Tensor
        One batch.
    attack : {'fgsm', 'fgm', 'pgd'} or callable
    eps : float >= 0
    mix : float in [0, 1]
        Fraction of the batch replaced by its adversarial version
        (1 = purely adversarial training, 0 = ordinary training).
    loss_fn : callable, default mean cross-entropy

    Returns
    -------
    float
        The training loss on the mixed batch.
    """
    fn = _resolve_attack(attack)
    mix = check_float(mix, "mix", min_value=0.0, max_value=1.0)
    eps = check_float(eps, "eps", min_value=0.0)
    loss_fn = loss_fn or F.cross_entropy
    k = round(mix * x.shape[0])
    if k > 0 and eps > 0:
        with _eval_mode(model):
            adv = fn(model, x[:k], y[:k], eps, **attack_kwargs)
        x = torch.cat([adv, x[k:]])
    model.train()
    optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    return float(loss.detach())
