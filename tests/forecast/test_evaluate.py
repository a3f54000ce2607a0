"""Rolling-origin evaluation."""

import numpy as np
import pytest
import torch

from tensornet.forecast import LinearForecaster, SeasonalNaive, evaluate, mae, rmse


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_exact_on_a_periodic_series():
    y = np.tile([1.0, 5.0, 2.0, 8.0], 30)
    res = evaluate(SeasonalNaive(season=4, horizon=6), y, horizons=[1, 3, 6], split=0.25)
    assert res.horizons == [1, 3, 6]
    assert max(res.rmse.values()) < 1e-12 and max(res.mae.values()) < 1e-12
    assert res.n_train == 90
    np.testing.assert_array_equal(res.origins, np.arange(90, 115))


def test_errors_match_a_manual_rolling_forecast():
    rng = np.random.default_rng(0)
    t = np.arange(300)
    y = 10 + np.sin(t * 2 * np.pi / 12) + 0.3 * rng.normal(size=300)
    f = LinearForecaster(24, 6, epochs=5, random_state=0)
    res = evaluate(f, y, horizons=[2, 6], split=60, stride=5)
    assert not hasattr(f, "net_")                      # the given forecaster is untouched
    model = res.forecaster
    assert res.n_train == 240
    # scalers come from the training split the forecaster saw (minus its validation tail)
    n_fit = 240 - model.n_validation_
    np.testing.assert_allclose(model.scaler_y_.mean, [y[:n_fit].mean()])
    errs = []
    for o in res.origins:
        p = model.predict(y[o - 24:o])
        errs.append(p - y[o:o + 6])
    errs = np.array(errs)
    # (float32 network: a batch and a single context may differ in the last bits)
    assert res.rmse[6] == pytest.approx(np.sqrt(np.mean(errs ** 2)), rel=1e-5)
    assert res.rmse[2] == pytest.approx(np.sqrt(np.mean(errs[:, :2] ** 2)), rel=1e-5)
    assert res.mae[6] == pytest.approx(np.mean(np.abs(errs)), rel=1e-5)
    np.testing.assert_allclose(res.rmse_by_lead, np.sqrt(np.mean(errs ** 2, axis=0)), rtol=1e-5)
    np.testing.assert_array_equal(res.origins, np.arange(240, 295, 5))
    d = res.to_dict()
    assert d["n_origins"] == 11 and set(d["rmse"]) == {2, 6}


def test_horizons_beyond_the_model_horizon_continue_recursively():
    y = np.tile(np.arange(5.0), 40)
    res = evaluate(SeasonalNaive(season=5, horizon=3), y, horizons=[10], split=50)
    assert res.forecasts.shape[1] == 10 and res.rmse[10] < 1e-12


def test_metrics():
    assert rmse([0, 0], [3, 4]) == pytest.approx(np.sqrt(12.5))
    assert mae([0, 0], [3, -4]) == 3.5


def test_bad_arguments():
    y = np.arange(100.0)
    with pytest.raises(TypeError, match="forecaster"):
        evaluate("naive", y)
    with pytest.raises(ValueError, match="largest horizon"):
        evaluate(SeasonalNaive(5, 30), y, split=0.2)
    with pytest.raises(ValueError, match="split"):
        evaluate(SeasonalNaive(5, 3), y, split=1.5)
    with pytest.raises(ValueError, match="horizons"):
        evaluate(SeasonalNaive(5, 3), y, horizons=[0, 3])
    with pytest.raises(ValueError, match="stride"):
        evaluate(SeasonalNaive(5, 3), y, stride=0)
    gappy = y.copy()
    gappy[3] = np.nan
    with pytest.raises(ValueError, match="impute"):
        evaluate(SeasonalNaive(5, 3), gappy)
    res = evaluate(SeasonalNaive(5, 3, impute="linear"), gappy)
    assert np.isfinite(res.rmse[3])
