"""Baselines: a DLinear-style linear forecaster and seasonal naive."""

from __future__ import annotations

import numbers

import numpy as np
import torch
from torch import nn

from .._validation import check_int, check_option
from ._base import BaseForecaster
from ._data import IMPUTE_METHODS
from ._neural import _NAMES_DOC, _TRAIN_DOC, NeuralForecaster, _ForecastNet

__all__ = ["LinearForecaster", "SeasonalNaive"]


class _DLinear(_ForecastNet):
    """Moving-average trend + remainder, one linear map (lookback -> horizon) for each."""

    def __init__(self, n_out, n_cov, lookback, horizon, kernel_size, window_norm):
        super().__init__(n_out, window_norm)
        self.kernel_size = kernel_size
        self.seasonal = nn.Linear(lookback, horizon)
        self.trend = nn.Linear(lookback, horizon)
        self.covariates = nn.Linear(n_cov, n_out) if n_cov else None
        self.horizon = horizon

    def reset_parameters(self, generator=None):
        with torch.no_grad():
            for lin in (self.seasonal, self.trend):          # start as the window average
                lin.weight.fill_(1.0 / lin.in_features)
                lin.bias.zero_()
            if self.covariates is not None:
                self.covariates.weight.zero_()
                self.covariates.bias.zero_()

    def _run(self, enc, dec_cov, n, target, tf_prob, generator):
        k = self.n_out
        x = enc[..., :k].transpose(1, 2)                      # (B, k, L)
        K = self.kernel_size
        front, back = (K - 1) // 2, K // 2
        padded = torch.cat([x[..., :1].expand(-1, -1, front), x,
                            x[..., -1:].expand(-1, -1, back)], dim=-1)
        trend = torch.nn.functional.avg_pool1d(padded, K, stride=1)
        out = self.seasonal(x - trend) + self.trend(trend)    # (B, k, H)
        out = out.transpose(1, 2)
        if self.covariates is not None:             # the covariates of each forecast step
            out = out + self.covariates(dec_cov[:, :out.shape[1]])
        return out[:, :n]


class LinearForecaster(NeuralForecaster):
    __doc__ = """DLinear-style linear forecaster (Zeng et al., 2023).

    The look-back window of each channel is split into a moving-average
    trend (edge-padded, width ``kernel_size``) and the remainder; one linear
    map from ``lookback`` to ``horizon`` steps per component, shared by the
    channels, and their sum is the forecast. Known covariates add a linear
    function of the covariates of each forecast step (one small map shared by
    the steps, so it cannot overfit the calendar).

    Parameters
    ----------
    lookback, horizon : int
    kernel_size : int, default 25
        Moving-average width (DLinear's default); clipped to ``lookback``.
    """ + _TRAIN_DOC.format(lr="5e-3", names=_NAMES_DOC) + """
    Examples
    --------
    >>> import numpy as np
    >>> from tensornet.forecast import LinearForecaster
    >>> y = np.sin(np.arange(300) * 2 * np.pi / 25)
    >>> f = LinearForecaster(50, 10, epochs=20, random_state=0).fit(y)
    >>> bool(np.abs(f.predict() - np.sin(np.arange(300, 310) * 2 * np.pi / 25)).max() < 0.1)
    True
    """

    def __init__(self, lookback, horizon, kernel_size=25, epochs=100, batch_size=64, lr=5e-3,
                 weight_decay=0.0, patience=10, grad_clip=1.0, max_windows=None,
                 window_norm="last", impute=None, random_state=None, device="cpu",
                 progress=False, optimizer=None, optimizer_kwargs=None):
        self.lookback = lookback
        self.horizon = horizon
        self.kernel_size = kernel_size
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.grad_clip = grad_clip
        self.max_windows = max_windows
        self.window_norm = window_norm
        self.impute = impute
        self.random_state = random_state
        self.device = device
        self.progress = progress
        self.optimizer = optimizer
        self.optimizer_kwargs = optimizer_kwargs

    def _check_params(self):
        super()._check_params()
        check_int(self.kernel_size, "kernel_size", min_value=1)

    def _build_net(self, k, m):
        return _DLinear(k, m, self.lookback, self.horizon,
                        min(self.kernel_size, self.lookback), self.window_norm)


class SeasonalNaive(BaseForecaster):
    """Repeat the last observed season: ``y_{T+j} = y_{T+j-s*ceil(j/s)}``.

    Parameters
    ----------
    season : int
        Season length ``s`` in time steps (1 gives the naive last-value forecast).
    horizon : int
    lookback : int or None, default None
        Context length; at least (and by default) ``season``.
    impute : {"linear", "ffill"} or None, default None

    Examples
    --------
    >>> import numpy as np
    >>> from tensornet.forecast import SeasonalNaive
    >>> SeasonalNaive(season=3, horizon=5).fit(np.arange(9.0)).predict()
    array([6., 7., 8., 6., 7.])
    """

    def __init__(self, season, horizon, lookback=None, impute=None):
        self.season = season
        self.horizon = horizon
        self.lookback = lookback
        self.impute = impute

    def _lookback_len(self) -> int:
        return self.season if self.lookback is None else self.lookback

    def _min_length(self):
        L = self._lookback_len()
        return L, f"lookback = {L} (one season)"

    def _check_params(self):
        check_int(self.season, "season", min_value=1)
        if self.lookback is not None:
            check_int(self.lookback, "lookback", min_value=self.season)
        check_int(self.horizon, "horizon", min_value=1)
        if self.impute is not None:
            check_option(self.impute, "impute", IMPUTE_METHODS)

    _calibration_holdout = False

    def fit(self, y, X=None, validation=None, calibration="auto"):
        """Remember the end of ``y`` (``X`` and ``validation`` are accepted and ignored).

        Parameters
        ----------
        y : array-like (see :meth:`BaseForecaster.fit`)
        X, validation : ignored
        calibration : 'auto', float, int or None, default 'auto'
            The tail of ``y`` (fraction or number of time steps) whose
            windows calibrate :meth:`predict_interval`. Seasonal naive learns
            nothing, so the tail is not held out from anything. ``'auto'``
            (and ``'validation'``): the last 20 % of ``y``, or all of ``y``
            when that tail is shorter than ``horizon``; no calibration when
            ``y`` is shorter than ``lookback + horizon``.
        """
        if isinstance(calibration, str) and calibration in ("auto", "validation"):
            calibration = self._auto_calibration(y)
        return super().fit(y, None, validation=None, calibration=calibration)

    def _auto_calibration(self, y):
        panel = isinstance(y, (list, tuple)) and len(y) > 0 and not isinstance(
            y[0], numbers.Number) and np.ndim(y[0]) >= 1
        if panel:
            return 0.2 if len(y) >= 5 else None
        n = len(y)
        L, H = self._lookback_len(), self.horizon
        tail = int(round(0.2 * n))
        if tail >= H and n - tail >= L:
            return tail
        return n - L if n >= L + H else None

    def predict(self, y_context=None, n=None, X=None, X_future=None):
        """Forecast; covariates are accepted and ignored."""
        return super().predict(y_context, n)

    def _fit_scaled(self, train, val):
        self.fitted_ = True

    _fitted_attr = "fitted_"

    def _json_state(self):
        return {"fitted_": True}

    def _restore(self, state, tensors):
        self.fitted_ = True

    def _predict_block(self, ctx, Xc, Xf, h):
        s = self.season
        last = ctx[:, -s:]
        reps = -(-h // s)
        return np.tile(last, (1, reps, 1))[:, :h]
