"""Convolution with a Tucker-2 kernel: :class:`TuckerConv2d`."""

from __future__ import annotations

import math
import numbers

import torch
from torch import nn
import torch.nn.functional as F

from .._validation import check_int
from ._base import (
    check_rank_type,
    dense_init_variance,
    init_bias_,
    RankDim,
    register,
    relative_error,
)
from ._conv_base import _conv1x1, _FactorizedConv2d, _group_rank, _is_channels_last
from ._linear_base import _decomposition_input

__all__ = ["TuckerConv2d"]


@register
class TuckerConv2d(_FactorizedConv2d):
    """Convolution with a Tucker-2 kernel: 1x1 (S->R_in), kxk core (R_in->R_out), 1x1 (R_out->T).

    ``K[t, s, y, x] = sum_{a, b} U_out[t, b] core[b, a, y, x] U_in[s, a]``
    (Kim et al., 2016); the spatial modes are kept whole. With
    ``groups = G`` each group has its own factors and core block and the
    three convolutions are grouped.

    Parameters
    ----------
    in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
    padding_mode, device, dtype
        As in ``torch.nn.Conv2d``.
    rank : int, pair or float
        ``(R_out, R_in)``, the channel counts of the core convolution (each a
        multiple of ``groups``, at most ``out_channels`` / ``in_channels``);
        an int is used for both (clipped to the channel counts); a float in
        (0, 1] is the fraction of the dense kernel's parameters to spend.
    implementation : {'auto', 'factorized', 'dense'}, default 'auto'

    Attributes
    ----------
    core : nn.Parameter of shape ``(R_out, R_in / G, kh, kw)``
        The kernel of the middle (grouped) convolution.
    factors : nn.ParameterList
        ``U_out (T, R_out / G)`` and ``U_in (S, R_in / G)``; rows of group
        ``g`` form the ``g``-th block.
    rank : tuple of int
        ``(R_out, R_in)``.

    Examples
    --------
    >>> import torch
    >>> from tensornet.nn import TuckerConv2d
    >>> conv = TuckerConv2d(16, 32, 3, rank=(8, 4), stride=2, padding=1)
    >>> conv(torch.randn(2, 16, 10, 10)).shape
    torch.Size([2, 32, 5, 5])
    >>> tuple(conv.core.shape)
    (8, 4, 3, 3)
    """

    def __init__(self, in_channels, out_channels, kernel_size, rank, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, padding_mode="zeros", device=None,
                 dtype=None, *, implementation="auto"):
        factory = {"device": device, "dtype": dtype}
        super().__init__()
        check_rank_type(rank)
        self._init_conv(in_channels, out_channels, kernel_size, stride, padding, dilation,
                        groups, bias, padding_mode, implementation, factory)
        G = self.groups
        self.rank = self._resolve_rank(rank)
        ro, ri = self.rank[0] // G, self.rank[1] // G
        kh, kw = self.kernel_size
        self.core = nn.Parameter(torch.empty(self.rank[0], ri, kh, kw, **factory))
        self.factors = nn.ParameterList([
            nn.Parameter(torch.empty(self.out_channels, ro, **factory)),
            nn.Parameter(torch.empty(self.in_channels, ri, **factory))])
        self.reset_parameters()
        self.clear_plans()

    def _params_for(self, ro_g, ri_g):
        G = self.groups
        kh, kw = self.kernel_size
        return self.out_channels * ro_g + self.in_channels * ri_g + G * ro_g * ri_g * kh * kw

    def _resolve_rank(self, rank):
        G = self.groups
        Tg, Sg = self.out_channels // G, self.in_channels // G
        if isinstance(rank, numbers.Real) and not isinstance(rank, (bool, numbers.Integral)):
            if not 0.0 < rank <= 1.0:
                raise ValueError(f"rank as a float is the fraction of the dense kernel's "
                                 f"parameters to keep and must be in (0, 1]; got {rank!r}")
            kh, kw = self.kernel_size
            budget = rank * self.out_channels * Sg * kh * kw
            best = (1, 1)
            lo, hi = 0.0, 1.0
            for _ in range(50):
                c = 0.5 * (lo + hi)
                ro, ri = max(1, int(c * Tg)), max(1, int(c * Sg))
                if self._params_for(ro, ri) <= budget:
                    best, lo = (ro, ri), c
                else:
                    hi = c
            return (best[0] * G, best[1] * G)
        if isinstance(rank, numbers.Integral) and not isinstance(rank, bool):
            rank = (min(int(rank), self.out_channels), min(int(rank), self.in_channels))
            if rank[0] < 1:
                raise ValueError(f"rank must be >= 1; got {rank[0]}")
        try:
            ro, ri = rank
        except (TypeError, ValueError):
            raise TypeError(f"rank must be an int, a pair (R_out, R_in) of ints or a float in "
                            f"(0, 1]; got {rank!r}") from None
        for name, r, c in (("rank[0] (R_out)", ro, self.out_channels),
                           ("rank[1] (R_in)", ri, self.in_channels)):
            if isinstance(r, bool) or not isinstance(r, numbers.Integral):
                raise TypeError(f"{name} must be an int; got {r!r}")
            if r < 1 or r > c:
                raise ValueError(f"{name} must be between 1 and {c}; got {r}")
            _group_rank(int(r), G, name)
        return (int(ro), int(ri))

    def reset_parameters(self) -> None:
        """Orthonormal factor blocks and a Gaussian core with ``nn.Conv2d``'s kernel variance.

        Per group, ``mean Var(K) = sigma_core^2 (R_in/G)/(S/G) (R_out/G)/(T/G)``.
        """
        G = self.groups
        Tg, Sg = self.out_channels // G, self.in_channels // G
        ro, ri = self.rank[0] // G, self.rank[1] // G
        var = dense_init_variance(self._fan_in()) * Tg * Sg / (ro * ri)
        with torch.no_grad():
            for f, n in zip(self.factors, (Tg, Sg)):
                for g in range(G):
                    nn.init.orthogonal_(f[g * n:(g + 1) * n])
            self.core.normal_(0.0, math.sqrt(var))
        init_bias_(self.bias, self._fan_in())

    def _spec(self):
        return self._conv_options() + (self.rank,)

    @staticmethod
    def _seq_convs(spec):
        S, T, k, stride, conv_pad, dil, G = spec[3:10]
        ro, ri = spec[-1]
        return [(S, ri, (1, 1), (1, 1), (1, 1), G, (0, 0)),
                (ri, ro, k, stride, dil, G, conv_pad),
                (ro, T, (1, 1), (1, 1), (1, 1), G, (0, 0))]

    @staticmethod
    def _rebuild_cost(spec):
        S, T, (kh, kw) = spec[3], spec[4], spec[5]
        G = spec[9]
        ro, ri = spec[-1][0] // G, spec[-1][1] // G
        k = kh * kw
        flops = 2 * G * (ro * ri * k * (S // G) + (T // G) * ro * (S // G) * k)
        return flops, 2 * T * (S // G) * k + ro * (S // G) * k * G, 3

    def _seq_forward(self, x):
        u_out, u_in = self._list("factors")
        G = self.groups
        ri = self.rank[1] // G
        w1 = u_in.reshape(G, -1, ri).transpose(1, 2).reshape(self.rank[1], -1)
        cl = _is_channels_last(x)
        x = _conv1x1(x, w1, None, G, cl)
        x = F.conv2d(x, self._param("core"), None, self.stride, self._conv_pad, self.dilation,
                     G)
        return _conv1x1(x, u_out, self._param("bias"), G, cl)

    def dense_weight(self) -> torch.Tensor:
        """The kernel ``(out_channels, in_channels // groups, kh, kw)`` from core and factors."""
        u_out, u_in = tuple(self.factors)
        G = self.groups
        ro, ri = self.rank[0] // G, self.rank[1] // G
        kh, kw = self.kernel_size
        core = self.core.reshape(G, ro, ri * kh * kw)
        uo = u_out.reshape(G, -1, ro)
        ui = u_in.reshape(G, -1, ri)
        tmp = torch.bmm(uo, core).reshape(G, -1, ri, kh * kw)          # (G, Tg, ri, k)
        K = torch.einsum("gtak,gsa->gtsk", tmp, ui)
        return K.reshape(self.out_channels, self.in_channels // G, kh, kw)

    def rank_dims(self):
        """Two rank dimensions, ``'out'`` and ``'in'`` (per group).

        Group ``r`` of ``'out'``: column ``r`` of ``factors[0]`` and channel
        ``r`` of every group's block of ``core`` (dimension 0); of ``'in'``:
        column ``r`` of ``factors[1]`` and ``core[:, r]``.
        """
        G = self.groups
        return (RankDim("out", self.rank[0] // G, (("factors.0", 1, 1), ("core", 0, G))),
                RankDim("in", self.rank[1] // G, (("factors.1", 1, 1), ("core", 1, 1))))

    def _with_parameters(self, params):
        return type(self).from_factors(params["core"], [params["factors.0"],
                                                        params["factors.1"]],
                                       bias=params.get("bias"), stride=self.stride,
                                       padding=self.padding, dilation=self.dilation,
                                       groups=self.groups, padding_mode=self.padding_mode,
                                       implementation=self.implementation)

    @classmethod
    def from_factors(cls, core, factors, bias=None, *, stride=1, padding=0, dilation=1,
                     groups=1, padding_mode="zeros", implementation="auto"):
        """Build a layer from its core and factors (copied).

        ``core (R_out, R_in/G, kh, kw)``, ``factors = [U_out (T, R_out/G), U_in (S, R_in/G)]``.
        """
        u_out, u_in = factors
        G = check_int(groups, "groups", min_value=1)
        if core.dim() != 4 or core.shape[0] != u_out.shape[1] * G or core.shape[1] != u_in.shape[1]:
            raise ValueError(f"core must have shape (groups * U_out.shape[1], U_in.shape[1], kh, "
                             f"kw) = ({u_out.shape[1] * G}, {u_in.shape[1]}, kh, kw); got "
                             f"{tuple(core.shape)}")
        layer = cls(u_in.shape[0], u_out.shape[0], tuple(core.shape[2:]),
                    (int(core.shape[0]), int(core.shape[1]) * G), stride=stride,
                    padding=padding, dilation=dilation, groups=G, bias=bias is not None,
                    padding_mode=padding_mode, device=core.device, dtype=core.dtype,
                    implementation=implementation)
        with torch.no_grad():
            layer.core.copy_(core)
            layer.factors[0].copy_(u_out)
            layer.factors[1].copy_(u_in)
            if bias is not None:
                layer.bias.copy_(bias)
        return layer

    @classmethod
    def from_dense(cls, module, rank, *, implementation="auto", method="hooi", n_iter_max=100,
                   random_state=0):
        """Convert a trained ``nn.Conv2d`` by a Tucker-2 decomposition (channel modes) per group.

        Examples
        --------
        >>> import torch
        >>> from tensornet.nn import TuckerConv2d
        >>> _ = torch.manual_seed(0)
        >>> conv = torch.nn.Conv2d(8, 16, 3)
        >>> layer = TuckerConv2d.from_dense(conv, rank=(16, 8))   # full ranks: exact
        >>> layer.approximation_error < 1e-5
        True
        """
        from ..decomposition import tucker

        cls._from_conv_checks(module)
        tmp = cls(module.in_channels, module.out_channels, rank=rank, bias=False,
                  **cls._conv_kwargs(module))
        G = tmp.groups
        ro, ri = tmp.rank[0] // G, tmp.rank[1] // G
        kh, kw = tmp.kernel_size
        K = _decomposition_input(module.weight)
        Tg = module.out_channels // G
        cores, uos, uis = [], [], []
        for g in range(G):
            block = K[g * Tg:(g + 1) * Tg]
            core, (uo, ui, uh, uw) = tucker(block, (ro, ri, kh, kw), method=method,
                                            n_iter_max=n_iter_max, random_state=random_state)
            # fold the (square, orthogonal) spatial factors back into the core
            core = torch.einsum("abyx,Yy,Xx->abYX", core, uh, uw)
            cores.append(core)
            uos.append(uo)
            uis.append(ui)
        dt, dev = module.weight.dtype, module.weight.device
        core = torch.cat(cores, 0).to(device=dev, dtype=dt)
        factors = [torch.cat(uos, 0).to(device=dev, dtype=dt),
                   torch.cat(uis, 0).to(device=dev, dtype=dt)]
        layer = cls.from_factors(core, factors, bias=None if module.bias is None
                                 else module.bias.detach(), implementation=implementation,
                                 **{k: v for k, v in cls._conv_kwargs(module).items()
                                    if k != "kernel_size"})
        layer.approximation_error = relative_error(layer.dense_weight(), module.weight)
        return layer
