"""Each dialect computes what its library (at the releases it names) computes; the registry says so.

Three kinds of checks: hand computations on tiny batches (golden-style, numbers worked out in the
comments), independent restatements of each library's formula compared bit for bit in float32 and
bfloat16, and autograd against finite differences (the per-token version is in test_dialect_grads).
"""

from __future__ import annotations

import dataclasses
import math
import re
import zlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import valueloss as vl
from tests.batches import random_batch
from valueloss.dialects import LoggedMetric, check_clip_param, families, family_versions, version_label

ORIGINAL = ["verl", "openrlhf", "trl", "cleanrl", "sb3", "slime", "torchrl", "rllib"]
NEW_TRAINERS = ["baselines-ppo2", "rsl_rl", "deepspeed-chat", "trlx", "nemo-aligner", "rllib-legacy"]


def t(rows, dtype=torch.float64):
    return torch.tensor(rows, dtype=dtype)


def loss_of(name, v, r, o, m, eps, **kw):
    return vl.dialect_loss(name, v, r, o, m, eps, **kw)


# ------------------------------------------------------------------------------------------- the registry


def test_registry_keeps_the_old_names_first_and_adds_six_trainers():
    assert list(vl.DIALECTS)[: len(ORIGINAL)] == ORIGINAL
    assert set(NEW_TRAINERS) <= set(vl.DIALECTS)
    assert vl.DIALECTS["verl"].default_eps == 0.5 and vl.DIALECTS["trl"].default_eps == 0.2
    assert vl.DIALECTS["sb3"].default_eps is None and vl.DIALECTS["rllib"].default_eps == 10.0
    assert vl.DIALECTS["verl"].half and not vl.DIALECTS["sb3"].half and not vl.DIALECTS["rsl_rl"].half


def test_every_entry_carries_what_the_app_shows():
    for name, d in vl.DIALECTS.items():
        assert d.name == name and d.param_name and d.library and d.aggregation and d.combine and d.formula.strip()
        assert d.family and d.versions and d.loss_metric and d.logged or not d.current or d.family == "slime"
        assert d.clip_convention in {"bounds", "clamp", "delta", "none"}
        assert d.eps_units in {"return", "loss"} and d.sanity_definition in {"loss", "prediction", "clamp"}
        assert d.source_url.startswith(f"https://github.com/{d.repo}/blob/")
        assert d.commit != "master" and re.fullmatch(r"[0-9a-f]{8,40}|v[\d.]+|ray-[\d.]+", d.commit), (name, d.commit)
        assert set(d.modes) <= set(vl.AGG_MODES) and "token-mean" in d.modes
        assert d.export_source is not None and d.export_label and d.verified
        assert d.tie_rule in {"torch", "tensorflow"}
        assert all(re.fullmatch(r"[\w.-]+/[\w.-]+#\d+", th) for th in d.threads), d.threads
        assert (d.clipfrac_metric is None) == (d.clipfrac_definition is None) or name == "verl" or "verl" in name


def test_each_library_has_exactly_one_current_entry_and_a_version_list():
    fam = families()
    for names in fam.values():
        assert sum(vl.DIALECTS[n].current for n in names) == 1 and vl.DIALECTS[names[0]].current
    assert family_versions("verl-v0.4.0")[0] == "verl" and len(fam["verl"]) == 6
    assert fam["rllib"] == ["rllib", "rllib-legacy"]
    assert fam["openrlhf"] == ["openrlhf", "openrlhf-v0.7", "openrlhf-2025-04", "openrlhf-v0.1.3", "openrlhf-v0.1.2"]
    assert fam["slime"] == ["slime", "slime-per-token"]
    assert "older" in version_label("verl-v0.4.0") and "v0.4.0" in version_label("verl-v0.4.0")
    assert version_label("verl") == vl.DIALECTS["verl"].library and "v0.9.1" in version_label("verl")


def test_rllib_entries_say_what_eps_means():
    current, legacy = vl.DIALECTS["rllib"], vl.DIALECTS["rllib-legacy"]
    assert current.eps_units == "loss" and legacy.eps_units == "return"
    assert "classic" not in current.library.lower() and "ray 1.12" in current.library and "ray 1.11" in legacy.library
    assert math.inf in current.off_values


def test_torchrl_says_next_to_its_number_what_it_logs():
    d = vl.DIALECTS["torchrl"]
    assert (
        "padding" in d.clipfrac_definition and "critic_coeff" in d.logged and d.clipfrac_metric == "value_clip_fraction"
    )
    assert 0.0 in d.off_values
    assert "LAST minibatch" in vl.DIALECTS["cleanrl"].logged


# ------------------------------------------------------------------------------------------- hand computations

# One row, three real tokens and one padded slot; v_old = 0 everywhere, eps = 0.25.
V = [[0.5, -0.1, 2.0, 9.0]]
R = [[1.0, 0.0, 1.0, 9.0]]
O = [[0.0, 0.0, 0.0, 0.0]]
M = [[1.0, 1.0, 1.0, 0.0]]
# token 1: |v - o| = 0.5 > eps, clip(v) = 0.25: L_unclip = 0.25, L_clip = 0.5625 -> max 0.5625 (clipped wins)
# token 2: inside: (−0.1)^2 = 0.01 both -> 0.01
# token 3: clip(v) = 0.25: L_unclip = 1, L_clip = 0.5625 -> max 1 (unclipped wins, overshoot)
MAX_TERMS = [0.5625, 0.01, 1.0]
MEAN_MAX = sum(MAX_TERMS) / 3


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("verl", 0.5 * MEAN_MAX),
        ("trl", 0.5 * MEAN_MAX),
        ("trlx", 0.5 * MEAN_MAX),
        ("deepspeed-chat", 0.5 * MEAN_MAX),
        ("baselines-ppo2", 0.5 * MEAN_MAX),
        ("nemo-aligner", 0.5 * MEAN_MAX),
        ("cleanrl", 0.5 * MEAN_MAX),
        ("openrlhf", 0.5 * MEAN_MAX),
        ("rsl_rl", MEAN_MAX),  # no 0.5
        ("rllib-legacy", MEAN_MAX),  # no 0.5, return units
        ("slime", MEAN_MAX),  # one row: the row's token mean
        ("slime-per-token", MEAN_MAX),
        ("verl-v0.4.0", MEAN_MAX * 3 / (3 + 1e-8)),  # v0.4.0 forgot the 0.5; token-mean divides by N + 1e-8
        ("sb3", (0.75**2 + 0.1**2 + 0.75**2) / 3),  # (R - clip(v))^2, no max
    ],
)
def test_hand_computed_losses(name, expected):
    got = loss_of(name, t(V), t(R), t(O), t(M), 0.25)
    assert float(got.loss) == pytest.approx(expected, rel=1e-12)


def test_hand_computed_clip_fractions():
    # loss-clipped (clipped term strictly larger): token 1 only -> 1/3; prediction-clipped: tokens 1 and 3 -> 2/3
    for name in ("verl", "trl", "trlx"):
        assert float(loss_of(name, t(V), t(R), t(O), t(M), 0.25).clipfrac) == pytest.approx(1 / 3, rel=1e-7)
    slime = loss_of("slime", t(V), t(R), t(O), t(M), 0.25).clipfrac  # float32 in slime, divided in double
    assert slime.dtype == torch.float64 and float(slime) == float(torch.tensor(2.0, dtype=torch.float32) / 3)
    # TorchRL averages over the whole tensor, the padded slot (v = 9, v_old = 0) included: 3 of 4 elements
    assert float(loss_of("torchrl", t(V), t(R), t(O), t(M), 0.25).clipfrac) == 0.75
    for name in ("cleanrl", "sb3", "rsl_rl", "baselines-ppo2", "deepspeed-chat", "nemo-aligner", "rllib"):
        assert loss_of(name, t(V), t(R), t(O), t(M), 0.25).clipfrac is None


def test_rllib_current_clamps_the_loss_and_legacy_clips_the_value():
    # v_old = 0, v = 15, R = 20, vf_clip_param = 10
    v, r, o, m = t([[15.0]]), t([[20.0]]), t([[0.0]]), t([[1.0]])
    assert float(loss_of("rllib", v, r, o, m, 10.0).loss) == 10.0  # (15 - 20)^2 = 25 clamped to 10 (loss units)
    assert float(loss_of("rllib-legacy", v, r, o, m, 10.0).loss) == 100.0  # clip(v) = 10: (10 - 20)^2 = 100 wins
    assert float(loss_of("rllib", v, r, o, m, float("inf")).loss) == 25.0  # the documented "off"
    two = loss_of("rllib", t([[0.0, 0.0]]), t([[1.0, 10.0]]), t([[0.0, 0.0]]), t([[1.0, 1.0]]), 10.0)
    assert float(two.loss) == pytest.approx((1.0 + 10.0) / 2)  # 100 is clamped to 10


def test_off_switches():
    v, r, o, m, _ = random_batch(3, rows=6, width=17, ties=False)
    real = m.bool()
    plain = ((v - r)[real] ** 2).mean()
    assert float(loss_of("rsl_rl", v, r, o, m, None).loss) == pytest.approx(float(plain), rel=1e-13)
    assert float(loss_of("cleanrl", v, r, o, m, None).loss) == pytest.approx(0.5 * float(plain), rel=1e-13)
    assert float(loss_of("nemo-aligner", v, r, o, m, 0.0).loss) == pytest.approx(0.5 * float(plain), rel=1e-13)
    off = loss_of("torchrl", v, r, o, m, 0.0)  # clip_value=0 is falsy: off
    assert off.clipfrac is None and torch.equal(off.loss, loss_of("torchrl", v, r, o, m, None).loss)
    sb3_clipped = o + (v - o).clamp(-0.2, 0.2)
    assert float(loss_of("sb3", v, r, o, m, 0.2).loss) == pytest.approx(float(((r - sb3_clipped)[real] ** 2).mean()))
    assert float(loss_of("sb3", v, r, o, m, None).loss) == pytest.approx(float(plain))


# ------------------------------------------------------------------------------------------- verl releases

# Two rows: [1, 1, pad] and an empty row; loss terms L = [[a, b, x], [y, z, w]] with a NaN-free padding.
VV = [[2.0, 3.0, 0.0], [0.0, 0.0, 0.0]]
RR = [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
OO = [[2.0, 3.0, 0.0], [0.0, 0.0, 0.0]]  # v == v_old: no clipping, L = v^2 = [4, 9]
MM = [[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]


def verl_release(name, mode, nan=False):
    v = t(VV)
    if nan:
        v[0, 2] = float("nan")
    return float(loss_of(name, v, t(RR), t(OO), t(MM), 0.5, loss_agg_mode=mode).loss)


def test_verl_releases_hand_computed():
    # token-mean: 0.5 * 13 / 2 everywhere (old releases add 1e-8 to N), v0.4.0 without the 0.5
    assert verl_release("verl", "token-mean") == 0.5 * 13 / 2
    assert verl_release("verl-v0.6.1", "token-mean") == pytest.approx(0.5 * 13 / 2, rel=1e-8)
    assert verl_release("verl-v0.6.1", "token-mean") != verl_release("verl", "token-mean")  # the +1e-8
    assert verl_release("verl-v0.4.0", "token-mean") == pytest.approx(13 / 2, rel=1e-8)
    # seq-mean-token-sum: rows [13, 0]; current leaves the empty row out (13), up to v0.6.0 it counts (6.5)
    assert verl_release("verl", "seq-mean-token-sum") == 0.5 * 13
    assert verl_release("verl-v0.7.0", "seq-mean-token-sum") == 0.5 * 13
    assert verl_release("verl-v0.5", "seq-mean-token-sum") == 0.5 * 13 / 2
    # seq-mean-token-mean: the empty row is 0/0 = NaN up to v0.6.0
    assert verl_release("verl", "seq-mean-token-mean") == pytest.approx(0.5 * 6.5, rel=1e-8)
    assert math.isnan(verl_release("verl-v0.5", "seq-mean-token-mean"))
    assert math.isnan(verl_release("verl-v0.4.1", "seq-mean-token-mean"))
    # seq-mean-token-sum-norm (T = 3): since v0.7.1 seq-mean / T = 13 / 3; before, the batch's sum / T = 13 / 3
    # too here (one non-empty row), so add a second non-empty row to tell them apart
    v, o = t([[2.0, 3.0, 0.0], [1.0, 0.0, 0.0]]), t([[2.0, 3.0, 0.0], [1.0, 0.0, 0.0]])
    m = t([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    new = float(loss_of("verl", v, t(RR), o, m, 0.5, loss_agg_mode="seq-mean-token-sum-norm").loss)
    old = float(loss_of("verl-v0.7.0", v, t(RR), o, m, 0.5, loss_agg_mode="seq-mean-token-sum-norm").loss)
    assert new == 0.5 * (14 / 2) / 3 and old == 0.5 * 14 / 3


def test_verl_nan_in_padding_poisons_token_mean_before_v0_5():
    assert math.isnan(verl_release("verl-v0.4.1", "token-mean", nan=True))
    assert verl_release("verl-v0.5", "token-mean", nan=True) == pytest.approx(0.5 * 13 / 2, rel=1e-8)
    assert verl_release("verl", "token-mean", nan=True) == 0.5 * 13 / 2


def test_verl_current_entry_is_compute_value_loss_in_every_mode():
    v, r, o, m, eps = random_batch(1, rows=6, width=17)
    for mode in vl.AGG_MODES:
        result = loss_of("verl", v, r, o, m, eps, loss_agg_mode=mode)
        loss, clipfrac = vl.compute_value_loss(v, r, o, m, eps, mode)
        assert torch.equal(result.loss, loss) and torch.equal(result.clipfrac, clipfrac)
    with pytest.raises(ValueError, match="loss_agg_mode"):
        loss_of("verl-v0.7.0", v, r, o, m, eps, loss_agg_mode="token-sum")  # token-sum arrived in v0.9.0


def test_openrlhf_before_2025_04_averages_rows_first():
    # rows [4, 9 | pad] and [1 | pad, pad]: per-row means 6.5 and 1, mean 3.75; token-level: 14/3
    v = t([[2.0, 3.0, 0.0], [1.0, 0.0, 0.0]])
    m = t([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    old = loss_of("openrlhf-2025-04", v, t(RR), v, m, 0.2)
    assert float(old.loss) == 0.5 * 3.75
    assert float(loss_of("openrlhf", v, t(RR), v, m, 0.2).loss) == pytest.approx(0.5 * 14 / 3)
    assert math.isnan(float(loss_of("openrlhf-2025-04", t(VV), t(RR), t(OO), t(MM), 0.2).loss))  # empty row: 0/0


# ------------------------------------------------------------------------------------------- restatements, bit for bit


def openrlhf_reference(values, old_values, returns, mask, clip_eps):
    """OpenRLHF's published formula restated independently (token-level), for the float32 bit check."""
    clipped = old_values + (values - old_values).clamp(-clip_eps, clip_eps)
    loss = torch.max((clipped - returns) ** 2, (values - returns) ** 2)
    return 0.5 * ((loss * mask).sum() / mask.sum())


def rsl_rl_reference(v, r, o, m, eps):
    real = m.bool()
    values, target_values, returns = v[real], o[real], r[real]
    clipped = target_values + (values - target_values).clamp(-eps, eps)
    return torch.max((values - returns).pow(2), (clipped - returns).pow(2)).mean()


def trlx_reference(v, r, o, m, eps):
    clipped = torch.clamp(v, o - eps, o + eps)
    n = m.sum()
    l1, l2 = (v - r) ** 2, (clipped - r) ** 2
    return 0.5 * torch.sum(torch.max(l1, l2) * m) / n, torch.sum((l2 > l1).float() * m) / n


def torchrl_reference(v, r, o, m, eps):
    """ClipPPOLoss's critic path restated: Huber, delta clip, maximum, masked mean; clip fraction unmasked."""
    loss = F.smooth_l1_loss(r, v, reduction="none")
    eps = torch.as_tensor(eps, dtype=torch.float32)  # ClipPPOLoss's clip_value buffer: float32 in every dtype
    pre = v - o
    clipped = pre.clamp(-eps, eps)
    frac = (pre != clipped).to(v.dtype).mean()
    loss = torch.maximum(loss, F.smooth_l1_loss(r, o + clipped, reduction="none"))
    mask = m.to(v.dtype)
    return (1.0 * loss * mask).sum() / mask.sum(), frac


def slime_reference(v, r, o, m, eps):
    """slime's sum_of_sample_mean: per sample an int32 mask and a float32 denominator, Python's sum(), then the
    logged division by the samples in Python double."""
    loss = torch.max((o + (v - o).clamp(-eps, eps) - r) ** 2, (v - r) ** 2)
    masks = [m[i].to(torch.int32) for i in range(v.shape[0])]
    denoms = torch.tensor([float(mask.sum()) for mask in masks], dtype=torch.float32)
    total = sum((loss[i] * masks[i]).sum() / torch.clamp_min(denoms[i], 1) for i in range(v.shape[0]))
    return torch.tensor(total.item() / v.shape[0], dtype=torch.float64)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_restatements_are_bit_identical(dtype):
    for seed in range(12):
        v, r, o, m, eps = random_batch(seed, rows=6, width=17, dtype=dtype)
        if dtype is not torch.bfloat16:
            assert torch.equal(loss_of("openrlhf", v, r, o, m, eps).loss, openrlhf_reference(v, o, r, m, eps))
        assert torch.equal(loss_of("rsl_rl", v, r, o, m, eps).loss, rsl_rl_reference(v, r, o, m, eps))
        got = loss_of("trlx", v, r, o, m, eps)
        want = trlx_reference(v, r, o, m, eps)
        assert torch.equal(got.loss, want[0]) and torch.equal(got.clipfrac, want[1])
        # trlx, DeepSpeed-Chat and TRL: the 0.5 before or after the division is exact in binary
        assert torch.equal(loss_of("deepspeed-chat", v, r, o, m, eps).loss, got.loss)
        assert torch.equal(loss_of("trl", v, r, o, m, eps).loss, got.loss)
        assert torch.equal(loss_of("slime", v, r, o, m, eps).loss, slime_reference(v, r, o, m, eps))
        if eps > 0:
            got = loss_of("torchrl", v, r, o, m, eps)
            want = torchrl_reference(v, r, o, m, eps)
            assert torch.equal(got.loss, want[0]) and torch.equal(got.clipfrac, want[1])


def test_torchrl_nan_in_padding_spares_the_loss_and_counts_as_clipped():
    v, r, o, m, _ = random_batch(7, rows=6, width=17, ties=False)
    v = v.clone()
    pad = (m == 0).nonzero()[0]
    v[pad[0], pad[1]] = float("nan")
    got = loss_of("torchrl", v, r, o, m, 0.2)
    clean_loss = loss_of("torchrl", torch.where(m == 0, o, v), r, o, m, 0.2).loss
    assert float(got.loss) == float(clean_loss)  # where(mask, l, 0): padding is selected away
    clean = v.clone()
    clean[pad[0], pad[1]] = o[pad[0], pad[1]]
    base = loss_of("torchrl", clean, r, o, m, 0.2).clipfrac
    assert float(got.clipfrac) == pytest.approx(float(base) + 1 / v.numel())  # NaN != NaN: counted clipped


def test_dialects_that_share_a_form_agree_in_float64():
    """0.5 * token-mean of the max: verl, OpenRLHF, TRL, CleanRL, trlx, DeepSpeed-Chat, baselines, NeMo-Aligner."""
    same = ("verl", "openrlhf", "trl", "cleanrl", "trlx", "deepspeed-chat", "baselines-ppo2", "nemo-aligner")
    for seed in range(10):
        v, r, o, m, eps = random_batch(seed, rows=6, width=17, ties=False)
        names = same if eps > 0 else same[:-1]  # NeMo-Aligner: loss_clip_val = 0 turns clipping off
        losses = [float(loss_of(n, v, r, o, m, eps).loss) for n in names]
        assert max(losses) - min(losses) <= 1e-12 * max(1.0, abs(losses[0]))
        twice = [float(loss_of(n, v, r, o, m, eps).loss) for n in ("rsl_rl", "rllib-legacy")]
        assert all(x == pytest.approx(2 * losses[0], rel=1e-12) for x in twice)
        # slime's per-token loss divides by the sum of max(n_i, 1): an empty row still counts one token
        per_token = float(loss_of("slime-per-token", v, r, o, m, eps).loss)
        tokens = float(m.sum()) / float(m.sum(dim=-1).clamp_min(1).sum())
        assert per_token == pytest.approx(2 * losses[0] * tokens, rel=1e-12)


# deepspeed-chat-fp32 rounds float64 inputs to float32 (.float()), as DeepSpeed-Chat does: a step at 1e-6;
# test_deepspeed_chat_fp32_casts_after_the_clamp checks it against the plain entry instead.
@pytest.mark.parametrize("name", [n for n in vl.DIALECTS if n != "deepspeed-chat-fp32"])
def test_autograd_matches_finite_differences_on_a_padded_batch(name):
    d = vl.DIALECTS[name]
    v, r, o, m, _ = random_batch(11, rows=6, width=17, ties=False)
    m[m.sum(-1) == 0, 0] = 1.0  # no empty row: OpenRLHF before 2025-04 would be NaN (0/0)
    eps = 3.0 if d.eps_units == "loss" else 0.3
    mode = d.modes[-1]
    leaf = v.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss_of(name, leaf, r, o, m, eps, loss_agg_mode=mode).loss, leaf)
    real = m.bool().nonzero()
    h = 1e-6
    checked = 0
    for i, j in real[:: max(1, len(real) // 12)].tolist():
        up, down = v.clone(), v.clone()
        up[i, j] += h
        down[i, j] -= h
        fd = (
            loss_of(name, up, r, o, m, eps, loss_agg_mode=mode).loss
            - loss_of(name, down, r, o, m, eps, loss_agg_mode=mode).loss
        ) / (2 * h)
        if not math.isfinite(float(fd)):
            continue
        assert float(grad[i, j]) == pytest.approx(float(fd), abs=1e-6), (name, i, j)
        checked += 1
    assert checked >= 5
    assert torch.all(grad[~m.bool()] == 0) or d.name.startswith("verl-v0.4")  # padding gets no gradient


# ------------------------------------------------------------------------------------------- bad input


def test_bad_input_is_a_clear_error():
    v, r, o, m, _ = random_batch(0, rows=6, width=17)
    with pytest.raises(ValueError, match="unknown dialect"):
        loss_of("ppo", v, r, o, m, 0.2)
    with pytest.raises(ValueError, match="cliprange"):
        loss_of("verl", v, r, o, m, None)
    with pytest.raises(ValueError, match="cliprange"):
        loss_of("verl", v, r, o, m, float("inf"))  # inf is RLlib's off switch, not verl's
    with pytest.raises(ValueError, match="cliprange"):
        loss_of("rllib", v, r, o, m, float("nan"))
    with pytest.raises(TypeError, match="cliprange"):
        loss_of("rsl_rl", v, r, o, m, "0.2")
    with pytest.raises(ValueError, match="loss_agg_mode"):
        loss_of("trl", v, r, o, m, 0.2, loss_agg_mode="seq-mean-token-mean")
    assert loss_of("openrlhf", v, r, o, m, None).loss.isfinite()
    assert check_clip_param("eps", "rllib", float("inf")) == float("inf")
    assert check_clip_param("eps", "rllib", torch.tensor(float("inf"))).item() == float("inf")


def test_readme_lists_every_entry_with_its_releases_and_pinned_source():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for name, d in vl.DIALECTS.items():
        row = next((line for line in readme.splitlines() if line.startswith(f"| `{name}` |")), None)
        assert row is not None, f"README's dialect table lacks {name}"
        assert d.library in row and d.source_url in row and d.verified in row, name


GOLDEN_KEYS = [  # (golden key, registry entry, what is compared); eps is the entry's own parameter
    ("rsl_rl", "rsl_rl", "loss"),
    ("baselines_ppo2", "baselines-ppo2", "loss"),
    ("rllib_legacy", "rllib-legacy", "loss"),
    ("rllib_loss_clamp_at_eps", "rllib", "loss"),
    ("nemo_aligner", "nemo-aligner", "loss"),
    ("trlx_vf_loss", "trlx", "loss"),
    ("trlx_vf_clipfrac", "trlx", "clipfrac"),
    ("deepspeed_chat", "deepspeed-chat", "loss"),
    ("torchrl_loss_critic", "torchrl", "loss"),
    ("torchrl_value_clip_fraction", "torchrl", "clipfrac"),
    ("slime_per_token", "slime-per-token", "loss"),
    ("openrlhf_before_2025_04", "openrlhf-2025-04", "loss"),
    ("openrlhf_v0_1_2", "openrlhf-v0.1.2", "loss"),
    ("verl_v0_4_1_token_mean", "verl-v0.4.1", "loss"),
    ("verl_v0_4_0_token_mean", "verl-v0.4.0", "loss"),
]


@pytest.mark.parametrize(("key", "name", "attr"), GOLDEN_KEYS, ids=[k for k, _, _ in GOLDEN_KEYS])
def test_golden_vectors_of_the_newer_entries(key, name, attr, device):
    """golden.json: padding with garbage, a fully masked row, a NaN in padding (cases A, B, C), eps 0.2 and 0.5,
    computed in plain Python floats from each library's formula (no torch)."""
    from .conftest import golden_cases, golden_tensor

    for _, eps, case, want in golden_cases():
        v, r, o, m = (golden_tensor(case[k], device=device) for k in ("vpreds", "returns", "values", "response_mask"))
        got = float(getattr(loss_of(name, v, r, o, m, float(eps)), attr))
        if want[key] is None:
            assert math.isnan(got), (key, eps)
        else:
            assert got == pytest.approx(want[key], abs=1e-12, rel=0), (key, eps)


def test_combine_rule_is_the_typed_twin_of_the_combine_words():
    """Code branches on ``combine_rule``; the prose ``combine`` is only shown. The two must say the same."""
    words = {"max": "max", "clip-only": "clip-only", "huber-max": "Huber", "loss-clamp": "clamps the loss"}
    for d in vl.DIALECTS.values():
        assert words[d.combine_rule] in d.combine, d.name
    assert {d.combine_rule for d in vl.DIALECTS.values()} == set(words)


def test_typed_fields_refuse_words_they_do_not_know():
    """The fields code decides on are Literals, checked when an entry is built; a typo is an error, not a branch."""
    d = vl.DIALECTS["verl"]
    for field, bad in (
        ("clip_convention", "Bounds"),
        ("eps_units", "returns"),
        ("tie_rule", "tf"),
        ("sanity_definition", "loss clip"),
        ("verification", "checked"),
        ("combine_rule", "maximum"),
    ):
        with pytest.raises(ValueError, match=field):
            dataclasses.replace(d, **{field: bad})
    with pytest.raises(ValueError, match="value loss"):
        dataclasses.replace(d, metrics=d.metrics_for("clipfrac"))
    with pytest.raises(ValueError, match="reduction"):
        LoggedMetric("value_loss", "loss", "average")
    with pytest.raises(ValueError, match="quantity"):
        LoggedMetric("critic_loss", "loss")


# ------------------------------------------------------------------------------------------- what is logged

# Each trainer's logging loop, restated from its source (the key and releases select it). ``x`` holds what each
# call of the loss function returned: x[rank, epoch, mini_batch, micro_batch].


def _verl_v07(x):  # dp_critic (verl#4711): metrics["critic/vf_loss"] += vf_loss * (1 / grad_accum); mean over ranks
    per_rank = []
    for rank in x:
        total = 0.0
        for epoch in rank:
            for mini in epoch:
                for vf_loss in mini:
                    total += vf_loss * (1 / len(mini))
        per_rank.append(total)
    return np.mean(per_rank)


def _verl_v09(x):  # engine: Metric(SUM): aggregate_dp = mean over ranks, then sum over micro; mean over mini-batches
    per_mini = [np.sum(np.mean(x[:, e, b, :], axis=0)) for e in range(x.shape[1]) for b in range(x.shape[2])]
    return np.mean(per_mini)


def _last_minibatch_of_rank0(x):
    return x[0, -1, -1, -1]


def _trlx_step(x):  # stats = sum(stats of the micro-batches) / num_mb, logged per optimizer step on the main process
    return sum(x[0, -1, -1, :]) / x.shape[3]


LOGGING_RULES = {
    ("critic/vf_loss", "v0.9.0 – v0.9.1"): _verl_v09,
    ("critic/vf_loss", "v0.8.0"): lambda x: np.mean(x.reshape(-1)),  # every rank's floats, flattened
    ("critic/vf_loss", "v0.7.1"): _verl_v07,
    ("critic/vf_loss", "v0.7.0 – v0.7.1"): _verl_v07,
    ("critic/vf_loss", "v0.6.1"): lambda x: np.mean([v / x.shape[3] for v in x.reshape(-1)]),
    ("critic/vf_loss", "v0.6.0"): lambda x: np.mean([v / x.shape[3] for v in x.reshape(-1)]),
    ("critic/vf_loss", "v0.6.0 – v0.6.1"): lambda x: np.mean([v / x.shape[3] for v in x.reshape(-1)]),
    ("critic/vf_loss", "v0.5.0"): lambda x: np.mean(x[0]),  # DataProto.concat kept rank 0's meta_info
    ("critic/vf_loss", ""): lambda x: np.mean(x[0]),
    ("critic/vf_clipfrac", ""): lambda x: np.mean(x),
    ("critic/vpred_mean", ""): lambda x: np.mean(x),
    ("critic/grad_norm", ""): lambda x: np.mean(x),
    # OpenRLHF: status = all_reduce(status) (mean over ranks) per micro-batch; status_mean over status_list
    ("train/critic_loss", ""): lambda x: np.mean([np.mean(x[:, e, b, k]) for e, b, k in np.ndindex(x.shape[1:])]),
    ("train/values", ""): lambda x: np.mean(x),
    ("train/critic_grad_norm", ""): lambda x: np.mean(x),
    ("train/critic_grad_norm", "v0.9.6 – v0.10.2"): lambda x: np.mean(x),
    # TRL: vf_loss_stats[epoch, minibatch, grad_accum] gathered over ranks, .mean()
    ("loss/value_avg", ""): lambda x: np.mean(x),
    ("val/clipfrac_avg", ""): lambda x: np.mean(x),
    ("ppo/loss/value", "0.x PPOTrainer (before 0.12)"): lambda x: np.mean(x[0]),
    ("ppo/val/clipfrac", "0.x PPOTrainer (before 0.12)"): lambda x: np.mean(x[0]),
    ("ppo/val/vpred", "0.x PPOTrainer (before 0.12)"): lambda x: np.mean(x[0]),
    ("ppo/val/var_explained", "0.x PPOTrainer (before 0.12)"): lambda x: np.mean(x[0]),
    ("losses/value_loss", ""): None,  # CleanRL and trlx share the key: see below
    ("losses/clipfrac", ""): lambda x: np.mean(x),
    ("train/value_loss", ""): lambda x: np.mean(x),  # SB3: value_losses over epochs and minibatches
    ("train/clip_fraction", ""): lambda x: np.mean(x),
    # slime: sum over micro-batches and ranks of the micro-batch sums / step samples (equal micro-batches)
    ("train/critic-value_loss", ""): lambda x: np.sum(x) / x.size,
    ("train/critic-value_clipfrac", ""): lambda x: np.sum(x) / x.size,
    ("loss_critic", ""): lambda x: x[0, -1, -1, -1],
    ("value_clip_fraction", ""): lambda x: x[0, -1, -1, -1],
    ("explained_variance", ""): lambda x: x[0, -1, -1, -1],
    # RLlib new stack: log_dict(..., window=1): the last minibatch, averaged over learners
    ("learners/default_policy/vf_loss", "ray 2.x, new API stack (PPOTorchLearner)"): lambda x: np.mean(
        x[:, -1, -1, -1]
    ),
    ("learners/default_policy/vf_loss_unclipped", "ray 2.x, new API stack (PPOTorchLearner)"): lambda x: np.mean(
        x[:, -1, -1, -1]
    ),
    ("learners/default_policy/vf_explained_var", "ray 2.x, new API stack (PPOTorchLearner)"): lambda x: np.mean(
        x[:, -1, -1, -1]
    ),
    ("info/learner/default_policy/learner_stats/vf_loss", "ray 1.12 – 2.x, old API stack (PPOTorchPolicy)"): np.mean,
    ("info/learner/default_policy/learner_stats/vf_loss", ""): np.mean,  # LearnerInfoBuilder: nanmean over minibatches
    ("info/learner/default_policy/learner_stats/vf_explained_var", ""): np.mean,
    ("loss/value_loss", ""): lambda x: np.mean(x[0]),  # baselines: np.mean(mblossvals)
    ("loss/clipfrac", ""): lambda x: np.mean(x[0]),
    ("Loss/value", ""): lambda x: np.sum(x[0]) / x[0].size,  # rsl_rl: sum / (epochs * mini_batches)
    ("Loss/value_function", "before v4.0.0 (renamed 2025-11-28, rsl_rl#140)"): lambda x: np.sum(x[0]) / x[0].size,
    ("critic_loss", ""): _last_minibatch_of_rank0,  # DeepSpeed-Chat: writer.add_scalar('critic_loss', last call)
    ("critic_loss_sum", ""): lambda x: np.sum(x[0]),
    ("values/clipfrac", ""): _trlx_step,
    ("values/mean", ""): _trlx_step,
    ("old_values/mean", ""): _trlx_step,
    ("old_values/max", ""): _trlx_step,
    ("old_values/min", ""): _trlx_step,
    ("returns/mean", ""): _trlx_step,
    ("returns/max", ""): _trlx_step,
    ("returns/min", ""): _trlx_step,
    # NeMo-Aligner critic server: loss_mean over the micro-batches of dp-averaged losses, per global batch
    ("train/loss", ""): lambda x: np.mean(np.mean(x[:, -1, -1, :], axis=0)),
    ("train/grad_norm", ""): lambda x: np.mean(np.mean(x[:, -1, -1, :], axis=0)),
}
ONE_PROCESS = {"cleanrl", "sb3", "torchrl"}


def _rule(name, metric):
    if metric.key == "losses/value_loss":
        return _last_minibatch_of_rank0 if vl.DIALECTS[name].family == "cleanrl" else _trlx_step
    return LOGGING_RULES[(metric.key, metric.releases)]


def _loggers():
    for name, d in vl.DIALECTS.items():
        for metric in d.metrics:
            if metric.of_loss:
                yield name, metric


@pytest.mark.parametrize("name,metric", list(_loggers()), ids=lambda x: getattr(x, "key", x))
def test_dashboard_value_follows_each_trainers_logging_loop(name, metric):
    gen = np.random.default_rng(zlib.crc32(f"{name} {metric.key} {metric.releases}".encode()))
    for shape in ((1, 1, 1, 1), (3, 2, 3, 4), (2, 3, 1, 2), (1, 2, 4, 3)):
        if name in ONE_PROCESS:
            shape = (1, *shape[1:])
        x = gen.uniform(0.0, 3.0, shape)
        want = _rule(name, metric)(x)
        got = vl.dashboard_value(name, x, quantity=metric.quantity, release=metric.releases or metric.key)
        assert got == pytest.approx(float(want), rel=1e-12), (name, metric.key, shape)


def test_dashboard_value_of_one_loss_with_alike_micro_batches():
    """The Batch page's question: every micro-batch has this loss, what does the dashboard show?"""
    counts = dict(micro_batches=4, mini_batches=3, epochs=2, ranks=2)
    assert vl.dashboard_value("verl", 0.5, **counts) == 0.5  # v0.9: the mini-batch's loss, however it is split
    assert vl.dashboard_value("verl", 0.5, release="v0.7.1", **counts) == 0.5 * 3 * 2  # summed over B x E
    assert vl.dashboard_value("verl-v0.5", 0.5, release="v0.6.0", **counts) == 0.5 / 4  # times 1 / grad_accum
    assert vl.dashboard_value("verl-v0.5", 0.5, release="v0.5.0", **counts) == 0.5
    assert vl.dashboard_value("deepspeed-chat", 0.5, release="critic_loss_sum", **counts) == 0.5 * 24
    for name in vl.DIALECTS:
        if name not in ONE_PROCESS:
            assert vl.dashboard_value(name, 0.25) == 0.25  # one call: the loss itself


def test_dashboard_value_refuses_what_it_cannot_answer():
    with pytest.raises(ValueError, match="rollout"):
        vl.dashboard_value("verl", 0.5, quantity="returns_mean")
    with pytest.raises(ValueError, match="logs no clipfrac"):
        vl.dashboard_value("sb3", 0.5, quantity="clipfrac")
    with pytest.raises(ValueError, match="one process"):
        vl.dashboard_value("cleanrl", 0.5, ranks=2)
    with pytest.raises(ValueError, match="micro_batches"):
        vl.dashboard_value("verl", 0.5, micro_batches=0)
    with pytest.raises(ValueError, match="at most"):
        vl.dashboard_value("verl", 0.5, micro_batches=10**4, mini_batches=10**4)
    with pytest.raises(ValueError, match="shape"):
        vl.dashboard_value("verl", np.ones((2, 2)))
    with pytest.raises(ValueError, match="contradict"):
        vl.dashboard_value("verl", np.ones((1, 1, 2, 2)), micro_batches=3)
    with pytest.raises(ValueError, match="release 'v0.1'"):
        vl.dashboard_value("verl", 0.5, release="v0.1")


def test_every_entry_names_its_logged_metrics():
    """Every entry says under which name its releases log the value loss; the policy's clip fraction is never
    listed as the critic's, and the older names of a key stay findable."""
    for d in vl.DIALECTS.values():
        assert d.loss_metric and d.logged
        for metric in d.metrics:
            assert metric.key and (metric.quantity != "clipfrac" or "clip" in metric.key.lower()), metric
    assert vl.DIALECTS["sb3"].clipfrac_metric is None
    assert vl.DIALECTS["sb3"].metrics_for("policy_clipfrac")[0].key == "train/clip_fraction"
    assert {m.key for m in vl.DIALECTS["rsl_rl"].metrics_for("value_loss")} == {"Loss/value", "Loss/value_function"}
    assert {m.key for m in vl.DIALECTS["trl"].metrics_for("value_loss")} == {"loss/value_avg", "ppo/loss/value"}
    assert vl.logged_metric("cleanrl").reduction == "last_call"


def test_deepspeed_chat_fp32_casts_after_the_clamp():
    """--compute_fp32_loss: float32 inputs give the plain entry's bits (the cast is a no-op); bf16 inputs are
    clamped against bf16 bounds first, so casting the inputs to float32 yourself is not the flag."""
    differ = 0
    for seed in range(60):
        v, r, o, m, eps = random_batch(seed, rows=6, width=17, dtype=torch.float32)
        leaf, plain = v.clone().requires_grad_(True), v.clone().requires_grad_(True)
        fp32 = loss_of("deepspeed-chat-fp32", leaf, r, o, m, eps).loss
        want = loss_of("deepspeed-chat", plain, r, o, m, eps).loss
        assert torch.equal(fp32, want)
        assert torch.equal(torch.autograd.grad(fp32, leaf)[0], torch.autograd.grad(want, plain)[0])
        vb, rb, ob = (x.bfloat16() for x in (v, r, o))
        got = loss_of("deepspeed-chat-fp32", vb, rb, ob, m.bfloat16(), eps).loss
        clipped = torch.clamp(vb, ob - eps, ob + eps).float()  # DeepSpeed-Chat's order, restated
        loss = torch.max((vb.float() - rb) ** 2, (clipped - rb) ** 2)
        assert got.dtype == torch.float32 and torch.equal(
            got, 0.5 * torch.sum(loss * m.bfloat16()) / m.bfloat16().sum()
        )
        cast_first = loss_of("deepspeed-chat", vb.float(), rb.float(), ob.float(), m.float(), eps).loss
        differ += not torch.equal(got, cast_first)
    assert differ > 10


def test_readme_says_what_each_dashboard_shows():
    """The README's logged-metric table is the registry's: each value-loss name, its releases and its factor."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for name, d in vl.DIALECTS.items():
        for m in d.metrics_for("value_loss"):
            factor = vl.dashboard_value(
                name, 1.0, release=m.releases or m.key, micro_batches=4, mini_batches=2, epochs=3
            )
            row = f"| `{name}` | `{m.key}` | {m.releases or 'all'} | `{m.reduction}` | {m.ranks} | {factor:g} |"
            assert row in readme, row
