"""``tensornet forecast``: success path and user mistakes (exit code 2, one line)."""

import numpy as np
import pytest
import torch

from tensornet.cli import main

pd = pytest.importorskip("pandas")


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture
def csv(tmp_path):
    t = pd.date_range("2024-01-01", periods=240, freq="h")
    y = 10 + np.sin(np.arange(240) * 2 * np.pi / 24) + 0.05 * np.random.default_rng(0).normal(
        size=240)
    path = tmp_path / "series.csv"
    pd.DataFrame({"t": t, "y": y, "label": ["x"] * 240}).to_csv(path, index=False)
    return path


FAST = ["--epochs", "1", "--hidden-size", "4", "--rank", "2", "--threads", "1", "--quiet"]


def test_forecast_success(csv, tmp_path, capsys):
    out = tmp_path / "fc"
    rc = main(["forecast", str(csv), "--column", "y", "--time-column", "t", "--horizon", "12",
               "--out", str(out), *FAST])
    assert rc == 0
    text = capsys.readouterr().out
    assert "season 24" in text and "ttlstm RMSE" in text and "seasonal-naive RMSE" in text
    assert "linear RMSE" in text
    rows = [line.split() for line in text.splitlines() if line.strip()[:2].strip().isdigit()]
    assert [r[0] for r in rows] == ["3", "6", "12"]
    assert "prediction intervals at 90%" in text and "calibration windows" in text
    fc = pd.read_csv(out / "forecast.csv")
    assert list(fc.columns) == ["time", "kind", "truth", "forecast", "lower", "upper"]
    assert (fc["kind"] == "test").sum() == 12 and (fc["kind"] == "future").sum() == 12
    assert fc["forecast"].notna().all() and fc.loc[fc.kind == "test", "truth"].notna().all()
    assert (fc["lower"] < fc["forecast"]).all() and (fc["forecast"] < fc["upper"]).all()
    # the future rows continue the hourly time stamps
    assert pd.Timestamp(fc["time"].iloc[12]) == pd.Timestamp("2024-01-11 00:00")
    assert (out / "forecast.png").stat().st_size > 5000


def test_forecast_no_highway_builds_the_plain_network(csv, monkeypatch, tmp_path, capsys):
    from tensornet.forecast import TTLSTMForecaster

    seen = []
    fit = TTLSTMForecaster.fit

    def spy(self, *args, **kwargs):
        seen.append(self.highway)
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(TTLSTMForecaster, "fit", spy)
    base = ["forecast", str(csv), "--column", "y", "--horizon", "6", "--season", "24", *FAST]
    assert main([*base, "--out", str(tmp_path / "a"), "--no-highway"]) == 0
    assert main([*base, "--out", str(tmp_path / "b")]) == 0
    assert seen == [False, True]


def test_forecast_linear_without_time_column(csv, tmp_path, capsys):
    out = tmp_path / "fc2"
    rc = main(["forecast", str(csv), "--column", "y", "--horizon", "6", "--model", "linear",
               "--out", str(out), "--season", "24", *FAST])
    assert rc == 0
    text = capsys.readouterr().out
    assert "linear RMSE" in text and "ttlstm" not in text
    assert len(pd.read_csv(out / "forecast.csv")) == 12


def test_forecast_coverage_option(csv, tmp_path, capsys):
    """A wider requested coverage gives a wider band, and its coverage is reported."""
    widths = {}
    for c in ("0.5", "0.95"):
        out = tmp_path / f"fc{c}"
        rc = main(["forecast", str(csv), "--column", "y", "--horizon", "6", "--model", "linear",
                   "--season", "24", "--coverage", c, "--out", str(out), *FAST])
        assert rc == 0
        text = capsys.readouterr().out
        line = next(ln for ln in text.splitlines() if ln.strip().startswith("linear ")
                    and "coverage" in ln)
        assert f"prediction intervals at {float(c):.0%}" in text
        fc = pd.read_csv(out / "forecast.csv")
        widths[c] = float((fc["upper"] - fc["lower"]).mean())
        assert "mean width" in line
    assert widths["0.95"] > widths["0.5"] > 0


@pytest.mark.parametrize("extra, message", [
    (["--column", "nope", "--horizon", "6"], "'nope' is not a column"),
    (["--column", "label", "--horizon", "6"], "is not numeric"),
    (["--column", "y", "--horizon", "0"], "--horizon must be a positive"),
    (["--column", "y", "--horizon", "200"], "shorter than --horizon"),
    (["--column", "y", "--horizon", "6", "--time-column", "label"], "does not hold time"),
    (["--column", "y", "--horizon", "6", "--test", "1.5"], "--test must be"),
    (["--column", "y", "--horizon", "6", "--coverage", "1"], "--coverage must be a probability"),
    (["--column", "y", "--horizon", "6", "--coverage", "0"], "--coverage must be a probability"),
    (["--column", "y", "--horizon", "20", "--lookback", "200"], "--lookback 200"),
])
def test_forecast_user_mistakes(csv, tmp_path, capsys, extra, message):
    rc = main(["forecast", str(csv), *extra, "--out", str(tmp_path / "o"), *FAST])
    assert rc == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_forecast_missing_file_and_gaps(tmp_path, capsys):
    assert main(["forecast", str(tmp_path / "none.csv"), "--column", "y", "--horizon", "3",
                 "--out", str(tmp_path / "o")]) == 2
    assert "no such file" in capsys.readouterr().err
    path = tmp_path / "gaps.csv"
    y = np.sin(np.arange(120) / 3.0)
    y[[5, 40]] = np.nan
    pd.DataFrame({"y": y}).to_csv(path, index=False)
    args = ["forecast", str(path), "--column", "y", "--horizon", "4", "--model", "linear",
            "--out", str(tmp_path / "o"), *FAST]
    assert main(args) == 2
    assert "--impute" in capsys.readouterr().err
    assert main(args + ["--impute", "linear"]) == 0


def test_forecast_requires_horizon(csv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["forecast", str(csv), "--column", "y", "--out", "x"])
    assert exc.value.code == 2
