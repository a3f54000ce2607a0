"""Scaling out: data-parallel training with ``torch.distributed`` and Dask topic models.

* signSGD with majority vote (Bernstein et al. 2018, 2019) as a
  ``DistributedDataParallel`` communication hook: each rank sends one bit
  per coordinate (:func:`register_majority_vote`, :func:`majority_vote_hook`),
  with the :class:`SignSGD` / :class:`Signum` optimizers that step along
  the vote; the bit packing and the vote as functions
  (:func:`pack_signs`, :func:`vote_from_packed`, :func:`majority_vote`).
* DDP helpers for tensorized models: :func:`prune_ranks_distributed`
  (the same components cut on every rank), :func:`broadcast_module`,
  :func:`replica_deviation`.
* Out-of-core spectral LDA on a ``dask.distributed`` cluster:
  :func:`fit_dask` fits a :class:`~tensornet.topics.TensorLDA` from a Dask
  array of sparse count chunks (or a Dask bag of tokenised documents with
  :func:`counts_from_bag`), every moment a sum over partitions.

Nothing here starts a process group or a Dask client: create them as
``torch.distributed`` / ``dask.distributed`` document and pass them in
(or let the defaults be found). See ``docs/distributed.md``.
"""

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    # sign compression and the vote
    "pack_signs": "_signs",
    "unpack_signs": "_signs",
    "vote_from_packed": "_signs",
    "majority_vote": "_signs",
    "packed_size": "_signs",
    "wire_bytes": "_signs",
    # DDP communication hook
    "MajorityVoteState": "_hooks",
    "majority_vote_hook": "_hooks",
    "register_majority_vote": "_hooks",
    # optimizers
    "SignSGD": "_signsgd",
    "Signum": "_signsgd",
    "signum_update_": "_signsgd",
    # DDP helpers
    "broadcast_module": "_ddp",
    "prune_ranks_distributed": "_ddp",
    "replica_deviation": "_ddp",
    # Dask
    "fit_dask": "_dask_lda",
    "counts_from_bag": "_dask_lda",
})
