"""Common part of the factorized convolutions: shared helpers and base class."""

from __future__ import annotations

import numbers

import torch
from torch import nn
import torch.nn.functional as F

from .._validation import check_int
from ._base import add_bias, Cost, FactorizedModule


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
    channels-last inputs, and under ``torch.compile``, it is a convolution.
    """
    if channels_last or torch.compiler.is_compiling():
        # (under torch.compile the compiler picks layouts itself; it also mishandles
        # a convolution fed by the view of a batched product when sizes are symbolic)
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
        return F.conv2d(x, self.dense_weight(), self._param("bias"), self.stride, self._conv_pad,
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
