from pathlib import Path

import pytest

from tensornet.cli import main


def test_demo_quick_tensors_writes_report(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["demo", "--quick", "--only", "tensors", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "report:" in text and "tensors:" in text
    index = out / "index.html"
    html = index.read_text()
    pngs = sorted(out.glob("*.png"))
    assert pngs and all(p.stat().st_size > 1000 for p in pngs)
    for p in pngs:
        assert f"data-file='{p.name}'" in html
    assert "relative error" in html


def test_demo_bad_options(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--only", "nonsense"])
    assert exc.value.code == 2
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["demo", "--quick", "--only", "tensors", "--out", str(f)]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_cli_without_command_shows_help(capsys):
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


def test_info(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "numpy" in out and "backends" in out
