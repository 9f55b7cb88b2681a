"""Public evaluation statistics: DeLong's, Obuchowski's and the patient-jackknife paired tests, clustered bootstrap,
Holm, testability counts, No Finding score, Platt calibration."""

from __future__ import annotations

from lungprior.evaluate.bootstrap import (
    BootstrapCI,
    bootstrap_macro_auroc_ci,
    bootstrap_metric_ci,
    bootstrap_seed_mean_auroc_ci,
    cluster_weights,
    paired_bootstrap_diff,
    weighted_auprc,
    weighted_auroc,
)
from lungprior.evaluate.calibration import apply_calibration, brier, ece, fit_calibration
from lungprior.evaluate.clustered import (
    PairedTest,
    delong_paired,
    obuchowski_auc_cov,
    obuchowski_test,
    pooled_macro_test,
    pooled_obuchowski_test,
)
from lungprior.evaluate.delong import (
    DeLongResult,
    delong_auc_cov,
    delong_ci,
    delong_test,
    holm_adjust,
    holm_adjust_bounds,
)
from lungprior.evaluate.jackknife import jackknife_macro_test, jackknife_test, leave_one_out_aucs
from lungprior.evaluate.scores import (
    DegenerateDataWarning,
    auprc,
    auroc,
    no_finding_score,
    sens_spec,
    youden_threshold,
)
from lungprior.evaluate.testability import testability

__all__ = [
    "BootstrapCI",
    "DeLongResult",
    "DegenerateDataWarning",
    "PairedTest",
    "apply_calibration",
    "auprc",
    "auroc",
    "bootstrap_macro_auroc_ci",
    "bootstrap_metric_ci",
    "bootstrap_seed_mean_auroc_ci",
    "brier",
    "cluster_weights",
    "delong_auc_cov",
    "delong_ci",
    "delong_paired",
    "delong_test",
    "ece",
    "fit_calibration",
    "holm_adjust",
    "holm_adjust_bounds",
    "jackknife_macro_test",
    "jackknife_test",
    "leave_one_out_aucs",
    "no_finding_score",
    "obuchowski_auc_cov",
    "obuchowski_test",
    "paired_bootstrap_diff",
    "pooled_macro_test",
    "pooled_obuchowski_test",
    "sens_spec",
    "testability",
    "weighted_auprc",
    "weighted_auroc",
    "youden_threshold",
]
