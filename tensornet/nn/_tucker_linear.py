"""Linear layer with a Tucker weight: :class:`TuckerLinear`."""

from __future__ import annotations

import math

import torch
from torch import nn

from ._base import (
    add_bias,
    check_rank_type,
    Cost,
    dense_init_variance,
    init_bias_,
    kron,
    kron_cost,
    plan_program,
    RankDim,
    register,
    relative_error,
    resolve_feature_shapes,
    run_steps,
    symbols,
)
from ._linear_base import (
    _check_linear,
    _check_tensor_list,
    resolve_tucker_layer_rank,
    _decomposition_input,
    _FactorizedLinear,
)

__all__ = ["TuckerLinear"]


@register
class TuckerLinear(_FactorizedLinear):
    """Linear layer with a Tucker weight.

    ``W.reshape(out_shape + in_shape) = core x_1 U_1 ... x_p U_p x_{p+1} V_1 ... x_{p+q} V_q``
    with a core of shape ``(*out_ranks, *in_ranks)``, output factors
    ``U_k (out_shape[k], out_ranks[k])`` and input factors
    ``V_l (in_shape[l], in_ranks[l])``. In matrix form
    ``W = kron(U) @ core.reshape(prod(out_ranks), prod(in_ranks)) @ kron(V).T``.

    Parameters
    ----------
    in_features, out_features : int
    rank : int, tuple or float
        One rank per mode of ``out_shape + in_shape`` (a tuple, taken
        literally), an int cap applied to every mode, or a float in (0, 1]:
        the fraction of the dense weight's parameters to spend.
    in_shape, out_shape, bias, device, dtype, n_modes, implementation
        As in :class:`CPLinear`.

    Attributes
    ----------
    core : nn.Parameter of shape ``(*out_ranks, *in_ranks)``
    factors : nn.ParameterList
        ``(out_shape[k], out_ranks[k])`` then ``(in_shape[l], in_ranks[l])``.
    rank : tuple of int
        ``out_ranks + in_ranks``.

    Examples
    --------
    >>> import torch
    >>> from tensornet.nn import TuckerLinear
    >>> layer = TuckerLinear(64, 32, rank=2)
    >>> layer.rank
    (2, 2, 2, 2, 2, 2)
    >>> layer(torch.randn(5, 64)).shape
    torch.Size([5, 32])
    """

    def __init__(self, in_features, out_features, rank, in_shape=None, out_shape=None,
                 bias=True, device=None, dtype=None, *, n_modes=None, implementation="auto"):
        factory = {"device": device, "dtype": dtype}
        super().__init__()
        check_rank_type(rank)
        self._init_linear(in_features, out_features, in_shape, out_shape, bias, n_modes,
                          implementation, False, factory)
        shape = self.out_shape + self.in_shape
        ranks = resolve_tucker_layer_rank(shape, rank)
        self.rank = ranks
        self.core = nn.Parameter(torch.empty(ranks, **factory))
        self.factors = nn.ParameterList(
            [nn.Parameter(torch.empty(s, r, **factory)) for s, r in zip(shape, ranks)])
        self.reset_parameters()
        self.clear_plans()

    @property
    def out_ranks(self):
        return self.rank[:len(self.out_shape)]

    @property
    def in_ranks(self):
        return self.rank[len(self.out_shape):]

    def reset_parameters(self) -> None:
        """Orthonormal factors and a Gaussian core giving ``nn.Linear``'s weight variance.

        With orthonormal ``(s_k, r_k)`` factors the mean of ``Var(W_ij)``
        over the entries is ``sigma_core^2 * prod(r_k / s_k)``; the core's
        ``sigma`` makes it ``1 / (3 in_features)``.
        """
        var = dense_init_variance(self._fan_in())
        shape = self.out_shape + self.in_shape
        core_var = var * math.prod(shape) / math.prod(self.rank)
        with torch.no_grad():
            for f in self.factors:
                nn.init.orthogonal_(f)
            self.core.normal_(0.0, math.sqrt(core_var))
        init_bias_(self.bias, self._fan_in())

    def _spec(self):
        return (self.in_features, self.out_features, self.in_shape, self.out_shape,
                self.out_ranks, self.in_ranks, self.bias is not None)

    @staticmethod
    def _candidates(spec, shape, cached=False):
        _, dev, _, N, M, in_shape, out_shape, out_ranks, in_ranks, has_bias = spec
        C = lambda: Cost(dev, grad=not cached)  # noqa: E731
        B, symbolic = _FactorizedLinear._batch(N, shape)
        two_d = len(shape) == 2
        Pn, Pm = math.prod(in_ranks), math.prod(out_ranks)

        def chain(merge_in, merge_out, cached):
            # x @ K_in @ G.T @ K_out.T with products of factors merged ahead of time
            # (those, and the Kronecker matrices, are kept between calls when ``cached``)
            c = C()
            if not cached or (merge_in and merge_out):
                kron_cost(c, in_shape, in_ranks)
                kron_cost(c, out_shape, out_ranks)
            if merge_in and merge_out:
                if N * Pn * Pm + N * Pm * M <= M * Pm * Pn + M * Pn * N:
                    c.gemm(N, Pn, Pm).gemm(M, Pm, N)
                else:
                    c.gemm(M, Pm, Pn).gemm(M, Pn, N)
                return c.gemm(B, N, M, calls=2)
            if merge_in:
                if not cached:
                    c.gemm(N, Pn, Pm)
                return c.gemm(B, N, Pm).gemm(B, Pm, M, calls=2)
            if merge_out:
                if not cached:
                    c.gemm(M, Pm, Pn)
                return c.gemm(B, N, Pn).gemm(B, Pn, M, calls=2)
            return c.gemm(B, N, Pn).gemm(B, Pn, Pm).gemm(B, Pm, M, calls=2)

        cands = []
        for mi in (False, True):
            for mo in (False, True):
                flops = chain(mi, mo, False).flops
                cands.append((("tucker_chain", flops, two_d, mi, mo), chain(mi, mo, cached),
                              "dense" if (mi and mo) else "factorized"))
        if symbolic:  # the planned contraction below is specific to one batch size
            return cands
        # mode-by-mode contraction of the input (no Kronecker matrices)
        p, q = len(out_shape), len(in_shape)
        lo, li, ro, ri = symbols(p, 1), symbols(q, 1 + p), symbols(p, 1 + p + q), \
            symbols(q, 1 + 2 * p + q)
        eq = (f"a{li}," + ",".join(f"{li[l]}{ri[l]}" for l in range(q)) + f",{ro}{ri},"
              + ",".join(f"{lo[k]}{ro[k]}" for k in range(p)) + f"->a{lo}")
        shapes = [(B,) + tuple(in_shape)] + [(s, r) for s, r in zip(in_shape, in_ranks)] \
            + [tuple(out_ranks) + tuple(in_ranks)] + [(s, r) for s, r in zip(out_shape,
                                                                              out_ranks)]
        steps, cost = plan_program(eq, *shapes, device_type=dev, grad=not cached)
        if has_bias:
            cost.elementwise(B * M, B * M + M)
        cands.append((("tucker_plan", cost.flops, two_d, steps, shapes[0]), cost.call(2),
                      "factorized"))
        return cands

    def _run(self, prog, x):
        kind, _, two_d = prog[:3]
        fs = self._list("factors")
        core = self._param("core")
        bias = self._param("bias")
        p = len(self.out_shape)
        if kind == "tucker_plan":
            xr = x.reshape(prog[4])
            y = run_steps(prog[3], (xr,) + fs[p:] + (core,) + fs[:p])
            y = y.reshape(-1, self.out_features)
            if bias is not None:
                y = add_bias(y, bias)
            return self._finish(y, x, two_d)
        merge_in, merge_out = prog[3], prog[4]
        Pm, Pn = math.prod(self.out_ranks), math.prod(self.in_ranks)
        g = core.reshape(Pm, Pn)
        store = self._store(fs + (core,))
        k_in = self._get(store, "k_in", lambda: kron(fs[p:]))
        k_out = self._get(store, "k_out", lambda: kron(fs[:p]))
        x2 = x if two_d else x.reshape(-1, self.in_features)
        if merge_in and merge_out:
            w = self._chain_weight(k_out, g, k_in)
            y = nn.functional.linear(x2, w, bias)
        else:
            if merge_in:
                z = x2 @ self._get(store, "k_in_g", lambda: k_in @ g.T)
            else:
                z = x2 @ k_in
                if not merge_out:
                    z = z @ g.T
            right = self._get(store, "k_out_g", lambda: k_out @ g) if merge_out else k_out
            y = z @ right.T if bias is None else torch.addmm(bias, z, right.T)
        return self._finish(y, x, two_d)

    @staticmethod
    def _chain_weight(k_out, g, k_in):
        M, Pm = k_out.shape
        N, Pn = k_in.shape
        if N * Pn * Pm + N * Pm * M <= M * Pm * Pn + M * Pn * N:
            return k_out @ (k_in @ g.T).T
        return (k_out @ g) @ k_in.T

    def dense_weight(self) -> torch.Tensor:
        """The weight ``(out_features, in_features)`` rebuilt from core and factors."""
        fs = tuple(self.factors)
        p = len(self.out_shape)
        g = self.core.reshape(math.prod(self.out_ranks), math.prod(self.in_ranks))
        return self._chain_weight(kron(fs[:p]), g, kron(fs[p:]))

    def rank_dims(self):
        """One rank dimension per mode: ``'out0'``, ..., ``'in0'``, ...

        Group ``r`` of mode ``k`` is column ``r`` of ``factors[k]`` together
        with slice ``r`` of ``core`` along dimension ``k``.
        """
        p = len(self.out_shape)
        names = [f"out{k}" for k in range(p)] + [f"in{l}" for l in range(len(self.in_shape))]
        return tuple(RankDim(n, r, ((f"factors.{k}", 1, 1), ("core", k, 1)))
                     for k, (n, r) in enumerate(zip(names, self.rank)))

    def _with_parameters(self, params):
        p = len(self.out_shape)
        fs = [params[f"factors.{k}"] for k in range(len(self.factors))]
        return type(self).from_factors(params["core"], fs[:p], fs[p:], bias=params.get("bias"),
                                       implementation=self.implementation)

    @classmethod
    def from_factors(cls, core, out_factors, in_factors, bias=None, *, implementation="auto"):
        """Build a layer from a core ``(*out_ranks, *in_ranks)`` and factors (copied).

        Examples
        --------
        >>> import torch
        >>> from tensornet.nn import TuckerLinear
        >>> layer = TuckerLinear(64, 32, rank=(2, 2, 2, 3, 3, 3))
        >>> core = layer.core.detach()[:, :, :, :2]           # drop rank 2 of mode 3
        >>> fs = [f.detach() for f in layer.factors]
        >>> fs[3] = fs[3][:, :2]
        >>> TuckerLinear.from_factors(core, fs[:3], fs[3:]).rank
        (2, 2, 2, 2, 3, 3)
        """
        if not isinstance(core, torch.Tensor):
            raise TypeError(f"core must be a torch.Tensor; got {type(core).__name__}")
        out_factors = _check_tensor_list(out_factors, "out_factors", 2)
        in_factors = _check_tensor_list(in_factors, "in_factors", 2)
        fs = list(out_factors) + list(in_factors)
        ranks = tuple(int(f.shape[1]) for f in fs)
        if tuple(core.shape) != ranks:
            raise ValueError(f"core must have shape {ranks} (the factors' column counts, "
                             f"output modes first); got {tuple(core.shape)}")
        out_shape = tuple(int(f.shape[0]) for f in out_factors)
        in_shape = tuple(int(f.shape[0]) for f in in_factors)
        layer = cls(math.prod(in_shape), math.prod(out_shape), ranks, in_shape=in_shape,
                    out_shape=out_shape, bias=bias is not None, device=core.device,
                    dtype=core.dtype, implementation=implementation)
        with torch.no_grad():
            layer.core.copy_(core)
            for p, f in zip(layer.factors, fs):
                p.copy_(f)
            if bias is not None:
                layer.bias.copy_(bias)
        return layer

    @classmethod
    def from_dense(cls, module, rank, *, in_shape=None, out_shape=None, n_modes=None,
                   implementation="auto", method="hooi", n_iter_max=100, random_state=0):
        """Convert a trained ``nn.Linear`` by a Tucker decomposition (HOOI) of its reshaped weight.

        Parameters
        ----------
        module : nn.Linear
        rank : int, tuple or float
            As in the constructor.
        method : {'hooi', 'hosvd'}, default 'hooi'
            See :func:`tensornet.decomposition.tucker`.

        Examples
        --------
        >>> import torch
        >>> from tensornet.nn import TuckerLinear
        >>> _ = torch.manual_seed(0)
        >>> layer = TuckerLinear.from_dense(torch.nn.Linear(64, 32), rank=0.5)
        >>> layer.n_params < 64 * 32 * 0.5 + 32
        True
        """
        from ..decomposition import tucker

        _check_linear(module, cls.__name__)
        out_f, in_f = module.weight.shape
        in_shape, out_shape = resolve_feature_shapes(in_f, out_f, in_shape, out_shape, n_modes)
        shape = out_shape + in_shape
        rank = resolve_tucker_layer_rank(shape, rank)
        W = _decomposition_input(module.weight)
        core, factors = tucker(W.reshape(shape), rank, method=method, n_iter_max=n_iter_max,
                               random_state=random_state)
        dt, dev = module.weight.dtype, module.weight.device
        core = core.to(device=dev, dtype=dt)
        factors = [f.to(device=dev, dtype=dt) for f in factors]
        p = len(out_shape)
        bias = module.bias.detach() if module.bias is not None else None
        layer = cls.from_factors(core, factors[:p], factors[p:], bias=bias,
                                 implementation=implementation)
        layer.approximation_error = relative_error(layer.dense_weight(), module.weight)
        return layer
