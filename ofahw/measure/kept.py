"""The round each item keeps of a run of measurements, by the protocol's round rule.

``fastest`` (the default) keeps each item's fastest round as measured. ``drift-corrected`` first
divides every round by the machine's speed at the time it was measured, estimated from the rounds
of other items of its kind measured just before and after it, then keeps each item's median round.
Why it exists: on this shared 2-core VM the machine's speed wanders over seconds, and items measured
in the same few seconds move together (whole networks' rounds correlated 0.3-0.8 across rounds);
measured on 50 fresh w1.2 subnets in two processes, 5 rounds each (scripts/bench_round_rule.py), the
processes' Kendall tau went from 0.907 (fastest round) to 0.943 on OpenVINO fp32 and from 0.953 to
0.959 on onnxruntime fp32.

Why it is not the default: in a profile campaign it did not make better LUTs. The same slow spell
slows a whole network far more than a block: in two recorded OpenVINO campaigns (int8 and fp32,
batch 1) networks' rounds spread 11.5-15.5% (median), blocks' 0.5%, and the networks' departures
followed the block-told speed 8-10 times over. A speed told mostly by the blocks left the networks'
median round where it was, 3-4% above their fastest round, while held-out subnets (networks only)
came out near their fastest: the LUT predicted them a few percent slow. Told per kind of item
(``speed_group``), the networks sat 1-2% above their fastest, and even set to the fastest rounds'
level the drift-corrected LUTs ranked 50 fresh subnets no better than the fastest-round ones
(OpenVINO int8 tau 0.946 against 0.956).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import replace

import numpy as np

from ofahw.measure.protocol import Measurement, best_round

SPEED_NEIGHBOURS = 8  # rounds measured just before, and as many after, that give the machine's speed at a round
SPEED_ITERATIONS = 6
QUIET_QUANTILE = 0.1  # corrected values are at the machine's speed in the quietest tenth of the run
MIN_ITEMS = 3  # fewer distinct items measured together cannot tell the machine's speed from the item's own


def tells_speed(items: Sequence[Hashable]) -> bool:
    """Whether a run of measurements of ``items`` (in the order measured) holds enough distinct items
    and rounds to tell the machine's speed from the items' own levels."""
    return len(set(items)) >= MIN_ITEMS and len(items) >= 2 * SPEED_NEIGHBOURS + 1


def machine_speed(items: Sequence[Hashable], values: Sequence[float]) -> np.ndarray:
    """How slow the machine ran at each of a run's measurements (``items[k]`` measured ``values[k]``,
    in the order measured), as a factor of its speed in the quietest tenth of the run: each item's
    level and the machine's speed are estimated in turn, the speed at a measurement being the median
    of its neighbours' departures from their items' levels. All ones where too few items were measured."""
    keys = list(items)
    log_values = np.log(np.asarray(values, dtype=float))
    index: dict[Hashable, int] = {}
    ids = np.array([index.setdefault(k, len(index)) for k in keys], dtype=int)
    n_items = len(index)
    if not tells_speed(keys):
        return np.ones(len(keys))
    level = np.array([log_values[ids == i].min() for i in range(n_items)])
    speed = np.zeros(len(keys))
    for _ in range(SPEED_ITERATIONS):
        departure = log_values - level[ids]
        speed = np.array([np.median(np.r_[departure[max(0, k - SPEED_NEIGHBOURS):k], departure[k + 1:k + 1 + SPEED_NEIGHBOURS]])
                          for k in range(len(keys))])
        level = np.array([np.median(log_values[ids == i] - speed[ids == i]) for i in range(n_items)])
    return np.exp(speed - np.quantile(speed, QUIET_QUANTILE))


def scaled(m: Measurement, factor: float) -> Measurement:
    """``m``'s times divided by ``factor`` (its device time spent stays as it was)."""
    return replace(m, **{s: getattr(m, s) / factor for s in ("min", "p10", "median", "mean", "std", "p90", "p99")})


def keep_rounds(sequence: Sequence[tuple[Hashable, Measurement]], statistic: str, rule: str,
                speed_group: Callable[[Hashable], Hashable] | None = None) -> dict[Hashable, Measurement]:
    """Item → the round it keeps of ``sequence`` (every round of a run, ``(item, measurement)`` in the
    order measured) under round rule ``rule``, carrying the spread of its rounds as measured
    (:func:`best_round`). ``drift-corrected``: the median of its rounds each divided by
    :func:`machine_speed` at its time, told by the items of its ``speed_group`` (item → group; all
    items one group by default) measured around it, or by all items where its group has too few to tell it
    (:func:`tells_speed`); with fewer than three items in all, the median round."""
    rounds: dict[Hashable, list[Measurement]] = {}
    for key, m in sequence:
        rounds.setdefault(key, []).append(m)
    if rule != "drift-corrected":
        return {key: best_round(r, statistic, rule) for key, r in rounds.items()}
    keys, values = [k for k, _ in sequence], [m.value(statistic) for _, m in sequence]
    factors = machine_speed(keys, values)  # told by all items: a group too small to tell its own takes it
    groups: dict[Hashable, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(speed_group(key) if speed_group else None, []).append(i)
    for members in groups.values():
        if len(groups) > 1 and tells_speed([keys[i] for i in members]):
            factors[members] = machine_speed([keys[i] for i in members], [values[i] for i in members])
    corrected: dict[Hashable, list[Measurement]] = {}
    for (key, m), factor in zip(sequence, factors, strict=True):
        corrected.setdefault(key, []).append(scaled(m, float(factor)))
    return {key: replace(best_round(corrected[key], statistic, "median"), round_spread=best_round(r, statistic).round_spread)
            for key, r in rounds.items()}
