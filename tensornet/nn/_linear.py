"""Linear layers whose weight is held in CP, Tucker or tensor-train (TT-matrix) form.

The weight ``W`` has the ``nn.Linear`` layout ``(out_features,
in_features)``. Both sizes are factorized, ``out_features = prod(out_shape)``
and ``in_features = prod(in_shape)`` (C order), and ``W`` reshaped to
``out_shape + in_shape`` is a low-rank tensor:

* ``CPLinear``: ``sum_r  A_1[:, r] o ... o A_p[:, r] o B_1[:, r] o ... o B_q[:, r]``;
* ``TuckerLinear``: a core ``(*out_ranks, *in_ranks)`` times one factor per mode;
* ``TTLinear``: a TT-matrix, cores ``(r_{k-1}, out_shape[k], in_shape[k], r_k)``.

Each input shape gets its own forward path, chosen by the cost model of
:mod:`tensornet.nn._base` among contracting the factors with the input
(fused matrix products or a planned contraction) and rebuilding ``W`` once
followed by one matrix product; the choice is cached on the module.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import nn

from .._validation import check_int
from ..decomposition._common import resolve_cp_rank, resolve_tt_rank, resolve_tucker_rank
from ._base import (
    add_bias,
    check_rank_type,
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
    resolve_feature_shapes,
    run_steps,
    symbols,
)

__all__ = ["CPLinear", "TuckerLinear", "TTLinear"]

#: batch size assumed when choosing a path for a symbolic batch size (torch.compile
#: with dynamic shapes); such paths work for every batch size
NOMINAL_BATCH = 32


def _check_linear(module, cls_name):
    if not isinstance(module, nn.Linear):
        raise TypeError(f"{cls_name}.from_dense expects a torch.nn.Linear; got "
                        f"{type(module).__name__}")


def _decomposition_input(weight: torch.Tensor) -> torch.Tensor:
    """The weight in the precision the decompositions run in (float64 on CPU)."""
    w = weight.detach()
    if w.device.type == "cpu" or w.dtype == torch.float64:
        return w.double()
    return w.float()


def _check_tensor_list(tensors, name, ndim):
    try:
        tensors = list(tensors)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of tensors; got {type(tensors).__name__}") \
            from None
    if not tensors:
        raise ValueError(f"{name} must hold at least one tensor; got none")
    for k, t in enumerate(tensors):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}[{k}] must be a torch.Tensor; got {type(t).__name__}")
        if t.dim() != ndim:
            raise ValueError(f"{name}[{k}] must have {ndim} dimensions; got shape "
                             f"{tuple(t.shape)}")
    return tensors


class _FactorizedLinear(FactorizedModule):
    """Common part of the factorized linear layers (sizes, bias, input handling)."""

    def _init_linear(self, in_features, out_features, in_shape, out_shape, bias, n_modes,
                     implementation, same_length, factory):
        self._init_base(implementation)
        self.in_features = check_int(in_features, "in_features", min_value=1)
        self.out_features = check_int(out_features, "out_features", min_value=1)
        self.in_shape, self.out_shape = resolve_feature_shapes(
            self.in_features, self.out_features, in_shape, out_shape, n_modes, same_length)
        if not isinstance(bias, bool):
            raise TypeError(f"bias must be True or False; got {bias!r}")
        if bias:
            self.bias = nn.Parameter(torch.empty(self.out_features, **factory))
        else:
            self.register_parameter("bias", None)

    # ----------------------------------------------------------------- common API
    @property
    def dense_params(self) -> int:
        """Parameters of the equivalent ``nn.Linear`` (weight and bias)."""
        return self.in_features * self.out_features + (self.out_features
                                                       if self.bias is not None else 0)

    def _input_shape(self, batch_size, input_size=None):
        batch_size = check_int(batch_size, "batch_size", min_value=1)
        return (batch_size, self.in_features)

    def dense_flops(self, batch_size: int = 1, input_size=None) -> int:
        """FLOPs of ``nn.Linear(in_features, out_features)`` on a batch (multiply-add = 2)."""
        batch_size = check_int(batch_size, "batch_size", min_value=1)
        return 2 * batch_size * self.in_features * self.out_features

    def to_dense(self) -> nn.Linear:
        """The equivalent ``nn.Linear`` (same device and dtype), weight rebuilt from the factors."""
        p = next(self.parameters())
        lin = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None,
                        device=p.device, dtype=p.dtype)
        with torch.no_grad():
            lin.weight.copy_(self.dense_weight())
            if self.bias is not None:
                lin.bias.copy_(self.bias)
        return lin

    def _fan_in(self):
        return self.in_features

    def _common_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"rank={self.rank}, in_shape={self.in_shape}, out_shape={self.out_shape}, "
                f"bias={self.bias is not None}")

    def extra_repr(self) -> str:
        s = self._common_repr()
        if self.implementation != "auto":
            s += f", implementation={self.implementation!r}"
        return s

    @staticmethod
    def _batch(spec_in_features, shape):
        """Batch size of an input shape, and whether it is symbolic (None under torch.compile)."""
        if len(shape) < 1 or shape[-1] not in (spec_in_features, None):
            raise ValueError(f"input must have shape (..., in_features={spec_in_features}); got "
                             f"{tuple(shape)}")
        if any(s is None for s in shape):
            return NOMINAL_BATCH, True
        return math.prod(shape[:-1]), False

    def _finish(self, y, x, two_d):
        if two_d:
            return y
        return y.reshape(x.shape[:-1] + (self.out_features,))


def _dense_fallback_moved(B, M, N):
    return B * N + M * N + B * M


# ============================================================================ CP
@register
class CPLinear(_FactorizedLinear):
    """Linear layer with a CP (canonical polyadic) weight.

    ``W.reshape(out_shape + in_shape) = sum_r A_1[:, r] o ... o B_q[:, r]``:
    the weight is a sum of ``R`` Kronecker products of vectors, i.e.
    ``W = KR(A) @ KR(B).T`` with Khatri–Rao products of the output factors
    ``A_k`` and of the input factors ``B_l``.

    Parameters
    ----------
    in_features, out_features : int
    rank : int or float
        Number of components ``R``, or a float in (0, 1]: the fraction of
        the dense weight's parameter count to spend (the largest ``R``
        that fits).
    in_shape, out_shape : tuple of int, optional
        Factorizations of the feature sizes; chosen with
        :func:`~tensornet.nn.balanced_factors` when omitted.
    bias : bool, default True
    device, dtype : optional
        Factory arguments as in ``torch.nn.Linear``.
    n_modes : int, optional
        Number of modes of automatically chosen shapes (default 3).
    implementation : {'auto', 'factorized', 'dense'}, default 'auto'
        ``'auto'`` picks per input shape between the factorized path
        (``(x @ KR(B)) @ KR(A).T``) and rebuilding ``W`` once.

    Attributes
    ----------
    factors : nn.ParameterList
        ``len(out_shape) + len(in_shape)`` matrices: ``(out_shape[k], R)``
        for the output modes, then ``(in_shape[l], R)`` for the input modes.
        Component ``r`` is column ``r`` of every factor.
    bias : nn.Parameter of shape (out_features,) or None
    rank : tuple of int
        ``(R,)``.
    approximation_error : float or None
        Relative Frobenius error of the weight after :meth:`from_dense`.

    Examples
    --------
    >>> import torch
    >>> from tensornet.nn import CPLinear
    >>> _ = torch.manual_seed(0)
    >>> layer = CPLinear(64, 32, rank=8)
    >>> layer.in_shape, layer.out_shape
    ((4, 4, 4), (4, 2, 4))
    >>> layer(torch.randn(5, 64)).shape
    torch.Size([5, 32])
    >>> layer.n_params, layer.dense_params
    (208, 2080)
    """

    def __init__(self, in_features, out_features, rank, in_shape=None, out_shape=None,
                 bias=True, device=None, dtype=None, *, n_modes=None, implementation="auto"):
        factory = {"device": device, "dtype": dtype}
        super().__init__()
        check_rank_type(rank)
        self._init_linear(in_features, out_features, in_shape, out_shape, bias, n_modes,
                          implementation, False, factory)
        if isinstance(rank, (tuple, list)) and len(rank) == 1:
            rank = rank[0]
        R = resolve_cp_rank(self.out_shape + self.in_shape, rank)
        self.rank = (R,)
        self.factors = nn.ParameterList(
            [nn.Parameter(torch.empty(s, R, **factory)) for s in self.out_shape + self.in_shape])
        self.reset_parameters()
        self.clear_plans()

    def reset_parameters(self) -> None:
        """Gaussian factors whose product has the weight variance of ``nn.Linear``.

        ``Var(W_ij) = R * sigma^(2 D)`` for ``D`` factors with i.i.d.
        entries of variance ``sigma^2``; ``sigma`` is set so that this equals
        ``1 / (3 in_features)``, the variance of ``nn.Linear``'s weights,
        which keeps the output variance of the layer it replaces.
        """
        D = len(self.factors)
        var = dense_init_variance(self._fan_in())
        std = (var / self.rank[0]) ** (1.0 / (2 * D))
        with torch.no_grad():
            for f in self.factors:
                f.normal_(0.0, std)
        init_bias_(self.bias, self._fan_in())

    def _spec(self):
        return (self.in_features, self.out_features, self.in_shape, self.out_shape,
                self.rank[0], self.bias is not None)

    @staticmethod
    def _candidates(spec, shape, cached=False):
        _, dev, _, N, M, in_shape, out_shape, R, has_bias = spec
        C = lambda: Cost(dev, grad=not cached)  # noqa: E731
        B, _ = _FactorizedLinear._batch(N, shape)
        two_d = len(shape) == 2

        def sides(cached):
            # input side: x @ KR(B) (one GEMM), or a GEMM over the last mode followed by
            # multiply-and-sum over the others (no Khatri-Rao matrix: cheaper for a small batch)
            c = C()
            if not cached:
                khatri_rao_cost(c, in_shape, R)
            ins = {"kr": c.gemm(B, N, R)}
            if len(in_shape) > 1:
                rows = B * N // in_shape[-1]
                c = C().gemm(rows, in_shape[-1], R, calls=2)
                for n in in_shape[-2::-1]:
                    c.elementwise(rows * R, rows * R + n * R, flops=rows * R, calls=2)
                    c.elementwise(rows // n * R, rows * R, flops=rows * R)
                    rows //= n
                ins["seq"] = c
            # output side: z @ KR(A).T, or outer products with all but the last factor
            # followed by one GEMM with the last
            c = C()
            if not cached:
                khatri_rao_cost(c, out_shape, R)
            outs = {"kr": c.gemm(B, R, M)}
            if len(out_shape) > 1:
                c, rows = C(), B
                for m in out_shape[:-1]:
                    c.elementwise(rows * m * R, rows * R + m * R, flops=rows * m * R, calls=3)
                    rows *= m
                c.gemm(rows, R, out_shape[-1], calls=3)
                if has_bias:
                    c.elementwise(B * M, B * M + M)
                outs["seq"] = c
            return ins, outs

        full = sides(False)
        now = sides(True) if cached else full
        cands = []
        for ik in full[0]:
            for ok in full[1]:
                flops = full[0][ik].flops + full[1][ok].flops
                cost = C().add(now[0][ik]).add(now[1][ok]).call(2)
                cands.append((("cp", flops, two_d, ik, ok), cost, "factorized"))
        c = C()
        if not cached:
            khatri_rao_cost(c, in_shape, R)
            khatri_rao_cost(c, out_shape, R)
        c.gemm(M, R, N).gemm(B, N, M, calls=2)
        flops = c.flops if not cached else khatri_rao_cost(khatri_rao_cost(
            C(), in_shape, R), out_shape, R).flops + c.flops
        cands.append((("cp_dense", flops, two_d), c, "dense"))
        return cands

    def _kr(self, side):
        fs = tuple(self.factors)
        p = len(self.out_shape)
        part = fs[:p] if side == "out" else fs[p:]
        return self._cached_product("kr_" + side, part, lambda: khatri_rao(part))

    def _run(self, prog, x):
        x2 = x if prog[2] else x.reshape(-1, self.in_features)
        if prog[0] == "cp_dense":
            w = self._kr("out") @ self._kr("in").T
            return self._finish(nn.functional.linear(x2, w, self.bias), x, prog[2])
        _, _, two_d, in_mode, out_mode = prog
        fs = tuple(self.factors)
        p, R = len(self.out_shape), self.rank[0]
        if in_mode == "kr":
            z = x2 @ self._kr("in")
        else:
            n = self.in_shape
            z = x2.reshape(-1, n[-1]) @ fs[-1]
            for l in range(len(n) - 2, -1, -1):
                z = (z.reshape(-1, n[l], R) * fs[p + l]).sum(1)
        if out_mode == "kr":
            kr_out = self._kr("out")
            y = z @ kr_out.T if self.bias is None else torch.addmm(self.bias, z, kr_out.T)
        else:
            u = z
            for k in range(p - 1):
                u = (u[:, None, :] * fs[k]).reshape(-1, R)
            y = (u @ fs[p - 1].T).reshape(-1, self.out_features)
            if self.bias is not None:
                y = add_bias(y, self.bias)
        return self._finish(y, x, two_d)

    def dense_weight(self) -> torch.Tensor:
        """The weight ``(out_features, in_features)`` rebuilt from the factors (differentiable)."""
        p = len(self.out_shape)
        fs = tuple(self.factors)
        return khatri_rao(fs[:p]) @ khatri_rao(fs[p:]).T

    def rank_dims(self):
        """One rank dimension, ``'cp'``: component ``r`` is column ``r`` of every factor."""
        return (RankDim("cp", self.rank[0],
                        tuple((f"factors.{k}", 1, 1) for k in range(len(self.factors)))),)

    def _with_parameters(self, params):
        p = len(self.out_shape)
        fs = [params[f"factors.{k}"] for k in range(len(self.factors))]
        new = type(self).from_factors(fs[:p], fs[p:], bias=params.get("bias"),
                                      implementation=self.implementation)
        return new

    @classmethod
    def from_factors(cls, out_factors, in_factors, bias=None, *, implementation="auto"):
        """Build a layer from given factors (copied).

        Parameters
        ----------
        out_factors : sequence of tensors ``(out_shape[k], R)``
        in_factors : sequence of tensors ``(in_shape[l], R)``
        bias : tensor of shape (out_features,) or None
        implementation : {'auto', 'factorized', 'dense'}

        Examples
        --------
        >>> import torch
        >>> from tensornet.nn import CPLinear
        >>> layer = CPLinear(64, 32, rank=8)
        >>> fs = [f.detach()[:, :3] for f in layer.factors]      # keep 3 components
        >>> small = CPLinear.from_factors(fs[:3], fs[3:], bias=layer.bias.detach())
        >>> small.rank
        (3,)
        """
        out_factors = _check_tensor_list(out_factors, "out_factors", 2)
        in_factors = _check_tensor_list(in_factors, "in_factors", 2)
        R = out_factors[0].shape[1]
        for name, fl in (("out_factors", out_factors), ("in_factors", in_factors)):
            for k, f in enumerate(fl):
                if f.shape[1] != R:
                    raise ValueError(f"{name}[{k}] must have R={R} columns like "
                                     f"out_factors[0]; got shape {tuple(f.shape)}")
        out_shape = tuple(int(f.shape[0]) for f in out_factors)
        in_shape = tuple(int(f.shape[0]) for f in in_factors)
        ref = out_factors[0]
        layer = cls(math.prod(in_shape), math.prod(out_shape), int(R), in_shape=in_shape,
                    out_shape=out_shape, bias=bias is not None, device=ref.device,
                    dtype=ref.dtype, implementation=implementation)
        with torch.no_grad():
            for p, f in zip(layer.factors, list(out_factors) + list(in_factors)):
                p.copy_(f)
            if bias is not None:
                layer.bias.copy_(bias)
        return layer

    @classmethod
    def from_dense(cls, module, rank, *, in_shape=None, out_shape=None, n_modes=None,
                   implementation="auto", n_iter_max=100, random_state=0):
        """Convert a trained ``nn.Linear`` by a CP decomposition of its reshaped weight.

        Parameters
        ----------
        module : nn.Linear
        rank : int or float
            As in the constructor.
        in_shape, out_shape, n_modes, implementation
            As in the constructor.
        n_iter_max : int, default 100
            ALS sweeps (:func:`tensornet.decomposition.cp`).
        random_state : int, default 0

        Returns
        -------
        CPLinear
            With ``approximation_error`` set to ``||W - W_cp|| / ||W||``.

        Examples
        --------
        >>> import torch
        >>> from tensornet.nn import CPLinear
        >>> _ = torch.manual_seed(0)
        >>> dense = torch.nn.Linear(64, 32)
        >>> layer = CPLinear.from_dense(dense, rank=16)
        >>> 0 < layer.approximation_error < 1
        True
        """
        from ..decomposition import cp

        _check_linear(module, cls.__name__)
        out_f, in_f = module.weight.shape
        in_shape, out_shape = resolve_feature_shapes(in_f, out_f, in_shape, out_shape, n_modes)
        if isinstance(rank, (tuple, list)) and len(rank) == 1:
            rank = rank[0]
        R = resolve_cp_rank(out_shape + in_shape, rank)
        W = _decomposition_input(module.weight)
        est = cp(W.reshape(out_shape + in_shape), R, n_iter_max=n_iter_max,
                 random_state=random_state)
        weights, factors = est
        D = len(factors)
        # spread the weights (and balance the column norms) over all factors
        norms = torch.stack([torch.linalg.vector_norm(f, dim=0) for f in factors])  # (D, R)
        norms = torch.where(norms > 0, norms, torch.ones_like(norms))
        scale = (weights.abs() * norms.prod(0)) ** (1.0 / D)
        sign = torch.where(weights < 0, -torch.ones_like(weights), torch.ones_like(weights))
        new = []
        for k, f in enumerate(factors):
            g = f / norms[k] * scale
            new.append(g * sign if k == 0 else g)
        dt, dev = module.weight.dtype, module.weight.device
        new = [f.to(device=dev, dtype=dt) for f in new]
        p = len(out_shape)
        bias = module.bias.detach() if module.bias is not None else None
        layer = cls.from_factors(new[:p], new[p:], bias=bias, implementation=implementation)
        layer.approximation_error = relative_error(layer.dense_weight(), module.weight)
        return layer


# ============================================================================ Tucker
def _check_tucker_tuple(rank, shape):
    ranks = tuple(rank)
    if len(ranks) != len(shape):
        raise ValueError(f"rank must have one entry per mode of out_shape + in_shape = {shape} "
                         f"({len(shape)} entries); got {len(ranks)}: {ranks}")
    for k, (r, s) in enumerate(zip(ranks, shape)):
        if isinstance(r, bool) or not isinstance(r, numbers.Integral):
            raise TypeError(f"rank[{k}] must be an int; got {r!r}")
        if r < 1 or r > s:
            raise ValueError(f"rank[{k}] must be between 1 and the mode size {s} (modes "
                             f"out_shape + in_shape = {shape}); got {r}")
    return tuple(int(r) for r in ranks)


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
        if isinstance(rank, (tuple, list)):
            ranks = _check_tucker_tuple(rank, shape)
        elif rank is None:
            raise TypeError("rank must be an int, a tuple of ints or a float in (0, 1]; got None")
        else:
            ranks = resolve_tucker_rank(shape, rank)
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
        fs = tuple(self.factors)
        p = len(self.out_shape)
        if kind == "tucker_plan":
            xr = x.reshape(prog[4])
            y = run_steps(prog[3], (xr,) + fs[p:] + (self.core,) + fs[:p])
            y = y.reshape(-1, self.out_features)
            if self.bias is not None:
                y = add_bias(y, self.bias)
            return self._finish(y, x, two_d)
        merge_in, merge_out = prog[3], prog[4]
        Pm, Pn = math.prod(self.out_ranks), math.prod(self.in_ranks)
        g = self.core.reshape(Pm, Pn)
        params = fs + (self.core,)
        k_in = self._cached_product("k_in", fs[p:], lambda: kron(fs[p:]))
        k_out = self._cached_product("k_out", fs[:p], lambda: kron(fs[:p]))
        x2 = x if two_d else x.reshape(-1, self.in_features)
        if merge_in and merge_out:
            w = self._chain_weight(k_out, g, k_in)
            y = nn.functional.linear(x2, w, self.bias)
        else:
            if merge_in:
                z = x2 @ self._cached_product("k_in_g", params, lambda: k_in @ g.T)
            else:
                z = x2 @ k_in
                if not merge_out:
                    z = z @ g.T
            right = self._cached_product("k_out_g", params, lambda: k_out @ g) \
                if merge_out else k_out
            y = z @ right.T if self.bias is None else torch.addmm(self.bias, z, right.T)
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
        if isinstance(rank, (tuple, list)):
            rank = _check_tucker_tuple(rank, shape)
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


# ============================================================================ TT
@register
class TTLinear(_FactorizedLinear):
    """Linear layer with a tensor-train (TT-matrix) weight (Novikov et al., 2015).

    ``W[(o_1..o_d), (i_1..i_d)] = G_1[:, o_1, i_1, :] @ ... @ G_d[:, o_d, i_d, :]``
    with cores ``G_k`` of shape ``(r_{k-1}, out_shape[k], in_shape[k], r_k)``
    and ``r_0 = r_d = 1`` (the layout of
    :func:`tensornet.decomposition.tt_matrix`).

    Parameters
    ----------
    in_features, out_features : int
    rank : int, tuple or float
        An int caps every bond (clipped to what each bond allows), a tuple
        gives the ``d - 1`` inner ranks (or all ``d + 1``), a float in (0, 1]
        the fraction of the dense weight's parameters to spend.
    in_shape, out_shape : tuple of int, optional
        Same length ``d`` (a mode of size 1 pads the shorter one).
    bias, device, dtype, n_modes, implementation
        As in :class:`CPLinear`.

    Attributes
    ----------
    cores : nn.ParameterList
        ``d`` tensors ``(r_{k-1}, out_shape[k], in_shape[k], r_k)``.
    rank : tuple of int
        ``(1, r_1, ..., r_{d-1}, 1)``.

    Examples
    --------
    >>> import torch
    >>> from tensornet.nn import TTLinear
    >>> layer = TTLinear(1024, 1024, rank=4)
    >>> layer.in_shape, layer.rank
    ((16, 8, 8), (1, 4, 4, 1))
    >>> [tuple(c.shape) for c in layer.cores]
    [(1, 16, 16, 4), (4, 8, 8, 4), (4, 8, 8, 1)]
    >>> round(layer.compression_ratio)
    315
    """

    def __init__(self, in_features, out_features, rank, in_shape=None, out_shape=None,
                 bias=True, device=None, dtype=None, *, n_modes=None, implementation="auto"):
        factory = {"device": device, "dtype": dtype}
        super().__init__()
        check_rank_type(rank)
        self._init_linear(in_features, out_features, in_shape, out_shape, bias, n_modes,
                          implementation, True, factory)
        merged = tuple(o * i for o, i in zip(self.out_shape, self.in_shape))
        if rank is None:
            raise TypeError("rank must be an int, a tuple of ints or a float in (0, 1]; got None")
        self.rank = resolve_tt_rank(merged, rank)
        r = self.rank
        self.cores = nn.ParameterList(
            [nn.Parameter(torch.empty(r[k], o, i, r[k + 1], **factory))
             for k, (o, i) in enumerate(zip(self.out_shape, self.in_shape))])
        self.reset_parameters()
        self.clear_plans()

    def reset_parameters(self) -> None:
        """Gaussian cores whose product has the weight variance of ``nn.Linear``.

        ``Var(W_ij) = prod_k r_k * prod_k sigma_k^2`` (inner ranks); every core
        gets the same ``sigma_k`` so that this is ``1 / (3 in_features)``.
        """
        var = dense_init_variance(self._fan_in())
        d = len(self.cores)
        std = math.sqrt((var / math.prod(self.rank)) ** (1.0 / d))
        with torch.no_grad():
            for c in self.cores:
                c.normal_(0.0, std)
        init_bias_(self.bias, self._fan_in())

    def _spec(self):
        return (self.in_features, self.out_features, self.in_shape, self.out_shape, self.rank,
                self.bias is not None)

    @staticmethod
    def _subscripts(d):
        b, o, i, r = "a", symbols(d, 1), symbols(d, 1 + d), symbols(d + 1, 1 + 2 * d)
        cores = [f"{r[k]}{o[k]}{i[k]}{r[k + 1]}" for k in range(d)]
        return b, o, i, cores

    @staticmethod
    def _groupings(d):
        """Every split of the cores ``0..d-1`` into runs of neighbours, as ``((start, stop), ...)``.

        A run of several cores is merged into one core before the input is
        contracted (a batch-independent cost): fewer, larger matrix products.
        """
        out = []
        for mask in range(2 ** (d - 1)):
            cuts = [k + 1 for k in range(d - 1) if mask >> k & 1]
            bounds = [0] + cuts + [d]
            out.append(tuple(zip(bounds[:-1], bounds[1:])))
        return out

    @staticmethod
    def _grouped(groups, in_shape, out_shape, ranks):
        n = tuple(math.prod(in_shape[a:b]) for a, b in groups)
        m = tuple(math.prod(out_shape[a:b]) for a, b in groups)
        r = tuple(ranks[a] for a, _ in groups) + (ranks[-1],)
        return n, m, r

    @staticmethod
    def _merge_cost(c, groups, in_shape, out_shape, ranks):
        for a, b in groups:
            rows, cols = ranks[a] * out_shape[a] * in_shape[a], ranks[a + 1]
            for k in range(a + 1, b):
                nxt = out_shape[k] * in_shape[k] * ranks[k + 1]
                c.gemm(rows, cols, nxt, calls=2)
                c.copy(rows * nxt)
                rows, cols = rows * out_shape[k] * in_shape[k], ranks[k + 1]
        return c

    @staticmethod
    def _candidates(spec, shape, cached=False):
        _, dev, _, N, M, in_shape, out_shape, ranks, has_bias = spec
        C = lambda: Cost(dev, grad=not cached)  # noqa: E731
        B, symbolic = _FactorizedLinear._batch(N, shape)
        two_d = len(shape) == 2
        d = len(in_shape)
        cands = []
        for groups in TTLinear._groupings(d):
            n, m, r = TTLinear._grouped(groups, in_shape, out_shape, ranks)
            merge = C() if cached and len(groups) < d else \
                TTLinear._merge_cost(C(), groups, in_shape, out_shape, ranks)
            merge_flops = TTLinear._merge_cost(Cost(dev), groups, in_shape, out_shape,
                                               ranks).flops
            if len(groups) == 1:  # every core merged: the dense weight, then one GEMM
                c = TTLinear._merge_cost(C(), groups, in_shape, out_shape, ranks)
                c.copy(M * N).gemm(B, N, M, calls=2)
                cands.append((("tt_dense", c.flops, two_d, groups), c, "dense"))
                continue
            for direction in ("right", "left"):
                c = C().add(merge)
                for P, A, K, Q in TTLinear._sweep_steps(B, n, m, r, direction):
                    if direction == "left":
                        c.copy(A * K)
                    if Q == 1:
                        c.gemm(P, K, A, calls=3)
                    else:
                        c.gemm(A, K, Q, batch=P, shared="a", calls=3)
                if has_bias:
                    c.elementwise(B * M, B * M + M)
                flops = c.flops - merge.flops + merge_flops
                cands.append((("tt_sweep", flops, two_d, direction, groups), c.call(2),
                              "factorized"))
            if not symbolic:  # a planned contraction (any order) for this batch size
                b, o, i, sub = TTLinear._subscripts(len(groups))
                core_shapes = [(r[k], m[k], n[k], r[k + 1]) for k in range(len(groups))]
                x_shape = (B,) + n
                eq = f"{b}{i}," + ",".join(sub) + f"->{b}{o}"
                steps, c = plan_program(eq, x_shape, *core_shapes, device_type=dev,
                                        grad=not cached)
                if has_bias:
                    c.elementwise(B * M, B * M + M)
                flops = c.flops + merge_flops
                cands.append((("tt_plan", flops, two_d, steps, x_shape, groups),
                              c.add(merge).call(2), "factorized"))
        return cands

    @staticmethod
    def _sweep_steps(B, in_shape, out_shape, ranks, direction):
        """``(P, A, K, Q)`` of every step of a sweep: ``(A, K)`` core times ``P`` blocks ``(K, Q)``."""
        d = len(in_shape)
        n, m, r = in_shape, out_shape, ranks
        steps = []
        for k in (range(d - 1, -1, -1) if direction == "right" else range(d)):
            if direction == "right":
                steps.append((B * math.prod(n[:k]), r[k] * m[k], n[k] * r[k + 1],
                              math.prod(m[k + 1:])))
            else:
                steps.append((B * math.prod(m[:k]), m[k] * r[k + 1], r[k] * n[k],
                              math.prod(n[k + 1:])))
        return steps

    @staticmethod
    def _merge(cores):
        """One TT-matrix core ``(r_a, prod m, prod n, r_b)`` from neighbouring cores."""
        out = cores[0]
        for c in cores[1:]:
            r0, ma, na, r = out.shape
            _, m, n, r1 = c.shape
            out = (out.reshape(-1, r) @ c.reshape(r, -1)).reshape(r0, ma, na, m, n, r1)
            out = out.permute(0, 1, 3, 2, 4, 5).reshape(r0, ma * m, na * n, r1)
        return out

    def _grouped_cores(self, groups):
        cores = tuple(self.cores)
        if len(groups) == len(cores):
            return cores
        return self._cached_product(
            ("cores", groups), cores,
            lambda: tuple(self._merge(cores[a:b]) if b - a > 1 else cores[a]
                          for a, b in groups))

    def _sweep(self, x, direction, cores):
        """Contract the input with one core at a time, as (batched) matrix products, no copies.

        ``right``: from the last core to the first; the running tensor is laid
        out ``(batch, n_1..n_k, r_k, m_{k+1}..m_d)`` so that the next
        contraction (over ``n_k r_k``) is a product with the core reshaped to
        ``(r_{k-1} m_k, n_k r_k)``, batched over the leading indices. ``left``
        mirrors it from the first core.
        """
        d = len(cores)
        r = [c.shape[0] for c in cores] + [1]
        m = [c.shape[1] for c in cores]
        n = [c.shape[2] for c in cores]
        t = x
        if direction == "right":
            order = range(d - 1, -1, -1)
            tail = 1
        else:
            order = range(d)
            tail = self.in_features
        for k in order:
            if direction == "right":
                g = cores[k].reshape(r[k] * m[k], n[k] * r[k + 1])
                K, Q = n[k] * r[k + 1], tail
                tail *= m[k]
            else:
                g = cores[k].permute(1, 3, 0, 2).reshape(m[k] * r[k + 1], r[k] * n[k])
                tail //= n[k]
                K, Q = r[k] * n[k], tail
            if Q == 1:
                t = t.reshape(-1, K) @ g.T
            else:
                t = torch.matmul(g, t.reshape(-1, K, Q))
        return t.reshape(-1, self.out_features)

    def _run(self, prog, x):
        kind, _, two_d = prog[:3]
        if kind == "tt_sweep":
            y = self._sweep(x, prog[3], self._grouped_cores(prog[4]))
            if self.bias is not None:
                y = add_bias(y, self.bias)
        elif kind == "tt_plan":
            y = run_steps(prog[3], (x.reshape(prog[4]),) + self._grouped_cores(prog[5]))
            y = y.reshape(-1, self.out_features)
            if self.bias is not None:
                y = add_bias(y, self.bias)
        else:
            w = self._merge(tuple(self.cores)).reshape(self.out_features, self.in_features)
            x2 = x if two_d else x.reshape(-1, self.in_features)
            y = nn.functional.linear(x2, w, self.bias)
        return self._finish(y, x, two_d)

    def dense_weight(self) -> torch.Tensor:
        """The weight ``(out_features, in_features)`` rebuilt from the cores."""
        return self._merge(tuple(self.cores)).reshape(self.out_features, self.in_features)

    def rank_dims(self):
        """One rank dimension per inner bond: ``'bond1'`` ... ``'bond{d-1}'``.

        Group ``r`` of bond ``k`` is ``cores[k-1][..., r]`` together with
        ``cores[k][r, ...]``.
        """
        return tuple(RankDim(f"bond{k}", self.rank[k],
                             ((f"cores.{k - 1}", 3, 1), (f"cores.{k}", 0, 1)))
                     for k in range(1, len(self.cores)))

    def _with_parameters(self, params):
        cores = [params[f"cores.{k}"] for k in range(len(self.cores))]
        return type(self).from_factors(cores, bias=params.get("bias"),
                                       implementation=self.implementation)

    @classmethod
    def from_factors(cls, cores, bias=None, *, implementation="auto"):
        """Build a layer from TT-matrix cores ``(r_{k-1}, out_k, in_k, r_k)`` (copied).

        Examples
        --------
        >>> import torch
        >>> from tensornet.nn import TTLinear
        >>> layer = TTLinear(64, 64, rank=4)
        >>> cores = [c.detach() for c in layer.cores]
        >>> cores[0], cores[1] = cores[0][..., :2], cores[1][:2]   # cut bond 1 to rank 2
        >>> TTLinear.from_factors(cores).rank
        (1, 2, 4, 1)
        """
        cores = _check_tensor_list(cores, "cores", 4)
        if cores[0].shape[0] != 1 or cores[-1].shape[-1] != 1:
            raise ValueError("cores: the first core's first dimension and the last core's last "
                             "dimension must be 1; got core shapes "
                             f"{[tuple(c.shape) for c in cores]}")
        for k in range(1, len(cores)):
            if cores[k].shape[0] != cores[k - 1].shape[-1]:
                raise ValueError(f"cores[{k - 1}] and cores[{k}] have mismatched ranks "
                                 f"{cores[k - 1].shape[-1]} and {cores[k].shape[0]}")
        out_shape = tuple(int(c.shape[1]) for c in cores)
        in_shape = tuple(int(c.shape[2]) for c in cores)
        ranks = tuple(int(c.shape[0]) for c in cores) + (1,)
        ref = cores[0]
        layer = cls(math.prod(in_shape), math.prod(out_shape), ranks, in_shape=in_shape,
                    out_shape=out_shape, bias=bias is not None, device=ref.device,
                    dtype=ref.dtype, implementation=implementation)
        with torch.no_grad():
            for p, c in zip(layer.cores, cores):
                p.copy_(c)
            if bias is not None:
                layer.bias.copy_(bias)
        return layer

    @classmethod
    def from_dense(cls, module, rank, *, in_shape=None, out_shape=None, n_modes=None,
                   implementation="auto", random_state=0):
        """Convert a trained ``nn.Linear`` by a TT-matrix SVD of its weight.

        The cores are rescaled to equal norms (the product is unchanged),
        which suits fine-tuning better than TT-SVD's left-orthonormal cores.

        Examples
        --------
        >>> import torch
        >>> from tensornet.nn import TTLinear
        >>> _ = torch.manual_seed(0)
        >>> layer = TTLinear.from_dense(torch.nn.Linear(64, 64), rank=16)  # full rank: exact
        >>> layer.approximation_error < 1e-5
        True
        """
        from ..decomposition import tt_matrix

        _check_linear(module, cls.__name__)
        out_f, in_f = module.weight.shape
        in_shape, out_shape = resolve_feature_shapes(in_f, out_f, in_shape, out_shape, n_modes,
                                                     same_length=True)
        W = _decomposition_input(module.weight)
        ttm = tt_matrix(W, in_shape, out_shape, rank=rank, random_state=random_state)
        dt, dev = module.weight.dtype, module.weight.device
        cores = [c.to(device=dev, dtype=dt) for c in balance_norms(list(ttm.factors))]
        bias = module.bias.detach() if module.bias is not None else None
        layer = cls.from_factors(cores, bias=bias, implementation=implementation)
        layer.approximation_error = relative_error(layer.dense_weight(), module.weight)
        return layer
