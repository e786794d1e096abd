"""Metrics, figures and reports of emotion-recognition runs."""

from dgnode.reporting.metrics import (
    IEMOCAP_DISPLAY_NAMES,
    PAPER_DGODE_IEMOCAP,
    PAPER_MODEL,
    ClassificationMetrics,
    classification_metrics,
    display_name,
    paper_reference,
)

__all__ = [
    "IEMOCAP_DISPLAY_NAMES",
    "PAPER_DGODE_IEMOCAP",
    "PAPER_MODEL",
    "ClassificationMetrics",
    "classification_metrics",
    "display_name",
    "paper_reference",
]
