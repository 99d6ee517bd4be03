"""The Timing page's figures, tables and sentences: benchmark rows in (``valueloss.tools.bench``'s),
``go.Figure``, table records and words out; every sentence is computed from the numbers it shows.

One colour and marker per implementation (the Okabe-Ito palette of ``valueloss.notation``), one dash per pass
(solid: forward+backward, dotted: forward). The roofline is the black long-dashed line everywhere; the
per-call floors are grey lines in the time figure (they move no loss bytes, so not in the bandwidth one).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

import plotly.graph_objects as go

from ..notation import COLORS
from .base import OPEN_AXIS, TOOL_MARGIN

__all__ = [
    "FLOORS",
    "IMPL_LABELS",
    "IMPL_STYLE",
    "PASS_DASH",
    "ROOFLINE_PLAIN",
    "bandwidth_figure",
    "failures",
    "fixed_cost_note",
    "floor_note",
    "headline",
    "headline_sentence",
    "summary_records",
    "table_records",
    "time_figure",
]

IMPL_LABELS = {
    "verl-eager": "verl eager (compute_value_loss)",
    "openrlhf-eager": "OpenRLHF eager (ValueLoss)",
    "compiled": "torch.compile of verl's formula",
    "fused": "fused (fused_value_loss)",
    "fused-kernel": "fused Triton kernel alone (no autograd)",
    "roofline": "roofline: stream the same bytes once",
    "floor-autograd": "floor: an autograd Function that does nothing",
    "floor-kernel": "floor: one tiny kernel",
}
FLOORS = ("floor-autograd", "floor-kernel")
_NOT_RIVALS = ("roofline", *FLOORS)  # measured bounds, not implementations of the loss

# "roofline" in plain words, where the page first uses the word
ROOFLINE_PLAIN = (
    "the roofline is the time a kernel takes just to read the same inputs and write the same gradient once "
    "on the same machine: no implementation of the loss can be faster than moving its bytes"
)


def headline_sentence(top: dict | None) -> str | None:
    """The answer a page leads with, from :func:`headline`'s numbers (None: nothing ran)."""
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
            f"at **{_percent(top['roofline_share'])} %** of the roofline speed "
            f"({_gbps(top['gbps'])} of {_gbps(top['roofline_gbps'])} GB/s; {ROOFLINE_PLAIN})"
        )
    sentence = parts[0] + (": " + " and ".join(parts[1:]) if len(parts) > 1 else "") + "."
    fastest = top.get("fastest_impl")
    if fastest not in (None, "fused"):
        label = IMPL_STYLE.get(fastest, (fastest,))[0]
        sentence += f" The fastest implementation at that size is **{label}**, at **{top['fastest_ms']:.3g} ms**."
    return sentence


def _percent(share: float) -> str:
    """A share as a percentage people read: 71, 8, 0.48 (never "0" for a share that is not nothing)."""
    value = 100 * share
    return f"{value:.0f}" if value >= 9.5 or value == 0 else f"{value:.2g}"


def _times(ratio: float) -> str:
    """A ratio as people write it: 6.3, 12, 210, 1,500 (never 2.1e+02)."""
    return f"{ratio:,.0f}" if ratio >= 10 else f"{ratio:.2g}"


def _gbps(value: float) -> str:
    """GB/s as people write them: 14.2, 247, 3,177 (never 3.18e+03)."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def fixed_cost_note(rows: Iterable[dict], pass_: str = "forward+backward") -> str | None:
    """Where the fused call stays below half the roofline at its largest size, where its time goes, in
    measured numbers: the part already paid at the smallest size, and what the growing rest costs.

    Each sentence holds for the numbers it states: "already spent at the smallest size" only when that
    time is below the largest size's; the growing part "N× the roofline's time" only when it exceeds it.
    """
    series = _series(rows).get(("fused", pass_), [])
    if len(series) < 2:
        return None
    small, large = series[0], series[-1]
    share, roofline_ms = large.get("roofline_share"), large.get("roofline_ms")
    if share is None or roofline_ms is None or share >= 0.5:
        return None
    t_small, t_large = small["median_ms"], large["median_ms"]
    note = (
        f"Here the fused {pass_} reaches only {_percent(share)} % of the roofline at {_size(large)} "
        f"({t_large:.3g} ms against {roofline_ms:.3g} ms)."
    )
    if t_small >= t_large:
        return note + (
            f" At {_size(small)} it takes {t_small:.3g} ms, no less than at {_size(large)}: between these sizes "
            "its time does not grow with the batch, so it is a cost paid per call, not the bytes moved."
        )
    note += (
        f" {t_small:.3g} ms of that is already spent at {_size(small)}: a cost paid on every call, whatever the batch."
    )
    growth = t_large - t_small
    if growth > roofline_ms:
        return note + (
            f" The remaining {growth:.3g} ms, the part that grows with the tokens, is "
            f"{_times(growth / roofline_ms)}× the roofline's time."
        )
    return note + (
        f" The remaining {growth:.3g} ms, the part that grows with the tokens, is within the roofline's "
        f"{roofline_ms:.3g} ms: what keeps the call from the roofline is the per-call cost."
    )


def floor_note(rows: Iterable[dict], pass_: str = "forward+backward") -> str | None:
    """The per-call floor measured in the run, and how much of the fused call at the smallest size it is:
    the part of a small call that no implementation behind autograd can remove."""
    groups = _series(rows)
    empty, tiny = groups.get(("floor-autograd", pass_)), groups.get(("floor-kernel", pass_))
    if not empty:
        return None
    floor_ms = empty[0]["median_ms"]
    what = "forward+backward" if pass_ == "forward+backward" else pass_
    note = f"The per-call floor here: a custom autograd Function that does nothing costs {floor_ms:.3g} ms per {what}"
    note += f", one tiny kernel {tiny[0]['median_ms']:.3g} ms." if tiny else "."
    fused = groups.get(("fused", pass_))
    if fused:
        small = fused[0]
        t = small["median_ms"]
        if floor_ms < t:
            note += (
                f" Of the fused call's {t:.3g} ms at {_size(small)}, {floor_ms:.3g} ms ({100 * floor_ms / t:.0f} %) "
                "is that floor: no implementation behind autograd can remove it."
            )
        else:
            note += (
                f" That is no less than the whole fused call at {_size(small)} ({t:.3g} ms): at that size the "
                "fused call costs no more than the floor."
            )
    return note


# implementation -> (label, colour, marker symbol, line width)
IMPL_STYLE = {
    "verl-eager": ("verl eager", COLORS["unclipped"], "circle", 2),
    "openrlhf-eager": ("OpenRLHF eager", COLORS["clipped"], "square", 2),
    "compiled": ("torch.compile", COLORS["v_old"], "diamond", 2),
    "fused": ("fused", COLORS["R"], "star", 3),
    "fused-kernel": ("fused kernel alone", COLORS["R"], "star-open", 2),
    "roofline": ("roofline (stream the bytes once)", COLORS["max"], "line-ew-open", 2),
    "floor-autograd": ("floor: empty autograd Function", COLORS["neutral"], "line-ns-open", 1),
    "floor-kernel": ("floor: one tiny kernel", COLORS["neutral"], "cross-thin-open", 1),
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
        f"{'-' if row.get('gbps') is None else _gbps(row['gbps'])} GB/s · "
        f"{_fmt(row.get('speedup_vs_verl_eager'), '.3g')}× verl eager · "
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
    """Median time per call against tokens, log-log; the spread of repeats (quartiles) as error bars.
    The floors are drawn for forward+backward only (the call a training step makes)."""
    traces = []
    for (impl, pass_), series in sorted(_series(rows).items(), key=lambda item: _order(item[0])):
        if impl in FLOORS and pass_ != "forward+backward":
            continue
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
        if p != pass_ or impl in FLOORS:
            continue
        name, line, marker = _style(impl, p)
        if impl == "roofline":
            line = dict(line, dash=_ROOFLINE_DASH, width=3)
        traces.append(_trace(series, "gbps", name, line, marker))
    layout = _layout(title, "achieved GB/s (log)", height, len(traces))
    return go.Figure(traces, layout)


# ---------------------------------------------------------------- tables and the headline


def table_records(rows: Sequence[dict]) -> list[dict]:
    """Rows as a readable table (one dict per line, friendly column names)."""
    records = []
    for r in rows:
        ok = r["status"] == "ok"
        records.append(
            {
                "size": _size(r),
                "tokens": r["tokens"],
                "pass": r["pass"],
                "implementation": IMPL_LABELS.get(r["impl"], r["impl"]),
                "median (ms)": r["median_ms"] if ok else None,
                "quartiles (ms)": f"{r['p25_ms']:.4g} – {r['p75_ms']:.4g}" if ok else "",
                "GB/s": r["gbps"] if ok else None,
                "× verl eager": r["speedup_vs_verl_eager"] if ok else None,
                "% of roofline": 100 * r["roofline_share"] if ok and r["roofline_share"] is not None else None,
                "compile (s)": r["compile_s"] if ok else None,
                "page faults / call": r["page_faults_per_call"] if ok else None,
                "status": r["status"],
            }
        )
    return records


def headline(rows: Sequence[dict], impl: str = "fused", pass_: str = "forward+backward") -> dict | None:
    """``impl`` at the largest size that ran: time, ratio to verl eager and share of the roofline."""
    ran = [r for r in rows if r["status"] == "ok" and r["impl"] == impl and r["pass"] == pass_]
    if not ran:
        return None
    top = max(ran, key=lambda r: (r["tokens"], r["batch"]))
    rivals = [
        r
        for r in rows
        if r["status"] == "ok" and r["impl"] not in _NOT_RIVALS and r["pass"] == pass_
        and (r["batch"], r["length"]) == (top["batch"], top["length"])
    ]  # fmt: skip
    fastest = min(rivals, key=lambda r: r["median_ms"])
    return {
        "size": _size(top),
        "median_ms": top["median_ms"],
        "speedup_vs_verl_eager": top["speedup_vs_verl_eager"],
        "roofline_share": top["roofline_share"],
        "gbps": top["gbps"],
        "roofline_gbps": top["roofline_gbps"],
        "fastest_impl": fastest["impl"],
        "fastest_ms": fastest["median_ms"],
    }


class Recording(Protocol):
    """What the summary reads of a recording (``valueloss.tools.bench.BenchResult``; viz does not import tools)."""

    meta: dict
    rows: list[dict]


def summary_records(recordings: Sequence[tuple[str, Recording]]) -> list[dict]:
    """One row per recording (name, a ``BenchResult``): where and when it ran and its :func:`headline` numbers, to compare
    devices and dtypes side by side (recordings where the fused forward+backward did not run are left out)."""
    records = []
    for name, result in recordings:
        top = headline(result.rows)
        if top is None:
            continue
        meta = result.meta
        share = top["roofline_share"]
        records.append(
            {
                "device": meta.get("device_name") or meta.get("device"),
                "dtype": meta.get("dtype"),
                "fused fwd+bwd ms": top["median_ms"],  # the numbers first: visible on a narrow window
                "x verl eager": top["speedup_vs_verl_eager"],
                "% of roofline": None if share is None else 100 * share,
                "size": top["size"],
                "fastest there": f"{IMPL_LABELS.get(top['fastest_impl'], top['fastest_impl'])}, {top['fastest_ms']:.3g} ms",
                "date": str(meta.get("date", ""))[:10],
                "file": name,
            }
        )
    return records


def failures(rows: Sequence[dict]) -> list[str]:
    """One line per size x pass x implementation that did not run (out of memory, errors)."""
    return [f"{_size(r)} {r['pass']} {r['impl']}: {r['status']}" for r in rows if r["status"] != "ok"]
