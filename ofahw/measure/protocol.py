"""The measurement protocol: warm-up, adaptive repeats, a dispersion gate, and statistics.

This module needs only the standard library and numpy, so the remote runner can ship it to a
device as it is and apply the same protocol there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace

import numpy as np

STATISTICS = ("min", "p10", "median", "mean", "p90", "p99")
ROUND_RULES = ("fastest", "median", "drift-corrected")


@dataclass(frozen=True)
class Protocol:
    """How one item is timed. Durations in seconds, per round.

    A round is: warm-up (until both its run count and its duration are reached), then timed runs
    until the minimum count and time are reached and the dispersion gate holds, or the round's
    budget (``max_time_s``) runs out once it has ``min_repeats`` runs: an item slower than
    ``max_time_s / min_repeats`` (a whole network at batch 8, ~0.1 s a run here) still gets its
    minimum count, without which neither its low percentiles nor the gate mean anything. A profiling
    campaign measures each item in ``rounds`` rounds spread over the whole campaign: a shared machine
    has slow spells lasting seconds (another tenant, a throttled clock) that no single round can see
    from inside. By default (``round_rule: fastest``) an item keeps its fastest round as measured;
    ``drift-corrected`` divides every round by the machine's speed at its time, told by the other
    items of its kind measured around it, and keeps the median corrected round (:mod:`ofahw.measure.kept`,
    which says why it is not the default); ``median`` keeps the median round, for devices whose rare
    outlier rounds are fast ones (a GPU: see :func:`best_round`).

    Whole networks are the ground truth a LUT is calibrated and judged on, and the longer a round
    lasts the likelier a slow spell falls into it, so networks get their own (more) rounds and
    minimum time: ``network_rounds``, ``network_min_time_s``.

    ``statistic`` is the value a LUT takes from each measurement. Its default, p10, was chosen by
    measurement (scripts/bench_statistic.py): on a shared 2-core machine the median of the same
    subnet moved by up to ~15% between processes, the low percentiles by a few percent.
    """

    warmup_runs: int = 5
    warmup_s: float = 0.03
    min_repeats: int = 20
    min_time_s: float = 0.15
    max_time_s: float = 1.0
    network_min_time_s: float = 0.3
    max_repeats: int = 100_000
    gate: float = 0.01  # settled when the statistic's batch-means relative standard error <= gate
    batches: int = 5
    statistic: str = "p10"
    rounds: int = 3
    network_rounds: int = 5
    retries: int = 2  # extra attempts for a round that never settled
    round_rule: str = "fastest"  # the round an item keeps: one of ROUND_RULES (ofahw.measure.kept.keep_rounds)

    def __post_init__(self):
        if self.statistic not in STATISTICS:
            raise ValueError(f"protocol statistic must be one of {STATISTICS}, got {self.statistic!r}")
        if self.round_rule not in ROUND_RULES:
            raise ValueError(f"protocol round_rule must be one of {ROUND_RULES}, got {self.round_rule!r}")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name not in ("statistic", "round_rule") and (not isinstance(value, (int, float)) or value < 0):
                raise ValueError(f"protocol {f.name} must be a non-negative number, got {value!r}")
        if self.max_time_s < self.min_time_s or self.batches < 2 or min(self.rounds, self.network_rounds) < 1:
            raise ValueError("protocol needs max_time_s >= min_time_s, batches >= 2 and rounds >= 1")

    @classmethod
    def from_dict(cls, data: dict | None) -> Protocol:
        data = dict(data or {})
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown protocol settings {sorted(unknown)} (known: {sorted(names)})")
        return cls(**data)

    def to_dict(self) -> dict:
        return asdict(self)

    def for_network(self) -> Protocol:
        """This protocol as applied to a whole network (its own rounds and minimum time)."""
        min_time = max(self.min_time_s, self.network_min_time_s)
        return replace(self, min_time_s=min_time, max_time_s=max(self.max_time_s, min_time), rounds=self.network_rounds)


@dataclass(frozen=True)
class Measurement:
    """Statistics of one item's timed runs, in milliseconds, with how they were obtained."""

    min: float
    p10: float
    median: float
    mean: float
    std: float
    p90: float
    p99: float
    n: int
    cov: float
    settled: bool
    rel_se: float  # batch-means relative standard error of the protocol's statistic
    warmup_runs: int
    timed_s: float  # time spent inside timed runs
    wall_s: float  # wall time of the whole measurement, warm-up included
    # when kept from several rounds: how far the rounds' statistics spread (slowest / fastest - 1)
    round_spread: float | None = None

    def value(self, statistic: str) -> float:
        return float(getattr(self, statistic))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Measurement:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


def best_round(rounds: list[Measurement], statistic: str, rule: str = "fastest") -> Measurement:
    """The round an item keeps from several: the fastest (``rule="fastest"``) or the median one
    (``"median"``; of an even count, the faster of the middle two), settled or not, carrying how far
    the rounds' statistics spread (slowest / fastest - 1); the item counts as settled when any of its
    rounds did.

    Settled rounds are not preferred: on this shared machine a slow spell can be steady (1.5-1.7x
    slower, passing the dispersion gate) while a quiet round is cut by short bursts and fails it, so
    a settled round first kept the spell. On the same recorded rounds of 30 subnets measured in two
    processes (scripts/bench_round_rule.py), keeping the fastest raised their rank agreement (Kendall
    tau) from 0.83 to 0.92 on onnxruntime fp32, 0.87 to 0.94 on onnxruntime int8, 0.77 to 0.85 on
    OpenVINO fp32 and 0.70 to 0.89 on OpenVINO int8.

    A GPU is the other way round: every round builds the model and captures its CUDA graph anew,
    and on an H200 (torch-CUDA, batch 1) a few rounds ran 8-13% faster than the item's others while
    a round's own samples spread 0.5%: the fastest of 2-3 rounds caught such a round for some items
    and not for others, and two processes' measurements of 30 subnets agreed only to Kendall tau
    0.82 (p90 |ratio - 1| 8%). Of three rounds the median leaves one such round out."""
    if rule not in ("fastest", "median"):
        raise ValueError(f"round rule must be one of fastest, median here (drift-corrected needs the order of the whole run: "
                         f"ofahw.measure.kept.keep_rounds), got {rule!r}")
    ordered = sorted(rounds, key=lambda m: m.value(statistic))
    best = ordered[0] if rule == "fastest" else ordered[(len(ordered) - 1) // 2]
    values = [m.value(statistic) for m in rounds]
    return replace(best, settled=any(m.settled for m in rounds), round_spread=max(values) / min(values) - 1.0)


def _statistic(samples: np.ndarray, statistic: str) -> float:
    if statistic == "min":
        return float(samples.min())
    if statistic == "mean":
        return float(samples.mean())
    if statistic == "median":
        return float(np.median(samples))
    return float(np.percentile(samples, int(statistic[1:])))


def relative_standard_error(samples: np.ndarray, statistic: str, batches: int) -> float:
    """Spread of the statistic over consecutive batches of runs, as a fraction of its value.

    Batches in time order catch slow drifts (another process waking up) that a plain standard
    error over shuffled samples would hide.
    """
    if len(samples) < 2 * batches:
        return float("inf")
    per_batch = np.array([_statistic(b, statistic) for b in np.array_split(samples, batches)])
    whole = _statistic(samples, statistic)
    return float(per_batch.std(ddof=1) / np.sqrt(batches) / whole) if whole > 0 else float("inf")


def summarise(samples_ms: np.ndarray, protocol: Protocol, warmup_runs: int, timed_s: float, wall_s: float) -> Measurement:
    s = np.asarray(samples_ms, dtype=float)
    rel_se = relative_standard_error(s, protocol.statistic, protocol.batches)
    mean = float(s.mean())
    return Measurement(
        min=float(s.min()),
        p10=_statistic(s, "p10"),
        median=float(np.median(s)),
        mean=mean,
        std=float(s.std(ddof=1)) if len(s) > 1 else 0.0,
        p90=_statistic(s, "p90"),
        p99=_statistic(s, "p99"),
        n=int(len(s)),
        cov=float(s.std(ddof=1) / mean) if len(s) > 1 and mean > 0 else 0.0,
        settled=bool(rel_se <= protocol.gate),
        rel_se=rel_se,
        warmup_runs=warmup_runs,
        timed_s=timed_s,
        wall_s=wall_s,
    )


def run_protocol(run_once: Callable[[], None], protocol: Protocol, clock: Callable[[], int] = time.perf_counter_ns,
                 per_call: int = 1) -> Measurement:
    """Time ``run_once`` under ``protocol``.

    Warm-up lasts until both its run count and its duration are reached. Timed runs then go on
    until the minimum count and time are reached and the dispersion gate holds, or the item's
    time budget (``max_time_s``, of timed time or of wall time, whichever runs out first; never
    before ``min_repeats`` runs) or ``max_repeats`` runs out; the result says whether it settled.
    ``clock`` returns nanoseconds (a device clock for GPU targets). ``run_once`` may run the model
    ``per_call`` times back to back (GPU targets do, where one run is too short for the clock to
    resolve): each sample is then the mean latency of those runs.
    """
    start = time.perf_counter()
    warm = 0
    while warm < protocol.warmup_runs or time.perf_counter() - start < protocol.warmup_s:
        run_once()
        warm += 1
    samples: list[float] = []
    timed_ns = 0
    next_check = protocol.min_repeats
    loop_start = time.perf_counter()
    while True:
        t0 = clock()
        run_once()
        dt = clock() - t0
        samples.append(dt / per_call)
        timed_ns += dt
        n = len(samples)
        if n >= protocol.max_repeats:
            break
        if n >= protocol.min_repeats and max(timed_ns / 1e9, time.perf_counter() - loop_start) >= protocol.max_time_s:
            break
        if n >= next_check and timed_ns >= protocol.min_time_s * 1e9:
            # Checking costs a sort of the samples, so check at geometric intervals.
            next_check = int(n * 1.25) + 1
            ms = np.asarray(samples, dtype=float) / 1e6
            if relative_standard_error(ms, protocol.statistic, protocol.batches) <= protocol.gate:
                break
    return summarise(np.asarray(samples, dtype=float) / 1e6, protocol, warm, timed_ns / 1e9, time.perf_counter() - start)
