"""``tensornet demo``: the tour on data that ships offline, written as an HTML report."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import CLIError
from ._io import echo

EXAMPLES = """sections (in the order they run):
  tensors   contraction plans and CP / Tucker / TT decompositions of the digits
  layers    a digits MLP against its TT / CP / Tucker versions (accuracy vs parameters)
  topics    spectral LDA (TensorLDA) on the docstrings of Python's standard library
  forecast  TT-LSTM against LSTM / linear / seasonal naive on weekly Mauna Loa CO2
  bregman   ranks learned while training (AdaBreg + RankL1), then pruned

examples:
  tensornet demo                          # the whole tour into ./tensornet-report
  tensornet demo --quick                  # a short version (under a minute)
  tensornet demo --only layers,bregman --out /tmp/report --seed 3
  tensornet demo --only topics --only forecast --device cuda
"""


def add_parser(sub):
    from ..report.demo import SECTIONS

    p = sub.add_parser("demo", help="run the tour and write tensornet-report/index.html",
                       description="Run the tensornet tour on data that ships offline and "
                                   "write a self-contained HTML report with tables and plots.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="tensornet-report", help="output folder (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                   help="where to train (default: %(default)s)")
    p.add_argument("--only", action="append", metavar="SECTION[,SECTION]",
                   help=f"run only these sections (comma-separated or repeated): "
                        f"{', '.join(SECTIONS)}")
    p.add_argument("--quick", action="store_true", help="small version, under a minute")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads while the tour runs (default: %(default)s; the models "
                        "are small, and one thread is fastest on a busy 2-core machine)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    return p


def parse_only(values):
    """``['a,b', 'c']`` -> ``['a', 'b', 'c']`` checked against the sections; None stays None."""
    from ..report.demo import SECTIONS

    if not values:
        return None
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    unknown = [n for n in names if n not in SECTIONS]
    if unknown or not names:
        raise CLIError(f"--only takes sections among {', '.join(SECTIONS)} (comma-separated or "
                       f"repeated); got {', '.join(unknown) or repr(','.join(values))}")
    return names


def run(args) -> int:
    from ..report.demo import DemoSettings, run_demo

    only = parse_only(args.only)
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise CLIError("--device cuda was given but no CUDA device is available "
                           "(use --device cpu)")
    if args.threads < 1:
        raise CLIError(f"--threads must be a positive integer; got {args.threads}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CLIError(f"--out {out}: cannot create the folder ({exc.strerror or exc})") from None
    settings = DemoSettings(out=out, seed=args.seed, device=args.device, quick=args.quick,
                            progress=not args.no_progress)
    echo(f"tensornet demo{' (quick)' if args.quick else ''}: "
          f"{', '.join(only) if only else 'the whole tour'} -> {out}/index.html", flush=True)
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        index, _ = run_demo(settings, only=only,
                            on_section=lambda lines: echo("\n".join(lines), flush=True))
    except ImportError as exc:
        if "pip install" not in str(exc):
            raise               # not a missing data package: a bug, keep the traceback
        raise CLIError(f"{exc}") from None  # the loaders name the package to install
    finally:
        torch.set_num_threads(threads)
    echo(f"report: {index.resolve()}")
    return 0
