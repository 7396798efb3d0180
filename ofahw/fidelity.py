"""How well predictions match what was measured: one set of figures for latency (against measured
milliseconds) and one for accuracy (against measured top-1), and where a stored report keeps the
figures of the predictor it chose."""

from __future__ import annotations

import numpy as np
from scipy.stats import kendalltau


def _tau(measured: np.ndarray, predicted: np.ndarray) -> float:
    return float(kendalltau(measured, predicted).statistic) if len(measured) > 1 else float("nan")


def latency_fidelity(measured: np.ndarray, predicted: np.ndarray) -> dict:
    """Error figures of latency predictions against measurements (ms)."""
    measured, predicted = np.asarray(measured, float), np.asarray(predicted, float)
    rel = np.abs(predicted / measured - 1.0)
    return {
        "n": int(len(measured)),
        "rmse_ms": float(np.sqrt(np.mean(np.square(predicted - measured)))),
        "mape": float(rel.mean()),
        "within_5pct": float(np.mean(rel <= 0.05)),
        "within_10pct": float(np.mean(rel <= 0.10)),
        "kendall_tau": _tau(measured, predicted),
    }


def accuracy_fidelity(measured: np.ndarray, predicted: np.ndarray) -> dict:
    """Rank agreement and error (fractions of top-1) of accuracy predictions against measurements."""
    measured, predicted = np.asarray(measured, float), np.asarray(predicted, float)
    return {"kendall_tau": _tau(measured, predicted), "rmse": float(np.sqrt(np.mean((predicted - measured) ** 2))),
            "mae": float(np.mean(np.abs(predicted - measured)))}


def chosen_scores(report: dict | None) -> dict:
    """The cross-validated figures of the candidate a predictor report chose ({} if it holds none)."""
    report = report or {}
    return report.get("candidates", {}).get(report.get("chosen"), {})
