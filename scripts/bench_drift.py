"""Benchmark of `ofahw reprofile`'s drift check on this (unchanged, noisy) machine: the false-alarm
rate over repeated checks, and the smallest uniform slow-down it detects.

Each check re-measures the LUT's sentinels for real; a drift verdict counts as an alarm only if the
check at least 60 s later agrees, as `ofahw reprofile` confirms before acting. The slow-downs are applied to those same real
re-measurements (every sentinel's new latency multiplied by s), so both figures come from one set of
measurements; nothing in the LUT is changed.

With --reprofile it also times the re-profile that follows an uneven drift, on a copy of the LUT, on the
unchanged machine: how many blocks one new round finds still agreeing (kept) and the wall time against
the LUT's own profiling.

    python3 scripts/bench_drift.py --lut lut/cpu-w1.0.csv [--checks 20] [--spacing 60] [--reprofile]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from ofahw.export import OnnxCache, network_artifact
from ofahw.lut import LatencyTable, json_path
from ofahw.measure import load_target, measure_in_rounds
from ofahw.reprofile import OK, UNSTEADY, judge, noise_threshold, steady_limit
from ofahw.reprofile.run import reprofile_uneven
from ofahw.space import get_space

CONFIRM_S = 60.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lut", default="lut/cpu-w1.0.csv")
    parser.add_argument("--target", default=None, help="default: the LUT's target")
    parser.add_argument("--checks", type=int, default=20)
    parser.add_argument("--spacing", type=float, default=0.0,
                        help="seconds to wait between checks, so that they span more of the machine's own wander")
    parser.add_argument("--reprofile", action="store_true", help="also time the re-profile reusing agreeing blocks")
    args = parser.parse_args()
    table = LatencyTable.read(args.lut)
    target = load_target(args.target or table.meta["target"]["name"])
    if args.checks:
        checks(args.lut, table, target, args.checks, args.spacing)
    if args.reprofile:
        reprofile_copy(args.lut, target)


def checks(lut: str, table: LatencyTable, target, n_checks: int, spacing: float) -> None:
    space = get_space(table.meta["space"])
    rows = {r["key"]: r for r in table.networks}
    sentinels = [rows[k] for k in table.meta["sentinels"]]
    stored = np.array([r["value_ms"] for r in sentinels])
    threshold, limit = noise_threshold(table), steady_limit(table)
    protocol = target.protocol.for_network()
    cache = OnnxCache()
    artifacts = [network_artifact(space, r["config"], cache) for r in sentinels]
    news, spreads, looks, times = [], [], [], []
    with target:
        for i in range(n_checks):
            if i:
                time.sleep(spacing)
            times.append(time.monotonic())
            measured = measure_in_rounds(target, artifacts, protocol, seed=i)
            news.append(np.array([m.value(table.statistic) for m in measured]))
            spreads.append([m.round_spread for m in measured])
            v = judge(stored, news[-1], threshold, spreads[-1], limit)
            looks.append(v)
            print(f"check {i + 1:2d}: {v.verdict:18s} median ratio {v.median_ratio:.3f} spread {v.spread:.1%} "
                  f"rounds {v.round_spread:.1%}", flush=True)
    # `ofahw reprofile` acts only when a second look CONFIRM_S later agrees: pair each check with the first one
    # that started at least that much later
    later = [next((j for j in range(i + 1, len(times)) if times[j] - times[i] >= CONFIRM_S), None) for i in range(len(times))]
    pairs = [(i, j) for i, j in enumerate(later) if j is not None]

    def alarms(scale: float, slower: bool) -> tuple[int, int]:
        """Alarms over the checks, and over the confirmed pairs; with ``slower``, only alarms that see the
        device slower (a look that reads it faster has not detected a slow-down)."""
        verdicts = [judge(stored, n * scale, threshold, r, limit) for n, r in zip(news, spreads, strict=True)]
        alarm = [v.verdict not in (OK, UNSTEADY) and (v.median_ratio > 1.0 or not slower) for v in verdicts]
        return sum(alarm), sum(alarm[i] and alarm[j] for i, j in pairs)

    one, confirmed = alarms(1.0, slower=False)
    print(f"ofahw bench_drift — LUT {lut}, target {target.name}, {len(sentinels)} sentinels, statistic "
          f"{table.statistic}, threshold ±{threshold:.1%} (from the LUT's repeat measurements)")
    medians = [v.median_ratio for v in looks]
    print(f"unchanged machine over {(times[-1] - times[0]) / 60:.1f} min: median ratios {min(medians):.3f}-"
          f"{max(medians):.3f} (std {np.std(medians):.1%})")
    unsteady = sum(v.verdict == UNSTEADY for v in looks)
    print(f"unsteady checks (rounds spread over {limit:.0%}; judged nothing, no alarm, no detection): {unsteady} of {n_checks}")
    print(f"unchanged machine, one look: {one} alarms in {n_checks} checks = {one / n_checks:.0%}")
    print(f"unchanged machine, confirmed by a second look >= {CONFIRM_S:.0f} s later (what `ofahw reprofile` does): "
          f"{confirmed} false alarms in {len(pairs)} checks = {confirmed / max(len(pairs), 1):.0%} (goal <= 5%)")
    for s in (1.03, 1.05, 1.08, 1.10, 1.12, 1.15, 1.20):
        one, confirmed = alarms(s, slower=True)
        print(f"uniform slow-down x{s:.2f} (applied to the same re-measurements): detected in {one}/{n_checks} single "
              f"looks, {confirmed}/{len(pairs)} confirmed")


def reprofile_copy(lut: str, target) -> None:
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / Path(lut).name
        shutil.copy2(lut, copy)
        shutil.copy2(json_path(Path(lut)), json_path(copy))
        table = LatencyTable.read(copy)
        at = time.strftime("%Y-%m-%dT%H:%M:%S")
        event = reprofile_uneven(copy, table, get_space(table.meta["space"]), target, seed=0, at=at, progress=False)
    share = event["kept_blocks"] / (event["kept_blocks"] + event["remeasured_blocks"])
    print(f"re-profile after uneven drift, on the unchanged machine: kept {event['kept_blocks']} blocks "
          f"({share:.0%}; one new round within ±{event['block_threshold']:.1%}), re-measured {event['remeasured_blocks']} "
          f"blocks and {event['networks']} networks in {event['wall_s']:.0f} s; the LUT's own profiling took "
          f"{table.meta['profiling']['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
