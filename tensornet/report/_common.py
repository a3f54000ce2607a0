"""Small helpers shared by the sections of the demo tour."""

from __future__ import annotations

import contextlib

import numpy as np

__all__ = ["progress", "seeded_torch", "train_epochs", "accuracy", "digits_split",
           "n_params"]


def progress(settings, iterable=None, total=None, desc=""):
    """A tqdm bar on stderr when ``settings.progress`` (the CLI), else the plain iterable."""
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False, disable=not settings.progress,
                dynamic_ncols=True)


@contextlib.contextmanager
def seeded_torch(seed: int):
    """Seed torch's global generator inside the block and restore its state after it."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def digits_split(seed: int, device: str, n_train: int = 1400):
    """The 8×8 digits as flat standardised float32 tensors: ``(Xtr, ytr, Xte, yte)``."""
    import torch

    from ..datasets import load_digits_tensor

    images, labels = load_digits_tensor()
    X = np.asarray(images, dtype=np.float32).reshape(len(images), -1)
    y = np.asarray(labels, dtype=np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    tr, te = order[:n_train], order[n_train:]
    mu, sd = X[tr].mean(), X[tr].std()
    X = (X - mu) / sd
    return tuple(torch.as_tensor(a, device=device) for a in (X[tr], y[tr], X[te], y[te]))


def train_epochs(model, optimizer, X, y, epochs, seed, batch_size=64, on_epoch=None):
    """Mini-batch cross-entropy training; ``on_epoch(epoch)`` after each epoch."""
    import torch
    from torch import nn

    g = torch.Generator().manual_seed(seed)
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(y), generator=g).to(y.device)
        for i in range(0, len(y), batch_size):
            b = order[i:i + batch_size]
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(X[b]), y[b]).backward()
            optimizer.step()
        if on_epoch is not None:
            on_epoch(epoch)
    return model


def accuracy(model, X, y) -> float:
    """Test accuracy in percent."""
    import torch

    model.eval()
    with torch.no_grad():
        return 100.0 * float((model(X).argmax(1) == y).float().mean())


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())
