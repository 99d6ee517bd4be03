"""Figures of the Timing page: benchmark rows in, ``go.Figure`` out, colours from ``theme``.

One colour and marker per implementation (the Okabe-Ito palette of ``theme``), one dash per pass
(solid: forward+backward, dotted: forward). The roofline is the black long-dashed line everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import plotly.graph_objects as go

from .base import OPEN_AXIS, TOOL_MARGIN
from .theme import COLORS

__all__ = [
    "IMPL_STYLE",
    "PASS_DASH",
    "ROOFLINE_PLAIN",
    "fixed_cost_note",
    "headline_sentence",
    "time_figure",
    "bandwidth_figure",
]

# "roofline" in plain words, where the page first uses the word
ROOFLINE_PLAIN = (
    "the roofline is the time a kernel takes just to read the same inputs and write the same gradient once "
    "on the same machine: no implementation of the loss can be faster than moving its bytes"
)


def headline_sentence(top: dict | None) -> str | None:
    """The answer a page leads with, from :func:`valueloss.tools.bench.headline`'s numbers (None: nothing ran)."""
    if top is None:
        return None
    parts = [f"At **{top['size']}**, the fused forward+backward takes **{top['median_ms']:.3g} ms**"]
    speedup = top.get("speedup_vs_verl_eager")
    if speedup is not None and speedup >= 1:
        parts.append(f"**{speedup:.1f}×** faster than verl's eager formula")
    elif speedup is not None and speedup > 0:  # a loaded machine can time it slower
        parts.append(f"**{1 / speedup:.1f}×** slower than verl's eager formula")
    if top.get("roofline_share") is not None:
        parts.append(
            f"at **{100 * top['roofline_share']:.0f} %** of the roofline speed "
            f"({_gbps(top['gbps'])} of {_gbps(top['roofline_gbps'])} GB/s; {ROOFLINE_PLAIN})"
        )
    sentence = parts[0] + (": " + " and ".join(parts[1:]) if len(parts) > 1 else "") + "."
    fastest = top.get("fastest_impl")
    if fastest not in (None, "fused"):
        label = IMPL_STYLE.get(fastest, (fastest,))[0]
        sentence += f" The fastest implementation at that size is **{label}**, at **{top['fastest_ms']:.3g} ms**."
    return sentence


def _gbps(value: float) -> str:
    """GB/s as people write them: 14.2, 247, 3,177 (never 3.18e+03)."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def fixed_cost_note(rows: Iterable[dict], pass_: str = "forward+backward") -> str | None:
    """Where the fused call stays below half the roofline at its largest size, where its time goes, in
    measured numbers: the part already paid at the smallest size, and what the growing rest costs."""
    series = _series(rows).get(("fused", pass_), [])
    if len(series) < 2:
        return None
    small, large = series[0], series[-1]
    share, roofline_ms = large.get("roofline_share"), large.get("roofline_ms")
    if share is None or roofline_ms is None or share >= 0.5:
        return None
    note = (
        f"Here the fused {pass_} reaches only {100 * share:.0f} % of the roofline at {_size(large)} "
        f"({large['median_ms']:.3g} ms against {roofline_ms:.3g} ms). {small['median_ms']:.3g} ms of that is "
        f"already spent at {_size(small)}: a cost paid on every call, whatever the batch."
    )
    growth = large["median_ms"] - small["median_ms"]
    if growth > 0:
        note += (
            f" The remaining {growth:.3g} ms, the part that grows with the tokens, is still "
            f"{growth / roofline_ms:.2g}× the roofline."
        )
    return note


# implementation -> (label, colour, marker symbol, line width)
IMPL_STYLE = {
    "verl-eager": ("verl eager", COLORS["unclipped"], "circle", 2),
    "openrlhf-eager": ("OpenRLHF eager", COLORS["clipped"], "square", 2),
    "compiled": ("torch.compile", COLORS["v_old"], "diamond", 2),
    "fused": ("fused", COLORS["R"], "star", 3),
    "roofline": ("roofline (stream the bytes once)", COLORS["max"], "line-ew-open", 2),
}
PASS_DASH = {"forward+backward": "solid", "forward": "dot"}
_ROOFLINE_DASH = "longdash"
# below the plot, under the axis title, one entry per row: up to ten entries would push a legend above the plot
# into the title, and one placed under it by a share of the plot's height sat on the axis title on a phone
# (11 px: the longest entry, the roofline's, fits a phone's width)
_LEGEND = dict(
    orientation="h",
    yref="container",
    yanchor="bottom",
    y=0,
    x=0,
    entrywidth=1,
    entrywidthmode="fraction",
    font=dict(size=11),
)
_LEGEND_ROW = 21  # px per entry


def _size(row: dict) -> str:
    return f"{row['batch']}x{row['length']}"


def _series(rows: Iterable[dict]) -> dict[tuple[str, str], list[dict]]:
    """Rows that ran, grouped by (implementation, pass) and sorted by token count."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        if row.get("status") == "ok" and row.get("median_ms"):
            groups.setdefault((row["impl"], row["pass"]), []).append(row)
    for series in groups.values():
        series.sort(key=lambda r: (r["tokens"], r["batch"]))
    return groups


def _order(key: tuple[str, str]) -> tuple[int, int]:
    impl, pass_ = key
    impls = list(IMPL_STYLE)
    return (list(PASS_DASH).index(pass_) if pass_ in PASS_DASH else 9, impls.index(impl) if impl in impls else 9)


def _style(impl: str, pass_: str) -> tuple[str, dict, dict]:
    label, color, symbol, width = IMPL_STYLE.get(impl, (impl, COLORS["neutral"], "circle", 2))
    dash = _ROOFLINE_DASH if impl == "roofline" and pass_ == "forward+backward" else PASS_DASH.get(pass_, "solid")
    return f"{label}, {pass_}", dict(color=color, dash=dash, width=width), dict(symbol=symbol, size=9, color=color)


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _hover(row: dict) -> str:
    return (
        f"{IMPL_STYLE.get(row['impl'], (row['impl'],))[0]} · {row['pass']}<br>"
        f"{_size(row)} = {row['tokens']:,} tokens<br>"
        f"median {row['median_ms']:.4g} ms (quartiles {row['p25_ms']:.4g}–{row['p75_ms']:.4g})<br>"
        f"{_gbps(row['gbps'])} GB/s · {_fmt(row.get('speedup_vs_verl_eager'), '.3g')}× verl eager · "
        f"{_fmt(None if row.get('roofline_share') is None else 100 * row['roofline_share'], '.0f')} % of roofline"
    )


def _layout(title: str, y_title: str, height: int, entries: int) -> dict:
    """``height`` for the plot and its axes; the legend's rows (``entries`` of them) are added below."""
    rows = _LEGEND_ROW * entries
    return dict(
        title=dict(text=title, x=0, xanchor="left", font=dict(size=15)),
        height=height + rows,
        margin={**TOOL_MARGIN, "t": 50, "b": 60 + rows},  # a one-line title; the axis title, then the legend
        legend=_LEGEND,
        plot_bgcolor="white",
        hovermode="closest",
        xaxis=dict(title="tokens per batch (B × T)", type="log", dtick="D2", **OPEN_AXIS),
        yaxis=dict(title=y_title, type="log", dtick="D2", **OPEN_AXIS),
    )


def _trace(series: list[dict], y: str, name: str, line: dict, marker: dict, **extra) -> go.Scatter:
    """One implementation and pass against tokens: column ``y`` of its rows, each point's hover from its row."""
    return go.Scatter(
        x=[r["tokens"] for r in series],
        y=[r[y] for r in series],
        mode="lines+markers",
        name=name,
        line=line,
        marker=marker,
        hovertext=[_hover(r) for r in series],
        hoverinfo="text",
        **extra,
    )


def time_figure(
    rows: Sequence[dict], *, title: str = "Time per call against batch size", height: int = 440
) -> go.Figure:
    """Median time per call against tokens, log-log; the spread of repeats (quartiles) as error bars."""
    traces = []
    for (impl, pass_), series in sorted(_series(rows).items(), key=lambda item: _order(item[0])):
        name, line, marker = _style(impl, pass_)
        spread = dict(
            type="data",
            symmetric=False,
            array=[r["p75_ms"] - r["median_ms"] for r in series],
            arrayminus=[r["median_ms"] - r["p25_ms"] for r in series],
            thickness=1,
            width=3,
            color=line["color"],
        )
        traces.append(_trace(series, "median_ms", name, line, marker, error_y=spread))
    return go.Figure(traces, _layout(title, "median time per call (ms)", height, len(traces)))


def bandwidth_figure(
    rows: Sequence[dict],
    *,
    pass_: str = "forward+backward",
    title: str | None = None,
    height: int = 480,
) -> go.Figure:
    """Achieved GB/s (bytes the loss must move / median time) against tokens, under the measured roofline."""
    title = title or f"Achieved bandwidth, {pass_} (the roofline streams the same bytes once)"
    traces = []
    for (impl, p), series in sorted(_series(rows).items(), key=lambda item: _order(item[0])):
        if p != pass_:
            continue
        name, line, marker = _style(impl, p)
        if impl == "roofline":
            line = dict(line, dash=_ROOFLINE_DASH, width=3)
        traces.append(_trace(series, "gbps", name, line, marker))
    layout = _layout(title, "achieved GB/s (log)", height, len(traces))
    return go.Figure(traces, layout)
