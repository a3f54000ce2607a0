"""Topic models with tensor methods.

:class:`TensorLDA` learns latent Dirichlet allocation by the method of
moments: unbiased word co-occurrence moments from sparse counts, whitening
by a randomized range finder, and an orthogonal decomposition of the
k x k x k whitened third moment. The metrics (:func:`coherence`,
:func:`document_completion_loglik`, :func:`match_topics`) take any model's
topics and prior, so different topic models are compared by the same code.

The moment functions are public for streaming and distributed use: every
term is a sum over documents (:class:`MomentSums` add up).
"""

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    "TensorLDA": "_lda",
    # metrics shared by every topic model
    "coherence": "_metrics",
    "top_words": "_metrics",
    "match_topics": "_metrics",
    "TopicMatch": "_metrics",
    "document_completion_loglik": "_inference",
    "variational_doc_topics": "_inference",
    "split_counts": "_inference",
    "refine_topics": "_inference",
    # building blocks
    "as_count_matrix": "_counts",
    "CountMatrix": "_counts",
    "MomentSums": "_moments",
    "ProjectedMoments": "_moments",
    "first_pass": "_moments",
    "e2_product": "_moments",
    "range_basis": "_moments",
    "accumulate_moment_sums": "_moments",
    "project_moments": "_moments",
    "whiten": "_moments",
    "whitened_tensor": "_moments",
    "tensor_power_method": "_decompose",
    "orthogonal_als": "_decompose",
})
