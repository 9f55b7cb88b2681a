"""Public evaluation statistics: DeLong test/interval, clustered bootstrap, Holm, No Finding score."""

from __future__ import annotations

from lungprior.evaluate.bootstrap import (
    BootstrapCI,
    bootstrap_macro_auroc_ci,
    bootstrap_metric_ci,
    cluster_weights,
    paired_bootstrap_diff,
    weighted_auprc,
    weighted_auroc,
)
from lungprior.evaluate.delong import DeLongResult, delong_auc_cov, delong_ci, delong_test, holm_adjust
from lungprior.evaluate.scores import (
    DegenerateDataWarning,
    auprc,
    auroc,
    no_finding_score,
    sens_spec,
    youden_threshold,
)

__all__ = [
    "BootstrapCI",
    "DeLongResult",
    "DegenerateDataWarning",
    "auprc",
    "auroc",
    "bootstrap_macro_auroc_ci",
    "bootstrap_metric_ci",
    "cluster_weights",
    "delong_auc_cov",
    "delong_ci",
    "delong_test",
    "holm_adjust",
    "no_finding_score",
    "paired_bootstrap_diff",
    "sens_spec",
    "weighted_auprc",
    "weighted_auroc",
    "youden_threshold",
]
