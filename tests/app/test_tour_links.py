"""Every "See it live" link of the tour opens the step's own scenario: each link is followed (the page it names, with
its query, as the browser would open it) and what that page shows is compared with the step's reveal.

A link to a page with no comparison below fails, so a new link comes with its check.
"""

from __future__ import annotations

from dataclasses import asdict
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.app.helpers import link_notice, metric, run_link
from valueloss.dialect_grads import tie_table
from valueloss.scale import SCHEMES
from valueloss.teach import tour
from valueloss.teach.simulate import SimConfig
from valueloss.teach.tour import STEPS, format_number, live_links, reveal
from valueloss.tools.batch import synthetic_batch

OPT_BY_LABEL = {"SGD": "sgd", "Adam": "adam"}
LINKS = [(step.key, title, url) for step in STEPS for title, url in live_links(step.key)]


@pytest.fixture(scope="module")
def reveals():
    return {}


def revealed(reveals: dict, key: str):
    if key not in reveals:
        reveals[key] = reveal(key, make_batch=synthetic_batch)
    return reveals[key]


def numbers(r) -> dict[str, str]:
    """The reveal's numbers as the tour shows them."""
    return {label: format_number(value, kind) for label, value, kind in r.numbers}


def follow(url: str):
    """Open the page a link names, with its query, through the app's navigation; the AppTest and the query."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    return run_link(parts.path.removeprefix("./"), query, timeout=180), query


def check_explore(at, r, step_key):
    d = r.data
    shown = {k: at.session_state[k] for k in ("v_old", "R", "eps", "v")}
    assert shown == {"v_old": d["v_old"], "R": d["R"], "eps": d["eps"], "v": d["current"]}


def check_batch(at, r, step_key):
    n = numbers(r)
    if step_key == "clipfrac-counts":
        assert metric(at, "loss clip fraction") == n["vf_clipfrac (verl)"]
        assert metric(at, "zero-gradient share") == n["zero-gradient share"]
        assert metric(at, "prediction clip fraction") == n["prediction outside the band"]
    else:  # the return-units step links its batch at scale 10
        assert metric(at, "loss clip fraction") == n["vf_clipfrac at scale 10"]


def check_sanity(at, r, step_key):
    assert step_key == "return-units"
    assert metric(at, "clip fraction at eps") == numbers(r)["vf_clipfrac at scale 10"]


def check_scale(at, r, step_key):
    assert at.selectbox(key="sc_scheme").value == SCHEMES["verl-engine-local"].label  # the scheme the step is about
    n = {label: value for label, value, _ in r.numbers}
    assert float(metric(at, "learning-rate multiplier").rstrip("×")) == pytest.approx(
        n["learning-rate multiplier before #6957"], rel=1e-3
    )
    assert float(metric(at, "gradient along the reference").rstrip("×")) == pytest.approx(
        n["gradient along the reference, before #6957"], rel=1e-3
    )
    # the same micro-batches: "... tokens per micro-batch rank 0: [20, 10, 21, 14]"
    assert any(f"rank 0: {r.data['micro_tokens']}" in c.value for c in at.caption)


def check_dynamics(at, r, step_key):
    keys = {
        "critic": "d_critic",
        "loss": "d_loss",
        "eps": "d_eps",
        "gap": "d_gap",
        "noise": "d_noise",
        "lr": "d_lr",
        "optimizer": "d_opt",
        "n_tokens": "d_tokens",
        "n_rollouts": "d_rollouts",
        "n_epochs": "d_epochs",
        "n_minibatches": "d_mb",
        "seed": "d_seed",
    }
    state = {field: at.session_state[key] for field, key in keys.items()}
    state["optimizer"] = OPT_BY_LABEL[state["optimizer"]]  # the radio shows (and the link carries) the label
    shown = SimConfig(**{field: type(value)(state[field]) for field, value in asdict(SimConfig()).items()})
    expected = {
        "eps-zero": SimConfig(eps=0.0),
        "first-minibatch": tour.FIRST_MINIBATCH_RUN,
        "sb3-vs-ppo2": SimConfig(loss="sb3"),
    }[step_key]
    assert shown == expected


def check_gradients(at, r, step_key):
    if step_key != "eps-zero":
        return  # the general view (no scenario in the link): it only has to open
    assert at.selectbox(key="g_tie").value == "eps-zero"
    n = {label: value for label, value, _ in r.numbers}
    d = r.data
    share = n["gradient at v = v_old"] / (2 * (d["v_old"] - d["R"]))
    bounds = next(row for row in tie_table("eps-zero", d["v_old"], d["R"]) if row["convention"] == "bounds")
    assert bounds["share of 2(v − R)"] == share == 0.625


CHECKS = {
    "explore": check_explore,
    "batch": check_batch,
    "sanity-check": check_sanity,
    "scale": check_scale,
    "dynamics": check_dynamics,
    "gradients": check_gradients,
}


@pytest.mark.parametrize(("step_key", "title", "url"), LINKS, ids=[f"{k}-{t}" for k, t, _ in LINKS])
def test_each_live_link_opens_the_steps_own_scenario(step_key, title, url, reveals):
    path = urlsplit(url).path.removeprefix("./")
    assert path in CHECKS, f"{url}: no comparison for this page yet (add one to CHECKS)"
    at, query = follow(url)
    assert at.title[0].value == title
    assert link_notice(at) is None, link_notice(at)  # every value of the link was taken as given
    CHECKS[path](at, revealed(reveals, step_key), step_key)


def test_the_micro_batch_step_splits_the_scale_pages_batch():
    """Step 9's words and link describe the batch its reveal computes on (the issue saw 12/16/12/12 become
    [24, 33, 24, 60] on the Scale page)."""
    r = reveal("micro-batches")
    tokens = r.data["micro_tokens"]
    assert f"{min(tokens)} to {max(tokens)} tokens" in tour.get_step("micro-batches").scenario
    ((title, url),) = live_links("micro-batches")
    query = dict(parse_qsl(urlsplit(url).query))
    assert int(query["sc_n"]) == tour.MICRO_BATCHES["sequences"] and int(query["sc_k"]) == len(tokens)
