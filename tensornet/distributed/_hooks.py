"""signSGD with majority vote as a ``DistributedDataParallel`` communication hook.

DDP hands each bucket of local gradients to the hook instead of
all-reducing it. The hook packs the signs of the bucket (or of the
optimizer's momentum for those parameters) into bits, all-gathers the
packed bytes and writes the vote ``sign(sum of signs)`` back as the
bucket's gradient, on every rank the same. The optimizer then steps along
it: :class:`~tensornet.distributed.SignSGD` / :class:`~tensornet.distributed.Signum`
(which keep their momentum local, as in Bernstein et al. 2019), or plain
``torch.optim.SGD`` (the vote is ±1, so SGD's step is ``lr`` per coordinate).
"""

from dataclasses import dataclass

import torch
import torch.distributed as dist

from ._signs import (
    _all_gather_single,
    _pack_parts,
    packed_size,
    vote_from_packed,
    wire_bytes,
)

__all__ = ["MajorityVoteState", "majority_vote_hook", "register_majority_vote"]


@dataclass
class MajorityVoteState:
    """State of :func:`majority_vote_hook`: the process group, the optimizer and byte counts.

    Attributes
    ----------
    process_group : ProcessGroup or None
        ``None`` means the default group.
    optimizer : Signum, SignSGD or None
        Supplies the tensor whose signs are sent (its momentum); ``None``
        sends the signs of the gradients.
    steps : int
        Backward passes seen (buckets marked last).
    coordinates : int
        Gradient coordinates voted on, summed over all calls.
    payload_bytes : int
        Packed bytes this rank contributed, summed over all calls.
    """

    process_group: object = None
    optimizer: object = None
    steps: int = 0
    coordinates: int = 0
    payload_bytes: int = 0
    world_size: int = 1

    def traffic_per_step(self) -> dict:
        """Bytes per step of this rank: the vote's traffic against an fp32 all-reduce.

        Returns a dict with ``coordinates``, ``payload_bytes`` (packed signs
        contributed), ``sent_bytes`` (what the ring all-gather sends),
        ``allreduce_fp32_sent_bytes`` (what DDP's default fp32 ring
        all-reduce of the same gradients sends) and ``ratio`` of the two.
        Counted over the steps seen so far (buckets split as DDP split them).
        """
        steps = max(self.steps, 1)
        coords = self.coordinates / steps
        payload = self.payload_bytes / steps
        m = self.world_size
        sent = wire_bytes("all_gather", round(payload), m)
        fp32 = wire_bytes("all_reduce", round(4 * coords), m)
        return {"world_size": m, "coordinates": coords, "payload_bytes": payload,
                "sent_bytes": sent, "allreduce_fp32_sent_bytes": fp32,
                "ratio": fp32 / sent if sent else float("inf")}


# no ``from __future__ import annotations`` here: DDP compares the hook's annotations as objects
def majority_vote_hook(state: MajorityVoteState,
                       bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
    """DDP communication hook: the bucket's gradient becomes the majority vote of signs.

    Register it with ``ddp_model.register_comm_hook(state, majority_vote_hook)``
    or, more simply, :func:`register_majority_vote`. Every rank contributes
    ``ceil(n / 8)`` bytes for a bucket of ``n`` coordinates (one
    ``all_gather``); the result, in {-1, 0, 1} (0 on ties), is the same on
    every rank. See :mod:`tensornet.distributed._signs` for how zeros and ties
    are handled.
    """
    group = state.process_group
    buf = bucket.buffer()
    opt = state.optimizer
    if opt is not None:
        parts = [opt.vote_input(p, g) for p, g in zip(bucket.parameters(), bucket.gradients())]
        if sum(t.numel() for t in parts) != buf.numel():  # pragma: no cover - DDP layout guard
            raise RuntimeError(f"a bucket of {buf.numel()} coordinates holds gradients of "
                               f"{sum(t.numel() for t in parts)} coordinates; cannot vote on it")
    else:
        parts = [buf]
    rank = dist.get_rank(group)
    size = dist.get_world_size(group)
    state.world_size = size
    n = buf.numel()
    state.coordinates += n
    if bucket.is_last():
        state.steps += 1
    if size == 1:
        torch.sign(torch.cat([t.reshape(-1) for t in parts]), out=buf)
        fut = torch.futures.Future()
        fut.set_result(buf)
        return fut
    packed = _pack_parts(parts, zero_positive=rank % 2 == 0, device=buf.device)
    state.payload_bytes += packed_size(n)
    gathered = packed.new_empty(size * packed.numel())
    work = _all_gather_single(gathered, packed, group, async_op=True)

    def vote(_):
        return vote_from_packed(gathered.view(size, -1), n, out=buf)

    return work.get_future().then(vote)


def register_majority_vote(ddp_model, optimizer=None, *, process_group=None) -> MajorityVoteState:
    """Make a ``DistributedDataParallel`` model exchange gradient signs by majority vote.

    Parameters
    ----------
    ddp_model : torch.nn.parallel.DistributedDataParallel
    optimizer : SignSGD, Signum or None
        With a :class:`~tensornet.distributed.Signum`, each rank sends the
        signs of its own momentum (updated inside the hook) and ``step``
        applies the vote; with ``None`` the signs of the gradients are sent
        and any optimizer can apply the vote (``SGD(lr)`` then is signSGD).
    process_group : ProcessGroup, optional
        Default: DDP's group (the default group).

    Returns
    -------
    MajorityVoteState
        Holds the byte counts (:meth:`MajorityVoteState.traffic_per_step`).
    """
    from torch.nn.parallel import DistributedDataParallel

    if not isinstance(ddp_model, DistributedDataParallel):
        raise TypeError("ddp_model must be a torch.nn.parallel.DistributedDataParallel; got "
                        f"{type(ddp_model).__name__}")
    if optimizer is not None and not callable(getattr(optimizer, "vote_input", None)):
        raise TypeError("optimizer must be None or a tensornet.distributed SignSGD / Signum; got "
                        f"{type(optimizer).__name__} (other optimizers can apply the vote: pass "
                        "optimizer=None)")
    state = MajorityVoteState(process_group=process_group, optimizer=optimizer)
    ddp_model.register_comm_hook(state, majority_vote_hook)
    return state
