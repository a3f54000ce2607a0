"""Linear layer with a CP weight: :class:`CPLinear`."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..decomposition._common import resolve_cp_rank
from ._base import (
    add_bias,
    check_rank_type,
    Cost,
    dense_init_variance,
    init_bias_,
    khatri_rao,
    khatri_rao_cost,
    RankDim,
    register,
    relative_error,
    resolve_feature_shapes,
)
from ._linear_base import _check_linear, _check_tensor_list, _decomposition_input, _FactorizedLinear

__all__ = ["CPLinear"]


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
        # the rebuilt weight; without autograd it is kept between calls (one GEMM per call)
        c = C()
        if not cached:
            khatri_rao_cost(c, in_shape, R)
            khatri_rao_cost(c, out_shape, R)
            c.gemm(M, R, N)
        c.gemm(B, N, M, calls=2)
        flops = khatri_rao_cost(khatri_rao_cost(Cost(dev), in_shape, R), out_shape, R) \
            .gemm(M, R, N).gemm(B, N, M).flops
        cands.append((("cp_dense", flops, two_d), c, "dense"))
        return cands

    def _run(self, prog, x):
        x2 = x if prog[2] else x.reshape(-1, self.in_features)
        fs = self._list("factors")
        bias = self._param("bias")
        p, R = len(self.out_shape), self.rank[0]
        store = self._store(fs)
        if prog[0] == "cp_dense":
            w = self._get(store, "w", lambda: khatri_rao(fs[:p]) @ khatri_rao(fs[p:]).T)
            return self._finish(nn.functional.linear(x2, w, bias), x, prog[2])
        _, _, two_d, in_mode, out_mode = prog
        if in_mode == "kr":
            z = x2 @ self._get(store, "kr_in", lambda: khatri_rao(fs[p:]))
        else:
            n = self.in_shape
            z = x2.reshape(-1, n[-1]) @ fs[-1]
            for l in range(len(n) - 2, -1, -1):
                z = (z.reshape(-1, n[l], R) * fs[p + l]).sum(1)
        if out_mode == "kr":
            kr_out = self._get(store, "kr_out", lambda: khatri_rao(fs[:p]))
            y = z @ kr_out.T if bias is None else torch.addmm(bias, z, kr_out.T)
        else:
            u = z
            for k in range(p - 1):
                u = (u[:, None, :] * fs[k]).reshape(-1, R)
            y = (u @ fs[p - 1].T).reshape(-1, self.out_features)
            if bias is not None:
                y = add_bias(y, bias)
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
