"""Forecasters: learning, shapes and scale, multivariate, covariates, seeds, save / load, errors."""

import json

import numpy as np
import pytest
import torch

from tensornet.datasets import make_genz
from tensornet.forecast import (
    LinearForecaster,
    LSTMForecaster,
    NotFittedError,
    SeasonalNaive,
    TTLSTMForecaster,
    clone,
    load,
)

pd = pytest.importorskip("pandas")


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _sine(n, period=20, phase=0.0):
    return np.sin(np.arange(n) * 2 * np.pi / period + phase)


def _rmse(a, b):
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


TINY = dict(hidden_size=8, rank=2, epochs=2, batch_size=32)


# -- learning -------------------------------------------------------------------

def test_ttlstm_learns_noiseless_sine():
    y = _sine(320)
    f = TTLSTMForecaster(20, 10, hidden_size=16, rank=4, lr=1e-2, epochs=15, batch_size=32,
                         random_state=0).fit(y)
    truth = _sine(330)[320:]
    err = _rmse(f.predict(), truth)
    # the series has standard deviation 0.71; seasonal-naive with a wrong season is ~0.6
    assert err < 0.08, err
    assert f.history_["val_loss"][-1] < 0.05 * f.history_["val_loss"][0] or f.best_epoch_ > 1


def test_ttlstm_learns_genz_dynamics_from_many_sequences():
    train = make_genz(10, n_series=300, random_state=0)
    test = make_genz(10, n_series=100, random_state=1)
    f = TTLSTMForecaster(2, 8, hidden_size=16, rank=4, lr=1e-2, epochs=20, random_state=0)
    f.fit(list(train))
    pred = f.predict(test[:, :2, None])[..., 0]
    assert pred.shape == (100, 8)
    err = _rmse(pred, test[:, 2:])
    naive = _rmse(np.repeat(test[:, 1:2], 8, axis=1), test[:, 2:])
    assert err < 0.02 and err < 0.1 * naive, (err, naive)


def test_linear_forecaster_learns_trend_plus_season():
    t = np.arange(400)
    y = 0.05 * t + _sine(400, period=25)
    f = LinearForecaster(50, 25, epochs=60, random_state=0).fit(y)
    tt = np.arange(400, 425)
    assert _rmse(f.predict(), 0.05 * tt + np.sin(tt * 2 * np.pi / 25)) < 0.1


def test_lstm_forecaster_runs_and_improves():
    y = _sine(300)
    f = LSTMForecaster(20, 10, hidden_size=16, epochs=6, lr=1e-2, random_state=0).fit(y)
    assert f.predict().shape == (10,)
    assert f.history_["train_loss"][-1] < f.history_["train_loss"][0]


def test_seasonal_naive_repeats_last_season():
    y = np.r_[np.zeros(3), np.arange(6.0)]
    f = SeasonalNaive(season=4, horizon=6).fit(y)
    np.testing.assert_array_equal(f.predict(), [2, 3, 4, 5, 2, 3])
    np.testing.assert_array_equal(f.predict(n=9)[6:], [4, 5, 2])
    np.testing.assert_array_equal(f.predict(y_context=[9, 8, 7, 6, 5]), [8, 7, 6, 5, 8, 7])
    # covariates are accepted and ignored
    f2 = SeasonalNaive(season=4, horizon=6).fit(y, X=np.ones((9, 2)))
    np.testing.assert_array_equal(f2.predict(X_future=np.ones((6, 2))), f.predict())


# -- shapes, scale, multivariate, covariates ------------------------------------

def test_predict_shape_and_original_scale():
    base = _sine(200)
    y = 1000.0 + 50.0 * base
    f = LinearForecaster(40, 10, epochs=30, random_state=0).fit(y)
    p = f.predict()
    assert p.shape == (10,)
    np.testing.assert_allclose(p, 1000 + 50 * _sine(210)[200:], atol=5.0)
    assert f.predict(n=23).shape == (23,)
    # the scaler saw the training split only (last 20 % held out for validation)
    np.testing.assert_allclose(f.scaler_y_.mean, [y[:160].mean()])
    np.testing.assert_allclose(f.scaler_y_.scale, [y[:160].std()])
    # a batch of contexts
    ctx = np.stack([y[i:i + 40] for i in range(5)])[..., None]
    assert f.predict(ctx).shape == (5, 10, 1)
    # a pandas Series works as well
    assert f.predict(pd.Series(y[-50:])).shape == (10,)


def test_multivariate_input_and_output():
    n = 300
    y = np.stack([_sine(n), 10 + 3 * _sine(n, phase=1.0)], axis=1)
    f = TTLSTMForecaster(20, 5, hidden_size=16, rank=4, lr=1e-2, epochs=8, random_state=0)
    f.fit(pd.DataFrame(y, columns=["a", "b"]))
    p = f.predict()
    assert p.shape == (5, 2)
    assert f.columns_ == ["a", "b"] and f.n_features_in_ == 2
    truth = np.stack([_sine(n + 5)[n:], 10 + 3 * _sine(n + 5, phase=1.0)[n:]], axis=1)
    # each channel on its own scale
    assert _rmse(p[:, 0], truth[:, 0]) < 0.3
    assert _rmse(p[:, 1], truth[:, 1]) < 0.9


def test_known_future_covariates_are_used():
    rng = np.random.default_rng(0)
    n = 600
    X = rng.choice([0.0, 1.0], size=(n, 1))            # unpredictable, but known in advance
    y = 2.0 * X[:, 0] + 0.1 * _sine(n)
    kw = dict(epochs=40, window_norm="none", random_state=0)
    with_x = LinearForecaster(20, 5, **kw).fit(y[:500], X[:500])
    without = LinearForecaster(20, 5, **kw).fit(y[:500])
    p_x = with_x.predict(y[:520], X=X[:520], X_future=X[520:525])
    p_0 = without.predict(y[:520])
    assert _rmse(p_x, y[520:525]) < 0.2 < _rmse(p_0, y[520:525])
    # TT-LSTM takes covariates in encoder and decoder
    tt = TTLSTMForecaster(20, 5, **TINY, random_state=0).fit(y[:500], X[:500])
    assert tt.predict(y[:520], X=X[:520], X_future=X[520:525]).shape == (5,)
    with pytest.raises(ValueError, match="X_future"):
        tt.predict(y[:520], X=X[:520])
    with pytest.raises(ValueError, match="without covariates"):
        without.predict(X_future=X[:5])


def test_scheduled_sampling_trains():
    y = _sine(200)
    f = TTLSTMForecaster(20, 5, scheduled_sampling=0.8, **TINY, random_state=0).fit(y)
    assert np.isfinite(f.predict()).all()


@pytest.mark.parametrize("cls", [TTLSTMForecaster, LSTMForecaster])
def test_highway_starts_as_the_plain_network_and_adds_a_linear_skip(cls):
    rng = np.random.default_rng(0)
    y = np.stack([_sine(200), _sine(200, period=9)], axis=1) + 0.05 * rng.normal(size=(200, 2))
    L, H = 24, 6
    plain = cls(L, H, hidden_size=8, random_state=0, highway=False)
    hw = cls(L, H, hidden_size=8, random_state=0)  # the default
    assert hw.highway is True
    assert hw.count_parameters(2) == plain.count_parameters(2) + L * H + H
    # the skip starts at zero: untrained, both networks give the same forecast
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    hw.n_features_in_ = plain.n_features_in_ = 2
    hw.n_covariates_ = plain.n_covariates_ = 0
    a, b = plain._new_net(g1), hw._new_net(g2)
    enc, cov = torch.randn(3, L, 2), torch.zeros(3, H, 0)
    torch.testing.assert_close(a(enc, cov, H), b(enc, cov, H))
    # the skip is the linear map of each channel's normalised window, shared by the channels
    with torch.no_grad():
        b.highway.weight.normal_()
        b.highway.bias.normal_()
    level = enc[:, -1:]
    manual = torch.einsum("hl,blk->bhk", b.highway.weight, enc - level) + b.highway.bias[:, None]
    torch.testing.assert_close(b(enc, cov, H) - a(enc, cov, H), manual)
    assert b(enc, cov, 4).shape == (3, 4, 2)
    with pytest.raises(ValueError, match="at most the horizon"):
        b(enc, torch.zeros(3, H + 1, 0), H + 1)


def test_highway_learns_what_a_linear_map_of_the_window_predicts():
    # two sines: the next values are an exact linear function of the normalised
    # window, which the skip can hold; the recurrent part is kept tiny
    t = np.arange(460)
    y = np.sin(2 * np.pi * t / 7) + 0.5 * np.sin(2 * np.pi * t / 11)
    kw = dict(hidden_size=2, rank=1, epochs=40, lr=2e-2, patience=40, random_state=0)
    with_skip = TTLSTMForecaster(24, 6, highway=True, **kw).fit(y[:440])
    without = TTLSTMForecaster(24, 6, highway=False, **kw).fit(y[:440])
    e_skip = _rmse(with_skip.predict(), y[440:446])
    e_plain = _rmse(without.predict(), y[440:446])
    assert e_skip < 0.1 * np.std(y) and e_skip < 0.5 * e_plain, (e_skip, e_plain)


# -- seeds, cloning, persistence ---------------------------------------------------

@pytest.mark.parametrize("cls", [TTLSTMForecaster, LSTMForecaster, LinearForecaster])
def test_same_seed_same_forecast(cls):
    y = _sine(150) + 0.1 * np.random.default_rng(0).normal(size=150)
    kw = dict(epochs=2, batch_size=16)
    if cls is not LinearForecaster:
        kw["hidden_size"] = 8
    a = cls(20, 5, random_state=3, **kw).fit(y).predict()
    b = cls(20, 5, random_state=3, **kw).fit(y).predict()
    c = cls(20, 5, random_state=4, **kw).fit(y).predict()
    np.testing.assert_array_equal(a, b)
    if cls is not LinearForecaster:        # the linear model starts from a fixed average
        assert not np.allclose(a, c)


def test_clone_and_params():
    f = TTLSTMForecaster(10, 4, order=3, rank=5)
    g = clone(f)
    assert g.get_params() == f.get_params() and g is not f
    f.set_params(rank=2)
    assert f.rank == 2 and g.rank == 5
    with pytest.raises(ValueError, match="invalid parameter"):
        f.set_params(ranks=3)
    assert "order=3" in repr(g)
    # parameter count without fitting equals the fitted network's
    y = np.stack([_sine(80), _sine(80, period=7)], axis=1)
    tt = TTLSTMForecaster(10, 4, **TINY, random_state=0)
    n = tt.count_parameters(n_features=2, n_covariates=1)
    assert tt.fit(y, np.ones((80, 1))).n_parameters_ == n
    # TT cores are a ParameterList with the documented shapes (D = lags * hidden + 1 = 25)
    assert [tuple(a.shape) for a in tt.net_.decoder.cores] == [(1, 25, 2), (2, 25, 32)]


@pytest.mark.parametrize("cls", [TTLSTMForecaster, LSTMForecaster, LinearForecaster,
                                 SeasonalNaive])
def test_save_load_round_trip(cls, tmp_path):
    rng = np.random.default_rng(1)
    y = np.stack([_sine(120), _sine(120, period=7)], axis=1) + 0.05 * rng.normal(size=(120, 2))
    X = rng.normal(size=(120, 1))
    if cls is SeasonalNaive:
        f = cls(season=20, horizon=6).fit(y)
    else:
        kw = dict(epochs=2) if cls is LinearForecaster else dict(epochs=2, hidden_size=8,
                                                                 highway=cls is TTLSTMForecaster)
        f = cls(20, 6, random_state=0, **kw).fit(y, X)
    Xf = rng.normal(size=(6, 1))
    before = f.predict(X_future=Xf)
    path = f.save(tmp_path / "model")
    meta = json.loads((path / "forecaster.json").read_text())
    assert meta["class"] == cls.__name__
    # plain tensors only: loadable without unpickling arbitrary objects
    torch.load(path / "weights.pt", weights_only=True)
    g = load(path)
    assert type(g) is cls and g.get_params() == f.get_params()
    np.testing.assert_array_equal(g.predict(X_future=Xf), before)
    assert cls.load(path).n_features_in_ == 2
    if cls is not SeasonalNaive:
        with pytest.raises(TypeError, match="holds a"):
            SeasonalNaive.load(path)


def test_numpy_scalar_parameters_are_saved_as_json(tmp_path):
    f = LSTMForecaster(np.int64(20), 6, hidden_size=8, epochs=1, random_state=0,
                       highway=np.True_).fit(_sine(100))
    g = load(f.save(tmp_path / "m"))
    assert g.highway is True and g.lookback == 20
    np.testing.assert_array_equal(g.predict(), f.predict())


def test_files_saved_before_the_highway_existed_load_without_it(tmp_path):
    y = _sine(120)
    f = TTLSTMForecaster(20, 6, hidden_size=8, epochs=2, random_state=0, highway=False).fit(y)
    path = f.save(tmp_path / "old")
    meta = json.loads((path / "forecaster.json").read_text())
    del meta["params"]["highway"]          # as written by tensornet before the parameter
    (path / "forecaster.json").write_text(json.dumps(meta))
    g = load(path)
    assert g.highway is False
    np.testing.assert_array_equal(g.predict(), f.predict())


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="forecaster.json"):
        load(tmp_path)
    (tmp_path / "forecaster.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="not a tensornet forecaster"):
        load(tmp_path)


# -- bad input ---------------------------------------------------------------------

def test_nan_gaps_need_an_imputation_choice():
    y = _sine(100)
    y[[10, 11, 50]] = np.nan
    with pytest.raises(ValueError, match=r"3 missing values.*impute"):
        LinearForecaster(10, 5, epochs=1).fit(y)
    f = LinearForecaster(10, 5, epochs=1, impute="linear", random_state=0).fit(y)
    assert np.isfinite(f.predict()).all()
    with pytest.raises(ValueError, match="impute"):
        LinearForecaster(10, 5, impute="mean").fit(y)


def test_series_shorter_than_lookback_plus_horizon():
    with pytest.raises(ValueError, match=r"lookback \+ horizon = 30 \+ 10 = 40"):
        TTLSTMForecaster(30, 10).fit(np.arange(35.0), validation=None)
    with pytest.raises(ValueError, match="validation"):
        TTLSTMForecaster(30, 10).fit(np.arange(45.0), validation=0.2)


@pytest.mark.parametrize("horizon, exc", [(0, ValueError), (-3, ValueError), (2.5, TypeError)])
def test_bad_horizon(horizon, exc):
    for cls in (TTLSTMForecaster, LinearForecaster):
        with pytest.raises(exc, match="horizon"):
            cls(10, horizon).fit(np.arange(100.0))
    with pytest.raises(exc, match="horizon"):
        SeasonalNaive(5, horizon).fit(np.arange(100.0))


def test_non_numeric_columns():
    df = pd.DataFrame({"y": np.arange(50.0), "label": ["a"] * 50})
    with pytest.raises(TypeError, match="'label'"):
        LinearForecaster(10, 5).fit(df)
    with pytest.raises(TypeError, match="numbers"):
        LinearForecaster(10, 5).fit(np.array(["1", "x"] * 30, dtype=object))
    with pytest.raises(TypeError, match=r"X must hold numeric.*'c'"):
        LinearForecaster(10, 5).fit(np.arange(50.0), X=pd.DataFrame({"c": ["u"] * 50}))


@pytest.mark.parametrize("params, exc, word", [
    (dict(lookback=0), ValueError, "lookback"),
    (dict(hidden_size=0), ValueError, "hidden_size"),
    (dict(order=0), ValueError, "order"),
    (dict(lr=0.0), ValueError, "lr"),
    (dict(epochs=1.5), TypeError, "epochs"),
    (dict(scheduled_sampling=2.0), ValueError, "scheduled_sampling"),
    (dict(window_norm="max"), ValueError, "window_norm"),
    (dict(random_state="seed"), TypeError, "random_state"),
    (dict(highway="yes"), TypeError, "highway"),
])
def test_bad_parameters_name_themselves(params, exc, word):
    kw = dict(lookback=10, horizon=5)
    kw.update(params)
    with pytest.raises(exc, match=word):
        TTLSTMForecaster(**kw).fit(np.arange(100.0))


def test_predict_checks():
    f = LinearForecaster(10, 5, epochs=1, random_state=0)
    with pytest.raises(NotFittedError, match="not fitted"):
        f.predict()
    f.fit(np.arange(100.0))
    with pytest.raises(ValueError, match="at least lookback=10"):
        f.predict(np.arange(5.0))
    with pytest.raises(ValueError, match="n must be >= 1"):
        f.predict(n=0)
    with pytest.raises(ValueError, match="1 channels"):
        f.predict(np.ones((20, 2)))
    with pytest.raises(ValueError, match="validation"):
        LinearForecaster(10, 5).fit(np.arange(100.0), validation=1.5)


@pytest.mark.gpu
def test_ttlstm_forecaster_on_cuda(tmp_path):
    y = _sine(200)
    f = TTLSTMForecaster(20, 5, **TINY, random_state=0, device="cuda").fit(y)
    assert next(f.net_.parameters()).is_cuda
    p = f.predict()
    assert p.shape == (5,) and np.isfinite(p).all()
    g = load(f.save(tmp_path / "m"), device="cpu")
    np.testing.assert_allclose(g.predict(), p, atol=1e-4)
