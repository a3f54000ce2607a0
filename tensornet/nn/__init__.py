"""Tensorized PyTorch layers and recurrent cells.

Every layer follows ``torch.nn`` conventions (``device`` / ``dtype``
factory arguments, ``reset_parameters()``, ``extra_repr()``) and has
``from_dense(module, rank=...)`` and ``to_dense()``.
"""

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    # linear layers (weight in factorized form)
    "CPLinear": "_linear",
    "TuckerLinear": "_linear",
    "TTLinear": "_linear",
    # convolutions
    "CPConv2d": "_conv",
    "TuckerConv2d": "_conv",
    "TTConv2d": "_conv",
    # activation-tensor layers
    "TCL": "_tcl",
    "TRL": "_trl",
    # whole-model conversion
    "tensorize": "_tensorize",
    "TensorizeReport": "_tensorize",
    "LayerReport": "_tensorize",
    # shared pieces: base class, rank groups (pruning), feature-size factorizations
    "FactorizedModule": "_base",
    "RankDim": "_base",
    "balanced_factors": "_base",
    # higher-order tensor-train recurrent cells
    "TTLSTMCell": "_ttlstm",
    "TTLSTM": "_ttlstm",
})
