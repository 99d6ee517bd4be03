"""Batch: the clipped value loss over a whole RLHF minibatch, synthetic or uploaded.

Thin page: widgets in the sidebar, every number from ``valueloss.tools.batch_reports``, one plot builder per figure.
"""

from __future__ import annotations

import math
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
    shows_errors,
    synthetic_controls,
    upload_width_input,
    width_caption,
)
from pages.export_panel import render_export_batch
from valueloss import AGG_MODES, DIALECTS
from valueloss.dialects import version_label
from valueloss.teach.explain import AGG_MODE_WORDS
from valueloss.tools.batch import Batch
from valueloss.tools.batch_files import MAX_UPLOAD_BYTES, SCHEMA_MARKDOWN, example_file
from valueloss.tools.batch_reports import TOKEN_NUMBER_COLUMNS, BatchReport, analyse_batch
from valueloss.tools.findings import REFERENCE_CLIPFRAC, batch_clip_verdict
from valueloss.viz.batch import aggregation_weights_figure, dialect_figure, histogram_figure

TABLE_ROWS = 200
PREFIX = "b_"


# cache_resource: a hit hands back the object itself, where cache_data unpickles it on every rerun (a tenth of
# a rerun); the page never mutates them. A client's clear_cache only costs their recomputation.
@st.cache_resource(max_entries=32, show_spinner=False)
def cached_report(batch_key: tuple, eps: float, rllib_clip: float, _batch: Batch) -> BatchReport:
    """Keyed without the aggregation mode (a mode change is a cache hit): only vf_loss depends on it, and the
    aggregation table holds every mode's."""
    return analyse_batch(_batch, eps, table_rows=TABLE_ROWS, rllib_clip=rllib_clip)


@st.cache_resource(max_entries=32, show_spinner=False)
def cached_verdict(batch_key: tuple, eps: float, _batch: Batch):
    return batch_clip_verdict(_batch, eps)


@st.cache_resource(max_entries=144, show_spinner=False)  # nine per setting: the last 16 settings
def built_once(key: tuple, _build):
    """``_build()`` once per ``key`` (which must name everything it reads), shared by every rerun and session:
    a figure or table built on every rerun was a third of this page's server time."""
    return _build()


@st.cache_data(show_spinner=False)
def cached_example(kind: str) -> bytes:
    return example_file(kind)


def arrow(frame) -> pa.Table:
    """A table as Arrow, the form st.dataframe sends: converted once, not on every rerun."""
    return pa.Table.from_pandas(frame, preserve_index=False)


def dialect_rows(d):
    """The dialect table as shown: key columns first (on a narrow window the table scrolls and these stay in
    view), the clip fraction as a percentage or "not logged"."""
    shown = d[
        [
            "library",
            "clip fraction",
            "loss",
            "parameter",
            "value",
            "clip fraction logged",
            "logged as",
            "what the logged number is",
            "note",
        ]
    ].copy()
    shown["clip fraction"] = [
        pct(c) if logged else "not logged"
        for c, logged in zip(d["clip fraction"], d["logs clip fraction"], strict=True)
    ]
    return shown


def pct(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.1%}"


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
        "vf_clip_param of RLlib since 2021 (squared return units)",
        0.0,
        1e6,
        float(DIALECTS["rllib"].default_eps),
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
if batch is not None:
    with shows_errors("Batch analysis"):
        report = cached_report(batch_key, eps, rllib_clip, batch)

if report is not None:
    s = report.stats
    st.caption(
        f"{s.n_tokens:,} real tokens in {s.n_rows} sequences (padded width {s.width}); "
        f"lengths {int(s.lengths.min())} to {int(s.lengths.max())}."
    )
    metric_row(
        [
            (
                "loss clip fraction",
                pct(s.loss_clipfrac),
                "verl's vf_clipfrac (TRL logs the same): share of real tokens where the clipped term wins.",
            ),
            (
                "prediction clip fraction",
                pct(s.pred_clipfrac),
                "Share with |v − v_old| > eps (what slime and TorchRL count). Never smaller than the loss clip "
                "fraction: it also counts tokens that moved away from R, or overshot R by more than the band edge "
                "falls short of it, which keep their gradient.",
            ),
            (
                "zero-gradient share",
                pct(s.zero_grad_share),
                "Share of real tokens whose d loss / d v is exactly 0: the loss-clipped tokens, plus any at v = R.",
            ),
            (
                f"vf_loss ({mode})",
                f"{dict(zip(report.aggregation['mode'], report.aggregation['vf_loss'], strict=True))[mode]:.4g}",
                "verl's compute_value_loss on this batch with this eps and aggregation mode.",
            ),
        ]
    )
    with shows_errors("Could not judge this batch's clip fraction"):
        v = cached_verdict(batch_key, eps, batch)
        links = " · ".join(f"[{u.split('github.com/')[1].replace('/issues/', '#')}]({u})" for u in v.links)
        box = {"ok": st.success, "warning": st.warning, "info": st.info}[v.severity]
        box(f"**{v.title}**\n\n{v.explanation}" + (f"\n\n{links}" if links else ""))
        st.caption(
            f"Judged against a {REFERENCE_CLIPFRAC:.0%} yardstick for verl's vf_clipfrac; set your own target on "
            "the Sanity check page."
        )
    if s.nan_real or s.nan_padding:
        st.warning(
            f"Non-finite values: {s.nan_real} on real tokens, {s.nan_padding} in padding. "
            "The aggregation and library tables below show which losses they poison."
        )

    st.subheader("How far did the critic move, and how far should it go?")
    left, right = st.columns(2)
    for column, hist, title, x_title, color_key, key in (
        (left, report.delta_hist, "Δ = v − v_old (the update)", "Δ = v − v_old", "max", "b_hist_delta"),
        (right, report.gap_hist, "R − v_old (the return gap)", "R − v_old", "R", "b_hist_gap"),
    ):
        column.plotly_chart(
            built_once(
                (key, batch_key, eps, rllib_clip),
                partial(histogram_figure, hist.edges, hist.counts, eps, title=title, x_title=x_title, color_key=color_key),
            ),
            width="stretch",
            key=key,
        )
    away = max(s.pred_clipfrac - s.loss_clipfrac, 0.0)
    rollouts = s.median_abs_gap / eps if eps > 0 else math.inf
    st.markdown(
        f"**What to notice:** {pct(s.pred_clipfrac)} of tokens moved more than eps (outside the shaded band, left). "
        f"{pct(s.loss_clipfrac)} moved toward R and are still nearer R than the band edge: the clipped term wins "
        f"and their gradient is zero. The other {pct(away)} moved away from R, or overshot R by more than the band "
        "edge falls short of it, and max() keeps pulling them back. On the right, the median "
        f"gap |R − v_old| is {s.median_abs_gap:.3g}, about {rollouts:.1f}× eps: a token moves at most about eps per "
        "rollout, so that is roughly how many rollouts the critic needs to catch up."
    )

    st.subheader("How each aggregation mode weights tokens")
    agg = report.aggregation
    by_mode = built_once(("by_mode", batch_key, eps, rllib_clip), lambda: agg.set_index("mode"))
    short_len, long_len = int(by_mode.at[mode, "short length"]), int(by_mode.at[mode, "long length"])
    a_left = a_right = st.container()  # the chart, then its reading: stacked, so both fit at 800 px
    a_left.plotly_chart(
        built_once(
            ("b_agg", batch_key, eps, rllib_clip, mode),
            lambda: aggregation_weights_figure(
                list(agg["mode"]),
                list(agg["weight per token (short)"]),
                list(agg["weight per token (long)"]),
                short_len=short_len,
                long_len=long_len,
                current=mode,
            ),
        ),
        width="stretch",
        key="b_agg",
    )
    a_right.markdown(
        f"Each bar is the weight d AGG / d L_token that a mode gives one token (verl's vf_loss multiplies it by 0.5); "
        f"the label is short / long. Only **seq-mean-token-mean** favours short answers: one of the {short_len} "
        f"tokens of the shortest sequence counts ×{by_mode.at['seq-mean-token-mean', 'short / long per token']:.3g} one of the "
        f"{long_len} tokens of the longest. The other modes weight every token alike, so long answers dominate "
        "the critic's gradient; they differ only in overall scale (token-sum grows with the batch, "
        "seq-mean-token-sum-norm divides by the padded width)."
    )
    weights = ("weight per token (short)", "weight per token (long)", "short / long per token")
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
    d = built_once(
        ("d", *dialects_key),
        lambda: report.dialects[[DIALECTS[n].current or n in older for n in report.dialects["dialect"]]],
    )
    st.plotly_chart(
        built_once(
            ("b_dialects", *dialects_key),
            lambda: dialect_figure(
                [version_label(n) if not DIALECTS[n].current else n for n in d["dialect"]],
                list(d["loss"]),
                [c if logged else None for c, logged in zip(d["clip fraction"], d["logs clip fraction"], strict=True)],
                list(d["definition"]),
            ),
        ),
        width="stretch",
        key="b_dialects",
    )
    st.dataframe(
        built_once(("shown", *dialects_key), lambda: arrow(dialect_rows(d))),
        hide_index=True,
        column_config={
            "value": st.column_config.NumberColumn(format="%.4g"),
            "loss": st.column_config.NumberColumn(format="%.5g"),
            "clip fraction logged": st.column_config.TextColumn(width="large"),
            "what the logged number is": st.column_config.TextColumn(width="large"),
            "note": st.column_config.TextColumn(width="large"),
        },
    )
    no_half = ", ".join(DIALECTS[n].library for n in d["dialect"] if not DIALECTS[n].half)
    st.caption(
        f"Same batch, same eps; each row names the releases it describes. Losses differ by the 0.5 factor "
        f"({no_half} have none), by the aggregation (slime averages per sequence), by the combine rule (SB3 clips "
        "without max, TorchRL uses Huber) and by what eps means: RLlib's vf_clip_param (since 2021) bounds the "
        "squared error, so it gets its own value. What each logged number is (last minibatch or an average, "
        "coefficients included) is in the registry: `valueloss.DIALECTS[name].logged`."
    )

    st.subheader("Per-token table")
    st.caption(f"The first {min(TABLE_ROWS, s.n_tokens)} of {s.n_tokens:,} real tokens, row by row.")
    st.dataframe(
        built_once(("tokens", batch_key, eps, rllib_clip), partial(arrow, report.tokens)),
        hide_index=True,
        height=320,
        column_config={c: st.column_config.NumberColumn(format="%.4g") for c in TOKEN_NUMBER_COLUMNS},
    )

if batch is not None:
    render_export_batch(batch.vpreds, batch.returns, batch.values, batch.mask, eps, mode, "verl")
