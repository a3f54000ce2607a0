"""Real data that ships inside installed packages, and synthetic generators.

Loaders read the files an installed package put on disk (never a download)
and raise an ImportError naming the package to install when it is missing.
"""

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    # synthetic tensors with known decompositions
    "make_low_rank_tensor": "_tensors",
    # images
    "load_digits_tensor": "_images",
    "load_mnist_subset": "_images",
    # text
    "make_lda_corpus": "_text",
    "TextCorpus": "_text",
    "default_vectorizer": "_text",
    "read_corpus": "_text",
    "load_news_articles": "_text",
    "load_parlspeech": "_text",
    "load_lee_corpus": "_text",
    "load_stdlib_docstrings": "_text",
    # time series
    "make_genz": "_series",
    "load_co2": "_series",
    "load_seattle_weather": "_series",
    "load_electricity_demand": "_series",
    "load_nyc_weather": "_series",
    "load_call_arrivals": "_series",
})
