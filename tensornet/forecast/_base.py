"""What every forecaster shares: parameters, input checks, scaling, predict, save / load.

A forecaster follows scikit-learn: ``__init__`` only stores its arguments;
``fit(y, X=None, validation=...)`` checks them and the data, fits the
scalers on the training split only, learns, and returns ``self``; learned
attributes end with ``_``; ``predict`` checks that the model is fitted.
"""

from __future__ import annotations

import inspect
import json
import logging
import numbers
from pathlib import Path
from typing import Optional

import numpy as np

from .._validation import check_int, check_option
from ._data import IMPUTE_METHODS, Scaler, as_series
from ._intervals import check_coverage, conformal_quantile, interval_scores

logger = logging.getLogger(__name__)

__all__ = ["BaseForecaster", "NotFittedError", "clone", "load"]

FORMAT = "tensornet-forecaster"
FORMAT_VERSION = 1
# parameters added after format version 1, with the value that reproduces older files
_BEFORE_IT_EXISTED = {"highway": False}
_JSON_NAME = "forecaster.json"
_WEIGHTS_NAME = "weights.pt"


class NotFittedError(ValueError, AttributeError):
    """Raised when ``predict`` / ``save`` is called before ``fit``."""


def _registry():
    from ._linear import LinearForecaster, SeasonalNaive
    from ._neural import LSTMForecaster, TTLSTMForecaster

    return {c.__name__: c for c in (TTLSTMForecaster, LSTMForecaster, LinearForecaster,
                                    SeasonalNaive)}


def clone(forecaster):
    """An unfitted copy with the same parameters (like ``sklearn.base.clone``)."""
    if not isinstance(forecaster, BaseForecaster):
        raise TypeError("forecaster must be a tensornet.forecast forecaster, got "
                        f"{type(forecaster).__name__}")
    return type(forecaster)(**forecaster.get_params())


class BaseForecaster:
    """Base class: see the module docstring for the conventions."""

    #: parameters that are data-independent switches and may not be validated by ``_check``
    _fitted_attr = "scaler_y_"

    # -- scikit-learn style parameters ---------------------------------------
    @classmethod
    def _param_names(cls):
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values()
                if p.name != "self" and p.kind == p.POSITIONAL_OR_KEYWORD]

    def get_params(self, deep: bool = False) -> dict:
        """Parameters given to ``__init__``."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        """Set parameters (as in scikit-learn); returns ``self``."""
        valid = self._param_names()
        for k, v in params.items():
            if k not in valid:
                raise ValueError(f"invalid parameter {k!r} for {type(self).__name__}; valid "
                                 f"parameters are {', '.join(valid)}")
            setattr(self, k, v)
        return self

    def __repr__(self):
        defaults = {p.name: p.default for p in
                    inspect.signature(type(self).__init__).parameters.values()}
        items = [f"{k}={v!r}" for k, v in self.get_params().items()
                 if k in ("lookback", "horizon") or defaults.get(k, inspect._empty) != v]
        return f"{type(self).__name__}({', '.join(items)})"

    # -- parameter checks ------------------------------------------------------
    def _check_common(self):
        check_int(self.lookback, "lookback", min_value=1)
        check_int(self.horizon, "horizon", min_value=1)
        if self.impute is not None:
            check_option(self.impute, "impute", IMPUTE_METHODS)

    def _lookback_len(self) -> int:
        return self.lookback

    def _min_length(self):
        """Shortest training series and how to say it."""
        L, H = self._lookback_len(), self.horizon
        return L + H, f"lookback + horizon = {L} + {H} = {L + H}"

    def _check_params(self):  # subclasses extend
        self._check_common()

    def _check_is_fitted(self):
        if not hasattr(self, self._fitted_attr):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(y) "
                                 "first")

    # -- data ---------------------------------------------------------------------
    def _coerce(self, y, X):
        """Return lists of (n_i, k) and (n_i, m) arrays, and whether y was a panel."""
        panel = isinstance(y, (list, tuple)) and len(y) > 0 and not isinstance(
            y[0], numbers.Number) and np.ndim(y[0]) >= 1
        ys = list(y) if panel else [y]
        if X is None:
            Xs = [None] * len(ys)
        elif panel:
            if not isinstance(X, (list, tuple)) or len(X) != len(ys):
                raise ValueError(f"with a list of {len(ys)} series, X must be a list of as many "
                                 "covariate arrays")
            Xs = list(X)
        else:
            Xs = [X]
        out_y, out_X = [], []
        was_1d = columns = None
        for i, (yi, Xi) in enumerate(zip(ys, Xs)):
            nm = f"y[{i}]" if panel else "y"
            v, w1, cols = as_series(yi, nm, impute=self.impute)
            if was_1d is None:
                was_1d, columns = w1, cols
            if out_y and v.shape[1] != out_y[0].shape[1]:
                raise ValueError(f"every series must have the same number of channels; {nm} has "
                                 f"{v.shape[1]}, y[0] has {out_y[0].shape[1]}")
            out_y.append(v)
            if Xi is not None:
                xn = f"X[{i}]" if panel else "X"
                xv, _, _ = as_series(Xi, xn, impute=self.impute)
                if len(xv) != len(v):
                    raise ValueError(f"{xn} must have one row per time step of {nm}: {nm} has "
                                     f"{len(v)} time steps, {xn} has {len(xv)} rows")
                out_X.append(xv)
        return out_y, (out_X or None), was_1d, columns, panel

    def _split(self, ys, Xs, validation, panel):
        """Train / validation split along time (one series) or by series (a panel)."""
        W = self._lookback_len() + self.horizon
        n_series = len(ys)
        if validation is None or (isinstance(validation, numbers.Real) and validation == 0):
            n_val = 0
        elif isinstance(validation, bool) or not isinstance(validation, numbers.Real):
            raise TypeError("validation must be None, a fraction in (0, 1) or a number of "
                            f"trailing time steps; got {validation!r}")
        elif isinstance(validation, numbers.Integral):
            n_val = check_int(validation, "validation", min_value=0)
            if panel:
                raise ValueError("with a list of series, validation must be a fraction of the "
                                 f"series (float in (0, 1)); got the integer {validation}")
        else:
            frac = float(validation)
            if not 0 < frac < 1:
                raise ValueError(f"validation must be a fraction in (0, 1), a number of time "
                                 f"steps, or None; got {validation!r}")
            n_val = max(1, int(round(frac * (n_series if panel else len(ys[0])))))
        get = (lambda lst, i: None if lst is None else lst[i])
        if panel:
            if n_val >= n_series:
                raise ValueError(f"validation={validation!r} leaves no series to train on "
                                 f"({n_series} series)")
            tr = [(ys[i], get(Xs, i)) for i in range(n_series - n_val)]
            va = [(ys[i], get(Xs, i)) for i in range(n_series - n_val, n_series)]
            if not any(len(y) >= W for y, _ in tr):
                raise ValueError(f"no training series has lookback + horizon = {W} time steps")
            return tr, va, n_val
        y, Xa = ys[0], get(Xs, 0)
        n = len(y)
        need, what = self._min_length()
        if n - n_val < need:
            extra = (f" plus the validation split ({n_val} steps) = {need + n_val}"
                     if n_val else "")
            raise ValueError(f"y has {n} time steps; at least {what}{extra} are needed")
        if n_val and n_val < self.horizon:
            raise ValueError(f"the validation split has {n_val} time steps, fewer than horizon="
                             f"{self.horizon}; use a larger validation or validation=None")
        cut = n - n_val
        tr = [(y[:cut], None if Xa is None else Xa[:cut])]
        va = []
        if n_val:
            lo = cut - self._lookback_len()
            va = [(y[lo:], None if Xa is None else Xa[lo:])]
        return tr, va, n_val

    # -- calibration window ------------------------------------------------------------
    #: whether a numeric ``calibration`` tail is removed from the data the model learns from
    #: (False for models that learn nothing, such as seasonal naive)
    _calibration_holdout = True

    def _split_calibration(self, ys, Xs, calibration, panel):
        """``(mode, ys_fit, Xs_fit, segments)``: the calibration tail cut off the data."""
        if calibration is None:
            return None, ys, Xs, []
        if isinstance(calibration, str):
            if calibration != "validation":
                raise ValueError("calibration must be 'validation', None, a fraction in (0, 1) or "
                                 f"a number of trailing time steps; got {calibration!r}")
            return "validation", ys, Xs, []
        if isinstance(calibration, bool) or not isinstance(calibration, numbers.Real):
            raise TypeError("calibration must be 'validation', None, a fraction in (0, 1) or a "
                            f"number of trailing time steps; got {calibration!r}")
        get = (lambda lst, i: None if lst is None else lst[i])
        L, H = self._lookback_len(), self.horizon
        if isinstance(calibration, numbers.Integral):
            if panel:
                raise ValueError("with a list of series, calibration must be a fraction of the "
                                 f"series (float in (0, 1)); got the integer {calibration}")
            n_cal = check_int(calibration, "calibration", min_value=1)
        else:
            frac = float(calibration)
            if not 0 < frac < 1:
                raise ValueError("calibration must be 'validation', None, a fraction in (0, 1) "
                                 f"or a number of trailing time steps; got {calibration!r}")
            n_cal = max(1, int(round(frac * (len(ys) if panel else len(ys[0])))))
        if panel:
            if n_cal >= len(ys):
                raise ValueError(f"calibration={calibration!r} leaves no series to train on "
                                 f"({len(ys)} series)")
            segs = [(ys[i], get(Xs, i)) for i in range(len(ys) - n_cal, len(ys))]
            if not self._calibration_holdout:
                return "tail", ys, Xs, segs
            keep = len(ys) - n_cal
            return "tail", ys[:keep], None if Xs is None else Xs[:keep], segs
        y, Xa = ys[0], get(Xs, 0)
        n = len(y)
        if n_cal < H:
            raise ValueError(f"the calibration tail has {n_cal} time steps, fewer than horizon="
                             f"{H}; use a larger calibration or calibration='validation'")
        if n - n_cal < L:
            raise ValueError(f"y has {n} time steps: a calibration tail of {n_cal} leaves fewer "
                             f"than lookback={L} before it")
        lo = n - n_cal - L
        segs = [(y[lo:], None if Xa is None else Xa[lo:])]
        if not self._calibration_holdout:
            return "tail", ys, Xs, segs
        cut = n - n_cal
        return "tail", [y[:cut]], None if Xa is None else [Xa[:cut]], segs

    # -- fit ------------------------------------------------------------------------
    def fit(self, y, X=None, validation=0.2, calibration="validation"):
        """Learn from the series ``y`` (and known covariates ``X``).

        Parameters
        ----------
        y : array-like of shape (n,) or (n, k), pandas Series / DataFrame, or a list of them
            The series to forecast (``k`` channels forecast jointly). A list of
            arrays is a panel of independent series of equal width (windows
            never cross two series); pass channels as a 2-D array, not as a
            nested list.
        X : array-like of shape (n, m), or a list of them, optional
            Covariates known in advance (calendar, planned values), aligned
            with ``y``; ``predict`` then needs their future values.
        validation : float, int or None, default 0.2
            Held-out end of the data for early stopping: a fraction of the time
            steps (one series) or of the series (a panel), or a number of
            trailing time steps. ``None`` trains for all epochs. Scalers use
            the training part only.
        calibration : 'validation', float, int or None, default 'validation'
            Where the residuals of :meth:`predict_interval` come from
            (split-conformal calibration; never from data the weights were
            fitted on):

            * ``'validation'``: every window whose forecast steps lie in the
              validation split. Those windows were not trained on, but early
              stopping chose the epoch with their help, so the residuals can
              be slightly optimistic. Without a validation split there is no
              calibration (``predict_interval`` then asks for one).
            * a fraction in (0, 1) or a number of trailing time steps (a
              fraction of the series for a panel): a dedicated calibration
              tail, held out from training *and* early stopping (the model
              learns from what comes before it; ``validation`` applies to
              that part). The cleanest choice when data allow.
            * ``None``: no calibration (see :meth:`calibrate`).

        Returns
        -------
        self
        """
        self._check_params()
        ys, Xs, was_1d, columns, panel = self._coerce(y, X)
        mode, ys_fit, Xs_fit, cal_segs = self._split_calibration(ys, Xs, calibration, panel)
        train, val, n_val = self._split(ys_fit, Xs_fit, validation, panel)
        self.scaler_y_ = Scaler.fit([a for a, _ in train])
        self.scaler_X_ = None if Xs is None else Scaler.fit([b for _, b in train])
        self.n_features_in_ = ys[0].shape[1]
        self.n_covariates_ = 0 if Xs is None else Xs[0].shape[1]
        self.was_1d_ = bool(was_1d)
        self.columns_ = None if columns is None else [str(c) for c in columns]
        self.panel_ = bool(panel)
        self.n_validation_ = int(n_val)
        last_y, L = ys[-1], self._lookback_len()
        self.context_ = last_y[-L:].copy() if len(last_y) >= L else None
        self.context_X_ = (None if Xs is None or self.context_ is None
                           else Xs[-1][-L:].copy())
        self._fit_scaled([self._stack(a, b) for a, b in train],
                         [self._stack(a, b) for a, b in val])
        self.calibration_residuals_ = None
        self.calibration_source_ = None
        if mode == "validation" and val:
            self._calibrate_segments(val, "validation")
        elif mode == "tail":
            self._calibrate_segments(cal_segs, "tail")
        return self

    def _stack(self, yv, Xv):
        ys = self.scaler_y_.transform(yv)
        if Xv is None:
            return ys
        return np.concatenate([ys, self.scaler_X_.transform(Xv)], axis=1)

    def _fit_scaled(self, train, val):  # pragma: no cover - abstract
        raise NotImplementedError

    # -- predict --------------------------------------------------------------------
    def predict(self, y_context=None, n: Optional[int] = None, X=None, X_future=None):
        """Forecast the ``n`` steps after a context, on the original scale.

        Parameters
        ----------
        y_context : array-like of shape (t, k) or (t,), or (batch, t, k), optional
            Recent observations (at least ``lookback``; the last ``lookback``
            are used). Default: the end of the series given to ``fit``.
        n : int, optional
            Steps to forecast (default ``horizon``); beyond ``horizon`` the
            forecast is continued from its own output, ``horizon`` steps at a time.
        X : array-like, optional
            Covariates aligned with ``y_context`` (when the model has covariates
            and ``y_context`` is given).
        X_future : array-like of shape (n, m) or (batch, n, m), optional
            Covariates of the forecast steps (required when fitted with ``X``).

        Returns
        -------
        ndarray of shape (n,) for a series fitted 1-D, else (n, k); a batch of
        contexts gives (batch, n, k).
        """
        self._check_is_fitted()
        n = self.horizon if n is None else check_int(n, "n", min_value=1)
        ctx, batched = self._context(y_context)
        m = self.n_covariates_
        if y_context is None and X is not None:
            raise ValueError("X holds the covariates of y_context; pass y_context as well (or "
                             "neither, to forecast after the fitted series)")
        if m:
            if y_context is None:
                Xc = self.context_X_[None]
            elif X is None:
                raise ValueError("this forecaster was fitted with covariates X: pass X (the "
                                 "covariates of y_context) and X_future")
            else:
                L = self._lookback_len()
                Xc = self._as_batch(X, "X", m, batched, min_len=L)[:, -L:]
                if Xc.shape[0] != ctx.shape[0]:
                    raise ValueError(f"X has {Xc.shape[0]} contexts, y_context has {ctx.shape[0]}")
            if X_future is None:
                raise ValueError(f"this forecaster was fitted with {m} covariates: pass "
                                 f"X_future with {n} rows (the covariates of the forecast steps)")
            Xf = self._as_batch(X_future, "X_future", m, batched, min_len=n)
            if Xf.shape[1] != n:
                raise ValueError(f"X_future must have n={n} rows, got {Xf.shape[1]}")
            if Xf.shape[0] not in (1, ctx.shape[0]):
                raise ValueError(f"X_future has {Xf.shape[0]} batches, y_context has "
                                 f"{ctx.shape[0]}")
            Xf = np.broadcast_to(Xf, (ctx.shape[0],) + Xf.shape[1:])
            Xc = self.scaler_X_.transform(Xc)
            Xf = self.scaler_X_.transform(Xf)
        else:
            if X_future is not None or X is not None:
                raise ValueError("this forecaster was fitted without covariates; X and X_future "
                                 "must be None")
            Xc = np.zeros(ctx.shape[:2] + (0,))
            Xf = np.zeros((ctx.shape[0], n, 0))
        out = self._forecast(self.scaler_y_.transform(ctx), Xc, Xf, n)
        out = self.scaler_y_.inverse(out)
        if batched:
            return out
        out = out[0]
        return out[:, 0] if self.was_1d_ and self.n_features_in_ == 1 else out

    # -- intervals ----------------------------------------------------------------------
    def _calibrate_segments(self, segments, source):
        """Absolute errors of every ``horizon``-step forecast inside the given segments."""
        L, H = self._lookback_len(), self.horizon
        m = self.n_covariates_
        scores = []
        for yv, Xv in segments:
            if len(yv) < L + H:
                continue
            w = np.lib.stride_tricks.sliding_window_view(yv, L + H, axis=0)   # (B, k, L+H)
            w = np.ascontiguousarray(w.transpose(0, 2, 1))
            ctx, truth = w[:, :L], w[:, L:]
            if m and Xv is not None:
                wx = np.lib.stride_tricks.sliding_window_view(Xv, L + H, axis=0)
                wx = np.ascontiguousarray(wx.transpose(0, 2, 1))
                pred = self.predict(ctx, n=H, X=wx[:, :L], X_future=wx[:, L:])
            else:
                pred = self.predict(ctx, n=H)
            scores.append(interval_scores(truth, pred))
        if not scores:
            self.calibration_residuals_ = None
            self.calibration_source_ = None
            return
        self.calibration_residuals_ = np.sort(np.concatenate(scores, axis=0), axis=0)
        self.calibration_source_ = source

    def calibrate(self, y, X=None):
        """Calibrate the prediction intervals on held-out data (split conformal).

        Every window of ``lookback + horizon`` steps of ``y`` gives the
        absolute errors of its ``horizon``-step forecast; they replace the
        calibration residuals chosen at ``fit``. ``y`` must not have been
        used to fit the model (and must not be the data you test on).

        Parameters
        ----------
        y : array-like of shape (t, k) or (t,), or a list of such series
            At least ``lookback + horizon`` steps (per series).
        X : array-like or list, optional
            Covariates aligned with ``y`` (required when fitted with ``X``).

        Returns
        -------
        self
        """
        self._check_is_fitted()
        panel = isinstance(y, (list, tuple)) and len(y) > 0 and not isinstance(
            y[0], numbers.Number) and np.ndim(y[0]) >= 1
        ys = list(y) if panel else [y]
        Xs = [None] * len(ys) if X is None else (list(X) if panel else [X])
        if self.n_covariates_ and X is None:
            raise ValueError(f"this {type(self).__name__} was fitted with covariates: pass X "
                             "aligned with y")
        if len(Xs) != len(ys):
            raise ValueError(f"X must hold one covariate array per series ({len(ys)}); got "
                             f"{len(Xs)}")
        segs = []
        for i, (yi, Xi) in enumerate(zip(ys, Xs)):
            nm = f"y[{i}]" if panel else "y"
            v, _, _ = as_series(yi, nm, impute=self.impute)
            if v.shape[1] != self.n_features_in_:
                raise ValueError(f"{nm} must have {self.n_features_in_} channels like the fitted "
                                 f"y, got {v.shape[1]}")
            xv = None
            if Xi is not None and self.n_covariates_:
                xv, _, _ = as_series(Xi, f"X[{i}]" if panel else "X", impute=self.impute)
                if xv.shape != (len(v), self.n_covariates_):
                    raise ValueError(f"X must have shape ({len(v)}, {self.n_covariates_}) like "
                                     f"{nm}; got {xv.shape}")
            segs.append((v, xv))
        need = self._lookback_len() + self.horizon
        if not any(len(v) >= need for v, _ in segs):
            raise ValueError(f"calibrate needs a series of at least lookback + horizon = {need} "
                             "time steps")
        self._calibrate_segments(segs, "calibrate")
        return self

    @property
    def n_calibration_(self) -> int:
        """Number of calibration windows (0 when not calibrated)."""
        r = getattr(self, "calibration_residuals_", None)
        return 0 if r is None else int(r.shape[0])

    def interval_halfwidth(self, coverage=0.9, n=None) -> np.ndarray:
        """Half-width of the conformal interval at each forecast step, per channel.

        Parameters
        ----------
        coverage : float in (0, 1), default 0.9
        n : int, optional
            Steps (default ``horizon``; at most the calibrated ``horizon``).

        Returns
        -------
        ndarray of shape (n, k)
            ``inf`` where the calibration windows are too few for the coverage
            (fewer than ``1 / (1 - coverage) - 1``).
        """
        self._check_is_fitted()
        coverage = check_coverage(coverage)
        r = getattr(self, "calibration_residuals_", None)
        if r is None:
            raise ValueError(
                f"this {type(self).__name__} has no calibration residuals for prediction "
                "intervals: fit it with a validation split (calibration='validation', the "
                "default) or with calibration=<fraction or steps>, or call calibrate(y_heldout)")
        n = r.shape[1] if n is None else check_int(n, "n", min_value=1)
        if n > r.shape[1]:
            raise ValueError(f"prediction intervals are calibrated for up to {r.shape[1]} steps "
                             f"(the horizon); got n={n}")
        return conformal_quantile(r[:, :n], coverage, axis=0)

    def predict_interval(self, y_context=None, coverage=0.9, n: Optional[int] = None, X=None,
                         X_future=None, return_forecast: bool = False):
        """Split-conformal prediction interval of the forecast, per horizon step.

        ``forecast ± q_j`` where ``q_j`` is the finite-sample-corrected
        ``coverage`` quantile of the absolute errors of step ``j`` on the
        calibration windows (see ``calibration`` in :meth:`fit`). Each step's
        interval covers the truth with probability about ``coverage`` (at
        least ``coverage`` when calibration and future errors are
        exchangeable); the band is not simultaneous over the steps.

        Parameters
        ----------
        y_context, n, X, X_future
            As in :meth:`predict` (``n`` at most ``horizon``).
        coverage : float in (0, 1), default 0.9
        return_forecast : bool, default False
            Also return the point forecast.

        Returns
        -------
        (lower, upper) or (forecast, lower, upper)
            Arrays shaped like :meth:`predict`'s output.

        Examples
        --------
        >>> import numpy as np
        >>> from tensornet.forecast import SeasonalNaive
        >>> rng = np.random.default_rng(0)
        >>> y = np.tile([1.0, 3.0, 2.0, 5.0], 100) + rng.normal(0, 0.1, 400)
        >>> f = SeasonalNaive(season=4, horizon=4).fit(y)
        >>> lower, upper = f.predict_interval(coverage=0.9)
        >>> lower.shape, bool(np.all(upper > lower))
        ((4,), True)
        """
        q = self.interval_halfwidth(coverage, n)
        pred = self.predict(y_context, n=q.shape[0], X=X, X_future=X_future)
        if pred.ndim == 1:
            q = q[:, 0]
        lower, upper = pred - q, pred + q
        return (pred, lower, upper) if return_forecast else (lower, upper)

    def _as_batch(self, a, name, width, batched, min_len):
        arr = np.asarray(a, dtype=np.float64) if not hasattr(a, "to_numpy") else \
            as_series(a, name)[0]
        if batched:
            if arr.ndim != 3:
                raise ValueError(f"{name} must be 3-D (batch, time, {width}) like y_context; got "
                                 f"shape {arr.shape}")
        else:
            if arr.ndim == 1 and width == 1:
                arr = arr[:, None]
            if arr.ndim != 2:
                raise ValueError(f"{name} must be 2-D (time, {width}); got shape {arr.shape}")
            arr = arr[None]
        if arr.shape[2] != width:
            raise ValueError(f"{name} must have {width} columns, got {arr.shape[2]}")
        if arr.shape[1] < min_len:
            raise ValueError(f"{name} must have at least {min_len} time steps, got {arr.shape[1]}")
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} contains NaN or infinite values")
        return arr

    def _context(self, y_context):
        k = self.n_features_in_
        if y_context is None:
            if self.context_ is None or self.panel_:
                raise ValueError("fitted on a list of series (or a series shorter than lookback):"
                                 " pass y_context")
            return self.context_[None], False
        if isinstance(y_context, np.ndarray) and y_context.ndim == 3:
            arr = y_context.astype(np.float64)
            if arr.shape[2] != k:
                raise ValueError(f"y_context must have {k} channels (last axis), got shape "
                                 f"{arr.shape}")
            if not np.isfinite(arr).all():
                raise ValueError("y_context contains NaN or infinite values; fill them first")
            batched = True
        else:
            v, _, _ = as_series(y_context, "y_context", impute=self.impute)
            if v.shape[1] != k:
                raise ValueError(f"y_context must have {k} channels like the fitted y, got "
                                 f"{v.shape[1]}")
            arr, batched = v[None], False
        L = self._lookback_len()
        if arr.shape[1] < L:
            raise ValueError(f"y_context must have at least lookback={L} time steps, "
                             f"got {arr.shape[1]}")
        return arr[:, -L:], batched

    def _forecast(self, ctx, Xc, Xf, n):
        """Scaled forecast, ``horizon`` steps at a time."""
        H = self.horizon
        if Xf.shape[1] % H:                        # pad the last block's covariates
            pad = H - Xf.shape[1] % H
            Xf = np.concatenate([Xf, np.repeat(Xf[:, -1:], pad, axis=1)], axis=1)
        outs = []
        for start in range(0, n, H):
            xf = Xf[:, start:start + H]
            block = self._predict_block(ctx, Xc, xf, H)
            outs.append(block)
            if start + H < n:
                ctx = np.concatenate([ctx, block], axis=1)[:, -ctx.shape[1]:]
                Xc = np.concatenate([Xc, xf], axis=1)[:, -Xc.shape[1]:]
        return np.concatenate(outs, axis=1)[:, :n]

    def _predict_block(self, ctx, Xc, Xf, h):  # pragma: no cover - abstract
        raise NotImplementedError

    # -- save / load ---------------------------------------------------------------
    def _json_params(self):
        params = {}
        for k, v in self.get_params().items():
            if k == "random_state" and not (v is None or (isinstance(v, numbers.Integral)
                                                          and not isinstance(v, bool))):
                logger.warning("random_state %r is not saved (only None or an int can be)", v)
                v = None
            if isinstance(v, np.generic):  # e.g. highway=np.True_: JSON takes Python scalars
                v = v.item()
            params[k] = v
        return params

    def _json_state(self) -> dict:
        return {}

    def _tensor_state(self) -> dict:
        return {}

    def _restore(self, state: dict, tensors: dict) -> None:
        pass

    def save(self, path) -> Path:
        """Save to the directory ``path`` without pickle.

        Writes ``forecaster.json`` (class, parameters, scaler statistics) and
        ``weights.pt`` (a ``state_dict`` of plain tensors, loadable with
        ``torch.load(weights_only=True)``, including the calibration
        residuals of the prediction intervals). Returns the directory.
        """
        import torch

        self._check_is_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = {
            "n_features_in_": self.n_features_in_,
            "n_covariates_": self.n_covariates_,
            "was_1d_": self.was_1d_,
            "columns_": self.columns_,
            "panel_": self.panel_,
            "n_validation_": self.n_validation_,
            "scaler_y_": self.scaler_y_.to_json(),
            "scaler_X_": None if self.scaler_X_ is None else self.scaler_X_.to_json(),
            "calibration_source_": getattr(self, "calibration_source_", None),
        }
        state.update(self._json_state())
        meta = {"format": FORMAT, "version": FORMAT_VERSION, "class": type(self).__name__,
                "params": self._json_params(), "state": state}
        tensors = {}
        if self.context_ is not None:
            tensors["context"] = torch.from_numpy(np.ascontiguousarray(self.context_))
        if self.context_X_ is not None:
            tensors["context_X"] = torch.from_numpy(np.ascontiguousarray(self.context_X_))
        r = getattr(self, "calibration_residuals_", None)
        if r is not None:
            tensors["calibration_residuals"] = torch.from_numpy(np.ascontiguousarray(r))
        tensors.update(self._tensor_state())
        torch.save(tensors, path / _WEIGHTS_NAME)
        (path / _JSON_NAME).write_text(json.dumps(meta, indent=1))
        return path

    @classmethod
    def load(cls, path, device=None):
        """Load a forecaster written by :meth:`save` (see :func:`load`)."""
        obj = load(path, device=device)
        if not isinstance(obj, cls):
            raise TypeError(f"{path} holds a {type(obj).__name__}, not a {cls.__name__}")
        return obj


def load(path, device=None):
    """Load any forecaster written by ``save``; no pickle is involved.

    Parameters
    ----------
    path : str or Path
        The directory given to ``save``.
    device : str, optional
        Override the saved ``device`` parameter (e.g. load a GPU model on CPU).
    """
    import torch

    path = Path(path)
    meta_file = path / _JSON_NAME
    if not meta_file.is_file():
        raise FileNotFoundError(f"{meta_file} not found: path must be a directory written by "
                                "a forecaster's save()")
    meta = json.loads(meta_file.read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{meta_file} is not a tensornet forecaster file")
    if meta.get("version", 0) > FORMAT_VERSION:
        raise ValueError(f"{meta_file} has format version {meta['version']}; this tensornet "
                         f"reads up to {FORMAT_VERSION}")
    classes = _registry()
    name = meta["class"]
    if name not in classes:
        raise ValueError(f"{meta_file} holds unknown class {name!r}; known: "
                         f"{', '.join(classes)}")
    params = dict(meta["params"])
    # a file written before a parameter existed: the behaviour it had then
    accepted = inspect.signature(classes[name].__init__).parameters
    for key, then in _BEFORE_IT_EXISTED.items():
        if key in accepted and key not in params:
            params[key] = then
    if device is not None and "device" in params:
        params["device"] = device
    obj = classes[name](**params)
    obj._check_params()
    tensors = torch.load(path / _WEIGHTS_NAME, map_location="cpu", weights_only=True)
    st = meta["state"]
    for key in ("n_features_in_", "n_covariates_", "was_1d_", "columns_", "panel_",
                "n_validation_"):
        setattr(obj, key, st[key])
    obj.scaler_y_ = Scaler.from_json(st["scaler_y_"])
    obj.scaler_X_ = None if st["scaler_X_"] is None else Scaler.from_json(st["scaler_X_"])
    obj.context_ = tensors["context"].numpy() if "context" in tensors else None
    obj.context_X_ = tensors["context_X"].numpy() if "context_X" in tensors else None
    cal = tensors.get("calibration_residuals")
    obj.calibration_residuals_ = None if cal is None else cal.numpy()
    obj.calibration_source_ = st.get("calibration_source_") if cal is not None else None
    obj._restore(st, tensors)
    return obj
