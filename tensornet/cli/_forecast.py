"""``tensornet forecast``: train a forecaster on a CSV column and test it on the held-out tail."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from . import CLIError
from ._io import echo

EXAMPLES = """examples:
  tensornet forecast demand.csv --column demand --time-column time --horizon 48 --out fc
  tensornet forecast calls.csv --column calls --horizon 28 --model lstm --epochs 20 --out fc
  tensornet forecast y.csv --column y --horizon 12 --model linear --impute linear --out fc

The last --test share of the series is held out: the model is fitted on the rest
and forecasts from every origin in the tail (rolling origin). Errors are on the
original scale, beside seasonal-naive and linear baselines trained the same way.
With --time-column, calendar phases (time of day / week / year) are given to
every model as covariates known in advance, and the season is read from the
time stamps; time stamps after the data continue the median step. Every model
also gives split-conformal prediction intervals (--coverage, default 0.9),
calibrated on windows of its training part that it did not learn from (the
validation split; for seasonal naive the last 20 %); their empirical coverage
and mean width on the test tail are reported. Writes DIR/forecast.csv (the
forecast from the first test origin with the truth, and the forecast after the
last observation, each with its interval) and DIR/forecast.png (with the band).
"""

MODELS = ("ttlstm", "lstm", "linear")


def add_parser(sub):
    p = sub.add_parser("forecast", help="train a forecaster on a CSV column, report test errors",
                       description="Train a TT-LSTM (or LSTM / linear) forecaster on one column "
                                   "of a CSV file, report rolling-origin test errors per horizon "
                                   "against baselines, and write the forecast (CSV + PNG).",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", metavar="PATH", help="CSV file with a header row")
    p.add_argument("--column", required=True, help="the column to forecast")
    p.add_argument("--time-column", help="column of time stamps (sorts rows, adds calendar "
                                         "covariates, sets the season)")
    p.add_argument("--horizon", type=int, required=True, help="steps to forecast")
    p.add_argument("--model", default="ttlstm", choices=MODELS,
                   help="forecaster (default: %(default)s)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--lookback", type=int, help="context length (default: 2 seasons, at least "
                                                "2 horizons)")
    p.add_argument("--season", type=int, help="season length in steps (default: inferred)")
    p.add_argument("--test", type=float, default=0.2,
                   help="held-out share of the series (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=50, help="maximum epochs (default: %(default)s)")
    p.add_argument("--hidden-size", type=int, default=32, help="(default: %(default)s)")
    p.add_argument("--order", type=int, default=2, help="TT-LSTM order (default: %(default)s)")
    p.add_argument("--lags", type=int, default=3, help="TT-LSTM lags (default: %(default)s)")
    p.add_argument("--rank", type=int, default=4, help="TT-LSTM rank (default: %(default)s)")
    p.add_argument("--no-highway", action="store_true",
                   help="TT-LSTM / LSTM without the linear autoregressive skip (highway)")
    p.add_argument("--impute", choices=["linear", "ffill"],
                   help="fill NaN gaps (default: refuse data with gaps)")
    p.add_argument("--coverage", type=float, default=0.9,
                   help="coverage of the prediction intervals, between 0 and 1 "
                        "(default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _read(args):
    import numpy as np
    import pandas as pd

    path = Path(args.path)
    if not path.is_file():
        raise CLIError(f"no such file: {path}")
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise CLIError(f"cannot read {path} as CSV: {exc}") from None
    for opt, col in (("--column", args.column), ("--time-column", args.time_column)):
        if col is not None and col not in df.columns:
            raise CLIError(f"{opt} {col!r} is not a column of {path.name}; columns: "
                           f"{', '.join(map(str, df.columns))}")
    index = None
    if args.time_column:
        try:
            t = pd.to_datetime(df[args.time_column])
        except (ValueError, TypeError) as exc:
            raise CLIError(f"--time-column {args.time_column!r} does not hold time stamps: "
                           f"{exc}") from None
        order = np.argsort(t.to_numpy(), kind="stable")
        df = df.iloc[order]
        index = pd.DatetimeIndex(t.iloc[order])
        if index.has_duplicates:
            raise CLIError(f"--time-column {args.time_column!r} has repeated time stamps")
    y = df[args.column]
    if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
        raise CLIError(f"--column {args.column!r} is not numeric (dtype {y.dtype})")
    return y.to_numpy(dtype=float), index


def _future_index(index, n):
    import pandas as pd

    step = pd.Series(index).diff().median()
    return pd.DatetimeIndex([index[-1] + step * (i + 1) for i in range(n)])


def _build(name, lookback, horizon, args, season):
    from ..forecast import (
        LinearForecaster,
        LSTMForecaster,
        SeasonalNaive,
        TTLSTMForecaster,
    )

    common = dict(epochs=args.epochs, impute=args.impute, random_state=args.seed,
                  progress=not args.quiet, max_windows=4000)
    if name == "ttlstm":
        return TTLSTMForecaster(lookback, horizon, hidden_size=args.hidden_size, lags=args.lags,
                                order=args.order, rank=args.rank,
                                highway=not args.no_highway, **common)
    if name == "lstm":
        return LSTMForecaster(lookback, horizon, hidden_size=args.hidden_size,
                              highway=not args.no_highway, **common)
    if name == "linear":
        return LinearForecaster(lookback, horizon, **common)
    return SeasonalNaive(season, horizon, lookback=max(season, lookback), impute=args.impute)


def _plot(path, test_panel, future_panel, title, coverage):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4), dpi=100)
    FigureCanvasAgg(fig)
    band = f"{coverage:.0%} interval"
    t_hist, y_hist, t_true, y_true, t_fc, fc, lo, hi = test_panel
    ax = fig.add_subplot(1, 2, 1)
    ax.plot(t_hist, y_hist, color="0.5", lw=1, label="history")
    ax.fill_between(t_fc, lo, hi, color="C3", alpha=0.2, lw=0, label=band)
    ax.plot(t_true, y_true, color="k", lw=1.2, label="truth (held out)")
    ax.plot(t_fc, fc, color="C3", lw=1.6, label="forecast")
    ax.set_title(f"{title}: first test origin")
    ax.legend(loc="best", fontsize=8)
    t_hist, y_hist, t_fut, fut, lo, hi = future_panel
    ax = fig.add_subplot(1, 2, 2)
    ax.plot(t_hist, y_hist, color="0.5", lw=1, label="history")
    ax.fill_between(t_fut, lo, hi, color="C0", alpha=0.2, lw=0, label=band)
    ax.plot(t_fut, fut, color="C0", lw=1.6, ls="--", label="forecast beyond the data")
    ax.set_title(f"{title}: after the last observation")
    ax.legend(loc="best", fontsize=8)
    for a in fig.axes:
        for label in a.get_xticklabels():
            label.set_rotation(30)
            label.set_fontsize(8)
    fig.tight_layout()
    fig.savefig(path)


def run(args) -> int:
    import numpy as np
    import pandas as pd

    from ..forecast import calendar_features, evaluate, infer_season

    if args.horizon < 1:
        raise CLIError(f"--horizon must be a positive number of steps, got {args.horizon}")
    if not 0 < args.test < 1:
        raise CLIError(f"--test must be a fraction between 0 and 1, got {args.test}")
    if not 0 < args.coverage < 1:
        raise CLIError(f"--coverage must be a probability strictly between 0 and 1 (e.g. 0.9), "
                       f"got {args.coverage}")
    for opt in ("epochs", "hidden_size", "order", "lags", "rank", "lookback", "season",
                "threads"):
        v = getattr(args, opt)
        if v is not None and v < 1:
            raise CLIError(f"--{opt.replace('_', '-')} must be >= 1, got {v}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} exists and is not a folder")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    y, index = _read(args)
    n = len(y)
    if np.isnan(y).any() and args.impute is None:
        raise CLIError(f"--column {args.column!r} has {int(np.isnan(y).sum())} missing values; "
                       "choose how to fill them with --impute linear or --impute ffill")
    season = args.season or infer_season(y if not np.isnan(y).any() else
                                         pd.Series(y).interpolate().bfill().ffill().to_numpy(),
                                         index)
    H = args.horizon
    lookback = args.lookback or max(2 * season, 2 * H)
    n_test = int(round(args.test * n))
    if n_test < H:
        raise CLIError(f"the held-out tail ({n_test} of {n} steps at --test {args.test}) is "
                       f"shorter than --horizon {H}; raise --test or lower --horizon")
    need = int(np.ceil((lookback + H) / 0.8))        # training part incl. its validation split
    if n - n_test < need:
        if args.lookback:
            raise CLIError(f"the series has {n} steps: {n - n_test} left for training, fewer "
                           f"than the {need} needed for --lookback {lookback} and --horizon {H}")
        lookback = max(1, int((n - n_test) * 0.8) - H)
        if lookback < 1:
            raise CLIError(f"the series has {n} steps, too short for --horizon {H} with a "
                           f"{args.test:.0%} test tail")
    X = calendar_features(index) if index is not None else None
    horizons = sorted({max(1, H // 4), max(1, H // 2), H})
    echo(f"tensornet forecast: {Path(args.path).name}, column {args.column!r}, {n} steps, "
          f"season {season}, lookback {lookback}, horizon {H}, test tail {n_test} steps"
          + (f", {X.shape[1]} calendar covariates" if X is not None and X.shape[1] else ""))

    names = [args.model] + [m for m in ("linear", "seasonal-naive") if m != args.model]
    results = {}
    for name in names:
        f = _build(name, lookback, H, args, season)
        t0 = time.perf_counter()
        try:
            res = evaluate(f, y, X=X if name != "seasonal-naive" else None, horizons=horizons,
                           split=n_test, coverage=args.coverage)
        except (ValueError, TypeError) as exc:
            raise CLIError(str(exc)) from None
        results[name] = res
        fm = res.forecaster
        extra = ""
        if hasattr(fm, "net_"):
            extra = (f": {fm.n_parameters_:,} parameters, {fm.n_epochs_} epochs "
                     f"(best {fm.best_epoch_})")
        echo(f"  {name}{extra}, {time.perf_counter() - t0:.1f} s")

    echo(f"test errors over {len(results[args.model].origins)} rolling origins "
          "(original scale; h = mean over steps 1..h):")
    head = f"{'h':>5}" + "".join(f"{nm + ' RMSE':>22}" for nm in names) + \
        "".join(f"{nm + ' MAE':>22}" for nm in names)
    echo(head)
    for h in horizons:
        row = f"{h:>5}" + "".join(f"{results[nm].rmse[h]:>22.4g}" for nm in names) + \
            "".join(f"{results[nm].mae[h]:>22.4g}" for nm in names)
        echo(row)
    c = args.coverage
    echo(f"prediction intervals at {c:.0%} (split conformal, calibrated on held-out windows of "
          "the training part) on the test tail:")
    for nm in names:
        iv = results[nm].intervals[c]
        fm = results[nm].forecaster
        echo(f"  {nm:<16} coverage {iv['coverage']:6.1%}, mean width {iv['width']:.4g} "
              f"({fm.n_calibration_} calibration windows)")

    # forecast files: the first test origin (with truth) and the steps after the data
    main = results[args.model]
    model = main.forecaster
    o = int(main.origins[0])
    fc = main.forecasts[0, :H, 0]
    fc_lo = main.intervals[c]["lower"][0, :H, 0]
    fc_hi = main.intervals[c]["upper"][0, :H, 0]
    truth = y[o:o + H]
    L = model._lookback_len()
    if X is not None and X.shape[1]:
        fut_index = _future_index(index, H)
        fut, fut_lo, fut_hi = model.predict_interval(
            y[-L:], coverage=c, n=H, X=X[-L:], X_future=calendar_features(fut_index),
            return_forecast=True)
    else:
        fut_index = None
        fut, fut_lo, fut_hi = model.predict_interval(y[-L:], coverage=c, n=H,
                                                     return_forecast=True)
    fut, fut_lo, fut_hi = (np.asarray(a).reshape(H) for a in (fut, fut_lo, fut_hi))
    steps = np.arange(n)
    t_all = index if index is not None else steps
    t_fut = fut_index if fut_index is not None else np.arange(n, n + H)
    out.mkdir(parents=True, exist_ok=True)
    rows = pd.DataFrame({
        "time": list(t_all[o:o + H]) + list(t_fut),
        "kind": ["test"] * H + ["future"] * H,
        "truth": list(truth) + [np.nan] * H,
        "forecast": list(fc) + list(fut),
        "lower": list(fc_lo) + list(fut_lo),
        "upper": list(fc_hi) + list(fut_hi),
    })
    csv_path = out / "forecast.csv"
    rows.to_csv(csv_path, index=False)
    png_path = out / "forecast.png"
    span = 3 * max(season, H)
    lo, hi = max(0, o - span), min(n, o + H + max(season, H))
    _plot(png_path, (t_all[lo:o + 1], y[lo:o + 1], t_all[o:hi], y[o:hi], t_all[o:o + H], fc,
                     fc_lo, fc_hi),
          (t_all[max(0, n - span):], y[max(0, n - span):], t_fut, fut, fut_lo, fut_hi),
          f"{args.column} ({args.model}, horizon {H})", c)
    echo(f"wrote {csv_path} and {png_path}")
    return 0
