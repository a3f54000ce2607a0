"""Split-conformal prediction intervals of the forecasters."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from tensornet.forecast import (
    AdaptiveConformal,
    LinearForecaster,
    LSTMForecaster,
    SeasonalNaive,
    TTLSTMForecaster,
    adaptive_intervals,
    conformal_quantile,
    coverage_and_width,
    evaluate,
    load,
)


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _seasonal(n, sigma, seed, season=12):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 5 + 2 * np.sin(2 * np.pi * t / season) + rng.normal(0, sigma, n)


def _windows(y, L, H, start):
    origins = np.arange(start, len(y) - H + 1)
    ctx = np.stack([y[o - L:o] for o in origins])[..., None]
    truth = np.stack([y[o:o + H] for o in origins])[..., None]
    return ctx, truth


# --------------------------------------------------------------------------- the quantile
def test_conformal_quantile_is_the_finite_sample_order_statistic():
    s = np.random.default_rng(0).permutation(np.arange(1.0, 100.0))    # 99 scores
    for c in (0.5, 0.8, 0.9, 0.95):
        k = math.ceil(100 * c)
        assert conformal_quantile(s, c) == k                            # k-th smallest
    assert conformal_quantile(np.arange(1.0, 10.0), 0.9) == 9.0         # 0.9 * 10 is exactly 9
    assert np.isinf(conformal_quantile(np.arange(1.0, 9.0), 0.9))       # 8 scores: impossible
    two = np.stack([np.arange(10.0), 10 * np.arange(10.0)], axis=1)
    np.testing.assert_array_equal(conformal_quantile(two, 0.8), [8.0, 80.0])


def test_coverage_and_width():
    cov, width = coverage_and_width([0.0, 1.0, 3.0, -2.0], [-1.0] * 4, [2.0] * 4)
    assert cov == 0.5 and width == 3.0


# --------------------------------------------------------------------------- known noise
def test_seasonal_naive_matches_the_gaussian_oracle():
    """Naive errors are e_t - e_{t-s} ~ N(0, 2 sigma^2): the conformal half-width must approach
    the oracle's z * sigma * sqrt(2), and the test coverage the nominal one."""
    sigma, s, H = 0.5, 12, 6
    y = _seasonal(12000, sigma, 0, s)
    f = SeasonalNaive(season=s, horizon=H).fit(y[:8000], calibration=3000)
    n_cal = f.n_calibration_
    assert n_cal == 3000 - H + 1
    ctx, truth = _windows(y, s, H, 8000)
    for c in (0.8, 0.9):
        q = f.interval_halfwidth(c)[:, 0]
        oracle = norm.ppf((1 + c) / 2) * sigma * math.sqrt(2)
        # quantile of n_cal draws: relative sd ~ sqrt(c (1-c) / n) / (density * q), ~2 % here
        np.testing.assert_allclose(q, oracle, rtol=0.06)
        lower, upper = f.predict_interval(ctx, coverage=c)
        cov = ((truth >= lower) & (truth <= upper)).mean(axis=(0, 2))
        # per step, ~4000 test origins and ~3000 calibration windows: sd of the coverage
        # about 0.009, so 0.03 is more than three of them
        assert np.all(np.abs(cov - c) < 0.03), (c, cov)


def test_average_coverage_over_many_series_is_nominal():
    """Split conformal guarantees c <= E[coverage] <= c + 1/(n+1): average over 30 series."""
    c, H, s = 0.9, 4, 7
    covs = []
    for seed in range(30):
        y = _seasonal(1400, 1.0, seed, s)
        f = SeasonalNaive(season=s, horizon=H).fit(y[:1000], calibration=200)
        ctx, truth = _windows(y, s, H, 1000)
        lower, upper = f.predict_interval(ctx, coverage=c)
        covs.append(((truth >= lower) & (truth <= upper)).mean())
    n = 200 - H + 1
    # one series' coverage has sd ~0.03 (n ~ 200, overlapping test windows): the mean of 30
    # has ~0.006
    assert c - 0.015 <= np.mean(covs) <= c + 1 / (n + 1) + 0.015


@pytest.mark.parametrize("calibration", ["validation", 0.25])
def test_linear_forecaster_reaches_nominal_coverage(calibration):
    sigma = 0.3
    y = _seasonal(3400, sigma, 1)
    f = LinearForecaster(24, 6, epochs=8, random_state=0)
    f.fit(y[:2400], calibration=calibration)
    assert f.calibration_source_ == ("validation" if calibration == "validation" else "tail")
    ctx, truth = _windows(y, 24, 6, 2400)
    for c in (0.8, 0.9):
        pred, lower, upper = f.predict_interval(ctx, coverage=c, return_forecast=True)
        np.testing.assert_allclose(pred, f.predict(ctx))
        cov = ((truth >= lower) & (truth <= upper)).mean()
        assert abs(cov - c) < 0.04, (calibration, c, cov)
        # and the band is not wider than the Gaussian oracle of the noise deserves
        oracle = norm.ppf((1 + c) / 2) * sigma
        assert np.all(f.interval_halfwidth(c) < 1.5 * oracle)


def test_calibration_tail_is_held_out_from_training():
    y = _seasonal(1000, 0.2, 2)
    f = LinearForecaster(24, 6, epochs=2, random_state=0).fit(y, validation=0.25,
                                                               calibration=200)
    # trained on y[:800] (its last 25 % for early stopping), calibrated on y[800:]
    assert f.n_validation_ == 200
    np.testing.assert_allclose(f.scaler_y_.mean, [y[:600].mean()])
    assert f.n_calibration_ == 200 - 6 + 1
    np.testing.assert_array_equal(f.context_[:, 0], y[-24:])     # predict() continues y
    ref = LinearForecaster(24, 6, epochs=2, random_state=0).fit(y[:800], validation=0.25,
                                                                 calibration=None)
    np.testing.assert_allclose(f.predict(y[-24:]), ref.predict(y[-24:]))
    ctx, truth = _windows(y, 24, 6, 800)
    manual = np.sort(np.abs(ref.predict(ctx) - truth), axis=0)
    np.testing.assert_allclose(f.calibration_residuals_, manual)


def test_covariates_panels_and_batches():
    rng = np.random.default_rng(3)
    t = np.arange(900)
    X = np.column_stack([np.sin(2 * np.pi * t / 24), np.cos(2 * np.pi * t / 24)])
    y = 3 * X[:, 0] + rng.normal(0, 0.2, 900)
    f = LinearForecaster(24, 4, epochs=3, random_state=0).fit(y[:700], X[:700])
    ctx, _ = _windows(y, 24, 4, 700)
    Xc = np.stack([X[o - 24:o] for o in range(700, 897)])
    Xf = np.stack([X[o:o + 4] for o in range(700, 897)])
    lower, upper = f.predict_interval(ctx, X=Xc, X_future=Xf, coverage=0.8)
    assert lower.shape == (197, 4, 1) and np.all(upper > lower)
    lo1, _ = f.predict_interval(coverage=0.8, X_future=X[700:704])
    assert lo1.shape == (4,)
    # a panel: calibration on the last fifth of the series
    series = [_seasonal(200, 0.3, s) for s in range(10)]
    g = LinearForecaster(24, 4, epochs=2, random_state=0).fit(series, calibration=0.2)
    assert g.calibration_source_ == "tail" and g.n_calibration_ == 2 * (200 - 28 + 1)
    lo, _ = g.predict_interval(series[0][-24:], coverage=0.9)
    assert lo.shape == (4,)


@pytest.mark.parametrize("make", [
    lambda: SeasonalNaive(season=12, horizon=6),
    lambda: LinearForecaster(24, 6, epochs=2, random_state=0),
    lambda: LSTMForecaster(24, 6, hidden_size=4, epochs=1, random_state=0),
    lambda: TTLSTMForecaster(24, 6, hidden_size=4, rank=2, epochs=1, random_state=0),
], ids=["naive", "linear", "lstm", "ttlstm"])
def test_every_forecaster_saves_and_loads_its_calibration(make, tmp_path):
    y = _seasonal(500, 0.3, 4)
    f = make().fit(y)
    assert f.n_calibration_ > 0
    lo, up = f.predict_interval(coverage=0.9)
    assert lo.shape == (6,) and np.all(up >= lo)
    f.save(tmp_path / "m")
    g = load(tmp_path / "m")
    np.testing.assert_array_equal(g.calibration_residuals_, f.calibration_residuals_)
    assert g.calibration_source_ == f.calibration_source_
    lo2, up2 = g.predict_interval(coverage=0.9)
    np.testing.assert_allclose(lo2, lo, rtol=1e-6)
    np.testing.assert_allclose(up2, up, rtol=1e-6)


def test_uncalibrated_and_calibrate():
    y = _seasonal(600, 0.3, 5)
    f = LinearForecaster(24, 6, epochs=2, random_state=0).fit(y[:400], validation=None)
    assert f.n_calibration_ == 0
    with pytest.raises(ValueError, match="no calibration residuals"):
        f.predict_interval()
    f.calibrate(y[400:])
    assert f.calibration_source_ == "calibrate" and f.n_calibration_ == 200 - 30 + 1
    lo, up = f.predict_interval(y[-24:], coverage=0.5)
    assert np.all(up > lo)
    with pytest.raises(ValueError, match="at least lookback \\+ horizon = 30"):
        f.calibrate(y[:20])


def test_evaluate_reports_coverage_and_width():
    y = _seasonal(1500, 0.4, 6)
    res = evaluate(SeasonalNaive(season=12, horizon=6), y, coverage=[0.8, 0.9], split=300,
                   stride=2)
    m = res.forecaster
    for c in (0.8, 0.9):
        d = res.intervals[c]
        q = m.interval_halfwidth(c)
        lower, upper = res.forecasts - q, res.forecasts + q
        inside = (res.truth >= lower) & (res.truth <= upper)
        assert d["coverage"] == pytest.approx(inside.mean())
        assert d["width"] == pytest.approx(2 * q.mean())
        assert d["coverage_by_lead"].shape == (6,)
        assert abs(d["coverage"] - c) < 0.06
    assert res.intervals[0.9]["width"] > res.intervals[0.8]["width"]
    js = res.to_dict()["intervals"]
    assert set(js) == {0.8, 0.9} and "lower" not in js[0.9]
    # calibration windows come from the training part only
    assert m.n_calibration_ == round(0.2 * 1200) - 6 + 1


def test_bad_coverage_and_calibration():
    y = _seasonal(400, 0.3, 7)
    f = SeasonalNaive(season=12, horizon=6).fit(y)
    for bad in (0.0, 1.0, 1.5, -0.2, float("nan")):
        with pytest.raises(ValueError, match="coverage must be a probability strictly between"):
            f.predict_interval(coverage=bad)
    with pytest.raises(TypeError, match="coverage must be a probability"):
        f.predict_interval(coverage="90%")
    with pytest.raises(ValueError, match="coverage must be"):
        evaluate(SeasonalNaive(season=12, horizon=6), y, coverage=[0.9, 2.0])
    with pytest.raises(ValueError, match="coverage must be"):
        conformal_quantile([1.0, 2.0], 1.0)
    with pytest.raises(ValueError, match="calibrated for up to 6 steps"):
        f.predict_interval(n=7)
    with pytest.raises(ValueError, match="with coverage, horizons must not exceed"):
        evaluate(SeasonalNaive(season=12, horizon=6), y, horizons=[12], coverage=0.9)
    lin = LinearForecaster(24, 6, epochs=1)
    with pytest.raises(ValueError, match="calibration must be 'validation', None"):
        lin.fit(y, calibration="tail")
    with pytest.raises(TypeError, match="calibration must be"):
        lin.fit(y, calibration=True)
    with pytest.raises(ValueError, match="calibration tail has 3 time steps, fewer than horizon"):
        lin.fit(y, calibration=3)
    with pytest.raises(ValueError, match="calibration must be"):
        lin.fit(y, calibration=1.5)


# --------------------------------------------------------------------------- adaptive (online)
def _shifted(n, seed, season=12):
    """Seasonal series whose noise sd doubles half way (the test tail is noisier)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    sd = np.where(t < n // 2, 0.5, 1.0)
    return 5 + 2 * np.sin(2 * np.pi * t / season) + rng.normal(0, 1, n) * sd


def test_adaptive_reaches_nominal_coverage_where_split_conformal_under_covers():
    y = _shifted(1600, 0)
    res = evaluate(SeasonalNaive(season=12, horizon=4), y, split=0.5, stride=1,
                   coverage=[0.8, 0.9], adaptive=True)
    for c in (0.8, 0.9):
        split, ada = res.intervals[c], res.adaptive_intervals[c]
        # the calibration residuals come from the quiet half: split conformal under-covers
        assert split["coverage"] < c - 0.25
        assert abs(ada["coverage"] - c) <= 0.03
        assert ada["width"] > 1.5 * split["width"]
        assert ada["coverage_by_lead"].shape == (4,)
        inside = (res.truth >= ada["lower"]) & (res.truth <= ada["upper"])
        assert ada["coverage"] == pytest.approx(inside.mean())
    js = res.to_dict()
    assert set(js["adaptive_intervals"]) == {0.8, 0.9}
    # split conformal is unchanged by asking for the adaptive intervals too, and off by default
    plain = evaluate(SeasonalNaive(season=12, horizon=4), y, split=0.5, coverage=[0.8, 0.9])
    assert plain.adaptive_intervals == {} and "adaptive_intervals" not in plain.to_dict()
    np.testing.assert_array_equal(plain.intervals[0.9]["upper"], res.intervals[0.9]["upper"])


def test_adaptive_conformal_tracks_the_miss_rate_online():
    rng = np.random.default_rng(1)
    aci = AdaptiveConformal(np.abs(rng.normal(size=(300, 2))), coverage=0.9, gamma=0.05)
    assert aci.halfwidth().shape == (2, 1)
    q_start = aci.halfwidth()[1, 0]
    np.testing.assert_allclose(q_start, conformal_quantile(aci._cal[:, 1, 0], 0.9))
    T = 3000
    for e in np.abs(rng.normal(0, 2, T)):            # step 1 only, errors twice as large
        aci.update(1, e)
    assert aci.n_updates_[1, 0] == T and aci.n_updates_[0, 0] == 0
    # Gibbs & Candes: |miss rate - alpha| <= (max(alpha_1, 1 - alpha_1) + gamma) / (gamma T)
    assert abs(aci.n_misses_[1, 0] / T - 0.1) <= (0.9 + 0.05) / (0.05 * T)
    assert aci.halfwidth()[1, 0] == pytest.approx(2 * norm.ppf(0.95), rel=0.15)
    assert aci.halfwidth()[0, 0] < q_start * 1.2           # step 0 saw nothing new
    assert np.all(aci.alpha_ >= -0.05) and np.all(aci.alpha_ <= 1.05)


def test_adaptive_window_keeps_the_latest_scores():
    aci = AdaptiveConformal(np.ones((50, 1)), coverage=0.5, gamma=0.01, window=4)
    assert aci.halfwidth()[0, 0] == 1.0
    for e in (10.0, 20.0, 30.0, 40.0):
        aci.update(0, e)
    # only the four observed scores remain: the ceil(5 * ~0.5)-th smallest of 10..40
    assert aci.halfwidth()[0, 0] in (20.0, 30.0, 40.0)
    aci.update(0, 50.0)
    assert aci._pool(0).ravel().tolist() == [20.0, 30.0, 40.0, 50.0]


def test_adaptive_intervals_use_no_future_truth():
    """Step j of the forecast from origin o is known at o + j: it may change the
    half-widths issued from o + j + 1 on, never earlier ones."""
    rng = np.random.default_rng(2)
    n, H = 40, 5
    origins = np.arange(100, 100 + n)
    pred = rng.normal(size=(n, H, 1))
    truth = pred + rng.normal(size=(n, H, 1))
    cal = np.abs(rng.normal(size=(30, H, 1)))
    q = adaptive_intervals(pred, truth, origins, cal, coverage=0.8, gamma=0.1)
    m, j = 10, 4                                         # the truth y[origins[10] + 4]
    bumped = truth.copy()
    bumped[m, j] += 50.0                                 # a huge miss
    q2 = adaptive_intervals(pred, bumped, origins, cal, coverage=0.8, gamma=0.1)
    known = origins[m] + j                               # = origins[14]
    before = origins <= known
    np.testing.assert_array_equal(q2[before], q[before])
    assert q2[np.argmax(origins == known + 1), j, 0] > q[np.argmax(origins == known + 1), j, 0]
    # evaluate: a change of y at or after t cannot move the intervals of origins <= t
    y = _shifted(900, 3)
    y2 = y.copy()
    t = 800
    y2[t:] += np.linspace(0, 30, 900 - t)
    kw = {"split": 200, "coverage": 0.9, "adaptive": {"gamma": 0.1}}
    a = evaluate(SeasonalNaive(season=12, horizon=6), y, **kw)
    b = evaluate(SeasonalNaive(season=12, horizon=6), y2, **kw)
    width_a = a.adaptive_intervals[0.9]["upper"] - a.adaptive_intervals[0.9]["lower"]
    width_b = b.adaptive_intervals[0.9]["upper"] - b.adaptive_intervals[0.9]["lower"]
    early = a.origins <= t
    np.testing.assert_array_equal(width_a[early], width_b[early])
    assert not np.array_equal(width_a[~early], width_b[~early])


def test_adaptive_bad_input():
    cal = np.ones((20, 3))
    for bad in (0.0, -0.1, 1.0, float("nan")):
        with pytest.raises(ValueError, match="gamma must be a step size in \\(0, 1\\)"):
            AdaptiveConformal(cal, gamma=bad)
    for bad in (True, "0.05", None):
        with pytest.raises(TypeError, match="gamma must be a positive step size"):
            AdaptiveConformal(cal, gamma=bad)
    for bad in (0.0, 1.0, 1.2):
        with pytest.raises(ValueError, match="coverage must be a probability strictly between"):
            AdaptiveConformal(cal, coverage=bad)
    with pytest.raises(ValueError, match="window must be None or a positive"):
        AdaptiveConformal(cal, window=0)
    with pytest.raises(TypeError, match="window must be None or a positive"):
        AdaptiveConformal(cal, window=2.5)
    with pytest.raises(ValueError, match="residuals must have shape"):
        AdaptiveConformal(np.ones(5))
    with pytest.raises(ValueError, match="non-negative"):
        AdaptiveConformal(-cal)
    aci = AdaptiveConformal(cal)
    with pytest.raises(ValueError, match="step must be an integer in \\[0, 3\\)"):
        aci.update(3, 1.0)
    with pytest.raises(ValueError, match="forecaster must be fitted and calibrated"):
        AdaptiveConformal.from_forecaster(SeasonalNaive(season=12, horizon=6))
    y = _seasonal(400, 0.3, 7)
    f = SeasonalNaive(season=12, horizon=6)
    with pytest.raises(ValueError, match="gamma must be"):
        evaluate(f, y, coverage=0.9, adaptive={"gamma": 0.0})
    with pytest.raises(ValueError, match="coverage must be"):
        evaluate(f, y, coverage=1.0, adaptive=True)
    with pytest.raises(ValueError, match="adaptive intervals need coverage"):
        evaluate(f, y, adaptive=True)
    with pytest.raises(ValueError, match="keys 'gamma' and / or 'window'"):
        evaluate(f, y, coverage=0.9, adaptive={"step": 0.1})
    with pytest.raises(TypeError, match="adaptive must be None, a bool or a dict"):
        evaluate(f, y, coverage=0.9, adaptive=0.05)
    with pytest.raises(ValueError, match="origins must be"):
        adaptive_intervals(np.zeros((3, 2, 1)), np.zeros((3, 2, 1)), [0, 2, 1], np.ones((5, 2)))
