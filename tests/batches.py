"""The one random padded-batch generator of the test suite, and bit-exact comparison.

Unit tests (tests/unit) and the conformance tests against the released libraries (tests/upstream) draw their
batches here, so a tie or a padding case added once reaches every formula and every library.
"""

from __future__ import annotations

import zlib
from typing import NamedTuple

import torch

DTYPES = (torch.float32, torch.bfloat16, torch.float64)
MASK_KINDS = ("bool", "int", "float", "float-like")  # float: float32; float-like: the values' dtype
EPS_CHOICES = (0.2, 0.5, 0.0, 1.0, 0.1)
_INT_VIEW = {
    torch.float32: torch.int32,
    torch.bfloat16: torch.int16,
    torch.float16: torch.int16,
    torch.float64: torch.int64,
}


class Batch(NamedTuple):
    """A batch as the loss takes it; unpacks as ``v, r, o, m, eps = random_batch(...)``."""

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
    seed: int | torch.Generator,
    dtype: torch.dtype = torch.float64,
    mask_kind: str = "float",
    *,
    eps: float | None = None,
    rows: int | None = None,
    width: int | None = None,
    max_rows: int = 6,
    max_len: int = 9,
    ties: bool = True,
    edge_rows: bool = True,
    nan_padding: bool = False,
    device: str | torch.device = "cpu",
) -> Batch:
    """A right-padded ``(rows, width)`` batch drawn from ``seed`` (an int, or a generator a loop draws on).

    - Shape: ``rows`` and ``width`` where given, else drawn up to ``max_rows`` x ``max_len``.
    - ``eps``: where not given, drawn from :data:`EPS_CHOICES` (0 included). The predictions move about
      1.5 eps from ``v_old`` (0.3 where eps is 0), so a good share of the tokens clip.
    - Values come from a grid of quarters half the time, so ties also arise by themselves.
    - ``ties``: five of six tokens get a tie placed on purpose: ``v`` exactly on a band edge (``o +- eps`` as
      the dtype rounds it), ``v == R``, ``v == o``, or ``R`` on the upper edge (both squared errors equal once
      ``v`` clips there). ``ties=False`` keeps every token off the kinks (finite differences, fast paths).
    - ``edge_rows``: the first row fully masked and the last row full (with two rows or more), the two cases
      every reduction must get right; else the lengths are free and one row is full half the time.
    - ``mask_kind``: one of :data:`MASK_KINDS`; ``nan_padding`` puts NaN in every padded ``vpreds`` slot.
    """
    gen = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(seed)

    def randint(lo: int, hi: int) -> int:
        return int(torch.randint(lo, hi + 1, (1,), generator=gen))

    rows = randint(1, max_rows) if rows is None else rows
    width = randint(1, max_len) if width is None else width
    if eps is None:
        eps = EPS_CHOICES[randint(0, len(EPS_CHOICES) - 1)]
    shape = (rows, width)

    def draw():
        if randint(0, 1):
            return torch.randint(-8, 9, shape, generator=gen).double() / 4
        return torch.randn(shape, generator=gen, dtype=torch.float64) * 1.5

    o = draw().to(dtype)
    r = draw().to(dtype)
    spread = 1.5 * eps if eps > 0 else 0.3
    v = (o.double() + torch.randn(shape, generator=gen, dtype=torch.float64) * spread).to(dtype)
    kind = torch.randint(0, 6, shape, generator=gen)
    if ties:
        v = torch.where(kind == 1, o + eps, v)  # upper band edge, exactly as the dtype rounds it
        v = torch.where(kind == 2, o - eps, v)  # lower band edge
        r = torch.where(kind == 3, v, r)  # v == R
        v = torch.where(kind == 4, o, v)  # v == o
        r = torch.where(kind == 5, o + eps, r)  # R on the upper edge: the two errors tie once v clips there

    lengths = torch.randint(0, width + 1, (rows,), generator=gen)
    if edge_rows:
        lengths[0] = 0
        lengths[-1] = width
    elif randint(0, 1):
        lengths[randint(0, rows - 1)] = width  # at least one full row half the time
    m = torch.arange(width)[None, :] < lengths[:, None]
    if nan_padding and (~m).any():
        v = torch.where(m, v, torch.full_like(v, float("nan")))
    mask = {"bool": m, "int": m.long(), "float": m.float(), "float-like": m.to(dtype)}[mask_kind]
    return Batch(*(t.to(device) for t in (v, r, o, mask)), eps)


def seed_of(*parts) -> int:
    """A seed that is the same in every run (``hash`` of a string is not: PYTHONHASHSEED)."""
    return zlib.crc32(repr(parts).encode())


def bits(x: torch.Tensor) -> torch.Tensor:
    """The raw bit pattern, so -0.0 != +0.0 and NaN payloads count: 'equal' means bit-identical."""
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
