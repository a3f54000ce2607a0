"""Lipschitz constants of feed-forward networks: a certified-style upper bound and a local estimate.

The upper bound is the product of per-layer constants (ℓ2 → ℓ2) of an
``nn.Sequential`` network, which bounds the Lipschitz constant of the
composition. Affine layers (dense, convolutional, tensorized) contribute
their spectral norm, computed by power iteration on ``W^T W`` (Lanczos) where
``W x`` is the forward pass of a bias-free float64 copy of the layer and
``W^T y`` its vector-Jacobian product. Tensorized layers run their
factorized forward (``implementation='factorized'``), so the dense weight is
never rebuilt; convolutions are treated as operators on the actual input
shape (padding and stride included). Activations, pooling and batch
normalisation contribute known constants.

The empirical estimate is the largest spectral norm of the input-output
Jacobian over given data points: a lower bound of the true constant.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import numbers
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from .._validation import check_float, check_int, check_shape_tuple
from ._evaluate import _eval_mode

__all__ = [
    "LayerLipschitz",
    "LipschitzReport",
    "empirical_lipschitz",
    "lipschitz_upper_bound",
    "operator_norm",
]

# ----------------------------------------------------------------------------- constants
# Largest |f'(x)| of smooth activations, computed on a fine float64 grid and rounded up
# (see tests/robust/test_lipschitz.py::test_activation_constants).
_GELU = 1.12891          # x Phi(x): maximum at x = sqrt(2)
_GELU_TANH = 1.12900     # tanh approximation
_SILU = 1.09984          # x sigmoid(x): maximum near x = 2.3994
_MISH = 1.08850


def _activation_constant(m: nn.Module):
    """Lipschitz constant of an elementwise activation, or None when ``m`` is not one."""
    # slopes in [0, 1] (Tanhshrink x - tanh(x): tanh^2; Softplus: a sigmoid; CELU: <= 1)
    if isinstance(m, (nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.Tanh, nn.Softsign, nn.Softplus,
                      nn.CELU, nn.Softshrink, nn.Tanhshrink)):
        return 1.0
    if isinstance(m, nn.LeakyReLU):
        return max(1.0, abs(float(m.negative_slope)))
    if isinstance(m, nn.PReLU):
        return max(1.0, float(m.weight.detach().abs().max()))
    if isinstance(m, nn.ELU):
        return max(1.0, abs(float(m.alpha)))
    if isinstance(m, nn.Sigmoid):
        return 0.25
    if isinstance(m, nn.Hardsigmoid):
        return 1.0 / 6.0
    if isinstance(m, nn.Hardswish):
        return 1.5
    if isinstance(m, nn.GELU):
        return _GELU_TANH if m.approximate == "tanh" else _GELU
    if isinstance(m, nn.SiLU):
        return _SILU
    if isinstance(m, nn.Mish):
        return _MISH
    return None


_SHAPE_ONLY = (nn.Identity, nn.Flatten, nn.Unflatten, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
               nn.AlphaDropout, nn.FeatureAlphaDropout)
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
         nn.ConvTranspose3d)
_AVG_POOL = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d,
             nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)
_MAX_POOL = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
_ADAPTIVE_MAX = (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
_BATCH_NORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)

_KNOWN = ("Linear, Conv1d/2d/3d, ConvTranspose1d/2d/3d, tensornet.nn layers (CP/Tucker/TT "
          "Linear and Conv2d, TCL, TRL), Flatten, Unflatten, Dropout (eval), Identity, ReLU, "
          "ReLU6, LeakyReLU, PReLU, ELU, CELU, GELU, SiLU, Mish, Hardtanh, Hardswish, "
          "Hardsigmoid, Tanh, Sigmoid, Softplus, Softsign, Softshrink, Tanhshrink, BatchNorm1d/2d/3d (eval, running "
          "statistics), AvgPool and AdaptiveAvgPool, MaxPool (dilation allowed) and "
          "AdaptiveMaxPool, nested nn.Sequential")


# ----------------------------------------------------------------------------- report
@dataclasses.dataclass
class LayerLipschitz:
    """The Lipschitz constant of one layer.

    Attributes
    ----------
    name : str
        Qualified name in the model (as in ``named_modules()``).
    kind : str
        Class name of the module.
    constant : float
        Its ℓ2 Lipschitz constant on the given input shape.
    method : str
        How it was obtained: ``'svd'`` (dense weight matrix), ``'power
        iteration'`` (through the layer's own forward and its adjoint;
        ``'power iteration (factorized)'`` for tensorized layers),
        ``'activation'``, ``'identity'``, ``'batch norm scale'``, ``'max pool
        overlap'`` or ``'user constant'``.
    input_shape, output_shape : tuple of int
        Shapes of one example before and after the layer.
    iterations : int or None
        Power iterations used (None for closed forms).
    residual : float or None
        Relative residual ``||A q - θ q|| / θ`` of the top Ritz pair of ``A =
        W^T W`` at the end of power iteration (None for closed forms).
    """

    name: str
    kind: str
    constant: float
    method: str
    input_shape: tuple
    output_shape: tuple
    iterations: int | None = None
    residual: float | None = None

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["input_shape"], d["output_shape"] = list(self.input_shape), list(self.output_shape)
        return d


@dataclasses.dataclass
class LipschitzReport:
    """Per-layer constants, their product (the upper bound) and an empirical estimate.

    Attributes
    ----------
    layers : list of LayerLipschitz
    upper_bound : float
        Product of the per-layer constants: a Lipschitz constant (ℓ2 → ℓ2)
        of the whole network in eval mode.
    empirical : float or None
        Largest spectral norm of the input-output Jacobian over the data
        points given (``x``); a lower bound of the true constant. None
        without data.
    empirical_mean : float or None
        Mean of the per-example Jacobian norms.
    n_points : int
        Number of data points of the estimate.
    """

    layers: list
    upper_bound: float
    empirical: float | None = None
    empirical_mean: float | None = None
    n_points: int = 0

    @property
    def ratio(self) -> float | None:
        """``upper_bound / empirical`` (how loose the bound is at the data), or None."""
        if self.empirical is None or self.empirical == 0:
            return None
        return self.upper_bound / self.empirical

    def to_dict(self) -> dict:
        """Plain numbers and strings (JSON-ready)."""
        return {"layers": [r.to_dict() for r in self.layers], "upper_bound": self.upper_bound,
                "empirical": self.empirical, "empirical_mean": self.empirical_mean,
                "n_points": self.n_points, "ratio": self.ratio}

    def __str__(self) -> str:
        rows = [("layer", "type", "constant", "method", "output shape")]
        for r in self.layers:
            rows.append((r.name, r.kind, f"{r.constant:.4g}", r.method,
                         "x".join(map(str, r.output_shape))))
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines.append(f"upper bound (product): {self.upper_bound:.4g}")
        if self.empirical is not None:
            lines.append(f"empirical (max Jacobian norm over {self.n_points} points): "
                         f"{self.empirical:.4g} (mean {self.empirical_mean:.4g}); bound / "
                         f"estimate = {self.ratio:.3g}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------- power iteration
def _lanczos(fn: Callable, shape: tuple, *, dtype, device, n_iter: int, tol: float,
             basis: int, generator: torch.Generator | None):
    """Largest singular value of the linear map ``fn`` acting on inputs of ``shape``.

    Power iteration on ``A = W^T W`` that keeps the whole Krylov subspace
    (the Lanczos method, with full reorthogonalisation and explicit restarts
    from the top Ritz vector every ``basis`` steps): every step sends one
    vector through ``fn`` (``W v``) and back through its vector-Jacobian
    product (``W^T W v``). The top Ritz value converges to ``σ_max²`` from
    below, much faster than plain power iteration when the top singular
    values are clustered (convolutions on large inputs). Stops when the
    relative residual of the top Ritz pair, ``|β_m s_m| / θ``, is at most
    ``tol``.

    Returns ``(sigma, products, residual)``.
    """
    n = math.prod(shape)
    gen_device = generator.device if generator is not None else torch.device("cpu")
    v = torch.randn(n, generator=generator, dtype=dtype, device=gen_device).to(device)
    v = v / torch.linalg.vector_norm(v)

    def apply(vec):
        x = vec.reshape((1,) + tuple(shape)).requires_grad_(True)
        with torch.enable_grad():
            y = fn(x)
            (z,) = torch.autograd.grad(y, x, grad_outputs=y.detach())   # W^T (W v)
        return z.reshape(-1).detach()

    theta, residual, products = 0.0, math.inf, 0
    m = max(2, min(basis, n))
    while products < n_iter:
        V = torch.empty((m, n), dtype=dtype, device=device)
        V[0] = v
        alphas, betas = [], []
        for j in range(m):
            w = apply(V[j])
            products += 1
            alpha = float(V[j] @ w)
            w = w - alpha * V[j] - (betas[-1] * V[j - 1] if j > 0 else 0.0)
            for _ in range(2):                                     # full reorthogonalisation
                w = w - V[:j + 1].T @ (V[:j + 1] @ w)
            beta = float(torch.linalg.vector_norm(w))
            alphas.append(alpha)
            T = torch.diag(torch.tensor(alphas, dtype=torch.float64))
            if j > 0:
                off = torch.tensor(betas, dtype=torch.float64)
                T = T + torch.diag(off, 1) + torch.diag(off, -1)
            evals, evecs = torch.linalg.eigh(T)
            theta = float(evals[-1])
            s = evecs[:, -1]
            if theta <= 0.0:
                return 0.0, products, 0.0                  # W v = 0 on the Krylov space
            residual = beta * abs(float(s[-1])) / theta
            if residual <= tol or beta <= 1e-14 * max(theta, 1e-300) or j + 1 == n \
                    or products >= n_iter:
                return math.sqrt(theta), products, residual
            if j + 1 < m:
                betas.append(beta)
                V[j + 1] = w / beta
        # restart from the top Ritz vector
        v = s.to(dtype=dtype, device=device) @ V
        v = v / torch.linalg.vector_norm(v)
    return math.sqrt(max(theta, 0.0)), products, residual


def _bias_free_copy(module: nn.Module, dtype) -> nn.Module:
    """A float64 (``dtype``) copy of an affine layer without bias, factorized path forced."""
    from ..nn._base import FactorizedModule

    m = copy.deepcopy(module)
    if isinstance(getattr(m, "bias", None), torch.Tensor):
        m.bias = None
    m = m.to(dtype)
    if isinstance(m, FactorizedModule):
        m.implementation = "factorized"        # re-plans: no path that rebuilds the weight
    m.requires_grad_(False)
    m.eval()
    return m


def operator_norm(module: nn.Module, input_shape, *, n_iter: int = 2000, tol: float = 1e-6,
                  basis: int = 100, generator: torch.Generator | None = None,
                  dtype=torch.float64) -> float:
    """Spectral norm of an affine layer's linear part as an operator on ``input_shape``.

    The layer is copied without its bias in ``dtype``; tensorized layers of
    :mod:`tensornet.nn` are forced onto their factorized forward. Power
    iteration then alternates the copy's forward (``W x``) and its
    vector-Jacobian product (``W^T y``), so the dense weight or the
    convolution matrix is never formed. The result approaches the norm
    from below and is accurate to about ``tol`` (relative residual of the
    top Ritz pair; the error of the norm is usually far smaller).

    Parameters
    ----------
    module : nn.Module
        A layer whose output is an affine function of its input (linear,
        convolutional, tensorized, average pooling ...). Not modified.
    input_shape : tuple of int
        Shape of one example (without the batch dimension), e.g. ``(784,)``
        or ``(1, 28, 28)``.
    n_iter : int, default 2000
        Maximum number of iterations.
    tol : float, default 1e-6
    basis : int, default 100
        Krylov basis size before a restart.
    generator : torch.Generator, optional
        Source of the random start.
    dtype : torch.dtype, default float64

    Returns
    -------
    float

    Examples
    --------
    >>> import torch
    >>> from tensornet.nn import TTLinear
    >>> from tensornet.robust import operator_norm
    >>> _ = torch.manual_seed(0)
    >>> layer = TTLinear(64, 32, rank=4)
    >>> s = operator_norm(layer, (64,), generator=torch.Generator().manual_seed(0))
    >>> exact = torch.linalg.matrix_norm(layer.to_dense().weight.detach().double(), ord=2)
    >>> abs(s / float(exact) - 1) < 1e-6
    True
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module; got {type(module).__name__}")
    shape = check_shape_tuple(input_shape, "input_shape")
    n_iter = check_int(n_iter, "n_iter", min_value=1)
    tol = check_float(tol, "tol", min_value=0.0, min_inclusive=False)
    basis = check_int(basis, "basis", min_value=2)
    copy_ = _bias_free_copy(module, dtype)
    device = _device_of(module)
    sigma, _, _ = _lanczos(copy_, shape, dtype=dtype, device=device, n_iter=n_iter, tol=tol,
                           basis=basis, generator=generator)
    return sigma


def _device_of(module):
    for t in list(module.parameters()) + list(module.buffers()):
        return t.device
    return torch.device("cpu")


# ----------------------------------------------------------------------------- per-module rules
def _leaves(model: nn.Module, prefix: str = ""):
    """(name, module) of a Sequential network in execution order (nested Sequentials flattened)."""
    if isinstance(model, nn.Sequential):
        for name, child in model.named_children():
            yield from _leaves(child, f"{prefix}.{name}" if prefix else name)
    else:
        yield prefix, model


def _max_pool_overlap(kernel, stride, dilation, n_dims):
    """Largest number of pooling windows one input element can fall in (per-dimension product)."""
    def tup(v):
        return (v,) * n_dims if isinstance(v, numbers.Integral) else tuple(v)

    count = 1
    for k, s, d in zip(tup(kernel), tup(stride if stride is not None else kernel), tup(dilation)):
        span = (k - 1) * d + 1
        count *= math.ceil(span / s)
    return count


def _adaptive_overlap(in_sizes, out_sizes):
    count = 1
    for n_in, n_out in zip(in_sizes, out_sizes):
        cover = [0] * n_in
        for i in range(n_out):
            lo, hi = (i * n_in) // n_out, -(-((i + 1) * n_in) // n_out)
            for j in range(lo, hi):
                cover[j] += 1
        count *= max(cover)
    return count


def _check_batch_norm(name, m):
    if isinstance(m, _BATCH_NORM) and m.running_var is None:
        raise ValueError(f"module {name!r} ({type(m).__name__}) has no running statistics "
                         "(track_running_stats=False): it normalises with batch statistics "
                         "even in eval mode and has no Lipschitz constant as a function of "
                         "one example")


def _layer_constant(name, m, in_shape, out_shape, opts, constants):
    """``(constant, method, iterations, residual)`` of one module on one input shape."""
    from ..nn._base import FactorizedModule

    for cls, value in constants.items():
        if isinstance(m, cls):
            return float(value), "user constant", None, None
    if isinstance(m, _SHAPE_ONLY):
        return 1.0, "identity", None, None
    act = _activation_constant(m)
    if act is not None:
        return act, "activation", None, None
    if isinstance(m, nn.Linear):
        w = m.weight.detach().to(torch.float64)
        return float(torch.linalg.matrix_norm(w, ord=2)), "svd", None, None
    if isinstance(m, (FactorizedModule,) + _CONV + _AVG_POOL):
        copy_ = _bias_free_copy(m, torch.float64)
        sigma, it, res = _lanczos(copy_, in_shape, dtype=torch.float64,
                                          device=_device_of(m), **opts)
        method = "power iteration (factorized)" if isinstance(m, FactorizedModule) \
            else "power iteration"
        return sigma, method, it, res
    if isinstance(m, _BATCH_NORM):
        _check_batch_norm(name, m)
        scale = 1.0 / torch.sqrt(m.running_var.detach().double() + m.eps)
        if m.weight is not None:
            scale = scale * m.weight.detach().double().abs()
        return float(scale.max()), "batch norm scale", None, None
    if isinstance(m, _MAX_POOL):
        n_dims = len(in_shape) - 1
        count = _max_pool_overlap(m.kernel_size, m.stride, m.dilation, n_dims)
        return math.sqrt(count), "max pool overlap", None, None
    if isinstance(m, _ADAPTIVE_MAX):
        count = _adaptive_overlap(in_shape[1:], out_shape[1:])
        return math.sqrt(count), "max pool overlap", None, None
    raise TypeError(f"lipschitz_upper_bound has no Lipschitz constant for module {name!r} "
                    f"({type(m).__name__}); known modules: {_KNOWN}. Pass "
                    f"constants={{{type(m).__name__}: value}} if you know one")


def _check_constants(constants):
    if constants is None:
        return {}
    if not isinstance(constants, Mapping):
        raise TypeError("constants must be a dict {module class: Lipschitz constant}; got "
                        f"{type(constants).__name__}")
    out = {}
    for cls, value in constants.items():
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise TypeError(f"constants keys must be nn.Module subclasses; got {cls!r}")
        out[cls] = check_float(value, f"constants[{cls.__name__}]", min_value=0.0)
    return out


def _resolve_shape(input_shape, x):
    if input_shape is None:
        if x is None:
            raise ValueError("input_shape must be given (the shape of one example, without the "
                             "batch dimension), or data x from which to read it")
        return tuple(int(s) for s in x.shape[1:])
    return check_shape_tuple(input_shape, "input_shape")


# ----------------------------------------------------------------------------- public functions
def lipschitz_upper_bound(model: nn.Module, input_shape: Sequence[int] | None = None,
                          x: torch.Tensor | None = None, *, n_iter: int = 2000,
                          tol: float = 1e-6, basis: int = 100,
                          generator: torch.Generator | None = None,
                          constants: Mapping | None = None) -> LipschitzReport:
    """Upper bound of a feed-forward network's ℓ2 Lipschitz constant, and a local estimate.

    For ``model = f_L ∘ ... ∘ f_1`` (an ``nn.Sequential``, nested ones
    flattened), ``Lip(model) <= Π_i Lip(f_i)``. Each factor is computed on
    the shape of the input the layer actually receives:

    * dense ``nn.Linear``: the exact spectral norm of the weight (SVD);
    * convolutions (operators on the given input shape, padding and stride
      included), average pooling and every tensorized layer of
      :mod:`tensornet.nn`: power iteration through the layer's own forward
      without bias and its adjoint (vector-Jacobian product), in float64;
      tensorized layers use their factorized forward, never the dense weight;
    * activations: their largest slope (ReLU, Tanh, Hardtanh 1; LeakyReLU
      ``max(1, |slope|)``; Sigmoid 1/4; GELU 1.129; SiLU 1.0998 ...);
    * ``Flatten``, ``Unflatten``, ``Identity``, ``Dropout`` (identity in
      eval mode): 1;
    * ``BatchNorm`` in eval mode: ``max_c |γ_c| / sqrt(var_c + eps)`` (its
      running statistics);
    * max pooling: ``sqrt(m)`` where ``m`` is the largest number of windows
      that share one input element (1 without overlap).

    The bound is for the network in eval mode. Modules not listed raise a
    ``TypeError`` naming them; give their constant with ``constants``.
    Power-iterated norms approach the exact value from below and are
    accurate to about ``tol``.

    Parameters
    ----------
    model : nn.Module
        An ``nn.Sequential`` (or a single module) of the modules above. Not
        modified; its train/eval modes are restored.
    input_shape : tuple of int, optional
        Shape of one input example without the batch dimension, e.g.
        ``(1, 28, 28)``. Read from ``x`` when omitted.
    x : Tensor of shape (B, *input_shape), optional
        Data points for the empirical estimate (:func:`empirical_lipschitz`).
    n_iter, tol, basis : power-iteration settings (see :func:`operator_norm`)
    generator : torch.Generator, optional
        Random starts of the power iterations (and of the estimate).
    constants : dict {module class: float}, optional
        Lipschitz constants of further module classes.

    Returns
    -------
    LipschitzReport
        ``layers`` (per-layer constants), ``upper_bound`` (their product),
        ``empirical`` and ``empirical_mean`` (when ``x`` is given).

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from tensornet.nn import TTLinear
    >>> from tensornet.robust import lipschitz_upper_bound
    >>> _ = torch.manual_seed(0)
    >>> g = torch.Generator().manual_seed(0)
    >>> model = nn.Sequential(TTLinear(64, 32, rank=4), nn.ReLU(), nn.Linear(32, 10))
    >>> x = torch.rand(16, 64, generator=g)
    >>> report = lipschitz_upper_bound(model, (64,), x, generator=g)
    >>> [r.method for r in report.layers]
    ['power iteration (factorized)', 'activation', 'svd']
    >>> report.upper_bound >= report.empirical
    True
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    shape = _resolve_shape(input_shape, x)
    opts = {"n_iter": check_int(n_iter, "n_iter", min_value=1),
            "tol": check_float(tol, "tol", min_value=0.0, min_inclusive=False),
            "basis": check_int(basis, "basis", min_value=2), "generator": generator}
    constants = _check_constants(constants)
    leaves = list(_leaves(model))
    layers = []
    with _eval_mode(model):
        device = _device_of(model)
        dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()),
                     torch.float32)
        probe = torch.zeros((1,) + shape, dtype=dtype, device=device)
        cur = shape
        for name, m in leaves:
            name = name or "(model)"
            _check_batch_norm(name, m)
            try:
                with torch.no_grad():
                    probe = m(probe)
            except Exception as exc:  # noqa: BLE001 - any failure means: wrong shape
                raise ValueError(f"module {name!r} ({type(m).__name__}) does not accept an "
                                 f"input of shape {cur} (input_shape={shape}): {exc}") from None
            if not isinstance(probe, torch.Tensor):
                raise TypeError(f"module {name!r} ({type(m).__name__}) returns "
                                f"{type(probe).__name__}, not a tensor: only chains of tensor "
                                "-> tensor modules are supported")
            out = tuple(int(s) for s in probe.shape[1:])
            c, method, it, res = _layer_constant(name, m, cur, out, opts, constants)
            layers.append(LayerLipschitz(name, type(m).__name__, c, method, cur, out, it, res))
            cur = out
    bound = math.prod(r.constant for r in layers)
    report = LipschitzReport(layers, bound)
    if x is not None:
        norms = empirical_lipschitz(model, x, generator=generator)
        report.empirical = float(norms.max())
        report.empirical_mean = float(norms.mean())
        report.n_points = int(norms.numel())
    return report


def _jacobian_norms_exact(model, x, n_out_max):
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        out = model(x)
        out = out.reshape(out.shape[0], -1)
        K = out.shape[1]
        if K > n_out_max:
            return None
        rows = []
        for c in range(K):
            (g,) = torch.autograd.grad(out[:, c].sum(), x, retain_graph=c < K - 1)
            rows.append(g.reshape(g.shape[0], -1))
    jac = torch.stack(rows, dim=1).double()                  # (B, K, d)
    return torch.linalg.matrix_norm(jac, ord=2)


def _jacobian_norms_power(model, x, n_iter, generator):
    gen_device = generator.device if generator is not None else torch.device("cpu")
    v = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=gen_device).to(x.device)
    B = x.shape[0]

    def unit(t):
        n = torch.linalg.vector_norm(t.reshape(B, -1), dim=1).clamp_min(1e-30)
        return t / n.reshape((B,) + (1,) * (t.ndim - 1))

    v = unit(v)
    sigma = torch.zeros(B, dtype=torch.float64, device=x.device)
    xg = x.detach().requires_grad_(True)
    for _ in range(n_iter):
        with torch.enable_grad():
            out = model(xg)
            w = torch.zeros_like(out, requires_grad=True)
            (jt_w,) = torch.autograd.grad(out, xg, grad_outputs=w, create_graph=True)
            (jv,) = torch.autograd.grad(jt_w, w, grad_outputs=v)          # J v
            (jtjv,) = torch.autograd.grad(out, xg, grad_outputs=jv.detach())  # J^T J v
        sigma = torch.linalg.vector_norm(jv.reshape(B, -1), dim=1).double()
        v = unit(jtjv.detach())
    return sigma


def empirical_lipschitz(model: nn.Module, x: torch.Tensor, *, n_iter: int = 50,
                        generator: torch.Generator | None = None, batch_size: int = 256,
                        exact_max_outputs: int = 64) -> torch.Tensor:
    """Spectral norm of the input-output Jacobian of ``model`` at every example of ``x``.

    Each value is a local Lipschitz constant of the network at that point,
    hence a lower bound of its global constant; their maximum is the usual
    empirical estimate. The model is evaluated in eval mode (modes are
    restored), where examples of a batch are independent, so one batched
    pass gives every example's Jacobian products.

    With at most ``exact_max_outputs`` outputs (e.g. class logits) the
    Jacobian is formed row by row (one vector-Jacobian product per output)
    and its norm is exact; otherwise ``n_iter`` steps of power iteration on
    ``J^T J`` with Jacobian-vector products (double backward) and
    vector-Jacobian products.

    Parameters
    ----------
    model : nn.Module
    x : Tensor of shape (B, ...)
    n_iter : int, default 50
    generator : torch.Generator, optional
    batch_size : int, default 256
        Examples per pass.
    exact_max_outputs : int, default 64

    Returns
    -------
    Tensor of shape (B,), float64

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from tensornet.robust import empirical_lipschitz
    >>> _ = torch.manual_seed(0)
    >>> lin = nn.Linear(5, 3)
    >>> norms = empirical_lipschitz(lin, torch.randn(4, 5))
    >>> bool(torch.allclose(norms, torch.linalg.matrix_norm(lin.weight.double(), ord=2)))
    True
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point torch.Tensor; got {type(x).__name__}")
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty batch (first dimension = examples); got shape "
                         f"{tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("x contains NaN or infinite values")
    n_iter = check_int(n_iter, "n_iter", min_value=1)
    batch_size = check_int(batch_size, "batch_size", min_value=1)
    exact_max_outputs = check_int(exact_max_outputs, "exact_max_outputs", min_value=0)
    device = _device_of(model)
    out = []
    with _eval_mode(model):
        for i in range(0, x.shape[0], batch_size):
            xb = x[i:i + batch_size].to(device)
            norms = _jacobian_norms_exact(model, xb, exact_max_outputs)
            if norms is None:
                norms = _jacobian_norms_power(model, xb, n_iter, generator)
            out.append(norms.detach().double().cpu())
    return torch.cat(out)
