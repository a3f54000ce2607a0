"""Convolution with a CP kernel: :class:`CPConv2d`."""

from __future__ import annotations

import math
import numbers

import torch
from torch import nn
import torch.nn.functional as F

from .._validation import check_int
from ..decomposition._common import cp_max_rank
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

__all__ = ["CPConv2d"]


@register
class CPConv2d(_FactorizedConv2d):
    """Convolution with a CP kernel: 1x1 -> depthwise kx1 -> depthwise 1xk -> 1x1.

    ``K[t, s, y, x] = sum_r out[t, r] in[s, r] height[y, r] width[x, r]``
    (Lebedev et al., 2015). With ``groups = G`` each group's block of the
    kernel has its own ``R / G`` components.

    Parameters
    ----------
    in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
    padding_mode, device, dtype
        As in ``torch.nn.Conv2d``.
    rank : int or float
        Total number of components ``R`` (a multiple of ``groups``), or a
        float in (0, 1]: the fraction of the dense kernel's parameters to
        spend.
    implementation : {'auto', 'factorized', 'dense'}, default 'auto'

    Attributes
    ----------
    factors : nn.ParameterList
        ``out (T, R/G)``, ``in (S, R/G)``, ``height (G*kh, R/G)``,
        ``width (G*kw, R/G)``; rows of group ``g`` are the ``g``-th block.
        Component ``r`` (of every group) is column ``r`` of every factor.
    rank : tuple of int
        ``(R,)``.

    Examples
    --------
    >>> import torch
    >>> from tensornet.nn import CPConv2d
    >>> conv = CPConv2d(16, 32, 3, rank=8, padding=1)
    >>> conv(torch.randn(2, 16, 10, 10)).shape
    torch.Size([2, 32, 10, 10])
    >>> [tuple(f.shape) for f in conv.factors]
    [(32, 8), (16, 8), (3, 8), (3, 8)]
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
        Rg = self._resolve_rank(rank)
        self.rank = (Rg * G,)
        kh, kw = self.kernel_size
        shapes = [(self.out_channels, Rg), (self.in_channels, Rg), (G * kh, Rg), (G * kw, Rg)]
        self.factors = nn.ParameterList([nn.Parameter(torch.empty(s, **factory))
                                         for s in shapes])
        self.reset_parameters()
        self.clear_plans()

    def _block_shape(self):
        G = self.groups
        return (self.out_channels // G, self.in_channels // G) + self.kernel_size

    def _resolve_rank(self, rank):
        G = self.groups
        block = self._block_shape()
        bound = cp_max_rank(block)
        if isinstance(rank, (tuple, list)) and len(rank) == 1:
            rank = rank[0]
        if isinstance(rank, numbers.Real) and not isinstance(rank, (bool, numbers.Integral)):
            if not 0.0 < rank <= 1.0:
                raise ValueError(f"rank as a float is the fraction of the dense kernel's "
                                 f"parameters to keep and must be in (0, 1]; got {rank!r}")
            budget = rank * math.prod(block) * G
            per = self.out_channels + self.in_channels + G * (block[2] + block[3])
            return max(1, min(bound, int(budget // per)))
        if isinstance(rank, bool) or not isinstance(rank, numbers.Integral):
            raise TypeError(f"rank must be a positive int or a float in (0, 1]; got {rank!r}")
        if rank < 1:
            raise ValueError(f"rank must be >= 1; got {rank}")
        Rg = _group_rank(int(rank), G)
        if Rg > bound:
            raise ValueError(f"rank must be <= {bound * G} ({bound} per group: no kernel block of "
                             f"shape {block} has a higher CP rank); got {rank}")
        return Rg

    def reset_parameters(self) -> None:
        """Gaussian factors with ``nn.Conv2d``'s kernel variance: ``R_g sigma^8 = 1/(3 fan_in)``."""
        Rg = self.rank[0] // self.groups
        std = (dense_init_variance(self._fan_in()) / Rg) ** (1.0 / 8)
        with torch.no_grad():
            for f in self.factors:
                f.normal_(0.0, std)
        init_bias_(self.bias, self._fan_in())

    def _spec(self):
        return self._conv_options() + (self.rank[0],)

    @staticmethod
    def _seq_convs(spec):
        S, T, (kh, kw), stride, conv_pad, dil, G = spec[3:10]
        R = spec[-1]
        return [(S, R, (1, 1), (1, 1), (1, 1), G, (0, 0)),
                (R, R, (kh, 1), (stride[0], 1), (dil[0], 1), R, (conv_pad[0], 0)),
                (R, R, (1, kw), (1, stride[1]), (1, dil[1]), R, (0, conv_pad[1])),
                (R, T, (1, 1), (1, 1), (1, 1), G, (0, 0))]

    @staticmethod
    def _rebuild_cost(spec):
        S, T, (kh, kw) = spec[3], spec[4], spec[5]
        G, R = spec[9], spec[-1]
        n = T * (S // G) * kh * kw
        return 2 * n * (R // G) + (S // G) * kh * kw * R, 2 * n, 3

    def _seq_forward(self, x):
        out, inp, hgt, wid = self._list("factors")
        G, R = self.groups, self.rank[0]
        Rg = R // G
        kh, kw = self.kernel_size
        w1 = inp.reshape(G, -1, Rg).transpose(1, 2).reshape(R, -1, 1, 1)
        w2 = hgt.reshape(G, kh, Rg).transpose(1, 2).reshape(R, 1, kh, 1)
        w3 = wid.reshape(G, kw, Rg).transpose(1, 2).reshape(R, 1, 1, kw)
        (s2, p2, d2), (s3, p3, d3) = self._split_options()
        cl = _is_channels_last(x)
        x = _conv1x1(x, w1.reshape(R, -1), None, G, cl)
        x = F.conv2d(x, w2, None, s2, p2, d2, R)
        x = F.conv2d(x, w3, None, s3, p3, d3, R)
        return _conv1x1(x, out, self._param("bias"), G, cl)

    def dense_weight(self) -> torch.Tensor:
        """The kernel ``(out_channels, in_channels // groups, kh, kw)`` rebuilt from the factors."""
        out, inp, hgt, wid = tuple(self.factors)
        G = self.groups
        Rg = self.rank[0] // G
        kh, kw = self.kernel_size
        i = inp.reshape(G, -1, 1, 1, Rg)
        h = hgt.reshape(G, 1, kh, 1, Rg)
        w = wid.reshape(G, 1, 1, kw, Rg)
        kr = (i * h * w).reshape(G, -1, Rg)
        K = torch.bmm(out.reshape(G, -1, Rg), kr.transpose(1, 2))
        return K.reshape(self.out_channels, self.in_channels // G, kh, kw)

    def rank_dims(self):
        """One rank dimension ``'cp'``: component ``r`` is column ``r`` of every factor.

        With groups, component ``r`` of every group's block goes together.
        """
        return (RankDim("cp", self.rank[0] // self.groups,
                        tuple((f"factors.{k}", 1, 1) for k in range(4))),)

    def _with_parameters(self, params):
        fs = [params[f"factors.{k}"] for k in range(4)]
        return type(self).from_factors(fs, bias=params.get("bias"),
                                       **self._options(), implementation=self.implementation)

    def _options(self):
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation,
                    groups=self.groups, padding_mode=self.padding_mode)

    @classmethod
    def from_factors(cls, factors, bias=None, *, stride=1, padding=0, dilation=1, groups=1,
                     padding_mode="zeros", implementation="auto"):
        """Build a layer from its factors (copied).

        ``factors = [out (T, R/G), in (S, R/G), height (G kh, R/G), width (G kw, R/G)]``.
        """
        if len(factors) != 4:
            raise ValueError(f"factors must be [out, in, height, width]; got {len(factors)} "
                             "tensors")
        out, inp, hgt, wid = factors
        G = check_int(groups, "groups", min_value=1)
        Rg = out.shape[1]
        for name, f in zip(("in", "height", "width"), (inp, hgt, wid)):
            if f.dim() != 2 or f.shape[1] != Rg:
                raise ValueError(f"factor {name!r} must be a matrix with {Rg} columns like "
                                 f"'out'; got shape {tuple(f.shape)}")
        if hgt.shape[0] % G or wid.shape[0] % G:
            raise ValueError(f"height and width factors must have groups * kernel size rows; "
                             f"got {hgt.shape[0]} and {wid.shape[0]} for groups={G}")
        k = (hgt.shape[0] // G, wid.shape[0] // G)
        layer = cls(inp.shape[0], out.shape[0], k, Rg * G, stride=stride, padding=padding,
                    dilation=dilation, groups=G, bias=bias is not None,
                    padding_mode=padding_mode, device=out.device, dtype=out.dtype,
                    implementation=implementation)
        with torch.no_grad():
            for p, f in zip(layer.factors, factors):
                p.copy_(f)
            if bias is not None:
                layer.bias.copy_(bias)
        return layer

    @classmethod
    def from_dense(cls, module, rank, *, implementation="auto", n_iter_max=100, random_state=0):
        """Convert a trained ``nn.Conv2d`` by a CP decomposition of each group's kernel block.

        Examples
        --------
        >>> import torch
        >>> from tensornet.nn import CPConv2d
        >>> _ = torch.manual_seed(0)
        >>> conv = torch.nn.Conv2d(8, 16, 3, padding=1)
        >>> layer = CPConv2d.from_dense(conv, rank=0.5)
        >>> 0 < layer.approximation_error < 1
        True
        """
        from ..decomposition import cp

        cls._from_conv_checks(module)
        tmp = cls(module.in_channels, module.out_channels, rank=rank, bias=False,
                  **cls._conv_kwargs(module))
        G, Rg = tmp.groups, tmp.rank[0] // tmp.groups
        K = _decomposition_input(module.weight)
        Tg = module.out_channels // G
        cols = [[], [], [], []]
        for g in range(G):
            weights, fs = cp(K[g * Tg:(g + 1) * Tg], Rg, n_iter_max=n_iter_max,
                             random_state=random_state)
            norms = torch.stack([torch.linalg.vector_norm(f, dim=0) for f in fs])
            norms = torch.where(norms > 0, norms, torch.ones_like(norms))
            scale = (weights.abs() * norms.prod(0)) ** 0.25
            sign = torch.where(weights < 0, -torch.ones_like(weights), torch.ones_like(weights))
            for k, f in enumerate(fs):
                g_ = f / norms[k] * scale
                cols[k].append(g_ * sign if k == 0 else g_)
        dt, dev = module.weight.dtype, module.weight.device
        factors = [torch.cat(c, 0).to(device=dev, dtype=dt) for c in cols]
        layer = cls.from_factors(factors, bias=None if module.bias is None
                                 else module.bias.detach(), implementation=implementation,
                                 **{k: v for k, v in cls._conv_kwargs(module).items()
                                    if k != "kernel_size"})
        layer.approximation_error = relative_error(layer.dense_weight(), module.weight)
        return layer
