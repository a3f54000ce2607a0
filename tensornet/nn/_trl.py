"""Tensor regression layer (Kossaifi et al., JMLR 2020).

``y[b, o] = <x[b], W[..., o]> + bias[o]``: a linear map from activation
tensors ``(I_1, ..., I_N)`` to ``out_features`` outputs whose weight tensor
``W (I_1, ..., I_N, out_features)`` is held in Tucker, CP or TT form and
applied without flattening the activations.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import nn

from .._validation import check_int, check_option, check_shape_tuple
from ..decomposition._common import resolve_cp_rank, resolve_tt_rank
from ._base import (
    check_rank_type,
    add_bias,
    Cost,
    FactorizedModule,
    RankDim,
    balance_norms,
    dense_init_variance,
    init_bias_,
    khatri_rao,
    khatri_rao_cost,
    kron,
    kron_cost,
    plan_program,
    register,
    relative_error,
    run_steps,
    symbols,
)
from ._linear_base import resolve_tucker_layer_rank
from ._tcl import _ActivationLayer, _check_input

__all__ = ["TRL"]

_FACTORIZATIONS = ("tucker", "cp", "tt")


@register
class TRL(_ActivationLayer):
    """Tensor regression layer with a low-rank (Tucker, CP or TT) weight tensor.

    Parameters
    ----------
    input_shape : tuple of int
        Shape of one input sample ``(I_1, ..., I_N)`` (no batch dimension).
    out_features : int
    rank : int, tuple or float
        Rank of the weight tensor ``(I_1, ..., I_N, out_features)``:
        Tucker — one rank per mode (``N + 1`` entries) or an int cap;
        CP — the number of components; TT — the ``N`` inner ranks or an
        int cap. A float in (0, 1] is the fraction of the dense weight's
        parameters to spend.
    factorization : {'tucker', 'cp', 'tt'}, default 'tucker'
    bias : bool, default True
    device, dtype : optional
    implementation : {'auto', 'factorized', 'dense'}, default 'auto'

    Attributes
    ----------
    factors : nn.ParameterList
        Tucker: ``(I_n, R_n)`` for every input mode, then ``(out_features,
        R_out)``; CP: ``(I_n, R)`` then ``(out_features, R)``.
    core : nn.Parameter (Tucker only)
        Shape ``(R_1, ..., R_N, R_out)``.
    cores : nn.ParameterList (TT only)
        ``(r_{k-1}, I_k, r_k)`` for the input modes, then
        ``(r_N, out_features, 1)``.
    rank : tuple of int

    Examples
    --------
    >>> import torch
    >>> from tensornet.nn import TRL
    >>> trl = TRL((8, 4, 4), 10, rank=(4, 2, 2, 10))
    >>> trl(torch.randn(3, 8, 4, 4)).shape
    torch.Size([3, 10])
    >>> trl.n_params < trl.dense_params
    True
    """

    def __init__(self, input_shape, out_features, rank, factorization="tucker", bias=True,
                 device=None, dtype=None, *, implementation="auto"):
        factory = {"device": device, "dtype": dtype}
        super().__init__()
        check_rank_type(rank)
        self._init_base(implementation)
        self.input_shape = check_shape_tuple(input_shape, "input_shape")
        self.out_features = check_int(out_features, "out_features", min_value=1)
        self.factorization = check_option(factorization, "factorization", _FACTORIZATIONS)
        shape = self.input_shape + (self.out_features,)
        if rank is None:
            raise TypeError("rank must be an int, a tuple of ints or a float in (0, 1]; got None")
        if self.factorization == "tucker":
            self.rank = resolve_tucker_layer_rank(shape, rank)
            self.core = nn.Parameter(torch.empty(self.rank, **factory))
            self.factors = nn.ParameterList(
                [nn.Parameter(torch.empty(s, r, **factory)) for s, r in zip(shape, self.rank)])
        elif self.factorization == "cp":
            if isinstance(rank, (tuple, list)) and len(rank) == 1:
                rank = rank[0]
            self.rank = (resolve_cp_rank(shape, rank),)
            self.factors = nn.ParameterList(
                [nn.Parameter(torch.empty(s, self.rank[0], **factory)) for s in shape])
        else:
            self.rank = resolve_tt_rank(shape, rank)
            r = self.rank
            self.cores = nn.ParameterList(
                [nn.Parameter(torch.empty(r[k], s, r[k + 1], **factory))
                 for k, s in enumerate(shape)])
        if not isinstance(bias, bool):
            raise TypeError(f"bias must be True or False; got {bias!r}")
        if bias:
            self.bias = nn.Parameter(torch.empty(self.out_features, **factory))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()
        self.clear_plans()

    @property
    def in_features(self) -> int:
        return math.prod(self.input_shape)

    def reset_parameters(self) -> None:
        """An initialisation with the weight variance of ``nn.Linear(prod(input_shape), out)``.

        Tucker: orthonormal factors and a Gaussian core; CP: Gaussian factors
        with ``R sigma^(2 D) = 1/(3 fan_in)``; TT: Gaussian cores with
        ``prod(r_k) prod(sigma_k^2) = 1/(3 fan_in)``.
        """
        var = dense_init_variance(self.in_features)
        shape = self.input_shape + (self.out_features,)
        with torch.no_grad():
            if self.factorization == "tucker":
                for f in self.factors:
                    nn.init.orthogonal_(f)
                self.core.normal_(0.0, math.sqrt(var * math.prod(shape) / math.prod(self.rank)))
            elif self.factorization == "cp":
                D = len(self.factors)
                std = (var / self.rank[0]) ** (1.0 / (2 * D))
                for f in self.factors:
                    f.normal_(0.0, std)
            else:
                std = math.sqrt((var / math.prod(self.rank)) ** (1.0 / len(self.cores)))
                for c in self.cores:
                    c.normal_(0.0, std)
        init_bias_(self.bias, self.in_features)

    def _spec(self):
        return (self.factorization, self.input_shape, self.out_features, self.rank,
                self.bias is not None)

    @staticmethod
    def _weight_subscripts(factorization, N, ranks):
        """einsum of the weight tensor (modes ``x...`` then ``o``) and of its parts."""
        xs, o = symbols(N, 1), symbols(1, 1 + N)
        if factorization == "tucker":
            rs = symbols(N + 1, 2 + N)
            parts = [f"{xs[n]}{rs[n]}" for n in range(N)] + [f"{rs}", f"{o}{rs[N]}"]
        elif factorization == "cp":
            r = symbols(1, 2 + N)
            parts = [f"{xs[n]}{r}" for n in range(N)] + [f"{o}{r}"]
        else:
            rs = symbols(N + 2, 2 + N)
            modes = xs + o
            parts = [f"{rs[k]}{modes[k]}{rs[k + 1]}" for k in range(N + 1)]
        return xs, o, parts

    @staticmethod
    def _part_shapes(factorization, input_shape, out_features, ranks):
        shape = tuple(input_shape) + (out_features,)
        N = len(input_shape)
        if factorization == "tucker":
            return [(s, r) for s, r in zip(input_shape, ranks[:N])] + [tuple(ranks),
                                                                       (out_features, ranks[N])]
        if factorization == "cp":
            return [(s, ranks[0]) for s in shape]
        return [(ranks[k], s, ranks[k + 1]) for k, s in enumerate(shape)]

    @staticmethod
    def _candidates(spec, shape, cached=False):
        _, dev, _, factorization, input_shape, O, ranks, has_bias = spec
        B, symbolic = _check_input(shape, input_shape)
        grad = not cached
        N = len(input_shape)
        In = math.prod(input_shape)
        xs, o, parts = TRL._weight_subscripts(factorization, N, ranks)
        pshapes = TRL._part_shapes(factorization, input_shape, O, ranks)
        cands = []
        # rebuild W (prod(I), O) once, then one matrix product
        wsteps, c = plan_program(",".join(parts) + f"->{xs}{o}", *pshapes, device_type=dev,
                                 grad=grad)
        c.gemm(B, In, O, calls=2)
        cands.append((("trl_dense", c.flops, wsteps), c, "dense"))
        if factorization == "cp":
            R = ranks[0]
            c = Cost(dev, grad)
            if not cached:
                khatri_rao_cost(c, input_shape, R)
            c.gemm(B, In, R).gemm(B, R, O, calls=3)
            cands.append((("trl_cp", c.flops), c, "factorized"))
        elif factorization == "tucker":
            P = math.prod(ranks[:N])
            c = Cost(dev, grad)
            if not cached:
                kron_cost(c, input_shape, ranks[:N])
            c.gemm(B, In, P).gemm(B, P, ranks[N]).gemm(B, ranks[N], O, calls=3)
            cands.append((("trl_tucker", c.flops), c, "factorized"))
        if not symbolic:
            eq = f"a{xs}," + ",".join(parts) + f"->a{o}"
            steps, c = plan_program(eq, (B,) + tuple(input_shape), *pshapes, device_type=dev,
                                    grad=grad)
            cands.append((("trl_plan", c.flops, steps, (B,) + tuple(input_shape)),
                          c.call(2), "factorized"))
        return cands

    def _parts(self):
        if self.factorization == "tucker":
            fs = self._list("factors")
            return fs[:-1] + (self._param("core"), fs[-1])
        if self.factorization == "cp":
            return self._list("factors")
        return self._list("cores")

    def _run(self, prog, x):
        N = len(self.input_shape)
        lead = x.shape[:-N]
        kind = prog[0]
        if kind == "trl_plan":
            y = run_steps(prog[2], (x.reshape(prog[3]),) + self._parts())
        elif kind == "trl_dense":
            w = run_steps(prog[2], self._parts()).reshape(self.in_features, self.out_features)
            y = x.reshape(-1, self.in_features) @ w
        elif kind == "trl_cp":
            fs = self._list("factors")
            kr = self._get(self._store(fs), "kr", lambda: khatri_rao(fs[:-1]))
            y = (x.reshape(-1, self.in_features) @ kr) @ fs[-1].T
        else:
            fs = self._list("factors")
            k = self._get(self._store(fs), "kron", lambda: kron(fs[:-1]))
            core = self._param("core").reshape(-1, self.rank[-1])
            y = ((x.reshape(-1, self.in_features) @ k) @ core) @ fs[-1].T
        y = y.reshape(lead + (self.out_features,))
        bias = self._param("bias")
        if bias is not None:
            y = add_bias(y, bias)
        return y

    def weight_tensor(self) -> torch.Tensor:
        """The weight tensor ``(I_1, ..., I_N, out_features)`` rebuilt from its factors."""
        N = len(self.input_shape)
        xs, o, parts = self._weight_subscripts(self.factorization, N, self.rank)
        shapes = [tuple(p.shape) for p in self._parts()]
        steps = plan_program(",".join(parts) + f"->{xs}{o}", *shapes)[0]
        return run_steps(steps, self._parts())

    def dense_weight(self) -> torch.Tensor:
        """The ``(out_features, prod(input_shape))`` weight of the equivalent ``nn.Linear``."""
        return self.weight_tensor().reshape(self.in_features, self.out_features).T

    def to_dense(self) -> nn.Sequential:
        """``Flatten -> nn.Linear`` computing the same map."""
        p = next(self.parameters())
        lin = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None,
                        device=p.device, dtype=p.dtype)
        with torch.no_grad():
            lin.weight.copy_(self.dense_weight())
            if self.bias is not None:
                lin.bias.copy_(self.bias)
        return nn.Sequential(nn.Flatten(1), lin)

    def rank_dims(self):
        """Rank groups as in the linear layers of the same factorization.

        Tucker: ``'in0'`` ... ``'in{N-1}'``, ``'out'`` (column ``r`` of the
        factor and core slice ``r``); CP: ``'cp'``; TT: ``'bond1'`` ...
        ``'bond{N}'``.
        """
        N = len(self.input_shape)
        if self.factorization == "tucker":
            names = [f"in{n}" for n in range(N)] + ["out"]
            return tuple(RankDim(nm, r, ((f"factors.{k}", 1, 1), ("core", k, 1)))
                         for k, (nm, r) in enumerate(zip(names, self.rank)))
        if self.factorization == "cp":
            return (RankDim("cp", self.rank[0],
                            tuple((f"factors.{k}", 1, 1) for k in range(N + 1))),)
        return tuple(RankDim(f"bond{k}", self.rank[k],
                             ((f"cores.{k - 1}", 2, 1), (f"cores.{k}", 0, 1)))
                     for k in range(1, N + 1))

    def _with_parameters(self, params):
        bias = params.get("bias")
        if self.factorization == "tucker":
            fs = [params[f"factors.{k}"] for k in range(len(self.factors))]
            return type(self).from_factors("tucker", fs, core=params["core"], bias=bias,
                                           implementation=self.implementation)
        if self.factorization == "cp":
            fs = [params[f"factors.{k}"] for k in range(len(self.factors))]
            return type(self).from_factors("cp", fs, bias=bias,
                                           implementation=self.implementation)
        cores = [params[f"cores.{k}"] for k in range(len(self.cores))]
        return type(self).from_factors("tt", cores, bias=bias,
                                       implementation=self.implementation)

    def extra_repr(self) -> str:
        s = (f"input_shape={self.input_shape}, out_features={self.out_features}, "
             f"rank={self.rank}, factorization={self.factorization!r}, "
             f"bias={self.bias is not None}")
        if self.implementation != "auto":
            s += f", implementation={self.implementation!r}"
        return s

    @classmethod
    def from_factors(cls, factorization, factors, core=None, bias=None, *,
                     implementation="auto"):
        """Build a layer from its parts (copied).

        Parameters
        ----------
        factorization : {'tucker', 'cp', 'tt'}
        factors : sequence of tensors
            Tucker/CP: ``(I_n, R_n)`` for every input mode then
            ``(out_features, R_out)``; TT: the cores ``(r_{k-1}, I_k, r_k)``,
            the last one ``(r_N, out_features, 1)``.
        core : tensor (Tucker only)
        bias : tensor of shape (out_features,) or None
        """
        factorization = check_option(factorization, "factorization", _FACTORIZATIONS)
        factors = list(factors)
        if len(factors) < 2 or any(not isinstance(f, torch.Tensor) for f in factors):
            raise ValueError("factors must hold at least two tensors (one input mode and the "
                             "output)")
        ref = factors[0]
        if factorization == "tt":
            shape = tuple(int(c.shape[1]) for c in factors)
            rank = tuple(int(c.shape[0]) for c in factors) + (int(factors[-1].shape[2]),)
        else:
            shape = tuple(int(f.shape[0]) for f in factors)
            rank = tuple(int(f.shape[1]) for f in factors)
            if factorization == "cp":
                rank = rank[:1]
            elif core is None or tuple(core.shape) != rank:
                raise ValueError(f"core must have shape {rank} (the factors' column counts); "
                                 f"got {None if core is None else tuple(core.shape)}")
        layer = cls(shape[:-1], shape[-1], rank, factorization, bias=bias is not None,
                    device=ref.device, dtype=ref.dtype, implementation=implementation)
        with torch.no_grad():
            targets = layer.cores if factorization == "tt" else layer.factors
            for p, f in zip(targets, factors):
                p.copy_(f)
            if core is not None:
                layer.core.copy_(core)
            if bias is not None:
                layer.bias.copy_(bias)
        return layer

    @classmethod
    def from_dense(cls, module, input_shape, rank, factorization="tucker", *,
                   implementation="auto", random_state=0):
        """Convert a trained ``nn.Linear`` acting on flattened activations of ``input_shape``.

        Examples
        --------
        >>> import torch
        >>> from tensornet.nn import TRL
        >>> _ = torch.manual_seed(0)
        >>> head = torch.nn.Linear(8 * 4 * 4, 10)
        >>> trl = TRL.from_dense(head, (8, 4, 4), rank=(8, 4, 4, 10))   # full ranks
        >>> trl.approximation_error < 1e-6
        True
        """
        from ..decomposition import cp, tt, tucker
        from ._linear_base import _check_linear, _decomposition_input

        _check_linear(module, cls.__name__)
        input_shape = check_shape_tuple(input_shape, "input_shape")
        factorization = check_option(factorization, "factorization", _FACTORIZATIONS)
        out_f, in_f = module.weight.shape
        if math.prod(input_shape) != in_f:
            raise ValueError(f"input_shape must multiply to the layer's in_features={in_f}; got "
                             f"{input_shape} (product {math.prod(input_shape)})")
        W = _decomposition_input(module.weight)
        T = W.T.reshape(input_shape + (out_f,))
        dt, dev = module.weight.dtype, module.weight.device
        bias = None if module.bias is None else module.bias.detach()
        conv = lambda t: t.to(device=dev, dtype=dt)  # noqa: E731
        if factorization == "tucker":
            rank = resolve_tucker_layer_rank(input_shape + (out_f,), rank)
            core, fs = tucker(T, rank, random_state=random_state)
            layer = cls.from_factors("tucker", [conv(f) for f in fs], core=conv(core),
                                     bias=bias, implementation=implementation)
        elif factorization == "cp":
            if isinstance(rank, (tuple, list)) and len(rank) == 1:
                rank = rank[0]
            if isinstance(rank, numbers.Real) and not isinstance(rank, numbers.Integral):
                rank = resolve_cp_rank(T.shape, rank)
            weights, fs = cp(T, rank, random_state=random_state)
            D = len(fs)
            norms = torch.stack([torch.linalg.vector_norm(f, dim=0) for f in fs])
            norms = torch.where(norms > 0, norms, torch.ones_like(norms))
            scale = (weights.abs() * norms.prod(0)) ** (1.0 / D)
            sign = torch.where(weights < 0, -torch.ones_like(weights), torch.ones_like(weights))
            fs = [f / norms[k] * scale * (sign if k == 0 else 1) for k, f in enumerate(fs)]
            layer = cls.from_factors("cp", [conv(f) for f in fs], bias=bias,
                                     implementation=implementation)
        else:
            est = tt(T, rank=rank, random_state=random_state)
            layer = cls.from_factors("tt", [conv(c) for c in balance_norms(list(est.factors))],
                                     bias=bias, implementation=implementation)
        layer.approximation_error = relative_error(layer.dense_weight(), module.weight)
        return layer
