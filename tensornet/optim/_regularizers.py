"""Sparsity regularizers for the Bregman optimizers: ``L1``, ``GroupL1``, ``RankL1``.

A regularizer object is only a description (a weight ``lam`` and how to
group entries). Inside an optimizer every param group holds it as a plain
dict, its *config*::

    {"name": "GroupL1", "lam": 0.1, "dim": [0], "layout": [layout per parameter]}

so that ``optimizer.state_dict()`` holds only numbers, strings and lists and
loads with ``torch.load(..., weights_only=True)``. The per-parameter layouts
are those of :mod:`tensornet.optim._functional`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import torch

from ._functional import group_norms, group_size, penalty

__all__ = ["L1", "GroupL1", "RankL1", "Regularizer", "regularizer_from_config"]


def _check_lam(lam: Any) -> float:
    if isinstance(lam, bool) or not isinstance(lam, numbers.Real):
        raise TypeError(f"lam must be a non-negative real number; got {lam!r} "
                        f"({type(lam).__name__})")
    lam = float(lam)
    if not math.isfinite(lam) or lam < 0:
        raise ValueError(f"lam must be a finite number >= 0; got {lam}")
    return lam


class Regularizer:
    """Base class: a weight ``lam`` and a rule that groups a parameter's entries."""

    name = "Regularizer"

    def __init__(self, lam: float):
        self.lam = _check_lam(lam)

    # -- plain form ----------------------------------------------------------
    def _fields(self) -> dict:
        return {}

    def to_config(self) -> dict:
        """The plain description (no layout): ``{"name": ..., "lam": ..., ...}``."""
        return {"name": self.name, "lam": self.lam, **self._fields()}

    def layouts(self, params: Sequence[torch.Tensor], group: dict | None = None) -> list:
        """One layout per parameter (see :mod:`tensornet.optim._functional`).

        Raises
        ------
        ValueError
            When a parameter cannot be grouped by this regularizer.
        """
        raise NotImplementedError

    def bind(self, params: Sequence[torch.Tensor], group: dict | None = None) -> dict:
        """The config of this regularizer for ``params``, with their layouts."""
        return {**self.to_config(), "layout": self.layouts(params, group)}

    def __call__(self, params: Sequence[torch.Tensor], group: dict | None = None) -> float:
        """The value ``J(params)`` (a float)."""
        params = list(params)
        return sum(penalty(p, lay, self.lam)
                   for p, lay in zip(params, self.layouts(params, group)))

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self._fields().items())
        return f"{type(self).__name__}(lam={self.lam!r}{extra})"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.to_config() == other.to_config()

    __hash__ = None


class L1(Regularizer):
    """``J(theta) = lam * ||theta||_1``: unstructured sparsity; the prox soft-thresholds.

    Parameters
    ----------
    lam : float >= 0

    Examples
    --------
    >>> import torch
    >>> from tensornet.optim import L1
    >>> L1(0.5)([torch.tensor([1.0, -2.0])])
    1.5
    """

    name = "L1"

    def layouts(self, params, group=None):
        return [["l1"] for _ in params]


class GroupL1(Regularizer):
    """``J(theta) = lam * sum_g sqrt(|g|) ||theta_g||_2`` with groups along ``dim``.

    Parameters
    ----------
    lam : float >= 0
    dim : int or tuple of int, default 0
        The dimensions that index the groups: all entries sharing their
        indices along ``dim`` form one group. ``dim=0`` on a ``nn.Linear``
        weight ``(out, in)`` groups by output neuron (rows); on a convolution
        weight ``(out, in, kh, kw)`` ``dim=0`` groups by filter and
        ``dim=(0, 1)`` by kernel. One-dimensional parameters (biases) are
        grouped entry by entry when ``dim`` is 0.

    Examples
    --------
    >>> import torch
    >>> from tensornet.optim import GroupL1
    >>> w = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    >>> GroupL1(1.0, dim=0)([w])           # sqrt(2) * 5
    7.0710...
    """

    name = "GroupL1"

    def __init__(self, lam: float, dim=0):
        super().__init__(lam)
        dims = (dim,) if isinstance(dim, numbers.Integral) and not isinstance(dim, bool) \
            else dim
        try:
            dims = tuple(dims)
        except TypeError:
            raise TypeError(f"dim must be an int or a tuple of ints; got {dim!r}") from None
        if not dims or any(isinstance(d, bool) or not isinstance(d, numbers.Integral)
                           for d in dims):
            raise TypeError(f"dim must be an int or a non-empty tuple of ints; got {dim!r}")
        if len(set(dims)) != len(dims):
            raise ValueError(f"dim must not repeat a dimension; got {dim!r}")
        self.dim = tuple(int(d) for d in dims)

    def _fields(self):
        return {"dim": list(self.dim)}

    def layouts(self, params, group=None):
        out = []
        for k, p in enumerate(params):
            nd = max(p.dim(), 1)
            if any(d >= nd or d < -nd for d in self.dim):
                raise ValueError(
                    f"GroupL1(dim={self.dim}) cannot group parameter {k} of shape "
                    f"{tuple(p.shape)}: it has {p.dim()} dimension(s); give the group dims "
                    "that exist, or put this parameter in its own param group")
            dims = sorted({d % nd for d in self.dim})
            if p.dim() == 0:
                out.append(["l1"])
            else:
                out.append(["group", dims, 1])
        return out


class RankL1(Regularizer):
    """Group sparsity on the rank components of tensorized layers.

    ``J = lam * sum_(rank dims) sum_r sqrt(|g_r|) ||g_r||_2`` where ``g_r`` is
    the slice ``r`` of the *lead member* of a rank dimension (the first
    member of :meth:`tensornet.nn.RankDim.members`):

    * CP: column ``r`` of the first factor (component ``r``);
    * Tucker: column ``r`` of factor ``U_n`` (mode ``n``, rank ``r``);
    * TT: slice ``r`` of core ``k-1`` along its right rank (bond ``k``).

    A zero lead slice makes the component contribute nothing, so it can be
    cut (:func:`~tensornet.optim.prune_ranks`) without changing the output.

    Why the lead slice only, and not the whole component (the lead slice
    together with the matching slices of the other factors / the core /
    the neighbouring core): a component whose every member is zero has zero
    gradient in every member (each member's gradient is a product of the
    others), so the Bregman iteration could never switch it on again,
    and the groups of neighbouring ranks would overlap (no closed-form prox).
    With the lead slice alone, an inactive component keeps its other
    members, its lead slice receives a gradient, and the dual variable
    grows until the component switches on: the inverse scale space works.
    The groups of different ranks never overlap, so the prox is exact.

    The weight of a group is ``sqrt(|component|)``, the square root of the
    number of entries of the whole rank component (all members), as for a
    group lasso over components; ``weight="lead"`` uses the size of the
    penalised slice instead. Measured on the planted-rank task, the lead
    slices of the TT bonds differ in size (16 and 128 entries for the
    first and second bond of a 64 x 64 TT layer) while the components are
    alike (208 and 144); the component weights keep the bonds balanced.

    The rank structure comes from the layers, so this regularizer is given
    to param groups built by :func:`tensornet.optim.rank_param_groups`
    (they carry the plain rank metadata); on a bare parameter it raises.

    Parameters
    ----------
    lam : float >= 0
    weight : {"component", "lead"}, default "component"

    Examples
    --------
    >>> import torch
    >>> from tensornet.nn import TTLinear
    >>> from tensornet.optim import LinBreg, RankL1, rank_param_groups
    >>> model = torch.nn.Sequential(TTLinear(16, 16, rank=3), torch.nn.ReLU())
    >>> groups = rank_param_groups(model, reg=RankL1(0.01))
    >>> opt = LinBreg(groups, lr=0.1)
    >>> opt.param_groups[0]["param_names"]
    ['0.bias', '0.cores.0', '0.cores.1', '0.cores.2']
    >>> [lay and lay[:3] for lay in opt.param_groups[0]["reg"]["layout"]]  # right-rank slices
    [None, ['group', [3], 1], ['group', [3], 1], None]
    """

    name = "RankL1"

    def __init__(self, lam: float, weight: str = "component"):
        super().__init__(lam)
        if weight not in ("component", "lead"):
            raise ValueError(f"weight must be 'component' or 'lead'; got {weight!r}")
        self.weight = weight

    def _fields(self):
        return {"weight": self.weight}

    def layouts(self, params, group=None):
        rank_dims = None if group is None else group.get("rank_dims")
        if rank_dims is None:
            shapes = [tuple(p.shape) for p in params]
            raise ValueError(
                "RankL1 cannot group these parameters (shapes " + str(shapes)[:200] + "): "
                "its groups are the rank components of a tensorized layer, which a bare "
                "parameter does not know; build the param groups with "
                "tensornet.optim.rank_param_groups(model, reg=RankL1(lam)), or use L1 / "
                "GroupL1 for dense parameters")
        out: list = [None] * len(params)
        owner = {}
        for rd in rank_dims:
            name, size, members = rd[0], int(rd[1]), rd[2]
            idx, dim, blocks = (int(v) for v in members[0])
            if not 0 <= idx < len(params):
                raise ValueError(f"rank dimension {name!r} refers to parameter {idx}, but the "
                                 f"group has {len(params)} parameters")
            p = params[idx]
            if p.dim() <= dim or p.shape[dim] != size * blocks:
                raise ValueError(f"rank dimension {name!r} expects parameter {idx} to have "
                                 f"size {size * blocks} along dim {dim}; it has shape "
                                 f"{tuple(p.shape)} (was the model pruned after the "
                                 "optimizer was built? build a new one)")
            if idx in owner:
                raise ValueError(f"rank dimensions {owner[idx]!r} and {name!r} share the lead "
                                 f"parameter {idx}; overlapping rank groups are not "
                                 "supported")
            owner[idx] = name
            if self.weight == "component":
                n = sum(params[int(m[0])].numel() for m in members) // size
                out[idx] = ["group", [dim], blocks, math.sqrt(n)]
            else:
                out[idx] = ["group", [dim], blocks]
        return out


_REGISTRY = {"L1": L1, "GroupL1": GroupL1, "RankL1": RankL1}


def regularizer_from_config(config: dict) -> Regularizer:
    """Rebuild a regularizer object from its plain config (the layout is ignored).

    Examples
    --------
    >>> from tensornet.optim import GroupL1, regularizer_from_config
    >>> regularizer_from_config(GroupL1(0.1, dim=(0, 1)).to_config())
    GroupL1(lam=0.1, dim=[0, 1])
    """
    if not isinstance(config, dict) or "name" not in config:
        raise TypeError(f"a regularizer config must be a dict with a 'name'; got {config!r}")
    name = config["name"]
    if name not in _REGISTRY:
        raise ValueError(f"unknown regularizer {name!r}; known: {sorted(_REGISTRY)}")
    cls = _REGISTRY[name]
    lam = config.get("lam", 0.0)
    if cls is GroupL1:
        return GroupL1(lam, dim=tuple(config.get("dim", (0,))))
    if cls is RankL1:
        return RankL1(lam, weight=config.get("weight", "component"))
    return cls(lam)


def resolve_regularizer(reg, params, group) -> dict | None:
    """Turn ``reg`` (None, a Regularizer or a config dict) into a bound plain config."""
    if reg is None:
        return None
    if isinstance(reg, dict):
        obj = regularizer_from_config(reg)
        if "layout" in reg:
            layout = reg["layout"]
            if not isinstance(layout, list) or len(layout) != len(params):
                raise ValueError(f"the regularizer config's layout must have one entry per "
                                 f"parameter ({len(params)}); got {layout!r}")
            return {**obj.to_config(), "layout": layout}
        return obj.bind(params, group)
    if isinstance(reg, Regularizer):
        return reg.bind(params, group)
    raise TypeError("reg must be None, a tensornet.optim regularizer (L1, GroupL1, RankL1) or "
                    f"its config dict; got {type(reg).__name__}")


def group_nonzero(p: torch.Tensor, layout) -> torch.Tensor:
    """Boolean mask of the non-zero groups (or entries) of ``p`` under ``layout``."""
    if layout is None or layout[0] == "l1":
        return p.detach() != 0
    return group_norms(p.detach(), layout[1], int(layout[2])) > 0


def layout_group_size(p: torch.Tensor, layout) -> int:
    if layout is None or layout[0] == "l1":
        return 1
    return group_size(tuple(p.shape), layout[1], int(layout[2]))
