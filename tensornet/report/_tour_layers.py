"""Demo section ``layers``: a dense MLP on the digits and its TT / CP / Tucker versions."""

from __future__ import annotations

import time

from . import new_figure
from ._common import accuracy, digits_split, n_params, progress, seeded_torch, train_epochs

FACTORIZATIONS = ("tt", "cp", "tucker")
LABELS = {"tt": "TT", "cp": "CP", "tucker": "Tucker"}


def section_layers(report, s) -> list[str]:
    """Train a dense MLP on the 8×8 digits, tensorize it at a few ranks, fine-tune, compare."""
    import torch
    from torch import nn

    from ..nn import tensorize

    Xtr, ytr, Xte, yte = digits_split(s.seed, s.device)
    epochs, ft_epochs = (8, 2) if s.quick else (25, 6)
    fractions = (0.03, 0.12) if s.quick else (0.02, 0.05, 0.1, 0.2)
    with seeded_torch(s.seed):
        dense = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                              nn.Linear(256, 10)).to(s.device)
    bar = progress(s, total=epochs, desc="layers: dense MLP")
    t0 = time.perf_counter()
    train_epochs(dense, torch.optim.Adam(dense.parameters(), lr=1e-3), Xtr, ytr, epochs, s.seed,
                 on_epoch=lambda e: bar.update())
    bar.close()
    acc_dense, p_dense = accuracy(dense, Xte, yte), n_params(dense)
    rows = [["dense", "—", "—", f"{p_dense:,}", "1.0×", "—", f"{acc_dense:.1f}",
             f"{time.perf_counter() - t0:.1f} s"]]
    points = {f: [] for f in FACTORIZATIONS}
    jobs = [(f, r) for f in FACTORIZATIONS for r in fractions]
    for f, frac in progress(s, jobs, desc="layers: tensorize + fine-tune"):
        t0 = time.perf_counter()
        extra = {"n_iter_max": 30, "random_state": s.seed} if f == "cp" else {}
        with seeded_torch(s.seed):
            rep = tensorize(dense, f, rank=frac, min_params=4096, **extra)
        model = rep.model
        acc0 = accuracy(model, Xte, yte)
        train_epochs(model, torch.optim.Adam(model.parameters(), lr=1e-3), Xtr, ytr, ft_epochs,
                     s.seed)
        acc1, p = accuracy(model, Xte, yte), n_params(model)
        ranks = "; ".join(f"{r.rank}" for r in rep.replaced)
        rows.append([LABELS[f], f"{frac:g}", ranks, f"{p:,}", f"{p_dense / p:.1f}×",
                     f"{acc0:.1f}", f"{acc1:.1f}", f"{time.perf_counter() - t0:.1f} s"])
        points[f].append((p, acc1, acc0))

    sec = report.section("Tensorized layers: accuracy against parameters")
    sec.text(f"A 64-256-256-10 MLP trained dense for {epochs} epochs on {len(ytr)} of the 8×8 "
             f"handwritten digits (scikit-learn), tested on the other {len(yte)}. Its two large "
             "layers are then replaced by tensor-train (TT), CP and Tucker layers initialised "
             "from the trained weights (tensornet.nn.tensorize, rank given as the fraction of "
             f"each layer's parameters to keep) and fine-tuned for {ft_epochs} epochs.")
    sec.table(["model", "rank (fraction)", "ranks (layer 0; layer 2)", "parameters",
               "compression", "accuracy after conversion %", "accuracy %", "time"], rows)
    fig, ax = new_figure(6.4, 4.0)
    for f, marker in zip(FACTORIZATIONS, "osD"):
        pts = sorted(points[f])
        ax.plot([p for p, _, _ in pts], [a for _, a, _ in pts], marker=marker, label=LABELS[f])
    ax.scatter([p_dense], [acc_dense], marker="*", s=160, color="k", zorder=3, label="dense")
    ax.set_xscale("log")
    ax.set_xlabel("parameters (whole model)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Digits MLP: accuracy against parameters after fine-tuning")
    ax.grid(alpha=0.3)
    ax.legend()
    sec.figure(fig, "layers_accuracy_params.png",
               "Test accuracy against parameters for TT, CP and Tucker layers")
    best = {f: max(points[f], key=lambda t: t[1]) for f in FACTORIZATIONS}
    return ["layers: dense MLP {:.1f}% with {:,} parameters; ".format(acc_dense, p_dense)
            + ", ".join(f"{LABELS[f]} {a:.1f}% with {p:,}" for f, (p, a, _) in best.items())]
