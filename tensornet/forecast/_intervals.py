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
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["check_coverage", "conformal_quantile", "coverage_and_width", "interval_scores"]


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
