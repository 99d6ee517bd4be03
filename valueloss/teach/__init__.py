"""Teaching content over the exact core: the guided tour, the words and captions the pages show, the
presets and the small critic simulator. Plain Python and torch; no Streamlit, no plotting."""
