"""Benchmark of the rule that picks the round an item keeps: the fastest round, the median round
(``round_rule: median``, the GPU target files'), the drift-corrected median (every round divided by the
machine's speed at its time, estimated from the other subnets measured around it:
:mod:`ofahw.measure.kept`), and the fastest settled round (ofahw's first rule), on the same recorded rounds.

Fresh random subnets are measured in several processes, one after the other, each with the target's
network protocol (every round recorded). For each pair of processes and each rule, the two
processes' kept values of the subnets are compared as a prediction of each other: Kendall tau, the
speed ratio between the processes (median), and the share within ±5% with that ratio divided out.
A rule that keeps a slow spell's round lowers these; a measurement can be no more trusted than it
repeats.

With ``--rounds N`` each subnet gets N rounds instead of the protocol's network rounds, and the
rounds curves show how the two processes' agreement grows with the rounds kept from (the fastest
round, or the drift-corrected median, of the first k of the N rounds; the first k are spread over
the run as k rounds of their own would be, so this approximates a protocol of k rounds), beside the
device time those k rounds took per subnet: what more rounds per whole network would buy in
repeatability, the ceiling of any held-out score.

    python3 scripts/bench_round_rule.py [--target cpu] [--subnets 30] [--processes 2] [--rounds N] [--out runs/bench-round-rule/cpu.json]
    python3 scripts/bench_round_rule.py --target targets/gpu-torch.yaml --resolutions 224 --rounds 5
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

from ofahw.export import OnnxCache, network_artifact
from ofahw.fidelity import latency_fidelity
from ofahw.measure import Measurement, keep_rounds, load_target, measure_sequence
from ofahw.space import get_space

Sequence = list[tuple[int, Measurement]]  # one process's rounds: (subnet index, measurement) in the order measured


def settled_first(sequence: Sequence, statistic: str) -> np.ndarray:
    """The first rule: each subnet's fastest settled round, else its fastest."""
    rounds: dict[int, list[Measurement]] = {}
    for i, m in sequence:
        rounds.setdefault(i, []).append(m)
    return np.array([max(rounds[i], key=lambda m: (m.settled, -m.value(statistic))).value(statistic) for i in sorted(rounds)])


def by_rule(rule: str):
    def kept(sequence: Sequence, statistic: str) -> np.ndarray:
        values = keep_rounds(sequence, statistic, rule)
        return np.array([values[i].value(statistic) for i in sorted(values)])
    return kept


RULES = {"fastest round": by_rule("fastest"), "median round": by_rule("median"),
         "drift-corrected median": by_rule("drift-corrected"), "fastest settled round (first rule)": settled_first}


def first_rounds(sequence: Sequence, k: int) -> Sequence:
    """The records of ``sequence`` that are among their subnet's first ``k`` rounds."""
    seen: dict[int, int] = {}
    kept = []
    for i, m in sequence:
        seen[i] = seen.get(i, 0) + 1
        if seen[i] <= k:
            kept.append((i, m))
    return kept


def measure_all_rounds(job: dict) -> list[list]:
    """Every round of the subnets of ``job``, measured in this process, as [subnet index, measurement] in order."""
    space, target = get_space(job["space"]), load_target(job["target"])
    cache = OnnxCache()
    artifacts = [network_artifact(space, c, cache, job["batch"]) for c in job["configs"]]
    protocol = target.protocol.for_network()
    with target:
        sequence = measure_sequence(target, artifacts, replace(protocol, rounds=job.get("rounds") or protocol.rounds), job["seed"])
    return [[i, m.to_dict()] for i, m in sequence]


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
    recorded = []  # per process, its rounds in the order measured, as the child wrote them
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
    processes = [[(int(i), Measurement.from_dict(m)) for i, m in p] for p in recorded]
    kept = {rule: [keep(p, stat) for p in processes] for rule, keep in RULES.items()}
    fastest = kept["fastest round"]
    differ = {rule: [int(np.sum(f != v)) for f, v in zip(fastest, values, strict=True)] for rule, values in kept.items()
              if rule in ("median round", "fastest settled round (first rule)")}
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
        for rule in ("fastest", "drift-corrected"):
            print_rounds_curve(processes, stat, rule)


def print_rounds_curve(processes: list[Sequence], stat: str, rule: str) -> None:
    """Agreement between processes 1 and 2 keeping the round ``rule`` keeps of each subnet's first k rounds, k = 1..N."""
    first, second = processes[0], processes[1]
    n = min(min(Counter(i for i, _ in p).values()) for p in (first, second))
    label = {"fastest": "fastest round", "drift-corrected": "drift-corrected median"}.get(rule, f"{rule} round")
    print(f"rounds curve, processes 1/2 (the {label} of each subnet's first k rounds, {stat}; device time: the k rounds' "
          "warm-up and timed runs per subnet, mean of both processes):")
    for k in range(1, n + 1):
        a, b = (by_rule(rule)(first_rounds(p, k), stat) for p in (first, second))
        device_s = np.mean([sum(m.wall_s or 0.0 for _, m in first_rounds(p, k)) / len({i for i, _ in p}) for p in (first, second)])
        print(pair_line(f"first {k} round{'s' if k > 1 else ''} ({device_s:.1f} s/subnet)", 0, 1, a, b))


if __name__ == "__main__":
    main()
