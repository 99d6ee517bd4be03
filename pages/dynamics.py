"""Critic dynamics: train a small critic with the clipped value loss and watch the wall move."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import streamlit as st

from pages.common import drawn_when_open, metric_row, page_setup, share_link, shows_errors
from pages.live_token import moving_wall, training_logs
from valueloss.teach.simulate import (
    CLOSE_FRACTION,
    CRITICS,
    LOSS_FORMS,
    LOSS_LABELS,
    OPTIMIZERS,
    SimConfig,
    loss_form,
    pushed_while_frozen_note,
    rule_of_thumb,
    same_step_note,
    same_step_twin,
    simulate,
    sweep_eps,
    training_logs_caption,
    wall_caption,
)
from valueloss.viz.dynamics import log_data, sweep_figure, wall_data

DEFAULT = SimConfig()
LR_OPTIONS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 3.0)
CRITIC_CAPTIONS = ("one free value per token", "a small MLP: every token shares its weights")
# The radio's options are the labels themselves, so a link carries exactly what the page shows (with a
# format_func Streamlit writes the label into the URL and keeps the option in its state, and they disagree).
OPT_LABELS = {"sgd": "SGD", "adam": "Adam"}
OPT_BY_LABEL = {label: name for name, label in OPT_LABELS.items()}

# Starting points, each one answering a question. Values go into the bound widgets, so the URL follows.
SCENARIOS: dict[str, dict[str, Any]] = {
    "Table + SGD": dict(critic="table", optimizer="sgd", lr=0.5, loss="verl", eps=0.5, gap=4.0, n_rollouts=12),
    "Shared net": dict(critic="shared", optimizer="sgd", lr=0.03, loss="verl", eps=0.5, gap=4.0, n_rollouts=12),
    "Table + Adam": dict(critic="table", optimizer="adam", lr=0.1, loss="verl", eps=0.5, gap=4.0, n_rollouts=12),
    "RLHF gap": dict(critic="table", optimizer="sgd", lr=0.3, loss="verl", eps=0.2, gap=6.0, n_rollouts=36),
    "SB3 form": dict(critic="table", optimizer="sgd", lr=0.5, loss="sb3", eps=0.5, gap=4.0, n_rollouts=12),
    "eps = 0": dict(critic="table", optimizer="sgd", lr=0.5, loss="verl", eps=0.0, gap=4.0, n_rollouts=12),
}
SCENARIO_HELP = {
    "Table + SGD": "One number per token, plain SGD: a token with zero gradient cannot move.",
    "Shared net": "A small network: tokens with zero gradient are still pushed by the others.",
    "Table + Adam": "Adam's momentum keeps a zero-gradient token moving for a few steps.",
    "RLHF gap": "A return gap of 6 with TRL's eps = 0.2: the rule says 30 rollouts; compare the unclipped run.",
    "SB3 form": "Stable-Baselines3's clip-only loss: no max and no ½. Every token outside the band gets zero "
    "gradient, even one that moved away from R; here all tokens move toward R, so the same tokens freeze as in a max "
    "form, and the missing ½ makes each step twice as large (the page compares it with the max form of the same clip "
    "at twice the learning rate).",
    "eps = 0": "The band has no width: a token learns only on the first minibatch of each rollout (v = v_old), "
    "one optimizer step per rollout, and every later move toward R has zero gradient.",
}
_WIDGET_KEYS = {
    "critic": "d_critic",
    "optimizer": "d_opt",
    "lr": "d_lr",
    "loss": "d_loss",
    "eps": "d_eps",
    "gap": "d_gap",
    "n_rollouts": "d_rollouts",
}


class _NotCached(Exception):
    """Raised by the cache lookup when these parameters have not been simulated yet."""


@st.cache_data(show_spinner=False, max_entries=64)
def _stored(kind: str, params: tuple, _computed=None):
    """st.cache_data keyed on the kind of work and the parameters only. A miss raises (exceptions are never
    cached), so the caller can do the work outside the cache, where it may drive a progress bar, then store it."""
    if _computed is None:
        raise _NotCached
    return _computed


def _params(config: SimConfig) -> tuple:
    return tuple(sorted(asdict(config).items()))


def _cached_under_bar(kind: str, config: SimConfig, work: Callable, label: str):
    """``work(config, progress=...)`` from the cache, or computed now under a progress bar that follows it."""
    try:
        return _stored(kind, _params(config))
    except _NotCached:
        pass
    bar = st.progress(0.0, text=f"{label}…")
    try:
        value = work(config, progress=_on_bar(bar, label))
    finally:
        bar.empty()
    return _stored(kind, _params(config), _computed=value)


@st.cache_resource(max_entries=16, show_spinner=False)
def drawn(params: tuple, _result):
    """What the moving wall and the training logs draw of one run, built once per run."""
    return wall_data(_result), log_data(_result)


@st.cache_resource(max_entries=16, show_spinner=False)
def sweep_chart(params: tuple, _sweep):
    """The eps sweep's figure, built once per sweep, the run's own eps marked."""
    return sweep_figure(_sweep, _sweep.config.eps)


def _on_bar(bar, label: str) -> Callable[[float, str], None]:
    """A progress callback that fills ``bar``, its message after ``label``."""

    def report(fraction: float, message: str) -> None:
        bar.progress(fraction, text=f"{label}: {message}")

    return report


@st.cache_data(show_spinner="Running the max form with the same step size…", max_entries=16)
def twin_run(params: tuple):
    """The like-with-like max-form run for a clip-only run (no eps sweep: only its rollouts to close are shown)."""
    return simulate(SimConfig(**dict(params)))


def apply_scenario(name: str) -> None:
    values = {**SCENARIOS[name], "optimizer": OPT_LABELS[SCENARIOS[name]["optimizer"]]}
    st.session_state.update({_WIDGET_KEYS[k]: v for k, v in values.items()})


page_setup(
    "Critic dynamics",
    "Why does a clipped critic need about gap / eps rollouts to reach its targets, and what can still move a "
    "token whose own gradient is zero?",
)
share_link()

with st.sidebar:
    st.subheader("Start from")
    cols = st.columns(2)
    for i, name in enumerate(SCENARIOS):
        cols[i % 2].button(
            name, key=f"d_scn_{i}", on_click=apply_scenario, args=(name,), width="stretch", help=SCENARIO_HELP[name]
        )
    with st.form("d_form", border=False):
        st.subheader("Critic and loss")
        critic = st.radio(
            "critic",
            CRITICS,
            captions=CRITIC_CAPTIONS,
            key="d_critic",
            bind="query-params",
            help="A table has one free number per token, so a token moves only through its own gradient. "
            "A network shares its weights: every step moves every token.",
        )
        loss = st.selectbox(  # options are the registry's names, which the link carries (a label would not be)
            "loss (library)",
            LOSS_FORMS,
            key="d_loss",
            bind="query-params",
            help="The library's value loss as the registry describes it: max of both terms or the clipped term "
            "alone (Stable-Baselines3: every token outside the band has zero gradient, even one that moved away "
            "from R), with or without ½ (without it, steps are twice as large at one learning rate), and its clip "
            "convention and tie rule, which decide the gradient at exact ties (eps = 0). The simulator's minibatch "
            "is a flat set of real tokens, so each library's aggregation is its mean.",
        )
        st.caption(f"{LOSS_LABELS[loss]}: {loss_form(loss).formula}")
        eps = st.slider(
            "eps: clip range (return units)",
            0.0,
            3.0,
            DEFAULT.eps,
            0.05,
            key="d_eps",
            bind="query-params",
            help="The band v_old ± eps. Compared with v − v_old, so it lives in the units of the returns.",
        )
        c1, c2 = st.columns(2)
        optimizer_label = c1.radio("optimizer", [OPT_LABELS[o] for o in OPTIMIZERS], key="d_opt", bind="query-params")
        optimizer = OPT_BY_LABEL[optimizer_label]
        lr = c2.select_slider("learning rate", LR_OPTIONS, DEFAULT.lr, key="d_lr", bind="query-params")
        st.caption("Stable: table + SGD up to ~4, shared + SGD up to ~0.3, Adam 0.01 – 0.3.")
        st.subheader("Targets")
        gap = st.slider(
            "return gap G = mean(true value − initial v)",
            -10.0,
            10.0,
            DEFAULT.gap,
            0.5,
            key="d_gap",
            bind="query-params",
            help="Tokens' gaps are spread from 0.5·G to 1.5·G.",
        )
        noise = st.slider(
            "target noise (std of R around the true value)",
            0.0,
            2.0,
            DEFAULT.noise,
            0.05,
            key="d_noise",
            bind="query-params",
            help="Each rollout draws fresh targets R = true value + noise.",
        )
        st.subheader("Schedule")
        c1, c2 = st.columns(2)
        n_rollouts = c1.number_input("rollouts", 1, 60, DEFAULT.n_rollouts, key="d_rollouts", bind="query-params")
        n_epochs = c2.number_input("epochs", 1, 10, DEFAULT.n_epochs, key="d_epochs", bind="query-params")
        n_minibatches = c1.number_input("minibatches", 1, 8, DEFAULT.n_minibatches, key="d_mb", bind="query-params")
        n_tokens = c2.number_input("tokens", 4, 64, DEFAULT.n_tokens, key="d_tokens", bind="query-params")
        seed = st.number_input("seed", 0, 10_000, DEFAULT.seed, key="d_seed", bind="query-params")
        st.form_submit_button("Run simulation", type="primary", width="stretch", key="d_run")

result = None
with shows_errors("Cannot run this simulation"):
    config = SimConfig(
        critic=critic,
        loss=loss,
        eps=float(eps),
        gap=float(gap),
        noise=float(noise),
        lr=float(lr),
        optimizer=optimizer,
        n_tokens=int(n_tokens),
        n_rollouts=int(n_rollouts),
        n_epochs=int(n_epochs),
        n_minibatches=int(n_minibatches),
        seed=int(seed),
    )
    result = _cached_under_bar("run", config, simulate, "Training")

if result is not None:
    cfg = result.config
    closed = result.rollouts_to_close
    base = result.baseline_rollouts_to_close
    rule_label, rule, rule_help = rule_of_thumb(cfg)
    metric_row(
        [
            (
                f"rollouts to close {CLOSE_FRACTION:.0%} of the gap",
                "—" if closed is None else closed,
                f"'—': not within the {cfg.n_rollouts} rollouts simulated.",
            ),
            (rule_label, rule, rule_help),
            ("same run without clipping", "—" if base is None else base, None),
            (
                "max move with own gradient 0",
                f"{result.max_moved_while_frozen:.4g}",
                "The largest |Δv| in one update, over tokens whose own loss term had exactly zero gradient when "
                "the update began. Nonzero only if something other than the token's own gradient moved it.",
            ),
        ]
    )

    if cfg.eps == 0 and cfg.form.combine_rule is not None:
        st.info(rule_help, icon=":material/info:")
    twin_cfg = same_step_twin(cfg)
    if twin_cfg is not None:
        with shows_errors("Could not run the like-with-like comparison"):
            st.info(
                same_step_note(result, twin_run(_params(twin_cfg))),
                icon=":material/balance:",
            )

    st.subheader("The moving wall")
    wall, logs = drawn(_params(cfg), result)
    st.markdown(
        "Three tokens (the smallest, the median and the largest gap). **Now**: each against its band "
        "v_old ± eps; **right**: each token's whole run, the band stepping at every rollout. Play, drag the "
        "slider or drag across a history to choose the update; the table reads the numbers there."
    )
    moving_wall(key="d_wall", data=wall)
    st.caption(wall_caption(result))
    pushed = pushed_while_frozen_note(result)
    if pushed is not None:
        (st.info if pushed[0] == "pushed" else st.success)(pushed[1])

    st.subheader("Training logs")
    training_logs(key="d_logs", data=logs)
    st.caption(training_logs_caption(result))

    st.subheader("How many rollouts to close the gap?")
    if cfg.gap == 0 or cfg.form.combine_rule is None:
        st.caption("The eps sweep needs a clipped loss and a nonzero gap.")
    elif box := drawn_when_open("The eps sweep: the same run at other eps", "d_sweep_open", ":material/query_stats:"):
        with box, shows_errors("Could not run the eps sweep"):
            sweep = _cached_under_bar("sweep", cfg, sweep_eps, "eps sweep")
            chart = sweep_chart(_params(cfg), sweep)
            st.plotly_chart(chart, width="stretch", key="d_sweep", theme=None)  # the figure carries the look
            st.caption(
                f"Same targets, shuffles and optimizer for every eps. Within a rollout v_old is fixed, so a token "
                f"moves about eps toward its target per rollout: closing {CLOSE_FRACTION:.0%} of a gap G takes about "
                "G / eps rollouts, unless the optimizer is the slower one (the no-clipping line) or single steps jump "
                "past the band (points below the rule)."
            )
