"""Neural forecasters with a chosen optimizer: Bregman rank learning, pruning, save / load."""

import json

import numpy as np
import pytest
import torch

from tensornet.forecast import LSTMForecaster, TTLSTMForecaster, load
from tensornet.optim import AdaBreg, LinBreg, RankL1, rank_groups


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _sine(n, period=20):
    return np.sin(np.arange(n) * 2 * np.pi / period)


SMALL = dict(hidden_size=16, rank=6, epochs=15, batch_size=32, random_state=0)


def test_linbreg_rank_l1_fits_and_prunes_a_ttlstm_forecaster(tmp_path):
    y = _sine(320)
    f = TTLSTMForecaster(20, 10, **SMALL, optimizer="linbreg",
                         optimizer_kwargs={"reg": RankL1(0.05), "lr": 0.1}, init_rank=1).fit(y)
    # the whole training ran under LinBreg with the rank penalty: the inactive
    # components (only the first was switched on) stayed exactly zero
    assert [g.active for g in rank_groups(f.net_)] == [1, 1]
    assert f.ranks_ == {"encoder": [6], "decoder": [6]}
    before = f.predict()
    truth = _sine(330)[320:]
    err = float(np.sqrt(np.mean((before - truth) ** 2)))
    assert err < 0.35, err                 # std of the series is 0.71
    n_before = f.n_parameters_
    report = f.prune_ranks()
    assert f.ranks_ == {"encoder": [1], "decoder": [1]}
    assert report.params_before == n_before and f.n_parameters_ == report.params_after
    assert report.params_after < 0.2 * n_before
    np.testing.assert_allclose(f.predict(), before, atol=1e-6)
    # the pruned ranks are saved: the loaded model is the small one, same forecasts
    path = f.save(tmp_path / "m")
    meta = json.loads((path / "forecaster.json").read_text())
    assert meta["params"]["optimizer"] == "linbreg"
    assert meta["params"]["optimizer_kwargs"]["reg"]["name"] == "RankL1"
    g = load(path)
    assert g.ranks_ == f.ranks_ and g.n_parameters_ == f.n_parameters_
    np.testing.assert_array_equal(g.predict(), f.predict())


def test_optimizer_forms_give_the_same_model():
    y = _sine(200)
    kw = dict(hidden_size=8, rank=2, epochs=2, batch_size=32, random_state=0, lr=1e-2)
    ref = TTLSTMForecaster(20, 5, **kw).fit(y).predict()
    for opt in ("adam", "Adam", torch.optim.Adam,
                lambda net: torch.optim.Adam(net.parameters(), lr=1e-2)):
        got = TTLSTMForecaster(20, 5, **kw, optimizer=opt).fit(y).predict()
        np.testing.assert_array_equal(got, ref)
    sgd = TTLSTMForecaster(20, 5, **kw, optimizer="sgd",
                           optimizer_kwargs={"momentum": 0.9}).fit(y).predict()
    assert not np.array_equal(sgd, ref)


def test_class_optimizer_with_rank_l1_gets_rank_groups_and_lstm_takes_optimizers():
    y = _sine(200)
    seen = {}

    def build(net):
        from tensornet.optim import rank_param_groups

        seen["net"] = net
        return AdaBreg(rank_param_groups(net, reg=RankL1(0.01)), lr=1e-2)

    f = TTLSTMForecaster(20, 5, hidden_size=8, rank=3, epochs=2, random_state=0,
                         optimizer=build).fit(y)
    assert seen["net"] is f.net_
    f2 = TTLSTMForecaster(20, 5, hidden_size=8, rank=3, epochs=2, random_state=0,
                          lr=1e-2, optimizer=AdaBreg,
                          optimizer_kwargs={"reg": RankL1(0.01)}).fit(y)
    np.testing.assert_allclose(f2.predict(), f.predict(), atol=1e-6)
    g = LSTMForecaster(20, 5, hidden_size=8, epochs=2, random_state=0, optimizer=LinBreg,
                       optimizer_kwargs={"lr": 0.05}).fit(y)
    assert np.isfinite(g.predict()).all()


def test_unsaveable_optimizer_is_dropped_with_a_warning(tmp_path, caplog):
    y = _sine(200)
    f = TTLSTMForecaster(20, 5, hidden_size=8, rank=2, epochs=1, random_state=0,
                         optimizer=lambda net: torch.optim.SGD(net.parameters(), lr=1e-2)).fit(y)
    with caplog.at_level("WARNING"):
        path = f.save(tmp_path / "m")
    assert "not saved" in caplog.text
    g = load(path)
    assert g.optimizer is None
    np.testing.assert_array_equal(g.predict(), f.predict())


@pytest.mark.parametrize("params, exc, word", [
    (dict(optimizer="lbfgs"), ValueError, "optimizer"),
    (dict(optimizer=3), TypeError, "optimizer"),
    (dict(optimizer=dict), TypeError, "optimizer"),
    (dict(optimizer="adam", optimizer_kwargs=[1]), TypeError, "optimizer_kwargs"),
    (dict(optimizer=lambda net: None), TypeError, "must return a torch.optim.Optimizer"),
    (dict(optimizer=lambda net: None, optimizer_kwargs={"lr": 1}), ValueError,
     "optimizer_kwargs"),
    (dict(optimizer="adam", optimizer_kwargs={"reg": RankL1(0.1)}), TypeError,
     "does not accept optimizer_kwargs"),
    (dict(init_rank=0), ValueError, "init_rank"),
    (dict(init_rank=1, order=1), ValueError, "init_rank"),
])
def test_bad_optimizer_parameters_name_themselves(params, exc, word):
    kw = dict(lookback=10, horizon=5, hidden_size=4, rank=2, epochs=1)
    kw.update(params)
    with pytest.raises(exc, match=word):
        TTLSTMForecaster(**kw).fit(np.arange(100.0))
