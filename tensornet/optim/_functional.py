"""Stateless arithmetic of the Bregman optimizers: prox operators, subgradients, updates.

Every function here works on plain tensors and plain numbers; the
optimizer classes only keep the state and call them.

Notation. ``J`` is a sparsity regularizer with weight ``lam``:

* ``"l1"``: ``J(theta) = lam * sum_i |theta_i|``;
* ``"group"``: ``J(theta) = lam * sum_g sqrt(|g|) * ||theta_g||_2`` where the
  groups ``g`` are the slices of ``theta`` along the *group dimensions*
  (``dims``): all entries that share their indices along those dimensions
  form one group. ``blocks > 1`` (one group dimension only) means that this
  dimension holds ``blocks`` stacked copies of ``size = len / blocks``
  groups, and group ``r`` is index ``b * size + r`` of every block ``b``
  (the convention of :class:`tensornet.nn.RankDim`).

A *layout* is the plain description of ``J`` for one tensor: ``None`` (no
penalty), ``["l1"]``, ``["group", [dims...], blocks]`` or
``["group", [dims...], blocks, weight]``, where ``weight`` replaces the
default group weight ``sqrt(|g|)`` (used by ``RankL1``, whose penalised slice
is only part of a rank component: its weight is the square root of the
whole component's size).

The Bregman iterations (Bungert, Roith, Tenbrinck, Burger, JMLR 2022) keep a
dual ("subgradient") variable ``v`` and recover the parameter with the
proximal map of ``delta * J``::

    v     <- v - lr * grad                         (LinBreg)
    theta <- prox_{delta J}(delta * v)

which is mirror descent on ``J_delta = J + ||.||^2 / (2 delta)``: ``v`` is a
subgradient of ``J_delta`` at ``theta``. With ``J = 0`` it is SGD with step
``delta * lr``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "adabreg_foreach_",
    "adabreg_update_",
    "group_norms",
    "group_size",
    "group_soft_threshold",
    "group_weight",
    "linbreg_foreach_",
    "linbreg_update_",
    "penalty",
    "prox",
    "prox_sgd_update_",
    "soft_threshold",
    "subgradient",
]


# --------------------------------------------------------------------------- groups
def _group_view(x: Tensor, dims: Sequence[int], blocks: int):
    """``x`` viewed so that the group dimensions are ordinary dimensions (handles blocks)."""
    dims = [d % x.dim() for d in dims] if x.dim() else []
    if blocks == 1:
        return x, dims
    d = dims[0]
    n = x.shape[d]
    shape = tuple(x.shape[:d]) + (blocks, n // blocks) + tuple(x.shape[d + 1:])
    return x.reshape(shape), [d + 1]


def group_norms(x: Tensor, dims: Sequence[int], blocks: int = 1) -> Tensor:
    """Euclidean norm of every group of ``x``; shape ``[x.shape[d] for d in dims]``.

    Parameters
    ----------
    x : Tensor
    dims : sequence of int
        The group dimensions (see the module notes).
    blocks : int, default 1
        Stacked copies along the (single) group dimension.

    Examples
    --------
    >>> import torch
    >>> x = torch.tensor([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]])
    >>> group_norms(x, [0])                 # rows
    tensor([5., 0., 1.])
    >>> group_norms(torch.arange(4.0), [0], blocks=2)   # groups {0, 2} and {1, 3}
    tensor([2.0000, 3.1623])
    """
    xv, gd = _group_view(x, dims, blocks)
    other = [i for i in range(xv.dim()) if i not in gd]
    if not other:
        return xv.abs()
    n = torch.linalg.vector_norm(xv, dim=other)
    if blocks == 1 and gd != sorted(gd):
        n = n.permute([sorted(gd).index(d) for d in gd])
    return n


def group_size(shape: Sequence[int], dims: Sequence[int], blocks: int = 1) -> int:
    """Number of entries in each group of a tensor of ``shape``.

    Examples
    --------
    >>> group_size((8, 3, 5, 5), [0, 1])    # conv kernels: 5 x 5
    25
    >>> group_size((4, 6), [1], blocks=2)  # 6 = 2 blocks of 3 groups -> 4 * 2 entries each
    8
    """
    numel = math.prod(shape)
    n_groups = math.prod(shape[d] for d in dims) // blocks
    return numel // max(n_groups, 1)


def _keepdim_norms(xv: Tensor, gd: Sequence[int]) -> Tensor:
    other = [i for i in range(xv.dim()) if i not in gd]
    if not other:
        return xv.abs()
    return torch.linalg.vector_norm(xv, dim=other, keepdim=True)


def soft_threshold(x: Tensor, threshold: float) -> Tensor:
    """``sign(x) * max(|x| - threshold, 0)``: the prox of ``threshold * ||.||_1``.

    Examples
    --------
    >>> import torch
    >>> soft_threshold(torch.tensor([-2.0, -0.5, 0.0, 0.3, 1.5]), 0.5).tolist()
    [-1.5, -0.0, 0.0, 0.0, 1.0]
    """
    if threshold == 0:
        return x.clone()
    return torch.sign(x) * torch.clamp(x.abs() - threshold, min=0.0)


def group_soft_threshold(x: Tensor, threshold: float, dims: Sequence[int],
                         blocks: int = 1) -> Tensor:
    """Group soft-thresholding, the prox of ``threshold * sum_g sqrt(|g|) ||x_g||``.

    Every group ``g`` is scaled by ``max(0, 1 - threshold * sqrt(|g|) / ||x_g||)``;
    groups whose norm is at most ``threshold * sqrt(|g|)`` become exactly zero.

    Examples
    --------
    >>> import torch
    >>> x = torch.tensor([[3.0, 4.0], [0.3, 0.4]])
    >>> group_soft_threshold(x, 1.0 / 2 ** 0.5, [0])   # threshold * sqrt(2) = 1
    tensor([[2.4000, 3.2000],
            [0.0000, 0.0000]])
    """
    out = x.clone()
    _group_shrink_(out, threshold, dims, blocks)
    return out


def _group_shrink_(x: Tensor, threshold: float, dims: Sequence[int], blocks: int,
                   weight: float | None = None) -> None:
    if threshold == 0:
        return
    xv, gd = _group_view(x, dims, blocks)
    w = math.sqrt(group_size(tuple(xv.shape), gd)) if weight is None else weight
    t = threshold * w
    n = _keepdim_norms(xv, gd)
    # 1 - t / n is -inf on zero groups (t > 0 here): clamped to 0 like every group below t
    xv.mul_(torch.reciprocal(n).mul_(-t).add_(1.0).clamp_(min=0.0))


def _check_layout(layout):
    if layout is None:
        return None
    kind = layout[0]
    if kind == "l1":
        return kind, None, 1, None
    if kind == "group":
        weight = float(layout[3]) if len(layout) > 3 and layout[3] is not None else None
        return kind, list(layout[1]), int(layout[2]), weight
    raise ValueError(f"unknown layout {layout!r}; expected None, ['l1'] or "
                     "['group', dims, blocks(, weight)]")


def group_weight(shape: Sequence[int], layout) -> float:
    """The weight ``w_g`` of every group of a tensor of ``shape`` under ``layout``.

    ``sqrt(|g|)`` unless the layout gives its own; 1 for ``["l1"]``.

    Examples
    --------
    >>> group_weight((4, 9), ["group", [0], 1])
    3.0
    >>> group_weight((4, 9), ["group", [0], 1, 5.0])
    5.0
    """
    kind, dims, blocks, weight = _check_layout(layout)
    if kind == "l1":
        return 1.0
    if weight is not None:
        return weight
    return math.sqrt(group_size(tuple(shape), dims, blocks))


def prox(x: Tensor, layout, lam: float, scale: float = 1.0) -> Tensor:
    """``prox_{scale * J}(x)`` for the regularizer ``J`` of weight ``lam`` with ``layout``.

    Parameters
    ----------
    x : Tensor
    layout : None, ``["l1"]`` or ``["group", dims, blocks]``
    lam : float
        Weight of ``J``.
    scale : float, default 1
        The prox step (``delta`` in the Bregman iterations, the learning rate
        in proximal SGD).

    Examples
    --------
    >>> import torch
    >>> prox(torch.tensor([2.0, -0.1]), ["l1"], lam=0.5, scale=2.0).tolist()
    [1.0, -0.0]
    """
    out = x.clone()
    _prox_(out, layout, lam, scale)
    return out


def _prox_(x: Tensor, layout, lam: float, scale: float) -> None:
    """In-place ``x <- prox_{scale * J}(x)``."""
    spec = _check_layout(layout)
    if spec is None or lam == 0:
        return
    kind, dims, blocks, weight = spec
    t = scale * lam
    if kind == "l1":
        # sign(x) * max(|x| - t, 0) without a second full-size temporary
        x.copy_(torch.sign(x).mul_(torch.clamp(x.abs().sub_(t), min=0.0)))
    else:
        _group_shrink_(x, t, dims, blocks, weight)


def subgradient(theta: Tensor, layout, lam: float) -> Tensor:
    """A subgradient ``p in dJ(theta)``, zero on zero entries / zero groups.

    With it, ``v0 = theta / delta + p`` is a valid starting dual variable:
    ``prox_{delta J}(delta * v0) = theta``.

    Examples
    --------
    >>> import torch
    >>> subgradient(torch.tensor([[3.0, 4.0], [0.0, 0.0]]), ["group", [0], 1], lam=1.0)
    tensor([[0.8485, 1.1314],
            [0.0000, 0.0000]])
    """
    spec = _check_layout(layout)
    if spec is None or lam == 0:
        return torch.zeros_like(theta)
    kind, dims, blocks, _ = spec
    if kind == "l1":
        return lam * torch.sign(theta)
    out = theta.clone()
    xv, gd = _group_view(out, dims, blocks)
    w = lam * group_weight(tuple(theta.shape), layout)
    n = _keepdim_norms(xv, gd)
    xv.mul_(torch.where(n > 0, w / torch.where(n > 0, n, torch.ones_like(n)),
                        torch.zeros_like(n)))
    return out


def penalty(theta: Tensor, layout, lam: float) -> float:
    """The value ``J(theta)`` as a Python float.

    Examples
    --------
    >>> import torch
    >>> penalty(torch.tensor([[3.0, 4.0], [0.0, 1.0]]), ["group", [0], 1], lam=1.0)
    8.485...
    """
    spec = _check_layout(layout)
    if spec is None or lam == 0:
        return 0.0
    kind, dims, blocks, _ = spec
    if kind == "l1":
        return float(lam * theta.detach().abs().sum())
    t = theta.detach()
    w = group_weight(tuple(t.shape), layout)
    return float(lam * w * group_norms(t, dims, blocks).sum())


# --------------------------------------------------------------------------- updates
@torch.no_grad()
def linbreg_update_(param: Tensor, grad: Tensor, dual: Tensor,
                    momentum_buffer: Tensor | None, *, lr: float, momentum: float,
                    delta: float, lam: float, layout) -> Tensor | None:
    """One LinBreg step, in place on ``param``, ``dual`` and ``momentum_buffer``.

    ``m <- momentum * m + (1 - momentum) * lr * grad`` (when ``momentum > 0``;
    ``m`` starts at zero: pass ``None`` on the first step), ``v <- v - m``
    (or ``v <- v - lr * grad``), then ``theta <- prox_{delta J}(delta * v)``.

    Returns
    -------
    Tensor or None
        The momentum buffer (created on the first step), ``None`` without momentum.

    Examples
    --------
    >>> import torch
    >>> p, v = torch.tensor([0.0, 1.0]), torch.tensor([0.0, 1.5])   # v0 for lam=0.5
    >>> _ = linbreg_update_(p, torch.tensor([-1.0, 1.0]), v, None, lr=0.2, momentum=0.0,
    ...                     delta=1.0, lam=0.5, layout=["l1"])
    >>> v, p                              # |v_0| = 0.2 is still below lam: theta_0 stays 0
    (tensor([0.2000, 1.3000]), tensor([0.0000, 0.8000]))
    """
    if momentum > 0:
        if momentum_buffer is None:
            momentum_buffer = torch.zeros_like(dual)
        momentum_buffer.mul_(momentum).add_(grad, alpha=(1.0 - momentum) * lr)
        dual.sub_(momentum_buffer)
    else:
        dual.add_(grad, alpha=-lr)
        momentum_buffer = None
    torch.mul(dual, delta, out=param)
    _prox_(param, layout, lam, delta)
    return momentum_buffer


@torch.no_grad()
def adabreg_update_(param: Tensor, grad: Tensor, dual: Tensor, exp_avg: Tensor,
                    exp_avg_sq: Tensor, step: int, *, lr: float, beta1: float, beta2: float,
                    eps: float, delta: float, lam: float, layout) -> None:
    """One AdaBreg step (``step`` counts from 1), in place.

    Adam's bias-corrected moments drive the dual variable::

        m <- b1 m + (1 - b1) g,   s <- b2 s + (1 - b2) g^2
        v <- v - lr * (m / (1 - b1^t)) / (sqrt(s / (1 - b2^t)) + eps)
        theta <- prox_{delta J}(delta * v)

    With ``J = 0`` and ``delta = 1`` this is exactly ``torch.optim.Adam``.

    Examples
    --------
    >>> import torch
    >>> p, v = torch.zeros(2), torch.zeros(2)
    >>> m, s = torch.zeros(2), torch.zeros(2)
    >>> adabreg_update_(p, torch.tensor([-3.0, 0.5]), v, m, s, 1, lr=0.1, beta1=0.9,
    ...                 beta2=0.999, eps=1e-8, delta=1.0, lam=0.0, layout=None)
    >>> p                                  # bias-corrected first step: lr * sign(g)
    tensor([ 0.1000, -0.1000])
    """
    exp_avg.mul_(beta1).add_(grad, alpha=1.0 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
    bc1 = 1.0 - beta1 ** step
    bc2 = 1.0 - beta2 ** step
    denom = (exp_avg_sq.sqrt() / math.sqrt(bc2)).add_(eps)
    dual.addcdiv_(exp_avg, denom, value=-lr / bc1)
    torch.mul(dual, delta, out=param)
    _prox_(param, layout, lam, delta)


@torch.no_grad()
def prox_sgd_update_(param: Tensor, grad: Tensor, momentum_buffer: Tensor | None, *,
                     lr: float, momentum: float, lam: float, layout) -> Tensor | None:
    """One proximal-SGD step: ``theta <- prox_{lr J}(theta - lr * d)``, in place.

    ``d`` is the gradient, or with ``momentum > 0`` the heavy-ball buffer of
    ``torch.optim.SGD``: ``b <- grad`` on the first step (pass ``None``),
    then ``b <- momentum * b + grad``.

    Returns
    -------
    Tensor or None
        The momentum buffer, ``None`` without momentum.

    Examples
    --------
    >>> import torch
    >>> p = torch.tensor([1.0, 0.1])
    >>> _ = prox_sgd_update_(p, torch.tensor([1.0, 0.0]), None, lr=0.5, momentum=0.0,
    ...                      lam=0.4, layout=["l1"])
    >>> p
    tensor([0.3000, 0.0000])
    """
    if momentum > 0:
        if momentum_buffer is None:
            momentum_buffer = grad.detach().clone()
        else:
            momentum_buffer.mul_(momentum).add_(grad)
        param.add_(momentum_buffer, alpha=-lr)
    else:
        param.add_(grad, alpha=-lr)
        momentum_buffer = None
    _prox_(param, layout, lam, lr)
    return momentum_buffer


# --------------------------------------------------------------------------- multi-tensor
def _prox_all_(params: Sequence[Tensor], layouts, lam: float, scale: float) -> None:
    if layouts is None or lam == 0:
        return
    for p, lay in zip(params, layouts):
        if lay is not None:
            _prox_(p, lay, lam, scale)


@torch.no_grad()
def linbreg_foreach_(params: Sequence[Tensor], grads: Sequence[Tensor], duals: Sequence[Tensor],
                     momentum_buffers: Sequence[Tensor] | None, *, lr: float, momentum: float,
                     delta: float, lam: float, layouts) -> None:
    """:func:`linbreg_update_` on lists of tensors at once (``torch._foreach_*`` kernels).

    ``momentum_buffers`` must already exist (zeros on the first step) when
    ``momentum > 0``; ``layouts`` is one layout per tensor or ``None``.
    """
    if not params:
        return
    if momentum > 0:
        torch._foreach_mul_(momentum_buffers, momentum)
        torch._foreach_add_(momentum_buffers, grads, alpha=(1.0 - momentum) * lr)
        torch._foreach_sub_(duals, momentum_buffers)
    else:
        torch._foreach_add_(duals, grads, alpha=-lr)
    torch._foreach_copy_(params, duals)
    if delta != 1.0:
        torch._foreach_mul_(params, delta)
    _prox_all_(params, layouts, lam, delta)


@torch.no_grad()
def adabreg_foreach_(params: Sequence[Tensor], grads: Sequence[Tensor], duals: Sequence[Tensor],
                     exp_avgs: Sequence[Tensor], exp_avg_sqs: Sequence[Tensor],
                     steps: Sequence[int], *, lr: float, beta1: float, beta2: float, eps: float,
                     delta: float, lam: float, layouts) -> None:
    """:func:`adabreg_update_` on lists of tensors at once (``steps`` count from 1)."""
    if not params:
        return
    torch._foreach_mul_(exp_avgs, beta1)
    torch._foreach_add_(exp_avgs, grads, alpha=1.0 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1.0 - beta2)
    denom = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_div_(denom, [math.sqrt(1.0 - beta2 ** s) for s in steps])
    torch._foreach_add_(denom, eps)
    torch._foreach_addcdiv_(duals, exp_avgs, denom, [-lr / (1.0 - beta1 ** s) for s in steps])
    torch._foreach_copy_(params, duals)
    if delta != 1.0:
        torch._foreach_mul_(params, delta)
    _prox_all_(params, layouts, lam, delta)
