"""valueloss: an interactive guide to the PPO clipped value-function loss.

Run with ``make app`` (or ``streamlit run app.py``, or ``valueloss-app`` once installed). Each page lives
in ``pages/`` and is listed in ``pages/registry.py`` with a stable ``url_path`` and its own URL keys, so
links to a page (and, through bound widgets, to a scenario) keep working.
"""

import torch

from pages.common import release_memory_when_idle, set_app_page_config
from pages.registry import run_navigation

# The app's tensors are small (a 200x200 grid, a 64x256 batch): thread start-up on a busy machine costs
# more than it saves. The Timing page sets the thread count it measures explicitly.
torch.set_num_threads(1)

# The favicon is drawn locally: a ":material/...:" page icon makes the browser fetch it from fonts.gstatic.com.
set_app_page_config()

release_memory_when_idle()  # before the page: a page may end its run early (st.stop, st.rerun)
run_navigation()
