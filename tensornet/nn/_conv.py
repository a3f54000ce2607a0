"""2-D convolutions with a CP, Tucker-2 or tensor-train kernel.

The kernel has the ``nn.Conv2d`` layout ``(out_channels, in_channels //
groups, kh, kw)``. Each factorized layer runs either as a short sequence of
small convolutions (the factorized path) or, when that is cheaper for the
input shape at hand, as one convolution with the rebuilt kernel:

* :class:`CPConv2d` (Lebedev et al., 2015): 1x1 (S->R), depthwise kx1,
  depthwise 1xk, 1x1 (R->T);
* :class:`TuckerConv2d` (Kim et al., 2016): 1x1 (S->R_in), kxk core
  (R_in->R_out), 1x1 (R_out->T);
* :class:`TTConv2d`: the kernel as a tensor train over ``(S, kh, kw, T)``:
  1x1 (S->r1), kx1 (r1->r2), 1xk (r2->r3), 1x1 (r3->T).

Stride, padding (numbers, ``'same'``, ``'valid'``, any ``padding_mode``),
dilation and groups are carried exactly: a padding that is not plain zeros
is applied once to the input, and the strided / dilated directions go to
the convolutions that act along them. With ``groups > 1`` CP and Tucker
layers factorize every group's block of the kernel separately, with the
same rank per group (the 1x1 convolutions are then grouped convolutions);
:class:`TTConv2d` needs ``groups=1``.
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_int
from ..decomposition._common import cp_max_rank, resolve_tt_rank
from ._base import (
    add_bias,
    check_rank_type,
    Cost,
    FactorizedModule,
    RankDim,
    balance_norms,
    dense_init_variance,
    init_bias_,
    register,
    relative_error,
)
from ._linear import _decomposition_input

__all__ = ["CPConv2d", "TuckerConv2d", "TTConv2d"]

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _pair(value, name, min_value):
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (int(value), int(value))
    try:
        value = tuple(value)
    except TypeError:
        raise TypeError(f"{name} must be an int or a pair of ints; got {value!r}") from None
    if len(value) != 2 or any(isinstance(v, bool) or not isinstance(v, numbers.Integral)
                              for v in value):
        raise ValueError(f"{name} must be an int or a pair of ints; got {value!r}")
    if any(v < min_value for v in value):
        raise ValueError(f"{name} must be >= {min_value}; got {value!r}")
    return (int(value[0]), int(value[1]))


def _conv_out(size, k, s, d):
    return (size - d * (k - 1) - 1) // s + 1


def _conv_cost(B, cin, cout, H, W, kh, kw, stride, dil, groups):
    """FLOPs, elements moved and output size of one convolution (padding already applied)."""
    Ho, Wo = _conv_out(H, kh, stride[0], dil[0]), _conv_out(W, kw, stride[1], dil[1])
    flops = 2 * B * Ho * Wo * cout * (cin // groups) * kh * kw
    moved = B * cin * H * W + B * cout * Ho * Wo + cout * (cin // groups) * kh * kw
    return flops, moved, Ho, Wo


def _conv1x1(x, w, bias, groups, channels_last):
    """A 1x1 convolution with weight ``w (out, in // groups)``.

    On NCHW inputs this is a batched matrix product over the pixels (oneDNN's
    1x1 convolution spends most of its time converting layouts there); on
    channels-last inputs oneDNN's own convolution is the fast one.
    """
    if channels_last:
        return F.conv2d(x, w[:, :, None, None], bias, 1, 0, 1, groups)
    shape = x.shape
    if groups == 1:
        x3 = x.reshape(-1, shape[-3], shape[-2] * shape[-1])
        if bias is None:  # bmm, not matmul: matmul would fold the batch through a transpose
            y = torch.bmm(w.expand(x3.shape[0], -1, -1), x3)
        else:
            y = torch.baddbmm(bias[None, :, None].to(x3.dtype) if bias.dtype != x3.dtype
                              else bias[None, :, None], w.expand(x3.shape[0], -1, -1), x3)
    else:
        x4 = x.reshape(-1, groups, shape[-3] // groups, shape[-2] * shape[-1])
        y = torch.matmul(w.reshape(groups, -1, w.shape[1]), x4)
        if bias is not None:
            y = add_bias(y, bias.reshape(groups, -1, 1))
    return y.reshape(shape[:-3] + (w.shape[0],) + shape[-2:])


def _is_channels_last(x):
    return x.dim() == 4 and not x.is_contiguous() and \
        x.is_contiguous(memory_format=torch.channels_last)


class _FactorizedConv2d(FactorizedModule):
    """Common part of the factorized convolutions (options, padding, sizes)."""

    def _init_conv(self, in_channels, out_channels, kernel_size, stride, padding, dilation,
                   groups, bias, padding_mode, implementation, factory):
        self._init_base(implementation)
        self.in_channels = check_int(in_channels, "in_channels", min_value=1)
        self.out_channels = check_int(out_channels, "out_channels", min_value=1)
        self.kernel_size = _pair(kernel_size, "kernel_size", 1)
        self.stride = _pair(stride, "stride", 1)
        self.dilation = _pair(dilation, "dilation", 1)
        self.groups = check_int(groups, "groups", min_value=1)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"in_channels ({self.in_channels}) and out_channels "
                             f"({self.out_channels}) must both be divisible by groups "
                             f"({self.groups})")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {', '.join(map(repr, _PADDING_MODES))}"
                             f"; got {padding_mode!r}")
        self.padding_mode = padding_mode
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"padding must be 'same', 'valid', an int or a pair of ints; "
                                 f"got {padding!r}")
            if padding == "same" and self.stride != (1, 1):
                raise ValueError("padding='same' is not supported for strided convolutions "
                                 f"(stride={self.stride}), as in torch.nn.Conv2d")
            self.padding = padding
        else:
            self.padding = _pair(padding, "padding", 0)
        if not isinstance(bias, bool):
            raise TypeError(f"bias must be True or False; got {bias!r}")
        if bias:
            self.bias = nn.Parameter(torch.empty(self.out_channels, **factory))
        else:
            self.register_parameter("bias", None)
        # padding applied to the input beforehand (F.pad order: left, right, top, bottom)
        # and the symmetric zero padding left to the convolutions
        if self.padding == "valid":
            pre, conv_pad = None, (0, 0)
        elif self.padding == "same":
            tot = [d * (k - 1) for d, k in zip(self.dilation, self.kernel_size)]
            lo = [t // 2 for t in tot]
            hi = [t - l for t, l in zip(tot, lo)]
            if lo == hi and padding_mode == "zeros":
                pre, conv_pad = None, tuple(lo)
            else:
                pre, conv_pad = (lo[1], hi[1], lo[0], hi[0]), (0, 0)
        elif padding_mode == "zeros":
            pre, conv_pad = None, self.padding
        else:
            ph, pw = self.padding
            pre, conv_pad = ((pw, pw, ph, ph) if (ph or pw) else None), (0, 0)
        self._prepad = pre
        self._conv_pad = conv_pad

    # ----------------------------------------------------------------- common API
    @property
    def dense_params(self) -> int:
        """Parameters of the equivalent ``nn.Conv2d`` (kernel and bias)."""
        kh, kw = self.kernel_size
        return (self.out_channels * (self.in_channels // self.groups) * kh * kw
                + (self.out_channels if self.bias is not None else 0))

    def _fan_in(self):
        kh, kw = self.kernel_size
        return (self.in_channels // self.groups) * kh * kw

    def _input_shape(self, batch_size, input_size=None):
        batch_size = check_int(batch_size, "batch_size", min_value=1)
        if input_size is None:
            raise ValueError("input_size must be given for a convolution: the (height, width) "
                             "of the input feature maps, e.g. flops(32, input_size=(32, 32))")
        h, w = _pair(input_size, "input_size", 1)
        return (batch_size, self.in_channels, h, w)

    def dense_flops(self, batch_size: int = 1, input_size=None) -> int:
        """FLOPs of the equivalent ``nn.Conv2d`` on a batch of ``input_size`` maps."""
        B, S, H, W = self._input_shape(batch_size, input_size)
        H, W = self._padded(H, W)
        H, W = H + 2 * self._conv_pad[0], W + 2 * self._conv_pad[1]
        kh, kw = self.kernel_size
        return _conv_cost(B, S, self.out_channels, H, W, kh, kw, self.stride, self.dilation,
                          self.groups)[0]

    def _padded(self, H, W):
        """Size after the padding applied to the input beforehand (not the convolutions')."""
        if self._prepad is not None:
            wl, wr, ht, hb = self._prepad
            return H + ht + hb, W + wl + wr
        return H, W

    def to_dense(self) -> nn.Conv2d:
        """The equivalent ``nn.Conv2d`` (same options, device and dtype), kernel rebuilt."""
        p = next(self.parameters())
        conv = nn.Conv2d(self.in_channels, self.out_channels, self.kernel_size, self.stride,
                         self.padding, self.dilation, self.groups, self.bias is not None,
                         self.padding_mode, device=p.device, dtype=p.dtype)
        with torch.no_grad():
            conv.weight.copy_(self.dense_weight())
            if self.bias is not None:
                conv.bias.copy_(self.bias)
        return conv

    def _conv_options(self):
        return (self.in_channels, self.out_channels, self.kernel_size, self.stride,
                self._conv_pad, self.dilation, self.groups, self._prepad, self.padding_mode,
                self.bias is not None)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"rank={self.rank}, stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding!r}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode!r}"
        if self.implementation != "auto":
            s += f", implementation={self.implementation!r}"
        return s

    # ----------------------------------------------------------------- programs
    @classmethod
    def _candidates(cls, spec, shape, cached=False):
        dev, impl = spec[1], spec[2]
        S, T, (kh, kw), stride, conv_pad, dil, G, prepad = spec[3:11]
        if len(shape) not in (3, 4) or shape[-3] not in (S, None):
            raise ValueError(f"input must have shape (batch, in_channels={S}, height, width) or "
                             f"(in_channels, height, width); got {tuple(shape)}")
        # symbolic sizes (None, under torch.compile with dynamic shapes): both paths work
        # for any size, the choice is made for a nominal 32 x 32 batch of 32
        B = (shape[0] if len(shape) == 4 else 1) or 32
        H, W = shape[-2] or 32, shape[-1] or 32
        if prepad is not None:
            H, W = H + prepad[2] + prepad[3], W + prepad[0] + prepad[1]
        Hp, Wp = H + 2 * conv_pad[0], W + 2 * conv_pad[1]
        Ho, Wo = _conv_out(Hp, kh, stride[0], dil[0]), _conv_out(Wp, kw, stride[1], dil[1])
        if Ho < 1 or Wo < 1:
            raise ValueError(f"input of shape {tuple(shape)} is smaller than the (dilated) "
                             f"kernel {kh}x{kw} (dilation {dil}, padding "
                             f"{conv_pad if prepad is None else prepad})")
        # factorized path: the sequence of convolutions (each pads what it convolves)
        seq = Cost(dev, grad=not cached)
        h, w = H, W
        for cin, cout, k, st, d, g, pad in cls._seq_convs(spec):
            f, m, h, w = _conv_cost(B, cin, cout, h + 2 * pad[0], w + 2 * pad[1], k[0], k[1],
                                    st, d, g)
            seq.op(f, m, calls=2)
        dense = Cost(dev, grad=not cached)
        rf, rm, ro = cls._rebuild_cost(spec)
        dense.op(rf, rm, calls=ro)
        f, m, _, _ = _conv_cost(B, S, T, Hp, Wp, kh, kw, stride, dil, G)
        dense.op(f, m, calls=2)
        return [(("conv_seq", seq.flops), seq, "factorized"),
                (("conv_dense", dense.flops), dense, "dense")]

    def _run(self, prog, x):
        if self._prepad is not None:
            x = F.pad(x, self._prepad, mode="constant" if self.padding_mode == "zeros"
                      else self.padding_mode)
        if prog[0] == "conv_seq":
            return self._seq_forward(x)
        return F.conv2d(x, self.dense_weight(), self.bias, self.stride, self._conv_pad,
                        self.dilation, self.groups)

    def _split_options(self):
        """Options of the kx1 and 1xk convolutions of a separable (CP / TT) path."""
        (sh, sw), (ph, pw), (dh, dw) = self.stride, self._conv_pad, self.dilation
        return ((sh, 1), (ph, 0), (dh, 1)), ((1, sw), (0, pw), (1, dw))

    @classmethod
    def _from_conv_checks(cls, module):
        if not isinstance(module, nn.Conv2d):
            raise TypeError(f"{cls.__name__}.from_dense expects a torch.nn.Conv2d; got "
                            f"{type(module).__name__}")

    @staticmethod
    def _conv_kwargs(module):
        return dict(kernel_size=module.kernel_size, stride=module.stride,
                    padding=module.padding, dilation=module.dilation, groups=module.groups,
                    padding_mode=module.padding_mode)


def _group_rank(rank, groups, name="rank"):
    if rank % groups:
        raise ValueError(f"{name} must be divisible by groups={groups} (every group gets "
                         f"{name} // groups components); got {rank}")
    return rank // groups


# ============================================================================ CP
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
        """Gaussian factors with the kernel variance of ``nn.Conv2d``: ``R_g sigma^8 = 1/(3 fan_in)``."""
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
        out, inp, hgt, wid = tuple(self.factors)
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
        return _conv1x1(x, out, self.bias, G, cl)

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
        """One rank dimension ``'cp'``: component ``r`` is column ``r`` of every factor (every group)."""
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
        """Build a layer from ``[out (T, R/G), in (S, R/G), height (G kh, R/G), width (G kw, R/G)]``."""
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


# ============================================================================ Tucker-2
@register
class TuckerConv2d(_FactorizedConv2d):
    """Convolution with a Tucker-2 kernel: 1x1 (S->R_in) -> kxk core (R_in->R_out) -> 1x1 (R_out->T).

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
        u_out, u_in = tuple(self.factors)
        G = self.groups
        ri = self.rank[1] // G
        w1 = u_in.reshape(G, -1, ri).transpose(1, 2).reshape(self.rank[1], -1)
        cl = _is_channels_last(x)
        x = _conv1x1(x, w1, None, G, cl)
        x = F.conv2d(x, self.core, None, self.stride, self._conv_pad, self.dilation, G)
        return _conv1x1(x, u_out, self.bias, G, cl)

    def dense_weight(self) -> torch.Tensor:
        """The kernel ``(out_channels, in_channels // groups, kh, kw)`` rebuilt from core and factors."""
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
        """Build a layer from ``core (R_out, R_in/G, kh, kw)`` and ``[U_out (T, R_out/G), U_in (S, R_in/G)]``."""
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


# ============================================================================ TT
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
        c1, c2, c3, c4 = tuple(self.cores)
        (s2, p2, d2), (s3, p3, d3) = self._split_options()
        cl = _is_channels_last(x)
        x = _conv1x1(x, c1[0].T, None, 1, cl)
        x = F.conv2d(x, c2.permute(2, 0, 1)[:, :, :, None], None, s2, p2, d2)
        x = F.conv2d(x, c3.permute(2, 0, 1)[:, :, None, :], None, s3, p3, d3)
        return _conv1x1(x, c4[:, :, 0].T, self.bias, 1, cl)

    def dense_weight(self) -> torch.Tensor:
        """The kernel ``(out_channels, in_channels, kh, kw)`` rebuilt from the cores."""
        c1, c2, c3, c4 = tuple(self.cores)
        S, kh, kw, T = (c.shape[1] for c in (c1, c2, c3, c4))
        left = (c1[0] @ c2.reshape(c2.shape[0], -1)).reshape(S * kh, -1)      # (S kh, r2)
        left = (left @ c3.reshape(c3.shape[0], -1)).reshape(S * kh * kw, -1)  # (S kh kw, r3)
        K = left @ c4[:, :, 0]                                                # (S kh kw, T)
        return K.T.reshape(T, S, kh, kw)

    def rank_dims(self):
        """Bonds ``'bond1'`` ... ``'bond3'``: slice ``r`` of core ``k-1``'s last and core ``k``'s first dimension."""
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
