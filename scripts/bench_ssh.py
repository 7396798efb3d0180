"""Benchmark of the SSH target: the same subnets profiled locally and over loopback SSH (a real
OpenSSH server on 127.0.0.1, the remote runner on the far side), one after the other.

Prints the wall-time ratio SSH / local (goal <= 1.2x) and how well the two measurements of each item
agree (goal: median |ratio - 1| within 3%). Needs root and openssh-server (sshd).

    python3 scripts/bench_ssh.py [--space ofa-mbv3-w1.0] [--resolutions 160] [--samples 20]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from ofahw.lut.campaign import Campaign
from ofahw.measure import load_target
from ofahw.space import get_space
from ofahw.testing import loopback_sshd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--space", default="ofa-mbv3-w1.0")
    parser.add_argument("--resolutions", default="160")
    parser.add_argument("--samples", type=int, default=20)
    args = parser.parse_args()
    why = loopback_sshd.available()
    if why:
        sys.exit(f"bench_ssh: {why}")
    space = get_space(args.space)
    resolutions = [int(r) for r in args.resolutions.split(",")]
    root = Path(tempfile.mkdtemp(prefix="ofahw-bench-ssh-"))
    server = loopback_sshd.start(root / "sshd")
    try:
        local = load_target("cpu")
        data = yaml.safe_load(server.target_yaml(workdir=str(root / "remote"), python=sys.executable))
        data["protocol"] = local.protocol.to_dict()
        (root / "loopback.yaml").write_text(yaml.safe_dump({"name": "loopback", **data}))
        remote = load_target(str(root / "loopback.yaml"))
        walls, tables = {}, {}
        for target in (local, remote):
            t0 = time.monotonic()
            result = Campaign(space, target, root / f"{target.name}.csv", resolutions, args.samples, seed=0).run()
            walls[target.name], tables[target.name] = time.monotonic() - t0, result.table
        a, b = tables["cpu"], tables["loopback"]
        keys = sorted({r["key"] for r in a.rows} & {r["key"] for r in b.rows})
        va = {r["key"]: r["value_ms"] for r in a.rows}
        vb = {r["key"]: r["value_ms"] for r in b.rows}
        ratio = np.array([vb[k] / va[k] for k in keys])
        nets = np.array([vb[r["key"]] / va[r["key"]] for r in a.networks])
        print(f"\nofahw bench_ssh — {space.name} at {resolutions}, {len(a.blocks)} blocks + {len(a.networks)} networks, "
              f"protocol {local.protocol.rounds}/{local.protocol.network_rounds} rounds, statistic {a.statistic}; "
              f"target cpu (local onnxruntime) vs target loopback (ssh to 127.0.0.1, remote runner, onnxruntime)")
        print(f"wall time: local {walls['cpu']:.0f} s, over SSH {walls['loopback']:.0f} s, ratio {walls['loopback'] / walls['cpu']:.2f}x "
              "(goal <= 1.2x)")
        print(f"agreement of the {len(keys)} items measured both ways: median |ssh/local - 1| {np.median(np.abs(ratio - 1)) * 100:.2f}% "
              f"(goal <= 3%), median ratio {np.median(ratio):.3f}; whole networks only: median |ratio - 1| "
              f"{np.median(np.abs(nets - 1)) * 100:.2f}%")
    finally:
        server.process.terminate()


if __name__ == "__main__":
    main()
