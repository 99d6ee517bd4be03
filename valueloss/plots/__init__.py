"""Plotly figure builders: pure functions (arrays in, ``go.Figure`` out), colours from ``theme``.

One module per area of the app (``token``, ``batch``, ``timing``, ``dynamics``) so each page imports
only what it draws.
"""
