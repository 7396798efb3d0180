"""Benchmark of the rule that picks the round an item keeps: the fastest round (ofahw's default), the
median round (``round_rule: median``, the GPU target files'), and the fastest settled round (ofahw's
rule before), on the same recorded rounds.

Fresh random subnets are measured in several processes, one after the other, each with the target's
network protocol (every round recorded). For each pair of processes and each rule, the two
processes' kept values of the subnets are compared as a prediction of each other: Kendall tau, the
speed ratio between the processes (median), and the share within ±5% with that ratio divided out.
A rule that keeps a slow spell's round lowers these; a measurement can be no more trusted than it
repeats.

With ``--rounds N`` each subnet gets N rounds instead of the protocol's network rounds, and the
rounds curve shows how the two processes' agreement grows with the rounds kept from (the round the
target's rule keeps of the first k of the N rounds; the first k are spread over the run as k rounds of their own would be,
so this approximates a protocol of k rounds), beside the device time those k rounds took per subnet:
what more rounds per whole network would buy in repeatability, the ceiling of any held-out score.

    python3 scripts/bench_round_rule.py [--target cpu] [--subnets 30] [--processes 2] [--rounds N] [--out runs/bench-round-rule/cpu.json]
    python3 scripts/bench_round_rule.py --target targets/gpu-torch.yaml --resolutions 224 --rounds 5
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from ofahw.export import OnnxCache, network_artifact
from ofahw.fidelity import latency_fidelity
from ofahw.measure import Measurement, best_round, load_target, measure_rounds
from ofahw.space import get_space


def settled_first(rounds: list[Measurement], statistic: str) -> float:
    """The rule before: the fastest settled round, else the fastest."""
    return max(rounds, key=lambda m: (m.settled, -m.value(statistic))).value(statistic)


RULES = {"fastest round": lambda rounds, stat: best_round(rounds, stat).value(stat),
         "median round": lambda rounds, stat: best_round(rounds, stat, "median").value(stat),
         "fastest settled round (before)": settled_first}


def measure_all_rounds(job: dict) -> list[list[dict]]:
    """Every round of each subnet of ``job``, measured in this process."""
    space, target = get_space(job["space"]), load_target(job["target"])
    cache = OnnxCache()
    artifacts = [network_artifact(space, c, cache, job["batch"]) for c in job["configs"]]
    protocol = target.protocol.for_network()
    with target:
        rounds = measure_rounds(target, artifacts, replace(protocol, rounds=job.get("rounds") or protocol.rounds), job["seed"])
    return [[m.to_dict() for m in r] for r in rounds]


def pair_line(rule: str, a: int, b: int, first: np.ndarray, second: np.ndarray) -> str:
    ratio = float(np.median(second / first))
    scaled = latency_fidelity(first, second / ratio)
    return (f"  {rule:<31} processes {a + 1}/{b + 1}: Kendall tau {scaled['kendall_tau']:.3f}  speed ratio {ratio:.3f}  "
            f"within ±5% (ratio divided out) {scaled['within_5pct'] * 100:5.1f}%  MAPE {scaled['mape'] * 100:5.2f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", default="cpu")
    parser.add_argument("--space", default="ofa-mbv3-w1.2")
    parser.add_argument("--resolutions", default="160,176,192,208,224")
    parser.add_argument("--subnets", type=int, default=30)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seed", type=int, default=777)
    parser.add_argument("--rounds", type=int, help="rounds per subnet (default: the target's network rounds); with more "
                        "than one, the rounds curve too")
    parser.add_argument("--out", help="where the recorded rounds go (default: runs/bench-round-rule/TARGET.json)")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: one measuring process
    args = parser.parse_args()
    if args.child:
        job = json.loads(Path(args.child).read_text())
        Path(args.child).write_text(json.dumps({**job, "rounds": measure_all_rounds(job)}))
        return
    if args.processes < 2:
        parser.error("--processes must be at least 2 (pairs of processes are compared)")

    space, target = get_space(args.space), load_target(args.target)
    resolutions = [int(r) for r in args.resolutions.split(",")]
    configs = space.sample(args.subnets, np.random.default_rng(args.seed), resolutions)
    cache = OnnxCache()
    for c in configs:  # exported once here, so no process spends its rounds' time on it
        network_artifact(space, c, cache, args.batch)
    out = Path(args.out or f"runs/bench-round-rule/{target.name}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    recorded = []  # per process, per subnet, its rounds as the child wrote them
    for k in range(args.processes):
        print(f"[{k + 1}/{args.processes}] measuring {len(configs)} subnets on target {target.name} in a new process", flush=True)
        job = out.with_name(f"{out.stem}-process{k + 1}.json")
        job.write_text(json.dumps({"space": space.name, "target": args.target, "configs": configs, "batch": args.batch,
                                   "seed": args.seed + k, "rounds": args.rounds}))
        subprocess.run([sys.executable, __file__, "--child", str(job)], check=True)
        recorded.append(json.loads(job.read_text())["rounds"])
        job.unlink()
    out.write_text(json.dumps({"target": args.target, "configs": configs, "rounds": recorded}))

    stat = target.protocol.statistic
    protocol = replace(target.protocol.for_network(), rounds=args.rounds or target.protocol.network_rounds)
    processes = [[[Measurement.from_dict(m) for m in r] for r in p] for p in recorded]
    kept = {rule: [np.array([keep(r, stat) for r in p]) for p in processes] for rule, keep in RULES.items()}
    fastest = kept["fastest round"]
    differ = {rule: [int(np.sum(f != v)) for f, v in zip(fastest, values, strict=True)] for rule, values in kept.items()
              if rule != "fastest round"}
    print()
    print(f"ofahw bench_round_rule — target {target.name} ({target.options}); space {space.name} at {resolutions}, batch "
          f"{args.batch}; {len(configs)} fresh random subnets (seed {args.seed}) measured in {args.processes} processes, "
          f"{protocol.rounds} rounds each, statistic {stat}; every round recorded in {out}")
    print("subnets whose kept round differs from the fastest round, per process: "
          + "; ".join(f"{rule} {counts}" for rule, counts in differ.items()))
    for rule, values in kept.items():
        for a, b in itertools.combinations(range(len(processes)), 2):
            print(pair_line(rule, a, b, values[a], values[b]))
    if protocol.rounds > 1:
        print_rounds_curve(processes, stat, protocol.round_rule)


def print_rounds_curve(processes: list[list[list[Measurement]]], stat: str, rule: str) -> None:
    """Agreement between processes 1 and 2 keeping the round ``rule`` keeps of each subnet's first k rounds, k = 1..N."""
    first, second = processes[0], processes[1]
    n = min(len(r) for p in (first, second) for r in p)
    print(f"rounds curve, processes 1/2 (the {rule} of each subnet's first k rounds, {stat}; device time: the k rounds' "
          "warm-up and timed runs per subnet, mean of both processes):")
    for k in range(1, n + 1):
        a, b = (np.array([best_round(r[:k], stat, rule).value(stat) for r in p]) for p in (first, second))
        device_s = np.mean([sum(m.wall_s or 0.0 for m in r[:k]) for p in (first, second) for r in p])
        print(pair_line(f"first {k} round{'s' if k > 1 else ''} ({device_s:.1f} s/subnet)", 0, 1, a, b))


if __name__ == "__main__":
    main()
