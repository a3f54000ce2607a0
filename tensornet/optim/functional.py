"""Stateless arithmetic of the Bregman optimizers (prox operators, subgradients, updates).

Re-exports :mod:`tensornet.optim._functional`.
"""

from ._functional import (  # noqa: F401
    adabreg_foreach_,
    adabreg_update_,
    group_norms,
    group_size,
    group_weight,
    group_soft_threshold,
    linbreg_foreach_,
    linbreg_update_,
    penalty,
    prox,
    prox_sgd_update_,
    soft_threshold,
    subgradient,
)
from ._functional import __all__  # noqa: F401
