"""Linear layers whose weight is held in CP, Tucker or tensor-train (TT-matrix) form.

The weight ``W`` has the ``nn.Linear`` layout ``(out_features,
in_features)``. Both sizes are factorized, ``out_features = prod(out_shape)``
and ``in_features = prod(in_shape)`` (C order), and ``W`` reshaped to
``out_shape + in_shape`` is a low-rank tensor:

* ``CPLinear``: ``sum_r  A_1[:, r] o ... o A_p[:, r] o B_1[:, r] o ... o B_q[:, r]``;
* ``TuckerLinear``: a core ``(*out_ranks, *in_ranks)`` times one factor per mode;
* ``TTLinear``: a TT-matrix, cores ``(r_{k-1}, out_shape[k], in_shape[k], r_k)``.

Each input shape gets its own forward path, chosen by the cost model of
:mod:`tensornet.nn._base` among contracting the factors with the input
(fused matrix products or a planned contraction) and rebuilding ``W`` once
followed by one matrix product; the choice is cached on the module.
"""

from ._cp_linear import CPLinear
from ._tt_linear import TTLinear
from ._tucker_linear import TuckerLinear

__all__ = ["CPLinear", "TuckerLinear", "TTLinear"]
