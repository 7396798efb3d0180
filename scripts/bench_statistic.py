"""Which statistic should a LUT keep? Measures the same subnets in several separate processes (one
round each, the protocol's other settings unchanged) and prints, per statistic, how far the values
of one subnet are apart between processes. The LUT's default statistic is the steadiest one.

    python3 scripts/bench_statistic.py [--subnets 12] [--processes 4]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from ofahw.export import OnnxCache, network_artifact
from ofahw.measure import STATISTICS, load_target
from ofahw.space import get_space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", default="cpu")
    parser.add_argument("--space", default="ofa-mbv3-w1.2")
    parser.add_argument("--resolutions", default="160,192,224")
    parser.add_argument("--subnets", type=int, default=12)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    space, target = get_space(args.space), load_target(args.target)
    if args.child:
        configs = json.loads(Path(args.child).read_text())
        cache = OnnxCache()
        with target:
            result = [target.measure(network_artifact(space, c, cache), target.protocol.for_network()).to_dict() for c in configs]
        Path(args.child).write_text(json.dumps(result))
        return
    resolutions = [int(r) for r in args.resolutions.split(",")]
    configs = space.sample_stratified(args.subnets, np.random.default_rng(5), resolutions)
    runs = []
    for p in range(args.processes):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
            json.dump(configs, fh)
        subprocess.run([sys.executable, __file__, "--child", fh.name, "--target", args.target, "--space", args.space], check=True)
        runs.append(json.loads(Path(fh.name).read_text()))
        print(f"process {p + 1}/{args.processes} done", flush=True)
    print(f"\nofahw bench_statistic — target {target.name} ({target.options}), {space.name}, {args.subnets} subnets at "
          f"{resolutions}, each measured once in each of {args.processes} processes (protocol: one round, network min time "
          f"{target.protocol.for_network().min_time_s} s)")
    print("spread = max/min - 1 of one subnet's values over the processes")
    print(f"{'statistic':<10} {'median spread':>14} {'p90 spread':>11} {'max spread':>11}")
    for stat in STATISTICS:
        values = np.array([[run[i][stat] for run in runs] for i in range(len(configs))])
        spread = values.max(axis=1) / values.min(axis=1) - 1
        print(f"{stat:<10} {np.median(spread) * 100:13.2f}% {np.percentile(spread, 90) * 100:10.2f}% {spread.max() * 100:10.2f}%")


if __name__ == "__main__":
    main()
