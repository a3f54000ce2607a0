"""Higher-order tensor-train LSTM (Yu, Zheng, Anandkumar, Yue 2017).

The cell keeps the last ``L`` hidden states and forms the augmented state

    s_t = [1; h_{t-1}; h_{t-2}; ...; h_{t-L}]            (length D = L*H + 1)

The gate pre-activations are a polynomial of order ``P`` in ``s_t``:

    z_t = W_x x_t + W(s_t, ..., s_t) + b,

where the weight tensor ``W`` of shape ``(D, ..., D, 4H)`` is held in
tensor-train form by ``P`` cores ``A_k`` of shape ``(r_{k-1}, D, r_k)`` with
``r_0 = 1`` and ``r_P = 4H``. Because every mode is contracted with the same
vector, the contraction factorises core by core:

    M_k = sum_i s_i A_k[:, i, :]        (one (r_{k-1}, r_k) matrix per sample)
    z   = M_1 M_2 ... M_P                (a row vector times small matrices)

which costs ``O(B * P * D * r^2 + B * r * D * 4H)`` instead of the
``O(B * D^P)`` of forming the full state tensor, as the authors' TensorFlow
code does. The full-state computation is kept here (``contraction=
"full_state"``) only as a reference for tests and benchmarks.

Implementation notes
--------------------
* All cores but the last are applied with one GEMM per step: their
  ``(D, r_{k-1} r_k)`` unfoldings are concatenated once per sequence and
  ``s_t`` is multiplied by the stack.
* The last core, whose right rank is ``4H``, is applied as one GEMM of the
  outer product ``v (x) s_t`` (``B x r D``) with the core reshaped to
  ``(r D, 4H)``; the input projection ``W_x x_t + b`` for the whole
  sequence is computed before the time loop and fused in with ``addmm``.
* Gates are in PyTorch's order ``(i, f, g, o)``.
"""

from __future__ import annotations

import math
import numbers
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from .._validation import check_int, check_option
from ._base import RankDim, keep_indices

__all__ = ["TTLSTMCell", "TTLSTM", "tt_transition", "tt_transition_full_state",
           "ttlstm_step_flops"]

_CONTRACTIONS = ("cores", "full_state")


# --------------------------------------------------------------------------
# functional kernels
# --------------------------------------------------------------------------

def _pack_cores(cores: Sequence[Tensor]):
    """Unfold the cores for the per-step kernel (done once per sequence).

    Returns ``(small, last)`` where ``small`` is ``(D, sum_k r_{k-1} r_k)`` for
    all cores but the last (``None`` for order 1) and ``last`` is the last core
    reshaped to ``(r_{P-1} D, r_P)``.
    """
    last = cores[-1]
    last2d = last.reshape(last.shape[0] * last.shape[1], last.shape[2])
    if len(cores) == 1:
        return None, last2d
    small = torch.cat([a.permute(1, 0, 2).reshape(a.shape[1], a.shape[0] * a.shape[2])
                       for a in cores[:-1]], dim=1)
    return small, last2d


def _apply_packed(s: Tensor, small: Optional[Tensor], last2d: Tensor,
                  ranks: Sequence[int], add: Optional[Tensor] = None) -> Tensor:
    """Core-by-core transition ``W(s, ..., s)`` (+ ``add``) from packed cores."""
    if small is None:  # order 1: one linear map of the state
        return s @ last2d if add is None else torch.addmm(add, s, last2d)
    B = s.shape[0]
    m = s @ small                                 # every M_k at once: (B, sum r_{k-1} r_k)
    v = m[:, :ranks[1]]                           # M_1 is a row vector (r_0 = 1)
    off = ranks[1]
    for k in range(1, len(ranks) - 2):            # middle cores: v <- v M_k
        n = ranks[k] * ranks[k + 1]
        Mk = m[:, off:off + n].view(B, ranks[k], ranks[k + 1])
        v = torch.bmm(v.unsqueeze(1), Mk).squeeze(1)
        off += n
    outer = (v.unsqueeze(2) * s.unsqueeze(1)).reshape(B, -1)   # (B, r_{P-1} D)
    return outer @ last2d if add is None else torch.addmm(add, outer, last2d)


def _ranks_of(cores: Sequence[Tensor]) -> tuple:
    return (1,) + tuple(int(a.shape[2]) for a in cores)


def tt_transition(state: Tensor, cores: Sequence[Tensor]) -> Tensor:
    """Contract ``W(s, ..., s)`` core by core, never forming ``D^P`` objects.

    Parameters
    ----------
    state : Tensor of shape (B, D)
        The augmented states ``s``.
    cores : sequence of P tensors
        TT cores, core ``k`` of shape ``(r_{k-1}, D, r_k)`` with ``r_0 = 1``.

    Returns
    -------
    Tensor of shape (B, r_P)

    Examples
    --------
    >>> import torch
    >>> from tensornet.nn._ttlstm import tt_transition
    >>> g = torch.Generator().manual_seed(0)
    >>> cores = [torch.randn(1, 5, 3, generator=g), torch.randn(3, 5, 4, generator=g)]
    >>> s = torch.randn(2, 5, generator=g)
    >>> W = torch.einsum('xir,rjo->ijo', cores[0], cores[1])   # full (5, 5, 4) tensor
    >>> full = torch.einsum('bi,bj,ijo->bo', s, s, W)
    >>> torch.allclose(tt_transition(s, cores), full, atol=1e-5)
    True
    """
    small, last2d = _pack_cores(cores)
    return _apply_packed(state, small, last2d, _ranks_of(cores))


def tt_transition_full_state(state: Tensor, cores: Sequence[Tensor]) -> Tensor:
    """Reference: form the full state tensor ``s (x) ... (x) s`` and contract it.

    This is the published implementation's approach; memory and time grow as
    ``B * D^P``. Use it only to check :func:`tt_transition` or to measure it.
    """
    B, D = state.shape
    P = len(cores)
    S = state
    for p in range(1, P):                         # (B, D, ..., D), p+1 modes
        S = S.unsqueeze(-1) * state.view(B, *([1] * p), D)
    # S is symmetric, so core 1 may take the last mode: every step is then one
    # plain GEMM on a contiguous unfolding (the fastest way to run this approach).
    T = S.reshape(-1, D)                           # (B D^{P-1}, D)
    for a in cores:
        r_in, _, r_out = a.shape
        T = T.reshape(-1, D * r_in) @ a.permute(1, 0, 2).reshape(D * r_in, r_out)
    return T.reshape(B, -1)


def ttlstm_step_flops(input_size: int, hidden_size: int, lags: int, order: int,
                      rank, batch_size: int = 1, contraction: str = "cores") -> int:
    """Floating-point operations of one forward step (multiply-add = 2).

    Counts the matrix products and the elementwise gate arithmetic. For
    ``contraction="full_state"`` it counts forming the state tensor and
    contracting it with the cores.
    """
    ranks = _check_ranks(rank, order, hidden_size)
    D = lags * hidden_size + 1
    H4 = 4 * hidden_size
    f = 2 * input_size * H4 + H4                   # W_x x_t + b
    if contraction == "cores":
        f += sum(2 * D * ranks[k] * ranks[k + 1] for k in range(order - 1))
        f += sum(2 * ranks[k] * ranks[k + 1] for k in range(1, order - 1))
        if order > 1:
            f += ranks[-2] * D                     # outer product v (x) s
        f += 2 * ranks[-2] * D * H4 + H4           # last core (+ addmm add)
    else:
        f += sum(D ** p for p in range(2, order + 1))          # outer products
        rest = D ** order
        for k in range(order):
            rest //= D
            f += 2 * ranks[k] * D * ranks[k + 1] * rest
    f += 10 * hidden_size                          # gates: sigmoid/tanh/products
    return int(batch_size * f)


def _check_ranks(rank, order: int, hidden_size: int) -> tuple:
    if isinstance(rank, numbers.Integral) and not isinstance(rank, bool):
        inner = [check_int(rank, "rank", min_value=1)] * (order - 1)
    else:
        try:
            inner = list(rank)
        except TypeError:
            raise TypeError(f"rank must be a positive integer or a sequence of order - 1 = "
                            f"{order - 1} positive integers, got {rank!r}") from None
        if len(inner) != order - 1:
            raise ValueError(f"rank must be an integer or a sequence of order - 1 = {order - 1} "
                             f"integers (the inner TT ranks), got {len(inner)} values: {rank!r}")
        inner = [check_int(r, "rank", min_value=1) for r in inner]
    return (1, *inner, 4 * hidden_size)


# --------------------------------------------------------------------------
# modules
# --------------------------------------------------------------------------

class TTLSTMCell(nn.Module):
    r"""One step of the higher-order tensor-train LSTM.

    Parameters
    ----------
    input_size : int
        Features of the input ``x_t``.
    hidden_size : int
        ``H``, the size of each hidden state.
    lags : int, default 3
        ``L``, how many past hidden states enter the transition.
    order : int, default 2
        ``P``, the polynomial order of the transition (1 is an LSTM whose
        recurrent input is the ``L`` past hidden states).
    rank : int or sequence of int, default 8
        Inner TT ranks ``r_1 .. r_{P-1}`` (one int for all of them).
        Ignored for ``order=1``.
    bias : bool, default True
        Learn the additive gate bias ``b``.
    contraction : {"cores", "full_state"}, default "cores"
        ``"cores"`` contracts core by core (cost linear in ``order``);
        ``"full_state"`` forms the ``D^P`` state tensor as the published code
        does (exponential; reference for tests and benchmarks only).
    device, dtype
        Factory arguments as in ``torch.nn``.

    Attributes
    ----------
    cores : nn.ParameterList
        ``order`` TT cores, core ``k`` of shape ``(ranks[k], state_size,
        ranks[k+1])``; index 0 of the middle mode multiplies the constant 1,
        index ``1 + l*H + j`` multiplies unit ``j`` of ``h_{t-1-l}``.
    weight_ih : Parameter of shape (4 * hidden_size, input_size)
    bias : Parameter of shape (4 * hidden_size,) or None
    ranks : tuple of int
        ``(1, r_1, ..., r_{P-1}, 4 * hidden_size)``.
    state_size : int
        ``D = lags * hidden_size + 1``.

    Notes
    -----
    The state is ``(h_lags, c)`` with ``h_lags`` of shape ``(B, lags, H)``,
    ``h_lags[:, 0]`` the most recent hidden state, and ``c`` of shape
    ``(B, H)``. Gates follow PyTorch's order ``(i, f, g, o)``.

    Initialisation makes the transition start close to an LSTM over the
    lagged states: the constant slice of every core but the last passes the
    rank vector through (``1/sqrt(r)`` for the first core, the identity for
    middle ones), so the higher-order terms start small but non-zero; the
    last core is uniform in ``+-1/sqrt(L H)`` with its constant slice at zero
    (the bias lives in ``bias``); ``weight_ih`` is uniform in ``+-1/sqrt(H)``;
    the forget-gate bias is 1, the other biases 0.

    Examples
    --------
    >>> import torch
    >>> from tensornet.nn import TTLSTMCell
    >>> cell = TTLSTMCell(3, 8, lags=2, order=3, rank=4)
    >>> h, (h_lags, c) = cell(torch.zeros(5, 3))
    >>> h.shape, h_lags.shape, c.shape
    (torch.Size([5, 8]), torch.Size([5, 2, 8]), torch.Size([5, 8]))
    >>> [tuple(a.shape) for a in cell.cores]
    [(1, 17, 4), (4, 17, 4), (4, 17, 32)]
    """

    def __init__(self, input_size: int, hidden_size: int, lags: int = 3, order: int = 2,
                 rank=8, bias: bool = True, contraction: str = "cores",
                 device=None, dtype=None) -> None:
        factory = {"device": device, "dtype": dtype}
        super().__init__()
        self.input_size = check_int(input_size, "input_size", min_value=0)
        self.hidden_size = check_int(hidden_size, "hidden_size", min_value=1)
        self.lags = check_int(lags, "lags", min_value=1)
        self.order = check_int(order, "order", min_value=1)
        self.contraction = check_option(contraction, "contraction", _CONTRACTIONS)
        self.ranks = _check_ranks(rank, self.order, self.hidden_size)
        self.state_size = self.lags * self.hidden_size + 1
        D = self.state_size
        self.cores = nn.ParameterList(
            nn.Parameter(torch.empty(self.ranks[k], D, self.ranks[k + 1], **factory))
            for k in range(self.order))
        self.weight_ih = nn.Parameter(torch.empty(4 * self.hidden_size, self.input_size,
                                                  **factory))
        if bias:
            self.bias = nn.Parameter(torch.empty(4 * self.hidden_size, **factory))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    # -- parameters --------------------------------------------------------
    @torch.no_grad()
    def reset_parameters(self, generator: Optional[torch.Generator] = None) -> None:
        """Re-initialise (see the class notes); ``generator`` makes it reproducible."""
        H, D = self.hidden_size, self.state_size
        gamma = 0.5          # size of the higher-order terms relative to the first-order path
        for k, a in enumerate(self.cores):
            r_in, _, r_out = a.shape
            if k == self.order - 1:
                # last core: the effective first-order weight sum_a v_a A[a] (|v| ~ 1) gets
                # LSTM-like scale over the L*H lagged units; the bias lives in ``bias``.
                bound = 1.0 / math.sqrt(D - 1)
                a.uniform_(-bound, bound, generator=generator)
                a[:, 0, :] = 0.0
                continue
            a.normal_(0.0, gamma / math.sqrt((D - 1) * max(r_in, r_out)), generator=generator)
            if k == 0:
                a[0, 0, :] = 1.0 / math.sqrt(r_out)
            else:
                a[:, 0, :] = torch.eye(r_in, r_out, dtype=a.dtype, device=a.device) \
                    * math.sqrt(max(1.0, r_in / r_out))
        bound = 1.0 / math.sqrt(H)
        self.weight_ih.uniform_(-bound, bound, generator=generator)
        if self.bias is not None:
            self.bias.zero_()
            self.bias[H:2 * H] = 1.0

    @property
    def num_tt_parameters(self) -> int:
        """Parameters held by the TT cores."""
        return sum(a.numel() for a in self.cores)

    def step_flops(self, batch_size: int = 1) -> int:
        """FLOPs of one forward step for ``batch_size`` samples."""
        return ttlstm_step_flops(self.input_size, self.hidden_size, self.lags, self.order,
                                 list(self.ranks[1:-1]), batch_size, self.contraction)

    def flops(self, batch_size: int = 1, input_size=None) -> int:
        """FLOPs of one time step (as :meth:`step_flops`; ``input_size`` is ignored).

        Lets :func:`tensornet.optim.prune_ranks` report the cost of a step
        before and after pruning.
        """
        return self.step_flops(batch_size)

    # -- rank groups (the interface of tensornet.nn._base.FactorizedModule) --
    def rank_dims(self) -> tuple:
        """One rank dimension per inner TT bond: ``'bond1'`` ... ``'bond{P-1}'``.

        Component ``r`` of bond ``k`` is ``cores[k-1][:, :, r]`` together with
        ``cores[k][r]``; the first member is the lead slice that
        :class:`tensornet.optim.RankL1` penalises. Order 1 has no rank.
        """
        return tuple(RankDim(f"bond{k}", self.ranks[k],
                             ((f"cores.{k - 1}", 2, 1), (f"cores.{k}", 0, 1)))
                     for k in range(1, self.order))

    def rank_group_norms(self) -> list:
        """Euclidean norm of every rank component (all members), one vector per bond."""
        out = []
        for k in range(1, self.order):
            left = self.cores[k - 1].detach()
            right = self.cores[k].detach()
            out.append(((left ** 2).sum((0, 1)) + (right ** 2).sum((1, 2))).sqrt())
        return out

    def _kept_cores(self, keep) -> list:
        dims = self.rank_dims()
        cores = [a.detach() for a in self.cores]
        for k, idx in enumerate(keep_indices(keep, dims), start=1):
            if idx is None:
                continue
            idx = idx.to(cores[k].device)
            cores[k - 1] = cores[k - 1].index_select(2, idx)
            cores[k] = cores[k].index_select(0, idx)
        return cores

    @torch.no_grad()
    def select_ranks(self, keep) -> "TTLSTMCell":
        """A new cell keeping only some components of each inner TT bond.

        Parameters
        ----------
        keep : sequence
            One entry per element of :meth:`rank_dims`: indices (or a bool
            mask) of the components to keep, or ``None`` to keep them all.

        Returns
        -------
        TTLSTMCell
            Same sizes, smaller inner ranks; a freshly built cell with these
            ranks has the same parameter names and shapes, so the
            ``state_dict`` loads into it.

        Examples
        --------
        >>> from tensornet.nn import TTLSTMCell
        >>> cell = TTLSTMCell(2, 8, lags=2, order=3, rank=4)
        >>> cell.select_ranks([[0, 2], None]).ranks
        (1, 2, 4, 32)
        """
        cores = self._kept_cores(keep)
        first = self.cores[0]
        new = TTLSTMCell(self.input_size, self.hidden_size, self.lags, self.order,
                         [int(a.shape[2]) for a in cores[:-1]], bias=self.bias is not None,
                         contraction=self.contraction, device=first.device, dtype=first.dtype)
        for a, b in zip(new.cores, cores):
            a.copy_(b)
        new.weight_ih.copy_(self.weight_ih)
        if self.bias is not None:
            new.bias.copy_(self.bias)
        new.train(self.training)
        return new

    def full_weight(self) -> Tensor:
        """The full transition tensor ``(D, ..., D, 4H)`` (small sizes only)."""
        W = self.cores[0][0]                       # (D, r_1)
        for a in self.cores[1:]:
            W = torch.tensordot(W, a, dims=1)
        return W

    # -- computation -------------------------------------------------------
    def _packed(self):
        if self.contraction == "cores":
            return _pack_cores(list(self.cores))
        return None

    def _transition(self, s: Tensor, packed, add: Tensor) -> Tensor:
        if packed is None:
            return add + tt_transition_full_state(s, list(self.cores))
        small, last2d = packed
        return _apply_packed(s, small, last2d, self.ranks, add)

    def _input_projection(self, x: Tensor) -> Tensor:
        """``W_x x + b`` for any leading shape."""
        if self.input_size == 0:
            z = x.new_zeros(*x.shape[:-1], 4 * self.hidden_size)
            return z + self.bias if self.bias is not None else z
        if self.bias is None:
            return x @ self.weight_ih.T
        return torch.nn.functional.linear(x, self.weight_ih, self.bias)

    def _step(self, xz: Tensor, hs: list, c: Tensor, packed, ones: Optional[Tensor] = None):
        """One step from the input projection ``xz``; ``hs`` newest first."""
        if ones is None:
            ones = xz.new_ones(xz.shape[0], 1)
        s = torch.cat([ones, *hs], dim=1)
        z = self._transition(s, packed, xz)
        H = self.hidden_size
        sig = torch.sigmoid(z)
        g = torch.tanh(z[:, 2 * H:3 * H])
        c = sig[:, H:2 * H] * c + sig[:, :H] * g
        h = sig[:, 3 * H:] * torch.tanh(c)
        return h, c

    def initial_state(self, batch_size: int, like: Tensor):
        z = like.new_zeros(batch_size, self.lags, self.hidden_size)
        return z, like.new_zeros(batch_size, self.hidden_size)

    def _check_input(self, x: Tensor, ndim: int, what: str) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f"input must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != ndim or x.shape[-1] != self.input_size:
            raise ValueError(f"input must have shape {what} with input_size="
                             f"{self.input_size}; got {tuple(x.shape)}")

    def _check_state(self, state, batch_size: int) -> None:
        try:
            h_lags, c = state
        except (TypeError, ValueError):
            raise TypeError("state must be a pair (h_lags, c) or None") from None
        want_h = (batch_size, self.lags, self.hidden_size)
        want_c = (batch_size, self.hidden_size)
        if tuple(h_lags.shape) != want_h or tuple(c.shape) != want_c:
            raise ValueError(f"state must be (h_lags of shape {want_h}, c of shape {want_c}); "
                             f"got {tuple(h_lags.shape)} and {tuple(c.shape)}")

    def forward(self, input: Tensor, state=None):
        """One step.

        Parameters
        ----------
        input : Tensor of shape (B, input_size)
        state : (h_lags, c) or None
            ``h_lags`` of shape ``(B, lags, hidden_size)`` (newest first), ``c``
            of shape ``(B, hidden_size)``; zeros when ``None``.

        Returns
        -------
        h : Tensor of shape (B, hidden_size)
        state : (h_lags, c), the new state
        """
        self._check_input(input, 2, "(batch, input_size)")
        B = input.shape[0]
        if state is None:
            state = self.initial_state(B, input)
        else:
            self._check_state(state, B)
        h_lags, c = state
        hs = list(h_lags.unbind(1))
        h, c = self._step(self._input_projection(input), hs, c, self._packed())
        new_lags = torch.cat([h.unsqueeze(1), h_lags[:, :-1]], dim=1)
        return h, (new_lags, c)

    def extra_repr(self) -> str:
        s = (f"{self.input_size}, {self.hidden_size}, lags={self.lags}, order={self.order}, "
             f"ranks={self.ranks}")
        if self.bias is None:
            s += ", bias=False"
        if self.contraction != "cores":
            s += f", contraction={self.contraction!r}"
        return s


class TTLSTM(nn.Module):
    """A tensor-train LSTM over whole sequences (one layer).

    Parameters are those of :class:`TTLSTMCell`, plus ``batch_first``
    (default True: input ``(B, T, input_size)``).

    The core unfoldings and the input projection of every step are computed
    once per call, so the time loop runs only the recurrent arithmetic.

    Examples
    --------
    >>> import torch
    >>> from tensornet.nn import TTLSTM
    >>> layer = TTLSTM(2, 16, lags=3, order=2, rank=4)
    >>> out, (h_lags, c) = layer(torch.randn(4, 10, 2))
    >>> out.shape, h_lags.shape
    (torch.Size([4, 10, 16]), torch.Size([4, 3, 16]))
    """

    def __init__(self, input_size: int, hidden_size: int, lags: int = 3, order: int = 2,
                 rank=8, bias: bool = True, batch_first: bool = True,
                 contraction: str = "cores", device=None, dtype=None) -> None:
        super().__init__()
        self.batch_first = bool(batch_first)
        self.cell = TTLSTMCell(input_size, hidden_size, lags, order, rank, bias,
                               contraction=contraction, device=device, dtype=dtype)

    input_size = property(lambda self: self.cell.input_size)
    hidden_size = property(lambda self: self.cell.hidden_size)
    lags = property(lambda self: self.cell.lags)
    order = property(lambda self: self.cell.order)
    ranks = property(lambda self: self.cell.ranks)

    def reset_parameters(self, generator: Optional[torch.Generator] = None) -> None:
        self.cell.reset_parameters(generator)

    def flops(self, batch_size: int = 1, input_size=None) -> int:
        """FLOPs of one time step (multiply by the sequence length for a whole call)."""
        return self.cell.step_flops(batch_size)

    def rank_dims(self) -> tuple:
        """The cell's inner TT bonds (see :meth:`TTLSTMCell.rank_dims`), names under ``cell.``."""
        return tuple(rd._replace(members=tuple((f"cell.{n}", d, b) for n, d, b in rd.members))
                     for rd in self.cell.rank_dims())

    def rank_group_norms(self) -> list:
        return self.cell.rank_group_norms()

    @torch.no_grad()
    def select_ranks(self, keep) -> "TTLSTM":
        """A new layer keeping only some components of each inner TT bond.

        See :meth:`TTLSTMCell.select_ranks`.

        Examples
        --------
        >>> from tensornet.nn import TTLSTM
        >>> TTLSTM(2, 8, lags=2, order=2, rank=4).select_ranks([[1, 3]]).ranks
        (1, 2, 32)
        """
        cell = self.cell.select_ranks(keep)
        new = TTLSTM.__new__(TTLSTM)
        nn.Module.__init__(new)
        new.batch_first = self.batch_first
        new.cell = cell
        new.train(self.training)
        return new

    def forward(self, input: Tensor, state=None):
        """Run over a sequence.

        Parameters
        ----------
        input : Tensor of shape (B, T, input_size) (``(T, B, ...)`` if not batch_first)
        state : (h_lags, c) or None

        Returns
        -------
        output : Tensor of shape (B, T, hidden_size)
            ``h_t`` for every step.
        state : (h_lags, c)
            The final state (``h_lags`` newest first).
        """
        cell = self.cell
        cell._check_input(input, 3, "(batch, time, input_size)" if self.batch_first
                          else "(time, batch, input_size)")
        x = input if self.batch_first else input.transpose(0, 1)
        B = x.shape[0]
        if state is None:
            state = cell.initial_state(B, x)
        else:
            cell._check_state(state, B)
        h_lags, c = state
        hs = list(h_lags.unbind(1))
        xz = cell._input_projection(x)            # (B, T, 4H): one GEMM for all steps
        packed = cell._packed()
        ones = xz.new_ones(B, 1)
        outs = []
        for xz_t in xz.unbind(1):                 # unbind: one gradient stack, not T fills
            h, c = cell._step(xz_t, hs, c, packed, ones)
            hs = [h] + hs[:-1]
            outs.append(h)
        out = torch.stack(outs, dim=1) if outs else x.new_zeros(B, 0, cell.hidden_size)
        if not self.batch_first:
            out = out.transpose(0, 1)
        return out, (torch.stack(hs, dim=1), c)

    def extra_repr(self) -> str:
        return "" if self.batch_first else "batch_first=False"
