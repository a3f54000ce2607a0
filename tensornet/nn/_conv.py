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

from ._cp_conv import CPConv2d
from ._tt_conv import TTConv2d
from ._tucker_conv import TuckerConv2d

__all__ = ["CPConv2d", "TuckerConv2d", "TTConv2d"]
