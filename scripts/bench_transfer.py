"""Benchmark of transfer to a new device (`ofahw profile --from`) and of `--fast`, on real pairs of
latency landscapes this machine has.

For each target T whose full profile and held-out measurements `scripts/bench_profile.py` left in
--dir (T.csv and T-heldout.json: fresh subnets never used in fitting, measured on T): transfer from
the source LUT to the target T.csv names (T may be a file name of its own, such as openvino-int8-b8)
with 5, 10, 20, 30, 50 designed networks measured on T (and the probe blocks, unless
--no-probe), and report the held-out fidelity of the transferred LUT and its device time against T's
full profile. `--fast T` also runs
a fast profile of T without a source. The "same session" lines fit the same mapping on n of the full
profile's own networks, measured in the session that measured the held-out subnets: the gap between
them and the transfer lines is the machine's speed moving between two sessions, not the mapping.
`--remeasure` measures the held-out subnets on T again right after the transfer, in its session, and
scores every step's transferred LUT and the fast profile (measured right after) against those measurements
too ("this session" lines). The "both processes" lines score the full profile and every step against
the fastest of the two processes' measurements of each held-out subnet that bench_profile made (twice the
rounds, in two sessions): a truer ground truth, as bench_profile's own "fastest of both" line.

Goals (issue 14), on every pair with <= 30 whole-network measurements (<= 5% of a full profile's
device time): within ±10% >= 99%, within ±5% >= 90%, Kendall tau >= 0.95; --fast alone: <= 25% of the
device time at the same goals. Each target's budget line says how many whole networks 5% of its full profile
buys at the device time its full profile spent on each of its own networks.

    python3 scripts/bench_profile.py --target cpu --out runs/bench-profile/cpu.csv      # the source, and each target:
    python3 scripts/bench_profile.py --target openvino --held-out 50 --out runs/bench-profile/openvino.csv
    python3 scripts/bench_transfer.py [--source runs/bench-profile/cpu.csv] [--targets cpu-int8,openvino,openvino-int8]
        [--samples 10,20,30,50] [--fast openvino]   (--fast '' for none)
    python3 scripts/bench_transfer.py --dir runs/bench-profile-q --targets openvino-b8 --fast openvino-b8 --fast-only
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from ofahw.fidelity import latency_fidelity
from ofahw.lut import LatencyTable
from ofahw.lut.fast import FastCampaign, fast_networks
from ofahw.lut.probes import probe_blocks
from ofahw.lut.transfer import TransferCampaign, fit_mapping, probe_scales
from ofahw.measure import load_target, measure_subnets
from ofahw.predict import LutLatencyModel
from ofahw.space import get_space

ANCHORS = [
    "HELP (Lee et al., NeurIPS 2021): 10 measurements on the new device, Spearman 0.93 on NAS-Bench-201; on a Jetson "
    "Xavier its 65 and 70 ms picks measured 67.4 and 76.4 ms (published)",
    "LitePred (Feng et al., NSDI 2024): 99.3% within ±10% after 1,400-18,500 adaptation samples, under an hour (published)",
]


def device_s(rows: list[dict]) -> float:
    """Time spent in measurement rounds (warm-up and timed runs) over ``rows``: a LUT's device time."""
    return sum(r["wall_s"] or 0.0 for r in rows)


def budget_line(full: LatencyTable, full_s: float) -> str:
    """What the goal's device share (5% of the full profile) buys on this target: whole networks at the
    mean device time the full profile spent on each of its own."""
    networks = full.networks
    each = device_s(networks) / len(networks)
    return (f"  {'':<14} 5% of the full profile = {0.05 * full_s:.1f} s = {0.05 * full_s / each:.1f} whole networks at its "
            f"networks' mean device time ({each:.2f} s each, in {networks[0]['rounds']} rounds), and no probe block")


def held_out(folder: Path, target: str, n: int, statistic: str) -> tuple[list[dict], np.ndarray, np.ndarray]:
    """The held-out configs, their measurements in bench_profile's first process, and the fastest of
    its two processes' measurements of each."""
    data = json.loads((folder / f"{target}-heldout.json").read_text())
    first, second = (np.array([m[statistic] for m in data[k][:n]]) for k in ("first", "second"))
    return data["configs"][:n], first, np.minimum(first, second)


def fidelity_line(name: str, what: str, table: LatencyTable, path: Path, space, configs, measured, full_s: float) -> str:
    predicted = LutLatencyModel(table, space, path).predict(configs)
    f = latency_fidelity(measured, predicted)
    spent = device_s([r for r in table.rows if r["rounds"]])
    return (f"  {name:<14} {what:<36} ±5% {f['within_5pct'] * 100:5.1f}%  ±10% {f['within_10pct'] * 100:5.1f}%  "
            f"tau {f['kendall_tau']:.3f}  MAPE {f['mape'] * 100:5.2f}%  device {spent:6.1f} s = {spent / full_s:6.1%} of the full profile")


def same_session_lines(source: LatencyTable, source_path: str, space, full: LatencyTable, counts: list[int], configs, measured,
                       probe: bool, repeats: int = 5) -> list[str]:
    """The transfer mapping fitted on n of the networks the target's full profile measured, in the same
    session as its held-out subnets (no measuring): what the mapping reaches when the machine's speed
    does not move between fitting and checking; n random networks, ``repeats`` draws, mean figures.
    With ``probe``, the probe blocks' values come from the full profile's rows of those blocks."""
    networks = [r for r in full.networks if r["settled"]]
    probes = [full.blocks[k] for k in probe_blocks(space, full.resolutions)] if probe else []
    scales = probe_scales(source, space, probes) if probe else None
    out = []
    for n in counts:
        scores, chosen_models = [], set()
        for seed in range(repeats):
            picks = np.random.default_rng(seed).choice(len(networks), min(n, len(networks)), replace=False)
            chosen = [networks[i] for i in picks]
            mapping = fit_mapping(source, source_path, space, [r["config"] for r in chosen],
                                  np.array([r["value_ms"] for r in chosen]), seed, scales)
            chosen_models.add(mapping.model)
            scores.append(latency_fidelity(measured, mapping.predict(source, space, configs)))
        mean = {k: float(np.mean([f[k] for f in scores])) for k in ("within_5pct", "within_10pct", "kendall_tau", "mape")}
        what = f"same session, {n} networks" + (f" + {len(probes)} probes" if probe else "")
        out.append(f"  {'':<14} {what:<36} ±5% {mean['within_5pct'] * 100:5.1f}%  "
                   f"±10% {mean['within_10pct'] * 100:5.1f}%  tau {mean['kendall_tau']:.3f}  MAPE {mean['mape'] * 100:5.2f}%  "
                   f"(mapping fitted on the full profile's networks: {', '.join(sorted(chosen_models))}; mean of {repeats} "
                   "draws; nothing measured)")
    return out


def measured_now(space, target, configs: list[dict], batch: int, statistic: str) -> np.ndarray:
    """``configs`` measured on ``target`` now, with its network protocol (as bench_profile measures held-out subnets)."""
    with target:
        best = measure_subnets(target, space, configs, batch, seed=3)
    return np.array([m.value(statistic) for m in best])


def transfer(args, space, target, name: str, full: LatencyTable, full_s: float, configs, measured, fastest, counts: list[int],
             out: Path, lines: list[str]) -> np.ndarray | None:
    """Transfer from --source to ``name`` in steps, adding a fidelity line at each count of ``counts``
    to ``lines``; with --remeasure, the held-out subnets measured again in this session (returned), and
    each step scored against them too."""
    path = out / f"{name}-from-{Path(args.source).stem}.csv"
    steps = []
    print(f"transfer {args.source} -> {name}: up to {max(counts)} networks", flush=True)

    def on_step(result):
        meta = result.table.meta["transfer"]
        n = meta["measured_networks"]
        if n in counts:
            what = f"transfer, {n} networks" + (f" + {meta['measured_blocks']} probes" if meta["measured_blocks"] else "") + \
                f" ({meta['mapping']})"
            steps.append((what, result.table))
            lines.append(fidelity_line(name, what, result.table, path, space, configs, measured, full_s))
            lines.append(fidelity_line(name, "both processes: " + what, result.table, path, space, configs, fastest, full_s))
            print("\n".join(lines[-2:]), flush=True)

    TransferCampaign(space, target, path, [args.source], samples=max(counts), step=math.gcd(*counts),
                     resolutions=full.resolutions, fresh=True,
                     progress=False, log=lambda m: None, on_step=on_step, batch=full.batch, probe=args.probe).run()
    if not args.remeasure:
        return None
    print(f"measuring the {len(configs)} held-out subnets on {name} again, in this session", flush=True)
    now = measured_now(space, target, configs, full.batch, full.statistic)
    lines.append(f"  {'':<14} held-out measured again after the transfer, in its session: now / before "
                 f"{np.median(now / measured):.3f} (median)")
    lines.extend(fidelity_line(name, "this session: " + what, table, path, space, configs, now, full_s) for what, table in steps)
    return now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", default="runs/bench-profile/cpu.csv")
    parser.add_argument("--targets", default="cpu-int8,openvino,openvino-int8", help="the full profiles to transfer to, as "
                        "their file names in --dir without .csv (e.g. openvino-int8-b8); each is measured on the target "
                        "its LUT names (default: %(default)s)")
    parser.add_argument("--dir", default="runs/bench-profile", help="where bench_profile left each target's LUT and held-out file")
    parser.add_argument("--samples", default="5,10,20,30,50", help="networks measured at which the transfer is scored; the "
                        "transfer runs in steps of their greatest common divisor (default: %(default)s)")
    parser.add_argument("--held-out", type=int, default=50)
    parser.add_argument("--fast", default="openvino", help="targets to fast-profile too, comma-separated (default: %(default)s; "
                        "'' for none)")
    parser.add_argument("--out", default="runs/bench-transfer")
    parser.add_argument("--remeasure", action="store_true", help="measure the held-out subnets on each target again "
                        "after its transfer, in the same session, and score the transfer against them too")
    parser.add_argument("--no-probe", dest="probe", action="store_false", help="transfer from whole networks only, "
                        "without probe blocks (as `ofahw profile --from ... --no-probe`)")
    parser.add_argument("--same-session-only", action="store_true", help="print only the same-session lines (the mapping "
                        "fitted on the full profile's own networks), measuring nothing")
    parser.add_argument("--fast-only", action="store_true", help="no transfer: only the fast profiles of the --fast targets")
    args = parser.parse_args()

    folder, out = Path(args.dir), Path(args.out)
    source = LatencyTable.read(args.source)
    space = get_space(source.space_name)
    counts = [int(n) for n in args.samples.split(",")]
    lines = []
    for name in args.targets.split(","):
        full = LatencyTable.read(folder / f"{name}.csv")
        configs, measured, fastest = held_out(folder, name, args.held_out, full.statistic)
        full_s = device_s(full.rows)
        lines.append(f"target {name} ({full.deployment['runtime']} {full.deployment['precision']}, batch {full.batch}): full profile "
                     f"{len(full.rows)} items, device {full_s:.0f} s; held-out {len(configs)} fresh subnets measured on it")
        lines.append(budget_line(full, full_s))
        lines.append(fidelity_line(name, "full profile", full, folder / f"{name}.csv", space, configs, measured, full_s))
        lines.append(fidelity_line(name, "both processes: full profile", full, folder / f"{name}.csv", space, configs, fastest,
                                   full_s))
        if not args.fast_only:
            lines.extend(same_session_lines(source, args.source, space, full, counts, configs, measured, args.probe))
            if args.same_session_only:
                continue
        target = load_target(full.target_name)
        now = None if args.fast_only else transfer(args, space, target, name, full, full_s, configs, measured, fastest, counts,
                                                   out, lines)
        if name in args.fast.split(","):
            path = out / f"{name}-fast.csv"
            print(f"fast profile of {name}", flush=True)
            table = FastCampaign(space, target, path, full.resolutions, samples=fast_networks(full.batch), fresh=True,
                                 progress=False, log=lambda m: None, batch=full.batch).run().table
            what = f"--fast ({table.meta['fast']['measured_blocks']} blocks, {table.meta['fast']['measured_networks']} networks)"
            cv = f"; its predictor's CV MAPE {table.report['candidates'][table.report['chosen']]['mape']:.1%}"
            lines.append(fidelity_line(name, what, table, path, space, configs, measured, full_s) + cv)
            lines.append(fidelity_line(name, "both processes: " + what, table, path, space, configs, fastest, full_s) + cv)
            if now is not None:
                lines.append(fidelity_line(name, "this session: " + what, table, path, space, configs, now, full_s) + cv)
    print()
    print(f"ofahw bench_transfer — source {args.source} ({source.deployment['runtime']} {source.deployment['runtime_version']}, "
          f"{source.precision}, threads {source.device.get('threads')}), space {space.name} at {source.resolutions}; "
          f"held-out statistic {source.statistic}, measured on each target by scripts/bench_profile.py; device time = time in "
          "measurement rounds (warm-up and timed runs)")
    print("\n".join(lines))
    print("anchors:")
    print("\n".join(f"  {a}" for a in ANCHORS))


if __name__ == "__main__":
    main()
