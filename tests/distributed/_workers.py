"""What each gloo rank runs in tests/distributed/test_ddp.py, and the single-process references.

One spawn of two ranks runs every scenario (starting processes is the
slow part on a shared 2-core machine); each rank saves its numbers with
``torch.save`` and the test process compares them with references it
computes itself.
"""

from __future__ import annotations

import os

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from tensornet.distributed import (
    Signum,
    majority_vote,
    prune_ranks_distributed,
    register_majority_vote,
    replica_deviation,
)
from tensornet.nn import CPLinear, TTLinear, TuckerConv2d, TuckerLinear
from tensornet.optim import (
    AdaBreg,
    LinBreg,
    RankL1,
    low_rank_init,
    prune_ranks,
    rank_param_groups,
)

GLOBAL_BATCH = 16
STEPS = 6


# ------------------------------------------------------------------ models and data
def mlp_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        CPLinear(24, 12, rank=6, in_shape=(2, 3, 4), out_shape=(3, 4)), nn.Tanh(),
        TuckerLinear(12, 12, rank=(2, 3, 3, 2), in_shape=(3, 4), out_shape=(3, 4)), nn.Tanh(),
        TTLinear(12, 12, rank=(1, 4, 1), in_shape=(3, 4), out_shape=(3, 4)), nn.Tanh(),
        nn.Linear(12, 3))


def conv_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(TuckerConv2d(2, 4, 3, rank=(3, 2), padding=1), nn.Tanh(),
                         nn.Flatten(), CPLinear(64, 3, rank=4, in_shape=(4, 16), out_shape=(3,)))


def plain_mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(24, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU(),
                         nn.Linear(8, 3))


def batches(kind, steps=STEPS, seed=1):
    """``steps`` global batches ``(x, y)`` of a fixed regression task."""
    g = torch.Generator().manual_seed(seed)
    shape = (GLOBAL_BATCH, 24) if kind == "mlp" else (GLOBAL_BATCH, 2, 4, 4)
    teacher = torch.randn(int(torch.tensor(shape[1:]).prod()), 3, generator=g)
    out = []
    for _ in range(steps):
        x = torch.randn(shape, generator=g)
        out.append((x, torch.tanh(x.flatten(1) @ teacher / 4)))
    return out


def local(batch, rank, world_size):
    x, y = batch
    n = x.shape[0] // world_size
    return x[rank * n:(rank + 1) * n], y[rank * n:(rank + 1) * n]


def train(model, opt, data):
    for x, y in data:
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    return model


def linbreg(model):
    return LinBreg(rank_param_groups(model, reg=RankL1(0.02)), lr=0.2)


def adabreg(model):
    return AdaBreg(rank_param_groups(model, reg=RankL1(0.01)), lr=0.01)


def state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def ranks_of(report):
    return {name: dict(r) for name, r in report.ranks().items()}


# ------------------------------------------------------------------ single-process references
def reference_equivalence():
    out = {}
    m = low_rank_init(mlp_model(), rank=2)
    out["linbreg"] = state(train(m, linbreg(m), batches("mlp")))
    m = conv_model()
    out["adabreg_conv"] = state(train(m, adabreg(m), batches("conv")))
    return out


def reference_pruning():
    m = low_rank_init(mlp_model(), rank=2)
    train(m, linbreg(m), batches("mlp"))
    report = prune_ranks(m)
    model = report.model
    train(model, linbreg(model), batches("mlp", steps=3, seed=2))
    return {"ranks": ranks_of(report), "after": state(model)}


def _signs_sent(t, worker):
    """The ±1 that worker ``worker`` sends for ``t`` (exact zeros: +1 on even, -1 on odd ranks)."""
    s = torch.sign(t)
    return torch.where(s == 0, torch.full_like(s, 1.0 if worker % 2 == 0 else -1.0), s)


def reference_vote(tensors):
    """Hand-computed majority vote of the workers' tensors."""
    return torch.sign(sum(_signs_sent(t, w) for w, t in enumerate(tensors)))


def reference_signum(world_size, momentum, lr, steps=4):
    """Signum with majority vote simulated in one process: one replica per worker."""
    replicas = [plain_mlp() for _ in range(world_size)]
    params = [list(r.parameters()) for r in replicas]
    bufs = [[torch.zeros_like(p) for p in ps] for ps in params]
    for batch in batches("mlp", steps=steps, seed=3):
        sent = []
        for w, r in enumerate(replicas):
            r.zero_grad()
            x, y = local(batch, w, world_size)
            nn.functional.mse_loss(r(x), y).backward()
            vec = []
            for p, m in zip(params[w], bufs[w]):
                if momentum > 0:
                    m.mul_(momentum).add_(p.grad, alpha=1 - momentum)
                    vec.append(m.clone())
                else:
                    vec.append(p.grad.clone())
            sent.append(vec)
        with torch.no_grad():
            for i in range(len(params[0])):
                vote = reference_vote([sent[w][i] for w in range(world_size)])
                for w in range(world_size):
                    params[w][i].add_(vote, alpha=-lr)
    return state(replicas[0])


# ------------------------------------------------------------------ what every rank runs
def scenario_all(rank, world_size, out_dir):
    out = {}
    # A. tensorized layers + LinBreg / AdaBreg under DDP, each rank on its half of the batch
    m = low_rank_init(mlp_model(), rank=2)
    ddp = DDP(m)
    opt = linbreg(m)
    train(ddp, opt, [local(b, rank, world_size) for b in batches("mlp")])
    out["linbreg"] = state(m)
    out["deviation_linbreg"] = replica_deviation(ddp)
    c = conv_model()
    ddp_c = DDP(c)
    train(ddp_c, adabreg(c), [local(b, rank, world_size) for b in batches("conv")])
    out["adabreg_conv"] = state(c)

    # B. pruning decided identically: rank 1 drifts (an extra zero component) before pruning
    if rank == 1:
        with torch.no_grad():
            m[0].factors[0][:, 1] = 0.0    # an active component
    report = prune_ranks_distributed(ddp)
    out["ranks"] = ranks_of(report)
    pruned = report.model
    ddp2 = DDP(pruned)
    train(ddp2, linbreg(pruned), [local(b, rank, world_size)
                                  for b in batches("mlp", steps=3, seed=2)])
    out["after"] = state(pruned)
    out["deviation_after"] = replica_deviation(ddp2)
    with torch.no_grad():
        if rank == 1:
            pruned[-1].weight[0, 0] += 0.25
    out["deviation_perturbed"] = replica_deviation(pruned)

    # C. majority vote: the function on crafted tensors (zeros, ties, a length not a multiple of 8)
    g = torch.Generator().manual_seed(10 + rank)
    x = torch.randn(13, generator=g)
    x[[2, 5]] = 0.0
    if rank == 0:
        x[7] = 0.0
    out["vote_input"] = x
    out["vote"] = majority_vote(x)
    # ... and as a DDP hook, several buckets, with Signum (momentum) and with plain SGD
    for name, momentum in (("signum", 0.9), ("sgd_hook", 0.0)):
        net = plain_mlp()
        ddp_v = DDP(net, bucket_cap_mb=0.0005)   # a few hundred coordinates per bucket
        if momentum > 0:
            opt_v = Signum(net.parameters(), lr=0.01, momentum=momentum)
            hook = register_majority_vote(ddp_v, opt_v)
        else:
            opt_v = torch.optim.SGD(net.parameters(), lr=0.01)
            hook = register_majority_vote(ddp_v)
        train(ddp_v, opt_v, [local(b, rank, world_size) for b in batches("mlp", 4, seed=3)])
        out[name] = state(net)
        out[name + "_traffic"] = hook.traffic_per_step()
        out[name + "_deviation"] = replica_deviation(net)
    torch.save(out, os.path.join(out_dir, f"rank{rank}.pt"))


# ------------------------------------------------------------------ GPU (NCCL): rank r on cuda:r
def scenario_gpu(rank, world_size, out_dir):  # pragma: no cover - needs GPUs
    dev = torch.device("cuda", rank)
    out = {}
    m = low_rank_init(mlp_model(), rank=2).to(dev)
    ddp = DDP(m, device_ids=[rank])
    opt = linbreg(m)
    data = [tuple(t.to(dev) for t in local(b, rank, world_size)) for b in batches("mlp")]
    train(ddp, opt, data)
    out["linbreg"] = {k: v.cpu() for k, v in state(m).items()}
    report = prune_ranks_distributed(ddp)
    out["ranks"] = ranks_of(report)
    g = torch.Generator().manual_seed(10 + rank)
    x = torch.randn(1003, generator=g)
    x[::7] = 0.0
    out["vote_input"] = x
    out["vote"] = majority_vote(x.to(dev)).cpu()
    net = plain_mlp().to(dev)
    ddp_v = DDP(net, device_ids=[rank], bucket_cap_mb=0.0005)
    opt_v = Signum(net.parameters(), lr=0.01, momentum=0.9)
    register_majority_vote(ddp_v, opt_v)
    train(ddp_v, opt_v, [tuple(t.to(dev) for t in local(b, rank, world_size))
                         for b in batches("mlp", 4, seed=3)])
    out["signum"] = {k: v.cpu() for k, v in state(net).items()}
    out["signum_deviation"] = replica_deviation(net)
    torch.save(out, os.path.join(out_dir, f"rank{rank}.pt"))


# ------------------------------------------------------------------ three ranks: a real majority
def scenario_vote3(rank, world_size, out_dir):
    """An odd world: every coordinate has a 2-1 or 3-0 majority (no ties), SignSGD and Signum."""
    from tensornet.distributed import SignSGD

    out = {}
    g = torch.Generator().manual_seed(20 + rank)
    x = torch.randn(21, generator=g)
    x[3] = 0.0                           # a zero on every rank: +1, -1, +1 -> +1
    out["vote_input"] = x
    out["vote"] = majority_vote(x)
    for name, momentum in (("signsgd", 0.0), ("signum", 0.9)):
        net = plain_mlp()
        ddp_v = DDP(net, bucket_cap_mb=0.0005)
        opt_v = (SignSGD(net.parameters(), lr=0.01) if momentum == 0
                 else Signum(net.parameters(), lr=0.01, momentum=momentum))
        hook = register_majority_vote(ddp_v, opt_v)
        train(ddp_v, opt_v, [local(b, rank, world_size) for b in batches("mlp", 4, seed=3)])
        out[name] = state(net)
        out[name + "_traffic"] = hook.traffic_per_step()
        out[name + "_deviation"] = replica_deviation(net)
    torch.save(out, os.path.join(out_dir, f"rank{rank}.pt"))
