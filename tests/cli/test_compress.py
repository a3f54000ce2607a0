import json
import textwrap

import pytest
import torch

from tensornet.cli import main
from tensornet.nn import TTLinear, tensorize

FACTORY = textwrap.dedent("""
    import torch
    from torch import nn

    def build_model():
        return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
                             nn.Linear(128, 10))

    def not_a_module():
        return 42

    def broken():
        raise RuntimeError("no GPU here")
""")


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    (tmp_path / "cli_nets_for_test.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    import cli_nets_for_test

    torch.manual_seed(0)
    torch.save(cli_nets_for_test.build_model().state_dict(), tmp_path / "net.pt")
    return tmp_path


def test_compress_success(workdir, capsys):
    rc = main(["compress", "--model", "cli_nets_for_test:build_model", "--weights", "net.pt",
               "--factorization", "tt", "--rank", "0.1", "--min-params", "1000",
               "--input-shape", "4,64", "--out", "out/small.pt", "--report", "r.json"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "TTLinear" in out and "saved the tensorized state_dict" in out
    state = torch.load(workdir / "out" / "small.pt", weights_only=True)
    import cli_nets_for_test

    model = cli_nets_for_test.build_model()
    tensorize(model, "tt", rank=0.1, min_params=1000, inplace=True, decompose=False)
    model.load_state_dict(state)
    assert isinstance(model[0], TTLinear)
    report = json.loads((workdir / "r.json").read_text())
    assert report["summary"]["replaced"] == 3
    assert report["layers"][0]["output_error"] is not None


@pytest.mark.parametrize("args,message", [
    (["--model", "no_such_module_xyz:build", "--weights", "net.pt"], "cannot import module"),
    (["--model", "cli_nets_for_test:missing", "--weights", "net.pt"], "has no attribute"),
    (["--model", "cli_nets_for_test", "--weights", "net.pt"], "MODULE:FACTORY"),
    (["--model", "cli_nets_for_test:not_a_module", "--weights", "net.pt"], "torch.nn.Module"),
    (["--model", "cli_nets_for_test:broken", "--weights", "net.pt"], "no GPU here"),
    (["--model", "cli_nets_for_test:build_model", "--weights", "nope.pt"], "no such file"),
    (["--model", "cli_nets_for_test:build_model", "--weights", "junk.pt"], "cannot read"),
    (["--model", "cli_nets_for_test:build_model", "--weights", "other.pt"], "does not fit"),
    (["--model", "cli_nets_for_test:build_model", "--weights", "net.pt", "--rank", "0"],
     "--rank"),
    (["--model", "cli_nets_for_test:build_model", "--weights", "net.pt", "--rank", "2.5"],
     "--rank"),
    (["--model", "cli_nets_for_test:build_model", "--weights", "net.pt", "--rank", "x"],
     "--rank"),
    (["--model", "cli_nets_for_test:build_model", "--weights", "net.pt", "--input-shape",
      "4,65"], "--input-shape"),
])
def test_compress_user_mistakes(workdir, capsys, args, message):
    (workdir / "junk.pt").write_text("not a checkpoint")
    torch.save({"w": torch.zeros(2)}, workdir / "other.pt")
    rc = main(["compress", *args, "--out", "small.pt"])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tensornet compress: error:") and message in err
    assert len(err.splitlines()) == 1
    assert not (workdir / "small.pt").exists()


def test_compress_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["compress", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "--factorization" in out and "load_state_dict" in out


def test_compress_missing_required_option(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["compress", "--weights", "net.pt", "--out", "x.pt"])
    assert exc.value.code == 2
