"""The guided tour's content and answer checking: every answer is computed live and agrees with the text."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
import torch

from valueloss import compute_value_loss, value_loss_grad, value_loss_terms
from valueloss.teach.presets import PRESETS
from valueloss.teach.tour import (
    STEP_KEYS,
    STEPS,
    Reveal,
    check_answer,
    format_number,
    get_step,
    reveal,
    shared_progress_words,
)
from valueloss.tools.batch import synthetic_batch
from valueloss.viz.tour import FIGURE_KINDS, reveal_figure

# The threads SEMANTICS.md lists under "Questions users ask": the tour may only cite these.
KNOWN_THREADS = {
    "openai/baselines#91",
    "openai/baselines#765",
    "openai/baselines#1134",
    "deepspeedai/DeepSpeedExamples#956",
    "deepspeedai/DeepSpeedExamples#556",
    "hill-a/stable-baselines#216",
    "DLR-RM/stable-baselines3#1426",
    "ray-project/ray#19291",
    "ray-project/ray#8908",
    "huggingface/trl#202",
    "verl-project/verl#498",
    "verl-project/verl#2642",
    "RLinf/RLinf#1529",
    "vwxyzjn/cleanrl#208",
    "verl-project/verl#6957",  # listed under "Since the first version" (the Scale page's step)
}

# The questions the tour was first asked to cover, by step key (later steps add to them).
REQUIRED = {
    "active-term",
    "zero-gradient",
    "max-not-min",
    "eps-zero",
    "clipfrac-counts",
    "first-minibatch",
    "return-units",
    "sb3-vs-ppo2",
}


@pytest.fixture(scope="module")
def reveals():
    return {key: reveal(key, make_batch=synthetic_batch) for key in STEP_KEYS}


def test_the_tour_has_six_to_ten_distinct_steps_covering_the_questions():
    """Counts are read from STEPS, never written down (the docstrings once said "eight" of nine steps)."""
    assert 6 <= len(STEPS) <= 10
    assert set(STEP_KEYS) >= REQUIRED
    assert len(set(STEP_KEYS)) == len(STEPS)
    assert len({s.tab for s in STEPS}) == len(STEPS), "tab labels are URL values: they must be unique"


@pytest.mark.parametrize("step", STEPS, ids=STEP_KEYS)
def test_each_step_is_complete(step):
    assert step.question.endswith("?")
    assert len(step.choices) >= 3
    assert [c.label for c in step.choices] == list("ABCDE"[: len(step.choices)])
    assert step.expected in {c.key for c in step.choices}
    sentences = re.split(r"(?<=[.!?])\s+", step.explanation.strip())
    assert len(sentences) == 2, sentences
    assert step.threads
    for thread in step.threads:
        assert thread.label in KNOWN_THREADS
        assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+/issues/\d+", thread.url)


def test_every_listed_thread_is_used_somewhere():
    used = {t.label for s in STEPS for t in s.threads}
    assert used == KNOWN_THREADS


@pytest.mark.parametrize("key", STEP_KEYS)
def test_the_live_numbers_imply_the_answer_the_text_teaches(key, reveals):
    r = reveals[key]
    assert isinstance(r, Reveal)
    assert r.answer == get_step(key).expected, r.verdict
    assert r.numbers and all(kind in ("num", "pct") for _, _, kind in r.numbers)


@pytest.mark.parametrize("key", STEP_KEYS)
def test_check_answer_marks_right_and_wrong(key, reveals):
    step = get_step(key)
    right = step.choice(step.expected)
    ok = check_answer(key, right.label, reveals[key])
    assert ok.correct and ok.message.startswith("Right")
    for c in step.choices:
        if c.key != right.key:
            fb = check_answer(key, c.label, reveals[key])
            assert not fb.correct and f"the answer is {right.label}" in fb.message
            assert fb.right_choice == right
    # a choice key works too, and the reveal is computed on demand
    assert check_answer(key, right.key, make_batch=synthetic_batch).correct


def test_bad_answers_are_clear_errors():
    with pytest.raises(ValueError, match="choose one of: A, B, C"):
        check_answer("active-term", "Z")
    with pytest.raises(TypeError, match="answer"):
        check_answer("active-term", 1)
    with pytest.raises(ValueError, match="unknown tour step"):
        reveal("nope")


def test_reveals_come_from_the_core(reveals):
    # Step 1: the numbers of openai/baselines#765, computed by value_loss_terms.
    t = value_loss_terms(1.0, 10.0, 5.0, 0.2)
    numbers = {label: value for label, value, _ in reveals["active-term"].numbers}
    assert numbers["(v − R)²"] == t.loss_unclipped.item() == 81.0
    assert numbers["(clip(v) − R)²"] == t.loss_clipped.item()
    # Step 2: the closed form and autograd through verl's loss agree on exactly zero.
    p = PRESETS["past-band-toward-R"]
    numbers = {label: value for label, value, _ in reveals["zero-gradient"].numbers}
    assert numbers["d max / dv (closed form)"] == value_loss_grad(p.v, p.R, p.v_old, p.eps).item() == 0.0
    # Step 6: vpreds == values gives a zero clip fraction in verl.
    v = torch.randn(4, 5, dtype=torch.float64)
    assert compute_value_loss(v, v + 1, v.clone(), torch.ones(4, 5), 0.2)[1].item() == 0.0
    assert (
        dict((label, value) for label, value, _ in reveals["first-minibatch"].numbers)[
            "vf_clipfrac when vpreds = values"
        ]
        == 0.0
    )


def test_a_different_scenario_changes_the_verdict(monkeypatch):
    """No answer is stored: move the preset's v back inside the band and the answer flips."""
    inside = replace(PRESETS["past-band-toward-R"], v=0.1)
    monkeypatch.setitem(PRESETS, "past-band-toward-R", inside)
    live = reveal("zero-gradient")
    assert live.answer == "full"
    assert not check_answer("zero-gradient", "A", live).correct  # "yes, exactly 0" is now wrong
    assert check_answer("zero-gradient", "B", live).correct


def test_clipfrac_step_separates_the_three_counts(reveals):
    numbers = {label: value for label, value, _ in reveals["clipfrac-counts"].numbers}
    assert numbers["vf_clipfrac (verl)"] == pytest.approx(numbers["zero-gradient share"], abs=1e-7)
    assert numbers["prediction outside the band"] > numbers["vf_clipfrac (verl)"]
    assert numbers["ratio measured after clipping"] == 0.0  # RLinf#1529


@pytest.mark.parametrize("key", STEP_KEYS)
def test_every_reveal_has_a_figure(key, reveals):
    fig = reveal_figure(reveals[key])
    assert reveals[key].figure in FIGURE_KINDS
    assert len(fig.data) >= 1
    assert any(getattr(t, "x", None) is not None and len(t.x) > 0 and t.x[0] is not None for t in fig.data)


def test_unknown_figure_kind_is_an_error(reveals):
    with pytest.raises(ValueError, match="unknown tour figure"):
        reveal_figure(replace(reveals["active-term"], figure="pie"))


def test_number_format():
    assert format_number(0.21875, "pct") == "21.9%"
    assert format_number(27.040000000000003) == "27.04"
    assert format_number(-18.0) == "-18"


# ------------------------------------------------------------------------------------------------
# Every claim is checked against the live numbers; a fair quiz; each step opens its scenario live

from collections import Counter  # noqa: E402
from urllib.parse import parse_qsl, urlsplit  # noqa: E402

from valueloss.teach.tour import live_links, progress_code, read_progress, shuffled_choices  # noqa: E402

STEPS_WITH_NUMERIC_CLAIMS = {"active-term", "zero-gradient", "eps-zero", "clipfrac-counts", "sb3-vs-ppo2"}


@pytest.mark.parametrize("key", STEP_KEYS)
def test_every_claim_of_the_text_holds_for_the_live_numbers(key, reveals):
    facts = reveals[key].facts
    if key in STEPS_WITH_NUMERIC_CLAIMS:
        assert facts
    for claim, holds in facts:
        assert holds, claim


def test_eps_zero_explains_five_eighths(reveals):
    r = reveals["eps-zero"]
    numbers = {label: value for label, value, _ in r.numbers}
    assert numbers["gradient at v = v_old"] == pytest.approx(0.625 * 2 * (0 - 1))
    assert "0.625 = 1/2 + 1/8 = 5/8" in r.verdict
    assert "5/8" in get_step("eps-zero").explanation and "3/4" not in get_step("eps-zero").explanation


def test_the_overshoot_words_are_exact():
    assert "always pulled back" not in " ".join(s.explanation for s in STEPS)
    assert "nearer R than the band edge" in get_step("active-term").explanation
    assert "overshot R by more than the band edge falls short of it" in get_step("clipfrac-counts").explanation


def test_the_right_answer_is_not_given_away_by_its_length():
    strictly_longest = 0
    for step in STEPS:
        lengths = {c.key: len(c.text) for c in step.choices}
        assert max(lengths.values()) / min(lengths.values()) <= 1.35, (step.key, lengths)
        right = lengths[step.expected]
        strictly_longest += all(right > n for k, n in lengths.items() if k != step.expected)
    assert strictly_longest <= 2


def test_choices_are_shuffled_per_visitor_stable_and_balanced():
    for step in STEPS:
        assert shuffled_choices(step.key, 7) == shuffled_choices(step.key, 7)  # stable within a session
        assert {c.key for c in shuffled_choices(step.key, 7)} == {c.key for c in step.choices}
        assert [c.label for c in shuffled_choices(step.key, 7)] == ["A", "B", "C"]
    letters = Counter(
        next(c.label for c in shuffled_choices(s.key, seed) if c.key == s.expected) for s in STEPS for seed in range(60)
    )
    assert set(letters) == {"A", "B", "C"} and min(letters.values()) > 0.25 * sum(letters.values())
    with pytest.raises(TypeError, match="seed"):
        shuffled_choices("active-term", "x")


def test_check_answer_reads_labels_in_the_visitors_order(reveals):
    order = shuffled_choices("zero-gradient", 3)
    right = next(c for c in order if c.key == "zero")
    fb = check_answer("zero-gradient", right.label, reveals["zero-gradient"], order)
    assert fb.correct and fb.message.startswith(f"Right: {right.label}.")
    wrong = next(c for c in order if c.key != "zero")
    fb = check_answer("zero-gradient", wrong.label, reveals["zero-gradient"], order)
    assert not fb.correct and f"the answer is {right.label}" in fb.message


def test_progress_codes_carry_right_and_wrong_but_no_answer():
    outcomes = [True, None, False, None, None, True] + [None] * (len(STEPS) - 6)
    code = progress_code(outcomes)
    assert code == "r-w--r" + "-" * (len(STEPS) - 6) and read_progress(code) == tuple(outcomes)
    for bad in ("r-w", "abcdefghijklmnop"[: len(STEPS)], 5):
        with pytest.raises(ValueError, match="progress code"):
            read_progress(bad)
    with pytest.raises(ValueError, match="one entry per step"):
        progress_code([True])


@pytest.mark.parametrize("step", STEPS, ids=STEP_KEYS)
def test_each_step_links_to_a_page_that_shows_it_live(step):
    from tests.app.test_app import registered_pages

    paths = {url for _, url in registered_pages()}
    links = live_links(step.key)
    assert links
    for title, url in links:
        parts = urlsplit(url)
        assert parts.path.startswith("./") and parts.path[2:] in paths, url
        assert title
        query = dict(parse_qsl(parts.query))
        if parts.path == "./explore":  # the step's own scenario, number for number
            for name in ("v_old", "R", "eps"):
                assert f"{name} = {query[name]}" in step.scenario, (name, query[name], step.scenario)


def test_shared_progress_says_each_part_only_when_it_has_steps():
    n = len(STEPS)
    assert shared_progress_words("w" + "-" * (n - 1)).startswith(
        f"This link shares someone's progress: 1 of {n} answered, 0 right (wrong: step 1)."
    )
    assert f"2 of {n} answered, 2 right (right: steps 1, 3)." in shared_progress_words("r-r" + "-" * (n - 3))
    assert f"(right: step 2; wrong: steps 1, {n})" in shared_progress_words("wr" + "-" * (n - 3) + "w")
    assert shared_progress_words("-" * n) is None and shared_progress_words("zz") is None


def test_a_batch_step_needs_the_batch_generator():
    with pytest.raises(TypeError, match="make_batch"):
        reveal("clipfrac-counts")
    assert reveal("active-term").verdict == reveal("active-term", make_batch=synthetic_batch).verdict


def test_no_sentence_states_a_count_of_steps():
    """A count written in words goes stale when a step is added ("eight questions" outlived the ninth step)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    counted = re.compile(r"\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|\d+) (questions|steps)\b")
    for path in ("valueloss/teach/tour.py", "pages/tour.py", "valueloss/viz/tour.py"):
        found = counted.findall((root / path).read_text(encoding="utf-8"))
        assert not found, (path, found)
    # The README describes the tour in one line and may give the count: then it is the count of STEPS.
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"]
    readme = (root / "README.md").read_text(encoding="utf-8")
    tour_line = next(line for line in readme.splitlines() if "Guided tour" in line)
    for number, _ in counted.findall(tour_line):
        assert (int(number) if number.isdigit() else words.index(number)) == len(STEPS), tour_line
