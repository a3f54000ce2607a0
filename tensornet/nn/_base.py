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

from ..contraction import contract_plan

__all__ = ["RankDim", "FactorizedModule", "balanced_factors", "resolve_feature_shapes",
           "COST_MODEL"]


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
    """Estimated time of a forward path, in FLOP-equivalents.

    ``cost = flops + alpha * elements_moved + beta * n_ops``: ``alpha`` is
    how many FLOPs the device does in the time it moves one element through
    memory, ``beta`` how many it does in the time of one operator call
    (Python + dispatch + kernel launch). A path with few large matrix
    products beats one with many small ones at equal FLOPs, and the FLOP
    count decides once the work is large. The values are rough averages of
    what recent CPUs and GPUs do (measured for this project on a 2-core x86
    server and taken from H100 specifications); they only have to rank
    paths, not predict times.
    """

    def __init__(self):
        self.alpha = {"cpu": 12.0, "cuda": 60.0}
        self.beta = {"cpu": 1.5e5, "cuda": 2.5e8}

    def __call__(self, flops: float, moved: float, n_ops: float, device_type: str) -> float:
        a = self.alpha.get(device_type, self.alpha["cuda"])
        b = self.beta.get(device_type, self.beta["cuda"])
        return float(flops) + a * float(moved) + b * float(n_ops)


#: The cost model used to choose forward paths (attributes ``alpha`` and ``beta``
#: are per device type and may be tuned).
COST_MODEL = _CostModel()


def choose(candidates, device_type: str, implementation: str = "auto"):
    """Pick the cheapest ``(program, flops, moved, n_ops, kind)`` candidate.

    ``implementation`` restricts the choice to candidates whose kind is
    ``'factorized'`` or ``'dense'``; ``'auto'`` allows both.
    """
    best = None
    for prog, flops, moved, n_ops, kind in candidates:
        if implementation != "auto" and kind != implementation:
            continue
        c = COST_MODEL(flops, moved, n_ops, device_type)
        if best is None or c < best[0]:
            best = (c, prog)
    return best[1]


# --------------------------------------------------------------------------- plan programs
def plan_program(subscripts: str, *shapes, optimize="auto"):
    """Plan a contraction and return ``(steps, flops, moved, n_ops)``.

    ``steps`` is the plan as a tuple of plain values, run by
    :func:`run_steps`.
    """
    plan = contract_plan(subscripts, *shapes, optimize=optimize)
    # The compiled steps of a ContractionPlan are read here so that they can
    # be cached as constants (torch.compile cannot trace plan building).
    if plan._direct:
        steps = (("einsum", tuple(range(len(shapes))), plan.subscripts),)
        moved = sum(math.prod(s) for s in shapes) + math.prod(plan.output_shape)
        return (steps, None), plan.flops, moved, 1
    steps, moved, n_ops = [], 0, 0
    for s in plan._steps:
        if hasattr(s, "a_shape"):
            steps.append(("pair", s.i, s.j, s.a_sum, s.b_sum, s.a_perm, s.b_perm,
                          s.a_shape, s.b_shape, s.a_t, s.b_t, s.swap, s.out_shape))
            sa, sb, so = math.prod(s.a_shape), math.prod(s.b_shape), math.prod(s.out_shape)
            moved += sa + sb + so
            n_ops += 1
            for perm, size in ((s.a_perm, sa), (s.b_perm, sb)):
                if perm is not None:
                    moved += 2 * size
                    n_ops += 1
        else:
            steps.append(("einsum", tuple(s.positions), s.equation))
            n_ops += 1
    final = plan._final_perm
    if final is not None:
        moved += 2 * math.prod(plan.output_shape)
        n_ops += 1
    return (tuple(steps), final), plan.flops, moved, n_ops


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
    """Kronecker product of ``(s_k, r_k)`` matrices -> ``(prod s_k, prod r_k)``."""
    out = factors[0]
    for f in factors[1:]:
        out = (out[:, None, :, None] * f[None, :, None, :]).reshape(
            out.shape[0] * f.shape[0], out.shape[1] * f.shape[1])
    return out


def khatri_rao_cost(sizes: Sequence[int], rank: int) -> tuple[int, int, int]:
    """``(flops, elements moved, ops)`` of :func:`khatri_rao` on ``(s_k, rank)`` factors."""
    flops = moved = ops = 0
    rows = sizes[0]
    for s in sizes[1:]:
        rows *= s
        flops += rows * rank
        moved += 2 * rows * rank
        ops += 1
    return flops, moved, ops


def kron_cost(sizes: Sequence[int], ranks: Sequence[int]) -> tuple[int, int, int]:
    """``(flops, elements moved, ops)`` of :func:`kron` on ``(s_k, r_k)`` factors."""
    flops = moved = ops = 0
    rows, cols = sizes[0], ranks[0]
    for s, r in zip(sizes[1:], ranks[1:]):
        rows *= s
        cols *= r
        flops += rows * cols
        moved += 2 * rows * cols
        ops += 1
    return flops, moved, ops


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
    """Rescale tensors whose product (in any multilinear sense) is fixed so their norms are equal."""
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


def _member_index(size: int, blocks: int, idx: torch.Tensor) -> torch.Tensor:
    if blocks == 1:
        return idx
    return (torch.arange(blocks, device=idx.device)[:, None] * size + idx[None, :]).reshape(-1)


class FactorizedModule(nn.Module):
    """Base class of the tensorized layers: program cache, sizes, FLOPs, rank groups.

    Subclasses define ``_spec()`` (a tuple of plain values describing the
    layer's static configuration), the static method
    ``_make_program(spec, shape)`` (choose the forward path for one input
    shape), ``_run(program, x)`` (execute it), ``dense_weight()``,
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
        self._spec_cache = None  # set by clear_plans() at the end of the subclass __init__

    # ----------------------------------------------------------------- programs
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

    def _program(self, shape) -> tuple:
        key = tuple(int(s) for s in shape)
        prog = _program_for(self.spec, key)
        self._programs[shape] = prog
        return prog

    def forward(self, x):
        if torch.compiler.is_compiling():
            # Under torch.compile the sizes may be symbolic and cannot be handed to the
            # planner (dynamo cannot tell them apart from static ones), so the path is
            # one that works for every size, chosen for nominal sizes (see _make_program).
            prog = _compiled_program(self.spec, x.dim())
        else:
            prog = self._programs.get(x.shape)
            if prog is None:
                prog = self._program(x.shape)
        return self._run(prog, x)

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)
        self.clear_plans()
        return out

    def clear_plans(self) -> None:
        """Forget the cached forward paths (they are re-planned on the next call)."""
        self._programs = {}
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

    def path(self, input_shape) -> str:
        """Name of the forward path chosen for an input of ``input_shape``."""
        return _program_for(self.spec, tuple(int(s) for s in input_shape))[0]

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
        if isinstance(keep, (str, bytes)) or not isinstance(keep, Sequence):
            raise TypeError("keep must be a sequence with one entry (indices or None) per rank "
                            f"dimension ({len(dims)}); got {type(keep).__name__}")
        if len(keep) != len(dims):
            raise ValueError(f"keep must have one entry per rank dimension ({len(dims)}: "
                             f"{[d.name for d in dims]}); got {len(keep)}")
        params = {n: p.detach() for n, p in self.named_parameters()}
        for rd, k in zip(dims, keep):
            if k is None:
                continue
            idx = torch.as_tensor(k)
            if idx.dtype == torch.bool:
                if idx.shape != (rd.size,):
                    raise ValueError(f"keep for rank {rd.name!r} as a mask must have length "
                                     f"{rd.size}; got shape {tuple(idx.shape)}")
                idx = idx.nonzero().flatten()
            idx = idx.to(torch.long).flatten()
            if idx.numel() == 0:
                raise ValueError(f"keep for rank {rd.name!r} must keep at least one group "
                                 "(a rank of 0 removes the layer's output)")
            if int(idx.min()) < 0 or int(idx.max()) >= rd.size:
                raise ValueError(f"keep for rank {rd.name!r} must hold indices in [0, "
                                 f"{rd.size}); got {idx.tolist()}")
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


def _program_for(spec, shape):
    key = (spec, shape)
    prog = _GLOBAL_PROGRAMS.get(key)
    if prog is None:
        if len(_GLOBAL_PROGRAMS) > 4096:
            _GLOBAL_PROGRAMS.clear()
        prog = _REGISTRY[spec[0]]._make_program(spec, shape)
        _GLOBAL_PROGRAMS[key] = prog
    return prog


@torch.compiler.assume_constant_result
def _compiled_program(spec, ndim):
    return _program_for(spec, (None,) * ndim)
