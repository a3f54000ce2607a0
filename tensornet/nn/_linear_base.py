"""Common part of the factorized linear layers: shared helpers and base class."""

from __future__ import annotations

import math
import numbers

import torch
from torch import nn

from .._validation import check_int
from ._base import FactorizedModule, resolve_feature_shapes


#: batch size assumed when choosing a path for a symbolic batch size (torch.compile
#: with dynamic shapes); such paths work for every batch size
NOMINAL_BATCH = 32


def _check_linear(module, cls_name):
    if not isinstance(module, nn.Linear):
        raise TypeError(f"{cls_name}.from_dense expects a torch.nn.Linear; got "
                        f"{type(module).__name__}")


def _decomposition_input(weight: torch.Tensor) -> torch.Tensor:
    """The weight in the precision the decompositions run in (float64 on CPU)."""
    w = weight.detach()
    if w.device.type == "cpu" or w.dtype == torch.float64:
        return w.double()
    return w.float()


def _check_tensor_list(tensors, name, ndim):
    try:
        tensors = list(tensors)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of tensors; got {type(tensors).__name__}") \
            from None
    if not tensors:
        raise ValueError(f"{name} must hold at least one tensor; got none")
    for k, t in enumerate(tensors):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}[{k}] must be a torch.Tensor; got {type(t).__name__}")
        if t.dim() != ndim:
            raise ValueError(f"{name}[{k}] must have {ndim} dimensions; got shape "
                             f"{tuple(t.shape)}")
    return tensors


class _FactorizedLinear(FactorizedModule):
    """Common part of the factorized linear layers (sizes, bias, input handling)."""

    def _init_linear(self, in_features, out_features, in_shape, out_shape, bias, n_modes,
                     implementation, same_length, factory):
        self._init_base(implementation)
        self.in_features = check_int(in_features, "in_features", min_value=1)
        self.out_features = check_int(out_features, "out_features", min_value=1)
        self.in_shape, self.out_shape = resolve_feature_shapes(
            self.in_features, self.out_features, in_shape, out_shape, n_modes, same_length)
        if not isinstance(bias, bool):
            raise TypeError(f"bias must be True or False; got {bias!r}")
        if bias:
            self.bias = nn.Parameter(torch.empty(self.out_features, **factory))
        else:
            self.register_parameter("bias", None)

    # ----------------------------------------------------------------- common API
    @property
    def dense_params(self) -> int:
        """Parameters of the equivalent ``nn.Linear`` (weight and bias)."""
        return self.in_features * self.out_features + (self.out_features
                                                       if self.bias is not None else 0)

    def _input_shape(self, batch_size, input_size=None):
        batch_size = check_int(batch_size, "batch_size", min_value=1)
        return (batch_size, self.in_features)

    def dense_flops(self, batch_size: int = 1, input_size=None) -> int:
        """FLOPs of ``nn.Linear(in_features, out_features)`` on a batch (multiply-add = 2)."""
        batch_size = check_int(batch_size, "batch_size", min_value=1)
        return 2 * batch_size * self.in_features * self.out_features

    def to_dense(self) -> nn.Linear:
        """The equivalent ``nn.Linear`` (same device and dtype), weight rebuilt from the factors."""
        p = next(self.parameters())
        lin = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None,
                        device=p.device, dtype=p.dtype)
        with torch.no_grad():
            lin.weight.copy_(self.dense_weight())
            if self.bias is not None:
                lin.bias.copy_(self.bias)
        return lin

    def _fan_in(self):
        return self.in_features

    def _common_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"rank={self.rank}, in_shape={self.in_shape}, out_shape={self.out_shape}, "
                f"bias={self.bias is not None}")

    def extra_repr(self) -> str:
        s = self._common_repr()
        if self.implementation != "auto":
            s += f", implementation={self.implementation!r}"
        return s

    @staticmethod
    def _batch(spec_in_features, shape):
        """Batch size of an input shape, and whether it is symbolic (None under torch.compile)."""
        if len(shape) < 1 or shape[-1] not in (spec_in_features, None):
            raise ValueError(f"input must have shape (..., in_features={spec_in_features}); got "
                             f"{tuple(shape)}")
        if any(s is None for s in shape):
            return NOMINAL_BATCH, True
        return math.prod(shape[:-1]), False

    def _finish(self, y, x, two_d):
        if two_d:
            return y
        return y.reshape(x.shape[:-1] + (self.out_features,))


def _dense_fallback_moved(B, M, N):
    return B * N + M * N + B * M


def _check_tucker_tuple(rank, shape):
    ranks = tuple(rank)
    if len(ranks) != len(shape):
        raise ValueError(f"rank must have one entry per mode of out_shape + in_shape = {shape} "
                         f"({len(shape)} entries); got {len(ranks)}: {ranks}")
    for k, (r, s) in enumerate(zip(ranks, shape)):
        if isinstance(r, bool) or not isinstance(r, numbers.Integral):
            raise TypeError(f"rank[{k}] must be an int; got {r!r}")
        if r < 1 or r > s:
            raise ValueError(f"rank[{k}] must be between 1 and the mode size {s} (modes "
                             f"out_shape + in_shape = {shape}); got {r}")
    return tuple(int(r) for r in ranks)


def _tucker_n_params(shape, ranks):
    return math.prod(ranks) + sum(s * r for s, r in zip(shape, ranks))


def resolve_tucker_layer_rank(shape, rank):
    """Tucker ranks of a layer from an int cap, a tuple or a parameter fraction.

    A tuple is taken literally (each entry between 1 and its mode size); an
    int caps every mode (as :func:`tensornet.decomposition.tucker` does). A
    float in (0, 1] fills that fraction of ``prod(shape)`` parameters by
    raising one rank at a time, always the mode whose rank is smallest
    relative to its size, while the budget allows — finer than scaling all
    modes alike, which with modes of size 8 or 16 jumps in large steps.
    """
    from ..decomposition._common import resolve_tucker_rank

    if isinstance(rank, (tuple, list)):
        return _check_tucker_tuple(rank, shape)
    if isinstance(rank, numbers.Real) and not isinstance(rank, (bool, numbers.Integral)):
        if not 0.0 < rank <= 1.0 or not math.isfinite(rank):
            raise ValueError(f"rank as a float is the fraction of the dense weight's parameters "
                             f"to keep and must be in (0, 1]; got {rank!r}")
        total = math.prod(shape)
        budget = rank * total
        maxr = [min(s, total // s) for s in shape]
        r = [1] * len(shape)
        while True:
            for k in sorted(range(len(shape)), key=lambda k: (r[k] / shape[k], k)):
                if r[k] >= maxr[k]:
                    continue
                trial = r[:k] + [r[k] + 1] + r[k + 1:]
                if _tucker_n_params(shape, trial) <= budget:
                    r = trial
                    break
            else:
                break
        # a rank above the product of the others is never used
        changed = True
        while changed:
            changed = False
            for k in range(len(r)):
                others = math.prod(r[:k] + r[k + 1:])
                if r[k] > others:
                    r[k] = others
                    changed = True
        return tuple(r)
    return resolve_tucker_rank(shape, rank)

