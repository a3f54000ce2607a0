"""Start ``world_size`` gloo processes on the CPU (or NCCL ones on GPUs) for a test, with a timeout.

The rendezvous goes through a file store in a fresh temporary directory,
so no port has to be found (and none can be taken by a neighbour).
Each rank runs one intra-op thread (the machine's cores are shared).
"""

from __future__ import annotations

import datetime
import os
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _entry(rank, fn, world_size, init_method, backend, args):
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(1)
    if backend == "nccl":  # pragma: no cover - needs GPUs
        torch.cuda.set_device(rank)
    dist.init_process_group(backend, init_method=init_method, rank=rank, world_size=world_size,
                            timeout=datetime.timedelta(seconds=90))
    try:
        fn(rank, world_size, *args)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def run_ranks(fn, *args, world_size: int = 2, timeout: float = 240.0,
              backend: str = "gloo") -> None:
    """Run ``fn(rank, world_size, *args)`` on every rank of a fresh process group.

    ``backend="nccl"`` puts rank ``r`` on GPU ``r``.

    ``fn`` must be importable (a module-level function). Raises if any rank
    fails, and ``TimeoutError`` (after killing the ranks) past ``timeout``.
    """
    with tempfile.TemporaryDirectory(prefix="tn-dist-") as tmp:
        init = "file://" + os.path.join(tmp, "store")
        ctx = mp.start_processes(_entry, args=(fn, world_size, init, backend, args),
                                 nprocs=world_size,
                                 join=False, start_method="spawn")
        deadline = time.monotonic() + timeout
        try:
            while not ctx.join(timeout=max(0.5, min(5.0, deadline - time.monotonic()))):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{world_size} gloo ranks did not finish in {timeout:.0f} s")
        finally:
            for p in ctx.processes:
                if p.is_alive():
                    p.kill()
                    p.join(5)
