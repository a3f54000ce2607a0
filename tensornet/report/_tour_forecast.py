"""Demo section ``forecast``: weekly Mauna Loa CO₂ with the TT-LSTM against baselines."""

from __future__ import annotations

import time

import numpy as np

from . import new_figure
from ._common import progress

LOOKBACK, HORIZON, SEASON = 104, 52, 52
HORIZONS = (13, 26, 52)


def _models(s, n_cov):
    from ..forecast import LinearForecaster, LSTMForecaster, SeasonalNaive, TTLSTMForecaster

    if s.quick:
        train = dict(epochs=3, patience=2, max_windows=200)
        tt = dict(hidden_size=8, lags=3, order=2, rank=2)
    else:
        train = dict(epochs=30, patience=5, max_windows=1500)
        tt = dict(hidden_size=16, lags=3, order=2, rank=4)
    train.update(random_state=s.seed, device=s.device)
    ttlstm = TTLSTMForecaster(LOOKBACK, HORIZON, **tt, **train, progress=s.progress)
    n_tt = ttlstm.count_parameters(1, n_cov)
    hidden = 4      # the LSTM baseline gets at least as many parameters as the TT-LSTM
    while LSTMForecaster(2, 2, hidden_size=hidden).count_parameters(1, n_cov) < n_tt:
        hidden += 2
    return {"TT-LSTM": ttlstm,
            "LSTM": LSTMForecaster(LOOKBACK, HORIZON, hidden_size=hidden, **train,
                                   progress=s.progress),
            "linear": LinearForecaster(LOOKBACK, HORIZON, **train),
            "seasonal naive": SeasonalNaive(SEASON, HORIZON)}


def section_forecast(report, s) -> list[str]:
    """Rolling-origin evaluation on CO₂; forecast with a 90 % conformal band; error by lead."""
    from ..datasets import load_co2
    from ..forecast import calendar_features, evaluate

    series = load_co2()
    X = calendar_features(series.index, ["year"])
    y = series.to_numpy()
    dates = series.index
    if s.quick:
        n = 20 * SEASON + LOOKBACK
        y, X, dates = y[-n:], X[-n:], dates[-n:]
    stride = 26 if s.quick else 13
    models = _models(s, X.shape[1])
    results, rows = {}, []
    for name, f in progress(s, list(models.items()), desc="forecast: fit + evaluate"):
        t0 = time.perf_counter()
        res = evaluate(f, y, X=None if name == "seasonal naive" else X, horizons=list(HORIZONS),
                       split=0.2, stride=stride, coverage=0.9)
        seconds = time.perf_counter() - t0
        results[name] = res
        fm = res.forecaster
        iv = res.intervals[0.9]
        rows.append([name, f"{fm.n_parameters_:,}" if hasattr(fm, "net_") else "0",
                     *(f"{res.rmse[h]:.3f}" for h in HORIZONS), f"{res.mae[HORIZON]:.3f}",
                     f"{100 * iv['coverage']:.1f}", f"{iv['width']:.2f}", f"{seconds:.1f} s"])

    sec = report.section("Forecasting: Mauna Loa CO₂, one year ahead")
    r0 = results["TT-LSTM"]
    sec.text(f"Weekly atmospheric CO₂ at Mauna Loa (statsmodels; {len(y):,} weeks from "
             f"{dates[0]:%B %Y} to {dates[-1]:%B %Y}, the few missing weeks filled linearly). "
             f"Each model is fitted on the first {r0.n_train:,} weeks and forecasts {HORIZON} "
             f"weeks from {len(r0.origins)} origins in the held-out last 20 % (every {stride} "
             f"weeks), from the last {LOOKBACK} weeks and the day-of-year phase. The LSTM "
             "baseline has at least as many parameters as the TT-LSTM. The 90 % band is "
             "split-conformal (predict_interval), calibrated on the validation windows of the "
             "training part; coverage is measured on the held-out tail.")
    sec.table(["model", "parameters", *(f"RMSE h≤{h} (ppm)" for h in HORIZONS),
               f"MAE h≤{HORIZON}", "90 % band coverage %", "band width (ppm)", "time"], rows)

    # forecast against truth from the last origin, with the conformal band
    fm = r0.forecaster
    o = int(r0.origins[-1])
    pred, lower, upper = fm.predict_interval(y[o - LOOKBACK:o], coverage=0.9,
                                             X=X[o - LOOKBACK:o], X_future=X[o:o + HORIZON],
                                             return_forecast=True)
    pred, lower, upper = (np.ravel(a) for a in (pred, lower, upper))
    fig, ax = new_figure(9.0, 3.8)
    past = slice(max(0, o - 3 * SEASON), o + HORIZON)
    ax.plot(dates[past], y[past], color="k", lw=1.2, label="observed")
    fut = dates[o:o + HORIZON]
    ax.fill_between(fut, lower, upper, color="C0", alpha=0.25, label="TT-LSTM 90 % band")
    ax.plot(fut, pred, color="C0", lw=2, label="TT-LSTM")
    for j, name in enumerate(["LSTM", "linear", "seasonal naive"], start=1):
        ax.plot(fut, results[name].forecasts[-1, :, 0], color=f"C{j}", lw=1, ls="--",
                label=name)
    ax.axvline(dates[o], color="0.5", ls=":")
    ax.set_ylabel("CO₂ (ppm)")
    ax.set_title(f"{HORIZON}-week forecasts from {dates[o]:%d %b %Y} (held out)")
    ax.legend(fontsize=8, ncols=2)
    sec.figure(fig, "forecast_vs_truth.png",
               "Forecasts against the held-out truth, with the TT-LSTM's 90 % conformal band")

    fig, ax = new_figure(6.4, 3.8)
    leads = np.arange(1, HORIZON + 1)
    for j, (name, res) in enumerate(results.items()):
        ax.plot(leads, res.rmse_by_lead, color=f"C{j}", lw=2 if name == "TT-LSTM" else 1.2,
                label=name)
    ax.set_xlabel("lead (weeks ahead)")
    ax.set_ylabel("RMSE (ppm)")
    ax.set_title("Error against horizon (held-out origins)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    sec.figure(fig, "forecast_error_horizon.png", "RMSE at each lead, every model")
    best = min(results, key=lambda n: results[n].rmse[HORIZON])
    return [f"forecast: CO2 {HORIZON}-week RMSE " + ", ".join(
        f"{n} {r.rmse[HORIZON]:.3f}" for n, r in results.items()) + f" (best: {best}); "
        f"TT-LSTM 90 % band covers {100 * r0.intervals[0.9]['coverage']:.1f} %"]
