"""The critic at scale: how data-parallel ranks and micro-batches change the value-loss gradient.

A trainer never backpropagates the value loss of its whole mini-batch at once. It deals the
sequences to ``dp_size`` data-parallel ranks, cuts each rank's shard into micro-batches (a fixed
count, or as many as a token budget needs, verl's ``use_dynamic_bsz``), backpropagates each
micro-batch's loss times a scale while gradients accumulate, and lets DDP *average* the ranks'
gradients. Whether the result equals the gradient of the single-batch loss depends on how each
micro-batch's loss was normalised: the schemes below are the ones the trainers use (``SCHEMES``).

Every micro-batch loss is ``valueloss.compute_value_loss`` (verl's signature, with ``dp_size``,
``batch_num_tokens`` and ``global_batch_size``); aggregation is linear in the per-token losses, so
the final gradient is ``sum_t w_t * dL_t/dv_t`` with a weight ``w_t`` per token that this module
computes in closed form (``scheme_weights``) and checks against autograd on the split
(``accumulate``). A token's *relative weight* is ``w_t`` over its weight in the single-batch
reference (one process, the whole mini-batch, same ``loss_agg_mode``). The *learning-rate
multiplier* is the mass ratio ``sum w / sum w_ref``: the factor by which the gradient grows when
every token pulls the same way; when all relative weights are equal it is exactly the ratio of
the final gradient to the reference gradient.

Facts (read from the released sources, 2026-11; restated, not copied):

- verl 0.9.1 ``workers/utils/losses.py`` ``value_loss`` forwards ``dp_size``, ``batch_num_tokens``
  (all-reduced token count) and ``global_batch_size`` into ``compute_value_loss``; the engine calls
  ``loss.backward()`` per micro-batch with no further scale (verl-project/verl#6957). Before that
  fix the engine path passed nothing, so each micro-batch was normalised by its *own* counts and
  the sum over micro-batches grew with their number.
- verl's legacy ``dp_critic.py`` scaled each micro-batch's (local) loss by the sample ratio
  ``len(micro_batch) / ppo_mini_batch_size`` with ``use_dynamic_bsz``, else by
  ``1 / gradient_accumulation``.
- OpenRLHF 0.11 ``ValueLoss(..., dp_size, batch_num_tokens, global_batch_size)``: the counts of the
  whole optimizer step over all ranks, divided by DeepSpeed's gradient-accumulation steps ``gas``,
  because DeepSpeed scales every backward by ``1/gas`` (``utils/loss_utils.py``). Before 0.11 the
  loss was each micro-batch's own masked mean and DeepSpeed's ``1/gas`` did the accumulation; TRL
  does the same through ``accelerate`` (``loss / gradient_accumulation_steps``).
- verl's ``rearrange_micro_batches``: ``max_token_len`` must be at least the longest sequence;
  the count starts at ``min(sequences, ceil(tokens / max_token_len))``, is synchronised to the
  maximum over ranks, and grows until a balanced partition fits the budget (sequences kept whole).

Simplifications, stated: ranks get contiguous, near-equal slices of the rows; the token budget
counts response tokens (verl counts the attention mask, prompt included) and balances by length
(verl by a FLOP estimate); micro-batches keep the full padded width, so the ``...-sum-norm`` mode
divides by the same ``T`` everywhere. No Streamlit here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from . import _validate as check
from .anatomy import value_loss_grad
from .losses import compute_value_loss

__all__ = [
    "Scheme",
    "SCHEMES",
    "SCHEME_KEYS",
    "Split",
    "ScaleProblem",
    "SchemeWeights",
    "Accumulated",
    "SchemeReport",
    "get_scheme",
    "spread_lengths",
    "mask_tail",
    "split_batch",
    "make_problem",
    "agg_weights",
    "scheme_weights",
    "micro_loss_kwargs",
    "accumulate",
    "reference_gradient",
    "analyse",
    "multiplier_curve",
    "empty_notes",
    "compare",
    "split_order",
    "logged_rows",
]


@dataclass(frozen=True)
class Scheme:
    """How one trainer normalises each micro-batch's critic loss.

    normalise: ``"local"`` (the micro-batch's own token / sequence counts, ``dp_size=1``) or
        ``"global"`` (``dp_size``, ``batch_num_tokens``, ``global_batch_size`` of the whole
        mini-batch over all ranks).
    backward_scale: what multiplies the loss before ``backward``: ``"none"``, ``"sample_ratio"``
        (micro-batch rows / rank rows with a token budget, ``1/k`` with a fixed count: verl legacy),
        ``"grad_accum"`` (``1/k``: DeepSpeed, accelerate).
    counts_per_gas: the global counts are divided by ``k`` (OpenRLHF 0.11 pre-compensates ``1/gas``).
    logged: how a rank reduces its micro-batch losses into the logged number (``"mean"``/``"sum"``).
    """

    key: str
    library: str
    versions: str
    normalise: str
    backward_scale: str
    logged: str
    summary: str
    threads: tuple[str, ...]
    modes: tuple[str, ...] = check.AGG_MODES
    counts_per_gas: bool = False

    @property
    def label(self) -> str:
        return f"{self.library} {self.versions}"


SCHEMES: dict[str, Scheme] = {
    s.key: s
    for s in (
        Scheme(
            key="verl-engine-local",
            library="verl",
            versions="engine workers before #6957 (2026-07)",
            normalise="local",
            backward_scale="none",
            logged="mean",
            summary="each micro-batch divides by its own counts; the micro-batch losses are summed",
            threads=("verl#6957", "verl#7110"),
        ),
        Scheme(
            key="verl-legacy-sample-ratio",
            library="verl",
            versions="legacy dp_critic (removed by 0.9.1)",
            normalise="local",
            backward_scale="sample_ratio",
            logged="mean",
            summary="own counts, times rows / rank rows (dynamic bsz) or 1 / gradient_accumulation",
            threads=(),
        ),
        Scheme(
            key="verl-global",
            library="verl",
            versions=">= 0.9.1 (#6957)",
            normalise="global",
            backward_scale="none",
            logged="sum",
            summary="global token / sequence counts times dp_size; DDP's average undoes dp_size",
            threads=("verl#6957",),
        ),
        Scheme(
            key="openrlhf-global",
            library="OpenRLHF",
            versions=">= 0.11",
            normalise="global",
            backward_scale="grad_accum",
            logged="mean",
            counts_per_gas=True,
            modes=("token-mean", "seq-mean-token-mean"),
            summary="global counts / gas times dp_size; DeepSpeed's 1/gas brings it back",
            threads=("OpenRLHF 0.11",),
        ),
        Scheme(
            key="grad-accum-mean",
            library="TRL (accelerate) / OpenRLHF",
            versions="< 0.11 (DeepSpeed)",
            normalise="local",
            backward_scale="grad_accum",
            logged="mean",
            summary="each micro-batch's own mean, divided by the accumulation steps",
            threads=(),
            modes=("token-mean", "seq-mean-token-mean"),
        ),
    )
}
SCHEME_KEYS = tuple(SCHEMES)


def get_scheme(key: Scheme | str, loss_agg_mode: str | None = None) -> Scheme:
    """The scheme named ``key`` (the error lists the valid names); with ``loss_agg_mode``, checks the
    library offers that mode (OpenRLHF and TRL have only token-mean and the per-sequence mean)."""
    scheme: Scheme
    if isinstance(key, Scheme):
        scheme = key
    elif key not in SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(SCHEME_KEYS)}, got {key!r}")
    else:
        scheme = SCHEMES[key]
    if loss_agg_mode is not None:
        check.agg_mode(loss_agg_mode)
        if loss_agg_mode not in scheme.modes:
            raise ValueError(
                f"loss_agg_mode {loss_agg_mode!r} is not offered by {scheme.label}; use one of {', '.join(scheme.modes)}"
            )
    return scheme


# ---------------------------------------------------------------------------------------------
# Splitting a batch the way trainers do


@dataclass(frozen=True)
class Split:
    """``ranks[r][j]`` = the row indices of micro-batch ``j`` on rank ``r`` (sequences kept whole)."""

    lengths: tuple[int, ...]
    ranks: tuple[tuple[tuple[int, ...], ...], ...]
    by: str  # "count" or "tokens"

    @property
    def dp_size(self) -> int:
        return len(self.ranks)

    @property
    def micro_per_rank(self) -> int:
        return len(self.ranks[0])

    def rank_rows(self, r: int) -> tuple[int, ...]:
        return tuple(i for mb in self.ranks[r] for i in mb)

    def micro_tokens(self) -> list[list[int]]:
        return [[sum(self.lengths[i] for i in mb) for mb in rank] for rank in self.ranks]


def _lengths(lengths) -> tuple[int, ...]:
    if isinstance(lengths, torch.Tensor):
        lengths = lengths.tolist()
    out = []
    for i, n in enumerate(lengths):
        if isinstance(n, float) and n.is_integer():
            n = int(n)
        out.append(check.whole_number(f"lengths[{i}]", n, 0))
    if not out:
        raise ValueError("lengths is empty: the batch needs at least one sequence")
    return tuple(out)


def _balanced(rows: Sequence[int], lengths: Sequence[int], k: int) -> list[tuple[int, ...]]:
    """Longest first into the lightest bin (ties: fewest rows, lowest bin): no bin stays empty."""
    bins: list[list[int]] = [[] for _ in range(k)]
    loads = [0] * k
    for i in sorted(rows, key=lambda i: (-lengths[i], i)):
        b = min(range(k), key=lambda j: (loads[j], len(bins[j]), j))
        bins[b].append(i)
        loads[b] += lengths[i]
    return sorted((tuple(sorted(b)) for b in bins), key=lambda b: b[0])


def split_batch(lengths, dp_size: int, *, micro_batches: int | None = None, max_token_len: int | None = None) -> Split:
    """Deal sequences (``lengths[i]`` real tokens each) to ranks, then into micro-batches.

    Ranks get contiguous near-equal slices. ``micro_batches=k`` cuts each shard into ``k``
    contiguous near-equal pieces; ``max_token_len`` does what verl's dynamic batch size does: the
    fewest balanced micro-batches whose tokens fit the budget, the same count on every rank.
    """
    lengths = _lengths(lengths)
    dp_size = check.whole_number("dp_size", dp_size, 1)
    if (micro_batches is None) == (max_token_len is None):
        raise ValueError("give exactly one of micro_batches (a fixed count) or max_token_len (a token budget)")
    n = len(lengths)
    if dp_size > n:
        raise ValueError(
            f"dp_size ({dp_size}) is larger than the number of sequences ({n}): some rank would get an empty "
            "shard; use fewer ranks or more sequences"
        )
    shards = [tuple(int(i) for i in s) for s in np.array_split(np.arange(n), dp_size)]
    smallest = min(len(s) for s in shards)
    if micro_batches is not None:
        k = check.whole_number("micro_batches", micro_batches, 1)
        if k > smallest:
            raise ValueError(
                f"micro_batches ({k}) is larger than the smallest shard ({smallest} sequences): a micro-batch "
                "would be empty; use at most that many"
            )
        ranks = tuple(tuple(tuple(int(i) for i in p) for p in np.array_split(np.array(s), k)) for s in shards)
        return Split(lengths, ranks, "count")

    budget = check.whole_number("max_token_len", max_token_len, 1)
    longest = max(lengths)
    if budget < longest:
        raise ValueError(
            f"max_token_len ({budget}) is smaller than the longest sequence ({longest} tokens); sequences are "
            "never cut, so raise the budget to at least that (verl asserts the same)"
        )
    k = max(min(len(s), max(1, math.ceil(sum(lengths[i] for i in s) / budget))) for s in shards)
    while True:
        if k > smallest:  # verl raises here too: every rank must run the same number of micro-batches
            raise ValueError(
                f"max_token_len ({budget}) needs {k} micro-batches on some rank, but the smallest shard has only "
                f"{smallest} sequences and every rank must run the same count; raise the budget or use fewer ranks"
            )
        ranks = tuple(tuple(_balanced(s, lengths, k)) for s in shards)
        if all(sum(lengths[i] for i in mb) <= budget for rank in ranks for mb in rank):
            return Split(lengths, ranks, "tokens")
        k += 1


def spread_lengths(batch_size: int, mean_length: int, spread: float, seed: int = 0) -> list[int]:
    """Sequence lengths around ``mean_length``: ``spread`` 0 = all equal, 1 = lengths vary ~e-fold."""
    batch_size = check.whole_number("batch_size", batch_size, 1)
    mean_length = check.whole_number("mean_length", mean_length, 1)
    spread = check.finite_number("spread", spread, low=0.0)
    z = np.random.default_rng(seed).standard_normal(batch_size)
    return [max(1, int(round(mean_length * math.exp(spread * float(x))))) for x in z]


def mask_tail(lengths, count: int) -> list[int]:
    """The last ``count`` sequences with no real token (``count`` larger than the batch masks all)."""
    lengths = list(_lengths(lengths))
    count = min(check.whole_number("count", count, 0), len(lengths))
    return lengths[: len(lengths) - count] + [0] * count


# ---------------------------------------------------------------------------------------------
# A small critic problem: a linear value head on fixed random features


@dataclass(frozen=True)
class ScaleProblem:
    """``v = features @ theta + bias`` per token; returns and old values fixed, mask from lengths."""

    features: torch.Tensor  # (B, T, F)
    theta: torch.Tensor  # (F,)
    bias: torch.Tensor  # ()
    returns: torch.Tensor  # (B, T)
    values: torch.Tensor  # (B, T) old values
    mask: torch.Tensor  # (B, T) float 0/1
    eps: float

    @property
    def vpreds(self) -> torch.Tensor:
        return self.features @ self.theta + self.bias


def make_problem(lengths, *, features: int = 4, eps: float = 0.2, seed: int = 0, dtype=torch.float64) -> ScaleProblem:
    """A reproducible critic problem whose rows have the given real lengths (width = the longest)."""
    lengths = _lengths(lengths)
    features = check.whole_number("features", features, 1)
    check.clip_range("eps", eps)
    g = torch.Generator().manual_seed(seed)
    b, t = len(lengths), max(1, max(lengths))
    x = torch.randn(b, t, features, generator=g, dtype=torch.float64)
    theta = torch.randn(features, generator=g, dtype=torch.float64) * 0.5
    bias = torch.zeros((), dtype=torch.float64)
    v = x @ theta
    values = v + 0.3 * torch.randn(b, t, generator=g, dtype=torch.float64)
    returns = values + torch.randn(b, t, generator=g, dtype=torch.float64)
    mask = (torch.arange(t)[None, :] < torch.tensor(lengths)[:, None]).to(torch.float64)
    cast = lambda z: z.to(dtype)  # noqa: E731
    return ScaleProblem(cast(x), cast(theta), cast(bias), cast(returns), cast(values), cast(mask), float(eps))


# ---------------------------------------------------------------------------------------------
# Weights: closed form


def agg_weights(
    mask: torch.Tensor, loss_agg_mode: str, *, dp_size: int = 1, batch_num_tokens=None, global_batch_size=None
) -> torch.Tensor:
    """d agg_loss / d loss_mat (aggregation is linear): the weight of every token, verl's formulas.

    Padding weighs 0. With no real token the local count is 0: verl's loss is then 0/0 = NaN, but
    its ``where`` masking sends a zero gradient to every slot, so the weights are 0 too.
    """
    check.mask_tensor("mask", mask)
    check.agg_mode(loss_agg_mode)
    m = mask.to(torch.float64)
    real = m > 0
    if loss_agg_mode == "token-mean":
        n = m.sum() if batch_num_tokens is None else torch.tensor(float(batch_num_tokens), dtype=torch.float64)
        return torch.where(real, m * dp_size / n, 0.0)
    if loss_agg_mode == "token-sum":
        return m * dp_size
    row = m.sum(-1, keepdim=True)
    g = (row > 0).sum() if global_batch_size is None else float(global_batch_size)
    g = torch.as_tensor(g, dtype=torch.float64)
    if loss_agg_mode == "seq-mean-token-mean":
        w = m / (row + 1e-8)
    elif loss_agg_mode == "seq-mean-token-sum-norm":
        w = m / m.shape[-1]
    else:
        w = m
    return torch.where(real, w * dp_size / g, 0.0)


def _counts(mask: torch.Tensor) -> tuple[float, float]:
    return float(mask.sum()), float((mask.sum(-1) > 0).sum())


def micro_loss_kwargs(scheme: Scheme, split: Split, mask: torch.Tensor, rank: int, micro: int) -> tuple[dict, float]:
    """``(kwargs for compute_value_loss, backward scale)`` of one micro-batch under ``scheme``."""
    k = split.micro_per_rank
    if scheme.normalise == "global":
        n, g = _counts(mask)
        if scheme.counts_per_gas:
            n, g = n / k, g / k
        kwargs: dict[str, float | None] = {"dp_size": split.dp_size}
        # agg_loss refuses a zero count: an all-padding batch has no global mean to take.
        kwargs["batch_num_tokens"] = n if n > 0 else None
        kwargs["global_batch_size"] = g if g > 0 else None
        if split.dp_size > 1 and (n == 0 or g == 0):
            raise ValueError(
                "the whole mini-batch has no real tokens (every sequence is fully masked), so there is no global "
                "count to normalise by; unmask at least one sequence"
            )
    else:
        kwargs = {}
    if scheme.backward_scale == "none":
        scale = 1.0
    elif scheme.backward_scale == "grad_accum" or split.by == "count":
        scale = 1.0 / k
    else:  # sample ratio with a token budget: rows in this micro-batch / rows on the rank
        scale = len(split.ranks[rank][micro]) / len(split.rank_rows(rank))
    return kwargs, scale


@dataclass(frozen=True)
class SchemeWeights:
    weights: torch.Tensor  # (B, T) weight of each token's max-term in the final gradient (0.5 included)
    reference: torch.Tensor  # (B, T) the same in the single-batch loss
    relative: torch.Tensor  # weights / reference at real tokens, NaN at padding
    multiplier: float  # sum(weights) / sum(reference) over real tokens

    def relative_range(self) -> tuple[float, float]:
        r = self.relative[~torch.isnan(self.relative)] if not torch.isnan(self.weights).any() else self.relative
        if r.numel() == 0 or torch.isnan(r).any():
            return math.nan, math.nan
        return float(r.min()), float(r.max())


def scheme_weights(
    split: Split, mask: torch.Tensor, scheme: Scheme | str, loss_agg_mode: str = "token-mean"
) -> SchemeWeights:
    """Closed-form per-token weights of ``scheme`` on ``split`` and of the single-batch reference."""
    scheme = get_scheme(scheme, loss_agg_mode)
    check.mask_tensor("mask", mask)
    if mask.shape[0] != len(split.lengths):
        raise ValueError(f"mask has {mask.shape[0]} rows but the split has {len(split.lengths)} sequences")
    m = mask.to(torch.float64)
    reference = 0.5 * agg_weights(m, loss_agg_mode)
    weights = torch.zeros_like(m)
    for r, rank in enumerate(split.ranks):
        for j, rows in enumerate(rank):
            kwargs, scale = micro_loss_kwargs(scheme, split, m, r, j)
            idx = list(rows)
            w = agg_weights(m[idx], loss_agg_mode, **kwargs)
            weights[idx] = 0.5 * w * scale / split.dp_size
    real = m > 0
    relative = torch.full_like(m, math.nan)
    relative[real] = weights[real] / reference[real]
    ref_mass = float(reference[real].sum())
    multiplier = float(weights[real].sum()) / ref_mass if ref_mass > 0 else math.nan
    return SchemeWeights(weights, reference, relative, multiplier)


# ---------------------------------------------------------------------------------------------
# Gradients: autograd on the split (what the trainer does) and on the un-split batch


@dataclass(frozen=True)
class Accumulated:
    grad: torch.Tensor  # d(final)/d vpreds after accumulation and DDP's average, (B, T)
    micro_losses: list[list[float]]  # [rank][micro]: the loss value each micro-batch computed
    logged: list[float]  # per rank: what the rank logs (mean or sum of its micro losses)


def accumulate(
    vpreds, returns, values, mask, eps, split: Split, scheme: Scheme | str, loss_agg_mode: str = "token-mean"
) -> Accumulated:
    """Run the trainer's loop in one process: per micro-batch ``compute_value_loss`` with the scheme's
    arguments, ``(loss * scale).backward()`` accumulating, then DDP's average over ranks (``/ dp_size``)."""
    scheme = get_scheme(scheme, loss_agg_mode)
    v = vpreds.detach().clone().requires_grad_(True)
    per_rank = []
    micro_losses, logged = [], []
    for r, rank in enumerate(split.ranks):
        if v.grad is not None:
            v.grad = None
        losses = []
        for j, rows in enumerate(rank):
            kwargs, scale = micro_loss_kwargs(scheme, split, mask, r, j)
            idx = list(rows)
            loss, _ = compute_value_loss(v[idx], returns[idx], values[idx], mask[idx], eps, loss_agg_mode, **kwargs)
            (loss * scale).backward()
            losses.append(float(loss.detach()))
        assert v.grad is not None  # the split refuses a rank without a micro-batch, so backward ran
        per_rank.append(v.grad.detach().clone())
        micro_losses.append(losses)
        logged.append(float(np.sum(losses)) if scheme.logged == "sum" else float(np.mean(losses)))
    grad = torch.stack(per_rank).sum(0) / split.dp_size
    return Accumulated(grad, micro_losses, logged)


def reference_gradient(
    vpreds, returns, values, mask, eps, loss_agg_mode: str = "token-mean"
) -> tuple[torch.Tensor, float]:
    """Autograd on the un-split batch (one process, one backward): ``(d loss / d vpreds, loss)``."""
    v = vpreds.detach().clone().requires_grad_(True)
    loss, _ = compute_value_loss(v, returns, values, mask, eps, loss_agg_mode)
    loss.backward()
    return v.grad.detach(), float(loss.detach())


def predicted_gradient(vpreds, returns, values, mask, eps, weights: torch.Tensor) -> torch.Tensor:
    """``w_t * dL_t/dv_t``: the closed-form prediction of the accumulated gradient w.r.t. vpreds."""
    per_token = value_loss_grad(vpreds, returns, values, eps, "bounds")
    return torch.where(mask.bool(), per_token, 0.0) * weights.to(per_token.dtype)


def _ratio(g: torch.Tensor, ref: torch.Tensor) -> float:
    denom = float((ref * ref).sum())
    return float((g * ref).sum()) / denom if denom > 0 else math.nan


@dataclass(frozen=True)
class SchemeReport:
    scheme: Scheme
    weights: SchemeWeights
    grad: torch.Tensor  # accumulated on the split (autograd)
    predicted: torch.Tensor  # closed form
    reference: torch.Tensor
    reference_loss: float
    logged: list[float]
    micro_losses: list[list[float]]
    grad_ratio: float  # <g, g_ref> / <g_ref, g_ref>
    notes: list[str] = field(default_factory=list)


def empty_notes(split: Split, scheme: Scheme | str, loss_agg_mode: str = "token-mean") -> list[str]:
    """Plain sentences about micro-batches without real tokens and what the scheme does with them."""
    scheme = get_scheme(scheme)
    notes = []
    tokens = split.micro_tokens()
    for r, rank in enumerate(tokens):
        if sum(rank) == 0:
            notes.append(f"rank {r}'s shard has no real tokens.")
        for j, n in enumerate(rank):
            if n:
                continue
            if scheme.normalise == "local" and loss_agg_mode != "token-sum":
                notes.append(
                    f"rank {r}, micro-batch {j} has no real tokens: its own count is 0, so its loss is 0/0 = NaN "
                    "as in verl's agg_loss and the rank's logged loss is NaN; verl masks with where, so its "
                    "gradient is 0, not NaN (a rank's zero still counts in DDP's average)."
                )
            else:
                notes.append(f"rank {r}, micro-batch {j} has no real tokens: it adds 0 to the loss and the gradient.")
    return notes


def analyse(
    problem: ScaleProblem, split: Split, scheme: Scheme | str, loss_agg_mode: str = "token-mean"
) -> SchemeReport:
    """Everything about one scheme on one split: weights, gradients, logged losses, notes."""
    scheme = get_scheme(scheme, loss_agg_mode)
    if problem.mask.shape[0] != len(split.lengths):
        raise ValueError(
            f"the problem has {problem.mask.shape[0]} rows but the split has {len(split.lengths)} sequences"
        )
    v, r, o, m, eps = problem.vpreds, problem.returns, problem.values, problem.mask, problem.eps
    w = scheme_weights(split, m, scheme, loss_agg_mode)
    acc = accumulate(v, r, o, m, eps, split, scheme, loss_agg_mode)
    ref, ref_loss = reference_gradient(v, r, o, m, eps, loss_agg_mode)
    pred = predicted_gradient(v, r, o, m, eps, w.weights)
    return SchemeReport(
        scheme=scheme,
        weights=w,
        grad=acc.grad,
        predicted=pred,
        reference=ref,
        reference_loss=ref_loss,
        logged=acc.logged,
        micro_losses=acc.micro_losses,
        grad_ratio=_ratio(acc.grad, ref),
        notes=empty_notes(split, scheme, loss_agg_mode),
    )


def multiplier_curve(
    lengths,
    dp_size: int,
    scheme: Scheme | str,
    loss_agg_mode: str = "token-mean",
    *,
    counts: Sequence[int] | None = None,
) -> list[tuple[int, float, float, float]]:
    """``(micro-batches per rank, multiplier, min relative weight, max relative weight)`` for each count."""
    lengths = _lengths(lengths)
    dp_size = check.whole_number("dp_size", dp_size, 1)
    if dp_size > len(lengths):
        raise ValueError(f"dp_size ({dp_size}) is larger than the number of sequences ({len(lengths)})")
    smallest = len(lengths) // dp_size
    counts = list(range(1, smallest + 1)) if counts is None else list(counts)
    width = max(1, max(lengths))
    mask = (torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]).to(torch.float64)
    out = []
    for k in counts:
        split = split_batch(lengths, dp_size, micro_batches=k)
        w = scheme_weights(split, mask, scheme, loss_agg_mode)
        lo, hi = w.relative_range()
        out.append((k, w.multiplier, lo, hi))
    return out


# ---------------------------------------------------------------------------------------------
# What the page shows: every scheme side by side, in the split's order, in words


def compare(problem: ScaleProblem, split: Split, loss_agg_mode: str = "token-mean") -> list[SchemeReport]:
    """``analyse`` for every scheme whose library offers ``loss_agg_mode``."""
    check.agg_mode(loss_agg_mode)
    return [analyse(problem, split, key, loss_agg_mode) for key, s in SCHEMES.items() if loss_agg_mode in s.modes]


def split_order(split: Split, mask: torch.Tensor) -> tuple[tuple[torch.Tensor, torch.Tensor], list[float], list[float]]:
    """Real tokens in rank / micro-batch order: ``((rows, cols), micro-batch boundaries, rank boundaries)``.

    Boundaries sit half-way between the last token of one group and the first of the next.
    """
    rows, cols, micro_b, rank_b = [], [], [], []
    count = 0
    for r, rank in enumerate(split.ranks):
        for j, mb in enumerate(rank):
            if j and count:
                micro_b.append(count - 0.5)
            for i in mb:
                t = torch.nonzero(mask[i] > 0).flatten()
                rows += [i] * len(t)
                cols += t.tolist()
                count += len(t)
        if r < split.dp_size - 1:
            rank_b.append(count - 0.5)
    return (torch.tensor(rows, dtype=torch.long), torch.tensor(cols, dtype=torch.long)), micro_b, rank_b


def logged_rows(reports: Sequence[SchemeReport]) -> list[dict]:
    """What each rank would log under each scheme, next to the single-batch loss."""
    out = []
    for rep in reports:
        row: dict[str, str | float] = {"scheme": rep.scheme.label, "reduces micro-batches by": rep.scheme.logged}
        for r, value in enumerate(rep.logged):
            row[f"rank {r}"] = value
        row["mean over ranks"] = float(np.mean(rep.logged))
        row["single batch"] = rep.reference_loss
        out.append(row)
    return out
