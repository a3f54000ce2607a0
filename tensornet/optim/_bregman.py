"""Bregman optimizers (LinBreg, AdaBreg) and proximal SGD, following ``torch.optim``.

The arithmetic lives in :mod:`tensornet.optim._functional`; the classes
check hyperparameters, keep per-parameter state in ``self.state[p]`` and
hold every param group's regularizer as a plain config dict.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch.optim import Optimizer

from ._functional import (
    _prox_,
    adabreg_foreach_,
    linbreg_foreach_,
    prox_sgd_update_,
    subgradient,
)
from ._regularizers import _check_lam, resolve_regularizer

__all__ = ["AdaBreg", "LinBreg", "ProxSGD"]


def _real(value, name, *, low=None, low_open=False, high=None, high_open=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {value!r} ({type(value).__name__})")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite; got {value}")
    if low is not None and (value <= low if low_open else value < low):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}; got {value}")
    if high is not None and (value >= high if high_open else value > high):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}; got {value}")
    return value


class _RegularizedOptimizer(Optimizer):
    """Common machinery: per-group checks and the plain regularizer config."""

    _uses_dual = True

    def __init__(self, params, defaults):
        reg = defaults.get("reg")
        # the defaults keep the plain description only; each group binds it to its params
        if reg is not None and not isinstance(reg, dict):
            if not hasattr(reg, "to_config"):
                raise TypeError("reg must be None or a tensornet.optim regularizer (L1, "
                                f"GroupL1, RankL1); got {type(reg).__name__}")
            defaults["reg"] = reg.to_config()
        super().__init__(params, defaults)

    def _check_group(self, group: dict) -> None:
        group["lr"] = _real(group["lr"], "lr", low=0.0, low_open=True)

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        try:
            self._check_group(group)
            reg = group.get("reg")
            if isinstance(reg, dict) and "lam" in reg:
                _check_lam(reg["lam"])
            group["reg"] = resolve_regularizer(reg, group["params"], group)
        except Exception:
            self.param_groups.pop()
            raise

    # -- helpers ---------------------------------------------------------------
    @staticmethod
    def _reg_of(group):
        reg = group.get("reg")
        if reg is None:
            return 0.0, None
        return float(reg["lam"]), reg["layout"]

    def _init_dual(self, p, group, layout, lam):
        delta = group.get("delta", 1.0)
        return p.detach() / delta + subgradient(p.detach(), layout, lam)

    @torch.no_grad()
    def apply_prox(self) -> None:
        """Recompute every parameter from its dual variable: ``theta = prox_{delta J}(delta v)``.

        Call it after changing ``lam`` or ``delta`` of a param group by hand
        (:class:`~tensornet.optim.RankController` does) so that the model
        reflects the new regularizer before the next step.
        """
        if not self._uses_dual:
            return
        for group in self.param_groups:
            lam, layouts = self._reg_of(group)
            delta = group["delta"]
            for i, p in enumerate(group["params"]):
                state = self.state.get(p)
                if not state or "dual" not in state:
                    continue
                p.copy_(state["dual"] * delta)
                _prox_(p, None if layouts is None else layouts[i], lam, delta)

    @torch.no_grad()
    def reset_dual(self) -> None:
        """Re-initialise the dual variables from the current parameters (``v = theta/delta + dJ``)."""
        for group in self.param_groups:
            lam, layouts = self._reg_of(group)
            for i, p in enumerate(group["params"]):
                state = self.state.get(p)
                if state and "dual" in state:
                    state["dual"].copy_(self._init_dual(
                        p, group, None if layouts is None else layouts[i], lam))

    def regularization(self) -> float:
        """``sum_groups J(theta)`` at the current parameters (a float)."""
        from ._functional import penalty

        total = 0.0
        for group in self.param_groups:
            lam, layouts = self._reg_of(group)
            if layouts is None:
                continue
            for p, lay in zip(group["params"], layouts):
                total += penalty(p, lay, lam)
        return total

    def _grads(self, group):
        for i, p in enumerate(group["params"]):
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
            yield i, p, p.grad


class LinBreg(_RegularizedOptimizer):
    r"""Linearized Bregman iterations (Bungert, Roith, Tenbrinck, Burger, JMLR 2022).

    For each parameter ``theta`` with regularizer ``J`` (of its param group)::

        v     <- v - lr * grad            (or, with momentum b:
                                            m <- b m + (1 - b) lr grad,  v <- v - m)
        theta <- prox_{delta J}(delta * v)

    The dual variable ``v`` starts at ``theta0 / delta + dJ(theta0)``, so that
    ``prox_{delta J}(delta v0) = theta0`` (the parameters are not moved by the
    first prox). Started from sparse parameters (see
    :func:`~tensornet.optim.low_rank_init`), groups switch on one at a
    time, when ``||v_g||`` exceeds ``lam * sqrt(|g|)``: the *inverse scale
    space*. ``lam`` sets where this stops; unlike proximal SGD the threshold
    does not shrink with the learning rate.

    With ``reg=None`` and ``delta = 1``, LinBreg is SGD with learning rate
    ``lr``; with momentum ``b`` it is ``torch.optim.SGD(lr=lr * (1 - b),
    momentum=b)`` step for step (the momentum buffer averages the
    *scaled* gradients and starts at zero, the paper's form).

    Parameters
    ----------
    params : iterable
        Parameters or param groups (dicts). A group may set its own ``lr``,
        ``delta``, ``momentum`` and ``reg``; :func:`~tensornet.optim.rank_param_groups`
        builds groups for :class:`~tensornet.optim.RankL1`.
    lr : float > 0
    reg : None or regularizer, default None
        :class:`~tensornet.optim.L1`, :class:`~tensornet.optim.GroupL1` or
        :class:`~tensornet.optim.RankL1`; held in each group as a plain dict
        ``group["reg"]`` (``{"name", "lam", ..., "layout"}``), whose ``"lam"``
        may be changed during training (then call :meth:`apply_prox`).
    delta : float > 0, default 1
        Scale of the quadratic term of the Bregman functional
        ``J + ||theta||^2 / (2 delta)``; the step on non-penalised entries
        is ``delta * lr``.
    momentum : float in [0, 1), default 0

    Examples
    --------
    >>> import torch
    >>> from tensornet.optim import LinBreg, L1
    >>> _ = torch.manual_seed(0)
    >>> w = torch.nn.Parameter(torch.zeros(5))          # start sparse
    >>> target = torch.tensor([2.0, 0.0, -1.0, 0.0, 0.05])
    >>> opt = LinBreg([w], lr=0.1, reg=L1(0.5))
    >>> for _ in range(100):
    ...     opt.zero_grad()
    ...     loss = 0.5 * ((w - target) ** 2).sum()
    ...     loss.backward()
    ...     _ = opt.step()
    >>> w.detach().round(decimals=2)     # large entries recovered, the small one never switched on
    tensor([ 2.,  0., -1.,  0.,  0.])
    """

    def __init__(self, params, lr, reg=None, delta=1.0, momentum=0.0):
        lr = _real(lr, "lr", low=0.0, low_open=True)
        delta = _real(delta, "delta", low=0.0, low_open=True)
        momentum = _real(momentum, "momentum", low=0.0, high=1.0, high_open=True)
        defaults = {"lr": lr, "reg": reg, "delta": delta, "momentum": momentum}
        super().__init__(params, defaults)

    def _check_group(self, group):
        super()._check_group(group)
        group["delta"] = _real(group["delta"], "delta", low=0.0, low_open=True)
        group["momentum"] = _real(group["momentum"], "momentum", low=0.0, high=1.0,
                                  high_open=True)

    @torch.no_grad()
    def step(self, closure=None):
        """Perform one step; returns the loss from ``closure`` (or None)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lam, layouts = self._reg_of(group)
            momentum = group["momentum"]
            ps, gs, vs, bufs, lays = [], [], [], [], []
            for i, p, grad in self._grads(group):
                layout = None if layouts is None else layouts[i]
                state = self.state[p]
                if "dual" not in state:
                    state["dual"] = self._init_dual(p, group, layout, lam)
                    state["step"] = 0
                    if momentum > 0:
                        state["momentum_buffer"] = torch.zeros_like(p)
                elif momentum > 0 and "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                state["step"] += 1
                ps.append(p)
                gs.append(grad)
                vs.append(state["dual"])
                lays.append(layout)
                if momentum > 0:
                    bufs.append(state["momentum_buffer"])
            linbreg_foreach_(ps, gs, vs, bufs if momentum > 0 else None, lr=group["lr"],
                             momentum=momentum, delta=group["delta"], lam=lam,
                             layouts=None if layouts is None else lays)
        return loss


class AdaBreg(_RegularizedOptimizer):
    r"""Adam-preconditioned Bregman iterations (AdaBreg).

    Adam's bias-corrected first and second moments of the gradient drive
    the dual variable, then the prox recovers the parameter::

        m <- b1 m + (1 - b1) g        s <- b2 s + (1 - b2) g^2
        v <- v - lr * (m / (1 - b1^t)) / (sqrt(s / (1 - b2^t)) + eps)
        theta <- prox_{delta J}(delta * v)

    With ``reg=None`` and ``delta = 1`` this is ``torch.optim.Adam`` step for
    step. Because Adam normalises each coordinate's step to about ``lr``,
    ``lam / lr`` is roughly the number of steps a consistently pushed group
    needs to switch on.

    Parameters
    ----------
    params : iterable
        Parameters or param groups (each may set ``lr``, ``betas``, ``eps``,
        ``delta``, ``reg``).
    lr : float > 0, default 1e-3
    betas : (float, float) in [0, 1), default (0.9, 0.999)
    eps : float >= 0, default 1e-8
    reg : None or regularizer, default None
        As in :class:`LinBreg`.
    delta : float > 0, default 1

    Examples
    --------
    >>> import torch
    >>> from tensornet.optim import AdaBreg, GroupL1
    >>> _ = torch.manual_seed(0)
    >>> W = torch.nn.Parameter(torch.zeros(4, 3))
    >>> target = torch.zeros(4, 3)
    >>> target[0] = 1.0                                # one informative row
    >>> opt = AdaBreg([W], lr=0.05, reg=GroupL1(2.0, dim=0))
    >>> for _ in range(300):
    ...     opt.zero_grad()
    ...     noisy = target + torch.randn(4, 3)         # the other rows only see noise
    ...     ((W - noisy) ** 2).sum().backward()
    ...     _ = opt.step()
    >>> (W.detach().norm(dim=1) > 0).tolist()         # only the informative row switched on
    [True, False, False, False]
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, reg=None, delta=1.0):
        lr = _real(lr, "lr", low=0.0, low_open=True)
        betas = self._check_betas(betas)
        eps = _real(eps, "eps", low=0.0)
        delta = _real(delta, "delta", low=0.0, low_open=True)
        defaults = {"lr": lr, "betas": betas, "eps": eps, "reg": reg, "delta": delta}
        super().__init__(params, defaults)

    @staticmethod
    def _check_betas(betas):
        try:
            b1, b2 = betas
        except (TypeError, ValueError):
            raise TypeError(f"betas must be a pair of floats in [0, 1); got {betas!r}") \
                from None
        return (_real(b1, "betas[0]", low=0.0, high=1.0, high_open=True),
                _real(b2, "betas[1]", low=0.0, high=1.0, high_open=True))

    def _check_group(self, group):
        super()._check_group(group)
        group["betas"] = self._check_betas(group["betas"])
        group["eps"] = _real(group["eps"], "eps", low=0.0)
        group["delta"] = _real(group["delta"], "delta", low=0.0, low_open=True)

    @torch.no_grad()
    def step(self, closure=None):
        """Perform one step; returns the loss from ``closure`` (or None)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lam, layouts = self._reg_of(group)
            beta1, beta2 = group["betas"]
            ps, gs, vs, ms, ss, steps, lays = [], [], [], [], [], [], []
            for i, p, grad in self._grads(group):
                layout = None if layouts is None else layouts[i]
                state = self.state[p]
                if "dual" not in state:
                    state["dual"] = self._init_dual(p, group, layout, lam)
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p,
                                                           memory_format=torch.preserve_format)
                state["step"] += 1
                ps.append(p)
                gs.append(grad)
                vs.append(state["dual"])
                ms.append(state["exp_avg"])
                ss.append(state["exp_avg_sq"])
                steps.append(state["step"])
                lays.append(layout)
            adabreg_foreach_(ps, gs, vs, ms, ss, steps, lr=group["lr"], beta1=beta1,
                             beta2=beta2, eps=group["eps"], delta=group["delta"], lam=lam,
                             layouts=None if layouts is None else lays)
        return loss


class ProxSGD(_RegularizedOptimizer):
    r"""Proximal SGD: ``theta <- prox_{lr J}(theta - lr * d)`` (the usual baseline).

    ``d`` is the gradient or ``torch.optim.SGD``'s heavy-ball momentum
    buffer. It starts from dense parameters and shrinks groups towards zero;
    its threshold ``lr * lam`` shrinks with the learning rate. With
    ``reg=None`` it is ``torch.optim.SGD(lr, momentum)``.

    Parameters
    ----------
    params : iterable
    lr : float > 0
    reg : None or regularizer, default None
    momentum : float in [0, 1), default 0

    Examples
    --------
    >>> import torch
    >>> from tensornet.optim import ProxSGD, L1
    >>> w = torch.nn.Parameter(torch.tensor([1.0, 0.1]))
    >>> opt = ProxSGD([w], lr=0.5, reg=L1(0.4))
    >>> w.grad = torch.tensor([1.0, 0.0])
    >>> _ = opt.step()
    >>> w.detach()
    tensor([0.3000, 0.0000])
    """

    _uses_dual = False

    def __init__(self, params, lr, reg=None, momentum=0.0):
        lr = _real(lr, "lr", low=0.0, low_open=True)
        momentum = _real(momentum, "momentum", low=0.0, high=1.0, high_open=True)
        super().__init__(params, {"lr": lr, "reg": reg, "momentum": momentum})

    def _check_group(self, group):
        super()._check_group(group)
        group["momentum"] = _real(group["momentum"], "momentum", low=0.0, high=1.0,
                                  high_open=True)

    @torch.no_grad()
    def step(self, closure=None):
        """Perform one step; returns the loss from ``closure`` (or None)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lam, layouts = self._reg_of(group)
            for i, p, grad in self._grads(group):
                state = self.state[p]
                buf = prox_sgd_update_(p, grad, state.get("momentum_buffer"), lr=group["lr"],
                                       momentum=group["momentum"], lam=lam,
                                       layout=None if layouts is None else layouts[i])
                if buf is not None:
                    state["momentum_buffer"] = buf
        return loss
