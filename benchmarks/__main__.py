"""Run every benchmark: ``python -m benchmarks [--quick] [--device cuda] [names...]``."""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    names = [a for a in argv if not a.startswith("-")]
    flags = [a for a in argv if a.startswith("-")]
    scripts = sorted(p.stem for p in HERE.glob("bench_*.py"))
    chosen = [s for s in scripts if not names or s in names or s[6:] in names]
    unknown = [n for n in names if n not in scripts and "bench_" + n not in scripts]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; available: {', '.join(s[6:] for s in scripts)}",
              file=sys.stderr)
        return 2
    failed = []
    for s in chosen:
        print(f"== {s} {' '.join(flags)}", flush=True)
        rc = subprocess.call([sys.executable, "-m", f"benchmarks.{s}", *flags], cwd=HERE.parent)
        if rc:
            failed.append(s)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
