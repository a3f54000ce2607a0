"""Demo section ``bregman``: learn the TT ranks of an MLP while it trains, then cut them."""

from __future__ import annotations

import time

from . import new_figure
from ._common import accuracy, digits_split, n_params, progress, seeded_torch, train_epochs

LAM = 0.05          # RankL1 weight: larger than on MNIST for this small net (fewer, larger steps)


def section_bregman(report, s) -> list[str]:
    """AdaBreg + RankL1 from a rank-1 start (inverse scale space); rank path; prune_ranks."""
    from torch import nn

    from ..nn import TTLinear
    from ..optim import (
        AdaBreg,
        RankL1,
        low_rank_init,
        prune_ranks,
        rank_groups,
        rank_param_groups,
        regularized_params,
    )

    Xtr, ytr, Xte, yte = digits_split(s.seed, s.device)
    epochs = 10 if s.quick else 40
    max_rank = 8 if s.quick else 16
    with seeded_torch(s.seed):
        model = nn.Sequential(TTLinear(64, 256, rank=max_rank), nn.ReLU(),
                              TTLinear(256, 256, rank=max_rank), nn.ReLU(),
                              nn.Linear(256, 10)).to(s.device)
    p_full = n_params(model)
    low_rank_init(model, rank=1)
    opt = AdaBreg(rank_param_groups(model, reg=RankL1(LAM)), lr=1e-3)
    path = []       # (epoch, {(layer, bond): active}, kept, accuracy)

    def record(epoch):
        ranks = {(g.layer, g.rank): g.active for g in rank_groups(model)}
        kept = regularized_params(opt)[0] + sum(
            p.numel() for grp in opt.param_groups if grp.get("reg") is None for p in grp["params"])
        path.append((epoch, ranks, kept, accuracy(model, Xte, yte)))
        bar.update()
        bar.set_postfix_str(f"params {kept:,}, acc {path[-1][3]:.1f}%")

    bar = progress(s, total=epochs + 1, desc="bregman: AdaBreg + RankL1")
    t0 = time.perf_counter()
    record(0)
    train_epochs(model, opt, Xtr, ytr, epochs, s.seed, on_epoch=record)
    bar.close()
    seconds = time.perf_counter() - t0
    acc_before = accuracy(model, Xte, yte)
    rep = prune_ranks(model, example_input=Xte[:1])
    model = rep.model
    acc_after = accuracy(model, Xte, yte)

    sec = report.section("Bregman training: ranks learned while training, then pruned")
    sec.text(f"A 64-256-256-10 MLP on the 8×8 digits whose two hidden layers are TT layers of "
             f"maximum rank {max_rank} ({p_full:,} parameters at full rank). Every TT bond "
             "starts with one active component (tensornet.optim.low_rank_init); AdaBreg with "
             f"the group penalty RankL1 (λ = {LAM}) switches components on as the loss asks "
             f"for them (inverse scale space). After {epochs} epochs ({seconds:.1f} s), "
             "prune_ranks removes the components that stayed exactly zero; the output does "
             f"not change (test accuracy {acc_before:.1f} % before the cut, {acc_after:.1f} % "
             "after).")
    keys = sorted(path[0][1])
    fig, (ax1, ax2) = new_figure(11.0, 3.8, ncols=2)
    epochs_axis = [e for e, *_ in path]
    for j, key in enumerate(keys):
        layer, bond = key
        ax1.plot(epochs_axis, [r[key] for _, r, _, _ in path], color=f"C{int(layer) % 10}",
                 ls=["-", "--", ":", "-."][j % 4], label=f"layer {layer}, {bond}")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("active rank")
    ax1.set_title("Rank path: active components per TT bond")
    ax1.legend(fontsize=7)
    ax1.grid(alpha=0.3)
    ax2.plot([k for *_, k, _ in path], [a for *_, a in path], marker="o", ms=3)
    for e, _, k, a in path[:-1:max(1, len(path) // 6)] + path[-1:]:
        ax2.annotate(f"{e}", (k, a), fontsize=7, textcoords="offset points", xytext=(3, -9))
    ax2.set_xlabel("parameters in use")
    ax2.set_ylabel("test accuracy (%)")
    ax2.set_title("Accuracy against parameters along the path (epochs marked)")
    ax2.grid(alpha=0.3)
    sec.figure(fig, "bregman_rank_path.png",
               "Ranks per layer against epoch, and accuracy against parameters along the path")
    rows = []
    for lp in rep.layers:
        rows.append([lp.name, lp.kind,
                     ", ".join(f"{k}={v}" for k, v in lp.ranks_before.items()),
                     ", ".join(f"{k}={v}" for k, v in lp.ranks_after.items()),
                     f"{lp.params_before:,} → {lp.params_after:,}",
                     f"{lp.flops_before:,} → {lp.flops_after:,}"])
    rows.append(["total (model)", "", "", "", f"{rep.params_before:,} → {rep.params_after:,}",
                 f"{rep.flops_before:,} → {rep.flops_after:,}"])
    sec.table(["layer", "kind", "ranks before", "ranks after", "parameters", "FLOPs (1 sample)"],
              rows, caption="prune_ranks report")
    return [f"bregman: ranks learned in {epochs} epochs, pruned {rep.params_before:,} → "
            f"{rep.params_after:,} parameters, accuracy {acc_after:.1f}% "
            f"(full-rank model: {p_full:,} parameters)"]
