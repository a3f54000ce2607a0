"""signSGD and Signum (Bernstein et al. 2018, 2019) as ``torch.optim`` optimizers.

Alone they are the single-machine methods: every coordinate moves by
``lr`` in the direction ``-sign(g)`` (SignSGD) or ``-sign(m)`` with the
momentum ``m <- beta m + (1 - beta) g`` (Signum). Under
``DistributedDataParallel`` with :func:`~tensornet.distributed.register_majority_vote`,
each rank sends only the signs of its own gradient (SignSGD) or of its own
momentum (Signum) and every rank steps along the majority vote.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch.optim import Optimizer

__all__ = ["SignSGD", "Signum", "signum_update_"]


def _real(value, name, *, low, low_open=False, high=None, high_open=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {value!r} ({type(value).__name__})")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite; got {value}")
    if value < low or (low_open and value == low):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}; got {value}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}; got {value}")
    return value


@torch.no_grad()
def signum_update_(params, grads, momentum_buffers, voted, *, lr: float, momentum: float,
                   weight_decay: float) -> None:
    """One SignSGD / Signum step on lists of tensors, in place.

    For each parameter ``p`` with gradient ``g`` and momentum buffer ``m``:

    * ``voted`` True: ``g`` already is the direction (the majority vote,
      entries in {-1, 0, 1}; the momentum was updated by the hook);
    * else with ``momentum > 0``: ``m <- momentum m + (1 - momentum) g`` and
      the direction is ``sign(m)``; with ``momentum == 0`` it is ``sign(g)``;

    then ``p <- p - lr (direction + weight_decay p)``.
    """
    for p, g, m, v in zip(params, grads, momentum_buffers, voted):
        if v:
            direction = g
        elif momentum > 0:
            m.mul_(momentum).add_(g, alpha=1.0 - momentum)
            direction = torch.sign(m)
        else:
            direction = torch.sign(g)
        if weight_decay:
            p.mul_(1.0 - lr * weight_decay)
        p.add_(direction, alpha=-lr)


class Signum(Optimizer):
    r"""Sign of momentum (Bernstein, Wang, Azizzadenesheli, Anandkumar 2018).

    ``m <- momentum * m + (1 - momentum) * grad``;
    ``p <- p - lr * (sign(m) + weight_decay * p)``.

    With :func:`~tensornet.distributed.register_majority_vote` on a
    ``DistributedDataParallel`` model, every rank keeps its own momentum,
    sends ``sign(m)`` (1 bit per coordinate) and steps along the majority
    vote of all ranks (Bernstein et al. 2019); ``p.grad`` then holds the
    vote when :meth:`step` runs.

    Parameters
    ----------
    params : iterable of Tensor or dict
    lr : float > 0
        Step per coordinate (every coordinate moves by ``lr``, or 0 on a tie).
    momentum : float in [0, 1), default 0.9
        0 gives :class:`SignSGD`.
    weight_decay : float >= 0, default 0
        Decoupled: ``p`` shrinks by ``lr * weight_decay * p`` each step.

    Examples
    --------
    >>> import torch
    >>> from tensornet.distributed import Signum
    >>> w = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
    >>> opt = Signum([w], lr=0.1, momentum=0.5)
    >>> w.grad = torch.tensor([3.0, -0.1, 0.0])
    >>> opt.step()
    >>> w.detach()
    tensor([ 0.9000, -1.9000,  0.5000])
    >>> sorted(opt.state_dict()["state"][0])
    ['momentum_buffer']
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.9,
                 weight_decay: float = 0.0):
        lr = _real(lr, "lr", low=0.0, low_open=True)
        momentum = _real(momentum, "momentum", low=0.0, high=1.0, high_open=True)
        weight_decay = _real(weight_decay, "weight_decay", low=0.0)
        # id(parameter) -> index of its param group (for the hook), and the ids of the
        # parameters whose .grad the majority-vote hook replaced by the vote since the last step
        self._group_index: dict = {}
        self._voted: set = set()
        super().__init__(params, {"lr": lr, "momentum": momentum,
                                  "weight_decay": weight_decay})

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        try:
            group["lr"] = _real(group["lr"], "lr", low=0.0, low_open=True)
            group["momentum"] = _real(group["momentum"], "momentum", low=0.0, high=1.0,
                                      high_open=True)
            group["weight_decay"] = _real(group["weight_decay"], "weight_decay", low=0.0)
        except Exception:
            self.param_groups.pop()
            raise
        for p in group["params"]:
            self._group_index[id(p)] = len(self.param_groups) - 1

    # -- used by the majority-vote hook ----------------------------------------------
    def _group_of(self, p):
        index = self._group_index.get(id(p))
        return None if index is None else self.param_groups[index]

    @torch.no_grad()
    def vote_input(self, param: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """The tensor whose signs this rank sends for ``param`` (called by the hook).

        Updates the momentum with the local ``grad`` and returns it
        (``grad`` itself for SignSGD or a parameter this optimizer does not
        hold). The next :meth:`step` then applies ``param.grad`` as the vote.
        """
        group = self._group_of(param)
        if group is None:
            return grad
        self._voted.add(id(param))
        beta = group["momentum"]
        if beta == 0:
            return grad
        state = self.state[param]
        m = state.get("momentum_buffer")
        if m is None:
            m = state["momentum_buffer"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        m.mul_(beta).add_(grad.view_as(m), alpha=1.0 - beta)
        return m

    # -- torch.optim API --------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure=None):
        """One step; returns the loss from ``closure`` (if given)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads, bufs, voted = [], [], [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
                state = self.state[p]
                if group["momentum"] > 0 and "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(
                        p, memory_format=torch.preserve_format)
                params.append(p)
                grads.append(p.grad)
                bufs.append(state.get("momentum_buffer"))
                voted.append(id(p) in self._voted)
            signum_update_(params, grads, bufs, voted, lr=group["lr"],
                           momentum=group["momentum"], weight_decay=group["weight_decay"])
        self._voted.clear()
        return loss


class SignSGD(Signum):
    r"""signSGD (Bernstein et al. 2018): ``p <- p - lr * (sign(grad) + weight_decay * p)``.

    :class:`Signum` without momentum. With
    :func:`~tensornet.distributed.register_majority_vote` each rank sends
    the signs of its own gradient and steps along the majority vote.

    Examples
    --------
    >>> import torch
    >>> from tensornet.distributed import SignSGD
    >>> w = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
    >>> opt = SignSGD([w], lr=0.1)
    >>> w.grad = torch.tensor([3.0, -0.1, 0.0])
    >>> opt.step()
    >>> w.detach()
    tensor([ 0.9000, -1.9000,  0.5000])
    """

    def __init__(self, params, lr: float = 1e-3, weight_decay: float = 0.0):
        super().__init__(params, lr=lr, momentum=0.0, weight_decay=weight_decay)
