"""Shared machinery of the tensorized layers.

* feature-size factorizations (``balanced_factors``),
* the cost model that picks a forward path per input shape,
* "programs": the chosen forward path of one input shape as a tuple of
  plain Python values (strings, ints, tuples), so that it can be cached in a
  dict on the module (a cheap lookup on the hot path) and handed to
  ``torch.compile`` as a constant,
* :class:`FactorizedModule`, the base class holding the program cache,
  parameter counts, FLOP counts and the rank-group interface used for
  pruning (:class:`RankDim`, ``rank_dims``, ``rank_group_norms``,
  ``select_ranks``).
"""

from __future__ import annotations

import math
import numbers
from typing import Any, NamedTuple, Sequence

import torch
from torch import nn

from ..contraction import contract_plan, MatmulStep

__all__ = ["RankDim", "FactorizedModule", "Cost", "balanced_factors",
           "resolve_feature_shapes", "COST_MODEL"]


# --------------------------------------------------------------------------- shapes
def _prime_factors(n: int) -> list[int]:
    out, p = [], 2
    while p * p <= n:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1
    if n > 1:
        out.append(n)
    return out


def _ordered_factorizations(n: int, k: int, lo: int = 1):
    """All non-decreasing tuples of ``k`` factors >= lo multiplying to ``n``."""
    if k == 1:
        if n >= lo:
            yield (n,)
        return
    d = lo
    while d ** k <= n:
        if n % d == 0:
            for rest in _ordered_factorizations(n // d, k - 1, d):
                yield (d,) + rest
        d += 1


def balanced_factors(n: int, n_modes: int) -> tuple[int, ...]:
    """Split ``n`` into ``n_modes`` factors that are as equal as possible.

    Factors of 1 appear only when ``n`` has fewer than ``n_modes`` prime
    factors. The largest factors are placed at the two ends (which is where
    a tensor train has rank 1, so it keeps TT layers small).

    Examples
    --------
    >>> balanced_factors(1024, 3)
    (16, 8, 8)
    >>> balanced_factors(784, 3)
    (14, 7, 8)
    >>> balanced_factors(10, 3)
    (5, 1, 2)
    """
    if n < 1 or n_modes < 1:
        raise ValueError(f"balanced_factors needs n >= 1 and n_modes >= 1; got {n}, {n_modes}")
    n_real = min(n_modes, max(1, len(_prime_factors(n))))
    best = None
    for f in _ordered_factorizations(n, n_real):
        score = (sum(math.log(x) ** 2 for x in f), max(f))
        if best is None or score < best[0]:
            best = (score, f)
    factors = sorted(best[1] + (1,) * (n_modes - n_real))
    # largest at the ends, smallest in the middle: x0 <= x1 <= ... -> (x_-1, x_-3, ..., x_-4, x_-2)
    left, right = [], []
    for i, f in enumerate(reversed(factors)):
        (left if i % 2 == 0 else right).append(f)
    return tuple(left + right[::-1])


def _check_feature_shape(shape, n, name, features_name):
    if shape is None:
        return None
    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        shape = tuple(shape)
    except TypeError:
        raise TypeError(f"{name} must be a tuple of positive ints, got {shape!r}") from None
    if not shape or any(isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1
                        for s in shape):
        raise ValueError(f"{name} must be a non-empty tuple of positive ints, got {shape!r}")
    shape = tuple(int(s) for s in shape)
    if math.prod(shape) != n:
        raise ValueError(f"{name} must multiply to {features_name}={n}; got {name}={shape} "
                         f"with product {math.prod(shape)}")
    return shape


def resolve_feature_shapes(in_features: int, out_features: int, in_shape=None, out_shape=None,
                           n_modes: int | None = None, same_length: bool = False):
    """Check or choose the factorizations of the input and output sizes.

    Parameters
    ----------
    in_features, out_features : int
    in_shape, out_shape : tuple of int or None
        Given shapes must multiply to the feature sizes; missing ones are
        chosen with :func:`balanced_factors`.
    n_modes : int or None
        Number of modes of chosen shapes (default: the length of a given
        shape, else 3; fewer when a size has fewer prime factors, unless
        ``same_length``).
    same_length : bool
        Both shapes must have the same length (TT-matrix), padding with 1.
    """
    in_shape = _check_feature_shape(in_shape, in_features, "in_shape", "in_features")
    out_shape = _check_feature_shape(out_shape, out_features, "out_shape", "out_features")
    if n_modes is None:
        given = in_shape or out_shape
        n_modes = len(given) if given is not None else 3
    else:
        if isinstance(n_modes, bool) or not isinstance(n_modes, numbers.Integral) or n_modes < 1:
            raise ValueError(f"n_modes must be a positive int, got {n_modes!r}")
        n_modes = int(n_modes)

    def choose(n):
        f = balanced_factors(n, n_modes)
        if not same_length:
            f = tuple(x for x in f if x > 1) or (1,)
        return f

    if in_shape is None:
        in_shape = choose(in_features)
    if out_shape is None:
        out_shape = choose(out_features)
    if same_length and len(in_shape) != len(out_shape):
        raise ValueError("in_shape and out_shape must have the same number of modes for a "
                         f"TT-matrix (one input and one output mode per core); got "
                         f"in_shape={in_shape} and out_shape={out_shape}")
    return in_shape, out_shape


# --------------------------------------------------------------------------- cost model
class _CostModel:
    """Constants of the cost model that ranks forward paths (per device type).

    The estimated time of a path, in FLOP-equivalents, is the sum over its
    steps of a roofline term, ``max(flops, alpha * elements_moved * pen)``,
    plus ``beta`` per operator call (Python, dispatch and launch overhead)
    and ``delta`` per small matrix inside a batched matrix product. ``pen``
    is ``max(1, 16 / n)`` for a matrix product whose output rows have ``n <
    16`` elements (vector units then run mostly empty). ``alpha`` is how
    many FLOPs the device does in the time it moves one element through
    memory. The values were measured on the 2-core x86 server this project
    is developed on (single-thread MKL, PyTorch 2.x eager) and taken from
    H100 specifications for CUDA; they only have to rank paths correctly,
    not predict times, and may be tuned through :data:`COST_MODEL`.
    """

    def __init__(self):
        self.alpha = {"cpu": 20.0, "cuda": 60.0}
        self.beta = {"cpu": 1.0e5, "cuda": 2.5e8}
        self.delta = {"cpu": 5.0e3, "cuda": 0.0}
        self.narrow = {"cpu": 16, "cuda": 1}

    def params(self, device_type):
        d = device_type if device_type in self.alpha else "cuda"
        return self.alpha[d], self.beta[d], self.delta[d], self.narrow[d]


#: The cost model used to choose forward paths.
COST_MODEL = _CostModel()


class Cost:
    """Accumulated cost estimate of a forward path on one device type.

    Attributes
    ----------
    flops : int
        Floating-point operations (a multiply-add counts 2).
    units : float
        Estimated time in FLOP-equivalents (see :class:`_CostModel`).
    """

    __slots__ = ("flops", "units", "_p", "_g")

    def __init__(self, device_type: str, grad: bool = False):
        self.flops = 0
        self.units = 0.0
        self._p = COST_MODEL.params(device_type)
        # with autograd, the backward pass is part of the cost: a matrix product costs
        # about three, a broadcast product (whose backward reduces over the broadcast
        # dimensions) about five, a copy two forward passes
        self._g = grad

    def gemm(self, m: int, k: int, n: int, batch: int = 1, calls: int = 1, shared: str = ""):
        """A (batched) matrix product ``(m, k) @ (k, n)``; ``shared`` names an operand
        (``'a'`` or ``'b'``) that is the same for every matrix of the batch."""
        alpha, beta, delta, narrow = self._p
        f = 2 * batch * m * k * n
        moved = batch * m * n + (m * k if "a" in shared else batch * m * k) \
            + (k * n if "b" in shared else batch * k * n)
        pen = max(1.0, narrow / max(n, 1))
        units = max(float(f), alpha * moved * pen)
        if batch > 1:
            units += delta * batch * pen * pen
        if self._g:
            units *= 3
            calls *= 2.5
            if batch > 1 and shared:  # the shared operand's gradient is summed over the batch
                units += 2 * alpha * batch * (m * k if "a" in shared else k * n)
        self.flops += f
        self.units += units + beta * calls
        return self

    def elementwise(self, n_out: int, n_in: int, flops: int = 0, calls: int = 1):
        """An elementwise / broadcast / reduction operation."""
        alpha, beta, _, _ = self._p
        self.flops += flops
        # a fresh output is allocated and written: about twice the cost per element of
        # streaming a matrix operand through a GEMM
        g = (5, 2.5) if self._g else (1, 1)
        self.units += g[0] * max(float(flops), 2 * alpha * n_out + alpha * n_in) \
            + g[1] * beta * calls
        return self

    def op(self, flops: int, moved: int, calls: int = 1):
        """Any other operation (e.g. a convolution): roofline of its FLOPs and memory traffic."""
        alpha, beta, _, _ = self._p
        self.flops += flops
        g = (3, 2.5) if self._g else (1, 1)
        self.units += g[0] * max(float(flops), alpha * moved) + g[1] * beta * calls
        return self

    def copy(self, n: int, calls: int = 1):
        """A permuted copy of ``n`` elements."""
        alpha, beta, _, _ = self._p
        g = (2, 2.5) if self._g else (1, 1)
        self.units += g[0] * 2.5 * alpha * n + g[1] * beta * calls
        return self

    def call(self, calls: int = 1):
        """Operator calls that move no data (views, reshapes)."""
        self.units += self._p[1] * calls * (2.5 if self._g else 1)
        return self

    def add(self, other: "Cost"):
        self.flops += other.flops
        self.units += other.units
        return self


def choose(candidates, device_type: str = "cpu", implementation: str = "auto"):
    """Pick the cheapest ``(program, cost, kind)`` candidate.

    ``implementation`` restricts the choice to candidates whose kind is
    ``'factorized'`` or ``'dense'``; ``'auto'`` allows both.
    """
    best = None
    for prog, cost, kind in candidates:
        if implementation != "auto" and kind != implementation:
            continue
        if best is None or cost.units < best[0]:
            best = (cost.units, prog)
    return best[1]


def khatri_rao_cost(cost: Cost, sizes: Sequence[int], rank: int) -> Cost:
    """Add the cost of :func:`khatri_rao` on ``(s_k, rank)`` factors."""
    rows = sizes[0]
    for s in sizes[1:]:
        cost.elementwise(rows * s * rank, rows * rank + s * rank, flops=rows * s * rank,
                         calls=3)
        rows *= s
    return cost


def kron_cost(cost: Cost, sizes: Sequence[int], ranks: Sequence[int]) -> Cost:
    """Add the cost of :func:`kron` on ``(s_k, r_k)`` factors."""
    rows, cols = sizes[0], ranks[0]
    for s, r in zip(sizes[1:], ranks[1:]):
        cost.gemm(rows * cols, 1, s * r, calls=3)
        cost.copy(rows * cols * s * r, calls=2)
        rows, cols = rows * s, cols * r
    return cost


# --------------------------------------------------------------------------- plan programs
def plan_program(subscripts: str, *shapes, device_type: str = "cpu", grad: bool = False,
                 optimize="auto"):
    """Plan a contraction; return ``(program, cost)``.

    ``program`` is the plan as a tuple of plain values, run by
    :func:`run_steps`; ``cost`` a :class:`Cost`.
    """
    plan = contract_plan(subscripts, *shapes, optimize=optimize)
    cost = Cost(device_type, grad)
    # The compiled steps of the ContractionPlan (its public ``program``) are
    # copied into plain tuples so that they can be cached as constants
    # (torch.compile cannot trace plan building).
    program = plan.program
    if program.direct:
        steps = (("einsum", tuple(range(len(shapes))), plan.subscripts),)
        cost.elementwise(math.prod(plan.output_shape), sum(math.prod(s) for s in shapes),
                         flops=plan.flops)
        return (steps, None), cost
    steps = []
    for s in program.steps:
        if isinstance(s, MatmulStep):
            steps.append(("pair", s.i, s.j, s.a_sum, s.b_sum, s.a_perm, s.b_perm,
                          s.a_shape, s.b_shape, s.a_t, s.b_t, s.swap, s.out_shape))
            ra, ca = s.a_shape[-2:]
            rb, cb = s.b_shape[-2:]
            if s.a_t:
                ra, ca = ca, ra
            if s.b_t:
                rb, cb = cb, rb
            m, k, n = (rb, cb, ca) if s.swap else (ra, ca, cb)
            na, nb = math.prod(s.a_shape[:-2]), math.prod(s.b_shape[:-2])
            if na == nb:
                cost.gemm(m, k, n, batch=na, calls=4)
            else:
                _broadcast_gemm_cost(cost, s, m, k, n, max(na, nb))
            for perm, shp in ((s.a_perm, s.a_shape), (s.b_perm, s.b_shape)):
                if perm is not None:
                    cost.copy(math.prod(shp))
            for summed in (s.a_sum, s.b_sum):
                if summed:
                    cost.call()
        else:
            steps.append(("einsum", tuple(s.positions), s.equation))
            cost.elementwise(0, 0, calls=3)
    final = program.final_perm
    if final is not None:
        cost.copy(math.prod(plan.output_shape))
    cost.flops = plan.flops
    return (tuple(steps), final), cost


def _broadcast_gemm_cost(cost: Cost, s, m: int, k: int, n: int, batch: int) -> None:
    """Cost of a pair step whose outer batch sits on one operand only (the other is shared).

    ``torch.matmul`` folds the batched operand into one matrix and makes a
    single GEMM. When the batched operand is the left one, stored as
    ``(batch, m, k)`` rows, the fold is free. Otherwise (a transposed view on
    the left, or the batched operand on the right: ``W @ X``) it copies the
    batched operand into the folded layout, and for ``W @ X`` also copies the
    product back into ``(batch, m, n)`` order.
    """
    left_batched = (math.prod(s.b_shape[:-2]) if s.swap else math.prod(s.a_shape[:-2])) > 1
    left_t = s.b_t if s.swap else s.a_t
    right_t = s.a_t if s.swap else s.b_t
    if left_batched:
        cost.gemm(batch * m, k, n, calls=4)
        if left_t:
            cost.copy(batch * m * k)
    else:
        cost.gemm(batch * n, k, m, calls=4)
        if not right_t:
            cost.copy(batch * k * n)
        cost.copy(batch * m * n)


def run_steps(program, operands):
    """Execute a plan program from :func:`plan_program` on torch tensors."""
    steps, final = program
    work = list(operands)
    for st in steps:
        if st[0] == "pair":
            _, i, j, a_sum, b_sum, a_perm, b_perm, a_shape, b_shape, a_t, b_t, swap, out_shape = st
            a = work.pop(i)
            b = work.pop(j)
            if a_sum:
                a = a.sum(a_sum)
            if b_sum:
                b = b.sum(b_sum)
            if a_perm is not None:
                a = a.permute(a_perm)
            if b_perm is not None:
                b = b.permute(b_perm)
            a = a.reshape(a_shape)
            b = b.reshape(b_shape)
            if a_t:
                a = a.transpose(-1, -2)
            if b_t:
                b = b.transpose(-1, -2)
            out = torch.matmul(b, a) if swap else torch.matmul(a, b)
            work.append(out.reshape(out_shape))
        else:
            _, positions, equation = st
            popped = [work.pop(p) for p in positions]
            work.append(torch.einsum(equation, *popped))
    out = work[0]
    if final is not None:
        out = out.permute(final)
    return out


def symbols(n: int, start: int = 0) -> str:
    """``n`` distinct einsum letters."""
    from opt_einsum import get_symbol

    return "".join(get_symbol(start + i) for i in range(n))


# --------------------------------------------------------------------------- products
def khatri_rao(factors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Row-wise (C-order) Khatri–Rao product of ``(s_k, R)`` matrices -> ``(prod s_k, R)``."""
    out = factors[0]
    for f in factors[1:]:
        out = (out[:, None, :] * f[None, :, :]).reshape(-1, f.shape[1])
    return out


def kron(factors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Kronecker product of ``(s_k, r_k)`` matrices -> ``(prod s_k, prod r_k)``.

    Each step is an outer product (a rank-1 matrix product) followed by one
    permuted copy, whose backward pass is about twice as fast as that of
    a 4-D broadcast multiplication.
    """
    out = factors[0]
    for f in factors[1:]:
        a, r = out.shape
        b, s = f.shape
        out = (out.reshape(-1, 1) @ f.reshape(1, -1)).reshape(a, r, b, s).permute(
            0, 2, 1, 3).reshape(a * b, r * s)
    return out


def check_rank_type(rank, name: str = "rank"):
    """Reject rank values that are neither numbers nor sequences of ints (strings, None...)."""
    if isinstance(rank, (bool, str, bytes)) or rank is None or not (
            isinstance(rank, numbers.Real) or isinstance(rank, (tuple, list))):
        raise TypeError(f"{name} must be an int, a float in (0, 1] or a tuple of ints; got "
                        f"{rank!r} ({type(rank).__name__})")
    return rank


def add_bias(y: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``y + bias`` in ``y``'s dtype (under autocast ``y`` may be bf16 while ``bias`` is fp32,
    and the dense layers return the autocast dtype)."""
    return y + (bias if bias.dtype == y.dtype else bias.to(y.dtype))


# --------------------------------------------------------------------------- init helpers
def dense_init_variance(fan_in: int) -> float:
    """Variance of the weights that ``nn.Linear`` / ``nn.Conv2d`` draw at initialisation.

    ``kaiming_uniform_(a=sqrt(5))`` samples U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
    whose variance is ``1 / (3 fan_in)``.
    """
    return 1.0 / (3.0 * fan_in)


def init_bias_(bias: torch.Tensor | None, fan_in: int) -> None:
    """The bias initialisation of ``nn.Linear`` / ``nn.Conv2d``."""
    if bias is not None:
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        nn.init.uniform_(bias, -bound, bound)


def balance_norms(tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Rescale tensors whose (multilinear) product is fixed so that their norms are equal."""
    norms = [float(torch.linalg.vector_norm(t.double())) for t in tensors]
    if any(n == 0.0 or not math.isfinite(n) for n in norms):
        return list(tensors)
    g = math.exp(sum(math.log(n) for n in norms) / len(norms))
    return [t * (g / n) for t, n in zip(tensors, norms)]


def relative_error(approx: torch.Tensor, exact: torch.Tensor) -> float:
    """``||approx - exact||_F / ||exact||_F`` as a Python float (computed in float64)."""
    e = exact.detach().double()
    d = torch.linalg.vector_norm(approx.detach().double() - e)
    n = torch.linalg.vector_norm(e)
    return float(d / n) if float(n) > 0 else float(d)


# --------------------------------------------------------------------------- rank groups
class RankDim(NamedTuple):
    """One rank of a factorized layer, as the pruning code sees it.

    Attributes
    ----------
    name : str
        ``'cp'`` (CP components), ``'out0'``, ``'in1'`` ... (Tucker modes),
        ``'bond1'`` ... (TT bonds between core k-1 and core k).
    size : int
        The current rank: number of groups along this dimension.
    members : tuple of (str, int, int)
        ``(parameter_name, dim, blocks)``: the parameter (as in
        ``named_parameters()`` of the layer) and the dimension that holds
        this rank. Group ``r`` is the slice ``r`` of that dimension in every
        member; when ``blocks > 1`` the dimension holds ``blocks`` stacked
        copies (one per convolution group) and group ``r`` takes index
        ``b * size + r`` of each block ``b``.
    """

    name: str
    size: int
    members: tuple


def keep_indices(keep, dims: Sequence["RankDim"]) -> list:
    """Check ``keep`` (one entry per rank dimension: indices, a boolean mask or
    None) against ``dims``; return one index tensor (or None) per dimension."""
    if isinstance(keep, (str, bytes)) or not isinstance(keep, Sequence):
        raise TypeError("keep must be a sequence with one entry (indices or None) per rank "
                        f"dimension ({len(dims)}); got {type(keep).__name__}")
    if len(keep) != len(dims):
        raise ValueError(f"keep must have one entry per rank dimension ({len(dims)}: "
                         f"{[d.name for d in dims]}); got {len(keep)}")
    out = []
    for rd, k in zip(dims, keep):
        if k is None:
            out.append(None)
            continue
        idx = torch.as_tensor(k)
        if idx.dtype == torch.bool:
            if idx.shape != (rd.size,):
                raise ValueError(f"keep for rank {rd.name!r} as a mask must have length "
                                 f"{rd.size}; got shape {tuple(idx.shape)}")
            idx = idx.nonzero().flatten()
        idx = idx.to(torch.long).flatten()
        if idx.numel() == 0:
            raise ValueError(f"keep for rank {rd.name!r} must keep at least one component "
                             "(a rank of 0 would cut the layer in two)")
        if int(idx.min()) < 0 or int(idx.max()) >= rd.size:
            raise ValueError(f"keep for rank {rd.name!r} must hold indices in [0, "
                             f"{rd.size}); got {idx.tolist()}")
        out.append(idx)
    return out


def _member_index(size: int, blocks: int, idx: torch.Tensor) -> torch.Tensor:
    if blocks == 1:
        return idx
    return (torch.arange(blocks, device=idx.device)[:, None] * size + idx[None, :]).reshape(-1)


class FactorizedModule(nn.Module):
    """Base class of the tensorized layers: program cache, sizes, FLOPs, rank groups.

    Subclasses define ``_spec()`` (a tuple of plain values describing the
    layer's static configuration), the static method
    ``_candidates(spec, shape, cached)`` (the possible forward paths for one
    input shape with their estimated costs; ``cached`` tells whether
    products of factors are cached, as they are without autograd),
    ``_run(program, x)`` (execute a path), ``dense_weight()``,
    ``dense_params``, ``rank_dims()`` and ``_with_parameters(params)``.
    """

    #: relative Frobenius error of the weight after ``from_dense`` (None otherwise)
    approximation_error: float | None

    def _init_base(self, implementation: str) -> None:
        if implementation not in ("auto", "factorized", "dense"):
            raise ValueError("implementation must be one of 'auto', 'factorized', 'dense'; got "
                             f"{implementation!r}")
        self.implementation = implementation
        self.approximation_error = None
        self._programs: dict = {}
        self._programs_ng: dict = {}
        self._products: dict = {}
        self._products_key = None
        self._spec_cache = None  # set by clear_plans() at the end of the subclass __init__

    # ----------------------------------------------------------------- programs
    @classmethod
    def _make_program(cls, spec, shape, cached=False):
        """The cheapest of ``cls._candidates(spec, shape, cached)`` under the cost model."""
        return choose(cls._candidates(spec, shape, cached), spec[1], spec[2])

    def _device_type(self) -> str:
        for p in self.parameters():
            return p.device.type
        return "cpu"

    @property
    def spec(self) -> tuple:
        """The static configuration the forward paths depend on (plain values)."""
        if self._spec_cache is None:
            self._spec_cache = self._compute_spec()
        return self._spec_cache

    def _compute_spec(self) -> tuple:
        return (type(self).__name__, self._device_type(), self.implementation) + self._spec()

    def _program(self, shape, grad: bool) -> tuple:
        key = tuple(int(s) for s in shape)
        prog = _program_for(self.spec, key, not grad)
        (self._programs if grad else self._programs_ng)[shape] = prog
        return prog

    def _list(self, name: str) -> tuple:
        """The parameters of the ``nn.ParameterList`` ``name`` as a tuple.

        Iterating a ParameterList costs about 5 microseconds per parameter
        (attribute lookups by string index); reading its dict is ~100x faster,
        which matters for batch-1 latency. Under torch.compile the plain
        iteration is traced instead.
        """
        if torch.compiler.is_compiling():
            return tuple(getattr(self, name))
        return tuple(self._modules[name]._parameters.values())

    def _param(self, name: str):
        """Parameter ``name`` (or None) without ``nn.Module.__getattr__``'s overhead."""
        if torch.compiler.is_compiling():
            return getattr(self, name)
        return self._parameters[name]

    def _store(self, params):
        """The cache of input-independent products for this call, or None with autograd.

        Products of factors that do not depend on the input (Khatri–Rao and
        Kronecker matrices, merged cores) are rebuilt on every call when
        gradients are recorded, and kept otherwise (inference). The cache is
        emptied when any parameter's storage or version counter (which every
        in-place update, optimizer step or ``load_state_dict`` increments)
        changes.
        """
        if torch.is_grad_enabled() or torch.compiler.is_compiling():
            return None
        key = [torch.is_inference_mode_enabled()]
        for p in params:
            key.append(p._version)
            key.append(p.data_ptr())
        key = tuple(key)
        if self._products_key != key:
            self._products = {}
            self._products_key = key
        return self._products

    @staticmethod
    def _get(store, name, fn):
        """``fn()``, or its value kept in ``store`` (from :meth:`_store`)."""
        if store is None:
            return fn()
        value = store.get(name)
        if value is None:
            value = store[name] = fn()
        return value

    def forward(self, x):
        if torch.compiler.is_compiling():
            # Under torch.compile the sizes may be symbolic and cannot be handed to the
            # planner (dynamo cannot tell them apart from static ones), so the path is
            # one that works for every size, chosen for nominal sizes (see _make_program).
            prog = _compiled_program(self.spec, x.dim())
        else:
            grad = torch.is_grad_enabled()
            prog = (self._programs if grad else self._programs_ng).get(x.shape)
            if prog is None:
                prog = self._program(x.shape, grad)
        return self._run(prog, x)

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)
        self.clear_plans()
        return out

    def clear_plans(self) -> None:
        """Forget the cached forward paths (they are re-planned on the next call)."""
        self._programs = {}
        self._programs_ng = {}
        self._products = {}
        self._products_key = None
        self._spec_cache = self._compute_spec()

    def __setattr__(self, name, value):
        if name == "implementation" and "_programs" in self.__dict__:
            if value not in ("auto", "factorized", "dense"):
                raise ValueError("implementation must be one of 'auto', 'factorized', 'dense'; "
                                 f"got {value!r}")
            super().__setattr__(name, value)
            self.clear_plans()
            return
        super().__setattr__(name, value)

    def path(self, input_shape, grad: bool = True) -> str:
        """Name of the forward path chosen for an input of ``input_shape``.

        ``grad=False`` gives the path used without autograd (where products
        of factors are cached between calls).
        """
        return _program_for(self.spec, tuple(int(s) for s in input_shape), not grad)[0]

    # ----------------------------------------------------------------- sizes
    @property
    def n_params(self) -> int:
        """Number of parameters of this layer (factors, cores and bias)."""
        return sum(p.numel() for p in self.parameters())

    @property
    def compression_ratio(self) -> float:
        """Parameters of the equivalent dense layer divided by ``n_params``."""
        return self.dense_params / self.n_params

    def _input_shape(self, batch_size, input_size=None) -> tuple:
        raise NotImplementedError

    def flops(self, batch_size: int = 1, input_size=None) -> int:
        """FLOPs (a multiply-add counts 2) of one forward pass on the path chosen for this input.

        Bias additions are not counted (the dense layer has the same).
        """
        shape = self._input_shape(batch_size, input_size)
        return int(_program_for(self.spec, shape)[1])

    def dense_flops(self, batch_size: int = 1, input_size=None) -> int:
        """FLOPs of the equivalent dense layer on the same input."""
        raise NotImplementedError

    # ----------------------------------------------------------------- ranks
    def rank_dims(self) -> tuple[RankDim, ...]:
        """The layer's ranks as groups of parameter slices (see :class:`RankDim`)."""
        raise NotImplementedError

    def rank_group_norms(self) -> list[torch.Tensor]:
        """Euclidean norm of every rank group: one vector of length ``size`` per rank dimension."""
        params = dict(self.named_parameters())
        out = []
        for rd in self.rank_dims():
            sq = None
            for name, dim, blocks in rd.members:
                p = params[name]
                q = p.movedim(dim, 0)
                q = q.reshape(blocks, rd.size, -1).transpose(0, 1).reshape(rd.size, -1)
                s = (q.detach() ** 2).sum(1)
                sq = s if sq is None else sq + s
            out.append(sq.sqrt())
        return out

    def select_ranks(self, keep: Sequence[Any]):
        """A new layer of the same class keeping only some rank groups.

        Parameters
        ----------
        keep : sequence
            One entry per element of :meth:`rank_dims`: the indices of the
            groups to keep along that rank (a sequence of ints, a bool mask
            or an index tensor), or ``None`` to keep all of them.

        Returns
        -------
        FactorizedModule
            Same class, same input/output sizes and convolution settings,
            smaller ranks; a freshly built layer with these ranks has the
            same parameter names and shapes, so its ``state_dict`` loads.
        """
        dims = self.rank_dims()
        params = {n: p.detach() for n, p in self.named_parameters()}
        for rd, idx in zip(dims, keep_indices(keep, dims)):
            if idx is None:
                continue
            for name, dim, blocks in rd.members:
                p = params[name]
                params[name] = p.index_select(dim, _member_index(rd.size, blocks,
                                                                 idx.to(p.device)))
        new = self._with_parameters(params)
        new.train(self.training)
        return new

    def _with_parameters(self, params: dict):
        raise NotImplementedError


# --------------------------------------------------------------------------- program cache
_REGISTRY: dict[str, type] = {}
_GLOBAL_PROGRAMS: dict = {}


def register(cls):
    _REGISTRY[cls.__name__] = cls
    return cls


def _program_for(spec, shape, cached=False):
    key = (spec, shape, cached)
    prog = _GLOBAL_PROGRAMS.get(key)
    if prog is None:
        if len(_GLOBAL_PROGRAMS) > 4096:
            _GLOBAL_PROGRAMS.clear()
        prog = _REGISTRY[spec[0]]._make_program(spec, shape, cached)
        _GLOBAL_PROGRAMS[key] = prog
    return prog


@torch.compiler.assume_constant_result
def _compiled_program(spec, ndim):
    return _program_for(spec, (None,) * ndim)
