"""A real training run's logs: readers for the trackers' formats, recognition of the trainer from its metric
names (by the dialect registry), and the critic's health over training, phase by phase.

Tools layer: no Streamlit. ``read_log`` reads; ``recognise`` names the trainer; ``analyse_run`` computes the
timeline, the phases, their evidence and what the detectors found.
"""

from .model import LIMITS, Limits, RunLog, RunLogError, Series
from .readers import FORMATS_MARKDOWN, MAX_UPLOAD_BYTES, read_log

__all__ = [
    "LIMITS",
    "Limits",
    "RunLog",
    "RunLogError",
    "Series",
    "FORMATS_MARKDOWN",
    "MAX_UPLOAD_BYTES",
    "read_log",
]
