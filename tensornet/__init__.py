"""tensornet: tensor methods for machine learning.

Contraction with planned, cached paths; CP / Tucker / tensor-train
decompositions returning TensorLy's tensor classes; tensorized PyTorch
layers; spectral topic models; TT-LSTM forecasting; Bregman rank pruning.

The backend follows the data: NumPy, PyTorch and CuPy inputs run on the
matching TensorLy backend in a thread-local context, and importing or
calling tensornet never changes TensorLy's global backend.

Sub-packages (``decomposition``, ``nn``, ``optim``, ``topics``,
``forecast``, ``datasets``, ``distributed``) are imported on first use so
that ``import tensornet`` stays light.
"""

import importlib

from .contraction import (
    ContractionPlan,
    clear_plan_cache,
    contract,
    contract_plan,
    multilinear,
    plan_cache_info,
)

__version__ = "0.1.0"

_SUBPACKAGES = (
    "datasets",
    "decomposition",
    "distributed",
    "forecast",
    "nn",
    "optim",
    "report",
    "robust",
    "topics",
)

__all__ = [
    "ContractionPlan",
    "clear_plan_cache",
    "contract",
    "contract_plan",
    "multilinear",
    "plan_cache_info",
    "__version__",
    *_SUBPACKAGES,
]


def __getattr__(name):
    if name in _SUBPACKAGES:
        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module 'tensornet' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
