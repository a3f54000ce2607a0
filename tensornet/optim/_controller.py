"""RankController: steer the regularization weight towards a target model size."""

from __future__ import annotations

import math
import numbers

import torch

from ._bregman import _real
from ._functional import group_norms, group_weight, subgradient
from ._ranks import effective_params
from ._regularizers import group_nonzero, layout_group_size

__all__ = ["RankController", "regularized_params"]


def regularized_params(optimizer, groups=None) -> tuple[int, int]:
    """``(kept, total)`` parameters of the regularized param groups of ``optimizer``.

    Groups built by :func:`~tensornet.optim.rank_param_groups` count the
    parameters their layer keeps after :func:`~tensornet.optim.prune_ranks`;
    other regularized groups count the entries of their non-zero groups
    (non-zero entries for ``L1``). Groups without a regularizer are skipped.
    """
    kept = total = 0
    for k, group in enumerate(optimizer.param_groups):
        if groups is not None and k not in groups:
            continue
        reg = group.get("reg")
        if reg is None:
            continue
        if "rank_dims" in group:
            a, b = effective_params(group)
        else:
            a = b = 0
            for p, lay in zip(group["params"], reg["layout"]):
                b += p.numel()
                if lay is None:
                    a += p.numel()
                else:
                    a += int(group_nonzero(p, lay).sum()) * layout_group_size(p, lay)
        kept += a
        total += b
    return kept, total


def _levels(optimizer, group) -> list:
    """Per parameter: the activation level of every group, ``||v_g|| / w_g`` (or None).

    A group is non-zero after the prox exactly when its level exceeds ``lam``
    (``w_g = sqrt(|g|)``, 1 for ``L1``), whatever ``delta`` is.
    """
    reg = group["reg"]
    out = []
    lam, delta = float(reg["lam"]), float(group.get("delta", 1.0))
    for p, lay in zip(group["params"], reg["layout"]):
        if lay is None:
            out.append(None)
            continue
        state = optimizer.state.get(p)
        if state and "dual" in state:
            v = state["dual"]
        else:
            v = p.detach() / delta + subgradient(p.detach(), lay, lam)
        if lay[0] == "l1":
            out.append(v.abs())
        else:
            w = group_weight(tuple(p.shape), lay)
            out.append(group_norms(v, lay[1], int(lay[2])) / w)
    return out


class _SizeModel:
    """Kept-parameter count of the steered groups as a function of a factor on ``lam``."""

    def __init__(self, optimizer, groups):
        self.parts = []
        for k in groups:
            group = optimizer.param_groups[k]
            lam = float(group["reg"]["lam"])
            levels = _levels(optimizer, group)
            if "rank_dims" in group:
                params = group["params"]
                dims = []
                for rd in group["rank_dims"]:
                    members = rd[2]
                    lead = int(members[0][0])
                    other_zero = None
                    for idx, dim, blocks in members[1:]:
                        z = group_norms(params[idx].detach(), [int(dim)], int(blocks)) == 0
                        other_zero = z if other_zero is None else (other_zero | z)
                    lv = levels[lead] if levels[lead] is not None else torch.full(
                        (int(rd[1]),), math.inf)
                    if other_zero is not None:
                        lv = torch.where(other_zero, torch.zeros_like(lv), lv)
                    dims.append((lv, [(int(i), int(d), int(b)) for i, d, b in members]))
                self.parts.append(("rank", lam, [list(p.shape) for p in params], dims))
            else:
                items = []
                for p, lay, lv in zip(group["params"], group["reg"]["layout"], levels):
                    if lay is None:
                        items.append((p.numel(), None, 1))
                    else:
                        items.append((p.numel(), lv.flatten(), layout_group_size(p, lay)))
                self.parts.append(("dense", lam, None, items))

    def kept(self, factor: float) -> int:
        total = 0
        for kind, lam, shapes, data in self.parts:
            t = lam * factor
            if kind == "rank":
                new = [list(s) for s in shapes]
                for lv, members in data:
                    kept = max(int((lv > t).sum()), 1)
                    for idx, dim, blocks in members:
                        new[idx][dim] = blocks * kept
                total += sum(math.prod(s) for s in new)
            else:
                for numel, lv, gsize in data:
                    total += numel if lv is None else int((lv > t).sum()) * gsize
        return total

    def factor_for(self, target: int, lo: float, hi: float) -> float:
        """Smallest factor in ``[lo, hi]`` (log bisection) whose kept count is <= target."""
        if self.kept(lo) <= target:
            return lo
        if self.kept(hi) > target:
            return hi
        a, b = math.log(lo), math.log(hi)
        for _ in range(60):
            m = 0.5 * (a + b)
            if self.kept(math.exp(m)) <= target:
                b = m
            else:
                a = m
        return math.exp(b)


class RankController:
    """Steer ``lam`` during training towards a target number of kept parameters.

    The right ``lam`` is hard to guess (settings that give the same sparsity
    can differ 100-fold), so the controller sets it from the dual variables.
    With the dual variables ``v`` fixed, a group is non-zero after the prox
    exactly when ``||v_g|| / sqrt(|g|) > lam``, so the size that any ``lam``
    would give *now* is known, and it decreases with ``lam``. The size is
    counted as the parameters the regularized groups would keep after
    :func:`~tensornet.optim.prune_ranks` (see :func:`regularized_params`).
    Call :meth:`step` periodically (e.g. once per epoch):

    * above the target (by more than ``tol``): ``lam`` rises to the smallest
      value at which the current dual variables keep at most the target;
      the weakest components switch off at once (the parameters are
      recomputed with :meth:`~tensornet.optim.LinBreg.apply_prox`);
    * below the target and no longer growing since the previous call:
      ``lam`` falls towards that value, by at most ``max_factor`` per call.
      While the inverse scale space is still switching components on,
      ``lam`` is left alone.

    All steered groups have their ``lam`` multiplied by the same factor.

    Parameters
    ----------
    optimizer : LinBreg or AdaBreg
    target : int or float
        An int >= 1: the number of parameters to keep in the steered
        groups; a float in (0, 1]: the fraction of their current parameters
        to keep (``1 / compression``).
    groups : sequence of int, optional
        Indices of the param groups to steer (default: every group with a
        regularizer).
    max_factor : float > 1, default 2
        Largest decrease of ``lam`` per call.
    tol : float in [0, 1), default 0.05
        Relative dead band around the target.
    lam_min, lam_max : float, default 1e-8 and 1e4
        Bounds of ``lam``.

    Attributes
    ----------
    target_params : int
    history : list of dict
        ``{"kept": ..., "lam": [...]}`` after each call of :meth:`step`.

    Examples
    --------
    >>> import torch
    >>> from tensornet.optim import AdaBreg, L1, RankController
    >>> _ = torch.manual_seed(0)
    >>> w = torch.nn.Parameter(torch.zeros(100))
    >>> target = torch.linspace(1.0, 0.01, 100)
    >>> opt = AdaBreg([w], lr=0.01, reg=L1(1e-3))
    >>> ctrl = RankController(opt, target=20)
    >>> for epoch in range(10):
    ...     for _ in range(20):
    ...         opt.zero_grad()
    ...         ((w - target) ** 2).sum().backward()
    ...         _ = opt.step()
    ...     kept = ctrl.step()
    >>> kept, int((w != 0).sum())
    (20, 20)
    >>> bool((w[:20] != 0).all())                    # the largest entries are kept
    True
    """

    def __init__(self, optimizer, target, *, groups=None, max_factor=2.0, tol=0.05,
                 lam_min=1e-8, lam_max=1e4):
        if not hasattr(optimizer, "apply_prox") or not getattr(optimizer, "_uses_dual", False):
            raise TypeError("optimizer must be a tensornet.optim Bregman optimizer (LinBreg, "
                            f"AdaBreg); got {type(optimizer).__name__}")
        self.optimizer = optimizer
        if groups is None:
            groups = [k for k, g in enumerate(optimizer.param_groups) if g.get("reg")]
        else:
            try:
                groups = [int(k) for k in groups]
            except (TypeError, ValueError):
                raise TypeError(f"groups must be a sequence of param-group indices; got "
                                f"{groups!r}") from None
            n = len(optimizer.param_groups)
            bad = [k for k in groups if not 0 <= k < n or not optimizer.param_groups[k].get(
                "reg")]
            if bad:
                raise ValueError(f"groups must be indices of regularized param groups (0.."
                                 f"{n - 1}); got {bad}")
        if not groups:
            raise ValueError("the optimizer has no regularized param group to steer; give "
                             "reg=RankL1(lam) (or L1 / GroupL1)")
        for k in groups:
            if optimizer.param_groups[k]["reg"]["lam"] <= 0:
                raise ValueError(f"param group {k} has lam = 0; the controller changes lam "
                                 "multiplicatively and needs a starting lam > 0")
        self.groups = groups
        self.max_factor = _real(max_factor, "max_factor", low=1.0, low_open=True)
        self.tol = _real(tol, "tol", low=0.0, high=1.0, high_open=True)
        self.lam_min = _real(lam_min, "lam_min", low=0.0, low_open=True)
        self.lam_max = _real(lam_max, "lam_max", low=self.lam_min)
        _, total = regularized_params(optimizer, self.groups)
        if isinstance(target, bool) or not isinstance(target, numbers.Real):
            raise TypeError(f"target must be an int (parameters) or a float in (0, 1] "
                            f"(fraction); got {target!r}")
        if isinstance(target, numbers.Integral):
            if target < 1:
                raise ValueError(f"target as a parameter count must be >= 1; got {target}")
            self.target_params = int(target)
        else:
            frac = float(target)
            if not 0 < frac <= 1:
                raise ValueError(f"target as a fraction must be in (0, 1]; got {frac}")
            self.target_params = max(1, round(frac * total))
        self.history: list = []
        self._last = None

    def lams(self) -> list:
        """The current ``lam`` of each steered group."""
        return [float(self.optimizer.param_groups[k]["reg"]["lam"]) for k in self.groups]

    def kept(self) -> int:
        """Parameters the steered groups would keep after pruning, now."""
        return regularized_params(self.optimizer, self.groups)[0]

    @torch.no_grad()
    def step(self) -> int:
        """Measure the size and adjust ``lam``; returns the kept-parameter count after it."""
        model = _SizeModel(self.optimizer, self.groups)
        kept = model.kept(1.0)
        lams = self.lams()
        lo = max(self.lam_min / min(lams), 1e-300)
        hi = self.lam_max / max(lams)
        target = self.target_params
        factor = 1.0
        if kept > target * (1.0 + self.tol):
            factor = model.factor_for(target, 1.0, max(hi, 1.0))
        elif kept < target * (1.0 - self.tol) and self._last is not None and kept <= self._last:
            factor = max(model.factor_for(target, min(lo, 1.0), 1.0), 1.0 / self.max_factor)
        if factor != 1.0:
            for k in self.groups:
                reg = self.optimizer.param_groups[k]["reg"]
                reg["lam"] = float(min(self.lam_max, max(self.lam_min, reg["lam"] * factor)))
            self.optimizer.apply_prox()
            kept = self.kept()
        self._last = kept
        self.history.append({"kept": kept, "lam": self.lams()})
        return kept

    def state_dict(self) -> dict:
        """Plain state (target, last count, history) for checkpoints."""
        return {"target_params": self.target_params, "last": self._last,
                "history": [dict(h) for h in self.history]}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.target_params = int(state["target_params"])
        self._last = state["last"]
        self.history = [dict(h) for h in state["history"]]

    def __repr__(self):
        lam = ", ".join(f"{x:.3g}" for x in self.lams())
        return (f"RankController(target_params={self.target_params}, groups={self.groups}, "
                f"lam=[{lam}])")
