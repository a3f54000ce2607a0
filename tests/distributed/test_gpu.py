"""tensornet.distributed on CUDA: sign packing and the vote, Signum, DDP over NCCL, Dask on CuPy.

Skipped without a GPU (the ``gpu`` marker); the two-rank NCCL test needs
two GPUs and runs with one rank on a single GPU.
"""

import numpy as np
import pytest
import torch

from tensornet.distributed import SignSGD, Signum, pack_signs, vote_from_packed

from . import _workers as W
from ._launch import run_ranks

pytestmark = pytest.mark.gpu


def test_pack_and_vote_on_cuda_match_cpu():
    g = torch.Generator().manual_seed(0)
    xs = torch.randn(3, 100_003, generator=g)
    xs[:, ::11] = 0.0
    rows = torch.stack([pack_signs(x) for x in xs])
    rows_cuda = torch.stack([pack_signs(x.cuda()) for x in xs])
    assert rows_cuda.is_cuda
    assert torch.equal(rows_cuda.cpu(), rows)
    for m in (2, 3):
        got = vote_from_packed(rows_cuda[:m], xs.shape[1])
        assert got.is_cuda
        assert torch.equal(got.cpu(), vote_from_packed(rows[:m], xs.shape[1]))


@pytest.mark.parametrize("cls,kw", [(SignSGD, {}), (Signum, {"momentum": 0.9})])
def test_sign_optimizers_on_cuda_match_cpu(cls, kw):
    g = torch.Generator().manual_seed(1)
    w0, grads = torch.randn(50, generator=g), torch.randn(5, 50, generator=g)
    results = []
    for dev in ("cpu", "cuda"):
        w = torch.nn.Parameter(w0.to(dev))
        opt = cls([w], lr=0.01, weight_decay=0.1, **kw)
        for grad in grads:
            w.grad = grad.to(dev)
            opt.step()
        results.append(w.detach().cpu())
    torch.testing.assert_close(results[1], results[0])


def test_ddp_over_nccl(tmp_path):
    world = min(2, torch.cuda.device_count())
    run_ranks(W.scenario_gpu, str(tmp_path), world_size=world, backend="nccl", timeout=300)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(world)]
    ref = W.reference_equivalence()["linbreg"]
    want_vote = W.reference_vote([r["vote_input"] for r in ranks]) if world > 1 else \
        torch.sign(ranks[0]["vote_input"])
    for r in ranks:
        for k in ref:
            torch.testing.assert_close(r["linbreg"][k], ref[k], atol=1e-4, rtol=1e-4)
        assert r["ranks"] == ranks[0]["ranks"]
        assert torch.equal(r["vote"], want_vote)
        assert r["signum_deviation"] == 0.0
    init = W.state(W.plain_mlp())
    for k, v in ranks[0]["signum"].items():
        steps = (v - init[k]) / 0.01
        torch.testing.assert_close(steps, steps.round(), atol=1e-3, rtol=0)


def test_fit_dask_on_cupy_chunks():
    pytest.importorskip("cupy")
    cupyx_sparse = pytest.importorskip("cupyx.scipy.sparse")
    da = pytest.importorskip("dask.array")
    from tensornet.datasets import make_lda_corpus
    from tensornet.distributed import fit_dask
    from tensornet.topics import TensorLDA

    X, _, _ = make_lda_corpus(4000, 200, 4, alpha=0.25, doc_length=40, random_state=0)
    chunks = da.from_array(X, chunks=(1000, 200), asarray=False).map_blocks(
        cupyx_sparse.csr_matrix, dtype=X.dtype)
    kw = {"n_topics": 4, "alpha0": 1.0, "random_state": 0}
    ref = TensorLDA(**kw).fit(X)
    got = fit_dask(TensorLDA(**kw), chunks)
    assert isinstance(got.components_, np.ndarray)
    np.testing.assert_allclose(got.components_, ref.components_, atol=1e-8)
    np.testing.assert_allclose(got.alpha_, ref.alpha_, rtol=1e-6)
