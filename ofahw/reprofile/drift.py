"""Has a target drifted since its LUT was measured? The LUT's sentinel subnets are measured again
and their ratios to the stored values are judged against a threshold the LUT's own repeat
measurements set (how far one subnet's rounds spread when nothing changed). A check whose own
rounds spread far more than the LUT's did judges nothing: the device is busy or unsteady now."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import kendalltau

from ofahw.lut import LatencyTable
from ofahw.lut.steadiness import CONTENDED_TAIL, UNSTEADY_SPREAD, median_or_none, network_tails

OK, UNIFORM, NON_UNIFORM, UNSTEADY, CONTENTION = "no-drift", "uniform-drift", "non-uniform-drift", "unsteady", "contention"
# What each verdict exits with, for cron and CI: 0 nothing to do, 3-4 the LUT followed a drift,
# 5-6 nothing judged (the device is unsteady, or shared with another process, right now).
EXIT_STATUS = {OK: 0, UNIFORM: 3, NON_UNIFORM: 4, UNSTEADY: 5, CONTENTION: 6}


@dataclass(frozen=True)
class DriftVerdict:
    verdict: str
    median_ratio: float  # new / stored, over the sentinels
    spread: float  # largest |ratio / median ratio - 1|: how unevenly they moved
    kendall_tau: float  # rank agreement of stored and new sentinel latencies
    threshold: float  # |median ratio - 1| above this is drift
    n: int
    round_spread: float | None = None  # median over the sentinels of this check's spread between rounds
    steady_limit: float | None = None  # a round spread above this makes the check unsteady
    tail: float | None = None  # median over the sentinels of p90 / p10 - 1 in this check
    stored_tail: float | None = None  # the same over the LUT's networks
    tail_limit: float | None = None  # a tail above this is contention

    def to_dict(self) -> dict:
        return asdict(self)


def _round_spread_p75(table: LatencyTable, kind: str) -> float | None:
    spreads = table.round_spreads(kind)
    return float(np.percentile(spreads, 75)) if spreads else None


def noise_threshold(table: LatencyTable, floor: float = 0.03, ceiling: float = 0.08, kind: str = "network") -> float:
    """The 75th percentile of the spread between the rounds of the LUT's rows of ``kind``, clipped
    to [floor, ceiling]: drift must exceed what re-measuring an unchanged machine already shows."""
    p75 = _round_spread_p75(table, kind)
    return ceiling if p75 is None else float(np.clip(p75, floor, ceiling))


def steady_limit(table: LatencyTable, floor: float = UNSTEADY_SPREAD) -> float:
    """The round spread (median over a check's sentinels) above which a check judges nothing: twice
    the 75th percentile the LUT's own networks showed, and never below ``floor``."""
    p75 = _round_spread_p75(table, "network")
    return floor if p75 is None else max(2 * p75, floor)


def stored_tail(table: LatencyTable) -> float | None:
    """Median over the LUT's networks of p90 / p10 - 1: the shape of a quiet run on this device."""
    return median_or_none(network_tails(table.rows))


def tail_limit(table: LatencyTable) -> float:
    """The tail (median p90 / p10 - 1 over a check's sentinels) above which a check sees contention:
    three times the LUT's own, and never below :data:`CONTENDED_TAIL`."""
    stored = stored_tail(table)
    return CONTENDED_TAIL if stored is None else max(3 * stored, CONTENDED_TAIL)


def judge(stored: np.ndarray, new: np.ndarray, threshold: float, round_spreads=None,
          limit: float | None = None, tails=None, tail_limit: float | None = None,
          stored_tail: float | None = None) -> DriftVerdict:
    """The verdict on ``new`` sentinel latencies against ``stored``. With ``tails`` (this check's
    p90 / p10 - 1, one per sentinel) and ``tail_limit``, a contended check is called so; with
    ``round_spreads`` (one per sentinel) and ``limit``, so is an unsteady one; neither is judged."""
    stored, new = np.asarray(stored, float), np.asarray(new, float)
    ratios = new / stored
    median = float(np.median(ratios))
    spread = float(np.max(np.abs(ratios / median - 1.0)))
    tau = float(kendalltau(stored, new).statistic) if len(stored) > 1 else 1.0
    rounds = None if round_spreads is None else float(np.median(round_spreads))
    tail = None if tails is None else float(np.median(tails))
    if tail is not None and tail_limit is not None and tail > tail_limit:
        verdict = CONTENTION
    elif rounds is not None and limit is not None and rounds > limit:
        verdict = UNSTEADY
    elif spread > 2 * threshold or tau < 0.6:
        verdict = NON_UNIFORM
    elif abs(median - 1.0) > threshold:
        verdict = UNIFORM
    else:
        verdict = OK
    return DriftVerdict(verdict, median, spread, tau, threshold, len(ratios), rounds, limit, tail, stored_tail,
                        tail_limit)
