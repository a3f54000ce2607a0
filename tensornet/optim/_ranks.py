"""Rank groups of tensorized layers: listing, param groups, sparse start and pruning.

Everything here goes through the public rank interface of
:class:`tensornet.nn._base.FactorizedModule` (``rank_dims()``,
``select_ranks(keep)``): a rank dimension is a list of members
``(parameter_name, dim, blocks)`` and its component ``r`` is slice ``r`` of
``dim`` in every member. A component is *removable* when the slice of some
member is exactly zero: it then adds nothing to the layer's output.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import nn

from ._functional import group_norms
from ._regularizers import RankL1, Regularizer

__all__ = [
    "LayerPruning",
    "PruneReport",
    "RankGroup",
    "effective_params",
    "low_rank_init",
    "prune_ranks",
    "rank_groups",
    "rank_param_groups",
    "tensorized_layers",
]


def _rank_dims(module):
    """The rank dimensions of a tensorized layer, or None for other modules.

    Any module with ``rank_dims()`` and ``select_ranks(keep)`` (the interface of
    :class:`tensornet.nn._base.FactorizedModule`) counts as tensorized.
    """
    if callable(getattr(module, "rank_dims", None)) and callable(
            getattr(module, "select_ranks", None)):
        return tuple(module.rank_dims())
    return None


def _component_norms(params: dict, rd) -> torch.Tensor:
    sq = None
    for name, dim, blocks in rd.members:
        n = _slice_norms(params[name], dim, blocks) ** 2
        sq = n if sq is None else sq + n
    return sq.sqrt()


def tensorized_layers(model: nn.Module) -> list:
    """``[(name, layer)]`` for every tensorized layer (one with ``rank_dims``) in ``model``.

    A tensorized layer's own sub-modules are not searched. ``name`` is as in
    ``model.named_modules()`` (``""`` when ``model`` itself is one).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    out = []
    for name, mod in model.named_modules():
        if any(name.startswith(found + ".") if found else name != "" for found, _ in out):
            continue                       # inside a tensorized layer already listed
        if _rank_dims(mod) is not None:
            out.append((name, mod))
    return out


def _slice_norms(p: torch.Tensor, dim: int, blocks: int) -> torch.Tensor:
    return group_norms(p.detach(), [dim], blocks)


def _removable(params: dict, rd) -> torch.Tensor:
    """Bool mask over the components of rank dim ``rd``: some member slice is all zero."""
    mask = None
    for name, dim, blocks in rd.members:
        z = _slice_norms(params[name], dim, blocks) == 0
        mask = z if mask is None else (mask | z)
    return mask


class RankGroup(NamedTuple):
    """The rank groups of one rank dimension of one tensorized layer.

    Attributes
    ----------
    layer : str
        Name of the layer in the model.
    kind : str
        Class name of the layer.
    rank : str
        Name of the rank dimension (``'cp'``, ``'out0'``, ``'bond1'`` ...).
    size : int
        Number of components (the current rank).
    active : int
        Components that are not removable (no member slice is exactly zero).
    members : tuple of (str, int, int)
        ``(parameter name in the model, dim, blocks)``; the first is the lead
        member penalised by :class:`~tensornet.optim.RankL1`.
    norms : list of float
        Euclidean norm of each whole component (all members).
    lead_norms : list of float
        Norm of each component's lead slice.
    """

    layer: str
    kind: str
    rank: str
    size: int
    active: int
    members: tuple
    norms: list
    lead_norms: list


def rank_groups(model: nn.Module) -> list:
    """List the rank groups of every tensorized layer in ``model``.

    Returns
    -------
    list of RankGroup
        One entry per rank dimension per layer, in module order.

    Examples
    --------
    >>> import torch
    >>> from tensornet.nn import TTLinear
    >>> from tensornet.optim import rank_groups
    >>> model = torch.nn.Sequential(TTLinear(64, 64, rank=4), torch.nn.ReLU())
    >>> [(g.layer, g.rank, g.size, g.active) for g in rank_groups(model)]
    [('0', 'bond1', 4, 4), ('0', 'bond2', 4, 4)]
    """
    out = []
    for lname, layer in tensorized_layers(model):
        params = dict(layer.named_parameters())
        prefix = f"{lname}." if lname else ""
        for rd in layer.rank_dims():
            n = _component_norms(params, rd)
            lead = _slice_norms(params[rd.members[0][0]], rd.members[0][1], rd.members[0][2])
            rem = _removable(params, rd)
            out.append(RankGroup(lname, type(layer).__name__, rd.name, int(rd.size),
                                 int((~rem).sum()),
                                 tuple((prefix + m[0], int(m[1]), int(m[2]))
                                       for m in rd.members),
                                 [float(x) for x in n], [float(x) for x in lead]))
    return out


def rank_param_groups(model: nn.Module, reg: Regularizer | None = None, *, rest_reg=None,
                      **hyper) -> list:
    """Param groups for a Bregman optimizer that know the rank structure of ``model``.

    Every tensorized layer gets its own group holding all its parameters
    and plain metadata: ``"layer"`` (its name), ``"param_names"`` (names in
    the model, as ``torch.optim`` uses them) and ``"rank_dims"``
    (``[[name, size, [[param_index, dim, blocks], ...]], ...]``, indices into
    the group's parameters). All other parameters of the model form one
    last group.

    Parameters
    ----------
    model : nn.Module
    reg : RankL1, default RankL1(0.0)
        The regularizer of the tensorized layers' groups.
    rest_reg : None or regularizer, default None
        Regularizer of the remaining parameters (e.g. ``GroupL1`` for neuron
        sparsity in dense layers).
    **hyper
        Hyperparameters set on every group (``lr``, ``delta``, ...).

    Returns
    -------
    list of dict
        To be passed to :class:`~tensornet.optim.LinBreg` /
        :class:`~tensornet.optim.AdaBreg` (or any ``torch.optim`` optimizer,
        which ignores the extra keys).

    Examples
    --------
    >>> import torch
    >>> from tensornet.nn import TuckerLinear
    >>> from tensornet.optim import RankL1, rank_param_groups
    >>> model = torch.nn.Sequential(TuckerLinear(16, 16, rank=2), torch.nn.Linear(16, 2))
    >>> groups = rank_param_groups(model, reg=RankL1(0.1), lr=0.01)
    >>> [g["layer"] for g in groups[:-1]], len(groups[-1]["params"])
    (['0'], 2)
    >>> groups[0]["param_names"][:4]
    ['0.bias', '0.core', '0.factors.0', '0.factors.1']
    >>> groups[0]["rank_dims"][0]          # mode out0: column of factors.0 and core dim 0
    ['out0', 2, [[2, 1, 1], [1, 0, 1]]]
    """
    if reg is None:
        reg = RankL1(0.0)
    if not isinstance(reg, Regularizer):
        raise TypeError(f"reg must be a tensornet.optim regularizer such as RankL1(lam); got "
                        f"{type(reg).__name__}")
    if rest_reg is not None and not isinstance(rest_reg, Regularizer):
        raise TypeError(f"rest_reg must be None or a tensornet.optim regularizer; got "
                        f"{type(rest_reg).__name__}")
    layers = tensorized_layers(model)
    if not layers:
        raise ValueError("model has no tensorized layer (CPLinear, TuckerLinear, TTLinear, ...) "
                         "whose ranks could be grouped")
    groups, taken = [], set()
    for lname, layer in layers:
        names, params = [], []
        prefix = f"{lname}." if lname else ""
        for n, p in layer.named_parameters():
            names.append(n)
            params.append(p)
            taken.add(id(p))
        index = {n: i for i, n in enumerate(names)}
        rank_dims = [[rd.name, int(rd.size), [[index[m[0]], int(m[1]), int(m[2])]
                                              for m in rd.members]]
                     for rd in layer.rank_dims()]
        groups.append({"params": params, "reg": reg, "layer": lname,
                       "param_names": [prefix + n for n in names], "rank_dims": rank_dims,
                       **hyper})
    rest = [(n, p) for n, p in model.named_parameters() if id(p) not in taken]
    if rest:
        groups.append({"params": [p for _, p in rest], "reg": rest_reg,
                       "param_names": [n for n, _ in rest], **hyper})
    return groups


@torch.no_grad()
def low_rank_init(model: nn.Module, rank=1, *, decay: float = 0.3,
                  rescale: bool = True) -> nn.Module:
    """Start every tensorized layer with only ``rank`` active components per rank dimension.

    The lead slices (those :class:`~tensornet.optim.RankL1` penalises) of the
    other components are set exactly to zero; their other members stay
    non-zero, so the zero components still receive gradients. This is the
    sparse start of the inverse scale space: build the Bregman optimizer
    afterwards (its dual variables start from the parameters at the first
    step).

    The other members of the ``j``-th inactive component (``j = 1, 2, ...``)
    are scaled so that their product shrinks by ``decay ** j``. The gradient
    that reaches an inactive lead slice is proportional to them, so the
    components switch on in order, one at a time, and an added component
    has time to take up the residual before the next one could switch on.
    Without it (``decay=1``) inactive components with random, equally large
    partners reach the threshold together and the layer ends with redundant
    components (measured on the planted-rank task of the tests).

    Parameters
    ----------
    model : nn.Module
        Changed in place.
    rank : int >= 1, default 1
        Components kept per rank dimension (the first ones; capped by the size).
    decay : float in (0, 1], default 0.3
        Stagger of the inactive components (see above).
    rescale : bool, default True
        Multiply the kept lead slices by ``sqrt(size / kept)`` so that the
        layer's output keeps the variance of its initialisation.

    Returns
    -------
    nn.Module
        ``model``.

    Examples
    --------
    >>> import torch
    >>> from tensornet.nn import TTLinear
    >>> from tensornet.optim import low_rank_init, rank_groups
    >>> model = torch.nn.Sequential(TTLinear(64, 64, rank=6))
    >>> _ = low_rank_init(model, rank=1)
    >>> [g.active for g in rank_groups(model)]
    [1, 1]
    """
    if isinstance(rank, bool) or not isinstance(rank, numbers.Integral) or rank < 1:
        raise ValueError(f"rank must be an int >= 1; got {rank!r}")
    if isinstance(decay, bool) or not isinstance(decay, numbers.Real) or not 0 < decay <= 1:
        raise ValueError(f"decay must be a number in (0, 1]; got {decay!r}")
    if not isinstance(rescale, bool):
        raise TypeError(f"rescale must be True or False; got {rescale!r}")
    layers = tensorized_layers(model)
    if not layers:
        raise ValueError("model has no tensorized layer to start at low rank")
    for _, layer in layers:
        params = dict(layer.named_parameters())
        for rd in layer.rank_dims():
            size = int(rd.size)
            kept = min(int(rank), size)
            n_other = len(rd.members) - 1
            for j, (name, dim, blocks) in enumerate(rd.members):
                scale = torch.ones(size, dtype=torch.float64)
                if j == 0:
                    scale[kept:] = 0.0
                    if rescale and kept < size:
                        scale[:kept] = math.sqrt(size / kept)
                elif decay < 1:
                    steps = torch.arange(1, size - kept + 1, dtype=torch.float64)
                    scale[kept:] = decay ** (steps / n_other)
                else:
                    continue
                p = params[name]
                shape = [1] * p.dim()
                shape[dim] = blocks * size          # index b * size + r belongs to component r
                p.mul_(scale.repeat(blocks).to(device=p.device, dtype=p.dtype).reshape(shape))
        if hasattr(layer, "clear_plans"):
            layer.clear_plans()
    return model


# --------------------------------------------------------------------------- pruning
@dataclass
class LayerPruning:
    """What :func:`prune_ranks` did to one layer."""

    name: str
    kind: str
    ranks_before: dict
    ranks_after: dict
    params_before: int
    params_after: int
    flops_before: int
    flops_after: int


@dataclass
class PruneReport:
    """Result of :func:`prune_ranks`.

    Attributes
    ----------
    model : nn.Module
        The pruned model (the same object unless ``model`` itself was a
        tensorized layer, which is then replaced by a new one).
    layers : list of LayerPruning
    params_before, params_after : int
        Parameters of the whole model.
    flops_before, flops_after : int
        FLOPs of one sample's forward pass through the tensorized layers
        (as ``layer.flops(batch_size=1)`` counts them).
    """

    model: nn.Module
    layers: list = field(default_factory=list)
    params_before: int = 0
    params_after: int = 0
    flops_before: int = 0
    flops_after: int = 0

    def ranks(self) -> dict:
        """``{layer name: {rank name: rank after pruning}}``."""
        return {lp.name: dict(lp.ranks_after) for lp in self.layers}

    def to_markdown(self) -> str:
        """The report as a markdown table."""
        rows = ["| layer | kind | ranks before | ranks after | params | FLOPs (1 sample) |",
                "|---|---|---|---|---|---|"]
        for lp in self.layers:
            rb = ", ".join(f"{k}={v}" for k, v in lp.ranks_before.items())
            ra = ", ".join(f"{k}={v}" for k, v in lp.ranks_after.items())
            rows.append(f"| {lp.name or '(model)'} | {lp.kind} | {rb} | {ra} | "
                        f"{lp.params_before:,} → {lp.params_after:,} | "
                        f"{lp.flops_before:,} → {lp.flops_after:,} |")
        rows.append(f"| **total** | | | | {self.params_before:,} → {self.params_after:,} | "
                    f"{self.flops_before:,} → {self.flops_after:,} |")
        return "\n".join(rows)


def _n_params(module):
    return sum(p.numel() for p in module.parameters())


def _flops(layer, input_size=None):
    """FLOPs of one sample (0 when the layer cannot say, e.g. a conv without input size)."""
    try:
        return int(layer.flops(1, input_size))
    except (NotImplementedError, TypeError, ValueError):
        return 0


def _input_sizes(model, layers, example_input):
    """Spatial size of each tensorized layer's input, recorded on one forward pass."""
    sizes = {}
    if example_input is None:
        return sizes
    hooks = []
    for name, layer in layers:
        def hook(mod, args, name=name):
            x = args[0]
            sizes[name] = tuple(int(s) for s in x.shape[2:]) if x.dim() > 2 else None
        hooks.append(layer.register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            if isinstance(example_input, (tuple, list)):
                model(*example_input)
            else:
                model(example_input)
    finally:
        for h in hooks:
            h.remove()
    return sizes


def _replace(model, name, new):
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


@torch.no_grad()
def prune_ranks(model: nn.Module, *, tol: float = 0.0, example_input=None) -> PruneReport:
    """Physically remove the zero components of every tensorized layer.

    A component whose slice in some member is exactly zero (with
    ``tol=0``) contributes nothing, so removing it leaves the output
    unchanged. Each layer is replaced by ``layer.select_ranks(keep)``, a new
    layer of the same class with smaller ranks; a freshly built layer of
    those ranks has the same parameter names and shapes, so the pruned
    model's ``state_dict`` loads into a model built with the pruned ranks.
    At least one component is kept per rank dimension.

    Optimizers built on the old parameters are stale afterwards: prune at
    the end of training, or build a new optimizer.

    Parameters
    ----------
    model : nn.Module
        Changed in place (its tensorized layers are replaced).
    tol : float >= 0, default 0
        Also remove components whose smallest member slice norm is at most
        ``tol`` times the largest such norm in its rank dimension (this
        changes the output when ``tol > 0``).
    example_input : Tensor or tuple, optional
        One input of ``model``; the spatial sizes it gives each layer are
        used for the FLOP counts of convolutions (reported as 0 without it).

    Returns
    -------
    PruneReport

    Examples
    --------
    >>> import torch
    >>> from tensornet.nn import CPLinear
    >>> from tensornet.optim import prune_ranks
    >>> model = torch.nn.Sequential(CPLinear(64, 32, rank=8))
    >>> with torch.no_grad():
    ...     model[0].factors[0][:, 3:] = 0           # components 3..7 switched off
    >>> x = torch.randn(4, 64)
    >>> before = model(x)
    >>> report = prune_ranks(model)
    >>> report.ranks(), model[0].rank
    ({'0': {'cp': 3}}, (3,))
    >>> bool(torch.allclose(model(x), before, atol=1e-6))
    True
    """
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not (0 <= tol < 1):
        raise ValueError(f"tol must be a number in [0, 1); got {tol!r}")
    layers = tensorized_layers(model)
    sizes = _input_sizes(model, layers, example_input)
    report = PruneReport(model=model, params_before=_n_params(model))
    for lname, layer in layers:
        params = dict(layer.named_parameters())
        dims = layer.rank_dims()
        keep, before, after = [], {}, {}
        for rd in dims:
            if tol > 0:
                smallest = torch.stack([_slice_norms(params[m[0]], m[1], m[2])
                                        for m in rd.members]).min(0).values
                top = float(smallest.max())
                rem = smallest <= tol * top
            else:
                rem = _removable(params, rd)
            k = (~rem).nonzero().flatten()
            if k.numel() == 0:
                # the whole rank is zero: keep one (zero) component, output unchanged
                k = torch.zeros(1, dtype=torch.long)
            before[rd.name] = int(rd.size)
            after[rd.name] = int(k.numel())
            keep.append(None if k.numel() == rd.size else k.tolist())
        flops_before, n_before = _flops(layer, sizes.get(lname)), _n_params(layer)
        new = layer.select_ranks(keep) if any(k is not None for k in keep) else layer
        if new is not layer:
            if lname == "":
                report.model = new
            else:
                _replace(model, lname, new)
        report.layers.append(LayerPruning(lname, type(layer).__name__, before, after,
                                          n_before, _n_params(new), flops_before,
                                          _flops(new, sizes.get(lname))))
    report.params_after = _n_params(report.model)
    report.flops_before = sum(lp.flops_before for lp in report.layers)
    report.flops_after = sum(lp.flops_after for lp in report.layers)
    return report


# --------------------------------------------------------------------------- counting
def effective_params(group: dict) -> tuple[int, int]:
    """``(kept, total)`` parameters of a param group built by :func:`rank_param_groups`.

    ``kept`` is the number the group's layer would have after
    :func:`prune_ranks`; ``total`` what it has now.
    """
    params = group["params"]
    shapes = [list(p.shape) for p in params]
    total = sum(p.numel() for p in params)
    new_shapes = [list(s) for s in shapes]
    for rd in group["rank_dims"]:
        members = rd[2]
        rem = None
        for idx, dim, blocks in members:
            z = _slice_norms(params[idx], int(dim), int(blocks)) == 0
            rem = z if rem is None else (rem | z)
        kept = max(int((~rem).sum()), 1)
        for idx, dim, blocks in members:
            new_shapes[idx][dim] = int(blocks) * kept
    return sum(math.prod(s) for s in new_shapes), total
