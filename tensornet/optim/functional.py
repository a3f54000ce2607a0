"""Stateless arithmetic of the Bregman optimizers (prox operators, subgradients, updates).

Re-exports :mod:`tensornet.optim._functional`.
"""

from ._functional import (  # noqa: F401
    __all__,
    adabreg_foreach_,
    adabreg_update_,
    group_norms,
    group_size,
    group_soft_threshold,
    group_weight,
    linbreg_foreach_,
    linbreg_update_,
    penalty,
    prox,
    prox_sgd_update_,
    soft_threshold,
    subgradient,
)
