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

_MASKS_CACHE: dict = {}


def _masks(device) -> torch.Tensor:
    """``[1, 2, 4, ..., 128]`` as uint8 on ``device`` (cached)."""
    key = str(device)
    m = _MASKS_CACHE.get(key)
    if m is None:
        m = torch.tensor([1 << j for j in range(8)], dtype=torch.uint8, device=device)
        _MASKS_CACHE[key] = m
    return m


def packed_size(numel: int) -> int:
    """Bytes that :func:`pack_signs` produces for ``numel`` coordinates (``ceil(numel / 8)``)."""
    return (int(numel) + 7) // 8


def _check_tensor(x, name):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")


def _pack_parts(parts, zero_positive: bool, device) -> torch.Tensor:
    """Pack the signs of several tensors, one after the other, into one uint8 vector."""
    n = sum(t.numel() for t in parts)
    nb = packed_size(n)
    bits = torch.zeros(8 * nb, dtype=torch.bool, device=device)
    compare = torch.ge if zero_positive else torch.gt
    off = 0
    for t in parts:
        k = t.numel()
        compare(t.reshape(-1), 0, out=bits[off:off + k])
        off += k
    b = bits.view(torch.uint8).view(nb, 8)
    out = b[:, 0].clone()
    for j in range(1, 8):                      # 8 strided passes over n / 8 bytes
        out.bitwise_or_(b[:, j].bitwise_left_shift(j))
    return out


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
    return _pack_parts([x], zero_positive, x.device)


def _unpack_bits(packed: torch.Tensor, numel: int) -> torch.Tensor:
    """``(n_bytes,)`` uint8 -> ``(numel,)`` bool bits."""
    return packed.unsqueeze(-1).bitwise_and(_masks(packed.device)).ne(0).reshape(-1)[:numel]


def unpack_signs(packed: torch.Tensor, numel: int) -> torch.Tensor:
    """The ``numel`` signs (``int8``, ±1) held in the bytes ``packed`` (inverse of :func:`pack_signs`)."""
    _check_tensor(packed, "packed")
    if packed.dtype != torch.uint8:
        raise TypeError(f"packed must be a uint8 tensor; got dtype {packed.dtype}")
    if not 0 <= int(numel) <= 8 * packed.numel():
        raise ValueError(f"numel must be in [0, {8 * packed.numel()}] for {packed.numel()} "
                         f"packed bytes; got {numel}")
    return _unpack_bits(packed.reshape(-1), int(numel)).to(torch.int8) * 2 - 1


def _vote_planes(rows: torch.Tensor):
    """Bit planes ``(positive, tie)`` of the vote over the rows of packed signs.

    The number of +1 per coordinate is counted in bit-sliced form (a ripple
    of half adders over whole bytes, ``O(M log M)`` passes over ``n / 8``
    bytes) and compared with ``M / 2``: positive where more than half are
    +1, tie where exactly half are (even ``M`` only).
    """
    m = rows.shape[0]
    planes = [torch.zeros_like(rows[0]) for _ in range(m.bit_length())]  # LSB first
    for row in rows:
        carry = row
        for i, c in enumerate(planes):
            planes[i] = c ^ carry
            carry = c & carry
    half = m // 2
    gt = torch.zeros_like(rows[0])
    eq = torch.full_like(rows[0], 0xFF)
    for i in range(len(planes) - 1, -1, -1):     # compare the count with ``half``, MSB first
        if (half >> i) & 1:
            eq &= planes[i]
        else:
            gt |= eq & planes[i]
            eq &= ~planes[i]
    return gt, (eq if m % 2 == 0 else None)


def _expand_vote(positive, tie, flat, numel):
    """Write ``2 positive - 1 + tie`` bit by bit into ``flat`` (8 strided passes over it)."""
    full, rem = divmod(numel, 8)
    cols = flat[:8 * full].view(full, 8)
    for j in range(8):
        v = positive.bitwise_right_shift(j).bitwise_and_(1).to(torch.int8).mul_(2).sub_(1)
        if tie is not None:
            v.add_(tie.bitwise_right_shift(j).bitwise_and_(1).to(torch.int8))
        cols[:, j].copy_(v[:full])
        if j < rem:
            flat[8 * full + j] = v[full]


def vote_from_packed(gathered: torch.Tensor, numel: int, dtype=torch.float32, *,
                     out: torch.Tensor | None = None) -> torch.Tensor:
    """Majority vote over the rows of ``gathered`` (one row of packed signs per rank).

    Returns ``sign(sum_m s_m)`` for the first ``numel`` coordinates, with
    ``0`` where the votes tie, as a tensor of ``dtype`` (or written into the
    flat tensor ``out``). The votes are counted on the packed bytes; only
    the result is expanded to one value per coordinate.

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
    numel = int(numel)
    if not 0 <= numel <= 8 * gathered.shape[1]:
        raise ValueError(f"numel must be in [0, {8 * gathered.shape[1]}] for rows of "
                         f"{gathered.shape[1]} bytes; got {numel}")
    if out is None:
        out = torch.empty(numel, dtype=dtype, device=gathered.device)
    elif out.numel() != numel:
        raise ValueError(f"out must have {numel} elements; got {out.numel()}")
    positive, tie = _vote_planes(gathered)
    _expand_vote(positive, tie, out.view(-1), numel)
    return out


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
    gathered = packed.new_empty(size * packed.numel())
    _all_gather_single(gathered, packed, group, async_op=False)
    return vote_from_packed(gathered.view(size, -1), x.numel(), x.dtype).view_as(x)


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
