"""Tensor contraction layer (Kossaifi et al., 2017).

``y = x x_1 U_1 x_2 U_2 ... x_N U_N``: every non-batch mode of an
activation tensor is reduced by a factor matrix, without flattening.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .._validation import check_int, check_shape_tuple
from ._base import (
    add_bias,
    Cost,
    FactorizedModule,
    dense_init_variance,
    init_bias_,
    kron,
    kron_cost,
    plan_program,
    register,
    relative_error,
    run_steps,
    symbols,
)

__all__ = ["TCL"]

_NOMINAL_BATCH = 32


def _check_input(shape, input_shape):
    n = len(input_shape)
    if len(shape) <= n or any(s is not None and s != t
                              for s, t in zip(shape[-n:], input_shape)):
        raise ValueError(f"input must have shape (batch, *input_shape) = (batch, "
                         f"{', '.join(map(str, input_shape))}); got {tuple(shape)}")
    lead = shape[:-n]
    if any(s is None for s in lead):
        return _NOMINAL_BATCH, True
    return math.prod(lead), False


class _ActivationLayer(FactorizedModule):
    """Shared by TCL and TRL: layers on activation tensors of a fixed
    ``input_shape``, compared with an ``nn.Linear`` on the flattened input."""

    @property
    def dense_params(self) -> int:
        """Parameters of the equivalent ``nn.Linear`` on flattened activations."""
        return self.in_features * self.out_features + (self.out_features
                                                       if self.bias is not None else 0)

    def _input_shape(self, batch_size, input_size=None):
        return (check_int(batch_size, "batch_size", min_value=1),) + self.input_shape

    def dense_flops(self, batch_size: int = 1, input_size=None) -> int:
        return 2 * batch_size * self.in_features * self.out_features


@register
class TCL(_ActivationLayer):
    """Tensor contraction layer: ``y = x x_1 U_1 ... x_N U_N`` (batch mode untouched).

    The layer is the linear map with the Kronecker-structured weight
    ``kron(U_1, ..., U_N)`` applied to the flattened activations, computed
    mode by mode (or with the rebuilt Kronecker matrix when that is
    cheaper for the input at hand).

    Parameters
    ----------
    input_shape : tuple of int
        Shape of one input sample ``(I_1, ..., I_N)`` (no batch dimension).
    rank : tuple of int
        Output shape ``(R_1, ..., R_N)``, one size per mode.
    bias : bool, default False
        Add a learnable bias of shape ``rank``.
    device, dtype : optional
    implementation : {'auto', 'factorized', 'dense'}, default 'auto'

    Attributes
    ----------
    factors : nn.ParameterList
        ``U_n`` of shape ``(R_n, I_n)``.
    bias : nn.Parameter of shape ``rank`` or None

    Examples
    --------
    >>> import torch
    >>> from tensornet.nn import TCL
    >>> tcl = TCL((16, 8, 8), rank=(8, 4, 4))
    >>> tcl(torch.randn(2, 16, 8, 8)).shape
    torch.Size([2, 8, 4, 4])
    >>> tcl.n_params, tcl.dense_params
    (192, 131072)
    """

    def __init__(self, input_shape, rank, bias=False, device=None, dtype=None, *,
                 implementation="auto"):
        factory = {"device": device, "dtype": dtype}
        super().__init__()
        self._init_base(implementation)
        self.input_shape = check_shape_tuple(input_shape, "input_shape")
        self.rank = check_shape_tuple(rank, "rank")
        if len(self.rank) != len(self.input_shape):
            raise ValueError(f"rank must give one output size per input mode "
                             f"({len(self.input_shape)} for input_shape={self.input_shape}); "
                             f"got rank={self.rank}")
        self.factors = nn.ParameterList(
            [nn.Parameter(torch.empty(r, i, **factory))
             for r, i in zip(self.rank, self.input_shape)])
        if not isinstance(bias, bool):
            raise TypeError(f"bias must be True or False; got {bias!r}")
        if bias:
            self.bias = nn.Parameter(torch.empty(self.rank, **factory))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()
        self.clear_plans()

    @property
    def in_features(self) -> int:
        return math.prod(self.input_shape)

    @property
    def out_features(self) -> int:
        return math.prod(self.rank)

    def reset_parameters(self) -> None:
        """Gaussian factors whose Kronecker product has ``nn.Linear``'s weight variance.

        An entry of ``kron(U_1, ..., U_N)`` is a product of ``N`` entries, so
        each factor gets variance ``(1 / (3 prod(input_shape)))^(1/N)``.
        """
        var = dense_init_variance(self.in_features)
        std = math.sqrt(var ** (1.0 / len(self.factors)))
        with torch.no_grad():
            for f in self.factors:
                f.normal_(0.0, std)
        init_bias_(self.bias, self.in_features)

    def _spec(self):
        return (self.input_shape, self.rank, self.bias is not None)

    @staticmethod
    def _candidates(spec, shape, cached=False):
        _, dev, _, input_shape, rank, _ = spec
        B, symbolic = _check_input(shape, input_shape)
        grad = not cached
        N = len(input_shape)
        # mode by mode with a matrix product over the last dimension each time
        c = Cost(dev, grad)
        sizes = list(input_shape)
        for n in range(N):
            rest = B * math.prod(sizes) // sizes[n]
            if n != N - 1:
                c.copy(B * math.prod(sizes))
            c.gemm(rest, sizes[n], rank[n], calls=3)
            sizes[n] = rank[n]
        cands = [(("tcl_modes", c.flops), c, "factorized")]
        # the Kronecker matrix once, then one matrix product
        c = Cost(dev, grad)
        if not cached:
            kron_cost(c, rank, input_shape)
        c.gemm(B, math.prod(input_shape), math.prod(rank), calls=3)
        flops = c.flops if not cached else kron_cost(Cost(dev), rank, input_shape).flops + c.flops
        cands.append((("tcl_kron", flops), c, "dense"))
        if not symbolic:
            xs, rs = symbols(N, 1), symbols(N, 1 + N)
            eq = f"a{xs}," + ",".join(f"{rs[n]}{xs[n]}" for n in range(N)) + f"->a{rs}"
            shapes = [(B,) + tuple(input_shape)] + [(r, i) for r, i in zip(rank, input_shape)]
            steps, c = plan_program(eq, *shapes, device_type=dev, grad=grad)
            cands.append((("tcl_plan", c.flops, steps, shapes[0]), c.call(2), "factorized"))
        return cands

    def _run(self, prog, x):
        n_modes = len(self.input_shape)
        lead = x.shape[:-n_modes]
        fs = self._list("factors")
        kind = prog[0]
        if kind == "tcl_plan":
            y = run_steps(prog[2], (x.reshape(prog[3]),) + fs)
        elif kind == "tcl_kron":
            k = self._get(self._store(fs), "kron", lambda: kron(fs))
            y = x.reshape(-1, self.in_features) @ k.T
        else:
            y = x.reshape((-1,) + self.input_shape)
            for n in range(n_modes):
                y = (y.movedim(n + 1, -1) @ fs[n].T).movedim(-1, n + 1)
        y = y.reshape(lead + self.rank)
        bias = self._param("bias")
        if bias is not None:
            y = add_bias(y, bias)
        return y

    def dense_weight(self) -> torch.Tensor:
        """The ``(prod(rank), prod(input_shape))`` weight of the equivalent linear map."""
        return kron(tuple(self.factors))

    def to_dense(self) -> nn.Sequential:
        """``Flatten -> nn.Linear -> Unflatten`` computing the same map."""
        p = self.factors[0]
        lin = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None,
                        device=p.device, dtype=p.dtype)
        with torch.no_grad():
            lin.weight.copy_(self.dense_weight())
            if self.bias is not None:
                lin.bias.copy_(self.bias.reshape(-1))
        return nn.Sequential(nn.Flatten(1), lin, nn.Unflatten(1, self.rank))

    def rank_dims(self):
        """A TCL has no internal rank (its ``rank`` is its output shape): ``()``."""
        return ()

    def extra_repr(self) -> str:
        s = f"input_shape={self.input_shape}, rank={self.rank}, bias={self.bias is not None}"
        if self.implementation != "auto":
            s += f", implementation={self.implementation!r}"
        return s

    @classmethod
    def from_factors(cls, factors, bias=None, *, implementation="auto"):
        """Build a layer from factor matrices ``U_n (R_n, I_n)`` (copied)."""
        factors = list(factors)
        if not factors or any(not isinstance(f, torch.Tensor) or f.dim() != 2 for f in factors):
            raise ValueError("factors must be a non-empty sequence of 2-D tensors (R_n, I_n)")
        ref = factors[0]
        layer = cls(tuple(int(f.shape[1]) for f in factors),
                    tuple(int(f.shape[0]) for f in factors), bias=bias is not None,
                    device=ref.device, dtype=ref.dtype, implementation=implementation)
        with torch.no_grad():
            for p, f in zip(layer.factors, factors):
                p.copy_(f)
            if bias is not None:
                layer.bias.copy_(bias.reshape(layer.rank))
        return layer

    @classmethod
    def from_dense(cls, module, input_shape, rank, *, implementation="auto", n_iter_max=100,
                   random_state=0):
        """The nearest Kronecker-structured map to a trained ``nn.Linear``.

        The weight ``W (prod(rank), prod(input_shape))`` is rearranged so that
        ``kron(U_1, ..., U_N)`` becomes a rank-1 tensor (Van Loan & Pitsianis'
        nearest Kronecker product); its best rank-1 CP approximation gives
        the factors.

        Examples
        --------
        >>> import torch
        >>> from tensornet.nn import TCL
        >>> _ = torch.manual_seed(0)
        >>> tcl = TCL((4, 6), rank=(2, 3), bias=True)
        >>> same = TCL.from_dense(tcl.to_dense()[1], (4, 6), (2, 3))
        >>> same.approximation_error < 1e-6
        True
        """
        from ..decomposition import cp
        from ._linear_base import _check_linear, _decomposition_input

        _check_linear(module, cls.__name__)
        input_shape = check_shape_tuple(input_shape, "input_shape")
        rank = check_shape_tuple(rank, "rank")
        out_f, in_f = module.weight.shape
        if math.prod(input_shape) != in_f:
            raise ValueError(f"input_shape must multiply to the layer's in_features={in_f}; got "
                             f"{input_shape}")
        if math.prod(rank) != out_f or len(rank) != len(input_shape):
            raise ValueError(f"rank must be an output shape with one size per input mode "
                             f"multiplying to out_features={out_f}; got {rank}")
        W = _decomposition_input(module.weight)
        N = len(input_shape)
        if N == 1:
            factors = [W]
        else:
            T = W.reshape(rank + input_shape)
            perm = [ax for n in range(N) for ax in (n, N + n)]
            T = T.permute(perm).reshape([r * i for r, i in zip(rank, input_shape)])
            weights, fs = cp(T, 1, n_iter_max=n_iter_max, random_state=random_state)
            lam = float(weights[0])
            scale = abs(lam) ** (1.0 / N)
            factors = [f[:, 0].reshape(r, i) * scale for f, r, i in zip(fs, rank, input_shape)]
            if lam < 0:
                factors[0] = -factors[0]
        dt, dev = module.weight.dtype, module.weight.device
        factors = [f.to(device=dev, dtype=dt) for f in factors]
        bias = None if module.bias is None else module.bias.detach()
        layer = cls.from_factors(factors, bias=bias, implementation=implementation)
        layer.approximation_error = relative_error(layer.dense_weight(), module.weight)
        return layer
