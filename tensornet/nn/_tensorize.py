"""Replace the dense layers of a model by tensorized ones: :func:`tensorize`."""

from __future__ import annotations

import copy
import dataclasses
import numbers
from typing import Any, Iterator, Mapping

import torch
from torch import nn

from .._validation import check_int, check_option
from ._conv import CPConv2d, TTConv2d, TuckerConv2d
from ._linear import CPLinear, TTLinear, TuckerLinear

__all__ = ["tensorize", "TensorizeReport", "LayerReport"]

_CLASSES = {
    "cp": (CPLinear, CPConv2d),
    "tucker": (TuckerLinear, TuckerConv2d),
    "tt": (TTLinear, TTConv2d),
}


@dataclasses.dataclass
class LayerReport:
    """What :func:`tensorize` did with one layer.

    Attributes
    ----------
    name : str
        Qualified name in the model (as in ``named_modules()``).
    kind : str
        ``'Linear'`` or ``'Conv2d'``.
    replaced_by : str or None
        Class of the new layer, or None when the layer was kept.
    reason : str
        Why a layer was kept (empty when replaced).
    params_before, params_after : int
        Parameters (weight and bias) of the old and new layer.
    flops_before, flops_after : int or None
        FLOPs of one forward pass for one sample (multiply-add = 2); for
        convolutions on the feature-map size seen in ``example_input`` (None
        without it).
    rank : tuple or None
        Ranks of the new layer.
    weight_error : float or None
        Relative Frobenius error of the weight, ``||W - W_new|| / ||W||``.
    output_error : float or None
        Relative error of the layer's output on its input from
        ``example_input`` (None without it).
    """

    name: str
    kind: str
    replaced_by: str | None
    reason: str
    params_before: int
    params_after: int
    flops_before: int | None = None
    flops_after: int | None = None
    rank: tuple | None = None
    weight_error: float | None = None
    output_error: float | None = None

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        if d["rank"] is not None:
            d["rank"] = list(d["rank"])
        return d


class TensorizeReport:
    """The result of :func:`tensorize`: the model and one :class:`LayerReport` per layer.

    ``str(report)`` is a table; :meth:`to_dicts` gives plain dictionaries
    (JSON-ready); iterating yields the layer reports.

    Attributes
    ----------
    model : nn.Module
        The tensorized model (the input model when ``inplace=True``).
    layers : list of LayerReport
    factorization : str
    output_error : float or None
        Relative error of the whole model's output on ``example_input``.
    """

    def __init__(self, model, layers, factorization, output_error=None):
        self.model = model
        self.layers = list(layers)
        self.factorization = factorization
        self.output_error = output_error

    def __iter__(self) -> Iterator[LayerReport]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    @property
    def replaced(self) -> list[LayerReport]:
        return [r for r in self.layers if r.replaced_by is not None]

    @property
    def params_before(self) -> int:
        """Parameters of the considered layers before (all of them, replaced or not)."""
        return sum(r.params_before for r in self.layers)

    @property
    def params_after(self) -> int:
        return sum(r.params_after for r in self.layers)

    @property
    def ranks(self) -> dict:
        """``{layer name: rank}`` of the replaced layers (pass as ``rank=`` to rebuild)."""
        return {r.name: r.rank for r in self.replaced}

    def to_dicts(self) -> list[dict]:
        return [r.to_dict() for r in self.layers]

    def summary(self) -> dict:
        return {"factorization": self.factorization, "layers": len(self.layers),
                "replaced": len(self.replaced), "params_before": self.params_before,
                "params_after": self.params_after, "output_error": self.output_error}

    def __str__(self) -> str:
        def fmt(v, kind):
            if v is None:
                return "-"
            if kind == "int":
                return f"{v:,}"
            return f"{v:.3g}"

        header = ["layer", "type", "new", "params", "params new", "ratio", "FLOPs",
                  "FLOPs new", "weight err", "output err"]
        rows = []
        for r in self.layers:
            ratio = r.params_before / r.params_after if r.params_after else float("nan")
            rows.append([r.name or "(model)", r.kind,
                         r.replaced_by or f"kept: {r.reason}",
                         fmt(r.params_before, "int"), fmt(r.params_after, "int"),
                         f"{ratio:.1f}x" if r.replaced_by else "-",
                         fmt(r.flops_before, "int"), fmt(r.flops_after, "int"),
                         fmt(r.weight_error, "f"), fmt(r.output_error, "f")])
        tot_ratio = self.params_before / max(self.params_after, 1)
        rows.append(["total", "", f"{len(self.replaced)}/{len(self.layers)} replaced",
                     fmt(self.params_before, "int"), fmt(self.params_after, "int"),
                     f"{tot_ratio:.1f}x", "", "", "",
                     fmt(self.output_error, "f")])
        widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
        lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths))]
        lines.append("  ".join("-" * w for w in widths))
        for row in rows:
            lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"TensorizeReport(factorization={self.factorization!r}, "
                f"replaced={len(self.replaced)}/{len(self.layers)}, "
                f"params {self.params_before:,} -> {self.params_after:,})")


def _eligible_modules(model):
    """(name, module, parent, attribute) of every plain Linear / Conv2d outside attention blocks."""
    out = []
    blocked = set()
    for name, mod in model.named_modules():
        if isinstance(mod, nn.MultiheadAttention):
            blocked.add(name)
        if type(mod) not in (nn.Linear, nn.Conv2d):
            continue
        if any(name == b or name.startswith(b + ".") for b in blocked if b):
            continue
        parent_name, _, attr = name.rpartition(".")
        out.append((name, mod, model.get_submodule(parent_name) if parent_name else model, attr))
    return out


def _layer_params(mod):
    return sum(p.numel() for p in mod.parameters())


def _rel(a, b):
    a, b = a.detach().double(), b.detach().double()
    n = float(torch.linalg.vector_norm(b))
    d = float(torch.linalg.vector_norm(a - b))
    return d / n if n > 0 else d


def tensorize(model: nn.Module, factorization: str = "tt", rank: Any = 0.1, *,
              min_params: int = 4096, inplace: bool = False, decompose: bool = True,
              exclude=(), example_input=None, **kwargs) -> TensorizeReport:
    """Replace every eligible ``nn.Linear`` / ``nn.Conv2d`` of a model by a tensorized layer.

    Parameters
    ----------
    model : nn.Module
    factorization : {'tt', 'cp', 'tucker'}, default 'tt'
        :class:`TTLinear` / :class:`TTConv2d`, :class:`CPLinear` /
        :class:`CPConv2d` or :class:`TuckerLinear` / :class:`TuckerConv2d`.
    rank : int, float, tuple or dict, default 0.1
        Rank of every new layer (see the layer classes; a float in (0, 1] is
        the fraction of each layer's dense parameters to keep), or a dict
        ``{layer name: rank}`` (layers not in it are kept).
    min_params : int, default 4096
        Layers whose weight has fewer parameters are kept.
    inplace : bool, default False
        Change ``model`` itself; otherwise a deep copy is tensorized (see
        ``report.model``).
    decompose : bool, default True
        Initialise the new layers from the trained weights (``from_dense``);
        ``False`` gives freshly initialised layers of the same shapes (to
        load a saved tensorized ``state_dict`` into, or to train from
        scratch).
    exclude : iterable of str
        Names of layers to keep.
    example_input : tensor or tuple of tensors, optional
        A batch to run through the model: the report then gives the FLOPs
        of convolutions for these input shapes and the output error of
        every layer and of the whole model.
    **kwargs
        Passed to ``from_dense`` (e.g. ``n_iter_max``, ``random_state``).

    Returns
    -------
    TensorizeReport
        ``report.model`` is the tensorized model; printing the report shows
        one line per layer (old and new parameters, FLOPs, errors).

    Raises
    ------
    ValueError, TypeError
        Bad ``factorization``, ``rank`` or ``min_params``.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from tensornet.nn import tensorize
    >>> _ = torch.manual_seed(0)
    >>> mlp = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    >>> report = tensorize(mlp, "tt", rank=0.1)
    >>> [r.replaced_by for r in report]
    ['TTLinear', None]
    >>> report.params_after < report.params_before / 5
    True
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    factorization = check_option(factorization, "factorization", tuple(_CLASSES))
    min_params = check_int(min_params, "min_params", min_value=0)
    if not isinstance(inplace, bool) or not isinstance(decompose, bool):
        raise TypeError("inplace and decompose must be True or False")
    rank_map = None
    if isinstance(rank, Mapping):
        rank_map = dict(rank)
    elif rank is None or isinstance(rank, (bool, str)) or not (
            isinstance(rank, numbers.Real) or isinstance(rank, (tuple, list))):
        raise TypeError(f"rank must be an int, a float in (0, 1], a tuple or a dict {{layer "
                        f"name: rank}}; got {rank!r}")
    if isinstance(exclude, str):
        exclude = (exclude,)
    exclude = set(exclude)
    if not inplace:
        model = copy.deepcopy(model)
    lin_cls, conv_cls = _CLASSES[factorization]
    candidates = _eligible_modules(model)
    if rank_map is not None:
        unknown = set(rank_map) - {c[0] for c in candidates}
        if unknown:
            raise ValueError(f"rank names layers that are not eligible Linear / Conv2d layers "
                             f"of the model: {sorted(unknown)}")

    # record the inputs of the candidate layers on the example batch
    seen = {}
    ref_out = None
    if example_input is not None:
        def recorder(name):
            def hook(module, inp, out):
                if name not in seen:
                    seen[name] = (inp[0].detach(), out.detach())
            return hook

        hooks = [mod.register_forward_hook(recorder(name)) for name, mod, _, _ in candidates]
        try:
            with torch.no_grad():
                args = example_input if isinstance(example_input, tuple) else (example_input,)
                ref_out = model(*args)
        finally:
            for h in hooks:
                h.remove()

    reports = []
    for name, mod, parent, attr in candidates:
        is_conv = isinstance(mod, nn.Conv2d)
        kind = "Conv2d" if is_conv else "Linear"
        before = _layer_params(mod)
        if is_conv:
            fb = None
            if name in seen:
                kh, kw = mod.kernel_size
                out = seen[name][1]
                fb = 2 * out.shape[-2] * out.shape[-1] * mod.out_channels * \
                    (mod.in_channels // mod.groups) * kh * kw
        else:
            fb = 2 * mod.in_features * mod.out_features
        rep = LayerReport(name, kind, None, "", before, before, fb, fb)
        reports.append(rep)
        if name in exclude:
            rep.reason = "excluded"
            continue
        if mod.weight.numel() < min_params:
            rep.reason = f"fewer than min_params={min_params} weights"
            continue
        if rank_map is not None and name not in rank_map:
            rep.reason = "not in rank"
            continue
        r = rank_map[name] if rank_map is not None else rank
        if isinstance(r, list):
            r = tuple(r)
        cls = conv_cls if is_conv else lin_cls
        if is_conv and cls is TTConv2d and mod.groups != 1:
            rep.reason = f"groups={mod.groups} (TT needs groups=1)"
            continue
        try:
            if decompose:
                new = cls.from_dense(mod, r, **kwargs)
            elif is_conv:
                new = cls(mod.in_channels, mod.out_channels, mod.kernel_size, r,
                          stride=mod.stride, padding=mod.padding, dilation=mod.dilation,
                          groups=mod.groups, bias=mod.bias is not None,
                          padding_mode=mod.padding_mode, device=mod.weight.device,
                          dtype=mod.weight.dtype)
            else:
                new = cls(mod.in_features, mod.out_features, r, bias=mod.bias is not None,
                          device=mod.weight.device, dtype=mod.weight.dtype)
        except ValueError as exc:
            if rank_map is not None:
                raise ValueError(f"layer {name!r}: {exc}") from exc
            rep.reason = f"rank not possible ({exc})"
            continue
        if new.n_params >= before and rank_map is None:
            rep.reason = f"not smaller at this rank ({new.n_params:,} parameters)"
            continue
        new.train(mod.training)
        setattr(parent, attr, new)
        rep.replaced_by = type(new).__name__
        rep.params_after = new.n_params
        rep.rank = tuple(new.rank)
        rep.weight_error = new.approximation_error
        if is_conv:
            if name in seen:
                x = seen[name][0]
                rep.flops_after = new.flops(1, tuple(x.shape[-2:]))
            else:
                rep.flops_after = None
        else:
            rep.flops_after = new.flops(1)
        if name in seen:
            x, y = seen[name]
            with torch.no_grad():
                rep.output_error = _rel(new(x), y)

    output_error = None
    if example_input is not None:
        with torch.no_grad():
            args = example_input if isinstance(example_input, tuple) else (example_input,)
            new_out = model(*args)
        if isinstance(new_out, torch.Tensor) and isinstance(ref_out, torch.Tensor):
            output_error = _rel(new_out, ref_out)
    return TensorizeReport(model, reports, factorization, output_error)
