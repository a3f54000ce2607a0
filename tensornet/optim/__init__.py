"""Group-sparse Bregman training that prunes tensor ranks while it trains.

* Optimizers following ``torch.optim``: :class:`LinBreg` and :class:`AdaBreg`
  (Bregman iterations, Bungert et al. 2022), :class:`ProxSGD` (the
  proximal-gradient baseline).
* Regularizers: :class:`L1` (entries), :class:`GroupL1` (neurons, filters,
  kernels), :class:`RankL1` (rank components of tensorized layers).
* Rank tools: :func:`rank_groups`, :func:`rank_param_groups`,
  :func:`low_rank_init` (the sparse start), :func:`prune_ranks` (cut zero
  components; outputs unchanged) and :class:`RankController` (steer ``lam``
  to a target size).
* The update arithmetic as stateless functions: :mod:`tensornet.optim.functional`.

See ``docs/bregman.md`` ("Learning ranks with Bregman iterations").
"""

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    # optimizers
    "LinBreg": "_bregman",
    "AdaBreg": "_bregman",
    "ProxSGD": "_bregman",
    # regularizers
    "Regularizer": "_regularizers",
    "L1": "_regularizers",
    "GroupL1": "_regularizers",
    "RankL1": "_regularizers",
    "regularizer_from_config": "_regularizers",
    # rank groups and pruning
    "RankGroup": "_ranks",
    "PruneReport": "_ranks",
    "LayerPruning": "_ranks",
    "tensorized_layers": "_ranks",
    "rank_groups": "_ranks",
    "rank_param_groups": "_ranks",
    "low_rank_init": "_ranks",
    "prune_ranks": "_ranks",
    # steering lam
    "RankController": "_controller",
    "regularized_params": "_controller",
})
