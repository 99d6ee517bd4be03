"""Words and decisions over the exact core: the advice on eps and a clip fraction (one decision table,
``advice``), the words each page shows beside its numbers, the guided tour, the explanations, the presets
and the small critic simulator. Plain Python and torch; no Streamlit, no plotting, nothing from viz or tools."""
