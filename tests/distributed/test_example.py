"""examples/ddp_signsgd.py: launched with torchrun on two CPU ranks, and in one process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ddp_signsgd.py"


def test_torchrun_two_ranks(tmp_path):
    out = tmp_path / "result.json"
    env = dict(os.environ, GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(EXAMPLE), "--quick", "--out", str(out)]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240,
                              check=False)
    except subprocess.TimeoutExpired as exc:  # pragma: no cover - a hung launch
        pytest.fail(f"torchrun did not finish in 240 s:\n{exc.stdout}\n{exc.stderr}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    res = json.loads(out.read_text())
    assert res["world_size"] == 2 and res["method"] == "signum"
    assert res["replica_deviation"] == 0.0
    assert res["ratio"] >= 16
    # 2 epochs of Signum-MV on 4,000 digits: far above chance (10 %)
    assert res["test_accuracy"] > 80
    assert "test accuracy" in proc.stdout


def test_single_process_without_torchrun(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    sys.path.insert(0, str(EXAMPLE.parent))
    try:
        import ddp_signsgd
    finally:
        sys.path.remove(str(EXAMPLE.parent))
    import torch

    threads = torch.get_num_threads()
    try:
        res = ddp_signsgd.main(["--quick", "--method", "signsgd", "--epochs", "1"])
    finally:
        torch.set_num_threads(threads)
    assert res["world_size"] == 1
    assert res["test_accuracy"] > 70
