"""Bit packing, the vote and the byte formulas, in one process."""

import pytest
import torch

from tensornet.distributed import (
    majority_vote,
    pack_signs,
    packed_size,
    unpack_signs,
    vote_from_packed,
    wire_bytes,
)


@pytest.mark.parametrize("n", [1, 7, 8, 9, 64, 1001])
def test_pack_unpack_round_trip(n):
    g = torch.Generator().manual_seed(n)
    x = torch.randn(n, generator=g)
    packed = pack_signs(x)
    assert packed.dtype == torch.uint8 and packed.numel() == packed_size(n) == (n + 7) // 8
    assert torch.equal(unpack_signs(packed, n), torch.where(x >= 0, 1, -1).to(torch.int8))


def test_pack_bit_order_and_zero_rule():
    x = torch.tensor([1.0, -1.0, 0.0, 0.0, -2.0, 3.0, -0.5, 0.25, 1.0])
    # bit j of byte b is coordinate 8 b + j
    assert pack_signs(x).tolist() == [1 + 4 + 8 + 32 + 128, 1]
    assert pack_signs(x, zero_positive=False).tolist() == [1 + 32 + 128, 1]
    assert pack_signs(x.reshape(3, 3)).tolist() == pack_signs(x).tolist()


@pytest.mark.parametrize("n_ranks", [1, 2, 3, 4, 5])
def test_vote_from_packed_is_sign_of_sum(n_ranks):
    g = torch.Generator().manual_seed(n_ranks)
    xs = torch.randn(n_ranks, 37, generator=g)
    rows = torch.stack([pack_signs(x) for x in xs])
    want = torch.sign(torch.sign(xs).sum(0))
    got = vote_from_packed(rows, 37, torch.float64)
    assert got.dtype == torch.float64
    assert torch.equal(got, want.double())
    if n_ranks % 2:
        assert (got != 0).all()          # odd number of voters: no ties


def test_majority_vote_without_process_group_is_sign():
    x = torch.tensor([[0.5, 0.0], [-3.0, 2.0]])
    assert torch.equal(majority_vote(x), torch.sign(x))


def test_wire_bytes_ring_formulas():
    n = 8_000_000
    assert wire_bytes("all_reduce", 4 * n, 1) == 0
    assert wire_bytes("all_reduce", 4 * n, 2) == 4 * n
    assert wire_bytes("all_gather", n // 8, 2) == n // 8
    assert wire_bytes("all_gather", n // 8, 4) == 3 * n // 8
    # the all-gather grows with the world size: 64 / M times less than fp32
    for m in (2, 4, 8):
        ratio = wire_bytes("all_reduce", 4 * n, m) / wire_bytes("all_gather", n // 8, m)
        assert ratio == pytest.approx(64 / m)


def test_bad_arguments():
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        pack_signs([1.0, -1.0])
    with pytest.raises(TypeError, match="uint8"):
        unpack_signs(torch.zeros(2), 3)
    with pytest.raises(ValueError, match="numel must be in"):
        unpack_signs(torch.zeros(2, dtype=torch.uint8), 17)
    with pytest.raises(TypeError, match="2-d uint8"):
        vote_from_packed(torch.zeros(4, dtype=torch.uint8), 8)
    with pytest.raises(ValueError, match="collective must be"):
        wire_bytes("broadcast", 10, 2)
    with pytest.raises(ValueError, match="world_size"):
        wire_bytes("all_gather", 10, 0)
