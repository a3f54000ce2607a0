"""TT-LSTM forecasting: step speed against the full-state computation and nn.LSTM; accuracy.

Speed (one process, contenders alternating after a warm-up, threads pinned):
  training step (forward over a sequence + backward) of ``tensornet.nn.TTLSTM``
  for order 1-4 at hidden 64, lags 3, rank 8, against ``torch.nn.LSTM`` of the
  same hidden size, and against the same TT-LSTM computed by forming the full
  state tensor (the published implementation's approach) as far as memory
  allows. FLOPs are counted analytically (forward; a training step ~ 3x).

Accuracy (rolling origin on the held-out last 20 %, original scale, several
seeds): TT-LSTM seq2seq vs LSTM seq2seq (hidden size chosen so that it has at
least as many parameters), DLinear-style linear, seasonal naive and
statsmodels ETS, on CO2 (climate), electricity demand, call arrivals
(traffic-like counts) and Genz dynamics; horizons 1/4, 1/2, 1 and 2 seasons.
On the real series TT-LSTM and LSTM also run with the linear highway skip
(``highway=True``, the forecasters' default; both get the same extra
parameters), the plain rows with ``highway=False``.
The fits run in ``--jobs`` worker processes with one thread each (timings of
fits are reported only as a cost indication).

    python -m benchmarks.bench_forecast [--quick] [--part speed|accuracy|all]
    python -m benchmarks.bench_forecast --add --models ttlstm-hw lstm-hw   # rerun some models
"""

from __future__ import annotations

import math
import statistics
import time
import warnings

import numpy as np

from benchmarks import _harness as H

NAME = "bench_forecast"
SECTION = "forecast"


# ---------------------------------------------------------------------------
# speed
# ---------------------------------------------------------------------------

def _lstm_step_flops(I, Hd, B):
    # same counting as ttlstm_step_flops for an LSTM (gates, biases, elementwise)
    return int(B * (2 * (I + Hd) * 4 * Hd + 2 * 4 * Hd + 10 * Hd))


def speed(args):
    import torch

    from tensornet.nn import TTLSTM
    from tensornet.nn._ttlstm import ttlstm_step_flops

    Hd, lags, rank, I = 64, 3, 8, 1
    B, T = (16, 8) if args.quick else (64, 48)
    B_fs, T_fs = (4, 1) if args.quick else (16, 2)
    mem_budget = args.fs_mem_gb * 2**30
    D = lags * Hd + 1
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, T, I, generator=g)
    x_fs = torch.randn(B_fs, T_fs, I, generator=g)

    def step_fn(model, inp):
        def f():
            for p in model.parameters():
                p.grad = None
            out, _ = model(inp)
            out.pow(2).mean().backward()
        return f

    lstm = torch.nn.LSTM(I, Hd, batch_first=True)
    models = {p: TTLSTM(I, Hd, lags, p, rank) for p in (1, 2, 3, 4)}
    contenders = {"nn.LSTM": step_fn(lstm, x)}
    contenders.update({f"order {p}": step_fn(m, x) for p, m in models.items()})
    times = H.compare(contenders, repeat=args.repeat, warmup=2, device="cpu")
    lstm_params = sum(p.numel() for p in lstm.parameters())
    lstm_flops = 3 * T * _lstm_step_flops(I, Hd, B)
    lstm_med = statistics.median(times["nn.LSTM"])
    rows = []
    for p, m in models.items():
        t = times[f"order {p}"]
        med = statistics.median(t)
        fl = 3 * T * ttlstm_step_flops(I, Hd, lags, p, rank, B)
        rows.append({"order": p, "params": sum(q.numel() for q in m.parameters()),
                     "times": t, "median": med, "train_flops": fl,
                     "gflops_per_s": fl / med / 1e9, "vs_lstm_time": med / lstm_med,
                     "flop_rate_vs_lstm": (fl / med) / (lstm_flops / lstm_med)})
    res = {"config": {"hidden": Hd, "lags": lags, "rank": rank, "input": I, "batch": B,
                      "seq_len": T},
           "lstm": {"params": lstm_params, "times": times["nn.LSTM"], "median": lstm_med,
                    "train_flops": lstm_flops, "gflops_per_s": lstm_flops / lstm_med / 1e9},
           "orders": rows}

    # full state tensor vs core by core at a batch / length that fits in memory
    fs_rows = []
    for p in (1, 2, 3, 4):
        need = 4 * B_fs * T_fs * 3 * sum(D ** k for k in range(1, p + 1))  # saved + grads
        fl_fs = 3 * T_fs * ttlstm_step_flops(I, Hd, lags, p, rank, B_fs, "full_state")
        fl_c = 3 * T_fs * ttlstm_step_flops(I, Hd, lags, p, rank, B_fs)
        row = {"order": p, "batch": B_fs, "seq_len": T_fs, "bytes_needed": need,
               "train_flops_full_state": fl_fs, "train_flops_cores": fl_c}
        if need > mem_budget:
            row["skipped"] = (f"needs ~{need / 2**30:.0f} GiB for the state tensors "
                              f"(budget {args.fs_mem_gb} GiB)")
            fs_rows.append(row)
            continue
        a = TTLSTM(I, Hd, lags, p, rank)
        b = TTLSTM(I, Hd, lags, p, rank, contraction="full_state")
        b.load_state_dict(a.state_dict())
        with torch.no_grad():
            diff = float((a(x_fs)[0] - b(x_fs)[0]).abs().max())
        rep = args.repeat if p < 3 else max(5, min(args.repeat, 5))
        tt = H.compare({"cores": step_fn(a, x_fs), "full_state": step_fn(b, x_fs)},
                       repeat=rep, warmup=1)
        row.update({"times_cores": tt["cores"], "times_full_state": tt["full_state"],
                    "ratio": statistics.median(tt["full_state"]) / statistics.median(tt["cores"]),
                    "max_abs_diff": diff})
        fs_rows.append(row)
        del a, b
    res["full_state"] = fs_rows
    return res


# ---------------------------------------------------------------------------
# accuracy
# ---------------------------------------------------------------------------

def _series(name):
    from tensornet.datasets import load_call_arrivals, load_co2, load_electricity_demand
    from tensornet.forecast import calendar_features

    if name == "co2":
        y = load_co2()                        # 59 missing weeks filled linearly (documented)
        return dict(y=y.to_numpy(), X=calendar_features(y.index, ["year"]), season=52,
                    lookback=104, kind="climate (weekly CO2, ppm)")
    if name == "electricity":
        df = load_electricity_demand("1h")
        X = np.column_stack([calendar_features(df.index, ["day", "week"]), df["workday"]])
        return dict(y=df["demand"].to_numpy(), X=X, season=24, lookback=96,
                    kind="electricity (hourly demand, GW)")
    if name == "calls":
        y = load_call_arrivals("1h")
        return dict(y=y.to_numpy(), X=calendar_features(y.index, ["day", "week"]), season=14,
                    lookback=70, kind="traffic-like counts (hourly calls)")
    raise ValueError(name)


REAL = ("co2", "electricity", "calls")


def _horizons(season):
    return sorted({max(1, math.ceil(season / 4)), max(1, math.ceil(season / 2)), season,
                   2 * season})


def _tt_kwargs(quick):
    return dict(hidden_size=8 if quick else 16, lags=3, order=3, rank=2 if quick else 4)


def _train_kwargs(quick, seed):
    if quick:
        return dict(epochs=2, patience=2, max_windows=128, random_state=seed)
    return dict(epochs=40, patience=6, max_windows=2000, random_state=seed)


def _lstm_hidden_at_least(n_params, n_in, n_out, n_cov):
    from tensornet.forecast import LSTMForecaster

    h = 4
    while True:
        f = LSTMForecaster(2, 2, hidden_size=h)
        if f.count_parameters(n_out, n_cov) >= n_params:
            return h
        h += 2


def _make(model, series, L, Hmax, quick, seed, k=1, m=0):
    from tensornet.forecast import (
        LinearForecaster,
        LSTMForecaster,
        SeasonalNaive,
        TTLSTMForecaster,
    )

    tk = _train_kwargs(quick, seed)
    hw = model.endswith("-hw")
    if model in ("ttlstm", "ttlstm-hw"):
        return TTLSTMForecaster(L, Hmax, **_tt_kwargs(quick), highway=hw, **tk)
    if model in ("lstm", "lstm-hw"):
        n_tt = TTLSTMForecaster(L, Hmax, **_tt_kwargs(quick)).count_parameters(k, m)
        # the highway adds the same L * H + H parameters to both models
        return LSTMForecaster(L, Hmax, hidden_size=_lstm_hidden_at_least(n_tt, k, k, m),
                              highway=hw, **tk)
    if model == "linear":
        return LinearForecaster(L, Hmax, **tk)
    if model == "seasonal_naive":
        return SeasonalNaive(series, Hmax)
    raise ValueError(model)


def _ets_eval(y, season, n_test, horizons, stride):
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    n = len(y)
    tr = n - n_test
    kw = dict(trend="add", damped_trend=True, seasonal="add", seasonal_periods=season)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = ExponentialSmoothing(y[:tr], **kw).fit()
        p = fit.params
        Hm = max(horizons)
        errs = []
        for o in range(tr, n - Hm + 1, stride):
            m = ExponentialSmoothing(y[:o], initialization_method="known",
                                     initial_level=p["initial_level"],
                                     initial_trend=p["initial_trend"],
                                     initial_seasonal=p["initial_seasons"], **kw)
            r = m.fit(smoothing_level=p["smoothing_level"], smoothing_trend=p["smoothing_trend"],
                      smoothing_seasonal=p["smoothing_seasonal"],
                      damping_trend=p["damping_trend"], optimized=False)
            errs.append(r.forecast(Hm) - y[o:o + Hm])
    e = np.array(errs)
    return {"rmse": {h: float(np.sqrt(np.mean(e[:, :h] ** 2))) for h in horizons},
            "mae": {h: float(np.mean(np.abs(e[:, :h]))) for h in horizons},
            "params": 5 + 2 + season}


def _job(job):
    """One (series, model, seed) evaluation in a worker process (one thread)."""
    import torch

    torch.set_num_threads(1)
    from tensornet.forecast import evaluate

    name, model, seed, quick = job["series"], job["model"], job["seed"], job["quick"]
    t0 = time.perf_counter()
    if name == "genz":
        out = _genz_job(model, seed, quick)
    else:
        s = _series(name)
        y, X, season, L = s["y"], s["X"], s["season"], s["lookback"]
        if quick:
            n = 30 * season + L
            y, X = y[-n:], X[-n:]
        hs = _horizons(season)
        stride = max(1, season // 4)
        n_test = int(round(0.2 * len(y)))
        if model == "ets":
            out = _ets_eval(y, season, n_test, hs, stride)
        else:
            f = _make(model, season, L, max(hs), quick, seed, 1, X.shape[1])
            res = evaluate(f, y, X=None if model == "seasonal_naive" else X, horizons=hs,
                           split=n_test, stride=stride, coverage=[0.8, 0.9])
            fm = res.forecaster
            out = {"rmse": res.rmse, "mae": res.mae,
                   "params": fm.n_parameters_ if hasattr(fm, "net_") else 0,
                   "epochs": getattr(fm, "n_epochs_", None),
                   "hidden_size": getattr(fm, "hidden_size", None),
                   # split-conformal intervals (reported by benchmarks/bench_intervals.py)
                   "n_calibration": fm.n_calibration_,
                   "scale": float(np.std(y[:len(y) - n_test])),
                   "intervals": {c: {k: (v.tolist() if hasattr(v, "tolist") else v)
                                     for k, v in d.items() if k not in ("lower", "upper")}
                                 for c, d in res.intervals.items()}}
    out.update(series=name, model=model, seed=seed, seconds=time.perf_counter() - t0)
    return out


GENZ_HORIZONS = [2, 4, 8, 16]


def _genz_job(model, seed, quick):
    from tensornet.datasets import make_genz
    from tensornet.forecast import LinearForecaster

    n_train, n_test = (200, 100) if quick else (2000, 500)
    L, Hm = 2, max(GENZ_HORIZONS)
    train = make_genz(L + Hm, n_series=n_train, random_state=1000 + seed)
    test = make_genz(L + Hm, n_series=n_test, random_state=2000 + seed)
    if model == "naive":
        pred = np.repeat(test[:, L - 1:L], Hm, axis=1)
        params = 0
    else:
        if model == "linear":
            f = LinearForecaster(L, Hm, **_train_kwargs(quick, seed))
        else:
            f = _make(model, 1, L, Hm, quick, seed)
        f.fit([s[:, None] for s in train])
        pred = f.predict(test[:, :L, None])[..., 0]
        params = f.n_parameters_
    e = pred - test[:, L:]
    return {"rmse": {h: float(np.sqrt(np.mean(e[:, :h] ** 2))) for h in GENZ_HORIZONS},
            "mae": {h: float(np.mean(np.abs(e[:, :h]))) for h in GENZ_HORIZONS},
            "params": params}


def accuracy(args):
    seeds = list(range(1 if args.quick else args.seeds))
    series = ["calls"] if args.quick else list(args.series)
    jobs = []
    for name in series:
        models = (["ttlstm", "lstm", "linear", "naive"] if name == "genz" else
                  ["ttlstm", "lstm", "linear", "seasonal_naive", "ets", "ttlstm-hw", "lstm-hw"])
        if args.models:
            models = [m for m in models if m in args.models]
        for model in models:
            for seed in (seeds if model in SEEDED else [0]):
                if args.quick and model == "ets":
                    continue
                jobs.append({"series": name, "model": model, "seed": seed, "quick": args.quick})
    # longest first so the pool stays busy
    cost = {"ttlstm": 3, "ttlstm-hw": 3, "lstm": 2, "lstm-hw": 2, "ets": 1, "linear": 0,
            "seasonal_naive": 0, "naive": 0}
    jobs.sort(key=lambda j: -cost[j["model"]])
    t0 = time.perf_counter()
    results = []
    measured = H.machine(args.device, args.threads)["date"]
    for r in H.run_jobs(_job, jobs, args.jobs):
        r["measured"] = measured
        results.append(r)
        print(f"  {r['series']:<12} {r['model']:<15} seed {r['seed']}  "
              f"{r['seconds']:6.1f} s", flush=True)
    meta = {}
    for name in series:
        if name == "genz":
            meta[name] = {"kind": "Genz dynamics (w=0.5, c=1), 2,000 sequences, context 2",
                          "horizons": GENZ_HORIZONS, "season": None, "lookback": 2}
        else:
            s = _series(name)
            meta[name] = {"kind": s["kind"], "horizons": _horizons(s["season"]),
                          "season": s["season"], "lookback": s["lookback"], "n": len(s["y"])}
    return {"seeds": seeds, "series": meta, "runs": results,
            "wall_seconds": time.perf_counter() - t0,
            "settings": {"tt": _tt_kwargs(args.quick), "train": _train_kwargs(args.quick, 0),
                         "test_share": 0.2, "stride": "season // 4",
                         "covariates": "calendar phases (+ workday for electricity), "
                                       "known in advance, for the neural and linear models"}}


# ---------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------

MODEL_LABEL = {"ttlstm": "TT-LSTM", "lstm": "LSTM s2s", "linear": "linear (DLinear)",
               "seasonal_naive": "seasonal naive", "naive": "naive (last value)", "ets": "ETS",
               "ttlstm-hw": "TT-LSTM + highway", "lstm-hw": "LSTM s2s + highway"}
SEEDED = ("ttlstm", "lstm", "linear", "ttlstm-hw", "lstm-hw")  # trained: run with every seed


def _agg(runs, name, model, h):
    v = [r["rmse"][h] if h in r["rmse"] else r["rmse"][str(h)]
         for r in runs if r["series"] == name and r["model"] == model]
    return (statistics.mean(v), statistics.stdev(v) if len(v) > 1 else 0.0, len(v)) if v else None


def _fmt_ratio(r):
    return f"{r:.2f}×" if r < 100 else f"{r:,.0f}×"


def report(speed_res, acc_res, args, plot_path):
    lines = []
    if speed_res:
        c = speed_res["config"]
        lines.append(f"### TT-LSTM step speed (hidden {c['hidden']}, lags {c['lags']}, rank "
                     f"{c['rank']}, batch {c['batch']}, sequence {c['seq_len']}, "
                     f"{args.threads} thread{'s' if args.threads != 1 else ''})")
        lines.append("")
        lines.append("Training step = forward over the sequence + backward. Median "
                     "(min–max) of alternating runs. FLOPs counted analytically (a step ≈ 3× "
                     "the forward).")
        lines.append("")
        lstm = speed_res["lstm"]
        o2 = next(r for r in speed_res["orders"] if r["order"] == 2)["median"]
        rows = [["nn.LSTM", f"{lstm['params']:,}", H.fmt_range(lstm["times"]), "–",
                 f"{lstm['train_flops'] / 1e6:,.1f}", f"{lstm['gflops_per_s']:.1f}", "1.00",
                 "1.00×"]]
        for r in speed_res["orders"]:
            rows.append([f"TTLSTM order {r['order']}", f"{r['params']:,}", H.fmt_range(r["times"]),
                         f"{r['median'] / o2:.2f}", f"{r['train_flops'] / 1e6:,.1f}",
                         f"{r['gflops_per_s']:.1f}", f"{r['flop_rate_vs_lstm']:.2f}",
                         _fmt_ratio(r["vs_lstm_time"])])
        lines.append(H.markdown_table(["model", "params", "step time", "time / order 2",
                                       "MFLOP / step", "GFLOP/s", "FLOP rate / nn.LSTM",
                                       "time / nn.LSTM"], rows))
        lines.append("")
        fs = speed_res["full_state"]
        lines.append(f"Full state tensor (published approach) vs core by core, batch "
                     f"{fs[0]['batch']}, sequence {fs[0]['seq_len']} (what fits in memory):")
        lines.append("")
        rows = []
        for r in fs:
            if "skipped" in r:
                rows.append([r["order"], "–", "–", "skipped: " + r["skipped"],
                             f"{r['train_flops_full_state'] / 1e9:,.1f}"])
            else:
                rows.append([r["order"], H.fmt_range(r["times_cores"]),
                             H.fmt_range(r["times_full_state"]), _fmt_ratio(r["ratio"]),
                             f"{r['train_flops_full_state'] / 1e9:,.2f}"])
        lines.append(H.markdown_table(["order", "core by core", "full state", "full / cores",
                                       "full-state GFLOP / step"], rows))
        lines.append("")
    if acc_res:
        lines.append(f"### Accuracy: RMSE per horizon (mean ± sd over seeds "
                     f"{acc_res['seeds']}; original scale; h = steps 1..h)")
        lines.append("")
        lines.append("Rolling origin over the last 20 % of each series (origins every "
                     "season/4 steps); scalers and early stopping use the training part only. "
                     f"TT-LSTM: {acc_res['settings']['tt']}; the LSTM's hidden size is the "
                     "smallest giving at least as many parameters. Covariates: "
                     f"{acc_res['settings']['covariates']}.")
        lines.append("")
        runs = acc_res["runs"]
        dates = {}
        for r in runs:
            dates.setdefault(r.get("measured", "?")[:10], set()).add(MODEL_LABEL[r["model"]])
        if len(dates) > 1:
            lines.append("Runs measured on different days (`--add` reran only some models and "
                         "kept the earlier runs of the others): " + "; ".join(f"{d}: {', '.join(sorted(ms))}"
                                                    for d, ms in sorted(dates.items())) + ".")
            lines.append("")
        for name, meta in acc_res["series"].items():
            models = [m for m in MODEL_LABEL if any(r["series"] == name and r["model"] == m
                                                   for r in runs)]
            params = {}
            for m in models:
                ps = [r["params"] for r in runs if r["series"] == name and r["model"] == m]
                params[m] = ps[0] if ps else 0
            season = f", season {meta['season']}" if meta.get("season") else ""
            lines.append(f"**{name}** — {meta['kind']}{season}, lookback {meta['lookback']}")
            lines.append("")
            header = ["h"] + [f"{MODEL_LABEL[m]} ({params[m]:,} p)" if params[m] else
                              MODEL_LABEL[m] for m in models]
            rows = []
            for h in meta["horizons"]:
                row = [h]
                best = min(_agg(runs, name, m, h)[0] for m in models)
                for m in models:
                    mean, sd, n = _agg(runs, name, m, h)
                    cell = f"{mean:.4g}" + (f" ± {sd:.2g}" if n > 1 else "")
                    row.append(f"**{cell}**" if mean == best else cell)
                rows.append(row)
            lines.append(H.markdown_table(header, rows))
            lines.append("")
        lines.append(f"![error versus horizon]({plot_path})")
        lines.append("")
    targets = _targets(speed_res, acc_res)
    if targets:
        lines.append("### Targets")
        lines.append("")
        for t in targets:
            lines.append(f"- {t}")
        lines.append("")
    return "\n".join(lines)


def _targets(speed_res, acc_res):
    out = []
    if speed_res:
        rows = {r["order"]: r for r in speed_res["orders"]}
        r42 = rows[4]["median"] / rows[2]["median"]
        out.append(f"order 4 step time ≤ 2× order 2: {r42:.2f}× — "
                   f"{'met' if r42 <= 2 else 'missed'}")
        fs3 = next((r for r in speed_res["full_state"] if r["order"] == 3), None)
        if fs3 and "ratio" in fs3:
            out.append(f"≥ 100× faster than the full state tensor at order 3: "
                       f"{_fmt_ratio(fs3['ratio'])} — {'met' if fs3['ratio'] >= 100 else 'missed'}")
        rates = [rows[p]["flop_rate_vs_lstm"] for p in rows]
        out.append("FLOP rate ≥ 50 % of nn.LSTM's: " + ", ".join(
            f"order {p} {rows[p]['flop_rate_vs_lstm']:.0%}" for p in rows) +
            f" — {'met' if min(rates) >= 0.5 else 'missed'} (step time vs nn.LSTM: " +
            ", ".join(f"order {p} {_fmt_ratio(rows[p]['vs_lstm_time'])}" for p in rows) + ")")
    if acc_res:
        runs = acc_res["runs"]
        for tt_m, ls_m in (("ttlstm", "lstm"), ("ttlstm-hw", "lstm-hw")):
            beats_lstm, vs_linear = [], []
            for name, meta in acc_res["series"].items():
                hmax = meta["horizons"][-1]
                tt = _agg(runs, name, tt_m, hmax)
                ls = _agg(runs, name, ls_m, hmax)
                li = _agg(runs, name, "linear", hmax)
                if tt and ls:
                    beats_lstm.append((name, 100 * (1 - tt[0] / ls[0])))
                if tt and li and name != "genz":
                    vs_linear.append((name, tt[0] <= li[0], tt[0] / li[0] - 1))
            if beats_lstm:
                out.append(f"{MODEL_LABEL[tt_m]} vs {MODEL_LABEL[ls_m]} at the longest horizon "
                           "(RMSE reduction, TT has no more parameters): " +
                           ", ".join(f"{n} {g:+.2f}%" for n, g in beats_lstm) +
                           f" — target ≥ 5 %: met on {sum(g >= 5 for _, g in beats_lstm)} of "
                           f"{len(beats_lstm)}")
            if vs_linear:
                ok = sum(v[1] for v in vs_linear)
                out.append(f"{MODEL_LABEL[tt_m]} no worse than linear at the longest horizon: "
                           + ", ".join(f"{n} {d:+.2%}" for n, _, d in vs_linear) +
                           f" — {'met' if ok >= 2 else 'missed'} ({ok} of {len(vs_linear)} "
                           "real series; target 2)")
    return out


def plot(acc_res, path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = list(acc_res["series"])
    fig = Figure(figsize=(4 * len(names), 3.4), dpi=100)
    FigureCanvasAgg(fig)
    runs = acc_res["runs"]
    for i, name in enumerate(names):
        ax = fig.add_subplot(1, len(names), i + 1)
        hs = acc_res["series"][name]["horizons"]
        for j, m in enumerate(MODEL_LABEL):
            vals = [_agg(runs, name, m, h) for h in hs]
            if any(v is None for v in vals):
                continue
            mean = np.array([v[0] for v in vals])
            sd = np.array([v[1] for v in vals])
            ax.errorbar(hs, mean, yerr=sd, marker="o", ms=3, lw=1.4 if m.startswith("ttlstm") else 1,
                        color=f"C{j}", label=MODEL_LABEL[m], capsize=2)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(hs)
        ax.set_xticklabels([str(h) for h in hs])
        ax.set_xlabel("horizon (steps)")
        ax.set_title(name, fontsize=10)
        if i == 0:
            ax.set_ylabel("RMSE (original scale, log)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)


def main(argv=None):
    def extra(p):
        p.add_argument("--part", choices=["speed", "accuracy", "all"], default="all")
        p.add_argument("--jobs", type=int, default=2, help="worker processes for the accuracy "
                                                           "fits (one thread each)")
        p.add_argument("--seeds", type=int, default=3)
        p.add_argument("--series", nargs="+", default=list(REAL) + ["genz"],
                       choices=list(REAL) + ["genz"])
        p.add_argument("--fs-mem-gb", type=float, default=3.0,
                       help="memory budget for the full-state-tensor runs")
        p.add_argument("--report-only", action="store_true",
                       help="rebuild the tables and the plot from the saved results JSON")
        p.add_argument("--models", nargs="+", choices=list(MODEL_LABEL),
                       help="accuracy: run only these models")
        p.add_argument("--add", action="store_true",
                       help="accuracy: keep the saved results JSON (speed and every other "
                            "run) and replace only the runs of --models on --series; each run "
                            "records when it was measured")

    args = H.parse_args(__doc__.splitlines()[0], argv, extra)
    t0 = time.perf_counter()
    speed_res = acc_res = None
    suffix = "-quick" if args.quick else ""
    if args.report_only:
        import json

        saved = json.loads((H.RESULTS / f"{NAME}{suffix}.json").read_text())
        speed_res, acc_res = saved["speed"], saved["accuracy"]
        args.threads = saved["machine"]["threads"]
        args.part = "none"
    if args.part in ("speed", "all"):
        print("speed ...", flush=True)
        speed_res = speed(args)
    if args.add:
        import json

        saved = json.loads((H.RESULTS / f"{NAME}{suffix}.json").read_text())
        if not args.models:
            raise SystemExit("--add needs --models")
        speed_res, old = saved["speed"], saved["accuracy"]
        print("accuracy (adding runs) ...", flush=True)
        new = accuracy(args)
        replaced = {(r["series"], r["model"]) for r in new["runs"]}
        old_date = saved["machine"]["date"]
        kept = [dict(r, measured=r.get("measured", old_date)) for r in old["runs"]
                if (r["series"], r["model"]) not in replaced]
        acc_res = dict(old, runs=kept + new["runs"],
                       wall_seconds=old["wall_seconds"] + new["wall_seconds"])
        args.part = "none"
    if args.part in ("accuracy", "all"):
        print("accuracy ...", flush=True)
        acc_res = accuracy(args)
    plot_name = f"forecast_error_vs_horizon{suffix}.png"
    if acc_res:
        H.RESULTS.mkdir(parents=True, exist_ok=True)
        plot(acc_res, H.RESULTS / plot_name)
    md = report(speed_res, acc_res, args, f"results/{plot_name}")
    if args.report_only:
        payload = saved
        payload["markdown"] = md
    elif args.add:
        payload = saved
        payload.update(accuracy=acc_res, markdown=md,
                       updated=H.machine(args.device, args.threads)["date"])
    else:
        payload = {"machine": H.machine(args.device, args.threads), "quick": args.quick,
                   "speed": speed_res, "accuracy": acc_res,
                   "seconds": time.perf_counter() - t0, "markdown": md}
    path = H.write_results(NAME + suffix, payload, args.device)
    print(md)
    print(f"results: {path} ({time.perf_counter() - t0:.0f} s)")
    if not args.no_readme and not args.quick:
        H.update_readme(SECTION, "## Forecasting (TT-LSTM)\n\n" + md +
                        f"\n_{payload['machine']['cpu']}, torch threads {args.threads}, "
                        f"{payload['machine']['date']}"
                        + (f"; runs added {payload['updated']}" if payload.get("updated") else "")
                        + "; `python -m benchmarks.bench_forecast`_")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
