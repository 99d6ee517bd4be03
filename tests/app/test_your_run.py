"""The Your run page under AppTest: the example run, uploads (a verl JSONL, several runs overlaid, an
unrecognised CSV mapped by hand, a bad file), the links into Sanity check and Batch, and the release picker.

AppTest cannot drive ``st.file_uploader``: it is replaced by a stub that returns the files (a list, as the page
asks for several); everything after it is the page's own code.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pytest
import streamlit
from streamlit.testing.v1 import AppTest

from tests.app.helpers import FakeUpload, plain, plotly_specs, run_page
from valueloss.dialects import DIALECTS, version_label
from valueloss.tools.runlogs import read_log
from valueloss.tools.runlogs.analysis import analyse_run
from valueloss.tools.runlogs.evidence import phase_advice
from valueloss.tools.runlogs.example import example_run_jsonl
from valueloss.tools.runlogs.recognise import recognise


@pytest.fixture
def uploads(monkeypatch):
    """Make st.file_uploader return these files: ``uploads({name: bytes, ...})``."""
    box = {"files": []}
    monkeypatch.setattr(streamlit, "file_uploader", lambda *a, **k: list(box["files"]))

    def set_files(files: dict[str, bytes]):
        box["files"] = [FakeUpload(n, d, f"id-{hashlib.sha256(d).hexdigest()[:12]}") for n, d in files.items()]

    return set_files


def run(query: dict | None = None) -> AppTest:
    at = run_page("your_run", query, timeout=120)
    assert at.title[0].value == "Your run"
    return at


def numbers(array) -> list[float]:
    """A trace's x or y as the browser receives it: a list, or plotly's typed array (base64 ``bdata``)."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)


def links(at: AppTest, page: str) -> list[dict]:
    """The query of every link to ``page`` on the screen."""
    found = []
    for md in at.markdown:
        for url in re.findall(r"\]\((\./[^)]+)\)", md.value):
            parts = urlsplit(url)
            if parts.path == f"./{page}":
                found.append(dict(parse_qsl(parts.query)))
    return found


def test_without_a_log_the_page_asks_for_one_and_shows_what_it_will_draw():
    at = run({"yr_band": ["0.02", "0.2"]})
    assert any("Drop a run's logs" in i.value for i in at.info)
    (preview,) = plotly_specs(at)  # the example run's first two panels, the band the reader set shaded
    titles = [a["text"] for a in preview["layout"]["annotations"] if a["text"].startswith("<b>")]
    assert titles == ["<b>Value clip fraction and your band</b>", "<b>Value loss (log)</b>"]
    (band,) = [s for s in preview["layout"]["shapes"] if s["type"] == "rect" and s["yref"] == "y"]  # clip fraction
    assert (band["y0"], band["y1"]) == (0.02, 0.2)
    assert {t["name"] for t in preview["data"]} == {"example-simulated-verl-run"}


def test_the_example_run_shows_the_timeline_findings_and_phases():
    at = run({"yr_example": "true"})
    (run_log,) = read_log("x.jsonl", example_run_jsonl())
    expected = analyse_run(run_log, recognise(run_log.metrics).mapping, 0.5, (0.01, 0.1))
    assert len(plotly_specs(at)) == 1  # "eps against the return scale" is closed until the reader opens it
    at.session_state["yr_eps_panel"] = True
    at.run()
    timeline, eps_panel = plotly_specs(at)
    assert {t["name"] for t in timeline["data"]} == {"example-simulated-verl-run"}
    assert eps_panel["layout"]["annotations"][0]["text"] == "<b>eps / return scale</b>"
    titles = [plain(w.value).split("\n")[0].strip("*") for w in at.warning]
    n = len(expected.findings)
    assert titles[:n] == [f.title for f in expected.findings]
    assert "verl#498" in at.warning[0].value
    # then each phase's advice, from the Sanity check's decision table on that phase's numbers
    advice = [phase_advice(p, "verl", 0.1, logs_clipfrac=True) for p in expected.phases]
    boxes = [plain(b.value).split("\n")[0].strip("*") for b in [*at.warning[n:], *at.success, *at.info]]
    assert {a.title for a in advice} <= set(boxes)
    assert any(a.code == "offset" for a in advice) and any(a.code == "not-finite" for a in advice)
    phases = at.dataframe[1].value
    assert phases["clip fraction"].tolist() == [float(f"{p.clipfrac:.4g}") for p in expected.phases]
    sanity = links(at, "sanity-check")
    assert len(sanity) == len(expected.phases)
    assert sanity[-1]["s_logged"] == f"{expected.phases[-1].clipfrac:.4g}" and sanity[-1]["s_lib"] == "verl"
    assert len(links(at, "batch")) == len(expected.phases)
    assert any(s.value == f"What these numbers mean in {DIALECTS['verl'].library}" for s in at.subheader)


def verl_run(seed: int, steps: int = 120) -> bytes:
    return example_run_jsonl(steps=steps, seed=seed)


def test_two_uploaded_runs_are_overlaid_with_their_own_eps(uploads):
    uploads({"eps02.jsonl": verl_run(1), "eps05.jsonl": verl_run(2)})
    at = run()
    at.number_input(key="yr_eps1").set_value(0.2).run()
    assert not at.exception
    (timeline,) = plotly_specs(at)  # the eps panel is closed: typing eps redraws nothing
    assert {t["name"] for t in timeline["data"]} == {"eps02", "eps05"}
    assert not [t for t in timeline["data"] if t["hovertemplate"].startswith("eps / scale")]  # its own figure
    at.session_state["yr_eps_panel"] = True  # the reader opens "eps against the return scale"
    at.run()
    assert plotly_specs(at)[0] == timeline
    eps_panel = plotly_specs(at)[1]
    eps_scale = {t["name"]: numbers(t["y"])[0] for t in eps_panel["data"]}
    (a,) = read_log("a.jsonl", verl_run(1))
    (b,) = read_log("b.jsonl", verl_run(2))
    half_range = lambda r: (r.series["critic/returns/max"].values[0] - r.series["critic/returns/min"].values[0]) / 2  # noqa: E731
    assert eps_scale == pytest.approx({"eps02": 0.5 / half_range(a), "eps05": 0.2 / half_range(b)})
    at.selectbox(key="yr_focus").set_value(at.selectbox(key="yr_focus").options[1]).run()
    assert not at.exception


def test_an_unrecognised_csv_is_mapped_by_hand(uploads):
    rows = ["iteration,my_value_loss,my_clip"] + [f"{i},{1 + i / 10},{0.3 if i > 50 else 0.05}" for i in range(100)]
    uploads({"custom.csv": "\n".join(rows).encode()})
    at = run()
    assert any("No critic quantity is mapped" in w.value for w in at.warning)
    assert at.selectbox(key="yr_lib0").value is None
    at.selectbox(key="yr_lib0").set_value("rsl_rl").run()
    at.selectbox(key="yr_map0_rsl_rl_clipfrac").set_value("my_clip").run()
    at.selectbox(key="yr_map0_rsl_rl_value_loss").set_value("my_value_loss").run()
    assert not at.exception and not any("No critic quantity" in w.value for w in at.warning)
    phases = at.dataframe[1].value
    assert phases["clip fraction vs band"].tolist() == ["in", "above"]


def test_the_release_picker_changes_what_the_numbers_mean(uploads):
    uploads({"run.jsonl": verl_run(3)})
    at = run()
    at.selectbox(key="yr_lib0").set_value("verl-v0.4.0").run()
    assert not at.exception
    assert any(s.value == f"What these numbers mean in {DIALECTS['verl-v0.4.0'].library}" for s in at.subheader)
    text = " ".join(m.value for m in at.markdown)
    assert "without a 0.5 factor" in text
    assert version_label("verl-v0.4.0") in at.dataframe[0].value["trainer"].tolist()


def test_a_bad_file_shows_an_error_and_the_page_stays_alive(uploads):
    uploads({"weights.pt": b"\x80\x04\x95" + b"\x00" * 20, "good.jsonl": verl_run(4)})
    at = run()
    assert len(at.error) == 1 and "never unpickles" in plain(at.error[0].value)
    assert plotly_specs(at)  # the good run is still drawn


def test_a_phase_link_opens_sanity_check_with_its_numbers():
    at = run({"yr_example": "true"})
    query = links(at, "sanity-check")[-1]
    sanity = run_page("sanity", query)
    assert sanity.selectbox(key="s_lib").value == "verl"
    assert sanity.number_input(key="s_logged").value == pytest.approx(float(query["s_logged"]))
    assert sanity.number_input(key="s_r_std").value == pytest.approx(float(query["s_r_std"]))
    assert sanity.number_input(key="s_v_mean").value == pytest.approx(float(query["s_v_mean"]))
    assert sanity.radio(key="s_source").value == "summary statistics"
    batch = run_page("batch", links(at, "batch")[-1])
    assert batch.number_input(key="b_value_bias").value == pytest.approx(float(links(at, "batch")[-1]["b_value_bias"]))


def test_a_verl_console_paste_is_read(uploads):
    lines = [json.loads(x) for x in verl_run(5).decode().splitlines()]
    text = "\n".join(
        f"(TaskRunner pid=1) step:{x['step']} - "
        + " - ".join(f"{k}:{v}" for k, v in x["data"].items() if v is not None)
        for x in lines
    )
    uploads({"train.log": text.encode()})
    at = run()
    assert "verl console lines" in at.dataframe[0].value["read as"].tolist()[0]
    assert at.selectbox(key="yr_lib0").value == "verl"


def test_mapping_a_metric_that_holds_only_text_says_so(uploads):
    rows = ["step,Loss/value,note"] + [f"{i},{1 + i / 10},text{i}" for i in range(30)]
    uploads({"run.csv": "\n".join(rows).encode()})
    at = run()
    assert at.selectbox(key="yr_lib0").value == "rsl_rl"
    at.selectbox(key="yr_map0_rsl_rl_clipfrac").set_value("note").run()
    assert not at.exception
    assert any("note holds no number" in plain(c.value) for c in at.caption)


def test_typing_eps_redraws_only_the_eps_panel(uploads):
    uploads({"run.jsonl": verl_run(6)})
    at = run()
    (timeline,) = plotly_specs(at)
    at.number_input(key="yr_eps0").set_value(0.3).run()
    assert plotly_specs(at) == [timeline]  # the eps panel closed: typing eps redraws no figure at all
    at.session_state["yr_eps_panel"] = True
    at.number_input(key="yr_eps0").set_value(0.5).run()
    timeline, eps_panel = plotly_specs(at)
    at.number_input(key="yr_eps0").set_value(0.25).run()
    timeline_after, eps_after = plotly_specs(at)
    assert timeline_after == timeline  # the browser keeps its drawing of the big figure
    assert numbers(eps_after["data"][0]["y"])[0] == pytest.approx(numbers(eps_panel["data"][0]["y"])[0] * 0.25 / 0.5)
