"""The live explorer's JavaScript computes what the core computes: every number, in Chromium, in float64.

tokenmath.js is evaluated in a blank page (no server) on thousands of random tokens and on the exact
ties the page can reach (band edges, v == R, v_old == R, eps == 0, overshoot points); every per-token
term and the gradient must be the same float64 as ``value_loss_terms``, the region the same code, and
the formatted numbers the same strings as ``explain.fmt``.
"""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
import torch

from valueloss import CONVENTIONS, anatomy, value_loss_terms
from valueloss.teach.explain import fmt
from valueloss.viz.live import MATH_JS
from valueloss.viz.token import nice_ceil, view_range

FIELDS = ("v_clipped", "loss_unclipped", "loss_clipped", "loss_max", "grad")
JS_FIELDS = ("vClipped", "lossUnclipped", "lossClipped", "lossMax", "grad")


@pytest.fixture(scope="module")
def js(browser):
    context = browser.new_context()
    page = context.new_page()
    page.set_content("<html><body></body></html>")
    page.add_script_tag(content=MATH_JS + "\nwindow.VLMath = VLMath;")
    yield page
    context.close()


def slider_values(rng, n, lo, hi):
    """Numbers as the page's sliders produce them: two decimals, parsed like the URL's text."""
    return np.array([float(f"{x:.2f}") for x in rng.uniform(lo, hi, n)])


def token_cases(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = 1500
    v_old = slider_values(rng, n, -10, 10)
    R = slider_values(rng, n, -10, 10)
    eps = slider_values(rng, n, 0, 2)
    v = slider_values(rng, n, -10, 10)
    # arbitrary doubles too, not only two-decimal ones
    raw = rng.normal(0, 3, (4, 1500))
    raw[2] = np.abs(raw[2]) / 3
    m = 400
    base_o, base_r, base_e = slider_values(rng, m, -3, 3), slider_values(rng, m, -3, 3), slider_values(rng, m, 0, 1)
    ties_v = [
        base_o + base_e,  # upper band edge
        base_o - base_e,  # lower band edge
        base_r,  # v == R
        2 * base_r - (base_o + base_e),  # overshoot tie points
        2 * base_r - (base_o - base_e),
        base_o,  # v == v_old
    ]
    vs = [v, raw[0]] + ties_v + [base_o + base_e, slider_values(rng, m, -3, 3)]
    rs = [R, raw[1]] + [base_r] * 6 + [base_o, base_o]  # R == v_old
    os_ = [v_old, raw[3]] + [base_o] * 6 + [base_o, base_o]
    es = [eps, raw[2]] + [base_e] * 6 + [base_e, np.zeros(m)]  # eps == 0
    cases = {k: np.concatenate(a) for k, a in zip(("v", "R", "v_old", "eps"), (vs, rs, os_, es), strict=True)}
    cases["v"] = np.concatenate([cases["v"], [math.nan, 0.5, 0.5]])
    cases["R"] = np.concatenate([cases["R"], [1.0, math.nan, 1.0]])
    cases["v_old"] = np.concatenate([cases["v_old"], [0.0, 0.0, math.nan]])
    cases["eps"] = np.concatenate([cases["eps"], [0.2, 0.2, 0.2]])
    return cases


def bits(x: float) -> int:
    """The float64's bit pattern, with every NaN and both zeros folded together (torch keeps no sign on them)."""
    if x != x:
        return -1
    if x == 0:
        return 0
    return struct.unpack("<q", struct.pack("<d", x))[0]


def test_region_codes_agree_with_the_core(js):
    names = ["INSIDE", "ZERO_GRAD", "AWAY", "OVERSHOT", "TIE", "NAN"]
    got = js.evaluate(f"() => {names}.map(n => VLMath[n])")
    assert got == [getattr(anatomy, f"REGION_{n}") for n in names]


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_every_term_region_and_gradient_equals_the_core_bit_for_bit(js, convention):
    c = token_cases()
    # the core takes one eps per call: evaluate it once per distinct eps
    by_eps = {e: np.flatnonzero(c["eps"] == e) for e in np.unique(c["eps"])}
    got = js.evaluate(
        """([v, R, o, e, conv]) => v.map((_, i) => {
            const t = VLMath.terms(v[i], R[i], o[i], e[i], conv);
            return [t.vClipped, t.lossUnclipped, t.lossClipped, t.lossMax, t.grad,
                    t.region, t.clippedWins, t.predictionClipped];
        })""",
        [[float(x) for x in c[k]] for k in ("v", "R", "v_old", "eps")] + [convention],
    )
    mismatches = []
    for e, idx in by_eps.items():
        ref = value_loss_terms(
            torch.tensor(c["v"][idx], dtype=torch.float64),
            torch.tensor(c["R"][idx], dtype=torch.float64),
            torch.tensor(c["v_old"][idx], dtype=torch.float64),
            float(e),
            convention,
        )
        for j, i in enumerate(idx):
            row = got[i]
            for k, (field, js_field) in enumerate(zip(FIELDS, JS_FIELDS, strict=True)):
                want = float(getattr(ref, field)[j])
                if bits(row[k]) != bits(want):
                    mismatches.append((i, js_field, row[k], want))
            if row[5] != int(ref.region[j]):
                mismatches.append((i, "region", row[5], int(ref.region[j])))
            if row[6] != bool(ref.clipped_wins[j]) or row[7] != bool(ref.prediction_clipped[j]):
                mismatches.append((i, "flags", row[6:8], (bool(ref.clipped_wins[j]), bool(ref.prediction_clipped[j]))))
    assert len(got) == len(c["v"]) > 4000
    assert not mismatches, f"{len(mismatches)} mismatches, first: {mismatches[:5]}"


def test_the_cases_reach_every_region_and_real_ties():
    c = token_cases()
    seen = set()
    for conv in CONVENTIONS:
        for e in np.unique(c["eps"]):
            idx = np.flatnonzero(c["eps"] == e)
            t = value_loss_terms(c["v"][idx], c["R"][idx], c["v_old"][idx], float(e), conv)
            seen |= set(t.region.tolist())
            if conv == "bounds":
                ratio = t.grad / (2 * (torch.tensor(c["v"][idx]) - torch.tensor(c["R"][idx])))
                seen |= {"three-quarters"} if bool((ratio == 0.75).any()) else set()
    assert seen >= {0, 1, 2, 3, 4, 5, "three-quarters"}


def test_numbers_are_formatted_like_the_core(js):
    rng = np.random.default_rng(1)
    xs = list(rng.normal(0, 1, 300) * 10.0 ** rng.integers(-7, 8, 300))
    xs += [0.0, -0.0, 1.0625, 2.03125, 1.00005, 0.00012345, 9999.5, 99995.0, 1e-5, -1e16, 0.1 + 0.2, 123456.0]
    xs += [math.inf, -math.inf, math.nan, 12345.0, 0.00099995, 1.0, 100.0, 1000.0, 0.5, -1.8]
    got = js.evaluate("(xs) => xs.map(VLMath.fmt)", [float(x) for x in xs])
    assert got == [fmt(float(x)) for x in xs]


def test_view_range_and_nice_ceil_match_the_plots(js):
    rng = np.random.default_rng(2)
    rows = [
        [
            float(f"{x:.2f}")
            for x in (rng.uniform(-10, 10), rng.uniform(-10, 10), rng.uniform(0, 2), rng.uniform(-10, 10))
        ]
        for _ in range(300)
    ]
    got = js.evaluate("(rows) => rows.map(r => VLMath.viewRange(r[0], r[1], r[2], r[3]))", rows)
    assert got == [list(view_range(*r)) for r in rows]
    xs = [float(x) for x in rng.uniform(0, 50, 200)] + [0.0, 1.0, 2.0, 5.0, 0.3]
    assert js.evaluate("(xs) => xs.map(VLMath.niceCeil)", xs) == [nice_ceil(x) for x in xs]
