"""app.py for one chosen page under AppTest: ``AppTest.switch_page`` runs a page file alone, without app.py's
navigation, so the tests that follow a link run the page through the same ``run_and_report`` app.py uses.

The page is the one whose url path the test puts in session state under ``helpers.HARNESS_PAGE`` ("" is the
default page); ``helpers.run_link`` does that.
"""

import runpy

import streamlit as st

from pages.common import run_and_report
from pages.registry import APP_FOLDER, page_for_path
from tests.app.helpers import HARNESS_PAGE

entry = page_for_path(st.session_state.get(HARNESS_PAGE, ""))
run_and_report(entry, lambda: runpy.run_path(str(APP_FOLDER / entry.script), run_name="__main__"))
