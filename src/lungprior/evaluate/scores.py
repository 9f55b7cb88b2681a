"""Input checks, AUROC/AUPRC, the derived No Finding score and threshold metrics."""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from lungprior.errors import LungpriorError
from lungprior.labels import FINDINGS

NoFindingMethod = Literal["max", "prod"]


class DegenerateDataWarning(RuntimeWarning):
    """A metric is undefined on the given data (e.g. a label with no positives); NaN is returned."""


def check_labels(y_true: ArrayLike, name: str = "y_true", ndim: int = 1) -> np.ndarray:
    """Return `y_true` as an int8 array of 0/1 with `ndim` dimensions, or raise `LungpriorError`."""
    y = np.asarray(y_true)
    if y.ndim != ndim:
        raise LungpriorError(f"{name}: expected a {ndim}-D array, got shape {y.shape}")
    if y.dtype == bool:
        return y.astype(np.int8)
    if not np.issubdtype(y.dtype, np.number):
        raise LungpriorError(f"{name}: labels must be 0/1 numbers, got dtype {y.dtype}")
    bad = ~np.isin(y, (0, 1))
    if bad.any():
        first = np.argwhere(bad)[0]
        where = tuple(int(i) for i in first) if ndim > 1 else int(first[0])
        value = y[tuple(first)].item()
        raise LungpriorError(f"{name}: labels must be 0 or 1, got {value!r} at index {where}")
    return y.astype(np.int8)


def check_scores(scores: ArrayLike, n: int, name: str = "scores", ndim: int = 1) -> np.ndarray:
    """Return `scores` as a float array of length `n` (first axis), finite, or raise `LungpriorError`."""
    try:
        s = np.asarray(scores, dtype=float)
    except (TypeError, ValueError) as exc:
        raise LungpriorError(f"{name}: scores must be numbers ({exc})") from None
    if s.ndim != ndim:
        raise LungpriorError(f"{name}: expected a {ndim}-D array, got shape {s.shape}")
    if s.shape[0] != n:
        raise LungpriorError(f"{name}: length {s.shape[0]} does not match y_true length {n}")
    bad = ~np.isfinite(s)
    if bad.any():
        first = np.argwhere(bad)[0]
        where = tuple(int(i) for i in first) if ndim > 1 else int(first[0])
        raise LungpriorError(f"{name}: {int(bad.sum())} NaN/inf value(s), first at index {where}")
    return s


def class_counts(y: np.ndarray) -> tuple[int, int]:
    """(number of positives, number of negatives) of a 0/1 vector."""
    n_pos = int(y.sum())
    return n_pos, int(y.size - n_pos)


def warn_if_degenerate(y: np.ndarray, what: str, stacklevel: int = 3) -> bool:
    """Warn and return True when `y` lacks positives or negatives (the metric `what` is then NaN)."""
    n_pos, n_neg = class_counts(y)
    if n_pos and n_neg:
        return False
    missing = "positives" if n_pos == 0 else "negatives"
    warnings.warn(
        f"{what} is undefined: no {missing} among {y.size} samples; returning NaN",
        DegenerateDataWarning,
        stacklevel=stacklevel,
    )
    return True


def auroc(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve (scikit-learn); NaN with a warning when one class is absent."""
    y = check_labels(y_true)
    s = check_scores(scores, y.size)
    if warn_if_degenerate(y, "AUROC"):
        return float("nan")
    return float(roc_auc_score(y, s))


def auprc(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Average precision (scikit-learn); NaN with a warning when one class is absent."""
    y = check_labels(y_true)
    s = check_scores(scores, y.size)
    if warn_if_degenerate(y, "AUPRC"):
        return float("nan")
    return float(average_precision_score(y, s))


def no_finding_score(probs: ArrayLike, method: NoFindingMethod = "max") -> np.ndarray:
    """Score for the derived No Finding label from the five finding probabilities, shape (n, 5).

    "max": 1 - max_k p_k (no finding unless some finding is likely);
    "prod": prod_k (1 - p_k) (probability that none is present, assuming independence).
    """
    p = np.asarray(probs, dtype=float)
    if p.ndim != 2 or p.shape[1] != len(FINDINGS):
        raise LungpriorError(
            f"probs: expected shape (n, {len(FINDINGS)}) for {', '.join(FINDINGS)}, got {p.shape}"
        )
    bad = ~np.isfinite(p) | (p < 0) | (p > 1)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        value = p[row, col].item()
        raise LungpriorError(f"probs: value {value!r} at ({row}, {col}) is not a probability in [0, 1]")
    if method == "max":
        return 1.0 - p.max(axis=1)
    if method == "prod":
        return np.prod(1.0 - p, axis=1)
    raise LungpriorError(f"method: unknown No Finding method {method!r} (choose 'max' or 'prod')")


def youden_threshold(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Threshold t maximising sensitivity + specificity - 1 (Youden's J) for the rule `score >= t`.

    Candidates are the observed scores; on ties in J the highest threshold wins. Choose it on validation
    data and apply it unchanged to the test set. NaN with a warning when one class is absent.
    """
    y = check_labels(y_true)
    s = check_scores(scores, y.size)
    if warn_if_degenerate(y, "Youden threshold"):
        return float("nan")
    fpr, tpr, thresholds = roc_curve(y, s, drop_intermediate=False)
    # thresholds[0] is +inf (nothing called positive); candidates are the observed scores, descending.
    # J * P * N = TP * N - FP * P is compared in exact integers so equal J values tie exactly.
    n_pos, n_neg = class_counts(y)
    tp = np.rint(tpr[1:] * n_pos).astype(np.int64)
    fp = np.rint(fpr[1:] * n_neg).astype(np.int64)
    return float(thresholds[1:][int(np.argmax(tp * n_neg - fp * n_pos))])


def sens_spec(y_true: ArrayLike, scores: ArrayLike, threshold: float) -> tuple[float, float]:
    """(sensitivity, specificity) of the rule `score >= threshold`; NaN (with a warning) where undefined."""
    y = check_labels(y_true)
    s = check_scores(scores, y.size)
    t = float(threshold)
    if np.isnan(t):
        raise LungpriorError("threshold: NaN is not a valid threshold")
    n_pos, n_neg = class_counts(y)
    pred = s >= t
    if n_pos == 0 or n_neg == 0:
        warn_if_degenerate(y, "sensitivity" if n_pos == 0 else "specificity")
    sens = float(pred[y == 1].mean()) if n_pos else float("nan")
    spec = float((~pred[y == 0]).mean()) if n_neg else float("nan")
    return sens, spec
