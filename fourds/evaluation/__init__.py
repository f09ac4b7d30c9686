"""Predictions and their scores: accuracy, per-class accuracy, confusion matrix, calibration (plots in ``plots``)."""

from fourds.evaluation.metrics import (
    ClassifierEvaluation,
    evaluate_classifier,
    evaluate_logits,
    evaluate_models,
    expected_calibration_error,
)
from fourds.evaluation.predict import accuracy, predict_logits

__all__ = [
    "ClassifierEvaluation",
    "accuracy",
    "evaluate_classifier",
    "evaluate_logits",
    "evaluate_models",
    "expected_calibration_error",
    "predict_logits",
]
