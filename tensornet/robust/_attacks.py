"""Gradient-based adversarial attacks: FGSM, FGM and PGD.

All attacks take any ``nn.Module`` classifier returning logits, work on a
batch at once on the model's device, never touch the model's parameters or
their ``.grad``, and leave the model's train/eval mode as they found it.
Perturbations are per example: ``eps`` bounds each example's perturbation
in the chosen norm (the whole input of one example, flattened).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_float, check_int, check_option

__all__ = ["ATTACKS", "fgm", "fgsm", "pgd"]

NORMS = ("inf", "2")


def _check_common(model, x, y, eps, clip):
    if not isinstance(model, nn.Module) and not callable(model):
        raise TypeError(f"model must be an nn.Module (or a callable returning logits); got "
                        f"{type(model).__name__}")
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point torch.Tensor; got "
                        f"{type(x).__name__}{'' if not isinstance(x, torch.Tensor) else ' of ' + str(x.dtype)}")
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty batch (first dimension = examples); got shape "
                         f"{tuple(x.shape)}")
    if not isinstance(y, torch.Tensor) or y.shape[:1] != x.shape[:1]:
        raise ValueError("y must be a tensor of labels with one entry per example of x; got "
                         f"{type(y).__name__} of shape {tuple(getattr(y, 'shape', ()))} for x of "
                         f"shape {tuple(x.shape)}")
    eps = check_float(eps, "eps", min_value=0.0)
    if clip is not None:
        try:
            lo, hi = clip
        except (TypeError, ValueError):
            raise TypeError(f"clip must be None or a (low, high) pair; got {clip!r}") from None
        if not (isinstance(lo, numbers.Real) and isinstance(hi, numbers.Real)) or lo >= hi:
            raise ValueError(f"clip must be a (low, high) pair of numbers with low < high; got {clip!r}")
    if not torch.isfinite(x).all():
        raise ValueError("x contains NaN or infinite values")
    return eps


def _input_grad(model, x, y, loss_fn):
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = loss_fn(model(x), y)
        (grad,) = torch.autograd.grad(loss, x)
    return grad


def _per_example_norm(t: torch.Tensor) -> torch.Tensor:
    """L2 norm of each example, shaped to broadcast against ``t``."""
    n = torch.linalg.vector_norm(t.reshape(t.shape[0], -1), dim=1)
    return n.reshape((-1,) + (1,) * (t.ndim - 1))


def _default_loss(logits, y):
    # summed so that each example's gradient does not depend on the batch size
    return F.cross_entropy(logits, y, reduction="sum")


def _clip(x, clip):
    return x if clip is None else x.clamp(clip[0], clip[1])


def fgsm(model: Callable, x: torch.Tensor, y: torch.Tensor, eps: float, *,
         clip: tuple[float, float] | None = (0.0, 1.0), loss_fn: Callable | None = None) -> torch.Tensor:
    """Fast gradient sign method: ``x + eps * sign(grad_x loss)`` (an ℓ∞ step).

    Parameters
    ----------
    model : nn.Module
        Classifier returning logits.
    x : Tensor of shape (B, ...)
        Inputs.
    y : Tensor of shape (B,)
        True labels.
    eps : float >= 0
        ℓ∞ size of the step.
    clip : (low, high) or None, default (0, 1)
        Valid input range; the result is clamped to it (which can only
        shrink the perturbation).
    loss_fn : callable, default summed cross-entropy

    Returns
    -------
    Tensor
        Adversarial inputs, detached, same shape/dtype/device as ``x``.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from tensornet.robust import fgsm
    >>> model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    >>> x, y = torch.rand(5, 4), torch.tensor([0, 1, 2, 0, 1])
    >>> x_adv = fgsm(model, x, y, eps=0.1, clip=None)
    >>> float((x_adv - x).abs().max())  # doctest: +ELLIPSIS
    0.1000...
    """
    eps = _check_common(model, x, y, eps, clip)
    grad = _input_grad(model, x, y, loss_fn or _default_loss)
    return _clip(x.detach() + eps * grad.sign(), clip).detach()


def fgm(model: Callable, x: torch.Tensor, y: torch.Tensor, eps: float, *,
        clip: tuple[float, float] | None = (0.0, 1.0), loss_fn: Callable | None = None) -> torch.Tensor:
    """Fast gradient method: ``x + eps * g / ||g||_2`` per example (an ℓ2 step).

    Examples whose gradient is exactly zero are left unchanged. Parameters
    as in :func:`fgsm`, with ``eps`` the ℓ2 size of each example's step.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from tensornet.robust import fgm
    >>> model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    >>> x, y = torch.rand(5, 4), torch.tensor([0, 1, 2, 0, 1])
    >>> x_adv = fgm(model, x, y, eps=0.1, clip=None)
    >>> torch.linalg.vector_norm(x_adv - x, dim=1)  # doctest: +ELLIPSIS
    tensor([0.1000, 0.1000, 0.1000, 0.1000, 0.1000]...)
    """
    eps = _check_common(model, x, y, eps, clip)
    grad = _input_grad(model, x, y, loss_fn or _default_loss)
    norm = _per_example_norm(grad)
    step = torch.where(norm > 0, grad / norm.clamp_min(torch.finfo(grad.dtype).tiny), 0.0)
    return _clip(x.detach() + eps * step, clip).detach()


def _project(delta, eps, norm):
    if norm == "inf":
        return delta.clamp(-eps, eps)
    n = _per_example_norm(delta)
    factor = torch.where(n > eps, eps / n.clamp_min(torch.finfo(delta.dtype).tiny), 1.0)
    return delta * factor


def pgd(model: Callable, x: torch.Tensor, y: torch.Tensor, eps: float, *, norm: str = "inf",
        steps: int = 10, step_size: float | None = None, random_start: bool = True,
        clip: tuple[float, float] | None = (0.0, 1.0), loss_fn: Callable | None = None,
        generator: torch.Generator | None = None) -> torch.Tensor:
    """Projected gradient descent (Madry et al.) in the ℓ∞ or ℓ2 ball.

    Parameters
    ----------
    model, x, y, clip, loss_fn
        As in :func:`fgsm`.
    eps : float >= 0
        Radius of the ball around ``x`` (per example).
    norm : {'inf', '2'}
    steps : int >= 1
    step_size : float, default ``2.5 * eps / steps``
    random_start : bool, default True
        Start from a uniformly random point of the ball (ℓ∞) or a random
        direction scaled to a random radius (ℓ2).
    generator : torch.Generator, optional
        Source of the random start (the global generator is never used
        implicitly when one is given; pass one for reproducible attacks).

    Returns
    -------
    Tensor
        Adversarial inputs within ``eps`` of ``x`` (and inside ``clip``).

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from tensornet.robust import pgd
    >>> model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    >>> x, y = torch.rand(5, 4), torch.tensor([0, 1, 2, 0, 1])
    >>> x_adv = pgd(model, x, y, eps=0.05, steps=5, generator=torch.Generator().manual_seed(0))
    >>> bool((x_adv - x).abs().max() <= 0.05 + 1e-6), bool(x_adv.min() >= 0 and x_adv.max() <= 1)
    (True, True)
    """
    eps = _check_common(model, x, y, eps, clip)
    norm = check_option(str(norm), "norm", NORMS)
    steps = check_int(steps, "steps", min_value=1)
    step_size = 2.5 * eps / steps if step_size is None else check_float(step_size, "step_size",
                                                                          min_value=0.0)
    loss_fn = loss_fn or _default_loss
    x0 = x.detach()
    if random_start and eps > 0:
        gen_device = generator.device if generator is not None else torch.device("cpu")

        def draw(fn, shape):
            return fn(shape, generator=generator, dtype=x0.dtype, device=gen_device).to(x0.device)

        if norm == "inf":
            delta = (2 * draw(torch.rand, x0.shape) - 1) * eps
        else:
            d = draw(torch.randn, x0.shape)
            r = draw(torch.rand, (x0.shape[0],) + (1,) * (x0.ndim - 1))
            delta = d / _per_example_norm(d).clamp_min(1e-12) * r * eps
        x_adv = _clip(x0 + delta, clip)
    else:
        x_adv = x0.clone()
    for _ in range(steps):
        grad = _input_grad(model, x_adv, y, loss_fn)
        if norm == "inf":
            step = grad.sign()
        else:
            g = _per_example_norm(grad)
            step = torch.where(g > 0, grad / g.clamp_min(torch.finfo(grad.dtype).tiny), 0.0)
        x_adv = x_adv + step_size * step
        x_adv = _clip(x0 + _project(x_adv - x0, eps, norm), clip).detach()
    return x_adv


#: attack name -> function (used by ``robustness_curve`` and adversarial training)
ATTACKS = {"fgsm": fgsm, "fgm": fgm, "pgd": pgd}
