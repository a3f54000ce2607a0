"""``tensornet demo``: the tour on data that ships offline, written as an HTML report."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import CLIError

EXAMPLES = """examples:
  tensornet demo                      # the whole tour into ./tensornet-report
  tensornet demo --quick              # a short version (under a minute)
  tensornet demo --only tensors --out /tmp/report --seed 3
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
    p.add_argument("--only", action="append", choices=list(SECTIONS), metavar="SECTION",
                   help=f"run only this section (repeatable): {', '.join(SECTIONS)}")
    p.add_argument("--quick", action="store_true", help="small version, under a minute")
    return p


def run(args) -> int:
    from ..report.demo import DemoSettings, run_demo

    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise CLIError("--device cuda was given but no CUDA device is available")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} exists and is not a folder")
    settings = DemoSettings(out=out, seed=args.seed, device=args.device, quick=args.quick,
                            progress=True)
    print(f"tensornet demo{' (quick)' if args.quick else ''}: writing {out}/index.html")
    index, lines = run_demo(settings, only=args.only)
    for line in lines:
        print(line)
    print(f"report: {index.resolve()}")
    return 0
