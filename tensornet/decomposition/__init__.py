"""Tensor decompositions returning TensorLy's own classes.

* :func:`cp` — CP-ALS (dimension-tree MTTKRP) and non-negative CP (HALS)
  -> :class:`tensorly.cp_tensor.CPTensor`
* :func:`tucker` — HOOI / HOSVD -> :class:`tensorly.tucker_tensor.TuckerTensor`
* :func:`tt` — TT-SVD -> :class:`tensorly.tt_tensor.TTTensor`
* :func:`tt_matrix` — TT-matrix of a ``(out, in)`` matrix (the
  ``torch.nn.Linear.weight`` layout) -> :class:`tensorly.tt_matrix.TTMatrix`
* :func:`tt_round` — TT rounding (recompression) of a TT tensor or TT matrix
* :func:`randomized_svd`, :func:`randomized_range_finder` — randomized
  linear algebra used inside the above for large unfoldings

Every function accepts NumPy arrays, PyTorch tensors (CPU or CUDA) and
CuPy arrays, computes on that backend and device in the input's dtype,
and never changes TensorLy's global backend.
"""

from ._cp import cp
from ._svd import randomized_range_finder, randomized_svd
from ._tt import tt, tt_matrix, tt_round
from ._tucker import tucker

__all__ = [
    "cp",
    "randomized_range_finder",
    "randomized_svd",
    "tt",
    "tt_matrix",
    "tt_round",
    "tucker",
]
