"""Calibrated forecast intervals: coverage and width of split-conformal and adaptive bands.

Every forecaster of ``tensornet.forecast`` (TT-LSTM, LSTM seq2seq, DLinear-style
linear, seasonal naive) on the real series of the forecasting benchmark
(``bench_forecast``: weekly CO2, hourly electricity demand, hourly call
arrivals), with that benchmark's settings (lookback, horizons up to two
seasons, calendar covariates, training settings, test = last 20 %, origins
every season/4 steps). The intervals are ``predict_interval`` at 80 % and
90 %: split-conformal half-widths per horizon step, calibrated on the
windows of each model's validation split (the last 20 % of its training
part; seasonal naive: the last 20 % of the training part), never on the
test tail; the linear model also with a dedicated calibration tail (the last
20 % of the training part held out from training and early stopping,
``calibration=0.2``). Reported: the empirical coverage on the test tail (all origins
and horizon steps pooled, and per step), the mean width on the original
scale, over seeds. Target: coverage within ±3 points of nominal.

Side by side, from the same fit and calibration residuals: the online
intervals of adaptive conformal inference (``AdaptiveConformal``, default
``gamma``; ``evaluate(..., adaptive=True)``), which before each test origin
have been fed the truths observed by then (step ``j`` of an earlier origin
``o`` once ``o + j`` is in the past), never a later one.

The fits run in ``--jobs`` worker processes with one thread each. With
``--from-forecast`` the tables are built from ``results/bench_forecast.json``
instead (its accuracy runs record the same interval numbers), without fitting.

    python -m benchmarks.bench_intervals [--quick] [--seeds N] [--from-forecast]
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from benchmarks import _harness as H
from benchmarks import bench_forecast as BF

NAME = "bench_intervals"
SECTION = "intervals"
COVERAGES = (0.8, 0.9)
MODELS = ("ttlstm", "lstm", "linear", "linear_tail", "seasonal_naive")
LABELS = {**BF.MODEL_LABEL, "linear_tail": "linear, tail calibration"}
TOLERANCE = 0.03
N_BOOT = 2000


def _block_bootstrap_sd(per_origin, block, seed=0):
    """Sd of the mean of ``per_origin`` under a moving-block bootstrap (blocks of ``block``
    consecutive origins: the errors of nearby origins are correlated)."""
    x = np.asarray(per_origin, dtype=np.float64)
    n = len(x)
    block = max(1, min(block, n))
    starts = np.arange(n - block + 1)
    k = -(-n // block)
    rng = np.random.default_rng(seed)
    means = np.empty(N_BOOT)
    for b in range(N_BOOT):
        idx = (rng.choice(starts, size=k)[:, None] + np.arange(block)).ravel()[:n]
        means[b] = x[idx].mean()
    return float(means.std())


def _job(job):
    """One (series, model, seed) rolling-origin evaluation with intervals (one thread)."""
    import torch

    torch.set_num_threads(1)
    from tensornet.forecast import evaluate

    name, model, seed, quick = job["series"], job["model"], job["seed"], job["quick"]
    t0 = time.perf_counter()
    s = BF._series(name)
    y, X, season, L = s["y"], s["X"], s["season"], s["lookback"]
    if quick:
        n = 30 * season + L
        y, X = y[-n:], X[-n:]
    hs = BF._horizons(season)
    stride = max(1, season // 4)
    n_test = round(0.2 * len(y))
    base = "linear" if model == "linear_tail" else model
    f = BF._make(base, season, L, max(hs), quick, seed, 1, X.shape[1])
    res = evaluate(f, y, X=None if model == "seasonal_naive" else X, horizons=hs, split=n_test,
                   stride=stride, coverage=list(COVERAGES),
                   calibration=0.2 if model == "linear_tail" else None, adaptive=True)
    fm = res.forecaster
    err = res.forecasts - res.truth
    cal = fm.calibration_residuals_
    # moving blocks spanning one horizon of origins
    block = -(-max(hs) // stride)

    def summary(intervals):
        return {c: {"coverage": d["coverage"], "width": d["width"],
                    "coverage_by_lead": d["coverage_by_lead"].tolist(),
                    "width_by_lead": d["width_by_lead"].tolist(),
                    "bootstrap_sd": _block_bootstrap_sd(
                        ((res.truth >= d["lower"]) & (res.truth <= d["upper"]))
                        .mean(axis=(1, 2)), block)}
                for c, d in intervals.items()}

    out = {"series": name, "model": model, "seed": seed,
           "rmse": res.rmse, "n_origins": len(res.origins),
           "n_calibration": fm.n_calibration_, "calibration": fm.calibration_source_,
           "intervals": summary(res.intervals), "adaptive": summary(res.adaptive_intervals),
           # size of the test errors relative to the calibration errors (1 = same level)
           "test_over_calibration_rmse": float(np.sqrt(np.mean(err ** 2) / np.mean(cal ** 2))),
           "scale": float(np.std(y[:len(y) - n_test]))}
    if seed == 0:
        # one forecast band for the plot: the origin in the middle of the test tail
        i = len(res.origins) // 2
        o = int(res.origins[i])
        back = min(o, 3 * max(hs))
        out["band"] = {"origin": o, "history": y[o - back:o].tolist(),
                       "truth": res.truth[i, :, 0].tolist(),
                       "forecast": res.forecasts[i, :, 0].tolist(),
                       **{f"lower_{c}": res.intervals[c]["lower"][i, :, 0].tolist()
                          for c in COVERAGES},
                       **{f"upper_{c}": res.intervals[c]["upper"][i, :, 0].tolist()
                          for c in COVERAGES},
                       **{f"adaptive_lower_{c}": res.adaptive_intervals[c]["lower"][i, :, 0]
                          .tolist() for c in COVERAGES},
                       **{f"adaptive_upper_{c}": res.adaptive_intervals[c]["upper"][i, :, 0]
                          .tolist() for c in COVERAGES}}
    out["seconds"] = time.perf_counter() - t0
    return out


def run(args):
    seeds = list(range(1 if args.quick else args.seeds))
    series = ["calls"] if args.quick else list(args.series)
    jobs = [{"series": s, "model": m, "seed": sd, "quick": args.quick}
            for s in series for m in MODELS
            for sd in (seeds if m != "seasonal_naive" else [0])]
    cost = {"ttlstm": 3, "lstm": 2, "linear": 0, "linear_tail": 0, "seasonal_naive": 0}
    jobs.sort(key=lambda j: -cost[j["model"]])
    t0 = time.perf_counter()
    runs = []

    for r in H.run_jobs(_job, jobs, args.jobs):
        runs.append(r)
        print(f"  {r['series']:<12} {r['model']:<15} seed {r['seed']}  {r['seconds']:6.1f} s",
              flush=True)
    meta = {}
    for name in series:
        s = BF._series(name)
        meta[name] = {"kind": s["kind"], "season": s["season"], "lookback": s["lookback"],
                      "horizon": max(BF._horizons(s["season"]))}
    return {"seeds": seeds, "series": meta, "runs": runs, "source": "bench_intervals",
            "wall_seconds": time.perf_counter() - t0,
            "settings": {"tt": BF._tt_kwargs(args.quick),
                         "train": BF._train_kwargs(args.quick, 0), "test_share": 0.2,
                         "stride": "season // 4", "calibration": "validation split (neural, "
                         "linear); last 20 % of the training part (seasonal naive)"}}


def from_forecast():
    """Interval numbers recorded by bench_forecast's accuracy runs (no fitting)."""
    import json

    saved = json.loads((H.RESULTS / "bench_forecast.json").read_text())
    acc = saved.get("accuracy") or {}
    runs = [r for r in acc.get("runs", []) if r.get("intervals") and r["series"] != "genz"]
    if not runs:
        raise SystemExit("results/bench_forecast.json has no interval numbers; rerun "
                         "python -m benchmarks.bench_forecast (or run this script without "
                         "--from-forecast)")
    meta = {n: {"kind": m["kind"], "season": m["season"], "lookback": m["lookback"],
                "horizon": max(m["horizons"])}
            for n, m in acc["series"].items() if n != "genz"}
    return {"seeds": acc["seeds"], "series": meta, "runs": runs, "source": "bench_forecast",
            "settings": acc["settings"], "machine": saved.get("machine")}


# ---------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------

def _get(d, c):
    return d.get(c, d.get(str(c)))


METHODS = {"intervals": "split", "adaptive": "adaptive"}


def _methods(runs):
    """The interval methods recorded in ``runs`` (saved split-only runs have no adaptive)."""
    return [k for k in METHODS if any(r.get(k) for r in runs)]


def _summary(runs, name, model, c, key, kind="intervals"):
    v = [_get(r[kind], c)[key] for r in runs if r["series"] == name
         and r["model"] == model and r.get(kind)]
    if not v:
        return None
    return statistics.mean(v), (statistics.stdev(v) if len(v) > 1 else 0.0), len(v)


def _boot(rs, c, kind):
    b = [_get(r[kind], c).get("bootstrap_sd") for r in rs if r.get(kind)]
    b = [x for x in b if x is not None]
    return statistics.mean(b) if b else None


def report(res, plot_path):
    runs = res["runs"]
    kinds = _methods(runs)
    intro = (f"Empirical coverage on the test tail (last 20 %, all origins and horizon steps "
             f"pooled) and mean width of the bands; mean ± sd over seeds {res['seeds']} for the "
             "neural and linear models (one run for seasonal naive). **split**: "
             "`predict_interval`, split conformal calibrated on the validation split of each "
             "model's training part (seasonal naive: the last 20 % of the training part); never "
             "the test tail. **adaptive**: `AdaptiveConformal` (adaptive conformal inference "
             "per horizon step, γ = 0.05, observed scores appended to the pool), started from "
             "the same calibration residuals and, before each test origin, fed the truths "
             "observed by then (`evaluate(..., adaptive=True)`; an h-step truth only h steps "
             "after its origin). Same fit, same point forecasts. Width in the series' units and, "
             "in brackets, relative to the standard deviation of the training part. "
             "Horizon = two seasons.")
    lines = [intro, ""]
    head = ["series", "model", "calibration windows", "test / calibration RMSE"]
    for c in COVERAGES:
        for k in kinds:
            head.append(f"{METHODS[k]} coverage at {c:.0%}")
        for k in kinds:
            head.append(f"{METHODS[k]} width at {c:.0%}")
    table = []
    for name, meta in res["series"].items():
        for m in MODELS:
            rs = [r for r in runs if r["series"] == name and r["model"] == m]
            if not rs:
                continue
            ratio = [r["test_over_calibration_rmse"] for r in rs
                     if "test_over_calibration_rmse" in r]
            row = [f"{name} (h={meta['horizon']})", LABELS[m],
                   f"{statistics.mean(r['n_calibration'] for r in rs):,.0f}",
                   f"{statistics.mean(ratio):.2f}" if ratio else "–"]
            scale = rs[0].get("scale")
            for c in COVERAGES:
                for k in kinds:
                    sm = _summary(runs, name, m, c, "coverage", k)
                    if sm is None:
                        row.append("–")
                        continue
                    cm, cs, n = sm
                    boot = _boot(rs, c, k)
                    cell = f"{100 * cm:.1f}" + (f" ± {100 * cs:.1f}" if n > 1 else "")
                    if boot is not None:
                        cell += f" [±{100 * boot:.1f}]"
                    row.append(cell if abs(cm - c) <= TOLERANCE else f"**{cell}**")
                for k in kinds:
                    sm = _summary(runs, name, m, c, "width", k)
                    if sm is None:
                        row.append("–")
                        continue
                    wm, ws, n = sm
                    wcell = f"{wm:.3g}" + (f" ± {ws:.2g}" if n > 1 else "")
                    if scale:
                        wcell += f" ({wm / scale:.2f})"
                    row.append(wcell)
            table.append(row)
    lines.append(H.markdown_table(head, table))
    lines.append("")
    lines.append("Coverage: mean ± sd over seeds, in brackets the sampling uncertainty of one "
                 "run's coverage (sd of a moving-block bootstrap over the test origins, blocks "
                 "of one horizon: nearby origins share their errors). Coverages more than 3 "
                 "points from nominal are in bold. `test / calibration RMSE` is the size of the "
                 "test errors relative to the calibration residuals (1 = the calibration window "
                 "saw errors as large as the test period's). Coverage per horizon step (90 %, "
                 "mean over seeds), first step → last step:")
    lines.append("")
    head = ["series", "model", "method", "step 1", "h/4", "h/2", "3h/4", "h"]
    table = []
    for name, meta in res["series"].items():
        for m in MODELS:
            rs = [r for r in runs if r["series"] == name and r["model"] == m]
            for k in kinds:
                got = [_get(r[k], 0.9)["coverage_by_lead"] for r in rs if r.get(k)]
                if not got:
                    continue
                by = np.mean(got, axis=0)
                Hh = len(by)
                idx = [0, max(0, Hh // 4 - 1), max(0, Hh // 2 - 1), max(0, 3 * Hh // 4 - 1),
                       Hh - 1]
                table.append([name, LABELS[m], METHODS[k]] +
                             [f"{100 * by[i]:.1f}" for i in idx])
    lines.append(H.markdown_table(head, table))
    lines.append("")
    if plot_path:
        lines.append(f"![forecast bands]({plot_path})")
        lines.append("")
    lines.append("### Targets")
    lines.append("")
    for t in targets(res):
        lines.append(f"- {t}")
    lines.append("")
    return "\n".join(lines)


def targets(res):
    out = []
    runs = res["runs"]
    for kind in _methods(runs):
        for c in COVERAGES:
            cells = []
            for name in res["series"]:
                for m in MODELS:
                    sm = _summary(runs, name, m, c, "coverage", kind)
                    if sm:
                        rs = [r for r in runs if r["series"] == name and r["model"] == m]
                        cells.append((name, m, sm[0], _boot(rs, c, kind)))
            met = [x for x in cells if abs(x[2] - c) <= TOLERANCE]
            miss = [x for x in cells if abs(x[2] - c) > TOLERANCE]
            text = (f"{METHODS[kind]}: coverage at {c:.0%} within ±3 points: {len(met)} of "
                    f"{len(cells)} (series, forecaster) pairs")
            if miss:
                text += "; missed: " + ", ".join(f"{n} {LABELS[m]} {100 * v:.1f}"
                                                 for n, m, v, _ in miss)
                noisy = [x for x in miss if x[3] is not None
                         and abs(x[2] - c) <= TOLERANCE + 2 * x[3]]
                if any(x[3] is not None for x in miss):
                    text += (f" ({len(noisy)} of the {len(miss)} misses are within 3 points "
                             "plus two bootstrap sd)")
            else:
                text += " — met everywhere"
            out.append(text)
    return out


def plot(res, path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    runs = [r for r in res["runs"] if "band" in r]
    names = list(res["series"])
    models = [m for m in MODELS if m != "linear_tail" and any(r["model"] == m for r in runs)]
    if not runs:
        return False
    fig = Figure(figsize=(3.6 * len(models), 2.8 * len(names)), dpi=100)
    FigureCanvasAgg(fig)
    for i, name in enumerate(names):
        for j, m in enumerate(models):
            ax = fig.add_subplot(len(names), len(models), i * len(models) + j + 1)
            r = next((r for r in runs if r["series"] == name and r["model"] == m), None)
            if r is None:
                ax.set_visible(False)
                continue
            b = r["band"]
            nh, nf = len(b["history"]), len(b["forecast"])
            th, tf = np.arange(-nh, 0), np.arange(nf)
            ax.plot(th, b["history"], color="0.5", lw=0.9)
            ax.fill_between(tf, b["lower_0.9"],
                            b["upper_0.9"], color="C0", alpha=0.18, lw=0, label="90 %")
            ax.fill_between(tf, b["lower_0.8"], b["upper_0.8"], color="C0", alpha=0.3, lw=0,
                            label="80 %")
            if "adaptive_lower_0.9" in b:
                ax.plot(tf, b["adaptive_lower_0.9"], color="C2", lw=0.9, ls="--",
                        label="adaptive 90 %")
                ax.plot(tf, b["adaptive_upper_0.9"], color="C2", lw=0.9, ls="--")
            ax.plot(tf, b["truth"], color="k", lw=1.0, label="truth")
            ax.plot(tf, b["forecast"], color="C3", lw=1.2, label="forecast")
            cov = _get(r["intervals"], 0.9)["coverage"]
            title = f"{name}: {LABELS[m]} (90 %: split {100 * cov:.0f} %"
            if r.get("adaptive"):
                title += f", adaptive {100 * _get(r['adaptive'], 0.9)['coverage']:.0f} %"
            ax.set_title(title + ")", fontsize=8)
            ax.tick_params(labelsize=7)
            if i == len(names) - 1:
                ax.set_xlabel("steps from the forecast origin", fontsize=7)
            if i == 0 and j == 0:
                ax.legend(fontsize=6, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    return True


def main(argv=None):
    def extra(p):
        p.add_argument("--jobs", type=int, default=2, help="worker processes (one thread each)")
        p.add_argument("--seeds", type=int, default=2)
        p.add_argument("--series", nargs="+", default=list(BF.REAL), choices=list(BF.REAL))
        p.add_argument("--from-forecast", action="store_true",
                       help="build the tables from results/bench_forecast.json (no fitting)")

    args = H.parse_args(__doc__.splitlines()[0], argv, extra)
    t0 = time.perf_counter()
    suffix = "-quick" if args.quick else ""
    if args.from_forecast:
        res = from_forecast()
        machine = res.pop("machine", None) or H.machine(args.device, 1)
    else:
        print("forecast intervals ...", flush=True)
        res = run(args)
        machine = H.machine(args.device, 1)
    H.RESULTS.mkdir(parents=True, exist_ok=True)
    plot_name = f"forecast_interval_bands{suffix}.png"
    has_plot = plot(res, H.RESULTS / plot_name)
    md = report(res, f"results/{plot_name}" if has_plot else None)
    payload = {"machine": machine, "quick": args.quick, "results": res, "markdown": md,
               "seconds": time.perf_counter() - t0}
    path = H.write_results(NAME + suffix, payload, args.device)
    print(md)
    print(f"results: {path} ({time.perf_counter() - t0:.0f} s)")
    if not args.no_readme and not args.quick:
        H.update_readme(SECTION, "## Forecast intervals (split conformal and adaptive)\n\n" + md +
                        f"\n_{machine['cpu']}, {args.jobs} worker processes with one torch "
                        f"thread each, {machine['date']}; `python -m benchmarks.bench_intervals`_")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
