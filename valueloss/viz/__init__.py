"""Pictures: Plotly figure builders (arrays in, ``go.Figure`` out) in the one palette of ``valueloss.notation``,
the shared figure base (``base``) and the live explorer's browser code (``live``).

One module per area of the app so each page imports only what it draws.
"""
