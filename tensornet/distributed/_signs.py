"""Bit-packed signs and the majority vote of signSGD (Bernstein et al. 2018, 2019).

Every rank turns a flat tensor into one bit per coordinate (8 coordinates
per ``uint8``), the packed bytes of all ranks are gathered with one
``torch.distributed`` all-gather, and every rank computes the same vote
``sign(sum_m s_m)`` from them, where ``s_m = ±1`` is rank ``m``'s sign.

Conventions (one bit cannot carry three values):

* an exact local zero is sent as ``+1`` by even ranks and ``-1`` by odd
  ranks, so a coordinate that is zero on every one of an even number of
  ranks is a tie;
* a tie (the ±1 cancel, only possible for an even number of ranks) gives
  ``0``: that coordinate does not move this step;
* with a single rank nothing is sent and the vote is ``sign(x)`` itself
  (zeros stay zero), i.e. plain signSGD.

Bit ``j`` of byte ``b`` holds coordinate ``8 b + j``; the last byte is
padded with zero bits that the vote ignores.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = [
    "majority_vote",
    "pack_signs",
    "packed_size",
    "unpack_signs",
    "vote_from_packed",
    "wire_bytes",
]

_SHIFTS_CACHE: dict = {}


def _shifts(device) -> torch.Tensor:
    key = str(device)
    s = _SHIFTS_CACHE.get(key)
    if s is None:
        s = torch.arange(8, dtype=torch.uint8, device=device)
        _SHIFTS_CACHE[key] = s
    return s


def packed_size(numel: int) -> int:
    """Bytes that :func:`pack_signs` produces for ``numel`` coordinates (``ceil(numel / 8)``)."""
    return (int(numel) + 7) // 8


def _check_tensor(x, name):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")


def pack_signs(x: torch.Tensor, *, zero_positive: bool = True) -> torch.Tensor:
    """Pack the signs of ``x`` (flattened) into bits: 1 for positive, 0 for negative.

    Parameters
    ----------
    x : Tensor
        Any shape and floating dtype, on any device.
    zero_positive : bool, default True
        Whether an exact zero is packed as positive (1) or negative (0).

    Returns
    -------
    Tensor of dtype uint8 and shape ``(ceil(x.numel() / 8),)``
        On the device of ``x``.

    Examples
    --------
    >>> import torch
    >>> from tensornet.distributed import pack_signs, unpack_signs
    >>> x = torch.tensor([0.5, -1.0, 2.0, 0.0, -3.0])
    >>> pack_signs(x)                     # bits 1, 0, 1, 1, 0 -> 1 + 4 + 8
    tensor([13], dtype=torch.uint8)
    >>> unpack_signs(pack_signs(x), x.numel())
    tensor([ 1, -1,  1,  1, -1], dtype=torch.int8)
    """
    _check_tensor(x, "x")
    flat = x.reshape(-1)
    bits = (flat >= 0) if zero_positive else (flat > 0)
    n = bits.numel()
    pad = (-n) % 8
    if pad:
        bits = torch.cat([bits, bits.new_zeros(pad)])
    return (bits.view(-1, 8).to(torch.uint8) << _shifts(x.device)).sum(-1, dtype=torch.uint8)


def _unpack_bits(packed: torch.Tensor, numel: int) -> torch.Tensor:
    """``(..., n_bytes)`` uint8 -> ``(..., numel)`` uint8 bits."""
    bits = (packed.unsqueeze(-1) >> _shifts(packed.device)) & 1
    return bits.reshape(*packed.shape[:-1], -1)[..., :numel]


def unpack_signs(packed: torch.Tensor, numel: int) -> torch.Tensor:
    """The ``numel`` signs (``int8``, ±1) held in the bytes ``packed`` (inverse of :func:`pack_signs`)."""
    _check_tensor(packed, "packed")
    if packed.dtype != torch.uint8:
        raise TypeError(f"packed must be a uint8 tensor; got dtype {packed.dtype}")
    if not 0 <= int(numel) <= 8 * packed.numel():
        raise ValueError(f"numel must be in [0, {8 * packed.numel()}] for {packed.numel()} "
                         f"packed bytes; got {numel}")
    return _unpack_bits(packed.reshape(-1), int(numel)).to(torch.int8) * 2 - 1


def vote_from_packed(gathered: torch.Tensor, numel: int, dtype=torch.float32) -> torch.Tensor:
    """Majority vote over the rows of ``gathered`` (one row of packed signs per rank).

    Returns ``sign(sum_m s_m)`` for the first ``numel`` coordinates, with
    ``0`` where the votes tie, as a tensor of ``dtype``. Memory stays at a
    few bytes per coordinate whatever the number of rows.

    Examples
    --------
    >>> import torch
    >>> from tensornet.distributed import pack_signs, vote_from_packed
    >>> a = torch.tensor([1.0, 1.0, -1.0, -1.0])
    >>> b = torch.tensor([1.0, -1.0, 1.0, -1.0])
    >>> c = torch.tensor([1.0, -1.0, -1.0, 1.0])
    >>> rows = torch.stack([pack_signs(v) for v in (a, b, c)])
    >>> vote_from_packed(rows, 4)
    tensor([ 1., -1., -1., -1.])
    >>> vote_from_packed(rows[:2], 4)     # two ranks: disagreements tie at 0
    tensor([ 1.,  0.,  0., -1.])
    """
    _check_tensor(gathered, "gathered")
    if gathered.dtype != torch.uint8 or gathered.dim() != 2:
        raise TypeError(f"gathered must be a 2-d uint8 tensor (ranks x bytes); got dtype "
                        f"{gathered.dtype} and shape {tuple(gathered.shape)}")
    n_ranks = gathered.shape[0]
    count_dtype = torch.int16 if n_ranks < 2**14 else torch.int32
    count = torch.zeros(int(numel), dtype=count_dtype, device=gathered.device)
    for row in gathered:
        count += _unpack_bits(row, int(numel))
    # sum of ±1 = 2 * (number of +1) - n_ranks
    return torch.sign(2 * count - n_ranks).to(dtype)


def _rank_and_size(group):
    if not (dist.is_available() and dist.is_initialized()):
        return 0, 1
    return dist.get_rank(group), dist.get_world_size(group)


def _all_gather_single(out, inp, group, async_op):
    fn = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
    return fn(out, inp, group=group, async_op=async_op)


def majority_vote(x: torch.Tensor, group=None) -> torch.Tensor:
    """``sign(sum over ranks of sign(x))``, computed on every rank from gathered bits.

    A collective: every rank of ``group`` must call it with a tensor of the
    same shape. Sends ``ceil(x.numel() / 8)`` bytes per rank through one
    ``all_gather``; without an initialised process group (or with one rank)
    it returns ``sign(x)``. Ties give 0 (see the module notes for zeros).

    Parameters
    ----------
    x : Tensor
    group : ProcessGroup, optional
        Default: the default process group.

    Returns
    -------
    Tensor
        Same shape, dtype and device as ``x``, entries in {-1, 0, 1}.
    """
    _check_tensor(x, "x")
    rank, size = _rank_and_size(group)
    if size == 1:
        return torch.sign(x)
    packed = pack_signs(x, zero_positive=rank % 2 == 0)
    out = packed.new_empty(size * packed.numel())
    _all_gather_single(out, packed, group, async_op=False)
    return vote_from_packed(out.view(size, -1), x.numel(), x.dtype).view_as(x)


def wire_bytes(collective: str, payload_bytes: int, world_size: int) -> int:
    """Bytes one rank sends for a collective under the ring algorithms (gloo, NCCL).

    * ``'all_gather'`` of ``payload_bytes`` per rank: ``(M - 1) * payload``
      (every rank's block passes every other rank once) -- grows with M.
    * ``'all_reduce'`` of ``payload_bytes``: ``2 (M - 1) / M * payload``
      (reduce-scatter then all-gather) -- about twice the payload for any M.

    Message headers and the rendezvous store are not counted.

    Examples
    --------
    >>> from tensornet.distributed import wire_bytes
    >>> n = 1_000_000                                    # fp32 gradient of 1M coordinates
    >>> wire_bytes("all_reduce", 4 * n, 2) / wire_bytes("all_gather", n // 8, 2)
    32.0
    >>> wire_bytes("all_reduce", 4 * n, 8) / wire_bytes("all_gather", n // 8, 8)
    8.0
    """
    m = int(world_size)
    if m < 1:
        raise ValueError(f"world_size must be >= 1; got {world_size!r}")
    if collective == "all_gather":
        return (m - 1) * int(payload_bytes)
    if collective == "all_reduce":
        return (2 * (m - 1) * int(payload_bytes)) // m
    raise ValueError(f"collective must be 'all_gather' or 'all_reduce'; got {collective!r}")
