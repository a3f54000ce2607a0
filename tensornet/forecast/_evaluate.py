"""Rolling-origin evaluation on a held-out tail."""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .._validation import check_int
from ._base import BaseForecaster, clone
from ._data import as_series
from ._intervals import AdaptiveConformal, adaptive_intervals, check_coverage

__all__ = ["evaluate", "EvaluationResult", "rmse", "mae"]


def rmse(y_true, y_pred) -> float:
    """Root mean squared error."""
    d = np.asarray(y_pred, dtype=np.float64) - np.asarray(y_true, dtype=np.float64)
    return float(np.sqrt(np.mean(d * d)))


def mae(y_true, y_pred) -> float:
    """Mean absolute error."""
    d = np.asarray(y_pred, dtype=np.float64) - np.asarray(y_true, dtype=np.float64)
    return float(np.mean(np.abs(d)))


@dataclass
class EvaluationResult:
    """Errors of a rolling-origin evaluation, on the original scale.

    Attributes
    ----------
    horizons : list of int
        The requested horizons ``h``.
    rmse, mae : dict int -> float
        Error of the forecasts of steps 1..h after every origin (all channels
        pooled), for each requested ``h``.
    rmse_by_lead, mae_by_lead : ndarray of shape (max_h,)
        Error at lead 1, 2, ... separately.
    origins : ndarray of int
        Index (in ``y``) of the first forecast step of every origin.
    forecasts, truth : ndarray of shape (n_origins, max_h, k)
    n_train : int
        Time steps the forecaster was fitted on (``y[:n_train]``).
    forecaster : the fitted forecaster
    intervals : dict float -> dict
        With ``coverage=...``: for each requested coverage, the empirical
        ``"coverage"`` (share of true values inside the conformal interval,
        all origins, steps and channels pooled), the mean ``"width"`` (original
        scale), ``"coverage_by_lead"`` and ``"width_by_lead"`` (ndarray of
        shape (max_h,)), and the bounds ``"lower"`` / ``"upper"`` (shaped like
        ``forecasts``).
    adaptive_intervals : dict float -> dict
        With ``adaptive=...`` as well: the same entries for the intervals of
        adaptive conformal inference (:class:`AdaptiveConformal`) started
        from the same calibration residuals and fed, before each origin, the
        truths observed by then.
    """

    horizons: list
    rmse: dict
    mae: dict
    rmse_by_lead: np.ndarray = field(repr=False)
    mae_by_lead: np.ndarray = field(repr=False)
    origins: np.ndarray = field(repr=False)
    forecasts: np.ndarray = field(repr=False)
    truth: np.ndarray = field(repr=False)
    n_train: int = 0
    forecaster: Optional[BaseForecaster] = field(default=None, repr=False)
    intervals: dict = field(default_factory=dict, repr=False)
    adaptive_intervals: dict = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        """Plain numbers (JSON-ready)."""
        out = {"horizons": list(self.horizons),
               "rmse": {int(h): float(v) for h, v in self.rmse.items()},
               "mae": {int(h): float(v) for h, v in self.mae.items()},
               "rmse_by_lead": [float(v) for v in self.rmse_by_lead],
               "mae_by_lead": [float(v) for v in self.mae_by_lead],
               "n_origins": int(len(self.origins)), "n_train": int(self.n_train)}
        if self.intervals:
            out["intervals"] = {
                float(c): {"coverage": float(d["coverage"]), "width": float(d["width"]),
                           "coverage_by_lead": [float(v) for v in d["coverage_by_lead"]],
                           "width_by_lead": [float(v) for v in d["width_by_lead"]]}
                for c, d in self.intervals.items()}
        if self.adaptive_intervals:
            out["adaptive_intervals"] = {
                float(c): {"coverage": float(d["coverage"]), "width": float(d["width"]),
                           "coverage_by_lead": [float(v) for v in d["coverage_by_lead"]],
                           "width_by_lead": [float(v) for v in d["width_by_lead"]]}
                for c, d in self.adaptive_intervals.items()}
        return out


def evaluate(forecaster, y, X=None, horizons=None, split=0.2, stride: int = 1,
             validation=0.2, coverage=None, calibration=None,
             adaptive=None) -> EvaluationResult:
    """Rolling-origin evaluation: fit on the head of ``y``, forecast along its tail.

    A clone of ``forecaster`` is fitted on ``y[:n_train]`` only (its scalers
    and early-stopping split come from that part); then, from every origin
    ``t`` in the held-out tail (every ``stride`` steps, as long as ``t + max_h
    <= len(y)``), it forecasts ``max(horizons)`` steps from ``y[t - lookback:t]``.

    Parameters
    ----------
    forecaster : a tensornet.forecast forecaster (not modified)
    y : array-like of shape (n,) or (n, k), or pandas Series / DataFrame
    X : array-like of shape (n, m), optional
        Known covariates aligned with ``y``.
    horizons : int or list of int, optional
        Horizons to report (default: the forecaster's ``horizon``).
    split : float or int, default 0.2
        Held-out tail: a fraction of ``len(y)`` or a number of time steps.
    stride : int, default 1
        Steps between consecutive origins.
    validation : float, int or None, default 0.2
        Passed to ``fit`` (early stopping inside the training part).
    coverage : float or list of float in (0, 1), optional
        Also compute the split-conformal intervals of every forecast at these
        coverages and report their empirical coverage and mean width on the
        held-out tail (``result.intervals``). The calibration windows lie in
        the training part (see ``calibration``), never in the tail.
    calibration : 'validation', float, int or None, optional
        Passed to ``fit`` when given (default: the forecaster's own default,
        ``'validation'`` for the neural models, the last 20 % of the training
        part for seasonal naive).
    adaptive : bool or dict, optional
        With ``coverage``: also measure online intervals of adaptive conformal
        inference (``result.adaptive_intervals``). ``True`` uses the defaults
        of :class:`AdaptiveConformal`; a dict passes ``gamma`` and / or
        ``window``. They start from the same calibration residuals; before
        each origin ``t`` they are fed every truth ``y[s]`` with ``s < t`` of
        the earlier origins' forecasts (step ``j`` of origin ``o`` once ``o +
        j < t``), never a truth at or after ``t``. Split conformal
        (``result.intervals``) is unchanged.

    Returns
    -------
    EvaluationResult

    Examples
    --------
    >>> import numpy as np
    >>> from tensornet.forecast import SeasonalNaive, evaluate
    >>> y = np.sin(np.arange(200) * 2 * np.pi / 20)
    >>> res = evaluate(SeasonalNaive(season=20, horizon=10), y, horizons=[5, 10])
    >>> res.rmse[10] < 1e-12, len(res.origins)
    (True, 31)
    >>> noisy = y + np.random.default_rng(0).normal(0, 0.1, 200)
    >>> res = evaluate(SeasonalNaive(season=20, horizon=10), noisy, coverage=0.9)
    >>> sorted(res.intervals[0.9])[:2]
    ['coverage', 'coverage_by_lead']
    """
    if not isinstance(forecaster, BaseForecaster):
        raise TypeError("forecaster must be a tensornet.forecast forecaster (TTLSTMForecaster, "
                        f"LSTMForecaster, LinearForecaster, SeasonalNaive); got "
                        f"{type(forecaster).__name__}")
    impute = getattr(forecaster, "impute", None)
    yv, was_1d, _ = as_series(y, "y", impute=impute)
    Xv = None if X is None else as_series(X, "X", impute=impute)[0]
    if Xv is not None and len(Xv) != len(yv):
        raise ValueError(f"X must have one row per time step of y: y has {len(yv)}, X has "
                         f"{len(Xv)}")
    N = len(yv)
    if horizons is None:
        horizons = [forecaster.horizon]
    elif isinstance(horizons, numbers.Integral) and not isinstance(horizons, bool):
        horizons = [int(horizons)]
    horizons = sorted({check_int(h, "horizons", min_value=1) for h in horizons})
    max_h = horizons[-1]
    if isinstance(split, bool) or not isinstance(split, numbers.Real):
        raise TypeError(f"split must be a fraction in (0, 1) or a number of time steps; got "
                        f"{split!r}")
    if isinstance(split, numbers.Integral):
        n_test = check_int(split, "split", min_value=1, max_value=N - 1)
    else:
        if not 0 < split < 1:
            raise ValueError(f"split must be a fraction in (0, 1) or a number of time steps; "
                             f"got {split!r}")
        n_test = int(round(split * N))
    stride = check_int(stride, "stride", min_value=1)
    if coverage is None:
        coverages = []
    elif isinstance(coverage, (list, tuple)):
        coverages = [check_coverage(c) for c in coverage]
    else:
        coverages = [check_coverage(coverage)]
    if adaptive is None or adaptive is False:
        aci_kw = None
    elif adaptive is True:
        aci_kw = {}
    elif isinstance(adaptive, dict):
        unknown = set(adaptive) - {"gamma", "window"}
        if unknown:
            raise ValueError(f"adaptive must be True or a dict with keys 'gamma' and / or "
                             f"'window'; got the keys {sorted(adaptive)}")
        aci_kw = dict(adaptive)
        # check the settings before fitting
        AdaptiveConformal(np.zeros((1, 1)), coverage=0.5, **aci_kw)
    else:
        raise TypeError(f"adaptive must be None, a bool or a dict of AdaptiveConformal settings "
                        f"(gamma, window); got {type(adaptive).__name__}")
    if aci_kw is not None and not coverages:
        raise ValueError("adaptive intervals need coverage (e.g. coverage=0.9)")
    if coverages and max_h > forecaster.horizon:
        raise ValueError(f"prediction intervals are calibrated for the forecaster's horizon "
                         f"({forecaster.horizon} steps); with coverage, horizons must not exceed "
                         f"it (got {max_h})")
    if n_test < max_h:
        raise ValueError(f"the held-out tail has {n_test} time steps, fewer than the largest "
                         f"horizon {max_h}; increase split")
    n_train = N - n_test
    model = clone(forecaster)
    y_fit = yv[:n_train, 0] if was_1d else yv[:n_train]
    fit_kw = {} if calibration is None else {"calibration": calibration}
    model.fit(y_fit, None if Xv is None else Xv[:n_train], validation=validation, **fit_kw)
    L = model._lookback_len()
    origins = np.arange(n_train, N - max_h + 1, stride)
    if origins[0] < L:
        raise ValueError(f"the training part ({n_train} steps) is shorter than lookback={L}")
    ctx = np.stack([yv[t - L:t] for t in origins])
    truth = np.stack([yv[t:t + max_h] for t in origins])
    if Xv is not None:
        Xc = np.stack([Xv[t - L:t] for t in origins])
        Xf = np.stack([Xv[t:t + max_h] for t in origins])
        pred = model.predict(ctx, n=max_h, X=Xc, X_future=Xf)
    else:
        pred = model.predict(ctx, n=max_h)
    err = pred - truth                                   # (origins, max_h, k)
    rmse_lead = np.sqrt(np.mean(err ** 2, axis=(0, 2)))
    mae_lead = np.mean(np.abs(err), axis=(0, 2))
    rm = {h: float(np.sqrt(np.mean(err[:, :h] ** 2))) for h in horizons}
    ma = {h: float(np.mean(np.abs(err[:, :h]))) for h in horizons}
    intervals = {}
    for c in coverages:
        q = model.interval_halfwidth(c, max_h)               # (max_h, k)
        lower, upper = pred - q, pred + q
        inside = (truth >= lower) & (truth <= upper)
        width = np.broadcast_to(2 * q, pred.shape)
        intervals[c] = {"coverage": float(inside.mean()), "width": float(width.mean()),
                        "coverage_by_lead": inside.mean(axis=(0, 2)),
                        "width_by_lead": width.mean(axis=(0, 2)), "lower": lower,
                        "upper": upper}
    adaptive_out = {}
    for c in (coverages if aci_kw is not None else []):
        q = adaptive_intervals(pred, truth, origins, model.calibration_residuals_[:, :max_h],
                               coverage=c, **aci_kw)
        lower, upper = pred - q, pred + q
        inside = (truth >= lower) & (truth <= upper)
        adaptive_out[c] = {"coverage": float(inside.mean()), "width": float((2 * q).mean()),
                           "coverage_by_lead": inside.mean(axis=(0, 2)),
                           "width_by_lead": (2 * q).mean(axis=(0, 2)), "lower": lower,
                           "upper": upper}
    return EvaluationResult(horizons=horizons, rmse=rm, mae=ma, rmse_by_lead=rmse_lead,
                            mae_by_lead=mae_lead, origins=origins, forecasts=pred, truth=truth,
                            n_train=n_train, forecaster=model, intervals=intervals,
                            adaptive_intervals=adaptive_out)
