"""The "what your dashboard shows" panel the Batch and Sanity pages embed, beside "what the loss is".

A trainer rarely logs the loss of one batch: it averages (or sums) the micro-batches, mini-batches, epochs
and ranks of an update, each release its own way. The panel asks for the update's shape and shows, per
metric name the library's releases log, the factor and the number the dashboard shows; every number comes
from ``valueloss.dialects.dashboard_rows``.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from pages.common import drawn_when_open
from valueloss.dialects import DIALECTS, dashboard_rows, version_label

COUNTS = (
    ("micro_batches", "micro-batches per mini-batch", "gradient accumulation: loss calls per optimizer step"),
    ("mini_batches", "mini-batches per epoch", "optimizer steps per epoch"),
    ("epochs", "epochs", "passes over the rollout per update (ppo_epochs)"),
    ("ranks", "data-parallel ranks", "processes that each train on their own share"),
)


def render_dashboard(name: str | None, dialects: pd.DataFrame | None = None, *, prefix: str) -> None:
    """The panel for library entry ``name`` (``None``: the reader picks one). ``dialects`` is a batch report's
    dialect table (``dialect``, ``loss``, ``clip fraction``, ``logs clip fraction``): this batch's numbers;
    without it only the factors are shown. Widget keys start with ``prefix``, the embedding page's URL prefix,
    and bind to the URL.

    Drawn only while its expander is open (a closed one would still run its widgets and tables on every rerun of
    the page: a third of a Batch rerun, which a class of 20 feels); a link that carries its keys opens it."""
    key = prefix + "dash_panel"
    if key not in st.session_state and any(k.startswith(prefix + "dash_") for k in st.query_params):
        st.session_state[key] = True  # a link opens it once; from then on the reader's clicks decide
    box = drawn_when_open("What your dashboard shows", key, ":material/monitoring:")
    if box is None:
        return
    with box:
        if name is None:
            name = st.selectbox(  # registry names, as the URL carries them; the caption below names the release
                "Library and release",
                list(DIALECTS),
                key=prefix + "dash_lib",
                bind="query-params",
            )
        columns = st.columns(len(COUNTS))
        counts = {
            arg: column.number_input(label, 1, 4096, 1, 1, key=prefix + "dash_" + arg, help=hint, bind="query-params")
            for column, (arg, label, hint) in zip(columns, COUNTS, strict=True)
        }
        loss = clipfrac = None
        if dialects is not None:
            row = dialects.set_index("dialect").loc[name]
            loss, clipfrac = float(row["loss"]), float(row["clip fraction"]) if row["logs clip fraction"] else None
        rows = dashboard_rows(name, loss, clipfrac, **counts)
        st.caption(
            f"**{version_label(name)}**: the names it logs for the loss and the clip fraction, per release, and how "
            "each logged number relates to one batch's: with every micro-batch alike, the dashboard shows the factor "
            "times this batch's number."
        )
        # the numbers first, so a narrow window shows them beside the name; without a batch, only the factor
        numbers = ("× this batch", "your dashboard shows", "this batch") if loss is not None else ("× this batch",)
        shown = ("metric", *numbers, "releases", "how it is logged")
        st.dataframe(
            [{c: r[c] for c in shown} for r in rows if r["× this batch"] is not None],
            hide_index=True,
            column_config={
                "your dashboard shows": st.column_config.NumberColumn(format="%.5g"),
                "× this batch": st.column_config.NumberColumn(format="%.4g"),
                "this batch": st.column_config.NumberColumn(format="%.5g"),
                "how it is logged": st.column_config.TextColumn(width="large"),
            },
        )
        others = [r for r in rows if r["× this batch"] is None]
        if others:
            st.caption("Also logged (statistics of the rollout or of the update, and the policy's own clip fraction):")
            st.dataframe(
                [{c: r[c] for c in ("metric", "releases", "quantity", "how it is logged")} for r in others],
                hide_index=True,
                column_config={"how it is logged": st.column_config.TextColumn(width="large")},
            )
