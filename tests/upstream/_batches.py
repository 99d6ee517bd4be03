"""Random padded batches with exact ties, and bit-exact comparison, for the conformance tests."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import torch

DTYPES = (torch.float32, torch.bfloat16, torch.float64)
MASK_KINDS = ("bool", "int", "float", "float-like")  # float: float32; float-like: the values' dtype
_INT_VIEW = {torch.float32: torch.int32, torch.bfloat16: torch.int16, torch.float64: torch.int64}


@dataclass
class Batch:
    vpreds: torch.Tensor
    returns: torch.Tensor
    values: torch.Tensor
    mask: torch.Tensor  # in the requested kind (bool, int64, float32 or the values' dtype)
    eps: float

    @property
    def bool_mask(self) -> torch.Tensor:
        return self.mask.bool()

    def leaf(self) -> torch.Tensor:
        """A fresh ``vpreds`` leaf that records its gradient."""
        return self.vpreds.detach().clone().requires_grad_(True)


def random_batch(
    gen: torch.Generator,
    dtype: torch.dtype = torch.float32,
    mask_kind: str = "bool",
    eps: float | None = None,
    nan_padding: bool = False,
    max_rows: int = 6,
    max_len: int = 9,
) -> Batch:
    """A (rows, length) batch: right padding, a fully masked row now and then, and exact ties.

    Ties placed on purpose: ``v`` exactly on a band edge (``o +- eps`` as the dtype rounds it), ``v == R``,
    ``v == o``, and ``R`` on the clipped prediction (so both squared errors are equal). Values come from
    a grid of quarters half the time, so more ties arise by themselves.
    """

    def randint(lo, hi):
        return int(torch.randint(lo, hi + 1, (1,), generator=gen))

    rows, length = randint(1, max_rows), randint(1, max_len)
    if eps is None:
        eps = (0.2, 0.5, 0.0, 1.0, 0.1)[randint(0, 4)]
    shape = (rows, length)

    def draw():
        if randint(0, 1):
            return torch.randint(-8, 9, shape, generator=gen).double() / 4
        return torch.randn(shape, generator=gen, dtype=torch.float64) * 1.5

    o = draw().to(dtype)
    r = draw().to(dtype)
    v = (o.double() + torch.randn(shape, generator=gen, dtype=torch.float64) * eps * 1.5).to(dtype)
    kind = torch.randint(0, 6, shape, generator=gen)
    v = torch.where(kind == 1, o + eps, v)  # upper band edge, exactly as the dtype rounds it
    v = torch.where(kind == 2, o - eps, v)  # lower band edge
    r = torch.where(kind == 3, v, r)  # v == R
    v = torch.where(kind == 4, o, v)  # v == o
    r = torch.where(kind == 5, o + eps, r)  # R on the upper edge: a tie between the two errors once v clips there

    lengths = torch.randint(0, length + 1, (rows,), generator=gen)
    if randint(0, 1):
        lengths[randint(0, rows - 1)] = length  # at least one full row half the time
    m = torch.arange(length)[None, :] < lengths[:, None]
    if nan_padding and (~m).any():
        v = torch.where(m, v, torch.full_like(v, float("nan")))
    mask = {"bool": m, "int": m.long(), "float": m.float(), "float-like": m.to(dtype)}[mask_kind]
    return Batch(v, r, o, mask, eps)


def seed_of(*parts) -> int:
    """A seed that is the same in every run (``hash`` of a string is not: PYTHONHASHSEED)."""
    return zlib.crc32(repr(parts).encode())


def bits(x: torch.Tensor) -> torch.Tensor:
    x = x.detach()
    return x.contiguous().view(_INT_VIEW[x.dtype]) if x.dtype in _INT_VIEW else x


def assert_bitwise(ours: torch.Tensor, theirs: torch.Tensor, what: str = "") -> None:
    """Same dtype, shape and bits (NaN positions must agree; NaN payloads are not compared)."""
    ours, theirs = torch.as_tensor(ours).detach(), torch.as_tensor(theirs).detach()
    assert ours.dtype == theirs.dtype, f"{what}: dtype {ours.dtype} vs library {theirs.dtype}"
    assert ours.shape == theirs.shape, f"{what}: shape {tuple(ours.shape)} vs library {tuple(theirs.shape)}"
    if ours.is_floating_point():
        nan_o, nan_t = torch.isnan(ours), torch.isnan(theirs)
        assert torch.equal(nan_o, nan_t), f"{what}: NaN at different places: ours {ours} library {theirs}"
        ours, theirs = torch.where(nan_o, 0, ours), torch.where(nan_t, 0, theirs)
    assert torch.equal(bits(ours), bits(theirs)), f"{what}: ours {ours.tolist()} != library {theirs.tolist()}"
