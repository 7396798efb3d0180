"""Benchmark of the ensemble latency models against real runs: random ensembles of random subnets of a
LUT's space, measured on the device as groups (CPU: threads; GPU: CUDA streams; several targets:
members spread over the devices), compared with

- the search's model: the LUT's predicted member latencies combined by max (parallel) or sum (serial);
- the same combination of the members measured alone, now, on the same device.

    python3 scripts/bench_ensemble_verify.py --lut lut/cpu-w1.0.csv [--target cpu] [--ensembles 8]
    python3 scripts/bench_ensemble_verify.py --lut lut/gpu.csv --target targets/gpu-torch.yaml
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from ofahw.ensemble.verify import verify_ensembles
from ofahw.measure import load_target
from ofahw.predict import LutLatencyModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lut", required=True)
    parser.add_argument("--target", action="append", help="default: the LUT's target; repeat to spread members")
    parser.add_argument("--ensembles", type=int, default=8)
    parser.add_argument("--pool", type=int, default=8, help="subnets the ensembles are drawn from")
    parser.add_argument("--max-members", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    model = LutLatencyModel.load(args.lut)
    space, specs = model.space, args.target or [model.target]
    rng = np.random.default_rng(args.seed)
    pool = space.sample(args.pool, rng, model.table.meta["resolutions"])
    keys = [space.config_hash(c) for c in pool]
    predicted = dict(zip(keys, model.predict(pool), strict=True))
    ensembles = [sorted(rng.choice(keys, size=rng.integers(2, args.max_members + 1), replace=False).tolist())
                 for _ in range(args.ensembles)]
    print(f"ofahw bench_ensemble_verify — {args.ensembles} random ensembles of 2-{args.max_members} of {args.pool} random "
          f"{space.name} subnets; modelled from LUT {args.lut} (target {model.target}, batch {model.table.batch}); "
          f"measured now on {' + '.join(specs)}")
    modes = ("parallel", "serial") if len(specs) == 1 else ("parallel",)
    with tempfile.TemporaryDirectory() as folder:
        for mode in modes:
            combine = max if mode == "parallel" else sum
            modelled = np.array([combine(predicted[k] for k in e) for e in ensembles])
            targets = [load_target(s) for s in specs]
            result = verify_ensembles(space, dict(zip(keys, pool, strict=True)), ensembles, modelled, mode, targets,
                                      Path(folder) / f"{mode}.csv", model.table.batch)
            rows = np.genfromtxt(Path(folder) / f"{mode}.csv", delimiter=",", names=True, dtype=None, encoding="utf-8")
            measured = rows[f"measured_{result['statistic']}_ms"]
            alone = rows[f"members_alone_{mode}_ms"]
            s, a = result["search_model"], result["members_alone_model"]
            lut_model = (f"LUT model MAPE {s['mape']:.1%}, tau {s['kendall_tau']:.2f}" if all(t.name == model.target for t in targets)
                         else f"LUT model n/a (members on other targets than {model.target})")
            print(f"{mode:8s} ({'max' if mode == 'parallel' else 'sum'} of members, {result['statistic']}): "
                  f"{lut_model}; members measured alone MAPE {a['mape']:.1%}; "
                  f"measured / members-alone model: median {np.median(measured / alone):.2f} "
                  f"(min {np.min(measured / alone):.2f}, max {np.max(measured / alone):.2f}); "
                  f"measured {np.min(measured):.3g}-{np.max(measured):.3g} ms")


if __name__ == "__main__":
    main()
