"""``tensornet topics``: fit a spectral topic model to a text corpus."""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from . import CLIError
from ._io import echo

EXAMPLES = """examples:
  tensornet topics fit articles.txt --n-topics 20 --out topics
  tensornet topics fit corpus_dir --format dir --n-topics 10 --alpha0 auto --out topics
  tensornet topics fit speeches.csv --format csv --column text --n-topics 30 --out topics

PATH is read as one document per line (lines), one document per .txt file in a
directory (dir), or one document per row of a CSV column (csv). Words are counted
with a CountVectorizer (lower case, words of 2+ letters, English stop words unless
--stop-words none, words in over --max-df of the documents or under --min-df
documents dropped). Writes to DIR:
  topics.json     top words, weights, alpha and coherence of every topic
  doc_topic.npy   document-topic proportions (documents x topics, rows sum to 1)
  topics.png      the top words of every topic
  vocabulary.txt  the vocabulary, one word per line (column order of the model)
  model/          the fitted TensorLDA (TensorLDA.load(DIR / "model"))
"""


def add_parser(sub):
    p = sub.add_parser("topics", help="spectral topic models (TensorLDA) on a text corpus",
                       description="Topic models learned by the method of moments: a few passes "
                                   "over the word counts and a k x k x k tensor decomposition.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    f = actions.add_parser("fit", help="fit topics to a corpus and write them to a folder",
                           description="Fit a TensorLDA topic model to a text corpus, print the "
                                       "topics and write them (JSON, PNG), the document-topic "
                                       "matrix (.npy) and the model to --out.",
                           epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    f.add_argument("path", metavar="PATH", help="text file, directory of .txt files, or CSV file")
    f.add_argument("--n-topics", type=int, required=True, metavar="K", help="number of topics")
    f.add_argument("--out", required=True, metavar="DIR", help="output folder")
    f.add_argument("--format", default="lines", choices=["lines", "dir", "csv"],
                   help="how PATH holds documents (default: %(default)s)")
    f.add_argument("--column", default="text", help="CSV column with the text "
                                                    "(default: %(default)s)")
    f.add_argument("--alpha0", default="1.0",
                   help="sum of the Dirichlet prior, or 'auto' to choose it by held-out "
                        "likelihood (default: %(default)s)")
    f.add_argument("--decomposition", default="power", choices=["power", "als"],
                   help="tensor decomposition (default: %(default)s)")
    f.add_argument("--refine-passes", type=int, default=3, metavar="N",
                   help="variational EM passes that polish the spectral topics; 0 keeps the "
                        "pure method of moments, the fastest fit (default: %(default)s)")
    f.add_argument("--n-words", type=int, default=10, help="top words shown and saved per topic "
                                                           "(default: %(default)s)")
    f.add_argument("--min-df", type=int, default=2,
                   help="drop words in fewer documents (default: %(default)s)")
    f.add_argument("--max-df", type=float, default=0.5,
                   help="drop words in a larger share of the documents (default: %(default)s)")
    f.add_argument("--stop-words", default="english", choices=["english", "none"],
                   help="stop-word list (default: %(default)s)")
    f.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    f.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(_topics_parser=p)
    return p


def _alpha0(text: str):
    if text == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError:
        raise CLIError(f"--alpha0 must be a positive number or 'auto'; got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise CLIError(f"--alpha0 must be a positive number or 'auto'; got {text!r}")
    return value


def _check_args(args):
    if args.n_topics < 1:
        raise CLIError(f"--n-topics must be a positive integer; got {args.n_topics}")
    if args.refine_passes < 0:
        raise CLIError(f"--refine-passes must be 0 or more; got {args.refine_passes}")
    if args.n_words < 1:
        raise CLIError(f"--n-words must be a positive integer; got {args.n_words}")
    if args.min_df < 1:
        raise CLIError(f"--min-df must be at least 1; got {args.min_df}")
    if not 0 < args.max_df <= 1:
        raise CLIError(f"--max-df must be in (0, 1]; got {args.max_df}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} exists and is not a folder")
    return _alpha0(args.alpha0), out


def _plot(path: Path, words, weights, alpha):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = len(words)
    cols = min(5, k)
    rows = math.ceil(k / cols)
    n = max(len(w) for w in words)
    fig = Figure(figsize=(3.2 * cols, 0.25 * n * rows + 0.9 * rows), dpi=100)
    FigureCanvasAgg(fig)
    for i in range(k):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.barh(range(len(words[i]))[::-1], weights[i], color="tab:blue")
        ax.set_yticks(range(len(words[i]))[::-1])
        ax.set_yticklabels(words[i], fontsize=8)
        ax.set_title(f"topic {i}  (α={alpha[i]:.3g})", fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    fig.savefig(path)


def _fit(args) -> int:
    import numpy as np

    from ..datasets import default_vectorizer, read_corpus
    from ..topics import TensorLDA, coherence

    alpha0, out = _check_args(args)
    verbose = not args.quiet
    t0 = time.perf_counter()
    try:
        corpus = read_corpus(args.path, args.format, column=args.column, verbose=verbose)
    except (FileNotFoundError, ValueError, UnicodeDecodeError, OSError) as exc:
        raise CLIError(str(exc)) from None
    vec = default_vectorizer(n_docs=len(corpus), min_df=args.min_df if len(corpus) > 1 else 1,
                             max_df=args.max_df if len(corpus) > 1 else 1.0,
                             stop_words=None if args.stop_words == "none" else args.stop_words)
    try:
        X, vocab, _ = corpus.vectorize(vec)
    except ValueError as exc:  # e.g. "empty vocabulary"
        raise CLIError(f"cannot count words in {args.path}: {exc}") from None
    t_read = time.perf_counter() - t0
    echo(f"read {X.shape[0]} documents, {X.sum():,} tokens, vocabulary {X.shape[1]:,} "
          f"({t_read:.1f} s)")
    model = TensorLDA(args.n_topics, alpha0=alpha0, decomposition=args.decomposition,
                      refine_passes=args.refine_passes, random_state=args.seed,
                      verbose=verbose)
    t1 = time.perf_counter()
    try:
        model.fit(X)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    t_fit = time.perf_counter() - t1
    theta = model.transform(X)
    k = args.n_topics
    n = min(args.n_words, X.shape[1])
    order = np.argsort(-model.components_, axis=1, kind="stable")[:, :n]
    words = [[str(vocab[j]) for j in row] for row in order]
    weights = [[float(model.components_[i, j]) for j in row] for i, row in enumerate(order)]
    ids = [[int(j) for j in row] for row in order]
    npmi = coherence(ids, X, "npmi", aggregate=False) if n >= 2 else [float("nan")] * k
    umass = coherence(ids, X, "umass", aggregate=False) if n >= 2 else [float("nan")] * k

    alpha_note = f", alpha0 chosen {model.alpha0_:g}" if alpha0 == "auto" else ""
    echo(f"fitted {k} topics in {t_fit:.2f} s ({model.n_docs_} documents with 3+ tokens"
          f"{alpha_note})")
    for i in range(k):
        echo(f"topic {i:>2} (α={model.alpha_[i]:.3f}): {' '.join(words[i])}")
    if n >= 2:
        echo(f"coherence of the top {n} words: NPMI {np.mean(npmi):.3f}, "
              f"UMass {np.mean(umass):.3f}")

    out.mkdir(parents=True, exist_ok=True)
    summary = {
        "source": str(args.path), "format": args.format, "n_documents": int(X.shape[0]),
        "n_documents_in_moments": int(model.n_docs_), "vocabulary_size": int(X.shape[1]),
        "n_topics": k, "alpha0": float(model.alpha0_), "alpha0_scores": {
            str(a): s for a, s in model.alpha0_scores_.items()},
        "fit_seconds": t_fit, "decomposition_residual": float(model.decomposition_residual_),
        "topics": [{"id": i, "alpha": float(model.alpha_[i]), "words": words[i],
                    "weights": weights[i], "npmi": float(npmi[i]), "umass": float(umass[i])}
                   for i in range(k)],
    }
    (out / "topics.json").write_text(json.dumps(summary, indent=1) + "\n")
    np.save(out / "doc_topic.npy", np.asarray(theta, dtype=np.float64))
    (out / "vocabulary.txt").write_text("\n".join(map(str, vocab)) + "\n")
    model.save(out / "model")
    _plot(out / "topics.png", words, weights, model.alpha_)
    echo(f"wrote {out / 'topics.json'}, {out / 'doc_topic.npy'}, {out / 'topics.png'}, "
          f"{out / 'vocabulary.txt'} and {out / 'model'}")
    return 0


def run(args) -> int:
    if getattr(args, "action", None) != "fit":
        args._topics_parser.print_help()
        return 2
    return _fit(args)
