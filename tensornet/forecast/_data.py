"""Turning user input into clean float arrays, scaling, and training windows."""

from __future__ import annotations

import numbers
from typing import Any, Optional

import numpy as np

__all__ = ["as_series", "fill_gaps", "IMPUTE_METHODS"]

#: accepted values of ``impute``
IMPUTE_METHODS = ("linear", "ffill")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def fill_gaps(values, method: str):
    """Fill NaN gaps column by column.

    Parameters
    ----------
    values : array-like of shape (n,) or (n, k)
    method : {"linear", "ffill"}
        ``"linear"`` interpolates linearly in time between the neighbouring
        observations (gaps at either end take the nearest observation);
        ``"ffill"`` carries the last observation forward (a leading gap takes
        the first observation).

    Returns
    -------
    ndarray of float, same shape, without NaN.

    Examples
    --------
    >>> import numpy as np
    >>> from tensornet.forecast import fill_gaps
    >>> fill_gaps([1.0, np.nan, 3.0, np.nan], "linear")
    array([1., 2., 3., 3.])
    >>> fill_gaps([1.0, np.nan, 3.0, np.nan], "ffill")
    array([1., 1., 3., 3.])
    """
    if method not in IMPUTE_METHODS:
        raise ValueError(f"impute must be one of {', '.join(map(repr, IMPUTE_METHODS))} or "
                         f"None; got {_short(method)}")
    arr = np.array(values, dtype=np.float64)
    one_d = arr.ndim == 1
    a2 = arr.reshape(len(arr), -1)
    t = np.arange(len(a2))
    for j in range(a2.shape[1]):
        col = a2[:, j]
        ok = ~np.isnan(col)
        if ok.all():
            continue
        if not ok.any():
            raise ValueError(f"column {j} has no observed value to impute from")
        if method == "linear":
            col[~ok] = np.interp(t[~ok], t[ok], col[ok])
        else:
            idx = np.where(ok, t, 0)
            np.maximum.accumulate(idx, out=idx)
            first = np.argmax(ok)
            idx[:first] = first
            a2[:, j] = col[idx]
    return a2.reshape(arr.shape) if not one_d else a2[:, 0]


def _numeric_frame_values(obj, name: str) -> tuple[np.ndarray, list]:
    """Values of a pandas Series / DataFrame, refusing non-numeric columns."""
    import pandas as pd

    if isinstance(obj, pd.Series):
        frame = obj.to_frame(name=obj.name if obj.name is not None else 0)
    else:
        frame = obj
    bad = [(c, str(frame[c].dtype)) for c in frame.columns
           if not (pd.api.types.is_numeric_dtype(frame[c]) and
                   not pd.api.types.is_bool_dtype(frame[c]))]
    if bad:
        c, dt = bad[0]
        raise TypeError(f"{name} must hold numeric columns only; column {c!r} has dtype {dt} "
                        "(drop it, or encode it as numbers)")
    return frame.to_numpy(dtype=np.float64, na_value=np.nan), list(frame.columns)


def as_series(y, name: str = "y", impute: Optional[str] = None, min_length: int = 1):
    """Coerce one series to a float64 array of shape ``(n, k)``.

    Returns ``(values, was_1d, columns)``. NaN gaps are filled with
    ``impute`` or rejected with a message naming the choices.
    """
    columns = None
    if y is None:
        raise TypeError(f"{name} must be an array-like of numbers, got None")
    mod = type(y).__module__.partition(".")[0]
    if mod == "pandas":
        import pandas as pd

        if isinstance(y, (pd.Series, pd.DataFrame)):
            values, columns = _numeric_frame_values(y, name)
            was_1d = isinstance(y, pd.Series)
        else:
            raise TypeError(f"{name} must be a pandas Series or DataFrame, a NumPy array or a "
                            f"list of numbers; got {type(y).__name__}")
    else:
        if mod == "torch":
            y = y.detach().cpu().numpy()
        if isinstance(y, (str, bytes, numbers.Number)):
            raise TypeError(f"{name} must be an array-like of numbers (a series), got "
                            f"{_short(y)}")
        raw = np.asarray(y)
        if raw.dtype.kind not in "biuf":
            if raw.dtype.kind == "O":
                try:
                    raw = raw.astype(np.float64)
                except (TypeError, ValueError):
                    raise TypeError(f"{name} must hold numbers only; got non-numeric values "
                                    f"such as {_short(_first_non_numeric(raw))}") from None
            else:
                raise TypeError(f"{name} must hold numbers only; got an array of dtype "
                                f"{raw.dtype}")
        if raw.dtype.kind == "b":
            raise TypeError(f"{name} must hold numbers, got booleans")
        values = raw.astype(np.float64)
        was_1d = values.ndim == 1
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2:
        raise ValueError(f"{name} must be 1-D (one series) or 2-D (time, channels); got shape "
                         f"{values.shape}")
    if values.shape[1] == 0:
        raise ValueError(f"{name} has no columns")
    if np.isinf(values).any():
        raise ValueError(f"{name} contains infinite values; clean them before fitting")
    n_nan = int(np.isnan(values).sum())
    if n_nan:
        if impute is None:
            rows = np.flatnonzero(np.isnan(values).any(axis=1))
            where = ", ".join(str(r) for r in rows[:5]) + (", ..." if len(rows) > 5 else "")
            raise ValueError(f"{name} has {n_nan} missing values (NaN) at time steps {where}; "
                             "choose how to fill them with impute='linear' or impute='ffill' "
                             "(or fill them yourself)")
        values = fill_gaps(values, impute)
    if len(values) < min_length:
        raise ValueError(f"{name} must have at least {min_length} time steps; got {len(values)}")
    return values, was_1d, columns


def _first_non_numeric(raw):
    for v in raw.ravel():
        try:
            float(v)
        except (TypeError, ValueError):
            return v
    return None  # pragma: no cover


class Scaler:
    """Per-channel standardisation with statistics of the training split only."""

    def __init__(self, mean, scale):
        self.mean = np.asarray(mean, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)

    @classmethod
    def fit(cls, arrays):
        data = np.concatenate([np.asarray(a, dtype=np.float64) for a in arrays], axis=0)
        mean = data.mean(axis=0)
        scale = data.std(axis=0)
        scale = np.where(scale > 1e-12 * np.maximum(1.0, np.abs(mean)), scale, 1.0)
        return cls(mean, scale)

    def transform(self, a):
        return (a - self.mean) / self.scale

    def inverse(self, a):
        return a * self.scale + self.mean

    def to_json(self):
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_json(cls, d):
        return cls(d["mean"], d["scale"])


def window_starts(lengths, window: int):
    """Global start indices of every full window in concatenated segments."""
    starts = []
    offset = 0
    for n in lengths:
        if n >= window:
            starts.append(offset + np.arange(n - window + 1))
        offset += n
    return np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)


def calendar_features(index, columns=None):
    """Sine / cosine calendar phases of a DatetimeIndex: covariates known in advance.

    Parameters
    ----------
    index : pandas.DatetimeIndex
    columns : list of str, optional
        Which phases to include among ``"day"`` (time of day), ``"week"`` (day
        of week) and ``"year"`` (day of year). Default: those shorter cycles the
        sampling step can resolve — time of day for sub-daily steps, day of
        week for steps under a week, day of year for steps under a quarter.

    Returns
    -------
    ndarray of shape (len(index), 2 * len(columns)): ``sin`` and ``cos`` of each phase.

    Examples
    --------
    >>> import pandas as pd
    >>> from tensornet.forecast import calendar_features
    >>> idx = pd.date_range("2024-01-01", periods=48, freq="h")
    >>> calendar_features(idx).shape
    (48, 6)
    >>> calendar_features(idx, ["day"])[6].round(6).tolist()     # 06:00 is a quarter day
    [1.0, 0.0]
    """
    import pandas as pd

    if not isinstance(index, pd.DatetimeIndex):
        try:
            index = pd.DatetimeIndex(index)
        except (TypeError, ValueError):
            raise TypeError("index must be a pandas DatetimeIndex (or convertible to one); got "
                            f"{type(index).__name__}") from None
    if columns is None:
        step = (pd.Series(index).diff().median() if len(index) > 1 else pd.Timedelta("1D"))
        columns = []
        if step < pd.Timedelta("1D"):
            columns.append("day")
        if step < pd.Timedelta("7D"):
            columns.append("week")
        if step < pd.Timedelta("91D"):
            columns.append("year")
    feats = []
    for c in columns:
        if c == "day":
            phase = (index.hour + index.minute / 60 + index.second / 3600) / 24
        elif c == "week":
            phase = (index.day_of_week + index.hour / 24) / 7
        elif c == "year":
            phase = (index.day_of_year - 1 + index.hour / 24) / 365.25
        else:
            raise ValueError(f"columns must be among 'day', 'week', 'year'; got {c!r}")
        phase = 2 * np.pi * np.asarray(phase, dtype=np.float64)
        feats += [np.sin(phase), np.cos(phase)]
    if not feats:
        return np.zeros((len(index), 0))
    return np.column_stack(feats)


def infer_season(y, index=None, max_lag=None) -> int:
    """Guess the dominant season length (in steps).

    With a DatetimeIndex: observations per day for sub-daily data (so series
    with nights or weekends left out still get their true daily cycle), 7 for
    daily, 52 for weekly, 12 for monthly and 4 for quarterly data. Otherwise
    the lag of the highest autocorrelation of the differenced series after
    its first dip (1 when there is none).

    Examples
    --------
    >>> import numpy as np
    >>> from tensornet.forecast import infer_season
    >>> infer_season(np.sin(np.arange(500) * 2 * np.pi / 24) + 0.01 * np.arange(500))
    24
    """
    if index is not None and len(index) > 2:
        import pandas as pd

        index = pd.DatetimeIndex(index)
        step = pd.Series(index).diff().median()
        if step < pd.Timedelta("1D"):
            per_day = pd.Series(1, index=index).groupby(index.normalize()).size()
            return max(1, int(per_day.median()))
        for limit, season in (("2D", 7), ("8D", 52), ("32D", 12), ("93D", 4)):
            if step < pd.Timedelta(limit):
                return season
        return 1
    v = np.asarray(y, dtype=np.float64).reshape(len(y), -1)[:, 0]
    for series in (np.diff(v), v):                 # differenced first (removes trends)
        lag = _acf_season(series, max_lag)
        if lag > 1:
            return lag
    return 1


def _acf_season(d, max_lag):
    d = d - d.mean()
    n = len(d)
    max_lag = min(n // 3, 2000) if max_lag is None else int(max_lag)
    if max_lag < 3 or not np.any(d):
        return 1
    spec = np.fft.rfft(d, 2 * n)
    acf = np.fft.irfft(spec * np.conj(spec))[:max_lag + 1]
    acf = acf / acf[0]
    below = np.flatnonzero(acf < 0)
    if len(below) == 0:
        return 1
    a = acf[below[0]:]
    peaks = np.flatnonzero((a[1:-1] >= a[:-2]) & (a[1:-1] >= a[2:])) + 1
    if len(peaks) == 0 or a[peaks].max() <= max(0.2, 4.0 / np.sqrt(n)):
        return 1
    best = a[peaks].max()
    # the shortest cycle nearly as strong as the strongest (not one of its multiples)
    return int(below[0] + peaks[np.flatnonzero(a[peaks] >= 0.9 * best)[0]])
