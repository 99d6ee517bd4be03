"""Does clipping help? Real PPO runs that sweep the critic's clip eps over seeds, beside the published findings.

Thin page: the recorded sweeps (docs/sweeps/), a results file made by ``python -m valueloss.tools.ablate``,
or a small sweep run here (bounded, one at a time per server, cancellable); every number from
``valueloss.tools.ablate_stats.summarize``, every figure from ``valueloss.viz.ablate``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import streamlit as st

from pages.common import literal, number_table, page_setup, share_link, shows_errors
from valueloss.teach.ablation import CLEANRL_PPO, PUBLISHED, eps_in_sigma, trainer_check
from valueloss.tools import ablate
from valueloss.tools.ablate_stats import final_return, summarize, summary_records
from valueloss.viz.ablate import critic_curves, final_and_auc, learning_curves

# The recorded sweeps (VALUELOSS_SWEEPS_DIR moves them: the tests point it at a tiny one, or an empty folder).
SWEEPS_DIR = Path(os.environ.get("VALUELOSS_SWEEPS_DIR") or Path(__file__).resolve().parents[1] / "docs" / "sweeps")
YOURS = "your sweep (this session)"
UPLOADED = "the uploaded results file"


@st.cache_data(max_entries=16, show_spinner=False)
def recorded(path: str, mtime: float):
    curves, settings = ablate.load_sweep(path)
    return curves, settings


@st.cache_data(max_entries=16, show_spinner=False)
def summary_of(key: str, _curves):
    return summarize(_curves)


@st.cache_data(max_entries=4, show_spinner=False)
def uploaded(name: str, file_id: str, _data: bytes):
    return ablate.load_results(_data, name)


def _executor(session: dict) -> str:
    workers = session.get("workers")
    return f"{session['executor']}, " + ("a cluster" if workers is None else f"{workers} worker{'s' * (workers != 1)}")


def sweep_caption(settings: dict, curves) -> str:
    sweep = settings["sweep"]
    sessions = settings.get("sessions", [])
    versions = settings.get("versions", {})
    wall = settings.get("wall_s")
    wall_time = "not recorded" if wall is None else f"{wall / 60:.1f} min"  # settings from before wall_s was kept
    executors = ", ".join(sorted({_executor(s) for s in sessions}))
    return (
        f"Recorded with `python -m valueloss.tools.ablate`: {sweep['env_id']}, the {sweep['dialect']} value loss, "
        f"eps {', '.join(sweep['eps'])}, seeds {', '.join(map(str, sweep['seeds']))}, {sweep['total_steps']:,} steps "
        f"per run at CleanRL's settings; wall time {wall_time} on {versions.get('cpus')} CPU cores "
        f"({executors}; {settings.get('steps_per_s_per_run', 0):,.0f} steps/s per run), torch {versions.get('torch')}, "
        f"gymnasium {versions.get('gymnasium')}"
        + (f", mujoco {versions['mujoco']}" if versions.get("mujoco") else "")
        + "."
    )


def show(curves, key: str) -> None:
    """The answer first, then the curves, the per-eps numbers and the critic's own logs."""
    summary = summary_of(key, curves)
    st.info(summary.sentence)
    st.plotly_chart(learning_curves(summary), width="stretch", key=f"{key}_curves")
    st.caption(
        "Each line: the mean over seeds of each run's return curve (the episodes that ended in the trailing 5 % "
        "of its steps); the shaded band: its 95 % bootstrap interval over seeds."
    )
    st.subheader("Final return and area under the curve")
    st.plotly_chart(final_and_auc(summary), width="stretch", key=f"{key}_final")
    st.caption(
        "Final return: the episodes that ended in the last 10 % of each run's steps. AUC: the area under the "
        "return curve divided by the steps, i.e. the mean return during training. Dots: mean over seeds; bars: "
        "95 % bootstrap interval."
    )
    number_table(
        summary_records(summary),
        {
            "eps in σ_R": "%.3g",
            "final return": "%.1f",
            "final 95% low": "%.1f",
            "final 95% high": "%.1f",
            "AUC": "%.1f",
            "AUC 95% low": "%.1f",
            "AUC 95% high": "%.1f",
            "final − off": "%.1f",
            "mean vf_clipfrac": "%.3f",
            "mean |R − v_old| / eps": "%.3g",
        },
    )
    sigma = "; ".join(f"eps {e.label} = {eps_in_sigma(e.eps_over_sigma)}" for e in summary.per_eps if e.label != "off")
    st.caption(
        "eps is the dialect's clip parameter in the units the clip acts on (returns, or normalised returns with "
        f"value normalisation); against the spread of the returns R the critic was fitting (median σ_R over "
        f"updates): {sigma}. Intervals: 95 % percentile bootstrap over seeds; a difference from off is "
        "detectable when its interval excludes 0."
    )
    st.subheader("What the critic did")
    st.plotly_chart(critic_curves(summary), width="stretch", key=f"{key}_critic")
    st.caption(
        f"vf_clipfrac ({summary.dialect}'s definition): the share of transitions whose clipped term wins (its "
        "gradient is then zero), as the dialect "
        "logs it, averaged over each update's minibatches. Explained variance: 1 − Var(R − v_old) / Var(R) of the "
        "rollout's old values, before the update, as CleanRL logs it."
    )


def run_sweep_here(spec: ablate.SweepSpec) -> None:
    """The sweep under the server-wide lock, one progress bar per run and a Cancel button.

    Cancel (or any widget) makes Streamlit stop this script run at its next progress update, that is after
    the update under way; the lock is released on the way out and nothing from the sweep is kept."""
    if not ablate.SWEEP_LOCK.acquire(blocking=False):
        st.warning(
            "Another sweep is running on this server right now (one at a time, so runs do not slow each other "
            "down): try again in a minute, or run it yourself with the command below."
        )
        return
    st.session_state["ab_running"] = True
    try:
        cancel = st.empty()
        cancel.button("Cancel sweep", key="ab_cancel", icon=":material/cancel:", help="Stop now; nothing is kept.")
        configs = spec.configs()
        bars = [st.progress(0.0, text=f"eps {ablate.eps_label(c.eps)}, seed {c.seed}: waiting") for c in configs]

        def progress(i: int, done: int, total: int) -> None:
            c = configs[i]
            bars[i].progress(
                min(done / total, 1.0), text=f"eps {ablate.eps_label(c.eps)}, seed {c.seed}: {done:,} / {total:,} steps"
            )

        curves = ablate.run_here(spec, on_progress=progress)
        st.session_state["ab_result"] = curves
        st.session_state.pop("ab_running", None)
        for bar in bars:
            bar.empty()
        cancel.empty()
    except Exception:
        st.session_state.pop("ab_running", None)
        raise
    finally:
        ablate.SWEEP_LOCK.release()


page_setup(
    "Does clipping help?",
    "Does clipping the critic's value loss help PPO train, and at which eps? Real training runs, 95 % intervals "
    "over seeds, next to what the papers found.",
)
share_link()

ablations = ablate.recorded_sweeps(SWEEPS_DIR)
checks = ablate.recorded_sweeps(SWEEPS_DIR, checks=True)

with st.sidebar:
    st.subheader("Sweep")
    upload = st.file_uploader(
        "results file (curves.csv or curves.parquet)",
        type=["csv", "parquet"],
        key="ab_upload",
        help="Written by python -m valueloss.tools.ablate; checked column by column, never unpickled.",
    )
    choices = [p.name for p in ablations]
    if st.session_state.get("ab_result") is not None:
        choices.append(YOURS)
    if upload is not None:
        choices.append(UPLOADED)
        if st.session_state.get("ab_upload_seen") != upload.file_id:  # a new file: show it
            st.session_state["ab_upload_seen"] = upload.file_id
            st.session_state["ab_show"] = UPLOADED
    if st.session_state.pop("ab_show_yours", False):
        st.session_state["ab_show"] = YOURS
    if st.session_state.get("ab_show") not in choices:
        st.session_state.pop("ab_show", None)
    source = st.selectbox("show", choices, key="ab_show") if choices else None

if st.session_state.pop("ab_running", False):
    st.info("The sweep was cancelled before it finished; nothing from it was kept.")

if source is None:
    st.warning(
        f"No recorded sweep in {SWEEPS_DIR.name}/ yet (docs/sweeps/record.sh records them) and none run in this "
        "session: run a small one below, or one of any size with the CLI and load its results file."
    )
elif source == UPLOADED and upload is not None:  # UPLOADED is a choice only while a file is uploaded
    with shows_errors(f"Results file {upload.name}"):
        curves = uploaded(upload.name, upload.file_id, upload.getvalue())
        st.caption(
            f"From your file {literal(upload.name)}: {len(curves):,} updates of {curves['seed'].nunique()} seeds."
        )
        show(curves, f"upload-{upload.file_id}")
elif source == YOURS:
    curves = st.session_state["ab_result"]
    st.caption("Your sweep, run on this server in this session (not kept after it).")
    show(curves, f"yours-{id(curves)}")
else:
    path = SWEEPS_DIR / source
    with shows_errors(f"Recorded sweep {source}"):
        mtime = (path / "curves.parquet").stat().st_mtime
        curves, settings = recorded(str(path), mtime)
        st.caption(sweep_caption(settings, curves))
        show(curves, f"rec-{path}-{mtime}")  # the summary's cache key: a sweep recorded again is summarised again

st.header("What the papers found")
for finding in PUBLISHED:
    st.markdown(f"> {finding.quote}\n\n— **{finding.who}**. {finding.source}. [{finding.url}]({finding.url})")

st.header("Is the trainer right?")
st.caption(
    "Before comparing clipping settings, the same trainer at CleanRL's settings and step counts, without value "
    "clipping (and, where recorded, at CleanRL's own default: clipping on at eps 0.2), against the returns CleanRL "
    "publishes for its ppo.py "
    f"([source]({next(iter(CLEANRL_PPO.values())).url}))."
)
if not checks:
    st.caption("No recorded trainer check yet: docs/sweeps/record.sh runs it.")
for path in checks:
    with shows_errors(f"Trainer check {path.name}"):
        check_curves, check_settings = recorded(str(path), (path / "curves.parquet").stat().st_mtime)
        env_id = check_settings["sweep"]["env_id"]
        for label, runs in check_curves.groupby("eps_label", sort=False):
            finals = [final_return(run) for _, run in runs.groupby("seed")]
            ok, sentence = trainer_check(env_id, finals, int(check_settings["sweep"]["total_steps"]), str(label))
            (st.success if ok else st.warning)(sentence)

st.header("Run a small sweep here")
with st.form("ab_form"):
    cols = st.columns(4)
    env_id = cols[0].selectbox("environment", ablate.APP_ENVS, key="ab_env", bind="query-params")
    eps_text = cols[1].text_input(
        "eps values",
        "off,0.2,10",
        key="ab_eps",
        bind="query-params",
        help=f"off or numbers >= 0; at most {ablate.APP_MAX_EPS}",
    )
    seeds = cols[2].number_input("seeds", 1, ablate.APP_MAX_SEEDS, 2, key="ab_seeds", bind="query-params")
    steps = cols[3].number_input(
        "steps per run", 2_048, ablate.APP_MAX_STEPS, 20_480, 2_048, key="ab_steps", bind="query-params"
    )
    go = st.form_submit_button("Run sweep", type="primary", icon=":material/play_arrow:", key="ab_run")
spec = None
with shows_errors("Sweep settings"):
    spec = ablate.check_app_bounds(
        ablate.SweepSpec(
            env_id=env_id,
            dialect="verl",
            eps=ablate.parse_eps(eps_text),
            seeds=tuple(range(1, int(seeds) + 1)),
            total_steps=int(steps),
        )
    )
    runs = len(spec.configs())
    st.caption(
        f"{runs} runs of {spec.total_steps:,} steps each, one after another, at CleanRL's settings with verl's value "
        f"loss; about {math.ceil(runs * spec.total_steps / 2500 / 60)} min on a free core. The same sweep from a "
        f"shell: `python -m valueloss.tools.ablate --env {spec.env_id} --eps {','.join(ablate.eps_label(e) for e in spec.eps)} "
        f"--seeds {len(spec.seeds)} --steps {spec.total_steps}`"
    )
if go and spec is not None:
    run_sweep_here(spec)
    if st.session_state.get("ab_result") is not None:
        st.session_state["ab_show_yours"] = True  # show it at once (the sidebar was drawn before it existed)
        st.rerun()
