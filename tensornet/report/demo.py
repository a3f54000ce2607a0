"""The tour behind ``tensornet demo``: one function per capability.

Each ``section_*`` function runs one part of the tour on data that ships
offline, adds a section (tables and figures) to a :class:`~tensornet.report.Report`
and returns a few summary lines for the command line to print. The library
itself never prints.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import Report, new_figure
from ._common import progress

logger = logging.getLogger(__name__)

__all__ = ["DemoSettings", "SECTIONS", "run_demo"]


@dataclass
class DemoSettings:
    """How to run the tour.

    Attributes
    ----------
    out : path
        Folder for ``index.html`` and the PNG files (created when written).
    seed : int, default 0
        Seeds data splits, initialisations and training order; torch's
        global generator is restored after each use.
    device : {'cpu', 'cuda'}, default 'cpu'
        Where the networks train (``'cuda:1'`` style names are accepted).
    quick : bool, default False
        Smaller models, fewer epochs and settings (well under a minute).
    progress : bool, default False
        tqdm bars on stderr for the long steps (the CLI turns them on).
    """

    out: Path
    seed: int = 0
    device: str = "cpu"
    quick: bool = False
    progress: bool = False

    def __post_init__(self):
        self.out = Path(self.out)
        if self.device not in ("cpu", "cuda") and not str(self.device).startswith("cuda:"):
            raise ValueError(f"device must be 'cpu' or 'cuda'; got {self.device!r}")


# --------------------------------------------------------------------------- tensors
def section_tensors(report: Report, s: DemoSettings) -> list[str]:
    """Contraction and decompositions on the 8x8 digits stacked as a tensor."""
    import tensorly as tl

    from .. import contract_plan
    from ..datasets import load_digits_tensor
    from ..decomposition import cp, tt, tucker

    images, _ = load_digits_tensor()
    n = 600 if s.quick else len(images)
    X = images[:n]
    sec = report.section("Tensors: contraction and decompositions")
    sec.text(f"The first {n} 8×8 handwritten digits of scikit-learn, stacked as a "
             f"{X.shape[0]}×8×8 tensor, decomposed in CP, Tucker and tensor-train form at "
             "several ranks. Compression is the dense size over the size of the factors.")
    rows, recon = [], {}
    size = X.size
    settings = [("CP", 8), ("CP", 24), ("Tucker", (32, 6, 6)), ("Tucker", (16, 5, 5)),
                ("TT", (8, 6)), ("TT", (24, 8))]
    if s.quick:
        settings = settings[::2]
    for kind, rank in progress(s, settings, desc="tensors: decompositions"):
        t0 = time.perf_counter()
        if kind == "CP":
            dec = cp(X, rank, n_iter_max=50 if s.quick else 200, random_state=s.seed)
            approx = tl.cp_to_tensor(dec)
            n_params = sum(f.size for f in dec.factors) + rank
        elif kind == "Tucker":
            dec = tucker(X, rank, random_state=s.seed)
            approx = tl.tucker_to_tensor(dec)
            n_params = dec.core.size + sum(f.size for f in dec.factors)
        else:
            dec = tt(X, rank=(1,) + tuple(rank) + (1,))
            approx = tl.tt_to_tensor(dec)
            n_params = sum(c.size for c in dec.factors)
        secs = time.perf_counter() - t0
        err = float(np.linalg.norm(approx - X) / np.linalg.norm(X))
        rows.append([kind, str(rank), n_params, f"{size / n_params:.1f}×", f"{err:.3f}",
                     f"{secs:.2f} s"])
        recon[f"{kind} {rank}"] = approx
    sec.table(["decomposition", "rank", "parameters", "compression", "relative error", "time"],
              rows)
    show = list(recon)[: 3 if s.quick else 4]
    fig, axes = new_figure(1.4 * 8, 1.5 * (len(show) + 1), nrows=len(show) + 1, ncols=8)
    for j in range(8):
        axes[0, j].imshow(X[j], cmap="gray_r")
        for i, key in enumerate(show, start=1):
            axes[i, j].imshow(recon[key][j], cmap="gray_r")
    for i, key in enumerate(["original"] + show):
        axes[i, 0].set_ylabel(key, fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    sec.figure(fig, "digits_reconstructions.png", "Digits and their low-rank reconstructions")

    plan = contract_plan("bijkl,aimc,cjnd,dkoe,elpf->bmnop", (256, 8, 8, 8, 8), (1, 8, 8, 16),
                         (16, 8, 8, 16), (16, 8, 8, 16), (16, 8, 8, 1))
    dense = 2 * 256 * 4096 * 4096
    sec.text(f"A contraction plan for a 4096×4096 TT-matrix layer (rank 16) on a batch of 256: "
             f"path {plan.path}, {plan.flops / 1e9:.2f} GFLOP against {dense / 1e9:.2f} GFLOP "
             f"for the dense product, largest intermediate {plan.largest_intermediate:,} "
             "elements. Plans are found once per shape and cached.")
    best = min(rows, key=lambda r: float(r[4]))
    return [f"tensors: digits {X.shape}, best fit {best[0]} rank {best[1]} with relative error "
            f"{best[4]} at {best[3]} compression"]


def section_layers(report: Report, s: DemoSettings) -> list[str]:
    """Dense MLP on the digits against its TT / CP / Tucker versions (accuracy vs parameters)."""
    from ._tour_layers import section_layers as run

    return run(report, s)


def section_topics(report: Report, s: DemoSettings) -> list[str]:
    """TensorLDA on the standard library's docstrings (top words, word bars)."""
    from ._tour_topics import section_topics as run

    return run(report, s)


def section_forecast(report: Report, s: DemoSettings) -> list[str]:
    """TT-LSTM against LSTM / linear / seasonal naive on weekly CO₂ (band, error vs horizon)."""
    from ._tour_forecast import section_forecast as run

    return run(report, s)


def section_bregman(report: Report, s: DemoSettings) -> list[str]:
    """AdaBreg + RankL1 rank path on a TT-layer MLP, then prune_ranks."""
    from ._tour_bregman import section_bregman as run

    return run(report, s)


#: section name -> function, in the order of the tour
SECTIONS = {
    "tensors": section_tensors,
    "layers": section_layers,
    "topics": section_topics,
    "forecast": section_forecast,
    "bregman": section_bregman,
}


def run_demo(settings: DemoSettings, only=None, on_section=None):
    """Run the tour (or the sections in ``only``) and write the report.

    ``only`` is an iterable of section names (see :data:`SECTIONS`), run in
    the tour's order; unknown names raise ValueError. ``on_section(lines)``,
    when given, is called with each section's summary lines as soon as it
    ends (the CLI prints them). Returns ``(index_path, summary_lines)``.

    Examples
    --------
    >>> import tempfile
    >>> from tensornet.report.demo import DemoSettings, run_demo
    >>> index, lines = run_demo(DemoSettings(tempfile.mkdtemp(), quick=True), only=["topics"])
    >>> index.name, lines[0].startswith("topics: 8 topics")
    ('index.html', True)
    """
    if not isinstance(settings, DemoSettings):
        raise TypeError(f"settings must be a DemoSettings; got {type(settings).__name__}")
    if only is None:
        names = list(SECTIONS)
    else:
        if isinstance(only, str):
            only = [only]
        wanted = [str(n) for n in only]
        unknown = [n for n in wanted if n not in SECTIONS]
        if unknown or not wanted:
            raise ValueError(f"only must name sections among {', '.join(SECTIONS)}; got "
                             f"{wanted!r}")
        names = [n for n in SECTIONS if n in wanted]
    report = Report("tensornet tour",
                    f"seed {settings.seed}, device {settings.device}"
                    f"{', quick' if settings.quick else ''}")
    lines, times = [], []
    for name in names:
        t0, start = time.perf_counter(), len(lines)
        logger.info("demo section %s", name)
        lines += SECTIONS[name](report, settings)
        times.append((name, time.perf_counter() - t0))
        lines.append(f"  ({name}: {times[-1][1]:.1f} s)")
        if on_section is not None:
            on_section(lines[start:])
    _about(report, times)
    index = report.write(settings.out)
    return index, lines


def _about(report: Report, times) -> None:
    """A last section: how long each part took, and on what."""
    import importlib.metadata
    import platform

    import torch

    versions = []
    for pkg in ("tensornet", "numpy", "tensorly", "torch", "scikit-learn", "statsmodels"):
        try:
            versions.append(f"{pkg} {importlib.metadata.version(pkg)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    sec = report.section("About this run")
    sec.text(f"Python {platform.python_version()} on {platform.platform()}, "
             f"{torch.get_num_threads()} torch thread(s); " + ", ".join(versions) + ".")
    sec.table(["section", "time"], [[n, f"{t:.1f} s"] for n, t in times]
              + [["total", f"{sum(t for _, t in times):.1f} s"]])
