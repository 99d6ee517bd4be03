"""Your run: a real training run's logs in; the critic over training, what the detectors find and each
phase's evidence (with links into Sanity check and Batch) out.

Thin page: uploads and settings here; reading, recognition and analysis in ``valueloss.tools.runlogs``, the
figure in ``valueloss.viz.run``, the links' numbers in ``valueloss.tools.runlogs.links``.
"""

from __future__ import annotations

import time
from urllib.parse import urlencode

import streamlit as st

from pages import registry
from pages.common import (
    drawn_when_open,
    eps_input,
    literal,
    metric_row,
    page_setup,
    share_link,
    show_finding,
    shows_errors,
)
from valueloss.dialects import DIALECTS, version_label
from valueloss.tools.runlogs import (
    FORMATS_MARKDOWN,
    MAX_UPLOAD_BYTES,
    RunLog,
    RunLogError,
    read_log,
)
from valueloss.tools.runlogs.analysis import TIMELINE_QUANTITIES, PhaseEvidence, RunAnalysis, analyse_run
from valueloss.tools.runlogs.evidence import phase_advice
from valueloss.tools.runlogs.example import EXAMPLE_NAME, EXAMPLE_NOTE, example_run_jsonl
from valueloss.tools.runlogs.links import batch_query, phase_rows, sanity_query
from valueloss.tools.runlogs.recognise import Recognition, is_registry_metric, mapping_for, recognise
from valueloss.viz.run import PANELS, timeline_figure

PREFIX = "yr_"
NONE = "(not logged)"
_CACHE = "_yr_runs"  # session_state: file id -> the runs read from it (this visitor's uploads only)


def upload_limit_mb() -> int:
    """The per-file limit that holds: the readers' cap or the server's (``server.maxUploadSize``), the lower."""
    return min(MAX_UPLOAD_BYTES // 2**20, int(st.get_option("server.maxUploadSize")))


def read_with_progress(name: str, file_id: str, get_bytes, keep: tuple[str, ...]) -> list[RunLog]:
    """The runs in one file, read once per visitor and file (a progress bar while a long log reads); the
    bytes are fetched only then."""
    cache = st.session_state.setdefault(_CACHE, {})
    key = (file_id, keep)
    if key not in cache:
        bar = st.progress(0.0, text=f"Reading {literal(name)} …")
        last = [0.0, time.monotonic()]

        def progress(fraction: float) -> None:
            if fraction - last[0] >= 0.02 and time.monotonic() - last[1] > 0.2:
                last[:] = [fraction, time.monotonic()]
                bar.progress(fraction, text=f"Reading {literal(name)}: {fraction:.0%}")

        try:
            cache[key] = read_log(
                name, get_bytes(), relevant=lambda m: is_registry_metric(m) or m in keep, progress=progress
            )
        finally:
            bar.empty()
    return cache[key]


@st.cache_data(max_entries=64, show_spinner=False)
def cached_recognition(metrics: tuple[str, ...]) -> Recognition:
    return recognise(list(metrics))


@st.cache_data(max_entries=64, show_spinner=False)
def cached_mapping(dialect: str, metrics: tuple[str, ...]):
    return mapping_for(dialect, list(metrics))


@st.cache_resource(max_entries=64, show_spinner=False)
def cached_analysis(
    run_key: tuple, mapping: tuple, eps: float | None, band: tuple[float, float], _run: RunLog
) -> RunAnalysis:
    return analyse_run(_run, dict(mapping), eps, band)


MAIN_PANELS = tuple(p for p in PANELS if p != "eps_scale")


@st.cache_resource(max_entries=16, show_spinner=False)
def cached_figure(keys: tuple, band: tuple[float, float], phase_of: str, _analyses: dict):
    """The timeline without the eps panel: eps is not in its key, so typing eps leaves it (and the browser's
    drawing of it) as it is."""
    return timeline_figure(_analyses, {}, band, phase_of=phase_of, panels=MAIN_PANELS)


@st.cache_resource(max_entries=32, show_spinner=False)
def cached_eps_figure(keys: tuple, eps: tuple, _analyses: dict):
    return timeline_figure(_analyses, dict(eps), (0.0, 0.0), panels=("eps_scale",))


PREVIEW_PANELS = ("clipfrac", "value_loss")


@st.cache_resource(max_entries=8, show_spinner=False)
def cached_preview(band: tuple[float, float]):
    """The example run's clip fraction and value loss, as the timeline draws them, for the empty page."""
    (example,) = read_log(EXAMPLE_NAME, example_run_jsonl())
    analysis = analyse_run(example, recognise(example.metrics).mapping, None, band)
    return timeline_figure({example.name: analysis}, {}, band, phase_of=example.name, panels=PREVIEW_PANELS)


@st.cache_data(max_entries=256, show_spinner=False)
def cached_advice(phase: PhaseEvidence, library: str, target: float, logs_clipfrac: bool):
    return phase_advice(phase, library, target, logs_clipfrac=logs_clipfrac)


def page_url(title: str, query: dict) -> str:
    return f"./{registry.page_for_title(title).url_path}?{urlencode(query)}"


page_setup("Your run", "Is my critic healthy over this run, and is my cliprange_value right in every phase of it?")
share_link()

with st.sidebar:
    st.subheader("Your run")
    band = st.slider(
        "target band for the value clip fraction",
        0.0,
        1.0,
        (0.01, 0.10),
        0.01,
        key=PREFIX + "band",
        bind="query-params",
        help="The clip fraction you accept: below the band clipping hardly acts, above it the critic is held back "
        "on more tokens than you want. The phases of a run are cut where its clip fraction crosses these edges.",
    )
    with_example = st.toggle(
        "add the example run (simulated)",
        key=PREFIX + "example",
        bind="query-params",
        help=EXAMPLE_NOTE,
    )

uploads = st.file_uploader(
    "training logs (one or more runs)",
    accept_multiple_files=True,
    key=PREFIX + "upload",
    max_upload_size=upload_limit_mb(),
    help="verl's JSONL or console lines, TensorBoard event files, an MLflow store or folder, W&B CSV/Parquet "
    "exports, any CSV/JSONL with a step column, or a zip of them. Parsed as data: never executed or unpickled.",
)
with st.expander("What this page reads", expanded=False):
    st.markdown(
        FORMATS_MARKDOWN.replace(f"{MAX_UPLOAD_BYTES // 2**20} MB per upload", f"{upload_limit_mb()} MB per upload")
    )

files = [(u.name, u.file_id, u.getvalue) for u in uploads or []]
if with_example:
    files.append((EXAMPLE_NAME, "example", example_run_jsonl))
st.session_state[_CACHE] = {k: v for k, v in st.session_state.get(_CACHE, {}).items() if k[0] in {f[1] for f in files}}
if not files:
    st.info(
        "Drop a run's logs above (verl's `file` backend JSONL is at `$VERL_FILE_LOGGER_ROOT/<project>/<experiment>.jsonl`), "
        "or turn on the example run in the sidebar."
    )
    st.markdown("**What you will see**: each run's critic over training, cut into phases (dotted lines) where its "
                "clip fraction crosses your band and where a problem starts (▼, on the panel it concerns). The example run's first two "
                "panels:")  # fmt: skip
    # Drawn while the reader picks a file: the browser loads its charting code now (about a second), not
    # after the drop
    st.plotly_chart(cached_preview((band[0], band[1])), width="stretch", config={"displaylogo": False})
    st.stop()

runs: list[tuple[str, RunLog]] = []  # (key, run)
for name, file_id, get in files:
    keep = tuple(sorted(st.session_state.get(f"{PREFIX}keep_{file_id}", ())))
    with shows_errors(f"Could not read {name}"):
        try:
            for j, run in enumerate(read_with_progress(name, file_id, get, keep)):
                runs.append((f"{file_id}/{j}", run))
        except RunLogError as err:
            raise ValueError(str(err)) from None
if not runs:
    st.stop()

# ---- per run: trainer and release, eps, the metric for each quantity
settings: dict[str, dict] = {}
with st.sidebar:
    for i, (key, run) in enumerate(runs):
        rec = cached_recognition(tuple(run.metrics))
        label = run.name if len(run.name) <= 40 else run.name[:37] + "..."
        with st.expander(f"Run {i + 1}: {label}", expanded=i == 0):
            names = list(DIALECTS)
            lib = st.selectbox(
                "trainer and release",
                names,
                index=names.index(rec.dialect) if rec.dialect else None,
                format_func=version_label,
                key=f"{PREFIX}lib{i}",
                placeholder="not recognised: pick one",
                help="Recognised from the run's metric names by the registry (valueloss.dialects, each entry's "
                "metrics). Where several releases log the same names, the newest is picked: choose yours.",
            )
            trainer_eps = DIALECTS[lib].default_eps if lib else None
            default_eps = 0.2 if trainer_eps is None else trainer_eps
            eps = eps_input(
                f"eps ({DIALECTS[lib].param_name})" if lib else "eps (the value clip range)",
                f"{PREFIX}eps{i}",
                float(default_eps),
                "The clip parameter this run used (logs rarely record it). Starts at the trainer's default, or at "
                "0.2 where the trainer does not clip by default.",
            )
            mapping, matched, policy = cached_mapping(lib, tuple(run.metrics)) if lib else ({}, {}, [])
            with st.popover("Metrics: which logged name is which quantity", width="stretch"):
                chosen: dict[str, str] = {}
                options = [NONE, *run.metrics]
                for q in TIMELINE_QUANTITIES:
                    pick = st.selectbox(
                        q.replace("_", " "),
                        options,
                        index=options.index(mapping[q]) if q in mapping else 0,
                        key=f"{PREFIX}map{i}_{lib}_{q}",
                    )
                    if pick != NONE:
                        chosen[q] = pick
            missing = {m for m in chosen.values() if m not in run.series}
            keep_key = f"{PREFIX}keep_{key.split('/')[0]}"
            if missing - set(st.session_state.get(keep_key, ())):
                # a metric whose values were not kept (a log past the memory budget): read the file again with it
                st.session_state[keep_key] = tuple(sorted(missing | set(st.session_state.get(keep_key, ()))))
                st.rerun()
            for q in [q for q, m in chosen.items() if m in missing]:
                st.caption(literal(f"{chosen.pop(q)} holds no number: {q.replace('_', ' ')} is left out."))
            settings[key] = {"run": run, "rec": rec, "lib": lib, "eps": eps, "mapping": chosen, "matched": matched}
            settings[key]["policy"] = policy

# ---- the analysis of every run, the timeline of all
analyses: dict[str, RunAnalysis] = {}
display: dict[str, str] = {}  # run key -> a unique display name
for key, s in settings.items():
    shown = s["run"].name
    while shown in display.values():
        shown += "'"
    display[key] = shown
    with shows_errors(f"Could not analyse {shown}"):
        analyses[shown] = cached_analysis(
            (key, id(s["run"])), tuple(sorted(s["mapping"].items())), s["eps"], (band[0], band[1]), s["run"]
        )

st.dataframe(
    [
        {
            "run": display[k],
            "read as": s["run"].source,
            "steps": s["run"].n_steps,
            "metrics": len(s["run"].metrics),
            "trainer": version_label(s["lib"]) if s["lib"] else "not recognised",
            "quantities found": len(s["mapping"]),
            "eps": s["eps"],
        }
        for k, s in settings.items()
    ],
    hide_index=True,
)

focus_key = next(iter(settings))
if len(settings) > 1:
    focus_key = st.selectbox(
        "Phases, findings and advice for",
        list(settings),
        format_func=lambda k: display[k],
        key=PREFIX + "focus",
        help="Every run is drawn; the phases and findings below are this one's.",
    )
focus = settings[focus_key]
focus_name = display[focus_key]

if analyses:
    with shows_errors("Timeline"):
        eps_of = tuple((display[k], s["eps"]) for k, s in settings.items())
        keys = tuple((display[k], k, tuple(sorted(s["mapping"].items()))) for k, s in settings.items())
        fig = cached_figure(keys, (band[0], band[1]), focus_name, analyses)
        st.plotly_chart(fig, width="stretch", key=PREFIX + "timeline", config={"displaylogo": False})
        if any(a.scale is not None for a in analyses.values()):
            # the one figure that changes with eps: drawn only while its expander is open
            eps_box = drawn_when_open(
                "eps against the return scale, step by step", PREFIX + "eps_panel", ":material/straighten:"
            )
            if eps_box is not None:
                with eps_box:
                    eps_fig = cached_eps_figure(keys, eps_of, analyses)
                    st.plotly_chart(eps_fig, width="stretch", key=PREFIX + "eps_scale", config={"displaylogo": False})
        st.caption(
            "Shaded blue: your clip-fraction band. Dotted lines: where the phases of "
            f"{literal(focus_name)} begin; ▼: where a finding starts; shaded red: steps where a quantity is NaN or "
            "inf. The return scale is half the logged return range, (max R − min R) / 2: the trainers log the "
            "returns' mean, min and max, not their std, and the std is never more than half the range, so "
            "eps / scale is a lower bound on eps / std(R). Long runs are drawn min/max-decimated: every spike stays."
        )

analysis = analyses.get(focus_name)
run = focus["run"]
for note in run.notes:
    st.caption(literal(f"{focus_name}: {note}"))
if focus["policy"]:
    st.info(
        literal(
            f"{', '.join(focus['policy'])}: the POLICY's clip fraction in {version_label(focus['lib'])}, not the "
            "critic's: it is not read as the value clip fraction."
        )
    )
if not focus["mapping"]:
    st.warning(
        "No critic quantity is mapped for this run: pick the trainer in the sidebar, or say which logged name is "
        "which quantity (Metrics)."
    )

if analysis is not None:
    st.subheader("What the detectors found")
    if not analysis.findings:
        checked = ", ".join(q.replace("_", " ") for q in analysis.quantities.series)
        st.success(
            "No exploding or non-finite value loss, no explained variance stuck near zero, no values drifting "
            f"from the returns (checked on what this run logs: {checked or 'nothing'})."
        )
    for f in analysis.findings:
        show_finding(f)

    st.subheader("Phase by phase")
    rows = phase_rows(analysis.phases)
    st.dataframe(rows, hide_index=True)
    lib = focus["lib"]
    for k, p in enumerate(analysis.phases):
        title = f"Phase {k + 1}: steps {p.start:,} – {p.end:,}" + (
            f" ({p.clipfrac:.1%} clipped)" if p.clipfrac is not None else ""
        )
        with st.expander(title, expanded=k == len(analysis.phases) - 1):
            metric_row(
                [
                    ("clip fraction (median)", "n/a" if p.clipfrac is None else f"{p.clipfrac:.1%}", None),
                    ("eps / return scale", "n/a" if p.eps_over_scale is None else f"{p.eps_over_scale:.3g}", None),
                    (
                        "explained variance",
                        "n/a" if p.explained_variance is None else f"{p.explained_variance:.3g}",
                        None,
                    ),
                    ("value loss: last / first", "n/a" if p.loss_trend is None else f"{p.loss_trend:.3g}×", None),
                ]
            )
            if lib and p.eps is not None:
                with shows_errors(f"Advice for phase {k + 1}"):
                    logs_clipfrac = "clipfrac" in focus["mapping"] and bool(DIALECTS[lib].metrics_for("clipfrac"))
                    show_finding(cached_advice(p, lib, band[1], logs_clipfrac))
            holding = [f.title for f in analysis.findings if f.kind in p.findings]
            if holding:
                st.markdown("**Holds in this phase:** " + "; ".join(literal(t) for t in holding) + ".")
            links = []
            if lib:
                links.append(
                    f"[Sanity check with this phase's numbers →]({page_url('Sanity check', sanity_query(p, lib, band))})"
                )
                links.append(f"[Batch with this phase's return scale →]({page_url('Batch', batch_query(p))})")
            if links:
                st.markdown(" · ".join(links))
                st.caption(
                    "The links fill in this phase's medians; where Sanity check and Batch ask for a std (of the "
                    "returns, the values, the final reward) they get half the logged range, an upper bound on it."
                )

    if lib:
        entry = DIALECTS[lib]
        st.subheader(f"What these numbers mean in {entry.library}")
        lines = []
        for q, records in focus["matched"].items():
            name = focus["mapping"].get(q, records[0].key)
            for record in records:
                releases = f"releases {record.releases}: " if record.releases else ""
                words = record.note or q.replace("_", " ")
                lines.append(f"- **`{literal(name)}`** ({releases}{words}; numbers from {record.ranks}).")
        factor = "with the 0.5 factor" if entry.half else "without a 0.5 factor"
        lines.append(f"- The loss itself: {entry.formula_text} ({factor}); aggregation: {entry.aggregation}.")
        if entry.notes:
            lines.append(f"- {entry.notes}")
        st.markdown("\n".join(lines))
