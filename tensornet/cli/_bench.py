"""``tensornet bench``: run the benchmark scripts of a source checkout.

The scripts live in ``benchmarks/`` next to the ``tensornet`` package of a
source checkout (they are not installed with the wheel). Each runs as
``python -m benchmarks.bench_NAME`` from the checkout's root, in its own
process, and writes its results and its section of ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
from pathlib import Path

from . import CLIError
from ._io import echo

EXAMPLES = """examples:
  tensornet bench --list                  # the benchmarks and what each compares
  tensornet bench layers --quick          # one benchmark, short version
  tensornet bench topics forecast         # two benchmarks, full runs (minutes each)
  tensornet bench --quick                 # every benchmark, short versions
  tensornet bench contraction --device cuda --dir ~/src/tensornet/benchmarks
"""


def add_parser(sub):
    p = sub.add_parser("bench", help="run the benchmark scripts (source checkout)",
                       description="Run benchmarks/bench_NAME.py of a source checkout, one "
                                   "process each; each writes benchmarks/results/*.json and "
                                   "its section of benchmarks/README.md.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="benchmarks to run, e.g. layers or bench_layers (default: all)")
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    p.add_argument("--quick", action="store_true", help="short versions (about a minute each)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                   help="device passed to the scripts (default: %(default)s)")
    p.add_argument("--no-readme", action="store_true",
                   help="do not rewrite benchmarks/README.md")
    p.add_argument("--dir", default=None, metavar="DIR",
                   help="the benchmarks/ folder (default: ./benchmarks, else the one next to "
                        "the installed tensornet package)")
    return p


def find_benchmarks(folder=None) -> Path:
    """The ``benchmarks/`` folder: ``folder``, else ``./benchmarks``, else next to the package."""
    if folder is not None:
        candidates = [Path(folder).expanduser()]
    else:
        candidates = [Path.cwd() / "benchmarks",
                      Path(__file__).resolve().parents[2] / "benchmarks"]
    for c in candidates:
        if (c / "__init__.py").is_file() and any(c.glob("bench_*.py")):
            return c.resolve()
    if folder is not None:
        raise CLIError(f"--dir {folder} is not a benchmarks folder (expected __init__.py and "
                       "bench_*.py files in it)")
    raise CLIError("cannot find the benchmarks/ folder: it ships with the source checkout, not "
                   "with the installed package; run from the checkout or pass --dir")


def available(folder: Path) -> dict:
    """``{name: first line of the script's docstring}``, without importing the scripts."""
    out = {}
    for path in sorted(folder.glob("bench_*.py")):
        try:
            doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        except (OSError, SyntaxError, UnicodeDecodeError):
            doc = ""
        out[path.stem[len("bench_"):]] = doc.strip().splitlines()[0] if doc.strip() else ""
    return out


def run(args) -> int:
    folder = find_benchmarks(args.dir)
    scripts = available(folder)
    if args.list:
        width = max(map(len, scripts))
        for name, doc in scripts.items():
            echo(f"{name:<{width}}  {doc}")
        return 0
    names = [n[len("bench_"):] if n.startswith("bench_") else n for n in args.names]
    names = [n[:-3] if n.endswith(".py") else n for n in names]
    unknown = [n for n in names if n not in scripts]
    if unknown:
        raise CLIError(f"unknown benchmark {', '.join(unknown)}; available: "
                       f"{', '.join(scripts)}")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise CLIError("--device cuda was given but no CUDA device is available")
    chosen = list(dict.fromkeys(names)) or list(scripts)
    flags = (["--quick"] if args.quick else []) + ["--device", args.device] + \
        (["--no-readme"] if args.no_readme else [])
    failed = []
    for name in chosen:
        echo(f"== bench_{name} {' '.join(flags)}", flush=True)
        rc = subprocess.call([sys.executable, "-m", f"{folder.name}.bench_{name}", *flags],
                             cwd=folder.parent)
        if rc:
            failed.append(f"{name} (exit {rc})")
    if failed:
        echo(f"tensornet bench: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    echo(f"done: {', '.join(chosen)}")
    return 0
