"""Demo section ``topics``: spectral LDA on the docstrings of Python's standard library."""

from __future__ import annotations

import time
from collections import Counter

import numpy as np

from . import new_figure
from ._common import progress


def section_topics(report, s) -> list[str]:
    """Fit TensorLDA on the stdlib docstrings; table of top words, bar charts of the topics."""
    from ..datasets import load_stdlib_docstrings
    from ..topics import TensorLDA, coherence, top_words

    bar = progress(s, total=3, desc="topics")
    bar.set_postfix_str("reading docstrings")
    corpus = load_stdlib_docstrings()
    X, vocab, _ = corpus.vectorize()
    bar.update()
    k = 8 if s.quick else 12
    bar.set_postfix_str(f"TensorLDA({k})")
    t0 = time.perf_counter()
    model = TensorLDA(k, random_state=s.seed).fit(X)
    seconds = time.perf_counter() - t0
    bar.update()
    bar.set_postfix_str("coherence")
    n_words = 8
    words = top_words(model, vocab, n_words)
    npmi = coherence(top_words(model, None, 10), X, "npmi")
    theta = model.transform(X)
    bar.update()
    bar.close()

    order = np.argsort(-np.asarray(model.alpha_))
    labels = np.asarray(corpus.labels) if corpus.labels is not None else None
    rows = []
    for rank, i in enumerate(order, start=1):
        devoted = np.argsort(-theta[:, i])[:20]
        modules = ""
        if labels is not None:
            modules = ", ".join(m for m, _ in Counter(labels[devoted]).most_common(3))
        rows.append([rank, f"{model.alpha_[i]:.3f}", " ".join(words[i]), modules])

    sec = report.section("Topics: spectral LDA on the standard library's docstrings")
    sec.text(f"{X.shape[0]:,} docstrings of Python's standard library modules, classes and "
             f"functions (always present offline), vocabulary {X.shape[1]:,} words, "
             f"{int(X.sum()):,} tokens. tensornet.topics.TensorLDA recovers {k} topics from "
             f"the whitened third-order moment tensor in {seconds:.2f} s (no sampling, no EM). "
             f"Mean NPMI coherence of the top-10 words: {npmi:.3f}. The modules column lists the "
             "modules most frequent among the 20 docstrings most devoted to each topic.")
    sec.table(["topic", "weight α", f"top {n_words} words", "modules of its docstrings"], rows)

    ncols = 4
    nrows = -(-k // ncols)
    fig, axes = new_figure(3.0 * ncols, 2.3 * nrows, nrows=nrows, ncols=ncols)
    comp = np.asarray(model.components_)
    vocab = np.asarray(vocab)
    for ax, (rank, i) in zip(axes.ravel(), enumerate(order, start=1)):
        top = np.argsort(-comp[i])[:n_words][::-1]
        ax.barh(np.arange(n_words), comp[i, top], color=f"C{(rank - 1) % 10}")
        ax.set_yticks(np.arange(n_words), vocab[top], fontsize=8)
        ax.set_title(f"topic {rank} (α={model.alpha_[i]:.3f})", fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
    for ax in axes.ravel()[k:]:
        ax.set_visible(False)
    sec.figure(fig, "topics_word_bars.png",
               "Each topic's most probable words (bar length: probability in the topic)")
    return [f"topics: {k} topics on {X.shape[0]:,} stdlib docstrings in {seconds:.2f} s, "
            f"NPMI {npmi:.3f}; largest: {' '.join(words[order[0]][:5])}"]
