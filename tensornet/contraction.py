"""Planned, cached tensor contraction.

Finding a contraction order and executing it are separate steps (as in
opt_einsum):

* :func:`contract_plan` finds the pairwise order with opt_einsum once and
  compiles every pairwise step into one batched matrix product with
  precomputed permutations and reshapes (no per-call parsing, no per-call
  ``tensordot`` bookkeeping). The resulting :class:`ContractionPlan` is
  reusable on any backend and costs a few microseconds per step to call.
* :func:`contract` is ``einsum`` with a plan cache keyed on the
  subscripts, the operand shapes and the ``optimize`` option; the plan
  depends on nothing else, so one plan serves every dtype and backend.
* :func:`multilinear` evaluates a tensor as a multilinear form,
  ``T(u, v, .)``.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import numbers
from typing import Any, NamedTuple, Sequence

import opt_einsum
from opt_einsum import paths as _oe_paths

from ._backend import array_backend, backend_name, ops_for

__all__ = ["contract", "contract_plan", "ContractionPlan", "PlanProgram", "MatmulStep",
           "EinsumStep", "multilinear", "plan_cache_info", "clear_plan_cache", "OPTIMIZE_OPTIONS"]

logger = logging.getLogger(__name__)

#: Names accepted by ``optimize`` (opt_einsum's path finders).
OPTIMIZE_OPTIONS = tuple(sorted(_oe_paths._PATH_OPTIONS))

_PLAN_CACHE_SIZE = 4096
_EXHAUSTIVE_STEPS = 8
_SHORT_RUN_PENALTY = 32.0


def _prod(xs) -> int:
    return math.prod(xs) if xs else 1


# --------------------------------------------------------------------------- public view
class MatmulStep(NamedTuple):
    """One pairwise step of a :class:`PlanProgram`: a (batched) matrix product.

    Pop operand ``i`` (``a``), then operand ``j`` (``b``) from the working
    list (``i > j``). Sum each over the axes ``a_sum`` / ``b_sum`` (or
    None), permute it by ``a_perm`` / ``b_perm`` (or None) and reshape it to
    ``a_shape`` / ``b_shape``; transpose the last two axes where ``a_t`` /
    ``b_t``; multiply ``a @ b`` (``b @ a`` when ``swap``) with the usual
    broadcasting of leading axes; reshape the product to ``out_shape`` and
    append it to the working list.
    """

    i: int
    j: int
    a_sum: tuple | None
    b_sum: tuple | None
    a_perm: tuple | None
    b_perm: tuple | None
    a_shape: tuple
    b_shape: tuple
    a_t: bool
    b_t: bool
    swap: bool
    out_shape: tuple


class EinsumStep(NamedTuple):
    """A step of a :class:`PlanProgram` left to the library's einsum: pop the
    operands at ``positions`` (in that order), apply ``equation``, append."""

    positions: tuple
    equation: str


class PlanProgram(NamedTuple):
    """The compiled steps of a :class:`ContractionPlan` (read-only, plain values).

    Attributes
    ----------
    direct : bool
        True when the whole contraction is one einsum call on the original
        operands (one operand, or size-1 broadcasting); ``steps`` is then empty.
    steps : tuple of MatmulStep or EinsumStep
        Executed in order on a working list that starts as the operands.
    final_perm : tuple of int or None
        Permutation of the last remaining operand into the output order.
    """

    direct: bool
    steps: tuple
    final_perm: tuple | None


# --------------------------------------------------------------------------- steps
class _PairStep:
    """One pairwise contraction executed as a (batched) matrix product.

    The operands are popped from the working list at positions ``i > j``
    (``a`` is the one at ``i``); each is optionally summed over private
    indices, permuted and reshaped to 2-D/3-D, multiplied, and the product
    reshaped back to its labelled dimensions.
    """

    __slots__ = ("i", "j", "a_sum", "b_sum", "a_perm", "b_perm", "a_shape", "b_shape",
                 "a_t", "b_t", "swap", "out_shape", "a_rs", "b_rs", "out_rs")

    def run(self, ops, a, b):
        if self.a_sum:
            a = ops.sum(a, self.a_sum)
        if self.b_sum:
            b = ops.sum(b, self.b_sum)
        if self.a_perm is not None:
            a = ops.transpose(a, self.a_perm)
        if self.b_perm is not None:
            b = ops.transpose(b, self.b_perm)
        # (reshapes that would not change the shape are skipped: each costs
        # a microsecond or two per call on PyTorch)
        if self.a_rs:
            a = ops.reshape(a, self.a_shape)
        if self.b_rs:
            b = ops.reshape(b, self.b_shape)
        if self.a_t:
            a = a.swapaxes(-1, -2)
        if self.b_t:
            b = b.swapaxes(-1, -2)
        out = ops.matmul(b, a) if self.swap else ops.matmul(a, b)
        return ops.reshape(out, self.out_shape) if self.out_rs else out


class _EinsumStep:
    """A step the matrix-product form does not cover (traces, diagonals, one operand)."""

    __slots__ = ("positions", "equation")

    def run_many(self, ops, operands):
        return ops.einsum(self.equation, *operands)


def _labels_size(labels, sizes) -> int:
    return _prod([sizes[c] for c in labels])


def _copy_cost(labels: str, order: str, sizes: dict) -> float:
    """Relative cost of permuting an array labelled ``labels`` into ``order``.

    Elements copied, weighted up when the run of elements that stays
    contiguous (the trailing dimensions left in place) is short: gathering
    16-element chunks is much slower per element than moving 256-element ones.
    """
    if labels == order:
        return 0
    run = 1
    for x, y in zip(reversed(labels), reversed(order)):
        if x != y:
            break
        run *= sizes[x]
    return _labels_size(labels, sizes) * (1.0 + _SHORT_RUN_PENALTY / run)


def _compile_pair(la: str, lb: str, keep: set, sizes: dict, orient, target=None,
                  outer: bool = False):
    """Compile ``la, lb -> (kept labels)`` into a matrix-product step.

    Each operand is stored either as (batch, keep, contr) or as
    (batch, contr, keep); the product uses a transposed view where needed,
    which BLAS takes without a copy. ``orient`` chooses whether the result
    is labelled (batch, a_keep, b_keep) (``A @ B``) or (batch, b_keep,
    a_keep) (``B @ A``); ``None`` lets this step choose. Returns the step,
    its output labels and the copy cost of this step.

    With ``target`` (a rank per output label: how the consumer of the
    result wants its labels ordered, see :func:`_layout_penalty`) the kept
    labels of each operand may also be reordered, and the choice weighs
    this step's copies against the copy the consumer would need. With
    ``outer`` a leading run of one operand's kept labels may stay in front
    as an outer (broadcast) batch of the product, so an operand laid out as
    (kept, contracted, kept) is used without a copy.
    """
    step = _PairStep()
    # sum out indices private to one operand that are not kept
    a_priv = [c for c in la if c not in lb and c not in keep]
    b_priv = [c for c in lb if c not in la and c not in keep]
    step.a_sum = tuple(la.index(c) for c in a_priv) or None
    step.b_sum = tuple(lb.index(c) for c in b_priv) or None
    la = "".join(c for c in la if c not in a_priv)
    lb = "".join(c for c in lb if c not in b_priv)

    a_keep0 = "".join(c for c in la if c not in lb)
    b_keep0 = "".join(c for c in lb if c not in la)
    orients = (0, 1) if orient is None else (orient,)
    best = None
    # shared labels (batch and contracted) ordered as in A or as in B
    for ref in (la, lb):
        batch = "".join(c for c in ref if c in la and c in lb and c in keep)
        contr = "".join(c for c in ref if c in la and c in lb and c not in keep)
        sides = [""]
        if outer and not batch and contr:
            sides += ["a", "b"]
        for side in sides:
            if side:
                lab, kept = (la, a_keep0) if side == "a" else (lb, b_keep0)
                g = ""
                for c in lab:
                    if c not in kept:
                        break
                    g += c
                if not g or g == kept:
                    continue
            else:
                g = ""
            a_keep = "".join(c for c in a_keep0 if c not in g)
            b_keep = "".join(c for c in b_keep0 if c not in g)
            for ka in _keep_orders(a_keep, target):
                for kb in _keep_orders(b_keep, target):
                    for a_ck in (False, True):
                        a_order = batch + (contr + ka if a_ck else ka + contr)
                        if side == "a":
                            a_order = g + a_order
                        for b_kc in (False, True):
                            b_order = batch + (kb + contr if b_kc else contr + kb)
                            if side == "b":
                                b_order = g + b_order
                            cost = _copy_cost(la, a_order, sizes) + _copy_cost(lb, b_order, sizes)
                            for o in orients:
                                out = batch + g + (ka + kb if o == 0 else kb + ka)
                                total = cost + _layout_penalty(out, target, sizes)
                                if best is None or total < best[0]:
                                    best = (total, cost, batch, contr, g, side, ka, kb, a_ck, b_kc,
                                            a_order, b_order, o, out)
    (_, cost, batch, contr, g, side, a_keep, b_keep, a_ck, b_kc, a_order, b_order, o,
     out_labels) = best
    step.a_perm = None if a_order == la else tuple(la.index(c) for c in a_order)
    step.b_perm = None if b_order == lb else tuple(lb.index(c) for c in b_order)
    nb = [_labels_size(batch, sizes)] if batch else []
    nk_a, nk_b = _labels_size(a_keep, sizes), _labels_size(b_keep, sizes)
    nc = _labels_size(contr, sizes)
    ng = [_labels_size(g, sizes)] if g else []
    step.a_shape = tuple((ng if side == "a" else []) + nb + ([nc, nk_a] if a_ck else [nk_a, nc]))
    step.b_shape = tuple((ng if side == "b" else []) + nb + ([nk_b, nc] if b_kc else [nc, nk_b]))
    if o == 0:  # (batch, a_keep, contr) @ (batch, contr, b_keep)
        step.swap, step.a_t, step.b_t = False, a_ck, b_kc
    else:  # (batch, b_keep, contr) @ (batch, contr, a_keep)
        step.swap, step.a_t, step.b_t = True, not a_ck, not b_kc
    step.out_shape = tuple(sizes[c] for c in out_labels)
    step.a_rs = step.a_shape != tuple(sizes[c] for c in a_order)
    step.b_rs = step.b_shape != tuple(sizes[c] for c in b_order)
    product = tuple(ng + nb + ([nk_a, nk_b] if o == 0 else [nk_b, nk_a]))
    step.out_rs = product != step.out_shape
    return step, out_labels, cost


def _keep_orders(kept: str, target):
    """Orders worth trying for an operand's kept labels: as stored, and as the
    consumer of the result wants them (``target``)."""
    if target is None or len(kept) < 2:
        return (kept,)
    orders = [kept]
    for key in target:
        ranked = "".join(sorted(kept, key=key.__getitem__))
        if ranked not in orders:
            orders.append(ranked)
    return orders


def _layout_penalty(out: str, target, sizes) -> float:
    """Estimated copy the consumer of ``out`` needs (0 when none).

    ``target`` is a tuple of rank maps. The final step's is the position of
    each label in the requested output (any other order costs the final
    permutation). A consumer step's maps rank its batch labels (0),
    contracted labels (1) and kept labels (2), in two orders; the consumer
    reads ``out`` without a copy when its labels are batch labels first,
    then contracted and kept labels in two blocks, or (without batch
    labels) kept, contracted, kept.
    """
    if target is None:
        return 0.0
    if len(target) == 1:  # the final output order
        order = "".join(sorted(out, key=target[0].__getitem__))
        return _copy_cost(out, order, sizes)
    fate = "".join("BCK"[target[0][c]] for c in out if target[0][c] >= 0)
    stripped = fate.lstrip("B")
    if "B" not in stripped:
        blocks = [k for k, _ in itertools.groupby(stripped)]
        if len(blocks) <= 2 or ("B" not in fate and blocks == ["K", "C", "K"]):
            return 0.0
    return _labels_size(out, sizes) * 2.0


# --------------------------------------------------------------------------- plan
class ContractionPlan:
    """A compiled contraction: call it on operands of the planned shapes.

    Build one with :func:`contract_plan`. A plan holds no data and works on
    NumPy, PyTorch (any device) and CuPy operands; the result has the
    operands' array type and device.

    Attributes
    ----------
    subscripts : str
        The einsum equation, with an explicit output.
    shapes : tuple of tuple of int
        The operand shapes the plan was made for.
    output_shape : tuple of int
    path : list of tuple of int
        opt_einsum's pairwise contraction order.
    flops : int
        Floating-point operations of the planned order (a multiply-add
        counts two).
    largest_intermediate : int
        Number of elements of the largest intermediate tensor.
    naive_flops : int
        Operations of a single-step (unoptimised) contraction, for comparison.
    copied_elements : int
        Elements moved by permutations on each call. The orientation of every
        pairwise product and the layout of its operands are chosen at
        planning time to keep this (weighted by how scattered the moves are,
        ``copy_cost``) small.
    """

    def __init__(self, subscripts: str, shapes, optimize="auto"):
        self.shapes = tuple(tuple(int(d) for d in s) for s in shapes)
        path, info = opt_einsum.contract_path(subscripts, *self.shapes, shapes=True,
                                              optimize=optimize)
        inputs = info.input_subscripts.split(",")
        output = info.output_subscript
        self.subscripts = f"{','.join(inputs)}->{output}"
        self._original = subscripts
        self.path = [tuple(int(i) for i in p) for p in path]
        self.flops = int(info.opt_cost)
        self.naive_flops = int(info.naive_cost)
        self.largest_intermediate = int(info.largest_intermediate)
        self.optimize = optimize
        sizes = {}
        broadcast = False
        for k, (lab, shp) in enumerate(zip(inputs, self.shapes)):
            for c, d in zip(lab, shp):
                if c in sizes and sizes[c] != d:
                    if 1 in (d, sizes[c]):
                        broadcast = True
                        sizes[c] = max(d, sizes[c])
                        continue
                    raise ValueError(
                        f"operands: index {c!r} has size {sizes[c]} in one operand and "
                        f"{d} in operand {k} (subscripts {subscripts!r}, shapes {self.shapes})")
                sizes[c] = d
        self.output_shape = tuple(sizes[c] for c in output)
        self._sizes = sizes
        self._steps = self._compile(inputs, output, broadcast)

    def _compile(self, inputs, output, broadcast):
        self._final_perm = None
        if len(inputs) == 1 or broadcast:
            # one operand, or size-1 broadcasting: the library's einsum does it all
            self._direct = True
            return []
        self._direct = False
        n_pair = len(self.path)
        # The orientation of every pairwise product is free; search all of
        # them for short paths (layers have a handful of steps), else keep
        # the first and let each step pick its operand layouts.
        if n_pair <= _EXHAUSTIVE_STEPS:
            choices = itertools.product((0, 1), repeat=n_pair)
        else:
            choices = [(0,) * n_pair]
        best = None
        for orients in choices:
            steps, final, cost = self._compile_with(inputs, output, orients)
            cost += _copy_cost(final, output, self._sizes)
            if best is None or cost < best[0]:
                best = (cost, steps, final)
        # Also let every step reorder kept labels and keep outer batches,
        # looking one step ahead; keep whichever program copies less.
        targets = self._targets(inputs, output)
        steps, final, cost = self._compile_with(inputs, output, None, targets)
        cost += _copy_cost(final, output, self._sizes)
        if cost < best[0]:
            best = (cost, steps, final)
        self.copy_cost, steps, final = best
        if final != output:
            self._final_perm = tuple(final.index(c) for c in output)
        # elements moved by permutations on each call (a diagnostic)
        self.copied_elements = sum(
            (st.a_perm is not None) * _prod(st.a_shape) + (st.b_perm is not None) * _prod(st.b_shape)
            for st in steps if type(st) is _PairStep
        ) + (self._final_perm is not None) * _prod(self.output_shape)
        return steps

    def _targets(self, inputs, output):
        """For every step, how its consumer wants the result's labels ranked."""
        sets = [set(lab) for lab in inputs]
        ids = list(range(len(inputs)))
        produced = {}  # operand id -> step that made it
        targets = [None] * len(self.path)
        next_id = len(inputs)
        for n, pos in enumerate(self.path):
            pos = tuple(sorted(pos, reverse=True))
            popped_ids = [ids.pop(p) for p in pos]
            popped = [sets.pop(p) for p in pos]
            keep = set(output).union(*sets)
            for k, oid in enumerate(popped_ids):
                if oid not in produced:
                    continue
                others = set().union(*(s for j, s in enumerate(popped) if j != k))
                mine = popped[k]
                rank = {}
                for c in mine:
                    if c not in keep and c not in others:
                        rank[c] = -1  # summed away before the product
                    elif c in others and c in keep:
                        rank[c] = 0
                    elif c in others:
                        rank[c] = 1
                    else:
                        rank[c] = 2
                swapped = {c: (3 - r if r > 0 else r) for c, r in rank.items()}
                targets[produced[oid]] = (rank, swapped)
            out = set().union(*popped) & keep
            sets.append(out)
            ids.append(next_id)
            produced[next_id] = n
            next_id += 1
        targets[-1] = ({c: k for k, c in enumerate(output)},)
        return targets

    def _compile_with(self, inputs, output, orients, targets=None):
        labels = list(inputs)
        steps, total = [], 0
        for n, pos in enumerate(self.path):
            pos = tuple(sorted(pos, reverse=True))
            popped = [labels.pop(p) for p in pos]
            keep = set(output).union(*labels)
            repeated = any(len(set(lab)) != len(lab) for lab in popped)
            if len(pos) == 2 and not repeated:
                if targets is None:
                    step, out, cost = _compile_pair(popped[0], popped[1], keep, self._sizes,
                                                    orients[n])
                else:
                    step, out, cost = _compile_pair(popped[0], popped[1], keep, self._sizes,
                                                    None, targets[n], outer=True)
                step.i, step.j = pos
                total += cost
            else:
                seen = "".join(popped)
                out = "".join(sorted({c for c in seen if c in keep}, key=seen.index))
                if n == len(self.path) - 1:
                    out = output
                step = _EinsumStep()
                step.positions = pos
                step.equation = f"{','.join(popped)}->{out}"
            labels.append(out)
            steps.append(step)
        return steps, labels[0], total

    # ------------------------------------------------------------------ call
    def __call__(self, *operands):
        if len(operands) != len(self.shapes):
            raise ValueError(f"this plan contracts {len(self.shapes)} operands "
                             f"({self.subscripts!r}); got {len(operands)}")
        t0 = type(operands[0])
        name = array_backend(operands[0])
        if name is None:
            raise TypeError("operands must be NumPy arrays, PyTorch tensors or CuPy arrays; "
                            f"got {t0.__name__}")
        for k, (op, shp) in enumerate(zip(operands, self.shapes)):
            if type(op) is not t0:
                backend_name(*operands)  # raises on a mix of libraries
            if tuple(op.shape) != shp:
                raise ValueError(f"operand {k} must have shape {shp} for this plan "
                                 f"({self.subscripts!r}); got {tuple(op.shape)}")
        return self._execute(ops_for(name), list(operands))

    def _execute(self, ops, work):
        if self._direct:
            return ops.einsum(self.subscripts, *work)
        for step in self._steps:
            if type(step) is _PairStep:
                a = work.pop(step.i)
                b = work.pop(step.j)
                work.append(step.run(ops, a, b))
            else:
                popped = [work.pop(p) for p in step.positions]
                work.append(step.run_many(ops, popped))
        out = work[0]
        if self._final_perm is not None:
            out = ops.transpose(out, self._final_perm)
        return out

    # ------------------------------------------------------------------ info
    @property
    def program(self) -> PlanProgram:
        """The compiled steps as plain values (:class:`PlanProgram`), for code that runs or
        prices the plan itself (e.g. caches it as a constant for ``torch.compile``).

        Examples
        --------
        >>> from tensornet import contract_plan
        >>> prog = contract_plan("bi,ij,jk->bk", (32, 64), (64, 8), (8, 64)).program
        >>> prog.direct, [type(step).__name__ for step in prog.steps]
        (False, ['MatmulStep', 'MatmulStep'])
        """
        prog = self.__dict__.get("_program")
        if prog is None:
            steps = []
            for s in self._steps:
                if type(s) is _PairStep:
                    steps.append(MatmulStep(s.i, s.j, s.a_sum, s.b_sum, s.a_perm, s.b_perm,
                                            s.a_shape, s.b_shape, s.a_t, s.b_t, s.swap,
                                            s.out_shape))
                else:
                    steps.append(EinsumStep(tuple(s.positions), s.equation))
            prog = self._program = PlanProgram(self._direct, tuple(steps), self._final_perm)
        return prog

    def __repr__(self):
        return (f"ContractionPlan({self.subscripts!r}, shapes={self.shapes}, "
                f"flops={self.flops:,}, largest_intermediate={self.largest_intermediate:,}, "
                f"steps={len(self._steps)})")


def _check_optimize(optimize):
    if isinstance(optimize, str):
        if optimize not in _oe_paths._PATH_OPTIONS:
            raise ValueError(f"optimize must be one of {', '.join(map(repr, OPTIMIZE_OPTIONS))} "
                             f"or an explicit path (a list of index tuples); got {optimize!r}")
        return optimize
    if isinstance(optimize, (list, tuple)):
        try:
            return tuple(tuple(int(i) for i in step) for step in optimize)
        except (TypeError, ValueError):
            pass
    raise TypeError("optimize must be a path-finder name or an explicit path (a list of "
                    f"index tuples); got {optimize!r}")


@functools.lru_cache(maxsize=_PLAN_CACHE_SIZE)
def _cached_plan(subscripts, shapes, optimize):
    path = list(optimize) if isinstance(optimize, tuple) else optimize
    plan = ContractionPlan(subscripts, shapes, optimize=path)
    logger.debug("planned %s: %d flops, path %s", plan.subscripts, plan.flops, plan.path)
    return plan


def _check_subscripts(subscripts):
    if not isinstance(subscripts, str):
        raise TypeError(f"subscripts must be an einsum string such as 'ij,jk->ik'; got "
                        f"{type(subscripts).__name__}")


def contract_plan(subscripts: str, *shapes, optimize="auto") -> ContractionPlan:
    """Plan a contraction for operands of the given shapes.

    Parameters
    ----------
    subscripts : str
        An einsum equation, e.g. ``"bi,ij->bj"`` (ellipses are allowed).
    *shapes : tuple of int
        One shape per operand.
    optimize : str or list of tuple, default ``"auto"``
        An opt_einsum path finder name (see ``OPTIMIZE_OPTIONS``) or an
        explicit contraction path.

    Returns
    -------
    ContractionPlan
        Callable on operands of exactly these shapes. Plans are cached, so
        asking again for the same plan is a dictionary lookup.

    Examples
    --------
    >>> import numpy as np
    >>> from tensornet import contract_plan
    >>> plan = contract_plan("bi,ij,jk->bk", (32, 64), (64, 8), (8, 64))
    >>> plan.path            # (x A) first, then times B
    [(0, 1), (0, 1)]
    >>> plan.flops
    65536
    >>> x, a, b = np.ones((32, 64)), np.ones((64, 8)), np.ones((8, 64))
    >>> plan(x, a, b).shape
    (32, 64)
    """
    _check_subscripts(subscripts)
    if not shapes:
        raise ValueError("shapes: give one shape per operand; got none")
    checked = []
    for k, s in enumerate(shapes):
        if isinstance(s, numbers.Integral):
            s = (s,)
        try:
            s = tuple(int(d) for d in s)
        except TypeError:
            raise TypeError(f"shapes[{k}] must be a tuple of ints, got {s!r}") from None
        if any(d < 0 for d in s):
            raise ValueError(f"shapes[{k}] must not hold negative sizes, got {s}")
        checked.append(s)
    return _cached_plan(subscripts, tuple(checked), _check_optimize(optimize))


def contract(subscripts: str, *operands, optimize="auto"):
    """Evaluate an einsum expression along a planned, cached path.

    Parameters
    ----------
    subscripts : str
        An einsum equation, e.g. ``"ij,jk,kl->il"``.
    *operands : array
        NumPy arrays, PyTorch tensors or CuPy arrays (all from one library).
    optimize : str or list of tuple, default ``"auto"``
        Path finder name or explicit path, as in :func:`contract_plan`.

    Returns
    -------
    array
        Same array type and device as the operands.

    Examples
    --------
    >>> import numpy as np
    >>> from tensornet import contract
    >>> a, b, c = np.ones((3, 4)), np.ones((4, 5)), np.ones((5, 6))
    >>> float(contract("ij,jk,kl->il", a, b, c)[0, 0])
    20.0
    """
    _check_subscripts(subscripts)
    if not operands:
        raise ValueError("operands: contract needs at least one array; got none")
    try:
        shapes = tuple(tuple(o.shape) for o in operands)
    except AttributeError:
        raise TypeError("operands must be NumPy arrays, PyTorch tensors or CuPy arrays; got "
                        + ", ".join(type(o).__name__ for o in operands)) from None
    plan = _cached_plan(subscripts, shapes, _check_optimize(optimize))
    return plan(*operands)


def plan_cache_info():
    """Hits, misses and size of the plan cache (``functools`` ``CacheInfo``)."""
    return _cached_plan.cache_info()


def clear_plan_cache() -> None:
    """Forget every cached plan."""
    _cached_plan.cache_clear()


def multilinear(tensor, factors: Sequence[Any], optimize="auto"):
    """Evaluate ``tensor`` as a multilinear form: ``T(u, v, .)``.

    Mode ``n`` of ``tensor`` is contracted with ``factors[n]``:

    * a vector of length ``I_n`` removes the mode (``T(u, ...)``),
    * a matrix of shape ``(I_n, R_n)`` replaces it by a mode of size ``R_n``
      (``T(V, ...)`` in the notation of Anandkumar et al. 2014),
    * ``None`` leaves it open.

    Parameters
    ----------
    tensor : array of shape (I_1, ..., I_N)
    factors : sequence of length N of vector, matrix or None
    optimize : str, default "auto"

    Examples
    --------
    >>> import numpy as np
    >>> from tensornet import multilinear
    >>> T = np.arange(24.0).reshape(2, 3, 4)
    >>> u, v = np.ones(2), np.ones(3)
    >>> multilinear(T, [u, v, None]).tolist()
    [60.0, 66.0, 72.0, 78.0]
    """
    ndim = len(tensor.shape)
    if len(factors) != ndim:
        raise ValueError(f"factors must hold one entry (vector, matrix or None) per mode of the "
                         f"tensor, i.e. {ndim}; got {len(factors)}")
    letters = opt_einsum.get_symbol
    t_lab = "".join(letters(i) for i in range(ndim))
    out, subs, ops = [], [t_lab], [tensor]
    for n, f in enumerate(factors):
        if f is None:
            out.append(t_lab[n])
            continue
        shp = tuple(f.shape)
        if len(shp) not in (1, 2) or shp[0] != tensor.shape[n]:
            raise ValueError(f"factors[{n}] must be a vector of length {tensor.shape[n]} or a "
                             f"matrix with {tensor.shape[n]} rows; got shape {shp}")
        if len(shp) == 1:
            subs.append(t_lab[n])
        else:
            new = letters(ndim + n)
            subs.append(t_lab[n] + new)
            out.append(new)
        ops.append(f)
    if len(ops) == 1:
        return tensor
    return contract(",".join(subs) + "->" + "".join(out), *ops, optimize=optimize)
