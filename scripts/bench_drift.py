"""Benchmark of `ofahw reprofile`'s drift check on this (unchanged, noisy) machine: the false-alarm
rate over repeated checks, and the smallest uniform slow-down it detects.

Each check re-measures the LUT's sentinels for real; a drift verdict counts as an alarm only if the
check at least 60 s later agrees, as `ofahw reprofile` confirms before acting. The slow-downs are applied to those same real
re-measurements (every sentinel's new latency multiplied by s), so both figures come from one set of
measurements; nothing in the LUT is changed.

    python3 scripts/bench_drift.py --lut lut/cpu-w1.0.csv [--checks 20]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ofahw.export import OnnxCache
from ofahw.lut import LatencyTable
from ofahw.lut.campaign import measure_in_rounds, network_artifact
from ofahw.measure import load_target
from ofahw.reprofile import OK, judge, noise_threshold
from ofahw.space import get_space

CONFIRM_S = 60.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lut", default="lut/cpu-w1.0.csv")
    parser.add_argument("--target", default=None, help="default: the LUT's target")
    parser.add_argument("--checks", type=int, default=20)
    args = parser.parse_args()
    table = LatencyTable.read(args.lut)
    space = get_space(table.meta["space"])
    rows = {r["key"]: r for r in table.networks}
    sentinels = [rows[k] for k in table.meta["sentinels"]]
    stored = np.array([r["value_ms"] for r in sentinels])
    threshold = noise_threshold(table)
    target = load_target(args.target or table.meta["target"]["name"])
    protocol = target.protocol.for_network()
    cache = OnnxCache()
    artifacts = [network_artifact(space, r["config"], cache) for r in sentinels]
    news, times = [], []
    with target:
        for i in range(args.checks):
            times.append(time.monotonic())
            measured = measure_in_rounds(target, artifacts, protocol, seed=i)
            news.append(np.array([m.value(table.statistic) for m in measured]))
            v = judge(stored, news[-1], threshold)
            print(f"check {i + 1:2d}: {v.verdict:18s} median ratio {v.median_ratio:.3f} spread {v.spread:.1%}", flush=True)
    alarm = [judge(stored, n, threshold).verdict != OK for n in news]
    alarms = sum(alarm)
    # `ofahw reprofile` acts only when a second look CONFIRM_S later agrees: pair each check with the first one
    # that started at least that much later
    later = [next((j for j in range(i + 1, len(times)) if times[j] - times[i] >= CONFIRM_S), None) for i in range(len(times))]
    pairs = [(i, j) for i, j in enumerate(later) if j is not None]
    confirmed = sum(alarm[i] and alarm[j] for i, j in pairs)
    print(f"ofahw bench_drift — LUT {args.lut}, target {target.name}, {len(sentinels)} sentinels, statistic "
          f"{table.statistic}, threshold ±{threshold:.1%} (from the LUT's repeat measurements)")
    print(f"unchanged machine, one look: {alarms} alarms in {args.checks} checks = {alarms / args.checks:.0%}")
    print(f"unchanged machine, confirmed by a second look >= {CONFIRM_S:.0f} s later (what `ofahw reprofile` does): "
          f"{confirmed} false alarms in {len(pairs)} checks = {confirmed / max(len(pairs), 1):.0%} (goal <= 5%)")
    for s in (1.03, 1.05, 1.08, 1.10, 1.12, 1.15, 1.20):
        hits = sum(judge(stored, n * s, threshold).verdict != OK for n in news)
        print(f"uniform slow-down x{s:.2f} (applied to the same re-measurements): detected in {hits}/{args.checks}")


if __name__ == "__main__":
    main()
