"""Linear layer with a TT-matrix weight: :class:`TTLinear`."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..decomposition._common import resolve_tt_rank
from ._base import (
    add_bias,
    balance_norms,
    check_rank_type,
    Cost,
    dense_init_variance,
    init_bias_,
    plan_program,
    RankDim,
    register,
    relative_error,
    resolve_feature_shapes,
    run_steps,
    symbols,
)
from ._linear_base import _check_linear, _check_tensor_list, _decomposition_input, _FactorizedLinear

__all__ = ["TTLinear"]

#: blocks at least this wide are multiplied with one batched product; narrower
#: ones are folded into a single GEMM through a transposed copy
_WIDE = 16


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
                # (without autograd the weight is kept between calls)
                c = C() if cached else \
                    TTLinear._merge_cost(C(), groups, in_shape, out_shape, ranks).copy(M * N)
                c.gemm(B, N, M, calls=2)
                cands.append((("tt_dense", merge_flops + 2 * B * N * M, two_d, groups), c,
                               "dense"))
                continue
            for direction in ("right", "left"):
                c = C().add(merge)
                for P, A, K, Q in TTLinear._sweep_steps(B, n, m, r, direction):
                    if direction == "left":
                        c.copy(A * K)
                    if Q == 1:
                        c.gemm(P, K, A, calls=3)
                    elif Q >= _WIDE:
                        c.gemm(A, K, Q, batch=P, shared="a", calls=4)
                    else:
                        c.copy(P * K * Q).gemm(P * Q, K, A, calls=3).copy(P * A * Q)
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
        """``(P, A, K, Q)`` of every sweep step: core ``(A, K)`` times ``P`` blocks ``(K, Q)``."""
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
        cores = self._list("cores")
        if len(groups) == len(cores):
            return cores
        return self._get(self._store(cores), groups,
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
            elif Q >= _WIDE:
                t3 = t.reshape(-1, K, Q)
                t = torch.bmm(g.expand(t3.shape[0], -1, -1), t3)
            else:  # narrow blocks: matmul folds them into one GEMM through a transpose
                t = torch.matmul(g, t.reshape(-1, K, Q))
        return t.reshape(-1, self.out_features)

    def _run(self, prog, x):
        kind, _, two_d = prog[:3]
        bias = self._param("bias")
        if kind == "tt_sweep":
            y = self._sweep(x, prog[3], self._grouped_cores(prog[4]))
            if bias is not None:
                y = add_bias(y, bias)
        elif kind == "tt_plan":
            y = run_steps(prog[3], (x.reshape(prog[4]),) + self._grouped_cores(prog[5]))
            y = y.reshape(-1, self.out_features)
            if bias is not None:
                y = add_bias(y, bias)
        else:
            cores = self._list("cores")
            w = self._get(self._store(cores), "w", lambda: self._merge(cores).reshape(
                self.out_features, self.in_features))
            x2 = x if two_d else x.reshape(-1, self.in_features)
            y = nn.functional.linear(x2, w, bias)
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
