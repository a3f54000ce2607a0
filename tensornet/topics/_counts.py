"""Document-word count matrices on every backend, read in batches of documents.

The topic-model code needs only a few operations on the count matrix
``C`` (documents x words): row slices (batches of documents), ``B @ D``,
``B.T @ D``, ``B.T @ w`` and the coordinates of the non-zeros. This module
gives one small interface for them over

* SciPy sparse matrices and dense NumPy arrays (kept as CSR on the host),
* PyTorch tensors, dense or sparse (COO / CSR / CSC), on any device,
* CuPy arrays and ``cupyx.scipy.sparse`` matrices.

The user's matrix is never copied as a whole when it is already CSR of a
numeric dtype; each batch is converted to float64 on its own, so memory
stays bounded by the batch size.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import scipy.sparse as sp

from .._backend import array_backend, require_backend

__all__ = ["CountMatrix", "as_count_matrix", "is_count_input"]


def _short_type(x: Any) -> str:
    return f"{type(x).__module__}.{type(x).__name__}"


def is_count_input(X: Any) -> str | None:
    """Backend name of ``X`` when it is a torch or CuPy array/matrix, else ``None``."""
    name = array_backend(X)
    if name in ("pytorch", "cupy"):
        return name
    return None


class CountMatrix:
    """A document-word count matrix held as CSR arrays on its backend.

    Build it with :func:`as_count_matrix`; it checks the values once.
    """

    def __init__(self, backend: str, indptr, indices, data, shape, device=None):
        self.backend = backend
        self.indptr = indptr
        self.indices = indices
        self.data = data
        self.shape = (int(shape[0]), int(shape[1]))
        self.device = device
        self._host_indptr = None
        self._t_cache: dict[tuple[int, int], Any] = {}

    # ------------------------------------------------------------------ basics
    @property
    def n_docs(self) -> int:
        return self.shape[0]

    @property
    def n_words(self) -> int:
        return self.shape[1]

    @property
    def nnz(self) -> int:
        return int(self.host_indptr[-1])

    @property
    def host_indptr(self) -> np.ndarray:
        if self._host_indptr is None:
            self._host_indptr = _to_host(self.indptr).astype(np.int64, copy=False)
        return self._host_indptr

    def batch_bounds(self, batch_size: int) -> list[tuple[int, int]]:
        n = self.n_docs
        return [(a, min(a + batch_size, n)) for a in range(0, n, batch_size)]

    def batches(self, batch_size: int, dtype=np.float64) -> Iterator[Batch]:
        for a, b in self.batch_bounds(batch_size):
            yield self.batch(a, b, dtype)

    def batch(self, a: int, b: int, dtype=np.float64) -> Batch:
        """Rows ``[a, b)`` as a native CSR matrix of ``dtype`` (float64 or float32)."""
        ip = self.host_indptr
        s, e = int(ip[a]), int(ip[b])
        single = np.dtype(dtype) == np.float32
        if self.backend == "numpy":
            indptr = self.indptr[a:b + 1] - self.indptr[a]
            data = self.data[s:e]
            if data.dtype != dtype:
                data = data.astype(dtype)
            mat = sp.csr_matrix((data, self.indices[s:e], indptr), shape=(b - a, self.n_words),
                                copy=False)
            return Batch(self, a, b, mat)
        if self.backend == "pytorch":
            import torch

            indptr = self.indptr[a:b + 1] - self.indptr[a]
            data = self.data[s:e].to(torch.float32 if single else torch.float64)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "CSR support is in beta"
                mat = torch.sparse_csr_tensor(indptr, self.indices[s:e], data,
                                              size=(b - a, self.n_words), check_invariants=False)
            return Batch(self, a, b, mat)
        import cupyx.scipy.sparse as csp  # pragma: no cover - needs a GPU

        indptr = self.indptr[a:b + 1] - self.indptr[a]  # pragma: no cover
        data = self.data[s:e].astype("float32" if single else "float64")  # pragma: no cover
        mat = csp.csr_matrix((data, self.indices[s:e], indptr),  # pragma: no cover
                             shape=(b - a, self.n_words))
        return Batch(self, a, b, mat)  # pragma: no cover

    def row_subset(self, rows: np.ndarray) -> CountMatrix:
        """A new CountMatrix with the given rows (host index array), in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        ip = self.host_indptr
        starts, stops = ip[rows], ip[rows + 1]
        lens = stops - starts
        new_ip = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lens, out=new_ip[1:])
        # positions of the kept non-zeros, in order
        pos = np.repeat(starts - new_ip[:-1], lens) + np.arange(new_ip[-1], dtype=np.int64)
        if self.backend == "numpy":
            return CountMatrix("numpy", new_ip, self.indices[pos], self.data[pos],
                               (len(rows), self.n_words))
        xp_pos = _from_host(pos, self)
        return CountMatrix(self.backend, _from_host(new_ip, self), self.indices[xp_pos],
                           self.data[xp_pos], (len(rows), self.n_words), self.device)

    def to_scipy(self) -> sp.csr_matrix:
        """The whole matrix as a SciPy CSR matrix of float64 on the host."""
        return sp.csr_matrix((_to_host(self.data).astype(np.float64),
                              _to_host(self.indices), self.host_indptr), shape=self.shape)


class Batch:
    """Rows ``[start, stop)`` of a :class:`CountMatrix` as a native float64 CSR matrix."""

    def __init__(self, parent: CountMatrix, start: int, stop: int, mat):
        self.parent = parent
        self.start = start
        self.stop = stop
        self.mat = mat
        self.backend = parent.backend

    def __len__(self) -> int:
        return self.stop - self.start

    def mm(self, D):
        """``B @ D`` for a dense ``D`` of shape (n_words, m)."""
        return self.mat @ D

    def tmm(self, D):
        """``B.T @ D`` for a dense ``D`` of shape (batch, m) or (batch,)."""
        if self.backend == "pytorch":
            key = (self.start, self.stop, self.mat.dtype)
            bt = self.parent._t_cache.get(key)
            if bt is None:
                import torch

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    c = self.mat.to_sparse_csc()
                    bt = torch.sparse_csr_tensor(c.ccol_indices(), c.row_indices(), c.values(),
                                                 size=(self.mat.shape[1], self.mat.shape[0]),
                                                 check_invariants=False)
                self.parent._t_cache[key] = bt
            if D.ndim == 1:
                return (bt @ D[:, None])[:, 0]
            return bt @ D
        return self.mat.T @ D

    def row_sums(self):
        if self.backend == "numpy":
            return np.asarray(self.mat.sum(axis=1)).ravel()
        if self.backend == "pytorch":
            import torch

            ip = self.mat.crow_indices()
            vals = self.mat.values()
            rows = torch.repeat_interleave(torch.arange(len(self), device=vals.device),
                                           ip.diff())
            return torch.zeros(len(self), dtype=vals.dtype, device=vals.device).index_add_(
                0, rows, vals)
        return self.mat.sum(axis=1).ravel()  # pragma: no cover - cupy

    def coo(self):
        """``(rows, cols, values)`` of the non-zeros (rows local to the batch)."""
        if self.backend == "numpy":
            m = self.mat
            rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
            return rows, m.indices, m.data
        if self.backend == "pytorch":
            import torch

            ip = self.mat.crow_indices()
            vals = self.mat.values()
            rows = torch.repeat_interleave(torch.arange(len(self), device=vals.device),
                                           ip.diff())
            return rows, self.mat.col_indices(), vals
        import cupy  # pragma: no cover

        m = self.mat  # pragma: no cover
        rows = cupy.repeat(cupy.arange(m.shape[0]), cupy.diff(m.indptr))  # pragma: no cover
        return rows, m.indices, m.data  # pragma: no cover

    def with_data(self, values):
        """A native CSR matrix with this batch's pattern and new values."""
        if self.backend == "numpy":
            m = self.mat
            return sp.csr_matrix((values, m.indices, m.indptr), shape=m.shape, copy=False)
        if self.backend == "pytorch":
            import torch

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                return torch.sparse_csr_tensor(self.mat.crow_indices(), self.mat.col_indices(),
                                               values, size=self.mat.shape,
                                               check_invariants=False)
        import cupyx.scipy.sparse as csp  # pragma: no cover

        m = self.mat  # pragma: no cover
        return csp.csr_matrix((values, m.indices, m.indptr), shape=m.shape)  # pragma: no cover


# ---------------------------------------------------------------------- helpers
def _to_host(x) -> np.ndarray:
    name = array_backend(x)
    if name == "pytorch":
        return x.detach().cpu().numpy()
    if name == "cupy":  # pragma: no cover
        return x.get()
    return np.asarray(x)


def _from_host(x: np.ndarray, like: CountMatrix):
    if like.backend == "pytorch":
        import torch

        return torch.as_tensor(x, device=like.device)
    if like.backend == "cupy":  # pragma: no cover
        import cupy

        with cupy.cuda.Device(like.device):
            return cupy.asarray(x)
    return x


def _check_host_values(data: np.ndarray, name: str) -> None:
    if data.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numeric word counts; got dtype {data.dtype}")
    if data.dtype.kind == "f" and data.size and not np.isfinite(data).all():
        raise ValueError(f"{name} contains NaN or infinite values; word counts must be finite")
    if data.size and data.dtype.kind in "if" and data.min() < 0:
        raise ValueError(f"{name} must hold non-negative word counts; found the value "
                         f"{data.min()!r}")


def as_count_matrix(X: Any, name: str = "X") -> CountMatrix:
    """Check ``X`` and wrap it as a :class:`CountMatrix` (no copy for numeric CSR input).

    Accepts SciPy sparse matrices/arrays of any format, dense NumPy arrays
    and nested lists, PyTorch tensors (dense or sparse COO/CSR/CSC, any
    device) and CuPy dense or sparse arrays. Values must be finite and
    non-negative; they need not be integers.

    Raises
    ------
    TypeError
        For non-numeric input.
    ValueError
        For input that is not 2-D, is empty, or holds negative / non-finite values.
    """
    backend = is_count_input(X)
    if backend == "pytorch":
        return _torch_counts(X, name)
    if backend == "cupy":  # pragma: no cover - needs a GPU
        return _cupy_counts(X, name)
    if sp.issparse(X):
        if X.ndim != 2:
            raise ValueError(f"{name} must be a 2-D documents x words matrix; got shape {X.shape}")
        X = X.tocsr() if X.format != "csr" else X
    else:
        arr = np.asarray(X)
        if arr.dtype == object:
            try:
                arr = arr.astype(np.float64)
            except (TypeError, ValueError):
                raise TypeError(f"{name} must hold numeric word counts; got an array of "
                                "objects that are not numbers") from None
        if arr.ndim != 2:
            raise ValueError(f"{name} must be a 2-D documents x words matrix; got an array of "
                             f"shape {arr.shape}")
        _check_host_values(arr, name)
        X = sp.csr_matrix(arr)
    _check_host_values(X.data, name)
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{name} is empty: got a matrix of shape {X.shape}; need at least one "
                         "document and one word")
    indptr = X.indptr.astype(np.int64, copy=False)
    return CountMatrix("numpy", indptr, X.indices, X.data, X.shape)


def _torch_counts(X, name: str) -> CountMatrix:
    import torch

    if X.dim() != 2:
        raise ValueError(f"{name} must be a 2-D documents x words matrix; got a tensor of shape "
                         f"{tuple(X.shape)}")
    if X.is_complex():
        raise TypeError(f"{name} must hold real word counts; got dtype {X.dtype}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{name} is empty: got a tensor of shape {tuple(X.shape)}; need at least "
                         "one document and one word")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if X.layout == torch.strided:
            csr = X.to_sparse_csr()
        elif X.layout == torch.sparse_csr:
            csr = X
        elif X.layout in (torch.sparse_coo, torch.sparse_csc):
            csr = X.coalesce().to_sparse_csr() if X.layout == torch.sparse_coo else X.to_sparse_csr()
        else:
            raise TypeError(f"{name}: unsupported torch layout {X.layout}; pass a dense tensor or "
                            "a sparse COO / CSR / CSC tensor")
    vals = csr.values()
    if vals.dtype == torch.bool:
        vals = vals.to(torch.float64)
    if vals.is_floating_point() and vals.numel() and not bool(torch.isfinite(vals).all()):
        raise ValueError(f"{name} contains NaN or infinite values; word counts must be finite")
    if vals.numel() and bool((vals < 0).any()):
        raise ValueError(f"{name} must hold non-negative word counts; found the value "
                         f"{float(vals.min())!r}")
    return CountMatrix("pytorch", csr.crow_indices().to(torch.int64),
                       csr.col_indices().to(torch.int64), vals, tuple(X.shape), device=X.device)


def _cupy_counts(X, name: str) -> CountMatrix:  # pragma: no cover - needs a GPU
    require_backend("cupy")
    import cupy
    import cupyx.scipy.sparse as csp

    if csp.issparse(X):
        csr = X.tocsr()
    else:
        if X.ndim != 2:
            raise ValueError(f"{name} must be a 2-D documents x words matrix; got an array of "
                             f"shape {X.shape}")
        if X.dtype.kind not in "biuf":
            raise TypeError(f"{name} must hold numeric word counts; got dtype {X.dtype}")
        csr = csp.csr_matrix(X.astype(cupy.float64) if X.dtype.kind != "f" else X)
    if csr.shape[0] == 0 or csr.shape[1] == 0:
        raise ValueError(f"{name} is empty: got a matrix of shape {csr.shape}")
    data = csr.data
    if data.dtype.kind == "f" and data.size and not bool(cupy.isfinite(data).all()):
        raise ValueError(f"{name} contains NaN or infinite values; word counts must be finite")
    if data.size and bool((data < 0).any()):
        raise ValueError(f"{name} must hold non-negative word counts; found the value "
                         f"{float(data.min())!r}")
    return CountMatrix("cupy", csr.indptr.astype(cupy.int64), csr.indices, data, csr.shape,
                       device=data.device.id)
