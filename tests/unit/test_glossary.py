"""The glossary: every term the pages use is explained, found by its spelling, and nowhere by accident."""

from __future__ import annotations

import pytest

from valueloss.teach.glossary import GLOSSARY, mentioned


def test_terms_are_found_where_they_are_used_and_only_there():
    assert [t.term for t in mentioned("DeepSpeed scales every backward by 1/gas.")] == ["gas"]
    assert [t.term for t in mentioned("the fix (verl#6957)", "before #6957 (2026-07)")] == ["#6957"]
    assert [t.term for t in mentioned("eps = 0.2 is 0.21 σ_R")] == ["σ_R"]
    assert mentioned("gases", "DDPM", "#69570", "dp_sizes") == []


@pytest.mark.parametrize("term", GLOSSARY, ids=lambda t: t.term)
def test_each_term_says_what_it_stands_for_and_means(term):
    assert term.stands_for and term.meaning.endswith(".") and term.sentence.startswith(f"**{term.term}**")


def test_the_terms_the_issue_found_unexplained_are_in_the_glossary():
    """gas, DDP, #6957 and σ_R appeared on Scale, Sanity check and the tour without a word about them."""
    from valueloss import scale
    from valueloss.teach import scale_text
    from valueloss.teach.tour import get_step

    used = [f.explanation for f in scale_text.FINDINGS] + [s.label for s in scale.SCHEMES.values()]
    used += [get_step("micro-batches").question, "eps / std(R): 0.21 σ_R", "measured (DDP)"]
    assert {"gas", "DDP", "#6957", "σ_R"} <= {t.term for t in mentioned(*used)}
