"""Scoring new films with a finished run: segmentation as in training, masking, scores, Grad-CAM, a page."""

from lungprior.predict.inputs import Film, collect_films
from lungprior.predict.pipeline import COLUMNS, ERROR_COLUMNS, PredictResult, predict_films

__all__ = ["COLUMNS", "ERROR_COLUMNS", "Film", "PredictResult", "collect_films", "predict_films"]
