"""Out-of-core TensorLDA on a Dask cluster against the in-memory fit: time, memory, equality.

A synthetic LDA corpus (k = 20 topics, Dirichlet α = 0.1 each, Poisson
document lengths of mean 100) is written to disk as chunks of sparse counts
(``scipy.sparse.save_npz``, one file per 100,000 documents; 25,000 with
``--quick``), generated in parallel on a throw-away cluster. Then, on the
same files:

* **in memory**: one fresh process loads every chunk into one CSR matrix
  and runs ``TensorLDA.fit`` (2 threads);
* **Dask**: a fresh ``LocalCluster`` of 2 worker processes (1 thread each,
  ``memory_limit`` 4 GB) runs ``TensorLDA.fit`` on a Dask array whose
  chunks are read from their files by each pass (5 passes), partial sums
  added on the workers.

Reported: wall time of each fit, peak resident memory of each Dask worker
(``VmHWM``, the workers start fresh) and of the in-memory process, the
corpus' in-memory size, the largest difference between the two models'
topics and priors, and the recovery error of the planted topics.

The issue asks for a corpus larger than this machine's memory (24 GB):
20,000,000 documents of this kind hold about 2e9 non-zeros, 15 GB as the
int32 CSR files store them and 22 GB as a float64 CSR. Generating and
fitting that takes about an hour on this shared 2-core machine (where
benchmarks take turns), so the measured run is 2,000,000 documents (about
8 minutes with the in-memory comparison); the Dask fit is repeated on the
first quarter of the chunks to check whether worker memory grows with
the number of documents, and the time for 20,000,000 is **extrapolated**
linearly (every pass is O(nnz)). The chunk files stay in the page cache at
this size, so "from disk" means from the OS cache; a corpus larger than
memory would be read at disk speed.

    python -m benchmarks.bench_dask_topics [--quick] [--docs N] [--data-dir DIR]
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import multiprocessing as mp
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import _harness as H

NAME = "bench_dask_topics"
SECTION = "dask-topics"
TARGET_DOCS = 20_000_000


def _config(args):
    if args.quick:
        return {"n_docs": args.docs or 100_000, "n_words": 5_000, "n_topics": 20,
                "chunk": 25_000, "doc_length": 100, "alpha": 0.1, "seed": 0}
    return {"n_docs": args.docs or 2_000_000, "n_words": 50_000, "n_topics": 20,
            "chunk": 100_000, "doc_length": 100, "alpha": 0.1, "seed": 0}


# --------------------------------------------------------------------------- data on disk
def _topics(cfg):
    rng = np.random.default_rng(cfg["seed"])
    return rng.dirichlet(np.full(cfg["n_words"], 0.1), size=cfg["n_topics"])


def _write_chunk(path, n_docs, topics, alpha, doc_length, seed):
    import scipy.sparse as sp

    from tensornet.datasets import make_lda_corpus

    X, _, _ = make_lda_corpus(n_docs, topics.shape[1], topics.shape[0], alpha=alpha,
                              doc_length=doc_length, topics=topics, random_state=seed)
    tmp = str(path) + ".tmp.npz"
    sp.save_npz(tmp, X, compressed=False)
    os.replace(tmp, path)
    return int(X.nnz)


def make_corpus_on_disk(cfg, root: Path):
    """Write the chunk files (reused when already there); returns (paths, sizes, seconds)."""
    from dask.distributed import Client, LocalCluster

    key = hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:12]
    folder = root / f"lda-{cfg['n_docs']}-{key}"
    folder.mkdir(parents=True, exist_ok=True)
    sizes = [min(cfg["chunk"], cfg["n_docs"] - a) for a in range(0, cfg["n_docs"], cfg["chunk"])]
    paths = [folder / f"chunk-{i:05d}.npz" for i in range(len(sizes))]
    todo = [i for i, p in enumerate(paths) if not p.exists()]
    t0 = time.perf_counter()
    if todo:
        topics = _topics(cfg)
        with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cl, \
                Client(cl) as client:
            tp = client.scatter(topics, broadcast=True)
            futs = [client.submit(_write_chunk, paths[i], sizes[i], tp, cfg["alpha"],
                                  cfg["doc_length"], cfg["seed"] * 100_003 + i + 1, pure=False)
                    for i in todo]
            client.gather(futs)
    return paths, sizes, time.perf_counter() - t0, folder


def _load(path):
    import scipy.sparse as sp

    return sp.load_npz(path)


def dask_counts(paths, sizes, n_words):
    import dask
    import dask.array as da
    import scipy.sparse as sp

    meta = sp.csr_matrix((0, n_words), dtype=np.int32)
    return da.concatenate([da.from_delayed(dask.delayed(_load)(str(p)), shape=(n, n_words),
                                           dtype=np.int32, meta=meta)
                           for p, n in zip(paths, sizes)], axis=0)


# --------------------------------------------------------------------------- the two fits
def _model(cfg):
    from tensornet.topics import TensorLDA

    return TensorLDA(n_topics=cfg["n_topics"], alpha0=cfg["alpha"] * cfg["n_topics"],
                     random_state=0)


def in_memory_fit(cfg, paths, threads):
    """Runs in a fresh process: load every chunk, fit, report time and peak memory."""
    import scipy.sparse as sp

    H.pin_threads(threads)
    t0 = time.perf_counter()
    X = sp.vstack([_load(p) for p in paths], format="csr")
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    lda = _model(cfg).fit(X)
    fit_s = time.perf_counter() - t0
    return {"load_s": load_s, "fit_s": fit_s, "peak_rss_mb": H.peak_rss_mb(),
            "corpus_mb": (X.data.nbytes + X.indices.nbytes + X.indptr.nbytes) / 2**20,
            "nnz": int(X.nnz), "components": lda.components_, "alpha": lda.alpha_}


def _worker_peak():
    from benchmarks._harness import peak_rss_mb

    return peak_rss_mb()


def dask_fit(cfg, paths, sizes):
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, memory_limit="4GB",
                      dashboard_address=None) as cl, Client(cl) as client:
        client.run(H.pin_threads, 1)
        start = client.run(_worker_peak)
        X = dask_counts(paths, sizes, cfg["n_words"])
        t0 = time.perf_counter()
        lda = _model(cfg).fit(X)
        fit_s = time.perf_counter() - t0
        peaks = client.run(_worker_peak)
    return {"fit_s": fit_s, "worker_peak_rss_mb": sorted(peaks.values()),
            "worker_rss_at_start_mb": sorted(start.values()),
            "client_peak_rss_mb": H.peak_rss_mb(), "components": lda.components_,
            "alpha": lda.alpha_, "n_docs": lda.n_docs_}


# --------------------------------------------------------------------------- driver
def run(args):
    from tensornet.topics import match_topics

    cfg = _config(args)
    root = Path(args.data_dir or os.path.join(tempfile.gettempdir(), "tensornet-bench-dask"))
    paths, sizes, gen_s, folder = make_corpus_on_disk(cfg, root)
    disk_mb = sum(p.stat().st_size for p in paths) / 2**20
    print(f"corpus: {cfg['n_docs']:,} documents in {len(paths)} chunks, {disk_mb:,.0f} MB on "
          f"disk ({gen_s:.0f} s to generate)", flush=True)
    ctx = mp.get_context("spawn")
    with cf.ProcessPoolExecutor(1, mp_context=ctx) as ex:
        mem = ex.submit(in_memory_fit, cfg, paths, args.threads).result()
    print(f"in memory: {mem['fit_s']:.1f} s, peak {mem['peak_rss_mb']:,.0f} MB", flush=True)
    dk = dask_fit(cfg, paths, sizes)
    print(f"dask: {dk['fit_s']:.1f} s, worker peaks {dk['worker_peak_rss_mb']}", flush=True)
    # the same fit on the first quarter of the chunks: does worker memory grow with n_docs?
    q = max(1, len(paths) // 4)
    sub = dask_fit(cfg, paths[:q], sizes[:q])
    print(f"dask, {sub['n_docs']:,} documents: {sub['fit_s']:.1f} s, worker peaks "
          f"{sub['worker_peak_rss_mb']}", flush=True)
    truth = _topics(cfg)
    res = {
        "config": cfg, "chunks": len(paths), "disk_mb": disk_mb, "generate_s": gen_s,
        "data_dir": str(folder), "nnz": mem["nnz"], "corpus_in_memory_mb": mem["corpus_mb"],
        "in_memory": {k: v for k, v in mem.items() if k not in ("components", "alpha")},
        "dask": {k: v for k, v in dk.items() if k not in ("components", "alpha")},
        "dask_quarter": {k: v for k, v in sub.items() if k not in ("components", "alpha")},
        "max_abs_diff_components": float(np.abs(dk["components"] - mem["components"]).max()),
        "max_rel_diff_alpha": float(np.abs(dk["alpha"] / mem["alpha"] - 1).max()),
        "recovery_l1_dask": match_topics(truth, dk["components"]).mean_l1,
        "recovery_l1_in_memory": match_topics(truth, mem["components"]).mean_l1,
    }
    scale = TARGET_DOCS / cfg["n_docs"]
    res["extrapolated_20M"] = {
        "label": "EXTRAPOLATED, not measured: Dask fit time x (20,000,000 / n_docs); worker "
                 "memory bounded by one chunk + V x m arrays (does not grow with n_docs); "
                 "disk and corpus size x the same factor",
        "dask_fit_s": dk["fit_s"] * scale, "disk_gb": disk_mb * scale / 1024,
        "corpus_in_memory_gb": mem["corpus_mb"] * scale / 1024,
        "corpus_float64_csr_gb": (12 * mem["nnz"] + 8 * cfg["n_docs"]) * scale / 2**30,
    }
    if args.no_keep:
        for p in paths:
            p.unlink()
    return res


def markdown(payload) -> str:
    r = payload["result"]
    cfg = r["config"]
    m = payload["machine"]
    ex = r["extrapolated_20M"]
    out = ["## Out-of-core TensorLDA on a Dask LocalCluster\n",
           (f"Machine: {m['cpu']}, {m['cores']} cores shared with other work. Synthetic LDA "
            f"corpus: {cfg['n_docs']:,} documents x {cfg['n_words']:,} words, k = "
            f"{cfg['n_topics']}, mean length {cfg['doc_length']}, {r['nnz']:,} non-zeros, "
            f"{r['chunks']} chunk files ({r['disk_mb']:,.0f} MB on disk, "
            f"{r['corpus_in_memory_mb']:,.0f} MB as one CSR in memory). One run each "
            f"(a fit takes minutes). {'(--quick run) ' if payload['quick'] else ''}"
            "Script: `python -m benchmarks.bench_dask_topics`."), ""]
    mem, dk = r["in_memory"], r["dask"]
    rows = [
        ["in memory (`TensorLDA.fit` on one CSR, 2 threads)", f"{mem['fit_s']:.1f} s",
         f"{mem['peak_rss_mb']:,.0f} MB (one process, corpus loaded)",
         f"{r['recovery_l1_in_memory']:.4f}"],
        [(f"Dask `LocalCluster`, 2 workers x 1 thread, {cfg['chunk']:,}-document chunks "
          "read from their files every pass"), f"{dk['fit_s']:.1f} s",
         " / ".join(f"{x:,.0f}" for x in dk["worker_peak_rss_mb"]) + " MB per worker ("
         + " / ".join(f"{x:,.0f}" for x in dk["worker_rss_at_start_mb"]) + " MB idle)",
         f"{r['recovery_l1_dask']:.4f}"],
    ]
    sub = r.get("dask_quarter")
    if sub:
        rows.append([(f"the same Dask fit on the first quarter of the chunks "
                      f"({sub['n_docs']:,} documents)"), f"{sub['fit_s']:.1f} s",
                     " / ".join(f"{x:,.0f}" for x in sub["worker_peak_rss_mb"])
                     + " MB per worker", "–"])
    out.append(H.markdown_table(["fit", "time", "peak memory", "topic L1 error (mean)"], rows))
    out.append(f"\nSame model: largest |Δ components_| = {r['max_abs_diff_components']:.1e}, "
               f"largest relative Δ alpha_ = {r['max_rel_diff_alpha']:.1e}.")
    out.append(f"\n**Extrapolated, not measured** to {TARGET_DOCS:,} documents: about "
               f"{ex['dask_fit_s'] / 60:.0f} min for the Dask fit on this machine, "
               f"{ex['disk_gb']:.0f} GB of chunk files ({ex['corpus_in_memory_gb']:.0f} GB as one "
               f"int32 CSR, {ex['corpus_float64_csr_gb']:.0f} GB as float64); per-worker memory "
               "stays at one chunk plus V x (k + oversampling) arrays"
               + (f" (measured: largest worker peak {max(sub['worker_peak_rss_mb']):,.0f} MB "
                  f"with {sub['n_docs']:,} documents, {max(dk['worker_peak_rss_mb']):,.0f} MB "
                  f"with {dk['n_docs']:,})." if sub else "."))
    out.append(f"\n**Not done as the issue asks**: the measured corpus ({r['disk_mb'] / 1024:.1f} GB) "
               "fits in this machine's memory (24 GB) and its chunk files were read from the OS "
               "page cache, not from disk. A corpus beyond memory (e.g. 20,000,000 documents: "
               f"{ex['corpus_float64_csr_gb']:.0f} GB as the float64 CSR an in-memory fit needs) "
               "was not generated or fitted: generating and fitting it would hold this shared "
               "2-core machine for about an hour.")
    if m.get("device", "cpu") == "cpu":
        out.append("\n**GPU: not measured.** No GPU was available for this run: the issue's "
                   "target (TensorLDA on 8,000,000 documents x 100,000 words, k = 20, in under "
                   "2 minutes on one H100) has no number here, and none is estimated; "
                   "`fit_dask` on CuPy chunks is covered by `tests/distributed/test_gpu.py` "
                   "(skipped without CUDA).")
    return "\n".join(out)


def main(argv=None):
    def extra(p):
        p.add_argument("--docs", type=int, default=None, help="documents (default 2,000,000; "
                       "quick 100,000)")
        p.add_argument("--data-dir", default=None, help="where the chunk files go (reused)")
        p.add_argument("--no-keep", action="store_true", help="delete the chunk files after")

    args = H.parse_args(__doc__.splitlines()[0], argv, extra)
    if args.device != "cpu":
        print("bench_dask_topics runs on CPU workers; GPU Dask workers would take CuPy chunks")
        return
    payload = {"machine": H.machine(args.device, args.threads), "quick": args.quick,
               "result": run(args)}
    H.write_results(NAME + ("-quick" if args.quick else ""), payload, args.device)
    md = markdown(payload)
    print(md)
    if not args.quick and not args.no_readme:
        H.update_readme(SECTION, md)


if __name__ == "__main__":
    main()
