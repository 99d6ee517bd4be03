"""Scale: the critic's gradient after micro-batches, gradient accumulation and DDP's average.

Thin page: widgets in the sidebar, every number from ``valueloss.scale`` (and, on the button,
``valueloss.tools.distributed``), one plot builder per figure.
"""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from pages.common import explain_terms, links_markdown, literal, metric_row, page_setup, share_link, shows_errors
from valueloss import AGG_MODES, scale
from valueloss.teach import scale_text
from valueloss.tools import distributed as dist_run
from valueloss.tools.exclusive import REAL_RUNS
from valueloss.viz.scale import multiplier_figure, weights_figure

PREFIX = "sc_"
MAX_RUN_RANKS = 4
SCHEME_BY_LABEL = {scale.SCHEMES[key].label: key for key in scale.SCHEME_KEYS}


@st.cache_data(max_entries=32, show_spinner=False)
def cached_lengths(n: int, mean: int, spread: float, seed: int) -> list[int]:
    return scale.spread_lengths(n, mean, spread, seed)


@st.cache_resource(max_entries=32, show_spinner=False)
def cached_analysis(lengths: tuple, dp: int, k: int | None, budget: int | None, mode: str, eps: float, seed: int):
    """The split, every scheme's report, both figures and the logged table, built once per setting.

    cache_resource: a rerun gets these objects back as they are (cache_data unpickled the reports and
    rebuilt the figures on every rerun: two thirds of it); nothing here is mutated by the page."""
    split = scale.split_batch(list(lengths), dp, micro_batches=k, max_token_len=budget)
    problem = scale.make_problem(list(lengths), eps=eps, seed=seed)
    reports = scale.compare(problem, split, mode)
    (rows, cols), micro_b, rank_b = scale.split_order(split, problem.mask)
    series = {r.scheme.key: (r.scheme.label, r.weights.relative[rows, cols].numpy()) for r in reports}
    counts = range(1, min(16, len(lengths) // dp) + 1)
    curves = {
        r.scheme.key: (r.scheme.label, scale.multiplier_curve(list(lengths), dp, r.scheme, mode, counts=counts))
        for r in reports
    }
    figures = (weights_figure(series, micro_b, rank_b), multiplier_figure(curves, split.micro_per_rank if k else None))
    return split, reports, figures, pd.DataFrame(scale.logged_rows(reports))


def fmt(x: float) -> str:
    return "NaN" if math.isnan(x) else f"{x:.4g}×"


# ---------------------------------------------------------------------------------------------------
# The run on real processes: one per server (valueloss.tools.exclusive.REAL_RUNS, module state), in a
# process group of its own. The panel is a fragment that polls while a run is under way: twice a second
# for the visitor whose run it is (each poll also tells the run someone is watching; unwatched for
# ABANDON_S seconds, it is killed), every two seconds for the others, whose button is disabled meanwhile.

ABANDON_S = 10.0
POLL_S = {"own": 0.5, "other": 2.0, None: None}
ACTIVE = "sc_active_run"  # session_state: this session's BackgroundRun while it runs
ENDED = "sc_run_ended"  # session_state: why this session's last run ended without a result


def polling_mode() -> str | None:
    """'own' while this session's run is under way, 'other' while someone else's is, else None."""
    active = REAL_RUNS.active()
    if active is None:
        return None
    return "own" if active is st.session_state.get(ACTIVE) else "other"


def collect_own_run(run_key: tuple) -> None:
    """Note that this session still watches its run; stop it if the settings changed (its result would
    answer another question); keep its result, or why it ended, once it is over."""
    mine = st.session_state.get(ACTIVE)
    if mine is None:
        return
    mine.touch()
    if not mine.done and mine.key != run_key:
        mine.stop("stopped: the settings changed while it ran")
    if mine.done:
        del st.session_state[ACTIVE]
        if mine.result is not None:
            st.session_state["sc_last_run"] = (mine.key, mine.result | {"wall_s": mine.elapsed_s})
        else:
            st.session_state[ENDED] = mine.error


def show_progress(run: dist_run.BackgroundRun) -> None:
    """One bar per rank: starting (each process loads torch), then micro-batches done."""
    steps = run.steps_per_rank
    done = sum(run.steps.values())
    st.caption(
        f"Running for {run.elapsed_s:.0f} s: {len(run.connected)} of {run.cfg.ranks} ranks connected, "
        f"{done} of {steps * run.cfg.ranks} micro-batches done."
    )
    for rank in range(run.cfg.ranks):
        step = run.steps.get(rank, 0)
        if rank not in run.connected:
            st.progress(0.0, text=f"rank {rank}: starting (loading torch, joining the group)")
        else:
            st.progress(step / steps, text=f"rank {rank}: micro-batch {step} of {steps}")
    if st.button("Stop the run", key="sc_stop", icon=":material/stop_circle:"):
        run.stop("stopped: you stopped it")


def run_panel(cfg: dist_run.RunConfig, run_key: tuple, can_run: bool, polling: str | None) -> None:
    collect_own_run(run_key)
    active = REAL_RUNS.active()
    clicked = st.button(
        "Run on real processes", key="sc_run", disabled=not can_run or active is not None, type="primary"
    )
    if clicked and can_run and active is None:  # a click that raced the disabled button starts nothing
        try:
            active = REAL_RUNS.start(cfg, key=run_key, abandon_after_s=ABANDON_S)
        except dist_run.ServerBusy as busy:
            active = busy.run
        except (ValueError, TypeError) as err:
            st.error(literal(f"Cannot run these settings: {err}"))
        else:
            st.session_state[ACTIVE] = active
            st.session_state.pop(ENDED, None)
    mine = active is not None and st.session_state.get(ACTIVE) is active
    if active is not None and mine:
        show_progress(active)
    elif active is not None:
        st.info(
            f"Another visitor's run on real processes is under way (started {active.elapsed_s:.0f} s ago). One run "
            "at a time keeps this server responsive for everyone: the button comes back when it finishes."
        )
    ended = st.session_state.get(ENDED)
    if ended is not None and ended.startswith("stopped"):
        st.warning(literal(f"The run was {ended}."))
    elif ended is not None:
        st.error(literal(f"The run failed: {ended}"))
    last = st.session_state.get("sc_last_run")
    if last is not None and last[0] == run_key:
        show_result(last[1])
    elif last is not None:
        st.caption("The last run used other settings; run again to compare with these.")
    if polling_mode() != polling:  # a run started or ended: redraw the page with the matching poll
        st.rerun(scope="app")


def show_result(run: dict) -> None:
    names = [f"w[{i}]" for i in range(len(run["measured"]) - 1)] + ["bias"]
    st.dataframe(
        pd.DataFrame(
            {
                "parameter": names,
                "measured (DDP)": run["measured"],
                "predicted (core)": run["predicted"],
                "single process": run["reference"],
            }
        ),
        hide_index=True,
        width="stretch",
    )
    st.markdown(
        f"**Measured vs predicted:** max |difference| {run['max_abs_measured_vs_predicted']:.2g}; "
        f"**vs single process:** {run['max_abs_measured_vs_reference']:.2g}. Gradient along the reference, "
        f"for the value head's weights: measured {run['measured_ratio']:.6g}, predicted "
        f"{run['predicted_ratio']:.6g}. This ratio is ⟨g, g_ref⟩ / |g_ref|² for g = d loss / d (w, bias), each "
        "token's gradient times its features summed over the tokens, so it weighs tokens by their features "
        "and differs from the per-token ratio above unless every token weighs the same. "
        f"{len(run['logged_per_rank'])} ranks finished; the whole run took {run['wall_s']:.1f} s."
    )


page_setup(
    "Scale",
    "How do micro-batches and data-parallel ranks change the critic's gradient, and what does each trainer log?",
)
share_link()

with st.sidebar:
    st.subheader("Split")
    dp = st.slider("dp size (data-parallel ranks)", 1, 8, 2, key="sc_dp", bind="query-params")
    by = st.radio(
        "micro-batches by",
        ["count", "token budget"],
        key="sc_by",
        bind="query-params",
        horizontal=True,
        help="A fixed number per rank (ppo_micro_batch_size), or as many as a token budget needs "
        "(verl's use_dynamic_bsz with ppo_max_token_len_per_gpu); sequences are never cut.",
    )
    k: int | None
    budget: int | None
    if by == "count":
        k = st.slider("micro-batches per rank", 1, 16, 4, key="sc_k", bind="query-params")
        budget = None
    else:
        budget = st.number_input("token budget per micro-batch", 1, 10_000, 48, 1, key="sc_budget", bind="query-params")
        k = None
    st.subheader("Batch")
    n = st.slider("sequences in the mini-batch", 1, 64, 16, key="sc_n", bind="query-params")
    mean_len = st.slider("mean response length", 1, 64, 12, key="sc_len", bind="query-params")
    spread = st.slider(
        "length spread",
        0.0,
        1.5,
        0.8,
        0.05,
        key="sc_spread",
        bind="query-params",
        help="0: every sequence has the mean length; 1: lengths vary about e-fold (log-normal).",
    )
    empty = st.slider(
        "fully masked sequences (at the end)",
        0,
        64,
        0,
        key="sc_empty",
        bind="query-params",
        help="Sequences with no real token (e.g. truncated away): see what a micro-batch or shard without tokens does.",
    )
    seed = st.number_input("seed", 0, 10_000, 0, 1, key="sc_seed", bind="query-params")
    st.subheader("Loss")
    mode = st.selectbox("loss_agg_mode", AGG_MODES, key="sc_agg", bind="query-params")
    eps = st.slider("eps (cliprange_value)", 0.0, 2.0, 0.2, 0.01, key="sc_eps", bind="query-params")
    # The options are the labels themselves, so a link carries what the page shows (a format_func would put the
    # label in the URL and the key in the state, and they disagree).
    scheme_label = st.selectbox(
        "library and version",
        list(SCHEME_BY_LABEL),
        key="sc_scheme",
        bind="query-params",
        help="How that trainer normalises each micro-batch's critic loss; the figures show every scheme, "
        "this one is described in words and run on real processes.",
    )
    scheme_key = SCHEME_BY_LABEL[scheme_label]

lengths = scale.mask_tail(cached_lengths(n, mean_len, spread, seed), empty)
st.caption(
    f"{n} sequences, {sum(lengths)} real tokens, lengths {min(lengths)} to {max(lengths)}; "
    f"loss_agg_mode {mode}, eps {eps:g}."
)

result = None
with shows_errors("Cannot split this batch"):
    scale.get_scheme(scheme_key, mode)
    result = cached_analysis(tuple(lengths), dp, k, budget, mode, eps, seed)

if result is not None:
    split, reports, (weights_fig, multiplier_fig), logged_table = result
    chosen = next(r for r in reports if r.scheme.key == scheme_key)
    sentence = scale_text.multiplier_sentence(chosen, split)
    st.info(sentence)
    explain_terms(sentence)
    for note in chosen.notes:
        st.warning(note)
    lo, hi = chosen.weights.relative_range()
    metric_row(
        [
            (
                "learning-rate multiplier",
                fmt(chosen.weights.multiplier),
                "The sum of every real token's weight in the accumulated loss, over the same sum for one backward "
                "pass on the whole mini-batch (the reference): how much larger, on average, the critic's step is.",
            ),
            (
                "gradient along the reference, per token",
                fmt(chosen.grad_ratio),
                "Per token: ⟨g, g_ref⟩ / |g_ref|², g = d loss / d vpreds (one number per token prediction) "
                "accumulated over this split, g_ref the same for the whole mini-batch in one backward pass. The "
                "real run below reports the same ratio for the value head's weights instead (see there).",
            ),
            ("smallest token weight", fmt(lo), "The lightest real token, relative to its weight in the reference."),
            ("largest token weight", fmt(hi), "The heaviest real token, relative to its weight in the reference."),
        ]
    )
    st.caption(
        f"Split: {split.dp_size} rank(s) × {split.micro_per_rank} micro-batch(es); tokens per micro-batch "
        + "; ".join(f"rank {r}: {t}" for r, t in enumerate(split.micro_tokens()))
    )

    # One under the other: each legend names five schemes, and needs the page's width to stay inside its figure.
    st.markdown("**Weight of every token**, relative to the single-batch loss")
    st.plotly_chart(weights_fig, width="stretch", key="sc_fig_weights")
    st.markdown("**Effective critic learning-rate multiplier** as the split changes")
    st.plotly_chart(multiplier_fig, width="stretch", key="sc_fig_mult")

    st.subheader("What each rank would log")
    st.dataframe(logged_table, hide_index=True, width="stretch")
    st.caption(
        "verl after #6957 sums its micro-batch losses (each already divided by the global count), so the mean "
        "over ranks is the single-batch loss; the others average their micro-batch losses."
    )

    st.subheader("Run on real processes")
    can_run = 2 <= dp <= MAX_RUN_RANKS
    if not can_run:
        st.warning(f"Real runs use 2 to {MAX_RUN_RANKS} ranks: set the dp size to one of those (now {dp}).")
    run_words = (
        "Starts one torch.distributed process per rank (gloo on 127.0.0.1), each with its shard of this batch and a "
        "linear value head; DDP averages the accumulated gradients. Starting the processes takes a few seconds; "
        "one run at a time on this server, and it stops if you leave the page."
    )
    st.caption(run_words)
    explain_terms(run_words)
    run_key = (tuple(lengths), dp, k, budget, mode, eps, seed, scheme_key)
    run_config = dist_run.RunConfig(
        lengths=tuple(lengths),
        ranks=dp,
        micro_batches=k,
        max_token_len=budget,
        scheme=scheme_key,
        loss_agg_mode=mode,
        eps=eps,
        seed=seed,
        timeout_s=120,
    )
    polling = polling_mode()
    st.fragment(run_panel, run_every=POLL_S[polling])(run_config, run_key, can_run, polling)

st.subheader("Findings")
for finding in scale_text.FINDINGS:
    st.markdown(f"- {finding.explanation} ({links_markdown(finding.links, ', ')})")
explain_terms(*(finding.explanation for finding in scale_text.FINDINGS))
