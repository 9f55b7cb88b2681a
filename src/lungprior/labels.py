"""The label set of the study: five findings and the derived No Finding."""

from __future__ import annotations

FINDINGS: tuple[str, ...] = ("Mass", "Nodule", "Pneumonia", "Edema", "Fibrosis")
NO_FINDING = "No Finding"
LABELS: tuple[str, ...] = (*FINDINGS, NO_FINDING)
