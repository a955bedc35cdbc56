"""Evaluation metrics of GLUE-style tasks, in NumPy: accuracy, F1, Matthews correlation (classification) and
Pearson/Spearman correlation (regression)."""

from __future__ import annotations

import numpy as np


def _pair(predictions, labels) -> tuple[np.ndarray, np.ndarray]:
    predictions, labels = np.asarray(predictions).reshape(-1), np.asarray(labels).reshape(-1)
    if predictions.shape != labels.shape:
        raise ValueError(f"{predictions.size} predictions for {labels.size} labels")
    if predictions.size == 0:
        raise ValueError("no predictions to evaluate")
    return predictions, labels


def accuracy(predictions, labels) -> float:
    predictions, labels = _pair(predictions, labels)
    return float((predictions == labels).mean())


def f1(predictions, labels, num_labels: int = 2) -> float:
    """Binary F1 of class 1 for two classes; the unweighted mean of the per-class F1 (macro F1) for more.
    A class never predicted nor present scores 0 (as scikit-learn's zero_division=0)."""
    predictions, labels = _pair(predictions, labels)
    classes = [1] if num_labels == 2 else range(num_labels)
    scores = []
    for c in classes:
        true_positive = float(np.sum((predictions == c) & (labels == c)))
        predicted, actual = float(np.sum(predictions == c)), float(np.sum(labels == c))
        scores.append(0.0 if predicted + actual == 0 else 2.0 * true_positive / (predicted + actual))
    return float(np.mean(scores))


def matthews_correlation(predictions, labels, num_labels: int | None = None) -> float:
    """Matthews correlation coefficient, multi-class form (Gorodkin, 2004); 0 when undefined (a constant
    prediction or a constant truth), as scikit-learn."""
    predictions, labels = _pair(predictions, labels)
    k = int(max(predictions.max(), labels.max())) + 1 if num_labels is None else num_labels
    confusion = np.zeros((k, k), np.float64)
    np.add.at(confusion, (labels.astype(int), predictions.astype(int)), 1.0)
    t = confusion.sum(axis=1)  # times each class truly occurred
    p = confusion.sum(axis=0)  # times each class was predicted
    correct, samples = np.trace(confusion), confusion.sum()
    numerator = correct * samples - np.dot(t, p)
    denominator = np.sqrt((samples ** 2 - np.dot(p, p)) * (samples ** 2 - np.dot(t, t)))
    return 0.0 if denominator == 0 else float(numerator / denominator)


def pearson(predictions, labels) -> float:
    x, y = (a.astype(np.float64) for a in _pair(predictions, labels))
    x, y = x - x.mean(), y - y.mean()
    denominator = np.sqrt(np.dot(x, x) * np.dot(y, y))
    return float("nan") if denominator == 0 else float(np.dot(x, y) / denominator)


def average_ranks(values) -> np.ndarray:
    """Ranks 1..n, ties sharing the mean of their ranks."""
    values = np.asarray(values)
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(values.size, np.float64)
    sorted_values = values[order]
    start = 0
    while start < values.size:
        end = start
        while end + 1 < values.size and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start:end + 1]] = (start + end) / 2.0 + 1.0
        start = end + 1
    return ranks


def spearman(predictions, labels) -> float:
    predictions, labels = _pair(predictions, labels)
    return pearson(average_ranks(predictions), average_ranks(labels))


def classification_metrics(logits, labels) -> dict:
    logits = np.asarray(logits)
    num_labels = logits.shape[-1]
    predictions = logits.argmax(-1)
    return {"accuracy": accuracy(predictions, labels), "f1": f1(predictions, labels, num_labels),
            "matthews_correlation": matthews_correlation(predictions, labels, num_labels)}


def regression_metrics(predictions, labels) -> dict:
    predictions = np.asarray(predictions).reshape(-1)
    return {"pearson": pearson(predictions, labels), "spearman": spearman(predictions, labels),
            "mse": float(np.mean((predictions - np.asarray(labels, np.float64).reshape(-1)) ** 2))}
