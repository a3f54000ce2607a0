"""Split-conformal prediction intervals: calibration residuals, quantiles, coverage.

A forecaster is calibrated on windows it did not train on (its validation
split, or a dedicated tail of the series): for every window, the absolute
error of each forecast step ``j`` (and channel) is one *score*. For a
requested coverage ``1 - α`` the half-width of the interval at step ``j``
is the ``⌈(n + 1)(1 - α)⌉``-th smallest of the ``n`` scores of that step
(the finite-sample-corrected quantile of split conformal prediction, Vovk
et al. 2005; Lei et al. 2018). When the calibration and test errors are
exchangeable, the interval ``forecast ± half-width`` then covers the truth
with probability at least ``1 - α`` at each step (and at most ``1 - α + 1 /
(n + 1)`` for continuous errors). Windows of one series overlap and errors
drift, so on real series this holds approximately; it is measured by
:func:`~tensornet.forecast.evaluate` with ``coverage=...``.

When the errors drift (the test period is noisier than the calibration
window), :class:`AdaptiveConformal` updates the intervals online from the
truths observed so far (adaptive conformal inference, Gibbs & Candès 2021);
``evaluate(..., adaptive=True)`` measures it next to split conformal.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["AdaptiveConformal", "adaptive_intervals", "check_coverage", "conformal_quantile",
           "coverage_and_width", "interval_scores"]


def check_coverage(coverage, name: str = "coverage") -> float:
    """Return ``coverage`` as a float strictly between 0 and 1, or raise a clear error."""
    if isinstance(coverage, bool) or not isinstance(coverage, numbers.Real):
        raise TypeError(f"{name} must be a probability strictly between 0 and 1 (e.g. 0.9); "
                        f"got {coverage!r} ({type(coverage).__name__})")
    c = float(coverage)
    if not (0.0 < c < 1.0):
        raise ValueError(f"{name} must be a probability strictly between 0 and 1 (e.g. 0.9 for "
                         f"a 90% interval); got {coverage!r}")
    return c


def conformal_quantile(scores, coverage: float, axis: int = 0) -> np.ndarray:
    """Finite-sample-corrected conformal quantile of non-conformity scores along ``axis``.

    The ``k``-th smallest score with ``k = ⌈(n + 1) · coverage⌉``; infinite
    when ``k > n`` (too few scores for this coverage: the honest interval is
    unbounded).

    Parameters
    ----------
    scores : array-like
        ``n`` scores along ``axis`` (any other axes are kept).
    coverage : float in (0, 1)
    axis : int, default 0

    Returns
    -------
    ndarray
        ``scores`` with ``axis`` removed.

    Examples
    --------
    >>> import numpy as np
    >>> from tensornet.forecast import conformal_quantile
    >>> conformal_quantile(np.arange(1.0, 20.0), 0.9)    # 19 scores: the 18th smallest
    array(18.)
    >>> conformal_quantile(np.arange(1.0, 5.0), 0.9)     # 4 scores cannot give 90 %
    array(inf)
    """
    c = check_coverage(coverage)
    s = np.sort(np.asarray(scores, dtype=np.float64), axis=axis)
    n = s.shape[axis]
    if n == 0:
        raise ValueError("conformal_quantile needs at least one score")
    # (the tolerance keeps e.g. 0.9 * 10 = 9.000000000000002 from rounding up to 10)
    k = math.ceil((n + 1) * c - 1e-9)
    if k > n:
        shape = s.shape[:axis % s.ndim] + s.shape[axis % s.ndim + 1:]
        return np.full(shape, np.inf)
    return np.asarray(np.take(s, k - 1, axis=axis))


def interval_scores(y_true, y_pred) -> np.ndarray:
    """Absolute errors, the non-conformity scores of symmetric intervals."""
    return np.abs(np.asarray(y_true, dtype=np.float64) - np.asarray(y_pred, dtype=np.float64))


def coverage_and_width(y_true, lower, upper, axis=None):
    """Share of ``y_true`` inside ``[lower, upper]`` and the mean width ``upper - lower``.

    Examples
    --------
    >>> from tensornet.forecast import coverage_and_width
    >>> coverage_and_width([1.0, 2.0, 5.0], [0.0, 0.0, 0.0], [2.0, 2.0, 2.0])
    (0.6666666666666666, 2.0)
    """
    y = np.asarray(y_true, dtype=np.float64)
    lo = np.asarray(lower, dtype=np.float64)
    hi = np.asarray(upper, dtype=np.float64)
    inside = (y >= lo) & (y <= hi)
    cov = inside.mean(axis=axis)
    width = (hi - lo).mean(axis=axis)
    if axis is None:
        return float(cov), float(width)
    return cov, width


# ---------------------------------------------------------------------------------------
# online: adaptive conformal inference
# ---------------------------------------------------------------------------------------

def _check_gamma(gamma) -> float:
    if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real):
        raise TypeError(f"gamma must be a positive step size (e.g. 0.05); got {gamma!r} "
                        f"({type(gamma).__name__})")
    g = float(gamma)
    if not (math.isfinite(g) and 0.0 < g < 1.0):
        raise ValueError(f"gamma must be a step size in (0, 1) (e.g. 0.05); got {gamma!r}")
    return g


def _check_window(window):
    if window is None:
        return None
    if isinstance(window, bool) or not isinstance(window, numbers.Integral):
        raise TypeError(f"window must be None or a positive number of scores; got {window!r} "
                        f"({type(window).__name__})")
    if window < 1:
        raise ValueError(f"window must be None or a positive number of scores; got {window!r}")
    return int(window)


class AdaptiveConformal:
    """Online conformal half-widths per forecast step: adaptive conformal inference.

    Starts from split-conformal calibration scores and, each time a truth is
    observed, (1) moves the miscoverage level of that forecast step by
    ``α_j ← α_j + γ (α − err)`` (Gibbs & Candès 2021, *Adaptive conformal
    inference under distribution shift*), where ``α = 1 − coverage`` and
    ``err`` is 1 when the truth fell outside the interval that was issued for
    it, and (2) appends the observed score to the step's pool. The half-width
    of step ``j`` is the finite-sample-corrected ``1 − α_j`` quantile of that
    pool. Too many misses shrink ``α_j`` (wider intervals), too few grow it;
    over any ``T`` updates of a step the miss rate is within
    ``(max(α₁, 1 − α₁) + γ) / (γ T)`` of ``α`` whatever the errors do
    (the paper's bound; no exchangeability needed).

    Two deviations from the paper keep the widths finite: where ``α_j ≤ 0``
    (or the pool is too small for ``1 − α_j``) the half-width is the largest
    score of the pool instead of an infinite interval, and ``α_j`` is kept in
    ``[−γ, 1 + γ]`` (the range it never leaves in the paper), so a run of
    misses it cannot cover does not wind it up.

    Only feed truths that have been observed: the ``j``-th step (0-based) of a
    forecast made at time ``t`` is known at time ``t + j`` and may be used for
    the intervals issued from ``t + j + 1`` on (:func:`adaptive_intervals` and
    :func:`~tensornet.forecast.evaluate` with ``adaptive=...`` do this
    bookkeeping).

    Parameters
    ----------
    residuals : array-like of shape (n, H) or (n, H, k)
        Calibration scores (absolute errors of ``n`` held-out forecasts), e.g.
        a fitted forecaster's ``calibration_residuals_``.
    coverage : float in (0, 1), default 0.9
    gamma : float in (0, 1), default 0.05
        Step size: larger adapts faster and oscillates more.
    window : int, optional
        Keep only the latest ``window`` scores of each step in the pool (the
        calibration scores count as older than every observed one and are
        thinned evenly over their order statistics). Default: keep all.

    Examples
    --------
    >>> import numpy as np
    >>> from tensornet.forecast import AdaptiveConformal
    >>> rng = np.random.default_rng(0)
    >>> aci = AdaptiveConformal(np.abs(rng.normal(size=(200, 1))), coverage=0.9, gamma=0.05)
    >>> q0 = aci.halfwidth()[0, 0]
    >>> for e in np.abs(rng.normal(0, 3, 300)):       # errors three times larger
    ...     _ = aci.update(0, e)
    >>> bool(aci.halfwidth()[0, 0] > 2 * q0)
    True
    """

    def __init__(self, residuals, coverage=0.9, gamma=0.05, window=None):
        c = check_coverage(coverage)
        self.gamma = _check_gamma(gamma)
        self.window = _check_window(window)
        r = np.asarray(residuals, dtype=np.float64)
        if r.ndim == 2:
            r = r[..., None]
        if r.ndim != 3 or r.shape[0] == 0 or r.shape[1] == 0 or r.shape[2] == 0:
            raise ValueError("residuals must have shape (n, horizon) or (n, horizon, channels) "
                             f"with n >= 1; got shape {np.shape(residuals)}")
        if not np.all(np.isfinite(r)) or np.any(r < 0):
            raise ValueError("residuals must be finite non-negative scores (absolute errors)")
        self.coverage = c
        self.alpha = 1.0 - c
        _, H, k = r.shape
        self.horizon, self.n_channels = H, k
        self._cal = np.sort(r, axis=0)
        self._obs = [[] for _ in range(H)]
        self._sorted = [None] * H
        #: current miscoverage level per step and channel
        self.alpha_ = np.full((H, k), self.alpha)
        #: number of observed truths and misses per step and channel
        self.n_updates_ = np.zeros((H, k), dtype=np.int64)
        self.n_misses_ = np.zeros((H, k), dtype=np.int64)

    @classmethod
    def from_forecaster(cls, forecaster, coverage=0.9, gamma=0.05, window=None):
        """Start from a fitted forecaster's calibration residuals."""
        r = getattr(forecaster, "calibration_residuals_", None)
        if r is None:
            raise ValueError(f"forecaster must be fitted and calibrated (calibration_residuals_ "
                             f"set); got {type(forecaster).__name__} without calibration "
                             "residuals")
        return cls(r, coverage=coverage, gamma=gamma, window=window)

    def _pool(self, j):
        if self._sorted[j] is None:
            cal, obs = self._cal[:, j], self._obs[j]
            obs = np.asarray(obs, dtype=np.float64).reshape(-1, self.n_channels)
            if self.window is not None:
                if len(obs) >= self.window:
                    cal, obs = cal[:0], obs[len(obs) - self.window:]
                elif len(cal) > self.window - len(obs):
                    keep = self.window - len(obs)
                    cal = cal[np.round(np.linspace(0, len(cal) - 1, keep)).astype(np.int64)]
            self._sorted[j] = np.sort(np.concatenate([cal, obs], axis=0), axis=0)
        return self._sorted[j]

    def halfwidth(self, n=None) -> np.ndarray:
        """Current half-widths of steps ``0 .. n - 1``, shape ``(n, channels)``."""
        n = self.horizon if n is None else int(n)
        if not 1 <= n <= self.horizon:
            raise ValueError(f"n must be between 1 and the calibrated horizon {self.horizon}; "
                             f"got {n}")
        out = np.empty((n, self.n_channels))
        cols = np.arange(self.n_channels)
        for j in range(n):
            s = self._pool(j)
            m = s.shape[0]
            k = np.ceil((m + 1) * (1.0 - self.alpha_[j]) - 1e-9).astype(np.int64)
            k = np.clip(k, 0, m)
            q = s[np.maximum(k - 1, 0), cols]
            out[j] = np.where(k == 0, 0.0, q)
        return out

    def update(self, step, residual, halfwidth=None):
        """Feed the observed absolute error of forecast step ``step`` (0-based).

        Parameters
        ----------
        step : int
        residual : float or array-like of shape (channels,)
            ``|truth - forecast|``.
        halfwidth : float or array-like of shape (channels,), optional
            The half-width that was issued for this forecast (default: the
            current one of ``step``). ``err`` = residual > halfwidth.

        Returns
        -------
        self
        """
        if isinstance(step, bool) or not isinstance(step, numbers.Integral) or \
                not 0 <= step < self.horizon:
            raise ValueError(f"step must be an integer in [0, {self.horizon}); got {step!r}")
        e = np.broadcast_to(np.asarray(residual, dtype=np.float64), (self.n_channels,))
        if not np.all(np.isfinite(e)):
            raise ValueError("residual must be finite")
        q = self.halfwidth(step + 1)[step] if halfwidth is None else np.broadcast_to(
            np.asarray(halfwidth, dtype=np.float64), (self.n_channels,))
        err = np.abs(e) > q
        g = self.gamma
        self.alpha_[step] = np.clip(self.alpha_[step] + g * (self.alpha - err), -g, 1.0 + g)
        self.n_updates_[step] += 1
        self.n_misses_[step] += err
        e = np.abs(e)
        self._obs[step].append(e.copy())
        s = self._sorted[step]
        if self.window is None and s is not None:
            # keep the pool sorted: insert the new score into each channel's column
            self._sorted[step] = np.stack(
                [np.insert(s[:, c], np.searchsorted(s[:, c], e[c]), e[c])
                 for c in range(self.n_channels)], axis=1)
        else:
            self._sorted[step] = None
        return self


def adaptive_intervals(forecasts, truth, origins, residuals, coverage=0.9, gamma=0.05,
                       window=None):
    """Half-widths of rolling-origin forecasts with adaptive conformal inference, no look-ahead.

    The forecast made at origin ``origins[i]`` (its first step is ``y[origins[i]]``)
    gets the half-widths of an :class:`AdaptiveConformal` that has seen exactly
    the truths ``y[s]`` with ``s < origins[i]`` of earlier forecasts: step ``j``
    of origin ``t`` is fed once ``t + j < origins[i]``, with the half-width
    that was issued for it, in the order the truths arrive.

    Parameters
    ----------
    forecasts, truth : ndarray of shape (n_origins, H, k)
    origins : array-like of int, increasing, shape (n_origins,)
    residuals, coverage, gamma, window
        As in :class:`AdaptiveConformal`.

    Returns
    -------
    ndarray of shape (n_origins, H, k)
        The half-width issued at each origin and step.
    """
    pred = np.asarray(forecasts, dtype=np.float64)
    y = np.asarray(truth, dtype=np.float64)
    o = np.asarray(origins)
    if pred.ndim != 3 or pred.shape != y.shape:
        raise ValueError(f"forecasts and truth must have the same shape (n_origins, H, k); got "
                         f"{pred.shape} and {y.shape}")
    if o.shape != (pred.shape[0],) or (len(o) > 1 and np.any(np.diff(o) <= 0)):
        raise ValueError(f"origins must be {pred.shape[0]} increasing time indices; got shape "
                         f"{o.shape}")
    aci = AdaptiveConformal(residuals, coverage=coverage, gamma=gamma, window=window)
    n, H, _ = pred.shape
    if H > aci.horizon:
        raise ValueError(f"the forecasts have {H} steps but the residuals only {aci.horizon}")
    q = np.empty_like(pred)
    # every (origin, step) truth, in the order it is observed: y[o + j] is known at o + j
    m_idx, j_idx = np.meshgrid(np.arange(n), np.arange(H), indexing="ij")
    m_idx, j_idx = m_idx.ravel(), j_idx.ravel()
    seen = o[m_idx] + j_idx
    order = np.lexsort((j_idx, m_idx, seen))
    m_idx, j_idx, seen = m_idx[order], j_idx[order], seen[order]
    scores = np.abs(y - pred)
    p = 0
    for i in range(n):
        while p < len(seen) and seen[p] < o[i]:
            m, j = m_idx[p], j_idx[p]
            aci.update(int(j), scores[m, j], q[m, j])
            p += 1
        q[i] = aci.halfwidth(H)
    return q
