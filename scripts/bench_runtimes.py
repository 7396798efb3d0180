"""The same subnets and blocks measured now on every CPU runtime and precision, side by side.

onnxruntime fp32 and int8, OpenVINO fp32, int8 and bf16 (where the CPU has it), each with one
thread by default, at one batch size. Every item is measured in rounds (the campaign's protocol:
warm-up, adaptive repeats, dispersion gate), round k of every runtime before round k + 1 of any,
so a slow spell of the machine falls on all runtimes alike; the fastest round is kept.
Printed: whole subnets per runtime (median latency and ratio to onnxruntime fp32), then the ratio
per block type, so one sees where int8 pays and where it does not.

    python3 scripts/bench_runtimes.py [--space ofa-mbv3-w1.2] [--resolutions 160,192,224] [--subnets 10]
        [--blocks 72] [--batch 1] [--threads 1]
"""

from __future__ import annotations

import argparse
import re
from collections import defaultdict

import numpy as np

from ofahw.export import OnnxCache, network_artifact, part_artifact
from ofahw.measure import Protocol, keep_rounds
from ofahw.measure.cpu import OnnxruntimeCpuTarget
from ofahw.measure.host import cpu_isa, cpu_model
from ofahw.measure.openvino_cpu import OpenVinoCpuTarget
from ofahw.space import get_space


def runtimes(threads: int) -> dict[str, object]:
    import openvino as ov

    found = {
        "onnxruntime fp32": OnnxruntimeCpuTarget("ort-fp32", {"threads": threads}),
        "onnxruntime int8": OnnxruntimeCpuTarget("ort-int8", {"threads": threads, "precision": "int8"}),
        "openvino fp32": OpenVinoCpuTarget("ov-fp32", {"threads": threads}),
        "openvino int8": OpenVinoCpuTarget("ov-int8", {"threads": threads, "precision": "int8"}),
    }
    if "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        found["openvino bf16"] = OpenVinoCpuTarget("ov-bf16", {"threads": threads, "precision": "bf16"})
    return found


def block_type(key: str) -> str:
    """A block's type from its LUT key: kernel, expand ratio and SE of an inverted residual; else its piece."""
    fields = dict(re.findall(r"(\w+):([\dx]+)", key))
    if not key.startswith("expanded_conv"):
        return key.split("-", 1)[0]
    ratio = int(fields["expand"]) / int(fields["input"].split("x")[-1])
    if ratio == 1:
        return "first block (no expansion)"
    return f"k{fields['kernel']} expand {ratio:g} {'SE' if fields['se'] == '1' else 'no SE'}"


def measure_side_by_side(targets: dict, items: list, protocol: Protocol, seed: int) -> dict[str, list[float]]:
    """name → the protocol statistic (ms) of each item, the round of ``protocol.rounds`` its round rule keeps."""
    rng = np.random.default_rng(seed)
    sequences = {name: [] for name in targets}  # each runtime's rounds in the order measured
    for k in range(protocol.rounds):
        for name in rng.permutation(list(targets)):
            for i in rng.permutation(len(items)):
                sequences[name].append((int(i), targets[name].measure(items[i], protocol)))
        print(f"  round {k + 1} of {protocol.rounds} done", flush=True)
    kept = {name: keep_rounds(sequence, protocol.statistic, protocol.round_rule) for name, sequence in sequences.items()}
    return {name: [kept[name][i].value(protocol.statistic) for i in range(len(items))] for name in targets}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--space", default="ofa-mbv3-w1.2")
    parser.add_argument("--resolutions", default="160,192,224")
    parser.add_argument("--subnets", type=int, default=10)
    parser.add_argument("--blocks", type=int, default=72, help="blocks sampled evenly from the space's list")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    space = get_space(args.space)
    resolutions = [int(r) for r in args.resolutions.split(",")]
    targets = runtimes(args.threads)
    protocol = Protocol()
    cache = OnnxCache()
    configs = space.sample_stratified(args.subnets, np.random.default_rng(args.seed), resolutions)
    networks = [network_artifact(space, c, cache, args.batch) for c in configs]
    parts = list(space.block_parts(resolutions).values())
    picks = np.unique(np.linspace(0, len(parts) - 1, min(args.blocks, len(parts))).round().astype(int))
    blocks = [part_artifact(parts[i][1], cache, args.batch) for i in picks]

    for t in targets.values():
        t.open()
    try:
        print(f"measuring {len(networks)} subnets on {len(targets)} runtimes ({protocol.network_rounds} rounds each)", flush=True)
        net_ms = measure_side_by_side(targets, networks, protocol.for_network(), args.seed)
        print(f"measuring {len(blocks)} blocks on {len(targets)} runtimes ({protocol.rounds} rounds each)", flush=True)
        block_ms = measure_side_by_side(targets, blocks, protocol, args.seed + 1)
    finally:
        for t in targets.values():
            t.close()

    names = list(targets)
    base = np.array(net_ms[names[0]])
    print()
    print(f"ofahw bench_runtimes — {cpu_model()} ({', '.join(cpu_isa())}), {args.threads} thread(s), batch {args.batch}; "
          f"space {space.name} at {resolutions}; {protocol.statistic} in ms, fastest of the rounds, measured now "
          "on this machine; int8 = onnxruntime static QDQ, per-tensor, random calibration")
    print(f"\nwhole subnets ({len(networks)}, stratified over FLOPs):")
    print(f"  {'runtime':<18} {'median ms':>10} {'ratio to ' + names[0]:>28} {'(min – max)':>16}")
    for name in names:
        ms = np.array(net_ms[name])
        ratio = ms / base
        print(f"  {name:<18} {np.median(ms):>10.3f} {np.median(ratio):>28.3f} {f'({ratio.min():.2f} – {ratio.max():.2f})':>16}")
    print(f"\n  {'subnet':<34}" + "".join(f"{n:>18}" for n in names))
    for c, i in sorted(((c, i) for i, c in enumerate(configs)), key=lambda p: base[p[1]]):
        label = f"{space.config_hash(c)[:10]} r{c['r']} {space.flops(c):.0f}M MACs"
        print(f"  {label:<34}" + "".join(f"{net_ms[n][i]:>18.3f}" for n in names))

    groups: dict[str, list[int]] = defaultdict(list)
    for j, i in enumerate(picks):
        groups[block_type(parts[i][1].key)].append(j)
    base_blocks = np.array(block_ms[names[0]])
    print(f"\nper block type ({len(blocks)} blocks): median ratio to {names[0]} (its median ms in the first column)")
    print(f"  {'block type':<30} {'n':>3} {names[0] + ' ms':>22}" + "".join(f"{n:>18}" for n in names[1:]))
    for kind, members in sorted(groups.items()):
        ratios = [np.median(np.array(block_ms[n])[members] / base_blocks[members]) for n in names[1:]]
        print(f"  {kind:<30} {len(members):>3} {np.median(base_blocks[members]):>22.4f}" + "".join(f"{r:>18.3f}" for r in ratios))
    print("\n(ratio < 1: faster than onnxruntime fp32; > 1: slower)")


if __name__ == "__main__":
    main()
