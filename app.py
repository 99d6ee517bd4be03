"""valueloss: an interactive guide to the PPO clipped value-function loss.

Run with ``make app`` (or ``streamlit run app.py``). Each page lives in ``pages/`` and has a stable
``url_path``, so links to a page (and, through bound widgets, to a scenario) keep working.
"""

import streamlit as st
import torch

from pages.common import app_icon

# The app's tensors are small (a 200x200 grid, a 64x256 batch): thread start-up on a busy machine costs
# more than it saves. The Timing page sets the thread count it measures explicitly.
torch.set_num_threads(1)

# The favicon is drawn locally: a ":material/...:" page icon makes the browser fetch it from fonts.gstatic.com.
st.set_page_config(page_title="valueloss: the clipped value loss, explained", page_icon=app_icon(), layout="wide")

PAGES = {
    "Learn": [
        st.Page("pages/tour.py", title="Guided tour", icon=":material/explore:", url_path="tour"),
        st.Page("pages/dynamics.py", title="Critic dynamics", icon=":material/animation:", url_path="dynamics"),
    ],
    "Explore": [
        st.Page("pages/explore.py", title="One token", icon=":material/my_location:", url_path="explore"),
        # The default page is served at "/" only (its own url_path is reserved, not served), so One token is
        # listed once at /explore, where deep links like /explore?v=0.5 land, and served again, hidden, at "/".
        st.Page(
            "pages/explore.py",
            title="One token",
            icon=":material/my_location:",
            url_path="one-token",
            default=True,
            visibility="hidden",
        ),
        st.Page("pages/surfaces.py", title="Loss surfaces", icon=":material/map:", url_path="surfaces"),
        st.Page("pages/gradients.py", title="Gradients", icon=":material/functions:", url_path="gradients"),
    ],
    "Tools": [
        st.Page("pages/batch.py", title="Batch", icon=":material/inventory_2:", url_path="batch"),
        st.Page("pages/sanity.py", title="Sanity check", icon=":material/health_and_safety:", url_path="sanity-check"),
        st.Page("pages/timing.py", title="Timing", icon=":material/timer:", url_path="timing"),
        st.Page("pages/scale.py", title="Scale", icon=":material/lan:", url_path="scale"),
    ],
}

st.navigation(PAGES).run()
