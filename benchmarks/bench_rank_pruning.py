"""Learning ranks while training: Bregman (LinBreg / AdaBreg + RankL1) against the alternatives.

Contenders (one process, same data, same architecture and maximum ranks,
threads pinned equally, several seeds; whole training runs are timed, so
the spread is over seeds):

(a) ``LinBreg`` / ``AdaBreg`` with ``RankL1``, started at a low rank with
    :func:`tensornet.optim.low_rank_init` (TT 1, Tucker 2, CP 8); zero
    components cut with :func:`tensornet.optim.prune_ranks`, then fine-tuned
    with Adam (MNIST: 11 + 4 epochs, the 15 epochs of the full-rank run);
(b) Adam at the full (maximum) rank, then post-hoc truncation (TT: TT
    rounding of the cores; Tucker: HOOI of the weight; CP: CP-ALS of the
    weight, all from ``tensornet.decomposition`` via the layers'
    ``from_factors`` / ``from_dense``) at several rank levels, each
    fine-tuned with Adam; its time includes the full-rank run;
(c) proximal SGD (``tensornet.optim.ProxSGD``) with the same ``RankL1``
    penalty from the usual dense initialisation, zero components cut and
    fine-tuned like (a);
(d) tensorly-torch's tensor lasso (``tltorch.tensor_hooks``): TT / Tucker /
    CP tensors of the same shape and maximum ranks with lasso weights on
    the ranks, Adam, the ranks read off the non-zero lasso weights.

Tasks:

* planted: a TT teacher 64 -> 64 of TT ranks (2, 3) generates noisy data; the
  students have ranks (8, 12). Test RMSE, recovered ranks, parameters,
  FLOPs and training time.
* mnist: the 5,000-digit MNIST subset (4,000 train / 1,000 test), an MLP
  784 -> 256 -> 256 -> 10 whose two hidden layers are TT, Tucker or CP
  layers. Test accuracy against the parameters of the factorized layers,
  their FLOPs per sample, and the training time. "At equal accuracy"
  compares each Bregman model with the smallest model of a baseline whose
  mean accuracy is at most 0.5 points lower.

The inverse-scale-space path of one AdaBreg run (test accuracy against the
parameters it would keep, after every epoch) is plotted to
``benchmarks/results/bench_rank_pruning_path.png``.

    python -m benchmarks.bench_rank_pruning [--quick] [--tasks planted,mnist]
        [--kinds tt,tucker,cp] [--seeds N]
"""

from __future__ import annotations

import math
import statistics
import time

from benchmarks import _harness as H

NAME = "bench_rank_pruning"
SECTION = "rank_pruning"


# ---------------------------------------------------------------------------
# shared helpers
# ---------------------------------------------------------------------------

def _torch():
    import torch

    return torch


def factorized_size(model, example):
    """(params of the tensorized layers, their FLOPs per sample, total params)."""
    from tensornet.optim._ranks import _flops, _input_sizes, tensorized_layers

    layers = tensorized_layers(model)
    sizes = _input_sizes(model, layers, example)
    params = sum(sum(p.numel() for p in layer.parameters()) for _, layer in layers)
    flops = sum(_flops(layer, sizes.get(name)) for name, layer in layers)
    return params, flops, sum(p.numel() for p in model.parameters())


def ranks_of(model):
    from tensornet.optim import rank_groups

    out = {}
    for g in rank_groups(model):
        out.setdefault(g.layer, []).append(g.size)
    return out


def _median_range(xs):
    xs = list(xs)
    if not xs:
        return float("nan"), float("nan"), float("nan")
    return statistics.median(xs), min(xs), max(xs)


# ---------------------------------------------------------------------------
# tensorly-torch tensor lasso models (imported only here: tltorch sets TensorLy's
# global backend at import, which is acceptable in a benchmark script)
# ---------------------------------------------------------------------------

def _tltorch_linear(kind, in_shape, out_shape, rank, bias=True):
    torch = _torch()
    import tltorch
    from torch import nn

    class LassoLinear(nn.Module):
        """A linear layer whose weight is a tltorch factorized tensor (lasso-hookable)."""

        def __init__(self):
            super().__init__()
            self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)
            self.kind = kind
            n_in, n_out = math.prod(in_shape), math.prod(out_shape)
            std = math.sqrt(1.0 / (3 * n_in))
            if kind == "tt":                       # TT of W[(o1 i1), (o2 i2), ...]
                shape = tuple(o * i for o, i in zip(out_shape, in_shape))
                self.weight = tltorch.FactorizedTensor.new(shape, rank=rank, factorization="TT")
            elif kind == "tucker":
                shape = tuple(out_shape) + tuple(in_shape)
                self.weight = tltorch.FactorizedTensor.new(shape, rank=rank,
                                                           factorization="Tucker")
            else:
                shape = tuple(out_shape) + tuple(in_shape)
                self.weight = tltorch.FactorizedTensor.new(shape, rank=rank, factorization="CP")
            self.weight.normal_(0, std)
            self.bias = nn.Parameter(torch.empty(n_out).uniform_(-1 / math.sqrt(n_in),
                                                                 1 / math.sqrt(n_in)))
            self.n_in, self.n_out = n_in, n_out

        def dense(self):
            w = self.weight()                      # forward hooks (the lasso) apply here
            full = w.to_tensor()
            if self.kind == "tt":
                d = len(self.in_shape)
                inter = []
                for o, i in zip(self.out_shape, self.in_shape):
                    inter += [o, i]
                full = full.reshape(inter).permute(list(range(0, 2 * d, 2))
                                                   + list(range(1, 2 * d, 2)))
            return full.reshape(self.n_out, self.n_in)

        def forward(self, x):
            return nn.functional.linear(x, self.dense(), self.bias)

    return LassoLinear()


def _lasso_adam(model, lr, lasso_lr=1e-2):
    """Adam, with a larger step for tltorch's lasso weights.

    Under Adam every weight moves by about ``lr`` per step whatever the penalty,
    so with ``lr = 1e-3`` the lasso weights (starting at 1) cannot reach tltorch's
    1e-6 threshold within the run; ``lasso_lr = 1e-2`` lets them.
    """
    torch = _torch()
    lw = [p for n, p in model.named_parameters() if "lasso_weights" in n]
    rest = [p for n, p in model.named_parameters() if "lasso_weights" not in n]
    return torch.optim.Adam([{"params": rest}, {"params": lw, "lr": lasso_lr}], lr=lr)


def _tltorch_ranks(layer):
    """Ranks left after the lasso: non-zero lasso weights per rank dimension."""
    ws = layer.weight.lasso_weights
    if layer.kind == "cp":
        # tltorch 0.5's CPLasso penalises its lasso weights but never multiplies them into
        # the CP tensor (its hook returns the tensor unchanged), so zero lasso weights cut
        # nothing from the function: every component stays.
        return [int(ws.numel())]
    return [int((w.detach() != 0).sum()) for w in ws]


def _tensornet_equivalent(kind, in_shape, out_shape, ranks, bias=True):
    """The tensornet layer with the ranks a tltorch lasso model kept (for params / FLOPs)."""
    from tensornet.nn import CPLinear, TTLinear, TuckerLinear

    n_in, n_out = math.prod(in_shape), math.prod(out_shape)
    ranks = [max(1, r) for r in ranks]
    if kind == "tt":
        return TTLinear(n_in, n_out, rank=tuple(ranks), in_shape=in_shape, out_shape=out_shape,
                        bias=bias)
    if kind == "tucker":
        return TuckerLinear(n_in, n_out, rank=tuple(ranks), in_shape=in_shape,
                            out_shape=out_shape, bias=bias)
    return CPLinear(n_in, n_out, rank=ranks[0], in_shape=in_shape, out_shape=out_shape,
                    bias=bias)


# ---------------------------------------------------------------------------
# post-hoc truncation
# ---------------------------------------------------------------------------

def truncate_layer(layer, level):
    """Post-hoc truncation of a trained tensorized layer to rank cap ``level``."""
    torch = _torch()
    from tensornet.decomposition import tt_round
    from tensornet.nn import CPLinear, TTLinear, TuckerLinear

    with torch.no_grad():
        bias = layer.bias.detach() if layer.bias is not None else None
        if isinstance(layer, TTLinear):
            cores = [c.detach().double() for c in layer.cores]
            caps = tuple(min(level, r) for r in layer.rank[1:-1])
            rounded = tt_round(cores, rank=(1,) + caps + (1,))
            cores = [torch.as_tensor(c).to(layer.cores[0].dtype) for c in rounded.factors]
            return TTLinear.from_factors(cores, bias=bias)
        dense = torch.nn.Linear(layer.in_features, layer.out_features)
        dense.weight.copy_(layer.dense_weight())
        if bias is not None:
            dense.bias.copy_(bias)
        if isinstance(layer, TuckerLinear):
            rank = tuple(min(level, r) for r in layer.rank)
            return TuckerLinear.from_dense(dense, rank=rank, in_shape=layer.in_shape,
                                           out_shape=layer.out_shape)
        if isinstance(layer, CPLinear):
            return CPLinear.from_dense(dense, rank=min(level, layer.rank[0]),
                                       in_shape=layer.in_shape, out_shape=layer.out_shape,
                                       n_iter_max=50)
    raise TypeError(type(layer).__name__)


def truncate_model(model, level):
    from tensornet.optim._ranks import _replace, tensorized_layers

    for name, layer in tensorized_layers(model):
        _replace(model, name, truncate_layer(layer, level))
    return model


# ---------------------------------------------------------------------------
# planted-rank task
# ---------------------------------------------------------------------------

TRUE = (2, 3)
SHAPE = (4, 4, 4)


def planted_data(seed, n_train=2000, n_test=1000, noise=0.01):
    torch = _torch()
    from tensornet.nn import TTLinear

    g = torch.Generator().manual_seed(1000 + seed)
    torch.manual_seed(1000 + seed)
    teacher = TTLinear(64, 64, rank=TRUE, in_shape=SHAPE, out_shape=SHAPE)
    with torch.no_grad():
        for c in teacher.cores:
            c.normal_(0, 1, generator=g)
        s = float(teacher.dense_weight().std())
        for c in teacher.cores:
            c /= (8 * s) ** (1 / 3)
        teacher.bias.zero_()
    X = torch.randn(n_train + n_test, 64, generator=g)
    with torch.no_grad():
        Y = teacher(X)
    Yn = Y + noise * torch.randn(Y.shape, generator=g)
    return (X[:n_train], Yn[:n_train]), (X[n_train:], Y[n_train:]), g


def _fit(model, opt, data, g, steps, batch=100, extra_loss=None, after_step=None):
    torch = _torch()
    X, Y = data
    for _ in range(steps):
        idx = torch.randint(0, X.shape[0], (batch,), generator=g)
        opt.zero_grad()
        loss = ((model(X[idx]) - Y[idx]) ** 2).mean()
        if extra_loss is not None:
            loss = loss + extra_loss()
        loss.backward()
        opt.step()
        if after_step is not None:
            after_step()


def _rmse(model, test):
    torch = _torch()
    with torch.no_grad():
        return float(((model(test[0]) - test[1]) ** 2).mean().sqrt())


def planted_runs(seed, quick):
    """All contenders on one seed of the planted task; a list of result dicts."""
    torch = _torch()
    from torch import nn

    from tensornet.nn import TTLinear
    from tensornet.optim import (
        AdaBreg,
        LinBreg,
        ProxSGD,
        RankL1,
        low_rank_init,
        prune_ranks,
        rank_param_groups,
    )

    train, test, g = planted_data(seed)
    scale = 0.25 if quick else 1.0
    out = []
    example = test[0][:1]

    def student():
        return nn.Sequential(TTLinear(64, 64, rank=(8, 12), in_shape=SHAPE, out_shape=SHAPE))

    def record(method, setting, model, seconds):
        prune_ranks(model)
        p, f, tot = factorized_size(model, example)
        ranks = ranks_of(model)["0"]
        out.append({"task": "planted", "seed": seed, "method": method, "setting": setting,
                        "rmse": _rmse(model, test), "ranks": ranks, "exact": tuple(ranks) == TRUE,
                        "params": p, "flops": f, "total_params": tot, "time": seconds})

    # (a) Bregman from rank 1
    for name, make, steps, decay in (
            ("LinBreg", lambda m: LinBreg(rank_param_groups(m, reg=RankL1(0.1)), lr=1.0,
                                          momentum=0.9), 4000, 0.3),
            ("AdaBreg", lambda m: AdaBreg(rank_param_groups(m, reg=RankL1(0.1)), lr=0.01,
                                          eps=1e-2), 2000, 0.3)):
        torch.manual_seed(seed)
        m = student()
        t0 = time.perf_counter()
        low_rank_init(m, rank=1, decay=decay)
        _fit(m, make(m), train, g, int(steps * scale))
        record(name, "lam=0.1", m, time.perf_counter() - t0)

    # (b) Adam at full rank, TT rounding at several tolerances, fine-tuning
    torch.manual_seed(seed)
    full = student()
    t0 = time.perf_counter()
    _fit(full, torch.optim.Adam(full.parameters(), lr=3e-3), train, g, int(2000 * scale))
    t_full = time.perf_counter() - t0
    out.append(dict(task="planted", seed=seed, method="Adam (full rank)", setting="ranks 8,12",
                    rmse=_rmse(full, test), ranks=[8, 12], exact=False,
                    **dict(zip(("params", "flops", "total_params"),
                               factorized_size(full, example))), time=t_full))
    from tensornet.decomposition import tt_round

    for eps in (0.003, 0.01, 0.03):
        t0 = time.perf_counter()
        with torch.no_grad():
            layer = full[0]
            rounded = tt_round([c.detach().double() for c in layer.cores], eps=eps)
            cores = [torch.as_tensor(c).float() for c in rounded.factors]
            m = nn.Sequential(TTLinear.from_factors(cores, bias=layer.bias.detach()))
        _fit(m, torch.optim.Adam(m.parameters(), lr=1e-3), train, g, int(500 * scale))
        record("Adam + TT rounding", f"eps={eps}", m, t_full + time.perf_counter() - t0)

    # (c) proximal SGD with the same penalty, dense start
    for lam in (0.003, 0.01, 0.03):
        torch.manual_seed(seed)
        m = student()
        t0 = time.perf_counter()
        opt = ProxSGD(rank_param_groups(m, reg=RankL1(lam)), lr=0.3, momentum=0.9)
        _fit(m, opt, train, g, int(4000 * scale))
        record("ProxSGD", f"lam={lam}", m, time.perf_counter() - t0)

    # (d) tltorch tensor lasso on a TT tensor of the same maximum ranks
    for pen in (0.01, 0.1, 1.0):
        import tltorch

        torch.manual_seed(seed)
        m = _tltorch_linear("tt", SHAPE, SHAPE, (1, 8, 12, 1))
        lasso = tltorch.tensor_hooks.tensor_lasso(factorization="TT", penalty=pen)
        lasso.apply(m.weight)
        t0 = time.perf_counter()

        def extra(lasso=lasso):
            return lasso.loss

        _fit(m, _lasso_adam(m, 3e-3), train, g, int(2000 * scale), extra_loss=extra,
             after_step=lasso.reset)
        seconds = time.perf_counter() - t0
        ranks = _tltorch_ranks(m)
        eq = nn.Sequential(_tensornet_equivalent("tt", SHAPE, SHAPE, ranks))
        p, f, tot = factorized_size(eq, example)
        with torch.no_grad():
            rmse = float(((m(test[0]) - test[1]) ** 2).mean().sqrt())
        lasso.reset()
        out.append({"task": "planted", "seed": seed, "method": "tltorch tensor lasso",
                        "setting": f"penalty={pen}", "rmse": rmse, "ranks": ranks,
                        "exact": tuple(ranks) == TRUE, "params": p, "flops": f, "total_params": tot,
                        "time": seconds})
    return out


# ---------------------------------------------------------------------------
# MNIST MLP
# ---------------------------------------------------------------------------

MAX_RANK = {"tt": 16, "tucker": 8, "cp": 64}
N_MODES = {"tt": 3, "tucker": 2, "cp": 3}
# The sparse start of the Bregman runs (low_rank_init): a rank-1 TT layer is a Kronecker
# product of small matrices (full matrix rank), but rank-1 Tucker and CP layers are
# rank-1 matrices, a dead end for a hidden layer, so those start at a few components; CP
# needs many components, so its inactive ones are staggered gently.
START_RANK = {"tt": 1, "tucker": 2, "cp": 8}
EPOCHS = {False: (15, 4), True: (3, 1)}        # (epochs, fine-tuning epochs) by --quick
DECAY = {"tt": 0.3, "tucker": 0.3, "cp": 0.9}
# AdaBreg's delta on the MNIST MLPs. With delta = 1 (the optimizer's default) the
# sparse runs underfit (Tucker 80-88 %, CP 86-88 % test accuracy after fine-tuning);
# delta = 10 was picked from {1, 10, 30, 100} on a validation split of the training
# digits (the first 3,000 train, the last 1,000 score; test digits never seen), the
# same choice for TT, Tucker and CP.
ADABREG_DELTA = 10.0


def mnist_data():
    torch = _torch()
    from tensornet.datasets import load_mnist_subset

    X, y = load_mnist_subset()
    X, y = torch.tensor(X), torch.tensor(y)
    perm = torch.randperm(5000, generator=torch.Generator().manual_seed(0))
    Xtr, ytr, Xte, yte = X[perm[:4000]], y[perm[:4000]], X[perm[4000:]], y[perm[4000:]]
    mu, sd = Xtr.mean(), Xtr.std()
    return ((Xtr - mu) / sd, ytr), ((Xte - mu) / sd, yte)


def mlp(kind, rank, tltorch_lasso=None):
    from torch import nn

    from tensornet.nn import CPLinear, TTLinear, TuckerLinear
    from tensornet.nn._base import resolve_feature_shapes

    cls = {"tt": TTLinear, "tucker": TuckerLinear, "cp": CPLinear}[kind]

    def layer(i, o):
        if tltorch_lasso is None:
            return cls(i, o, rank=rank, n_modes=N_MODES[kind])
        in_shape, out_shape = resolve_feature_shapes(i, o, None, None, N_MODES[kind],
                                                     same_length=(kind == "tt"))
        if kind == "tt":
            r = (1,) + (rank,) * (len(in_shape) - 1) + (1,)
        elif kind == "tucker":
            r = tuple(min(rank, s) for s in out_shape + in_shape)
        else:
            r = rank
        return _tltorch_linear(kind, in_shape, out_shape, r)

    return nn.Sequential(layer(784, 256), nn.ReLU(), layer(256, 256), nn.ReLU(),
                         nn.Linear(256, 10))


def _accuracy(model, test):
    torch = _torch()
    with torch.no_grad():
        return float((model(test[0]).argmax(1) == test[1]).float().mean()) * 100


def _epochs(model, opt, train, seed, epochs, batch=64, extra_loss=None, after_step=None,
            on_epoch=None):
    torch = _torch()
    from torch import nn

    X, y = train
    g = torch.Generator().manual_seed(seed)
    for ep in range(epochs):
        perm = torch.randperm(X.shape[0], generator=g)
        for i in range(0, X.shape[0], batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(X[idx]), y[idx])
            if extra_loss is not None:
                loss = loss + extra_loss()
            loss.backward()
            opt.step()
            if after_step is not None:
                after_step()
        if on_epoch is not None:
            on_epoch(ep)


def mnist_runs(kind, seed, quick, path_log=None):
    torch = _torch()
    from torch import nn

    from tensornet.optim import (
        AdaBreg,
        LinBreg,
        ProxSGD,
        RankController,
        RankL1,
        low_rank_init,
        prune_ranks,
        rank_param_groups,
        regularized_params,
    )

    train, test = mnist_data()
    example = test[0][:1]
    E, FT = EPOCHS[bool(quick)]     # epochs of a run; fine-tuning after truncation / cutting
    R = MAX_RANK[kind]
    out = []

    def record(method, setting, model, seconds, ranks=None, eq_model=None, acc_sparse=None):
        acc = _accuracy(model, test)
        if eq_model is None:
            prune_ranks(model)
            eq_model = model
            ranks = ranks_of(model)
        p, f, tot = factorized_size(eq_model, example)
        out.append({"task": "mnist", "kind": kind, "seed": seed, "method": method,
                    "setting": setting, "acc": acc, "acc_sparse": acc_sparse, "ranks": ranks,
                    "params": p, "flops": f, "total_params": tot, "time": seconds})

    def finetune(model):
        """Cut the zero components, fine-tune FT epochs with Adam; the accuracy before."""
        acc = _accuracy(model, test)
        prune_ranks(model)
        _epochs(model, torch.optim.Adam(model.parameters(), lr=1e-3), train, seed + 100, FT)
        return acc

    # (b) Adam at full rank (also the time reference), then truncation + fine-tuning
    torch.manual_seed(seed)
    full = mlp(kind, R)
    t0 = time.perf_counter()
    _epochs(full, torch.optim.Adam(full.parameters(), lr=1e-3), train, seed, E)
    t_full = time.perf_counter() - t0
    record("Adam (full rank)", f"rank {R}", full, t_full)
    levels = {"tt": (1, 2, 4, 8), "tucker": (1, 2, 4), "cp": (4, 8, 16, 32)}[kind]
    if quick:
        levels = levels[1:2]
    for level in levels:
        t0 = time.perf_counter()
        m = truncate_model(_clone_model(full), level)
        _epochs(m, torch.optim.Adam(m.parameters(), lr=1e-3), train, seed + 100, FT)
        record("Adam + truncation", f"cap {level}", m, t_full + time.perf_counter() - t0)

    # (a) Bregman from rank 1 (LinBreg / AdaBreg), the path of the first AdaBreg run logged
    settings = [("AdaBreg", 0.003), ("AdaBreg", 0.001), ("AdaBreg", 0.01), ("LinBreg", 0.003),
                ("LinBreg", 0.03)]
    if quick:
        settings = settings[:1] + settings[3:4]
    for name, lam in settings:
        torch.manual_seed(seed)
        m = mlp(kind, R)
        t0 = time.perf_counter()
        low_rank_init(m, rank=START_RANK[kind], decay=DECAY[kind])
        groups = rank_param_groups(m, reg=RankL1(lam))
        if name == "AdaBreg":
            opt = AdaBreg(groups, lr=1e-3, eps=1e-3, delta=ADABREG_DELTA)
        else:
            opt = LinBreg(groups, lr=0.1, momentum=0.9)
        on_step = None
        if path_log is not None and name == "AdaBreg" and not path_log:
            # the path: at the start, after 2, 4, 8, ... steps, and after every epoch
            per_epoch = math.ceil(train[0].shape[0] / 64)
            path_log.append({"step": 0, "epoch": 0.0, "acc": _accuracy(m, test),
                             "params": regularized_params(opt)[0]})
            counter = [0]

            def on_step(m=m, opt=opt, counter=counter, per_epoch=per_epoch):
                counter[0] += 1
                k = counter[0]
                if (k & (k - 1)) == 0 or k % per_epoch == 0:
                    path_log.append({"step": k, "epoch": k / per_epoch,
                                     "acc": _accuracy(m, test),
                                     "params": regularized_params(opt)[0]})
        _epochs(m, opt, train, seed, E - FT, after_step=on_step)
        before = finetune(m)
        record(name, f"lam={lam}", m, time.perf_counter() - t0, acc_sparse=before)
        if seed == 0 and (kind, name) not in _PRUNED:
            _PRUNED[(kind, name)] = (lam, m)

    # (a') AdaBreg with a RankController steering lam to 15 % of the factorized parameters
    if not quick:
        torch.manual_seed(seed)
        m = mlp(kind, R)
        t0 = time.perf_counter()
        low_rank_init(m, rank=START_RANK[kind], decay=DECAY[kind])
        opt = AdaBreg(rank_param_groups(m, reg=RankL1(0.001)), lr=1e-3, eps=1e-3,
                      delta=ADABREG_DELTA)
        ctrl = RankController(opt, target=0.15)
        _epochs(m, opt, train, seed, E - FT, on_epoch=lambda ep, ctrl=ctrl: ctrl.step())
        before = finetune(m)
        record("AdaBreg", f"controller 15% ({ctrl.target_params:,})", m,
               time.perf_counter() - t0, acc_sparse=before)

    # (c) proximal SGD with the same penalty from the dense initialisation
    for lam in ((0.003,) if quick else (0.001, 0.003, 0.01, 0.02, 0.03, 0.1)):
        torch.manual_seed(seed)
        m = mlp(kind, R)
        t0 = time.perf_counter()
        opt = ProxSGD(rank_param_groups(m, reg=RankL1(lam)), lr=0.05, momentum=0.9)
        _epochs(m, opt, train, seed, E - FT)
        before = finetune(m)
        record("ProxSGD", f"lam={lam}", m, time.perf_counter() - t0, acc_sparse=before)

    # (d) tltorch tensor lasso
    import tltorch

    for pen in ((1.0,) if quick else (0.3, 1.0, 3.0)):
        torch.manual_seed(seed)
        m = mlp(kind, R, tltorch_lasso=True)
        fact = {"tt": "TT", "tucker": "Tucker", "cp": "CP"}[kind]
        lasso = tltorch.tensor_hooks.tensor_lasso(factorization=fact, penalty=pen)
        layers = [m[0], m[2]]
        for layer in layers:
            lasso.apply(layer.weight)
        t0 = time.perf_counter()
        _epochs(m, _lasso_adam(m, 1e-3), train, seed, E,
                extra_loss=lambda lasso=lasso: lasso.loss, after_step=lasso.reset)
        seconds = time.perf_counter() - t0
        ranks = {str(2 * k): _tltorch_ranks(layer) for k, layer in enumerate(layers)}
        eq = nn.Sequential(*[_tensornet_equivalent(kind, layer.in_shape, layer.out_shape,
                                                   ranks[str(2 * k)])
                             for k, layer in enumerate(layers)])
        acc = _accuracy(m, test)
        lasso.reset()
        p, f, _ = factorized_size(eq, torch.zeros(1, 784))
        tot = p + 256 * 10 + 10
        out.append({"task": "mnist", "kind": kind, "seed": seed, "method": "tltorch tensor lasso",
                        "setting": f"penalty={pen}", "acc": acc, "ranks": ranks, "params": p, "flops": f,
                        "total_params": tot, "time": seconds})
    return out


_PRUNED: dict = {}          # (kind, optimizer) -> (lam, pruned model of seed 0), for timing


def step_timing(kind, repeat):
    """Alternating timings: one training step of each method, inference full vs pruned."""
    torch = _torch()
    from torch import nn

    from tensornet.optim import (
        AdaBreg,
        LinBreg,
        ProxSGD,
        RankL1,
        low_rank_init,
        rank_param_groups,
    )

    train, test = mnist_data()
    X, y = train[0][:64], train[1][:64]
    R = MAX_RANK[kind]

    def model(init=False):
        torch.manual_seed(0)
        m = mlp(kind, R)
        if init:
            low_rank_init(m, rank=START_RANK[kind], decay=DECAY[kind])
        return m

    def step_fn(m, opt):
        def f():
            opt.zero_grad()
            nn.functional.cross_entropy(m(X), y).backward()
            opt.step()
        return f

    ma, mb, ml, mp = model(), model(True), model(True), model()
    contenders = {
        "Adam (full rank)": step_fn(ma, torch.optim.Adam(ma.parameters(), lr=1e-3)),
        "AdaBreg": step_fn(mb, AdaBreg(rank_param_groups(mb, reg=RankL1(0.003)), lr=1e-3,
                                       eps=1e-3, delta=ADABREG_DELTA)),
        "LinBreg": step_fn(ml, LinBreg(rank_param_groups(ml, reg=RankL1(0.003)), lr=0.1,
                                       momentum=0.9)),
        "ProxSGD": step_fn(mp, ProxSGD(rank_param_groups(mp, reg=RankL1(0.003)), lr=0.05,
                                       momentum=0.9)),
    }
    steps = H.compare(contenders, repeat=repeat, warmup=3, number=10)
    out = {"train_step": {k: H.summary(v) for k, v in steps.items()}, "raw": steps}
    pruned = _PRUNED.get((kind, "AdaBreg"))
    if pruned is not None:
        lam, mpruned = pruned

        def infer(m):
            def f():
                with torch.no_grad():
                    m(test[0])
            return f

        inf = H.compare({"full rank": infer(ma), "pruned": infer(mpruned)}, repeat=repeat,
                        warmup=2, number=5)
        out["inference"] = {k: H.summary(v) for k, v in inf.items()}
        out["pruned_from"] = f"AdaBreg lam={lam}, seed 0"
        out["pruned_ranks"] = ranks_of(mpruned)
    return out


def _clone_model(model):
    import copy

    return copy.deepcopy(model)


# ---------------------------------------------------------------------------
# summaries
# ---------------------------------------------------------------------------

def summarise(rows, keys, metric):
    groups = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    out = []
    for key, rs in groups.items():
        s = dict(zip(keys, key))
        s["n"] = len(rs)
        s[metric] = statistics.mean(r[metric] for r in rs)
        s[metric + "_sd"] = statistics.pstdev([r[metric] for r in rs]) if len(rs) > 1 else 0.0
        for k in ("params", "flops", "total_params"):
            s[k] = statistics.median(r[k] for r in rs)
        s["time"], s["time_min"], s["time_max"] = _median_range(r["time"] for r in rs)
        if "exact" in rs[0]:
            s["exact"] = sum(bool(r["exact"]) for r in rs)
        if rs[0].get("acc_sparse") is not None:
            s["acc_sparse"] = statistics.mean(r["acc_sparse"] for r in rs)
        s["ranks"] = [r["ranks"] for r in rs]
        out.append(s)
    return out


BASELINES = ("Adam + truncation", "ProxSGD", "tltorch tensor lasso")


def required_params(points, target):
    """Parameters a baseline needs to reach accuracy ``target``, from its measured settings.

    ``points`` are ``(params, mean accuracy, setting)``. The baseline's best accuracy
    at a given size is the upper envelope of its points; the size at which it crosses
    ``target`` is interpolated linearly in log(params) between the two measured
    points around the crossing. Returns ``(params, how, detail)`` with ``how`` one of
    ``"interpolated"``, ``"at most"`` (even the smallest measured model reaches the
    target, so the requirement is only bounded above) or ``"never"``.
    """
    env, best = [], -math.inf
    for p, a, name in sorted(points):
        if a > best:
            env.append((p, a, name))
            best = a
    if not env or best < target:
        return math.inf, "never", f"best {best:.2f}%" if env else "no runs"
    if env[0][1] >= target:
        return env[0][0], "at most", env[0][2]
    for (p0, a0, n0), (p1, a1, n1) in zip(env, env[1:]):  # noqa: RUF007 (py3.9)
        if a1 >= target:
            f = (target - a0) / (a1 - a0)
            return math.exp(math.log(p0) + f * (math.log(p1) - math.log(p0))), \
                "interpolated", f"{n0} … {n1}"
    raise AssertionError("unreachable")


def equal_accuracy_ratios(summary, tolerance=0.5):
    """For each Bregman setting: the baselines' parameters at its accuracy minus ``tolerance``."""
    bregs = [s for s in summary if s["method"] in ("LinBreg", "AdaBreg")]
    ratios = []
    for b in bregs:
        row = {"kind": b["kind"], "method": b["method"], "setting": b["setting"],
               "acc": b["acc"], "params": b["params"]}
        for base in BASELINES:
            # the full-rank Adam model is the untruncated end of the truncation curve
            names = (base, "Adam (full rank)") if base == "Adam + truncation" else (base,)
            pts = [(s["params"], s["acc"], s["setting"]) for s in summary
                   if s["kind"] == b["kind"] and s["method"] in names]
            need, how, detail = required_params(pts, b["acc"] - tolerance)
            row[base] = {"params": need, "how": how, "detail": detail,
                         "ratio": need / b["params"]}
        ratios.append(row)
    return ratios


def _fmt_ratio(r):
    if r["how"] == "never":
        return f"∞: never reaches it ({r['detail']})"
    if r["how"] == "at most":
        return f"≤ {r['ratio']:.2f}× (its smallest run, {r['detail']}, already does)"
    return f"{r['ratio']:.2f}× ({r['params']:,.0f} params, between {r['detail']})"


def _demonstrated(r):
    """The ratio is at least 2 and established (not just an upper bound)."""
    return r["how"] == "never" or (r["how"] == "interpolated" and r["ratio"] >= 2)


def targets(payload):
    """The issue's targets, evaluated on this run: a list of (statement, met) pairs."""
    out = []
    pl = payload.get("planted")
    if pl:
        for s in pl["summary"]:
            if s["method"] in ("LinBreg", "AdaBreg"):
                out.append(((f"planted task, {s['method']} {s['setting']}: exact TT ranks "
                             f"(2, 3) recovered on {s['exact']} of {s['n']} seeds "
                             f"(test RMSE {s['rmse']:.4f})"), s["exact"] == s["n"]))
    mn = payload.get("mnist")
    if mn:
        for kind in payload["kinds"]:
            ratios = [r for r in mn["ratios"] if r["kind"] == kind]
            for base in ("Adam + truncation", "ProxSGD"):
                good = [f"{r['method']} {r['setting']}" for r in ratios
                        if _demonstrated(r[base])]
                out.append(((f"MNIST {kind.upper()}: ≥ 2× fewer factorized parameters than "
                             f"{base} at equal accuracy (within 0.5 points) for "
                             f"{len(good)} of {len(ratios)} Bregman settings"
                             + (f" ({', '.join(good)})" if good else "")), bool(good)))
            summ = [x for x in mn["summary"] if x["kind"] == kind]
            full = next((x for x in summ if x["method"] == "Adam (full rank)"), None)
            if full:
                rows = [(x["time"] / full["time"], f"{x['method']} {x['setting']}")
                        for x in summ if x["method"] in ("LinBreg", "AdaBreg")]
                worst = max(rows)
                out.append(((f"MNIST {kind.upper()}: Bregman training time / full-rank Adam "
                             f"time (medians over seeds) from {min(rows)[0]:.2f} to "
                             f"{worst[0]:.2f} ({worst[1]}); target ≤ 1"), worst[0] <= 1.0))
    tl = payload.get("ttlstm")
    if tl:
        out += ttlstm_targets(tl)
    return out


def ttlstm_summary(rows):
    summ = summarise(rows, ("method", "setting"), "rmse")
    for s in summ:
        rs = [r for r in rows if r["method"] == s["method"] and r["setting"] == s["setting"]]
        s["rmse_season"] = statistics.mean(r["rmse_season"] for r in rs)
        sp = [r["rmse_sparse"] for r in rs if r.get("rmse_sparse") is not None]
        s["rmse_sparse"] = statistics.mean(sp) if sp else None
    return summ


def _failed_seeds(rows, method):
    """RMSEs of ``method``'s runs more than 1.5x the median of their setting's seeds."""
    out = []
    for setting in {r["setting"] for r in rows if r["method"] == method}:
        vals = [r["rmse"] for r in rows if r["method"] == method and r["setting"] == setting]
        med = statistics.median(vals)
        out += [v for v in vals if v > 1.5 * med]
    return out


def ttlstm_targets(tl, tolerance=0.01):
    """Bregman vs each baseline at equal RMSE (within ``tolerance`` relative) and time."""
    summ = tl["summary"]
    full = next(s for s in summ if s["method"] == "Adam (full rank)")
    out = []
    for s in summ:
        if s["method"] not in ("LinBreg", "AdaBreg"):
            continue
        for base in ("Adam + truncation", "ProxSGD"):
            ok = [b for b in summ if b["method"] == base
                  and b["rmse"] <= s["rmse"] * (1 + tolerance)]
            if ok:
                b = min(ok, key=lambda b: b["params"])
                ratio = b["params"] / s["params"]
                text = (f"TT-LSTM {s['method']} {s['setting']} (RMSE {s['rmse']:.1f}, "
                        f"{s['params']:,.0f} params): the smallest {base} model with at most "
                        f"{1 + tolerance:.2f}× its RMSE ({b['setting']}, RMSE {b['rmse']:.1f}) "
                        f"has {ratio:.2f}× its parameters; target ≥ 2×")
                out.append((text, ratio >= 2))
            else:
                failed = _failed_seeds(tl.get("runs", []), base)
                caveat = (f" — but {len(failed)} {base} run(s) failed (RMSE up to "
                          f"{max(failed):.0f}, over 1.5× the median of their setting's seeds), "
                          "and the means rest on them" if failed else "")
                out.append((f"TT-LSTM {s['method']} {s['setting']}: no {base} model reaches "
                            f"{1 + tolerance:.2f}× its RMSE ({s['rmse']:.1f}, "
                            f"{s['params']:,.0f} params){caveat}", True))
        r = s["time"] / full["time"]
        out.append((f"TT-LSTM {s['method']} {s['setting']}: training time / full-rank Adam "
                    f"= {r:.2f} (medians over seeds); target ≤ 1", r <= 1))
    return out


def ttlstm_markdown(tl):
    c = tl["config"]
    e, pat, mw, ft = TTL_EPOCHS[bool(tl["quick"])]
    lines = [f"### TT-LSTM forecaster (call arrivals, hourly; lookback {c['lookback']}, "
             f"horizon {c['horizon']})\n",
             f"`TTLSTMForecaster` hidden {c['hidden']}, lags {c['lags']}, order {c['order']}, "
             f"maximum TT rank {c['max_rank']} (encoder and decoder); calendar covariates; "
             f"trained on the first 80 % (its last 20 % for early stopping), RMSE (calls per "
             f"hour) of rolling-origin forecasts on the last 20 % over all {c['horizon']} "
             f"steps (and over the first season, {c['season']} steps); {tl['seeds']} seeds, "
             f"{tl['jobs']} worker process(es) with one thread each; "
             f"{tl['machine']['cpu']}. Epochs: at most {e} (patience {pat}, {mw} windows per "
             f"epoch); Bregman and ProxSGD {e - ft} epochs, the zero components cut, then "
             f"{ft} epochs of Adam; truncation = TT rounding of the full-rank model's "
             f"transitions + {ft} epochs of Adam (its time includes the full-rank run). "
             "`params`: whole network (encoder, decoder, head); FLOPs: one encoder step + "
             "one decoder step per sample. " + (" **Quick run.**" if tl["quick"] else "") + "\n"]
    rows = []
    for s in tl["summary"]:
        sparse = f"{s['rmse_sparse']:.1f}" if s.get("rmse_sparse") is not None else ""
        rows.append([s["method"], s["setting"], f"{s['rmse']:.1f} ± {s['rmse_sd']:.1f}",
                     f"{s['rmse_season']:.1f}", sparse,
                     "; ".join(_fmt_ranks(r) for r in s["ranks"]),
                     f"{s['params']:,.0f}", f"{s['flops']:,.0f}",
                     f"{s['time']:.0f} s ({s['time_min']:.0f}–{s['time_max']:.0f})"])
    lines.append(H.markdown_table(["method", "setting", "RMSE (28 steps)", "RMSE (14)",
                                   "before fine-tuning", "ranks enc / dec per seed", "params",
                                   "FLOPs / step", "train time"], rows))
    lines.append("")
    return "\n".join(lines)


def plot_path(path_log, full_acc, kind, out_png):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.8), dpi=120)
    xs = [p["params"] for p in path_log]
    ys = [p["acc"] for p in path_log]
    ax.plot(xs, ys, "o-", color="C0", ms=3.5, lw=1.2,
            label="AdaBreg + RankL1, lam=0.003 (start, after 2^k steps, every epoch)")
    shown = set()
    for p in path_log:
        ep = p.get("epoch", 0)
        label = None
        if p.get("step", 0) == 0:
            label = "start"
        elif float(ep).is_integer() and int(ep) in (1, 2, 4, 8, 11) and int(ep) not in shown:
            label = f"epoch {int(ep)}"
            shown.add(int(ep))
        if label:
            ax.annotate(label, (p["params"], p["acc"]), fontsize=7,
                        textcoords="offset points", xytext=(5, -9))
    if full_acc is not None:
        ax.axhline(full_acc[1], color="C3", ls="--", lw=1,
                   label=f"Adam at full rank ({full_acc[0]:,} params)")
    ax.set_xlabel("parameters the factorized layers keep (after cutting zero components)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"Inverse scale space path: MNIST MLP, {kind.upper()} hidden layers",
                 fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)


def _fmt_ranks(ranks):
    if isinstance(ranks, dict):
        return " / ".join(",".join(str(x) for x in v) for v in ranks.values())
    return ",".join(str(x) for x in ranks)


def markdown(payload):
    lines = []
    lines.append("## Learning ranks while training (Bregman, `tensornet.optim`)\n")
    m = payload["machine"]
    lines.append(f"{m['threads']} thread(s), torch {m['versions']['torch']}, "
                 f"tensorly-torch {m['versions']['tensorly-torch']}; {payload['seeds']} seeds; "
                 f"whole training runs timed (median and min–max over seeds). "
                 "`params` and `FLOPs` are those of the factorized layers after cutting "
                 "the zero components (FLOPs per sample, a multiply-add = 2)."
                 + (" **Quick run.**" if payload["quick"] else "") + "\n")
    when = []
    for task, label in (("planted", "planted ranks"), ("mnist", "MNIST"), ("ttlstm", "TT-LSTM")):
        if payload.get(task):
            tm = payload[task].get("machine", m)
            when.append(f"{label} {tm['date'][:16].replace('T', ' ')} ({tm['cpu']})")
    if when:
        lines.append("Measured: " + "; ".join(when) + ".\n")
    if payload.get("planted"):
        lines.append("### Planted ranks (TT teacher 64→64, ranks 2,3; students at 8,12)\n")
        rows = []
        for s in payload["planted"]["summary"]:
            rows.append([s["method"], s["setting"], f"{s['rmse']:.4f}",
                         f"{s['exact']}/{s['n']}",
                         "; ".join(_fmt_ranks(r) for r in s["ranks"]),
                         f"{s['params']:,.0f}", f"{s['flops']:,.0f}",
                         f"{s['time']:.1f} s ({s['time_min']:.1f}–{s['time_max']:.1f})"])
        lines.append(H.markdown_table(["method", "setting", "test RMSE", "exact ranks",
                                       "ranks per seed", "params", "FLOPs", "train time"],
                                      rows))
        lines.append("\nTraining targets carry noise of standard deviation 0.01; the test "
                     "targets are noise-free. Steps: Adam and AdaBreg 2,000, LinBreg and "
                     "ProxSGD 4,000, TT rounding + 500 steps of fine-tuning (its time "
                     "includes the full-rank Adam run).\n")
    if payload.get("mnist"):
        for kind in payload["kinds"]:
            summ = [s for s in payload["mnist"]["summary"] if s["kind"] == kind]
            if not summ:
                continue
            lines.append(f"### MNIST MLP 784→256→256→10, {kind.upper()} hidden layers "
                         f"(max rank {MAX_RANK[kind]}; Bregman runs start at rank "
                         f"{START_RANK[kind]}, decay {DECAY[kind]}; AdaBreg lr 1e-3, "
                         f"delta {ADABREG_DELTA:g}; LinBreg lr 0.1, momentum 0.9, delta 1)\n")
            rows = []
            for s in summ:
                before = f"{s['acc_sparse']:.2f}" if s.get("acc_sparse") is not None else ""
                rows.append([s["method"], s["setting"],
                             f"{s['acc']:.2f} ± {s['acc_sd']:.2f}", before,
                             f"{s['params']:,.0f}", f"{s['flops']:,.0f}",
                             f"{s['total_params']:,.0f}",
                             f"{s['time']:.1f} s ({s['time_min']:.1f}–{s['time_max']:.1f})"])
            lines.append(H.markdown_table(["method", "setting", "test acc (%)",
                                           "before fine-tuning", "factorized params",
                                           "FLOPs", "total params", "train time"], rows))
            e, ft = EPOCHS[bool(payload["quick"])]
            lines.append(f"\nEpochs: Adam at full rank {e}; truncation {e} (the full-rank "
                         f"run) + {ft} of fine-tuning; Bregman and ProxSGD {e - ft} sparse "
                         "epochs, then the zero components are cut and the smaller model is "
                         f"fine-tuned {ft} epoch(s) with Adam; tltorch {e}. Accuracy: mean ± "
                         "sd over seeds (1,000 test digits: one digit is 0.1 point).")
            ratios = [r for r in payload["mnist"]["ratios"] if r["kind"] == kind]
            if ratios:
                lines.append("\nAt equal accuracy: the factorized parameters each baseline "
                             "needs to reach the Bregman model's accuracy minus 0.5 points "
                             "(interpolated in log-parameters between its measured runs), "
                             "divided by the Bregman model's.\n")
                rrows = []
                for r in ratios:
                    cells = [f"{r['method']} {r['setting']}", f"{r['acc']:.2f}",
                             f"{r['params']:,.0f}"]
                    cells += [_fmt_ratio(r[base]) for base in BASELINES]
                    rrows.append(cells)
                lines.append(H.markdown_table(["Bregman", "acc", "params",
                                               "vs truncation", "vs ProxSGD",
                                               "vs tltorch lasso"], rrows))
            tm = payload["mnist"].get("timing", {}).get(kind)
            if tm:
                ref = tm["train_step"]["Adam (full rank)"]["median"]
                cells = []
                for k, v in tm["train_step"].items():
                    cells.append(f"{k} {H.fmt_time(v['median'])} "
                                 f"({v['median'] / ref:.2f}×)")
                lines.append("\nOne training step (batch 64, max-rank model, alternating, "
                             f"median of {payload['repeat']}): " + "; ".join(cells) + ".")
                if "inference" in tm:
                    f_, p_ = tm["inference"]["full rank"], tm["inference"]["pruned"]
                    lines.append(f"Inference on the 1,000 test digits: full rank "
                                 f"{H.fmt_time(f_['median'])}, pruned ({tm['pruned_from']}, "
                                 f"ranks {_fmt_ranks(tm['pruned_ranks'])}) "
                                 f"{H.fmt_time(p_['median'])} "
                                 f"(full / pruned = {f_['median'] / p_['median']:.2f}).")
            lines.append("")
        lines.append("![inverse scale space path](results/bench_rank_pruning_path.png)\n")
    if payload.get("ttlstm"):
        lines.append(ttlstm_markdown(payload["ttlstm"]))
    tg = targets(payload)
    if tg:
        lines.append("### Targets of the issue, on this run\n")
        for text, met in tg:
            lines.append(f"- {'met' if met else '**missed**'}: {text}")
        lines.append("")
    if payload.get("notes"):
        lines.append("Notes:\n")
    for note in payload.get("notes", []):
        lines.append(f"- {note}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# TT-LSTM forecaster task
# ---------------------------------------------------------------------------

TTL = {"series": "calls", "season": 14, "lookback": 70, "horizon": 28, "hidden": 16,
       "lags": 3, "order": 3, "max_rank": 8}
# (epochs, patience, max_windows, fine-tuning epochs) by --quick
TTL_EPOCHS = {False: (16, 4, 500, 4), True: (2, 2, 128, 1)}
TTL_LEVELS = (4, 2, 1)                   # TT-rounding caps of the truncation baseline
TTL_BREG = (("AdaBreg", "adabreg", 3e-3, 0.003), ("AdaBreg", "adabreg", 3e-3, 0.03),
            ("LinBreg", "linbreg", 0.1, 0.0001), ("LinBreg", "linbreg", 0.1, 0.001))
TTL_PROX = (("ProxSGD", "proxsgd", 0.1, 0.001), ("ProxSGD", "proxsgd", 0.1, 0.01))


def _ttl_data(quick):
    from tensornet.datasets import load_call_arrivals
    from tensornet.forecast import calendar_features

    y = load_call_arrivals("1h")
    X = calendar_features(y.index, ["day", "week"])
    y = y.to_numpy()
    if quick:
        n = 30 * TTL["season"] + TTL["lookback"]
        y, X = y[-n:], X[-n:]
    return y, X


def _ttl_rmse(f, y, X, n_train):
    """Rolling-origin RMSE on the held-out tail (stride season/4), horizon 28 and per lead."""
    import numpy as np

    L, Hm = TTL["lookback"], TTL["horizon"]
    origins = np.arange(n_train, len(y) - Hm + 1, max(1, TTL["season"] // 4))
    ctx = np.stack([y[t - L:t] for t in origins])[..., None]
    truth = np.stack([y[t:t + Hm] for t in origins])
    pred = f.predict(ctx, n=Hm, X=np.stack([X[t - L:t] for t in origins]),
                     X_future=np.stack([X[t:t + Hm] for t in origins]))[..., 0]
    err = pred - truth
    return float(np.sqrt(np.mean(err ** 2))), float(np.sqrt(np.mean(err[:, :TTL["season"]]
                                                                    ** 2)))


def _ttl_forecaster(seed, quick, rank=None, epochs=None, **kw):
    from tensornet.forecast import TTLSTMForecaster

    e, pat, mw, _ = TTL_EPOCHS[bool(quick)]
    return TTLSTMForecaster(TTL["lookback"], TTL["horizon"], hidden_size=TTL["hidden"],
                            lags=TTL["lags"], order=TTL["order"],
                            rank=TTL["max_rank"] if rank is None else rank,
                            epochs=e if epochs is None else epochs, patience=pat,
                            max_windows=mw, random_state=seed,
                            **{"highway": False, **kw})  # as recorded (before highway=True)


def _ttl_warm_start(src_net, lr):
    """An ``optimizer`` callable that puts ``src_net``'s (smaller) modules into the fresh net."""
    import copy

    torch = _torch()

    def build(net):
        for name in ("encoder", "decoder", "head"):
            setattr(net, name, copy.deepcopy(getattr(src_net, name)))
        return torch.optim.Adam(net.parameters(), lr=lr)

    return build


def _ttl_round_cell(cell, cap):
    """TT rounding of a TT-LSTM cell's transition (W as a TT of shape D x D x (D 4H))."""
    torch = _torch()
    from tensornet.decomposition import tt_round
    from tensornet.nn import TTLSTMCell

    with torch.no_grad():
        cores = [c.detach().double() for c in cell.cores]
        r, D, H4 = cores[-1].shape
        cores[-1] = cores[-1].reshape(r, D * H4, 1)
        caps = tuple(min(cap, x) for x in cell.ranks[1:-1])
        rounded = tt_round(cores, rank=(1,) + caps + (1,))
        new_cores = [torch.as_tensor(c) for c in rounded.factors]
        new_cores[-1] = new_cores[-1].reshape(new_cores[-1].shape[0], D, H4)
        new = TTLSTMCell(cell.input_size, cell.hidden_size, cell.lags, cell.order,
                         [int(c.shape[2]) for c in new_cores[:-1]])
        for a, b in zip(new.cores, new_cores):
            a.copy_(b.to(a.dtype))
        new.weight_ih.copy_(cell.weight_ih)
        new.bias.copy_(cell.bias)
    return new


def _ttl_truncate(net, cap):
    import copy

    from tensornet.nn import TTLSTM

    out = copy.deepcopy(net)
    enc = TTLSTM.__new__(TTLSTM)
    torch = _torch()
    torch.nn.Module.__init__(enc)
    enc.batch_first = True
    enc.cell = _ttl_round_cell(net.encoder.cell, cap)
    out.encoder = enc
    out.decoder = _ttl_round_cell(net.decoder, cap)
    return out


def _ttl_size(f):
    """(params of the whole network, FLOPs of one encoder + one decoder step, ranks)."""
    net = f.net_
    params = sum(p.numel() for p in net.parameters())
    flops = net.encoder.flops(1) + net.decoder.flops(1)
    return params, int(flops), {"enc": list(net.encoder.ranks[1:-1]),
                                "dec": list(net.decoder.ranks[1:-1])}


def ttlstm_runs(seed, quick):
    """Every contender on the call-arrival series for one seed; one row per model."""
    from tensornet.optim import RankL1

    y, X = _ttl_data(quick)
    n_test = int(round(0.2 * len(y)))
    n_train = len(y) - n_test
    ytr, Xtr = y[:n_train], X[:n_train]
    _, _, _, ft = TTL_EPOCHS[bool(quick)]
    rows = []

    def row(method, setting, f, t, sparse=None):
        rmse, rmse_season = _ttl_rmse(f, y, X, n_train)
        params, flops, ranks = _ttl_size(f)
        rows.append({"task": "ttlstm", "method": method, "setting": setting, "seed": seed,
                     "rmse": rmse, "rmse_season": rmse_season, "rmse_sparse": sparse,
                     "params": params, "flops": flops, "total_params": params,
                     "ranks": ranks, "time": t, "epochs": f.n_epochs_})

    t0 = time.perf_counter()
    full = _ttl_forecaster(seed, quick).fit(ytr, Xtr)
    t_full = time.perf_counter() - t0
    row("Adam (full rank)", f"rank {TTL['max_rank']}", full, t_full)
    for cap in TTL_LEVELS:
        t0 = time.perf_counter()
        small = _ttl_truncate(full.net_, cap)
        f = _ttl_forecaster(seed, quick, rank=cap, epochs=ft,
                            optimizer=_ttl_warm_start(small, 3e-3)).fit(ytr, Xtr)
        row("Adam + truncation", f"TT rounding to {cap} + {ft} ep", f,
            t_full + time.perf_counter() - t0)
    for method, name, lr, lam in TTL_BREG + TTL_PROX:
        t0 = time.perf_counter()
        e = TTL_EPOCHS[bool(quick)][0] - ft
        f = _ttl_forecaster(seed, quick, epochs=e, optimizer=name,
                            optimizer_kwargs={"reg": RankL1(lam), "lr": lr},
                            init_rank=None if name == "proxsgd" else 1).fit(ytr, Xtr)
        t_sparse = time.perf_counter() - t0
        sparse, _ = _ttl_rmse(f, y, X, n_train)         # not timed: a report, not training
        t0 = time.perf_counter()
        f.prune_ranks()
        r = _ttl_forecaster(seed, quick, epochs=ft,
                            optimizer=_ttl_warm_start(f.net_, 3e-3)).fit(ytr, Xtr)
        row(method, f"λ={lam}, lr={lr}, {e} + {ft} ep", r,
            t_sparse + time.perf_counter() - t0, sparse=sparse)
    return rows


NOTES = [
    ("tensorly-torch's lasso weights get Adam steps of 1e-2 (the other weights 1e-3): at "
    "1e-3 they cannot travel from 1 to its 1e-6 threshold within the run, whatever the "
    "penalty, and nothing is pruned."),
    ("tensorly-torch 0.5's CP lasso does not act on the model: `CPLasso.__call__` returns the "
    "CP tensor unchanged, so its lasso weights are disconnected from the output (zeroing "
    "them changes nothing; checked). Its CP rows therefore keep every component."),
    ("TT-LSTM task: the forecasters' `optimizer=` / `optimizer_kwargs=` run the Bregman "
     "and ProxSGD contenders; the fine-tuning runs are new `TTLSTMForecaster` fits whose "
     "`optimizer` callable installs the pruned (or TT-rounded) encoder, decoder and head "
     "before Adam starts."),
]


def _ttlstm_job(job):
    seed, quick = job
    torch = _torch()
    torch.set_num_threads(1)
    return ttlstm_runs(seed, quick)


def main(argv=None):
    def extra(p):
        p.add_argument("--tasks", default="planted,mnist,ttlstm")
        p.add_argument("--kinds", default="tt,tucker,cp")
        p.add_argument("--seeds", type=int, default=None)
        p.add_argument("--jobs", type=int, default=1,
                       help="worker processes (one thread each) for the TT-LSTM task")
        p.add_argument("--from-results", action="store_true",
                       help="rebuild the tables and the plot from the saved results JSON")

    args = H.parse_args(__doc__.splitlines()[0], argv, extra)
    if args.from_results:
        import json

        payload = json.loads((H.RESULTS / f"{NAME}.json").read_text())
        finish(payload, args)
        return
    tasks = args.tasks.split(",")
    kinds = args.kinds.split(",")
    if args.quick:
        kinds = kinds[:1]
    seeds = args.seeds or (1 if args.quick else 3)
    payload = {"machine": H.machine(args.device, args.threads), "quick": args.quick,
                   "seeds": seeds, "kinds": kinds, "repeat": args.repeat, "notes": NOTES}
    old_file = H.RESULTS / f"{NAME}.json"
    if not {"planted", "mnist"} <= set(tasks) and old_file.exists() and not args.quick:
        # a partial run (e.g. --tasks ttlstm) keeps the other tasks' saved results
        import json

        old = json.loads(old_file.read_text())
        for key in ("machine", "quick", "seeds", "kinds", "repeat"):
            payload[key] = old.get(key, payload[key])
        for task in ("planted", "mnist", "ttlstm"):
            if task not in tasks and old.get(task):
                payload[task] = old[task]
    if "ttlstm" in tasks:
        rows = []
        jobs = [(seed, args.quick) for seed in range(seeds)]
        for r in H.run_jobs(_ttlstm_job, jobs, args.jobs):
            rows += r
            print(f"ttlstm seed {r[0]['seed']} done", flush=True)
        payload["ttlstm"] = {"runs": rows, "config": dict(TTL), "seeds": seeds,
                             "jobs": args.jobs, "quick": args.quick,
                             "machine": H.machine(args.device, 1),
                             "summary": ttlstm_summary(rows)}
    if "planted" in tasks:
        rows = []
        for seed in range(seeds):
            rows += planted_runs(seed, args.quick)
            print(f"planted seed {seed} done", flush=True)
        payload["planted"] = {"runs": rows, "summary": summarise(rows, ("method", "setting"),
                                                               "rmse"),
                              "machine": H.machine(args.device, args.threads)}
    if "mnist" in tasks:
        rows, path_log = [], []
        for kind in kinds:
            for seed in range(seeds):
                rows += mnist_runs(kind, seed, args.quick,
                                   path_log=path_log if kind == kinds[0] and seed == 0
                                   else None)
                print(f"mnist {kind} seed {seed} done", flush=True)
        summ = summarise(rows, ("kind", "method", "setting"), "acc")
        timing = {}
        for kind in kinds:
            timing[kind] = step_timing(kind, args.repeat)
            print(f"step timing {kind} done", flush=True)
        payload["mnist"] = {"runs": rows, "summary": summ, "ratios": equal_accuracy_ratios(summ),
                            "path": path_log, "timing": timing,
                            "machine": H.machine(args.device, args.threads)}
    if not (args.quick and old_file.exists() and not {"planted", "mnist"} <= set(tasks)):
        H.write_results(NAME, payload, args.device)     # a partial quick run keeps the file
    finish(payload, args)


def finish(payload, args):
    """Plot the path, print the tables and write the README section."""
    mn = payload.get("mnist")
    if mn:
        mn["ratios"] = equal_accuracy_ratios(mn["summary"])
        kind = payload["kinds"][0]
        full = next((s for s in mn["summary"] if s["kind"] == kind
                     and s["method"] == "Adam (full rank)"), None)
        if mn.get("path"):
            plot_path(mn["path"], (int(full["params"]), full["acc"]) if full else None,
                      kind, H.RESULTS / "bench_rank_pruning_path.png")
    md = markdown(payload)
    print(md)
    if not args.no_readme:
        H.update_readme(SECTION, md)


if __name__ == "__main__":
    main()
