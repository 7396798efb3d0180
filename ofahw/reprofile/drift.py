"""Has a target drifted since its LUT was measured? The LUT's sentinel subnets are measured again
and their ratios to the stored values are judged against a threshold the LUT's own repeat
measurements set (how far one subnet's rounds spread when nothing changed)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import kendalltau

from ofahw.lut import LatencyTable

OK, UNIFORM, NON_UNIFORM = "no-drift", "uniform-drift", "non-uniform-drift"


@dataclass(frozen=True)
class DriftVerdict:
    verdict: str
    median_ratio: float  # new / stored, over the sentinels
    spread: float  # largest |ratio / median ratio - 1|: how unevenly they moved
    kendall_tau: float  # rank agreement of stored and new sentinel latencies
    threshold: float  # |median ratio - 1| above this is drift
    n: int

    def to_dict(self) -> dict:
        return asdict(self)


def noise_threshold(table: LatencyTable, floor: float = 0.03, ceiling: float = 0.08, kind: str = "network") -> float:
    """The 75th percentile of the spread between the rounds of the LUT's rows of ``kind``, clipped
    to [floor, ceiling]: drift must exceed what re-measuring an unchanged machine already shows."""
    spreads = [r["round_spread"] for r in table.rows if r["kind"] == kind and r.get("round_spread") is not None]
    if not spreads:
        return ceiling
    return float(np.clip(np.percentile(spreads, 75), floor, ceiling))


def judge(stored: np.ndarray, new: np.ndarray, threshold: float) -> DriftVerdict:
    stored, new = np.asarray(stored, float), np.asarray(new, float)
    ratios = new / stored
    median = float(np.median(ratios))
    spread = float(np.max(np.abs(ratios / median - 1.0)))
    tau = float(kendalltau(stored, new).statistic) if len(stored) > 1 else 1.0
    if spread > 2 * threshold or tau < 0.6:
        verdict = NON_UNIFORM
    elif abs(median - 1.0) > threshold:
        verdict = UNIFORM
    else:
        verdict = OK
    return DriftVerdict(verdict, median, spread, tau, threshold, len(ratios))
