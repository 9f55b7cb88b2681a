"""Evaluation: AUROC/AUPRC, DeLong tests and intervals, patient-clustered bootstrap, No Finding score."""
