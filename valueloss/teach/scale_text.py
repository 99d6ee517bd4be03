"""The Scale page's words: the findings it cites and the sentence about a scheme's learning-rate multiplier,
written from the numbers of ``valueloss.scale`` (which holds the arithmetic and no prose)."""

from __future__ import annotations

import math

from ..scale import SchemeReport, Split
from ..threads import Source, threads
from .advice import Finding

__all__ = ["FINDINGS", "multiplier_sentence"]

_OPENRLHF_011 = Source(
    "OpenRLHF 0.11 loss_utils.py", "https://github.com/OpenRLHF/OpenRLHF/blob/main/openrlhf/utils/loss_utils.py"
)

# What the Scale page cites, each with the public threads (or the source) it answers.
FINDINGS = (
    Finding(
        "info",
        "verl normalised each micro-batch by its own token count",
        "verl's critic divided each micro-batch's loss by that micro-batch's own token count and summed the "
        "micro-batch losses, so the accumulated gradient grew with the number of micro-batches and changed when "
        "use_dynamic_bsz was toggled: a hidden, config-dependent critic learning rate. The fix forwards dp_size, "
        "batch_num_tokens and global_batch_size, as the actor's loss already did.",
        threads("verl-project/verl#6957", "verl-project/verl#7110"),
    ),
    Finding(
        "info",
        "The same class of bug elsewhere",
        "The same class of bug (each micro-batch or rank normalised by its own count) was reported for other "
        "losses and trainers.",
        threads("verl-project/verl#5641", "verl-project/verl#5877", "meta-pytorch/torchtune#1875"),
    ),
    Finding(
        "info",
        "OpenRLHF 0.11 normalises over the optimizer step",
        "OpenRLHF 0.11 passes dp_size, batch_num_tokens and global_batch_size to ValueLoss; the counts of the whole "
        "optimizer step are divided by the accumulation steps because DeepSpeed scales every backward by 1/gas.",
        (_OPENRLHF_011,),
    ),
    Finding(
        "info",
        "A mean of micro-batch means",
        "A mean of micro-batch means (divided by the accumulation steps) keeps the average weight at 1 but gives "
        "tokens in short micro-batches more weight than tokens in long ones; it equals the single-batch gradient "
        "only when every micro-batch holds the same number of tokens.",
        threads("meta-pytorch/torchtune#1875"),
    ),
)


def _x(value: float) -> str:
    return "NaN" if math.isnan(value) else f"{value:.3g}×"


def multiplier_sentence(report: SchemeReport, split: Split) -> str:
    """One sentence about a scheme's multiplier, written from its numbers."""
    lo, hi = report.weights.relative_range()
    k = split.micro_per_rank
    where = f"{split.dp_size} rank{'s' if split.dp_size > 1 else ''} × {k} micro-batch{'es' if k > 1 else ''}"
    if math.isnan(report.weights.multiplier):
        return (
            f"{report.scheme.label}, {where}: the mini-batch has no real token, so there is no multiplier; the "
            "single-batch loss is 0/0 = NaN and every gradient is 0."
        )
    head = (
        f"{report.scheme.label}, {where}: the critic's gradient is {_x(report.weights.multiplier)} the single-batch one"
    )
    if math.isnan(lo):
        return head + "."
    if math.isclose(lo, hi, rel_tol=1e-9):
        return head + f" on average, and every token weighs exactly {_x(lo)}."
    return (
        head + f" on average (token weights from {_x(lo)} to {_x(hi)}); along the reference direction it is "
        f"{_x(report.grad_ratio)}."
    )
