"""Convolution with a tensor-train kernel: :class:`TTConv2d`."""

from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F

from ..decomposition._common import resolve_tt_rank
from ._base import (
    balance_norms,
    check_rank_type,
    dense_init_variance,
    init_bias_,
    RankDim,
    register,
    relative_error,
)
from ._conv_base import _conv1x1, _FactorizedConv2d, _is_channels_last
from ._linear_base import _decomposition_input

__all__ = ["TTConv2d"]


@register
class TTConv2d(_FactorizedConv2d):
    """Convolution with a tensor-train kernel: 1x1 -> kx1 -> 1xk -> 1x1.

    The kernel, ordered ``(in, kh, kw, out)``, is a tensor train
    ``K[t, s, y, x] = C_1[0, s, :] @ C_2[:, y, :] @ C_3[:, x, :] @ C_4[:, t, 0]``
    with cores ``(1, S, r_1)``, ``(r_1, kh, r_2)``, ``(r_2, kw, r_3)``,
    ``(r_3, T, 1)``, run as four convolutions with ``r_1``, ``r_2``,
    ``r_3`` intermediate channels. Needs ``groups=1``.

    Parameters
    ----------
    in_channels, out_channels, kernel_size, stride, padding, dilation, bias, padding_mode,
    device, dtype
        As in ``torch.nn.Conv2d``.
    rank : int, tuple or float
        An int caps every bond (clipped to what each bond allows), a tuple
        gives ``(r_1, r_2, r_3)`` (or all five ranks), a float in (0, 1] the
        fraction of the dense kernel's parameters to spend.
    groups : int, default 1
        Only 1 is supported (use :class:`TuckerConv2d` or :class:`CPConv2d`
        for grouped convolutions).
    implementation : {'auto', 'factorized', 'dense'}, default 'auto'

    Attributes
    ----------
    cores : nn.ParameterList
        The four cores above.
    rank : tuple of int
        ``(1, r_1, r_2, r_3, 1)``.

    Examples
    --------
    >>> import torch
    >>> from tensornet.nn import TTConv2d
    >>> conv = TTConv2d(16, 32, 3, rank=8, padding=1)
    >>> conv.rank
    (1, 8, 8, 8, 1)
    >>> conv(torch.randn(2, 16, 10, 10)).shape
    torch.Size([2, 32, 10, 10])
    """

    def __init__(self, in_channels, out_channels, kernel_size, rank, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, padding_mode="zeros", device=None,
                 dtype=None, *, implementation="auto"):
        factory = {"device": device, "dtype": dtype}
        super().__init__()
        if groups != 1:
            raise ValueError(f"groups must be 1 for TTConv2d (a tensor train over the channel "
                             f"modes cannot keep the block structure of groups={groups}); use "
                             "TuckerConv2d or CPConv2d for grouped convolutions")
        check_rank_type(rank)
        self._init_conv(in_channels, out_channels, kernel_size, stride, padding, dilation,
                        groups, bias, padding_mode, implementation, factory)
        kh, kw = self.kernel_size
        shape = (self.in_channels, kh, kw, self.out_channels)
        if rank is None:
            raise TypeError("rank must be an int, a tuple of ints or a float in (0, 1]; got None")
        self.rank = resolve_tt_rank(shape, rank)
        r = self.rank
        self.cores = nn.ParameterList([nn.Parameter(torch.empty(r[k], n, r[k + 1], **factory))
                                       for k, n in enumerate(shape)])
        self.reset_parameters()
        self.clear_plans()

    def reset_parameters(self) -> None:
        """Gaussian cores with ``r_1 r_2 r_3 prod(sigma_k^2) = 1/(3 fan_in)``."""
        var = dense_init_variance(self._fan_in())
        std = math.sqrt((var / math.prod(self.rank)) ** 0.25)
        with torch.no_grad():
            for c in self.cores:
                c.normal_(0.0, std)
        init_bias_(self.bias, self._fan_in())

    def _spec(self):
        return self._conv_options() + (self.rank,)

    @staticmethod
    def _seq_convs(spec):
        S, T, (kh, kw), stride, conv_pad, dil, G = spec[3:10]
        _, r1, r2, r3, _ = spec[-1]
        return [(S, r1, (1, 1), (1, 1), (1, 1), 1, (0, 0)),
                (r1, r2, (kh, 1), (stride[0], 1), (dil[0], 1), 1, (conv_pad[0], 0)),
                (r2, r3, (1, kw), (1, stride[1]), (1, dil[1]), 1, (0, conv_pad[1])),
                (r3, T, (1, 1), (1, 1), (1, 1), 1, (0, 0))]

    @staticmethod
    def _rebuild_cost(spec):
        S, T, (kh, kw) = spec[3], spec[4], spec[5]
        _, r1, r2, r3, _ = spec[-1]
        flops = 2 * (S * r1 * kh * r2 + S * kh * r2 * kw * r3 + S * kh * kw * r3 * T)
        return flops, 2 * S * kh * kw * T, 3

    def _seq_forward(self, x):
        c1, c2, c3, c4 = self._list("cores")
        (s2, p2, d2), (s3, p3, d3) = self._split_options()
        cl = _is_channels_last(x)
        x = _conv1x1(x, c1[0].T, None, 1, cl)
        x = F.conv2d(x, c2.permute(2, 0, 1)[:, :, :, None], None, s2, p2, d2)
        x = F.conv2d(x, c3.permute(2, 0, 1)[:, :, None, :], None, s3, p3, d3)
        return _conv1x1(x, c4[:, :, 0].T, self._param("bias"), 1, cl)

    def dense_weight(self) -> torch.Tensor:
        """The kernel ``(out_channels, in_channels, kh, kw)`` rebuilt from the cores."""
        c1, c2, c3, c4 = tuple(self.cores)
        S, kh, kw, T = (c.shape[1] for c in (c1, c2, c3, c4))
        left = (c1[0] @ c2.reshape(c2.shape[0], -1)).reshape(S * kh, -1)      # (S kh, r2)
        left = (left @ c3.reshape(c3.shape[0], -1)).reshape(S * kh * kw, -1)  # (S kh kw, r3)
        K = left @ c4[:, :, 0]                                                # (S kh kw, T)
        return K.T.reshape(T, S, kh, kw)

    def rank_dims(self):
        """Bonds ``'bond1'`` ... ``'bond3'``.

        Group ``r`` of bond ``k``: slice ``r`` of the last dimension of core
        ``k-1`` and of the first dimension of core ``k``.
        """
        return tuple(RankDim(f"bond{k}", self.rank[k],
                             ((f"cores.{k - 1}", 2, 1), (f"cores.{k}", 0, 1)))
                     for k in range(1, 4))

    def _with_parameters(self, params):
        return type(self).from_factors([params[f"cores.{k}"] for k in range(4)],
                                       bias=params.get("bias"), stride=self.stride,
                                       padding=self.padding, dilation=self.dilation,
                                       padding_mode=self.padding_mode,
                                       implementation=self.implementation)

    @classmethod
    def from_factors(cls, cores, bias=None, *, stride=1, padding=0, dilation=1,
                     padding_mode="zeros", implementation="auto"):
        """Build a layer from cores ``(1, S, r1), (r1, kh, r2), (r2, kw, r3), (r3, T, 1)``."""
        if len(cores) != 4 or any(c.dim() != 3 for c in cores):
            raise ValueError("cores must be four 3-D tensors (1, S, r1), (r1, kh, r2), "
                             "(r2, kw, r3), (r3, T, 1); got "
                             f"{[tuple(c.shape) for c in cores]}")
        ranks = tuple(int(c.shape[0]) for c in cores) + (int(cores[-1].shape[2]),)
        for k in range(1, 4):
            if cores[k].shape[0] != cores[k - 1].shape[2]:
                raise ValueError(f"cores[{k - 1}] and cores[{k}] have mismatched ranks")
        S, kh, kw, T = (int(c.shape[1]) for c in cores)
        ref = cores[0]
        layer = cls(S, T, (kh, kw), ranks, stride=stride, padding=padding, dilation=dilation,
                    bias=bias is not None, padding_mode=padding_mode, device=ref.device,
                    dtype=ref.dtype, implementation=implementation)
        with torch.no_grad():
            for p, c in zip(layer.cores, cores):
                p.copy_(c)
            if bias is not None:
                layer.bias.copy_(bias)
        return layer

    @classmethod
    def from_dense(cls, module, rank, *, implementation="auto", random_state=0):
        """Convert a trained ``nn.Conv2d`` by TT-SVD of its kernel ordered ``(in, kh, kw, out)``.

        Examples
        --------
        >>> import torch
        >>> from tensornet.nn import TTConv2d
        >>> _ = torch.manual_seed(0)
        >>> layer = TTConv2d.from_dense(torch.nn.Conv2d(8, 16, 3), rank=0.5)
        >>> 0 < layer.approximation_error < 1
        True
        """
        from ..decomposition import tt

        cls._from_conv_checks(module)
        if module.groups != 1:
            raise ValueError(f"TTConv2d.from_dense needs a convolution with groups=1; got "
                             f"groups={module.groups} (use TuckerConv2d or CPConv2d)")
        tmp = cls(module.in_channels, module.out_channels, rank=rank, bias=False,
                  **cls._conv_kwargs(module))
        K = _decomposition_input(module.weight)
        est = tt(K.permute(1, 2, 3, 0), rank=tmp.rank, random_state=random_state)
        dt, dev = module.weight.dtype, module.weight.device
        cores = [c.to(device=dev, dtype=dt) for c in balance_norms(list(est.factors))]
        kwargs = {k: v for k, v in cls._conv_kwargs(module).items()
                  if k not in ("kernel_size", "groups")}
        layer = cls.from_factors(cores, bias=None if module.bias is None
                                 else module.bias.detach(), implementation=implementation,
                                 **kwargs)
        layer.approximation_error = relative_error(layer.dense_weight(), module.weight)
        return layer
