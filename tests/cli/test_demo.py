"""``tensornet demo``: the quick tour end to end, its report in a real browser, bad options."""

import json
import re
import shutil
import subprocess

import pytest
import torch

from tensornet.cli import main
from tensornet.report.demo import SECTIONS, DemoSettings, run_demo

#: every figure the tour promises (issue 7): name -> section
FIGURES = {
    "digits_reconstructions.png": "tensors",
    "layers_accuracy_params.png": "layers",
    "topics_word_bars.png": "topics",
    "forecast_vs_truth.png": "forecast",
    "forecast_error_horizon.png": "forecast",
    "bregman_rank_path.png": "bregman",
}


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    """The whole quick tour, run once through the command line (about 15 s on 2 cores)."""
    out = tmp_path_factory.mktemp("demo") / "report"
    threads = torch.get_num_threads()
    import contextlib
    import io

    buf, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(err):
        rc = main(["demo", "--quick", "--out", str(out), "--no-progress"])
    assert rc == 0, err.getvalue()
    assert torch.get_num_threads() == threads        # --threads is restored afterwards
    return out, buf.getvalue()


def test_demo_quick_writes_every_section_and_image(quick_report):
    out, stdout = quick_report
    index = out / "index.html"
    assert f"report: {index.resolve()}" in stdout
    for name in SECTIONS:
        assert re.search(rf"^{name}: ", stdout, re.M), f"no summary line for {name}"
    html = index.read_text(encoding="utf-8")
    pngs = {p.name: p for p in out.glob("*.png")}
    assert set(pngs) == set(FIGURES)
    for name, p in pngs.items():
        data = p.read_bytes()
        assert len(data) > 5000 and data[:8] == b"\x89PNG\r\n\x1a\n", name
        assert f"data-file='{name}'" in html
    assert html.count("<img ") == len(FIGURES)
    assert html.count("<section") == len(SECTIONS) + 1     # and "About this run"
    assert "About this run" in html
    # tables with real numbers in them
    for text in ("relative error", "compression", "top 8 words", "RMSE h≤52",
                 "90 % band coverage", "prune_ranks report"):
        assert text in html, text


def test_demo_quick_numbers_are_sane(quick_report):
    _, stdout = quick_report
    dense = float(re.search(r"layers: dense MLP ([\d.]+)%", stdout).group(1))
    assert dense > 85                                # 10 classes: chance is 10 %
    pruned = re.search(r"bregman: .* pruned ([\d,]+) → ([\d,]+) parameters, accuracy ([\d.]+)%",
                       stdout)
    before, after, acc = (float(g.replace(",", "")) for g in pruned.groups())
    assert after < before and acc > 60
    tt = float(re.search(r"forecast: CO2 52-week RMSE TT-LSTM ([\d.]+),", stdout).group(1))
    assert 0 < tt < 5                                # ppm, one year ahead (CO2 is ~370 ppm)
    cover = float(re.search(r"90 % band covers ([\d.]+) %", stdout).group(1))
    assert 50 < cover <= 100


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


CHECK = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var out = document.createElement('pre');
  out.id = 'img-check';
  out.textContent = JSON.stringify({n: imgs.length, widths: imgs.map(function (i) {
    return i.complete ? i.naturalWidth : -1; })});
  document.body.appendChild(out);
});
</script>"""


@pytest.mark.skipif(_chromium() is None, reason="no chromium / chromium-browser on PATH")
def test_report_renders_in_headless_chromium(quick_report, tmp_path):
    out, _ = quick_report
    page = tmp_path / "page.html"
    html = (out / "index.html").read_text(encoding="utf-8")
    page.write_text(html.replace("</body>", CHECK + "</body>"), encoding="utf-8")
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000",
           "--dump-dom", page.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    m = re.search(r"<pre id=\"img-check\">(.*?)</pre>", proc.stdout, re.S)
    assert m, f"no result from chromium (exit {proc.returncode}): {proc.stderr[-2000:]}"
    result = json.loads(m.group(1).replace("&quot;", '"'))
    assert result["n"] == len(FIGURES)
    assert all(w > 100 for w in result["widths"]), result


def test_demo_only_accepts_commas_and_repeats(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["demo", "--quick", "--only", "topics,tensors", "--out", str(out),
                 "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "topics: " in text and "tensors: " in text and "layers: " not in text
    html = (out / "index.html").read_text(encoding="utf-8")
    # run in the tour's order whatever the order given
    assert html.index("Tensors:") < html.index("Topics:")
    assert sorted(p.name for p in out.glob("*.png")) == ["digits_reconstructions.png",
                                                         "topics_word_bars.png"]


@pytest.mark.parametrize("args,message", [
    (["--only", "nonsense"], "--only takes sections among tensors, layers"),
    (["--only", "topics,nonsense"], "got nonsense"),
    (["--only", ","], "--only takes sections"),
    (["--threads", "0"], "--threads must be a positive integer"),
])
def test_demo_bad_options_exit_2(tmp_path, capsys, args, message):
    assert main(["demo", "--quick", *args, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tensornet demo: error:") and message in err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "r" / "index.html").exists()


def test_demo_out_is_a_file(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["demo", "--quick", "--only", "tensors", "--out", str(f)]) == 2
    err = capsys.readouterr().err
    assert "is not a folder" in err and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_demo_cuda_without_cuda(tmp_path, capsys):
    assert main(["demo", "--device", "cuda", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("tensornet demo: error: --device cuda was given but no CUDA device is "
                   "available (use --device cpu)")


@pytest.mark.parametrize("args", [["--device", "tpu"], ["--seed", "x"], ["--bogus"]])
def test_demo_argparse_mistakes_exit_2(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", *args])
    assert exc.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_run_demo_checks_its_arguments(tmp_path):
    with pytest.raises(ValueError, match="only must name sections"):
        run_demo(DemoSettings(out=tmp_path), only=["nope"])
    with pytest.raises(ValueError, match="device must be 'cpu' or 'cuda'"):
        DemoSettings(out=tmp_path, device="tpu")
    with pytest.raises(TypeError, match="settings must be a DemoSettings"):
        run_demo({"out": tmp_path})


def test_cli_without_command_shows_help(capsys):
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["demo", "topics", "forecast", "compress", "bench", "info"])
def test_every_subcommand_has_help_with_examples(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert re.search(r"^examples?:", out, re.M) and f"tensornet {command}" in out


def test_info(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "numpy" in out and "backends" in out and "devices    cpu" in out
    assert re.search(r"^torch\s+\d", out, re.M)


def test_info_takes_no_arguments(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["info", "extra"])
    assert exc.value.code == 2


def test_run_demo_reports_each_section_as_it_ends(tmp_path):
    seen = []
    index, lines = run_demo(DemoSettings(out=tmp_path / "r", quick=True, seed=1),
                            only="topics", on_section=seen.append)
    assert seen == [lines] and lines[0].startswith("topics: 8 topics")
    assert index == tmp_path / "r" / "index.html" and index.is_file()


def test_demo_missing_data_package_is_one_line(tmp_path, capsys, monkeypatch):
    from tensornet.report import demo

    def missing(report, settings):
        raise ImportError("this data set ships inside the 'statsmodels' package, which is not "
                          "installed; install it with `pip install statsmodels` or "
                          "`pip install tensornet[data]`")

    monkeypatch.setitem(demo.SECTIONS, "forecast", missing)
    assert main(["demo", "--quick", "--only", "forecast", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tensornet demo: error: this data set ships inside the 'statsmodels'")
    assert len(err.splitlines()) == 1
