"""Helpers for tensorized layers and rank pruning under ``DistributedDataParallel``.

DDP itself needs nothing special from tensornet: tensorized layers are
ordinary modules, and LinBreg / AdaBreg / ProxSGD are ordinary optimizers
that step on DDP's averaged gradients, so every rank holds the same
parameters. What DDP does not cover is changing the model's *shape*:
:func:`~tensornet.optim.prune_ranks` replaces layers by smaller ones, and
every rank must cut the same components. :func:`prune_ranks_distributed`
makes the parameters bitwise identical (broadcast from one rank), prunes,
and checks that every rank ended with the same shapes;
:func:`replica_deviation` measures how far the replicas are apart.
"""

from __future__ import annotations

import hashlib

import torch
import torch.distributed as dist

__all__ = ["broadcast_module", "prune_ranks_distributed", "replica_deviation"]


def _unwrap(model):
    from torch.nn.parallel import DistributedDataParallel

    if isinstance(model, DistributedDataParallel):
        return model.module
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module or DistributedDataParallel; got "
                        f"{type(model).__name__}")
    return model


def _group_size(group):
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return dist.get_world_size(group)


def _tensors(module):
    for name, p in module.named_parameters():
        yield name, p
    for name, b in module.named_buffers():
        yield name, b


def _signature(module) -> int:
    """A hash of the names, shapes and dtypes of ``module``'s parameters and buffers."""
    h = hashlib.sha256()
    for name, t in _tensors(module):
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
    return int.from_bytes(h.digest()[:7], "little")


def _device_of(module, group):
    backend = dist.get_backend(group)
    if backend == "nccl":  # pragma: no cover - needs GPUs
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _same_on_all_ranks(value: int, module, group) -> bool:
    t = torch.tensor([value, -value], dtype=torch.int64, device=_device_of(module, group))
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=group)
    return int(t[0]) == value and int(t[1]) == -value


def _global_rank(src, group):
    if group is None:
        return src
    return dist.get_global_rank(group, src)


@torch.no_grad()
def broadcast_module(model, src: int = 0, process_group=None) -> torch.nn.Module:
    """Copy rank ``src``'s parameters and buffers into every rank's ``model``, in place.

    A collective over ``process_group``; a no-op without an initialised
    process group or with one rank. The modules must have the same
    structure on every rank (checked: ``RuntimeError`` otherwise).

    Returns the (unwrapped) module.
    """
    module = _unwrap(model)
    if _group_size(process_group) == 1:
        return module
    if not _same_on_all_ranks(_signature(module), module, process_group):
        raise RuntimeError("the models differ in structure (parameter names, shapes or dtypes) "
                           "across ranks; cannot broadcast one onto the others")
    root = _global_rank(src, process_group)
    for _, t in _tensors(module):
        dist.broadcast(t.data, root, group=process_group)
    return module


@torch.no_grad()
def replica_deviation(model, src: int = 0, process_group=None) -> float:
    """Largest absolute difference between any rank's parameters/buffers and rank ``src``'s.

    A collective; every rank gets the same float (0.0 for bitwise-identical
    replicas, ``inf`` when the structures differ). Use it to check that a
    data-parallel run kept its replicas together.
    """
    module = _unwrap(model)
    if _group_size(process_group) == 1:
        return 0.0
    if not _same_on_all_ranks(_signature(module), module, process_group):
        return float("inf")
    root = _global_rank(src, process_group)
    device = _device_of(module, process_group)
    dev = torch.zeros((), dtype=torch.float64, device=device)
    for _, t in _tensors(module):
        ref = t.detach().clone()
        dist.broadcast(ref, root, group=process_group)
        if not t.numel():
            continue
        if t.is_floating_point() or t.is_complex():
            diff = (t.detach() - ref).abs().max().to(device=device, dtype=torch.float64)
        else:
            diff = torch.tensor(0.0 if torch.equal(ref, t) else float("inf"),
                                dtype=torch.float64, device=device)
        dev = torch.maximum(dev, diff)
    dist.all_reduce(dev, op=dist.ReduceOp.MAX, group=process_group)
    return float(dev)


def prune_ranks_distributed(model, *, tol: float = 0.0, example_input=None, src: int = 0,
                            process_group=None):
    """:func:`tensornet.optim.prune_ranks` applied identically on every rank.

    Rank ``src``'s parameters are broadcast first, so every rank decides
    on bitwise-identical weights and cuts the same components; afterwards
    the pruned shapes are compared across ranks (``RuntimeError`` if they
    differ). A collective over ``process_group``; without an initialised
    process group it is :func:`~tensornet.optim.prune_ranks`.

    The layers are replaced by smaller ones, so a ``DistributedDataParallel``
    wrapper and the optimizer refer to the old parameters afterwards: wrap
    ``report.model`` in a new DDP and build a new optimizer.

    Parameters
    ----------
    model : nn.Module or DistributedDataParallel
        Pruned in place (its ``.module`` for DDP).
    tol, example_input
        As for :func:`~tensornet.optim.prune_ranks`.
    src : int, default 0
        Rank (in ``process_group``) whose weights decide.
    process_group : ProcessGroup, optional

    Returns
    -------
    tensornet.optim.PruneReport
    """
    from ..optim import prune_ranks

    module = _unwrap(model)
    multi = _group_size(process_group) > 1
    if multi:
        broadcast_module(module, src=src, process_group=process_group)
    report = prune_ranks(module, tol=tol, example_input=example_input)
    if multi and not _same_on_all_ranks(_signature(report.model), report.model, process_group):
        raise RuntimeError("rank pruning gave different shapes on different ranks")
    return report
