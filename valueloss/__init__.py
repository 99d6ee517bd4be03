"""valueloss: the PPO clipped value-function loss, exactly as the RL and RLHF trainers compute it.

Drop-in functions with the libraries' signatures (verl's ``compute_value_loss`` and ``agg_loss``,
OpenRLHF's ``ValueLoss``), every library's dialect, and the per-token anatomy the app draws.
No Streamlit here: the app is a thin layer over this package.
"""

from ._validate import AGG_MODES, CONVENTIONS
from .anatomy import (
    REGION_AWAY,
    REGION_INSIDE,
    REGION_LABELS,
    REGION_NAN,
    REGION_OVERSHOT,
    REGION_TIE,
    REGION_ZERO_GRAD,
    ValueLossTerms,
    value_loss_grad,
    value_loss_terms,
)
from .dialects import (
    DIALECTS,
    Dialect,
    DialectResult,
    LoggedMetric,
    dashboard_value,
    dialect_loss,
    get_dialect,
    logged_metric,
)
from .fused import FusedValueLoss, fused_value_loss
from .grids import AXES, Grid, axis_values, evaluate_grid
from .losses import (
    ValueLoss,
    agg_loss,
    clip_bounds,
    clip_clamp,
    clip_delta,
    clip_prediction,
    compute_value_loss,
    masked_mean,
    masked_sum,
)

__version__ = "0.1.0"

__all__ = [
    "AGG_MODES",
    "AXES",
    "CONVENTIONS",
    "DIALECTS",
    "REGION_AWAY",
    "REGION_INSIDE",
    "REGION_LABELS",
    "REGION_NAN",
    "REGION_OVERSHOT",
    "REGION_TIE",
    "REGION_ZERO_GRAD",
    "Dialect",
    "DialectResult",
    "FusedValueLoss",
    "Grid",
    "LoggedMetric",
    "ValueLoss",
    "ValueLossTerms",
    "agg_loss",
    "axis_values",
    "clip_bounds",
    "clip_clamp",
    "clip_delta",
    "clip_prediction",
    "compute_value_loss",
    "dashboard_value",
    "dialect_loss",
    "evaluate_grid",
    "fused_value_loss",
    "get_dialect",
    "logged_metric",
    "masked_mean",
    "masked_sum",
    "value_loss_grad",
    "value_loss_terms",
]
