"""Long-horizon forecasting: TT-LSTM seq2seq and baselines with one fit / predict API.

Every forecaster follows scikit-learn conventions (``fit(y, X=None,
validation=...)`` returns ``self``; ``predict(y_context=None, n=None)``
returns the forecast on the original scale; ``predict_interval(y_context=None,
coverage=0.9)`` gives split-conformal bounds per horizon step, calibrated on
held-out windows; ``AdaptiveConformal`` adapts them online to observed
errors), scales with statistics of the training split only, stops
early on a validation split, is seeded by ``random_state`` and saves / loads
without pickle.
"""

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    # forecasters
    "TTLSTMForecaster": "_neural",
    "LSTMForecaster": "_neural",
    "LinearForecaster": "_linear",
    "SeasonalNaive": "_linear",
    "BaseForecaster": "_base",
    "NotFittedError": "_base",
    "clone": "_base",
    "load": "_base",
    # evaluation
    "evaluate": "_evaluate",
    "EvaluationResult": "_evaluate",
    "rmse": "_evaluate",
    "mae": "_evaluate",
    # prediction intervals
    "conformal_quantile": "_intervals",
    "AdaptiveConformal": "_intervals",
    "adaptive_intervals": "_intervals",
    "coverage_and_width": "_intervals",
    # data helpers
    "fill_gaps": "_data",
    "calendar_features": "_data",
    "infer_season": "_data",
})
