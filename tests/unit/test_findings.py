"""Findings around a batch (valueloss.tools.findings): each one links a registered thread or a source, names
the case it found (scale mismatch, eps too small or never acting, NaN in padding, the first minibatch), and the
batch verdict says typical or alarming for a named reason. The decision table is enumerated in test_advice.py."""

from __future__ import annotations

import re

import pytest
import torch

import valueloss as vl
from tests.words import numbers_in
from valueloss.threads import THREADS, Source, Thread, thread
from valueloss.tools.batch import synthetic_batch
from valueloss.tools.clipfrac import SummaryStats, clipfrac_sweep
from valueloss.tools.findings import REFERENCE_CLIPFRAC, batch_verdict, findings_for_batch, findings_for_summary
from valueloss.tools.sanity import sanity_from_batch

from .conftest import as_batch, cites

THREAD_URL = re.compile(r"^https://github\.com/[\w.-]+/[\w.-]+/(issues|pull)/\d+$")


def by_link(findings, label):
    return [f for f in findings if cites(f, label)]


def test_every_link_is_a_registered_thread_or_a_source():
    cases = [findings_for_batch(synthetic_batch(), 0.2, name) for name in vl.DIALECTS] + [
        findings_for_batch(synthetic_batch(value_scale=15, padding="nan"), 0.01, "sb3")
    ]
    for findings in cases:
        for f in findings:
            assert f.severity in ("warning", "info", "ok")
            for link in f.links:
                assert isinstance(link, Source) or THREADS[link.label] == link, link
    assert all(THREAD_URL.match(t.url) and isinstance(t, Thread) for t in THREADS.values())
    for d in vl.DIALECTS.values():  # the registry names its threads by label: each one resolves
        assert all(thread(label) for label in d.threads), d.name
    with pytest.raises(ValueError, match="unknown thread"):
        thread("openai/baselines#1")


def test_default_batch_is_all_clear_with_the_two_definitions_explained():
    b = synthetic_batch()
    findings = findings_for_batch(b, 0.2, "verl", target=0.3)  # 26 % clipped, target 30 %
    _, clipfrac = vl.compute_value_loss(b.vpreds, b.returns, b.values, b.mask, 0.2)
    assert findings[0].severity == "ok" and numbers_in(findings[0].title) == [round(float(clipfrac), 3), 0.3]
    assert not [f for f in findings if f.severity == "warning"]
    assert by_link(findings, "RLinf/RLinf#1529")
    assert by_link(findings, "openai/baselines#91")  # some tokens moved away and keep their gradient


def test_scale_mismatch_links_verl_498():
    findings = findings_for_batch(synthetic_batch(value_scale=15.0, value_bias=-1.0), 0.2, "verl")
    assert findings[0].code == "offset" and cites(findings[0], "verl-project/verl#498")
    assert findings[0].severity == "warning" and all(f.severity != "ok" for f in findings)
    assert not [f for f in findings[1:] if "different scales" in f.title]  # the verdict says it once
    assert not [f for f in findings_for_batch(synthetic_batch(), 0.2) if "different scales" in f.title]


def test_eps_too_small_zero_and_never_acting():
    b = synthetic_batch()
    small = findings_for_batch(b, 0.01)[0]
    assert small.code == "eps-too-small" and small.severity == "warning"
    assert cites(small, "hill-a/stable-baselines#216") and cites(small, "DLR-RM/stable-baselines3#1426")
    never = findings_for_batch(b, 5.0)[0]  # issue 20 item 2: /batch?b_eps=5 clips nothing
    assert never.code == "never-acts" and numbers_in(never.title) == [0.0, 5.0]  # 0 % clipped at eps = 5
    assert "brake" not in never.explanation and never.numbers and "acts_below" in dict(never.numbers)
    assert float(dict(never.numbers)["acts_below"]) < 5.0
    zero = findings_for_batch(b, 0.0)[0]  # issue 20 item 3: agrees with the Critic dynamics page
    assert zero.code == "eps-zero" and "one optimizer step per rollout" in zero.title


def test_first_minibatch_links_verl_2642_and_says_nothing_about_eps():
    findings = findings_for_batch(synthetic_batch(step=0.0, pred_noise=0.0), 0.2)
    assert findings[0].code == "first-step" and cites(findings[0], "verl-project/verl#2642")
    assert not [f for f in findings if "never acts" in f.title]


def test_nan_in_padding_names_the_poisoned_modes_and_libraries():
    b = synthetic_batch(padding="nan")
    hit = [f for f in findings_for_batch(b, 0.2) if "padded" in f.title]
    assert hit and hit[0].severity == "warning" and cites(hit[0], "verl-project/verl#498")
    text = hit[0].explanation
    for mode in vl.AGG_MODES:
        loss, _ = vl.compute_value_loss(b.vpreds, b.returns, b.values, b.mask, 0.2, mode)
        poisoned_part = text.split("NaN * 0 = NaN, so ")[1].split(" are NaN")[0]
        assert (mode in poisoned_part.split(", ")) == bool(torch.isnan(loss)), mode
    named = text.split("Libraries poisoned on this batch: ")[1]
    for name, entry in vl.DIALECTS.items():
        eps = entry.default_eps if entry.eps_units == "loss" else 0.2
        poisoned = bool(torch.isnan(vl.dialect_loss(name, b.vpreds, b.returns, b.values, b.mask, eps).loss))
        assert (entry.library in named) == poisoned, name
    assert vl.DIALECTS["openrlhf-2025-04"].library in named  # rows averaged first: NaN * 0 reaches the row sums


def test_nan_on_a_real_token_and_all_masked_batch():
    b = synthetic_batch(batch_size=3, min_len=2, max_len=4)
    v = b.vpreds.clone()
    v[0, 0] = float("nan")
    hit = findings_for_batch(as_batch(v, b.returns, b.values, b.mask), 0.2)
    assert any("real token" in f.title and f.severity == "warning" for f in hit)
    empty = as_batch(b.vpreds, b.returns, b.values, torch.zeros_like(b.mask))
    only = findings_for_batch(empty, 0.2)
    assert len(only) == 1 and only[0].severity == "warning" and "NaN" in only[0].explanation
    with pytest.raises(ValueError, match="masked out"):
        sanity_from_batch(empty, 0.2)
    all_nan = as_batch(torch.full_like(b.vpreds, float("nan")), b.returns, b.values, b.mask)
    with pytest.raises(ValueError, match="no real token has a finite"):
        sanity_from_batch(all_nan, 0.2)


def test_library_specific_findings():
    b = synthetic_batch()
    rllib = findings_for_batch(b, 0.2, "rllib")
    assert rllib[0].code == "clamp-over" and cites(rllib[0], "ray-project/ray#19291")
    assert rllib[0].suggested_eps > 0.2
    assert any("clips the loss, not the value" in f.title for f in rllib)
    assert findings_for_batch(b, 1000.0, "rllib")[0].code in ("clamp-within", "clamp-never-acts")
    assert not by_link(rllib, "RLinf/RLinf#1529")  # no value clip: no clip fractions
    for name in ("sb3", "torchrl"):
        assert any("off by default" in f.title for f in findings_for_batch(b, 0.2, name))
    assert [f for f in findings_for_batch(b, 0.2, "sb3") if f.title == "Why max and not min"]
    shared = [f for f in findings_for_batch(b, 0.2, "cleanrl") if "shares one" in f.title]
    assert shared and cites(shared[0], "vwxyzjn/cleanrl#208")
    assert not [f for f in findings_for_batch(b, 0.2, "verl") if "shares one" in f.title]


def test_summary_findings_are_labelled_estimates():
    ok = findings_for_summary(SummaryStats(0.5, 1.0, 0.0, 0.5), 0.5, "verl")[0]
    assert ok[0].severity == "ok" and "estimated" in ok[0].explanation
    off = findings_for_summary(SummaryStats(5.0, 1.0, 20.0, 8.0), 0.2, "verl")[0]
    assert off[0].code == "offset" and cites(off[0], "verl-project/verl#498")
    small = findings_for_summary(SummaryStats(0.0, 100.0, 0.0, 50.0), 0.2, "trl")[0]
    assert small[0].code == "eps-too-small"


def test_batch_verdict_is_typical_or_alarming_for_a_named_reason():
    typical = batch_verdict(synthetic_batch(), 0.5).verdict
    clip = clipfrac_sweep(synthetic_batch(), [0.5]).loss[0]
    assert typical.severity == "ok" and typical.title.startswith("Typical:")
    assert numbers_in(typical.title) == [round(clip, 3), REFERENCE_CLIPFRAC]  # the clip fraction, the yardstick
    lagging = batch_verdict(synthetic_batch(value_noise=1.25), 0.2).verdict
    assert lagging.title.startswith("Alarming:") and lagging.code in ("critic-lags", "gap-mostly-spread")
    scale = batch_verdict(synthetic_batch(reward_std=20.0), 0.2).verdict
    assert "too small for this return scale" in scale.title
    first = batch_verdict(synthetic_batch(step=0.0, pred_noise=0.0), 0.2).verdict
    assert first.title.startswith("Uninformative:")
    inactive = batch_verdict(synthetic_batch(), 5.0)
    assert inactive.verdict.title.startswith("Inactive:") and "never acts" in inactive.reading.explanation
    assert "rollouts" not in inactive.reading.explanation  # issue 20 item 2
    zero = batch_verdict(synthetic_batch(), 0.0)
    assert "one optimizer step per rollout" in zero.reading.explanation and "inf" not in zero.reading.explanation
    with pytest.raises(ValueError, match="eps"):
        batch_verdict(synthetic_batch(), -1.0)
