"""Sanity check: is this eps right for my returns, and what does my clip fraction mean?

Thin page: inputs in the sidebar, every number and finding from ``valueloss.tools.sanity``.
"""

from __future__ import annotations

import streamlit as st

from pages import common, registry
from pages.common import page_setup, share_link, show_finding, shows_errors
from pages.dashboard import render_dashboard
from valueloss.dialects import DIALECTS
from valueloss.teach import sanity_text
from valueloss.tools.batch import Batch
from valueloss.tools.batch_files import MAX_UPLOAD_BYTES, SCHEMA_MARKDOWN
from valueloss.tools.clipfrac import SummaryStats
from valueloss.tools.sanity import SanityReport, sanity_from_batch, sanity_from_summary
from valueloss.viz.batch import clipfrac_curve

PREFIX = "s_"
SOURCES = ["summary statistics", "synthetic batch", "upload"]


@st.cache_data(max_entries=32, show_spinner=False)
def cached_batch_report(
    batch_key: tuple, eps: float, library: str, target: float, logged: float | None, _batch: Batch
) -> SanityReport:
    return sanity_from_batch(_batch, eps, library, target, logged=logged)


@st.cache_data(max_entries=64, show_spinner=False)
def cached_summary_report(
    stats: tuple,
    eps: float,
    library: str,
    target: float,
    step: float,
    correlation: float,
    seed: int,
    logged: float | None,
) -> SanityReport:
    return sanity_from_summary(
        SummaryStats(*stats), eps, library, target, step=step, correlation=correlation, seed=seed, logged=logged
    )


INITIAL_EPS = 0.5


def use_library_default() -> None:
    """Changing the library loads its default clip parameter, unless the user typed their own eps: that one
    is kept (and the page says so). Libraries with clipping off by default keep eps either way."""
    default = DIALECTS[st.session_state[PREFIX + "lib"]].default_eps
    prev = st.session_state.get(PREFIX + "lib_prev")
    prev_default = DIALECTS[prev].default_eps if prev in DIALECTS else None
    eps_now = st.session_state.get(PREFIX + "eps", INITIAL_EPS)
    untouched = eps_now in (INITIAL_EPS, prev_default)
    if default is not None and untouched:
        st.session_state[PREFIX + "eps"] = float(default)


def set_eps(value: float) -> None:
    st.session_state[PREFIX + "eps"] = float(value)


page_setup("Sanity check", "Is my cliprange_value right for my return scale, and what is my clip fraction telling me?")
share_link()

with st.sidebar:
    st.subheader("Your setup")
    library = st.selectbox(
        "library",
        list(DIALECTS),
        key=PREFIX + "lib",
        bind="query-params",
        on_change=use_library_default,
        help="Library and release: sets what eps means, which clip fraction is logged, and the default value.",
    )
    st.session_state[PREFIX + "lib_prev"] = library
    eps = common.eps_input(
        f"eps ({DIALECTS[library].param_name})",
        PREFIX + "eps",
        INITIAL_EPS,
        "The clip parameter as you set it. Return units for every library but RLlib since ray 1.12, whose "
        "vf_clip_param bounds the squared error.",
    )
    lib_default = DIALECTS[library].default_eps
    not_default = sanity_text.default_caption(DIALECTS[library], eps)
    if not_default:
        st.caption(not_default)
        st.button(f"Use the default {lib_default:g}", key=PREFIX + "use_default", on_click=set_eps, args=(lib_default,))
    target = st.slider(
        "target clip fraction",
        0.0,
        1.0,
        0.1,
        0.01,
        key=PREFIX + "target",
        bind="query-params",
        help="The clip fraction you are willing to accept: the verdict weighs yours against it, and the page "
        "finds the eps that clips at most this share of tokens.",
    )
    give_logged = st.checkbox(
        "I have a logged clip fraction",
        key=PREFIX + "has_logged",
        bind="query-params",
        help="The vf_clipfrac (or your library's value clip fraction) from your training log.",
    )
    logged = (
        st.number_input(
            "logged clip fraction (0 to 1)",
            0.0,
            1.0,
            0.1,
            0.01,
            format="%.3f",
            key=PREFIX + "logged",
            bind="query-params",
            help="Compared with the fraction computed here; the verdict weighs this one.",
        )
        if give_logged
        else None
    )
    source = st.radio("input", SOURCES, key=PREFIX + "source", bind="query-params")

    if source == "summary statistics":
        st.caption("From your training log, e.g. verl's critic/returns/mean and critic/values/std.")
        st.markdown(
            f"Have the run's log files? [Open them on Your run →](./{registry.page_for_title('Your run').url_path}): "
            "every logged step, with this page's advice per phase."
        )
        stats = (
            st.number_input("return mean", -1e6, 1e6, 0.5, 0.1, key=PREFIX + "r_mean", bind="query-params"),
            st.number_input("return std", 0.0, 1e6, 1.0, 0.1, key=PREFIX + "r_std", bind="query-params"),
            st.number_input("value mean", -1e6, 1e6, 0.0, 0.1, key=PREFIX + "v_mean", bind="query-params"),
            st.number_input("value std", 0.0, 1e6, 0.5, 0.1, key=PREFIX + "v_std", bind="query-params"),
        )
        step = st.slider(
            "update step: share of the gap one update closes",
            0.0,
            3.0,
            0.15,
            0.05,
            key=PREFIX + "step",
            bind="query-params",
            help="The estimate's key assumption: how far one update moves the critic toward R "
            "(v = v_old + step * (R - v_old)). The page shows the estimate over plausible steps too.",
        )
        with st.expander("More model assumptions"):
            correlation = st.slider("corr(v_old, R)", -1.0, 1.0, 0.0, 0.05, key=PREFIX + "corr", bind="query-params")
            model_seed = st.number_input("model seed", 0, 2**31 - 1, 0, 1, key=PREFIX + "mseed", bind="query-params")
    elif source == "synthetic batch":
        with st.expander("Synthetic batch", expanded=True):
            params = common.synthetic_controls(PREFIX)

report: SanityReport | None = None
with shows_errors("Sanity check"):
    if source == "summary statistics":
        report = cached_summary_report(stats, eps, library, target, step, correlation, model_seed, logged)
    elif source == "synthetic batch":
        params_key = tuple(sorted(params.items()))
        report = cached_batch_report(
            ("synthetic", params_key), eps, library, target, logged, common.cached_synthetic(params_key)
        )
    else:
        with st.expander("File format", expanded=False):
            st.markdown(SCHEMA_MARKDOWN)
            st.caption("Example files to download are on the Batch page.")
        upload = st.file_uploader(
            "batch file",
            type=["npz", "csv", "parquet"],
            key=PREFIX + "upload",
            max_upload_size=MAX_UPLOAD_BYTES // (1024 * 1024),
        )
        width = common.upload_width_input(PREFIX)
        if upload is None:
            st.info("Upload a batch (.npz, .csv, .parquet), or use summary statistics.")
        else:
            batch = common.cached_upload(upload.name, upload.file_id, width, upload.getvalue())
            st.caption(common.width_caption(upload.name, width, batch.shape[1]))
            key = ("upload", upload.name, upload.file_id, width)
            report = cached_batch_report(key, eps, library, target, logged, batch)

if report is not None:
    d = report.dialect
    if report.estimate:
        st.info(report.estimate_note)
    common.metric_row(report.metrics)
    st.caption(report.target_note)
    if report.step_note:
        st.markdown(report.step_note)
    show_finding(report.verdict)

    loss_units = d.eps_units == "loss"
    names = ["clamp"] if loss_units else ["loss", "prediction"]
    st.plotly_chart(
        clipfrac_curve(
            report.sweep.eps,
            {name: report.sweep.curve(name) for name in names},
            eps=report.eps,
            at_eps=report.graded_at_eps,
            emphasise=report.definition,
            target=None if report.target is None else report.target.target,
            target_eps=None if report.target is None else report.target.eps,
            x_title=f"{d.param_name} (squared return units)" if loss_units else "eps (return units)",
            estimate=report.estimate,
            reproduces_log=report.curve_caption is not None,
        ),
        width="stretch",
        key="s_curve",
    )
    if report.curve_caption:
        st.caption(report.curve_caption)
    st.markdown(sanity_text.what_to_notice(d))

    st.subheader(f"{d.library}: {d.param_name}")
    st.markdown(sanity_text.library_card(d))
    st.latex(d.formula)
    render_dashboard(d.name, prefix=PREFIX)
    if d.notes:
        st.caption(d.notes)

    st.subheader("Findings")
    for finding in report.findings[1:]:
        show_finding(finding)
