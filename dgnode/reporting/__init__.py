"""Metrics, figures and reports of emotion-recognition runs."""

from dgnode.reporting.metrics import (
    IEMOCAP_DISPLAY_NAMES,
    MELD_CLASSES,
    PAPER_DGODE_IEMOCAP,
    PAPER_DGODE_MELD,
    PAPER_MODEL,
    ClassificationMetrics,
    classification_metrics,
    display_name,
    paper_reference,
)

__all__ = [
    "IEMOCAP_DISPLAY_NAMES",
    "MELD_CLASSES",
    "PAPER_DGODE_IEMOCAP",
    "PAPER_DGODE_MELD",
    "PAPER_MODEL",
    "ClassificationMetrics",
    "classification_metrics",
    "display_name",
    "paper_reference",
]
