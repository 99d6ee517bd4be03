"""The critic at scale: splits, per-token weights, accumulated gradients against autograd."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from valueloss import agg_loss
from valueloss._validate import AGG_MODES
from valueloss.scale import (
    SCHEME_KEYS,
    SCHEMES,
    accumulate,
    agg_weights,
    analyse,
    compare,
    get_scheme,
    logged_rows,
    make_problem,
    mask_tail,
    multiplier_curve,
    reference_gradient,
    scheme_weights,
    split_batch,
    split_order,
    spread_lengths,
)
from valueloss.teach.scale_text import multiplier_sentence

GLOBAL = [k for k, s in SCHEMES.items() if s.normalise == "global"]
UNEVEN = [3, 9, 2, 14, 5, 7, 1, 11]


def _case(lengths, dp, k=None, budget=None):
    try:
        split = split_batch(lengths, dp, micro_batches=k, max_token_len=budget)
    except ValueError as err:
        assert "every rank must run the same count" in str(err)
        assume(False)  # infeasible with the same count on every rank (verl raises too); tested above
    return split, make_problem(lengths, seed=len(lengths) + dp)


@st.composite
def splits(draw, allow_empty_rows=True):
    n = draw(st.integers(1, 9))
    lengths = draw(st.lists(st.integers(0 if allow_empty_rows else 1, 7), min_size=n, max_size=n))
    if max(lengths) == 0:
        lengths[0] = 1
    dp = draw(st.integers(1, n))
    if draw(st.booleans()):
        k = draw(st.integers(1, n // dp))
        return lengths, dp, k, None
    budget = draw(st.integers(max(lengths), max(lengths) + 10))
    return lengths, dp, None, budget


# --------------------------------------------------------------------------- splitting


@settings(max_examples=60, deadline=None)
@given(splits())
def test_split_keeps_every_sequence_whole_once(case):
    lengths, dp, k, budget = case
    try:
        split = split_batch(lengths, dp, micro_batches=k, max_token_len=budget)
    except ValueError as err:  # as verl: a rank needs more micro-batches than another has sequences
        assert budget is not None and "every rank must run the same count" in str(err)
        shards = np.array_split(np.arange(len(lengths)), dp)
        assert max(math.ceil(sum(lengths[i] for i in s) / budget) for s in shards) > 1  # k = 1 would fit
        return
    rows = sorted(i for rank in split.ranks for mb in rank for i in mb)
    assert rows == list(range(len(lengths)))
    assert split.dp_size == dp
    assert all(len(rank) == split.micro_per_rank for rank in split.ranks)  # same count on every rank
    assert all(len(mb) > 0 for rank in split.ranks for mb in rank)
    if budget is not None:
        assert all(t <= budget for rank in split.micro_tokens() for t in rank)
        need = max(math.ceil(sum(lengths[i] for i in split.rank_rows(r)) / budget) for r in range(dp))
        assert split.micro_per_rank >= need
    else:
        assert split.micro_per_rank == k


def test_token_budget_matches_verl_count_on_a_worked_case():
    # 52 tokens, budget 14: ceil(52/14) = 4 micro-batches, balanced 13/13/14/12
    split = split_batch(UNEVEN, 1, max_token_len=14)
    assert split.micro_per_rank == 4
    assert sorted(split.micro_tokens()[0]) == [12, 13, 13, 14]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            dict(lengths=[1, 2], dp_size=3, micro_batches=1),
            r"dp_size \(3\) is larger than the number of sequences \(2\)",
        ),
        (
            dict(lengths=[4, 9], dp_size=1, max_token_len=5),
            r"max_token_len \(5\) is smaller than the longest sequence \(9",
        ),
        (dict(lengths=[1, 2, 3], dp_size=1, micro_batches=4), r"micro_batches \(4\) is larger than the smallest shard"),
        (dict(lengths=[1, 2], dp_size=1), "exactly one of micro_batches"),
        (dict(lengths=[1, 2], dp_size=1, micro_batches=1, max_token_len=4), "exactly one of micro_batches"),
        (dict(lengths=[], dp_size=1, micro_batches=1), "lengths is empty"),
        (dict(lengths=[1, -2], dp_size=1, micro_batches=1), r"lengths\[1\] must be an integer >= 0"),
        (dict(lengths=[1, 2], dp_size=0, micro_batches=1), "dp_size must be an integer >= 1"),
        (dict(lengths=[1, 3, 0, 0], dp_size=3, max_token_len=3), "needs 2 micro-batches on some rank"),
    ],
)
def test_split_bad_input_says_what_to_fix(kwargs, match):
    lengths = kwargs.pop("lengths")
    with pytest.raises(ValueError, match=match):
        split_batch(lengths, **kwargs)


def test_split_type_errors_name_the_argument():
    with pytest.raises(TypeError, match="dp_size must be an integer"):
        split_batch([1, 2], 1.5, micro_batches=1)
    with pytest.raises(TypeError, match="micro_batches must be an integer"):
        split_batch([1, 2], 1, micro_batches=True)


def test_spread_lengths():
    assert spread_lengths(5, 7, 0.0) == [7] * 5
    lengths = spread_lengths(64, 20, 0.8, seed=3)
    assert min(lengths) >= 1 and max(lengths) > 2 * min(lengths)
    with pytest.raises(ValueError, match="spread"):
        spread_lengths(4, 5, -1.0)


# --------------------------------------------------------------------------- weights


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 6), min_size=1, max_size=6),
    st.sampled_from(AGG_MODES),
    st.integers(1, 4),
    st.floats(1.0, 50.0),
    st.floats(1.0, 9.0),
)
def test_agg_weights_equal_autograd_of_agg_loss(lengths, mode, dp, n_tokens, n_seqs):
    width = max(1, max(lengths))
    mask = (torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]).double()
    mat = torch.rand(len(lengths), width, dtype=torch.float64, requires_grad=True)
    kwargs = {}
    if dp > 1:
        kwargs = dict(dp_size=dp, batch_num_tokens=n_tokens, global_batch_size=n_seqs)
    agg_loss(mat, mask, mode, **kwargs).backward()
    expected = mat.grad
    got = agg_weights(mask, mode, **kwargs)
    if mask.sum() == 0 and dp == 1 and mode != "token-sum":
        assert torch.equal(got, torch.zeros_like(got))  # verl: NaN loss, zero gradient
        assert torch.equal(expected, torch.zeros_like(expected))
    else:
        torch.testing.assert_close(got, expected, rtol=1e-14, atol=0)


@settings(max_examples=40, deadline=None)
@given(splits(), st.sampled_from(SCHEME_KEYS), st.sampled_from(AGG_MODES))
def test_accumulated_gradient_equals_closed_form_weights(case, key, mode):
    """Autograd through the trainer's loop (micro-batches, scales, DDP's average) = sum_t w_t dL_t/dv."""
    lengths, dp, k, budget = case
    if mode not in SCHEMES[key].modes:
        return
    split, p = _case(lengths, dp, k, budget)
    rep = analyse(p, split, key, mode)
    torch.testing.assert_close(rep.grad, rep.predicted, rtol=1e-12, atol=1e-15)
    assert not torch.isnan(rep.grad).any()


@settings(max_examples=40, deadline=None)
@given(splits(), st.sampled_from(GLOBAL), st.sampled_from(["token-mean", "seq-mean-token-mean"]))
def test_global_schemes_reproduce_the_single_batch_gradient(case, key, mode):
    """verl after #6957 and OpenRLHF 0.11: any split gives the un-split gradient (float64 identity)."""
    lengths, dp, k, budget = case
    split, p = _case(lengths, dp, k, budget)
    rep = analyse(p, split, key, mode)
    torch.testing.assert_close(rep.grad, rep.reference, rtol=1e-12, atol=1e-15)
    assert rep.weights.multiplier == pytest.approx(1.0, rel=1e-13)
    lo, hi = rep.weights.relative_range()
    assert lo == pytest.approx(1.0, rel=1e-13) and hi == pytest.approx(1.0, rel=1e-13)
    assert sum(rep.logged) / len(rep.logged) == pytest.approx(rep.reference_loss, rel=1e-12)


@settings(max_examples=40, deadline=None)
@given(splits(allow_empty_rows=False), st.sampled_from(AGG_MODES[:1] + AGG_MODES[2:4]))
def test_local_normalisation_multiplies_by_micro_batches_per_rank(case, mode):
    """verl's engine before #6957: the token-weighted mean weight is exactly k (micro-batches per rank)."""
    lengths, dp, k, budget = case
    split, p = _case(lengths, dp, k, budget)
    w = scheme_weights(split, p.mask, "verl-engine-local", mode)
    if mode == "token-mean":
        assert w.multiplier == pytest.approx(split.micro_per_rank, rel=1e-12)
    # per-token: N / (dp * N_mb) for token-mean
    if mode == "token-mean":
        n = sum(lengths)
        for rank in split.ranks:
            for mb in rank:
                n_mb = sum(lengths[i] for i in mb)
                got = w.relative[list(mb)][p.mask[list(mb)] > 0]
                torch.testing.assert_close(got, torch.full_like(got, n / (dp * n_mb)), rtol=1e-13, atol=0)


def test_when_all_relative_weights_are_equal_the_gradient_is_that_multiple():
    # equal lengths: local token-mean weights are all k
    lengths = [5] * 8
    split, p = _case(lengths, 2, 4)
    rep = analyse(p, split, "verl-engine-local")
    assert rep.weights.relative_range() == pytest.approx((4.0, 4.0))
    torch.testing.assert_close(rep.grad, 4.0 * rep.reference, rtol=1e-13, atol=1e-16)
    assert rep.grad_ratio == pytest.approx(4.0, rel=1e-13)
    for key in ("verl-legacy-sample-ratio", "grad-accum-mean"):
        rep = analyse(p, split, key)
        torch.testing.assert_close(rep.grad, rep.reference, rtol=1e-13, atol=1e-16)


def test_worked_case_four_uneven_micro_batches():
    split, p = _case(UNEVEN, 1, 4)
    before = analyse(p, split, "verl-engine-local")
    after = analyse(p, split, "verl-global")
    legacy = analyse(p, split, "verl-legacy-sample-ratio")
    assert before.weights.multiplier == pytest.approx(4.0)
    # tokens in the 16-token micro-batch weigh 52/16, in the 12-token ones 52/12
    assert before.weights.relative_range() == pytest.approx((52 / 16, 52 / 12))
    assert legacy.weights.relative_range() == pytest.approx((52 / 64, 52 / 48))
    assert 3.5 < before.grad_ratio < 4.5
    assert after.grad_ratio == pytest.approx(1.0, rel=1e-13)


def test_sample_ratio_with_a_token_budget_weights_rows_not_tokens():
    split, p = _case(UNEVEN, 1, budget=14)
    w = scheme_weights(split, p.mask, "verl-legacy-sample-ratio")
    rank_rows = len(UNEVEN)
    for mb in split.ranks[0]:
        n_mb = sum(UNEVEN[i] for i in mb)
        expected = (len(mb) / rank_rows) * sum(UNEVEN) / n_mb
        got = w.relative[list(mb)][p.mask[list(mb)] > 0]
        torch.testing.assert_close(got, torch.full_like(got, expected), rtol=1e-13, atol=0)


def test_token_sum_local_divides_by_dp_size():
    split, p = _case(UNEVEN, 2, 2)
    assert scheme_weights(split, p.mask, "verl-engine-local", "token-sum").multiplier == pytest.approx(0.5)
    assert scheme_weights(split, p.mask, "verl-global", "token-sum").multiplier == pytest.approx(1.0)


def test_multiplier_curve_grows_with_count_before_the_fix_and_stays_one_after():
    curve = multiplier_curve(UNEVEN, 2, "verl-engine-local")
    assert [k for k, *_ in curve] == [1, 2, 3, 4]
    assert [m for _, m, *_ in curve] == pytest.approx([1, 2, 3, 4])
    assert all(m == pytest.approx(1.0) for _, m, *_ in multiplier_curve(UNEVEN, 2, "verl-global"))


def test_float32_accumulation_matches_prediction():
    lengths = spread_lengths(12, 10, 0.7, seed=2)
    split = split_batch(lengths, 3, micro_batches=2)
    p = make_problem(lengths, seed=5, dtype=torch.float32)
    for key in SCHEME_KEYS:
        rep = analyse(p, split, key)
        torch.testing.assert_close(rep.grad, rep.predicted.float(), rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------------------- empty shards, bad input


def test_micro_batch_without_real_tokens_behaves_as_verl():
    lengths = [4, 0, 3, 0]  # rank 1 gets rows 2,3; its second micro-batch is all padding
    split, p = _case(lengths, 2, 2)
    rep = analyse(p, split, "verl-engine-local")
    assert math.isnan(rep.micro_losses[0][1]) and math.isnan(rep.logged[0])  # 0/0 as verl
    assert not torch.isnan(rep.grad).any()  # where-masking: zero gradient, not NaN
    assert any("0/0 = NaN" in n and "gradient is 0" in n for n in rep.notes)
    rep = analyse(p, split, "verl-global")
    assert rep.micro_losses[0][1] == 0.0
    torch.testing.assert_close(rep.grad, rep.reference, rtol=1e-12, atol=1e-15)
    assert any("adds 0" in n for n in rep.notes)


def test_a_rank_whose_shard_has_no_tokens_is_named():
    split, p = _case([4, 3, 0, 0], 2, 1)
    rep = analyse(p, split, "verl-engine-local")
    assert any("rank 1's shard has no real tokens" in n for n in rep.notes)
    assert math.isnan(rep.logged[1])


def test_scheme_and_mode_errors():
    with pytest.raises(ValueError, match="scheme must be one of"):
        get_scheme("deepspeed")
    with pytest.raises(ValueError, match="not offered by OpenRLHF"):
        get_scheme("openrlhf-global", "token-sum")
    split, p = _case([1, 2], 1, 1)
    with pytest.raises(ValueError, match="loss_agg_mode"):
        analyse(p, split, "verl-global", "mean")
    other = split_batch([1, 2, 3], 1, micro_batches=1)
    with pytest.raises(ValueError, match="rows but the split has 3"):
        analyse(p, other, "verl-global")


def test_reference_gradient_is_autograd_of_compute_value_loss():
    p = make_problem(UNEVEN, seed=9)
    g, loss = reference_gradient(p.vpreds, p.returns, p.values, p.mask, p.eps)
    # finite differences on one real token
    i, t, h = 3, 5, 1e-6
    v = p.vpreds.clone()
    from valueloss import compute_value_loss

    def f(x):
        return float(compute_value_loss(x, p.returns, p.values, p.mask, p.eps)[0])

    vp, vm = v.clone(), v.clone()
    vp[i, t] += h
    vm[i, t] -= h
    assert (f(vp) - f(vm)) / (2 * h) == pytest.approx(float(g[i, t]), rel=1e-6)
    assert loss == pytest.approx(f(v))


def test_accumulate_logs_sum_for_verl_and_mean_for_the_others():
    split, p = _case(UNEVEN, 2, 2)
    for key in SCHEME_KEYS:
        acc = accumulate(p.vpreds, p.returns, p.values, p.mask, p.eps, split, key)
        for r, losses in enumerate(acc.micro_losses):
            want = sum(losses) if SCHEMES[key].logged == "sum" else sum(losses) / len(losses)
            assert acc.logged[r] == pytest.approx(want)


# --------------------------------------------------------------------------- what the page shows


def test_compare_offers_only_the_libraries_modes():
    split, p = _case(UNEVEN, 2, 2)
    assert [r.scheme.key for r in compare(p, split, "token-mean")] == list(SCHEME_KEYS)
    assert "openrlhf-global" not in [r.scheme.key for r in compare(p, split, "token-sum")]


def test_split_order_lists_real_tokens_by_rank_and_micro_batch():
    lengths = [2, 0, 3, 1]
    split, p = _case(lengths, 2, 2)
    (rows, cols), micro_b, rank_b = split_order(split, p.mask)
    assert rows.tolist() == [0, 0, 2, 2, 2, 3]
    assert cols.tolist() == [0, 1, 0, 1, 2, 0]
    assert rank_b == [1.5]
    assert micro_b == [1.5, 4.5]  # before rank 0's empty second micro-batch (row 1), and inside rank 1


def test_multiplier_sentence_states_the_numbers_on_screen():
    split, p = _case(UNEVEN, 1, 4)
    rep = analyse(p, split, "verl-engine-local")
    text = multiplier_sentence(rep, split)
    lo, hi = rep.weights.relative_range()
    assert f"{rep.weights.multiplier:.3g}×" in text and f"from {lo:.3g}× to {hi:.3g}×" in text
    assert f"{rep.grad_ratio:.3g}×" in text and "1 rank × 4 micro-batches" in text
    rep = analyse(p, split, "verl-global")
    assert "every token weighs exactly 1×" in multiplier_sentence(rep, split)
    empty = make_problem([0, 0], seed=1)
    split0 = split_batch([0, 0], 1, micro_batches=1)
    assert "no real token, so there is no multiplier" in multiplier_sentence(
        analyse(empty, split0, "verl-engine-local"), split0
    )


def test_logged_rows_are_the_ranks_logs():
    split, p = _case(UNEVEN, 2, 2)
    reports = compare(p, split)
    rows = logged_rows(reports)
    for rep, row in zip(reports, rows, strict=True):
        assert row["rank 0"] == rep.logged[0] and row["rank 1"] == rep.logged[1]
        assert row["single batch"] == rep.reference_loss


def test_mask_tail():
    assert mask_tail([3, 4, 5], 2) == [3, 0, 0]
    assert mask_tail([3, 4], 9) == [0, 0]
    with pytest.raises(ValueError, match="count must be an integer >= 0"):
        mask_tail([1], -1)


def test_all_masked_mini_batch_with_global_counts_is_refused_clearly():
    split, p = _case([0, 0], 2, 1)
    with pytest.raises(ValueError, match="every sequence is fully masked"):
        analyse(p, split, "verl-global")


def test_figures_draw_every_scheme_in_its_theme_colour():
    from valueloss.viz.scale import SCHEME_STYLE, multiplier_figure, weights_figure

    split, p = _case(UNEVEN, 2, 2)
    reports = compare(p, split)
    (rows, cols), micro_b, rank_b = split_order(split, p.mask)
    series = {r.scheme.key: (r.scheme.label, r.weights.relative[rows, cols].numpy()) for r in reports}
    fig = weights_figure(series, micro_b, rank_b)
    assert [t.name for t in fig.data] == [r.scheme.label for r in reports]
    assert [t.line.color for t in fig.data] == [SCHEME_STYLE[r.scheme.key][0] for r in reports]
    assert len(fig.data[0].y) == sum(UNEVEN)
    assert fig.layout.shapes[0].y0 == 1.0  # the reference
    assert len(fig.layout.shapes) == 1 + len(micro_b) + len(rank_b)
    curves = {r.scheme.key: (r.scheme.label, multiplier_curve(UNEVEN, 2, r.scheme)) for r in reports}
    fig = multiplier_figure(curves, 2)
    lines = [t for t in fig.data if t.name]
    assert [t.name for t in lines] == [r.scheme.label for r in reports]
    before = next(t for t in lines if t.name == SCHEMES["verl-engine-local"].label)
    assert list(before.y) == pytest.approx([1, 2, 3, 4])
    assert fig.layout.shapes[-1].x0 == 2
