"""Input helpers: gap filling, calendar covariates, season inference."""

import numpy as np
import pytest

from tensornet.forecast import calendar_features, fill_gaps, infer_season

pd = pytest.importorskip("pandas")


def test_fill_gaps_per_column():
    a = np.array([[np.nan, 1.0], [2.0, np.nan], [np.nan, 5.0], [6.0, np.nan]])
    np.testing.assert_array_equal(fill_gaps(a, "linear"), [[2, 1], [2, 3], [4, 5], [6, 5]])
    np.testing.assert_array_equal(fill_gaps(a, "ffill"), [[2, 1], [2, 1], [2, 5], [6, 5]])
    with pytest.raises(ValueError, match="impute"):
        fill_gaps(a, "zero")
    with pytest.raises(ValueError, match="no observed value"):
        fill_gaps([np.nan, np.nan], "linear")


def test_calendar_features():
    idx = pd.date_range("2024-01-01", periods=24 * 8, freq="h")     # a Monday
    F = calendar_features(idx)
    assert F.shape == (192, 6)
    np.testing.assert_allclose(F[:, 0] ** 2 + F[:, 1] ** 2, 1.0)
    # period of one day in the first pair, one week in the second
    np.testing.assert_allclose(F[24, :2], F[0, :2], atol=1e-12)
    assert not np.allclose(F[24, 2:4], F[0, 2:4])
    np.testing.assert_allclose(F[12, :2], [0.0, -1.0], atol=1e-12)  # noon: half a day
    daily = calendar_features(pd.date_range("2024-01-01", periods=10, freq="D"))
    assert daily.shape == (10, 4)
    with pytest.raises(ValueError, match="columns"):
        calendar_features(idx, ["month"])
    with pytest.raises(TypeError, match="DatetimeIndex"):
        calendar_features(object())


def test_infer_season():
    t = np.arange(600)
    assert infer_season(np.sin(t * 2 * np.pi / 24) + 0.01 * t) == 24
    assert infer_season(np.random.default_rng(1).normal(size=400)) == 1
    # sub-daily data with the nights left out: observations per day
    days = pd.date_range("2024-01-01", periods=30, freq="D")
    idx = pd.DatetimeIndex([d + pd.Timedelta(hours=h) for d in days for h in range(8, 18)])
    assert infer_season(np.zeros(len(idx)), idx) == 10
    assert infer_season(np.zeros(10), pd.date_range("2020-01-01", periods=10, freq="W")) == 52
    assert infer_season(np.zeros(10), pd.date_range("2020-01-01", periods=10, freq="MS")) == 12
