"""Binary classification figures: ROC AUC, the operating threshold, and the confusion at a threshold."""

from __future__ import annotations

import math

import numpy as np


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) at every distinct score, from (0, 0) to (1, 1)."""
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order].astype(bool)
    distinct = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tps = np.cumsum(y)[distinct]
    fps = (distinct + 1) - tps
    tpr = np.r_[0, tps / max(y.sum(), 1)]
    fpr = np.r_[0, fps / max((~y).sum(), 1)]
    return fpr, tpr


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (trapezoids over distinct scores, so ties count half)."""
    fpr, tpr = roc_curve(labels, scores)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def pick_threshold(labels: np.ndarray, scores: np.ndarray, min_sensitivity: float = 0.95) -> float:
    """Highest threshold whose sensitivity is still >= `min_sensitivity` (best specificity under it)."""
    positives = np.sort(scores[labels == 1])
    allowed_misses = int(math.floor((1 - min_sensitivity) * len(positives)))
    return float(positives[allowed_misses])


def binary_figures(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """n, AUC, sensitivity, specificity, precision, F1, accuracy and the confusion matrix at `threshold`."""
    labels = np.asarray(labels).astype(int)
    pred = np.asarray(scores) >= threshold
    tp = int(np.sum(pred & (labels == 1)))
    tn = int(np.sum(~pred & (labels == 0)))
    fp = int(np.sum(pred & (labels == 0)))
    fn = int(np.sum(~pred & (labels == 1)))
    sensitivity = tp / max(tp + fn, 1)
    precision = tp / max(tp + fp, 1)
    return {
        "n": int(len(labels)),
        "accuracy": round((tp + tn) / max(len(labels), 1), 4),
        "sensitivity": round(sensitivity, 4),
        "specificity": round(tn / max(tn + fp, 1), 4),
        "precision": round(precision, 4),
        "f1": round(2 * precision * sensitivity / max(precision + sensitivity, 1e-12), 4),
        "auc": round(roc_auc(labels, np.asarray(scores)), 4),
        "threshold": round(float(threshold), 6),
        "confusion": {"tp": tp, "fn": fn, "fp": fp, "tn": tn},
    }
