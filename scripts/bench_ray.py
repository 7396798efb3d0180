"""Ray on this machine: evaluation throughput with 1 and 2 workers, and a profile through Ray
against the same profile run here without it.

Evaluation: generated images (random pixels: throughput does not depend on them) and a random-init
supernet checkpoint (no OFA weights can be downloaded here), the same subnets evaluated by 1 worker
and by 2 (one CPU and one torch thread each) on a Ray cluster of this machine alone. Printed: wall
time, and throughput once every worker has its first result (worker start-up, which loads torch and
the supernet, excluded; it is printed apart). Goal: >= 1.7x with 2 workers.

Profile: one target profiled here, then through Ray (an actor on this node measures; this process
exports, journals and fits), then here again, each with an empty ONNX cache: wall-time ratio of
Ray to the mean of the two local runs (goal <= 1.2x), and the
median |ratio - 1| of the items' LUT values, Ray against the first local run (goal <= 3%) beside the
second local run against the first (what two runs of the same profile differ by on this machine).

    python3 scripts/bench_ray.py [--subnets 8] [--images 64] [--resolution 160] [--space ofa-mbv3-w1.0]
        [--target cpu] [--profile-resolutions 160] [--samples 20] [--out runs/bench-ray] [--skip-profile]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def make_images(root: Path, n: int, classes: int = 10) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        folder = root / f"n{i % classes:08d}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, size=(256, 320, 3), dtype=np.uint8)).save(folder / f"{i}.jpg")
    return root


def evaluation_run(space, configs, weights, data, out: Path, workers: int) -> dict:
    from ofahw.cluster import evaluate_on_ray

    stamps: list[float] = []
    starts: list[str] = []
    t0 = time.monotonic()

    def log(line: str) -> None:
        if line.startswith("["):
            stamps.append(time.monotonic() - t0)
            starts.append(line)

    shutil.rmtree(out, ignore_errors=True)
    evaluate_on_ray(space, configs, weights, data, data, out, address="local", workers=workers, worker_cpus=1,
                    batch_size=32, log=log)
    wall = time.monotonic() - t0
    steady = (len(stamps) - workers) / (stamps[-1] - stamps[workers - 1]) if len(stamps) > workers else float("nan")
    return {"workers": workers, "wall_s": wall, "first_result_s": stamps[0], "steady_subnets_per_s": steady,
            "subnets_per_s": len(stamps) / wall}


def bench_evaluation(args, work: Path) -> None:
    import ray
    import torch

    from ofahw.evaluate import ImageFolder
    from ofahw.space import get_space

    space = get_space(args.space)
    data = ImageFolder(make_images(work / "images", args.images))
    weights = work / "supernet.pth"
    torch.manual_seed(0)
    torch.save({"state_dict": space._make_supernet().state_dict()}, weights)
    configs = space.sample(args.subnets, np.random.default_rng(0), [args.resolution])
    print(f"evaluation: {args.subnets} subnets of {args.space} at r={args.resolution}, {len(data)} generated images (BatchNorm "
          f"recalibrated on the same images), random-init supernet weights; a Ray cluster of this machine ({args.cpus} CPUs)")
    results = []
    for workers in (1, 2):
        ray.init(num_cpus=args.cpus, include_dashboard=False, logging_level="warning", log_to_driver=False)
        try:
            results.append(evaluation_run(space, configs, weights, data, work / f"eval-{workers}", workers))
        finally:
            ray.shutdown()
        r = results[-1]
        print(f"  {workers} worker{'s' if workers > 1 else ''} (1 CPU, 1 torch thread each): wall {r['wall_s']:.1f} s "
              f"({r['subnets_per_s']:.3f} subnets/s end to end), first result after {r['first_result_s']:.1f} s; "
              f"steady {r['steady_subnets_per_s']:.3f} subnets/s (measured)")
    speedup = results[1]["steady_subnets_per_s"] / results[0]["steady_subnets_per_s"]
    end_to_end = results[1]["subnets_per_s"] / results[0]["subnets_per_s"]
    same = (work / "eval-1" / "accuracy.jsonl").read_text() == (work / "eval-2" / "accuracy.jsonl").read_text()
    print(f"  throughput 2 workers / 1: {speedup:.2f}x steady (goal >= 1.7x: {'met' if speedup >= 1.7 else 'NOT met'}), "
          f"{end_to_end:.2f}x end to end; accuracy.jsonl of both runs identical: {same}")
    (work / "evaluation.json").write_text(json.dumps({"runs": results, "steady_speedup": speedup, "end_to_end_speedup": end_to_end}))


def profile_once(args, out: Path, ray_address: str | None) -> tuple[float, dict]:
    from ofahw.lut.profile import profile_targets
    from ofahw.lut.table import LatencyTable
    from ofahw.measure import load_target
    from ofahw.space import get_space

    space = get_space(args.space)
    targets = [load_target(args.target)]
    if ray_address is not None:
        from ofahw.cluster import place_targets

        targets = place_targets(targets, ray_address)
    for path in (out, out.with_suffix(".json"), out.with_name(out.name + ".journal")):
        path.unlink(missing_ok=True)
    # each run with an empty ONNX cache: all three export every model, as a first profile does
    os.environ["OFAHW_CACHE"] = tempfile.mkdtemp(prefix="ofahw-bench-ray-cache-")
    start = time.monotonic()
    [(_, outcome)] = profile_targets(space, targets, out, [int(r) for r in args.profile_resolutions.split(",")], args.samples,
                                     progress=False, log=lambda m: None)
    if isinstance(outcome, BaseException):
        raise outcome
    wall = time.monotonic() - start
    shutil.rmtree(os.environ.pop("OFAHW_CACHE"), ignore_errors=True)
    table = LatencyTable.read(out)
    return wall, {(r["kind"], r["key"]): r["value_ms"] for r in table.rows}


def bench_profile(args, work: Path) -> None:
    import ray

    print(f"profile: target {args.target}, {args.space} at {args.profile_resolutions}, {args.samples} subnets; here, then "
          "through Ray (an actor on this node measures), then here again")
    here_wall, here = profile_once(args, work / "here.csv", None)
    ray.init(num_cpus=args.cpus, include_dashboard=False, logging_level="warning", log_to_driver=False)
    try:
        ray_wall, via_ray = profile_once(args, work / "ray.csv", "auto")
    finally:
        ray.shutdown()
    again_wall, again = profile_once(args, work / "again.csv", None)
    keys = sorted(here)

    def median_dev(other):
        return float(np.median([abs(other[k] / here[k] - 1) for k in keys]))

    ratio = ray_wall / (0.5 * (here_wall + again_wall))
    dev, floor = median_dev(via_ray), median_dev(again)
    print(f"  wall time: here {here_wall:.0f} s, through Ray {ray_wall:.0f} s, here again {again_wall:.0f} s (measured, each "
          f"exporting every model into an empty ONNX cache); Ray / mean of the two here {ratio:.2f}x "
          f"(goal <= 1.2x: {'met' if ratio <= 1.2 else 'NOT met'})")
    print(f"  items ({len(keys)}): median |Ray / here - 1| {100 * dev:.2f}% (goal <= 3%: {'met' if dev <= 0.03 else 'NOT met'}); "
          f"median |here again / here - 1| {100 * floor:.2f}% (two local runs: this machine's run-to-run spread)")
    (work / "profile.json").write_text(json.dumps({"wall_s": {"here": here_wall, "ray": ray_wall, "again": again_wall},
                                                   "median_abs_dev": {"ray": dev, "again": floor}}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", default="ofa-mbv3-w1.0")
    parser.add_argument("--subnets", type=int, default=8)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--resolution", type=int, default=160)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the Ray cluster of this machine")
    parser.add_argument("--target", default="cpu")
    parser.add_argument("--profile-resolutions", default="160")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--skip-profile", action="store_true")
    parser.add_argument("--skip-evaluation", action="store_true")
    parser.add_argument("--out", default="runs/bench-ray")
    args = parser.parse_args()
    work = Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    if not args.skip_evaluation:
        bench_evaluation(args, work)
    if not args.skip_profile:
        bench_profile(args, work)


if __name__ == "__main__":
    main()
