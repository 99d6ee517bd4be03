"""The app's terms of art, each in one sentence: shown in every page's legend, and under the text that first uses one.

A term is found in a text by its own spelling (``mentions``), so a page can explain exactly the terms its words
use, where it uses them first. No Streamlit here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Term", "GLOSSARY", "mentioned"]


@dataclass(frozen=True)
class Term:
    """A term as pages write it, what it stands for, and what it means here."""

    term: str
    stands_for: str
    meaning: str
    spellings: tuple[str, ...] = ()  # more ways the pages write it

    def mentioned_in(self, text: str) -> bool:
        """Whether ``text`` uses the term (as a whole word, in any of its spellings)."""
        return any(re.search(rf"(?<![\w#]){re.escape(s)}(?!\w)", text) for s in (self.term, *self.spellings))

    @property
    def sentence(self) -> str:
        return f"**{self.term}** ({self.stands_for}): {self.meaning}"


GLOSSARY: tuple[Term, ...] = (
    Term(
        "σ_R",
        "sigma R",
        "the standard deviation of the returns R over the batch's real tokens. eps / σ_R is eps in units of the "
        "return spread: the same eps is tight for large returns and loose for small ones.",
        ("sigma_R",),
    ),
    Term(
        "DDP",
        "PyTorch's DistributedDataParallel",
        "every data-parallel rank computes the gradient of its own shard, and DDP averages those gradients over "
        "the ranks before the optimizer step.",
    ),
    Term(
        "gas",
        "gradient-accumulation steps, DeepSpeed's gradient_accumulation_steps",
        "the micro-batches whose gradients are added up before one optimizer step; DeepSpeed scales every "
        "backward pass by 1/gas.",
    ),
    Term(
        "#6957",
        "verl pull request 6957, in verl 0.9.1",
        "the fix that divides the critic's loss by the whole mini-batch's counts (dp_size, batch_num_tokens, "
        "global_batch_size) instead of each micro-batch's own, so splitting a batch no longer changes the "
        "critic's learning rate.",
        ("verl#6957",),
    ),
    Term(
        "dp_size",
        "data-parallel size",
        "the number of ranks that each train on a shard of the mini-batch.",
    ),
)


def mentioned(*texts: str) -> list[Term]:
    """The terms that ``texts`` use, in the glossary's order."""
    joined = "\n".join(texts)
    return [t for t in GLOSSARY if t.mentioned_in(joined)]
