"""``tensornet bench``: finds the benchmark scripts, runs them one process each, exit codes."""

import json
import textwrap
from pathlib import Path

import pytest

from tensornet.cli import main

SCRIPT = textwrap.dedent('''
    """{doc}"""
    import json, sys
    from pathlib import Path
    Path(__file__).with_suffix(".args.json").write_text(json.dumps(sys.argv[1:]))
    print("ran {name}")
    sys.exit({rc})
''')


@pytest.fixture
def fake(tmp_path):
    """A checkout-like folder with benchmarks/ holding three tiny scripts."""
    b = tmp_path / "checkout" / "benchmarks"
    b.mkdir(parents=True)
    (b / "__init__.py").write_text("")
    for name, rc in [("alpha", 0), ("beta", 0), ("broken", 3)]:
        (b / f"bench_{name}.py").write_text(SCRIPT.format(doc=f"{name.title()}: a fake "
                                                          "benchmark.", name=name, rc=rc))
    return b


def _args(b, name):
    return json.loads((b / f"bench_{name}.args.json").read_text())


def test_bench_list(fake, capsys):
    assert main(["bench", "--list", "--dir", str(fake)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["alpha   Alpha: a fake benchmark.", "beta    Beta: a fake benchmark.",
                   "broken  Broken: a fake benchmark."]
    assert not list(fake.glob("*.args.json"))        # listing runs nothing


def test_bench_runs_the_named_scripts_with_flags(fake, capfd):
    assert main(["bench", "alpha", "bench_beta.py", "--quick", "--no-readme",
                 "--dir", str(fake)]) == 0
    out = capfd.readouterr().out
    assert "ran alpha" in out and "ran beta" in out and "done: alpha, beta" in out
    assert _args(fake, "alpha") == ["--quick", "--device", "cpu", "--no-readme"]
    assert _args(fake, "beta") == _args(fake, "alpha")
    assert not (fake / "bench_broken.args.json").exists()


def test_bench_failure_exits_1(fake, capfd):
    assert main(["bench", "broken", "alpha", "--dir", str(fake)]) == 1
    captured = capfd.readouterr()
    assert "failed: broken (exit 3)" in captured.err
    assert _args(fake, "alpha") == ["--device", "cpu"]   # the others still run


def test_bench_finds_benchmarks_in_the_working_folder(fake, monkeypatch, capfd):
    monkeypatch.chdir(fake.parent)
    assert main(["bench", "beta"]) == 0
    assert "ran beta" in capfd.readouterr().out


@pytest.mark.parametrize("args,message", [
    (["nope"], "unknown benchmark nope; available: alpha, beta, broken"),
    (["alpha", "nope", "zap"], "unknown benchmark nope, zap"),
])
def test_bench_unknown_name_exits_2(fake, capsys, args, message):
    assert main(["bench", *args, "--dir", str(fake)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"tensornet bench: error: {message}") and len(err.splitlines()) == 1
    assert not list(fake.glob("*.args.json"))


def test_bench_folder_not_found_exits_2(tmp_path, capsys):
    assert main(["bench", "--list", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tensornet bench: error: --dir") and "not a benchmarks folder" in err
    assert len(err.splitlines()) == 1


def test_bench_list_of_the_source_checkout(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)          # no ./benchmarks: falls back to the package's checkout
    checkout = Path(__file__).resolve().parents[2] / "benchmarks"
    if not (checkout / "__init__.py").is_file():
        pytest.skip("not a source checkout")
    assert main(["bench", "--list"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == sorted(p.stem[6:] for p in checkout.glob("bench_*.py"))
    assert "layers" in names and "topics" in names


def test_bench_cuda_without_cuda(fake, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    assert main(["bench", "alpha", "--device", "cuda", "--dir", str(fake)]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_bench_bad_device_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--device", "tpu"])
    assert exc.value.code == 2
