"""Batch: the clipped value loss over a whole RLHF minibatch, synthetic or uploaded.

Thin page: widgets in the sidebar, every number from ``valueloss.tools.batch_reports``, one plot builder per figure.
"""

from __future__ import annotations

from functools import partial

import pyarrow as pa
import streamlit as st

from pages import common
from pages.common import (
    eps_input,
    metric_row,
    number_table,
    page_setup,
    share_link,
    show_finding,
    shows_errors,
    synthetic_controls,
    upload_width_input,
    width_caption,
)
from pages.dashboard import render_dashboard
from pages.export_panel import render_export_batch
from valueloss import AGG_MODES, DIALECTS
from valueloss.teach import batch_text
from valueloss.teach.explain import AGG_MODE_WORDS
from valueloss.tools.batch import Batch
from valueloss.tools.batch_files import MAX_UPLOAD_BYTES, SCHEMA_MARKDOWN, example_file
from valueloss.tools.batch_reports import TOKEN_NUMBER_COLUMNS, BatchReport, analyse_batch, dialect_view, for_mode
from valueloss.tools.findings import REFERENCE_CLIPFRAC, BatchVerdict, batch_verdict
from valueloss.viz.batch import aggregation_weights_figure, dialect_figure, histogram_figure

TABLE_ROWS = 200
PREFIX = "b_"
RLLIB_DEFAULT = DIALECTS["rllib"].default_eps
assert RLLIB_DEFAULT is not None  # RLlib bounds the squared error by default (vf_clip_param)


# cache_resource: a hit hands back the object itself, where cache_data unpickles it on every rerun (a tenth of
# a rerun); the page never mutates them. A client's clear_cache only costs their recomputation.
@st.cache_resource(max_entries=32, show_spinner=False)
def cached_report(batch_key: tuple, eps: float, rllib_clip: float, _batch: Batch) -> BatchReport:
    """Keyed without the aggregation mode: ``for_mode`` reads another mode off the same report, so a mode change
    is a cache hit."""
    return analyse_batch(_batch, eps, table_rows=TABLE_ROWS, rllib_clip=rllib_clip)


@st.cache_resource(max_entries=32, show_spinner=False)
def cached_verdict(batch_key: tuple, eps: float, _batch: Batch) -> BatchVerdict:
    return batch_verdict(_batch, eps)


@st.cache_resource(max_entries=144, show_spinner=False)  # nine per setting: the last 16 settings
def built_once(key: tuple, _build):
    """``_build()`` once per ``key`` (which must name everything it reads), shared by every rerun and session:
    a figure or table built on every rerun was a third of this page's server time."""
    return _build()


def arrow(frame) -> pa.Table:
    """A table as Arrow, the form st.dataframe sends: converted once, not on every rerun."""
    return pa.Table.from_pandas(frame, preserve_index=False)


@st.cache_data(show_spinner=False)
def cached_example(kind: str) -> bytes:
    return example_file(kind)


page_setup("Batch", "What does the clipped value loss do to a whole batch, and what would each library log for it?")
share_link()

with st.sidebar:
    st.subheader("Batch")
    source = st.radio(
        "source",
        ["synthetic", "upload"],
        key="b_source",
        bind="query-params",
        horizontal=True,
        help="A seeded RLHF-like batch, or your own file (.npz, .csv, .parquet).",
    )
    eps = eps_input(
        "eps (cliprange_value, return units)",
        "b_eps",
        0.2,
        "The value clip range: v may move at most eps from v_old before the clipped term can win.",
    )
    mode = st.selectbox(
        "verl loss_agg_mode",
        AGG_MODES,
        key="b_mode",
        bind="query-params",
        help="How verl turns the per-token loss matrix into one number (critic.loss_agg_mode). "
        + " ".join(f"{m}: {w}." for m, w in AGG_MODE_WORDS.items()),
    )
    st.caption(f"**{mode}**: {AGG_MODE_WORDS[mode]}.")
    rllib_clip = st.number_input(
        "vf_clip_param of RLlib since ray 1.12 (squared return units)",
        0.0,
        1e6,
        RLLIB_DEFAULT,
        0.5,
        key="b_rllib",
        bind="query-params",
        help="RLlib clamps the squared error at this value instead of clipping the prediction, so eps does not "
        "carry over; it gets its own number (default 10.0).",
    )
    if source == "synthetic":
        with st.expander("Synthetic batch", expanded=True):
            params = synthetic_controls(PREFIX)

batch: Batch | None = None
batch_key: tuple | None = None
if source == "synthetic":
    with shows_errors("Synthetic batch"):
        key = tuple(sorted(params.items()))
        batch, batch_key = common.cached_synthetic(key), ("synthetic", key)
else:
    st.subheader("Upload a batch")
    with st.expander("File format", expanded=True):
        st.markdown(SCHEMA_MARKDOWN)
        cols = st.columns(3)
        for col, kind in zip(cols, ("npz", "csv", "parquet"), strict=True):
            col.download_button(
                f"example .{kind}",
                cached_example(kind),
                file_name=f"valueloss_example.{kind}",
                mime="application/octet-stream",
                key=f"b_example_{kind}",
                on_click="ignore",
            )
    upload = st.file_uploader(
        "batch file",
        type=["npz", "csv", "parquet"],
        key="b_upload",
        max_upload_size=MAX_UPLOAD_BYTES // (1024 * 1024),
        help="Never unpickled; checked for shape, NaN on real tokens, mask values and size.",
    )
    width = upload_width_input(PREFIX)
    if upload is None:
        st.info("Upload a file to analyse it, or switch the source to 'synthetic'.")
    else:
        with shows_errors(f"Could not use {upload.name}"):
            batch = common.cached_upload(upload.name, upload.file_id, width, upload.getvalue())
            batch_key = ("upload", upload.name, upload.file_id, width)
            st.caption(width_caption(upload.name, width, batch.shape[1]))

report: BatchReport | None = None
if batch is not None and batch_key is not None:
    with shows_errors("Batch analysis"):
        report = for_mode(cached_report(batch_key, eps, rllib_clip, batch), mode)

verdict: BatchVerdict | None = None
if report is not None:
    st.caption(report.caption)
    metric_row(report.metrics)
    assert batch is not None and batch_key is not None  # a report is only made of a loaded batch
    with shows_errors("Could not judge this batch's clip fraction"):
        verdict = cached_verdict(batch_key, eps, batch)
        show_finding(verdict.verdict)
        st.caption(batch_text.yardstick_caption(REFERENCE_CLIPFRAC))
    if report.non_finite:
        st.warning(report.non_finite)

    st.subheader("How far did the critic move, and how far should it go?")
    left, right = st.columns(2)
    for column, hist, title, x_title, color_key, chart_key in (
        (left, report.delta_hist, "Δ = v − v_old (the update)", "Δ = v − v_old", "max", "b_hist_delta"),
        (right, report.gap_hist, "R − v_old (the return gap)", "R − v_old", "R", "b_hist_gap"),
    ):
        column.plotly_chart(
            built_once(
                (chart_key, batch_key, eps, rllib_clip),
                partial(
                    histogram_figure, hist.edges, hist.counts, eps, title=title, x_title=x_title, color_key=color_key
                ),
            ),
            width="stretch",
            key=chart_key,
        )
    if verdict is not None:
        st.markdown(f"**{verdict.reading.title}:** {verdict.reading.explanation}")

    st.subheader("How each aggregation mode weights tokens")
    agg = report.aggregation
    st.plotly_chart(
        built_once(
            ("b_agg", batch_key, eps, rllib_clip, mode),
            lambda: aggregation_weights_figure(
                list(agg["mode"]),
                list(agg["weight per token (short)"]),
                list(agg["weight per token (long)"]),
                short_len=report.short_len,
                long_len=report.long_len,
                current=mode,
            ),
        ),
        width="stretch",
        key="b_agg",
    )
    st.markdown(report.aggregation_reading)
    weights: tuple[str, ...] = ("weight per token (short)", "weight per token (long)", "short / long per token")
    weights += ("weight per sequence (short)", "weight per sequence (long)")
    number_table(
        built_once(("agg_table", batch_key, eps, rllib_clip), partial(arrow, agg)),
        {"vf_loss": "%.5g"} | dict.fromkeys(weights, "%.4g"),
    )

    st.subheader("What each library would log for this batch")
    older = st.multiselect(
        "Older releases to compare (each library's current behaviour is always shown)",
        [name for name, entry in DIALECTS.items() if not entry.current],
        default=[],
        key="b_versions",
        bind="query-params",
        help="Where a library changed what it computes (verl's 0.5 and aggregations, OpenRLHF's per-sequence mean, "
        "RLlib's value clip), each behaviour is its own row, named by its releases.",
    )
    dialects_key = (batch_key, eps, rllib_clip, tuple(older))
    view = built_once(("view", *dialects_key), lambda: dialect_view(report, older))
    st.plotly_chart(
        built_once(
            ("b_dialects", *dialects_key),
            lambda: dialect_figure(view.labels, view.losses, view.clip_fractions, view.definitions),
        ),
        width="stretch",
        key="b_dialects",
    )
    # Key columns first: on a narrow window the table scrolls and these stay in view.
    st.dataframe(
        built_once(("shown", *dialects_key), partial(arrow, view.table)),
        hide_index=True,
        column_config={
            "value": st.column_config.NumberColumn(format="%.4g"),
            "loss": st.column_config.NumberColumn(format="%.5g"),
            "clip fraction logged": st.column_config.TextColumn(width="large"),
            "what the logged number is": st.column_config.TextColumn(width="large"),
            "note": st.column_config.TextColumn(width="large"),
        },
    )
    st.caption(view.caption)
    render_dashboard(None, report.dialects, prefix=PREFIX)

    st.subheader("Per-token table")
    st.caption(report.token_caption)
    st.dataframe(
        built_once(("tokens", batch_key, eps, rllib_clip), partial(arrow, report.tokens)),
        hide_index=True,
        height=320,
        column_config={c: st.column_config.NumberColumn(format="%.4g") for c in TOKEN_NUMBER_COLUMNS},
    )

if batch is not None:
    render_export_batch(batch.vpreds, batch.returns, batch.values, batch.mask, eps, mode, "verl")
