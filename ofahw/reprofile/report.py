"""``ofahw report``: the drift history of a LUT as a plot (median new/stored ratio of each check, the
checks too unsteady or contended to judge, the noise threshold, and the versions it went through)."""

from __future__ import annotations

import json
from pathlib import Path

from ofahw.errors import UserError
from ofahw.plots import pyplot, save_figure
from ofahw.reprofile.drift import CONTENTION, UNSTEADY
from ofahw.reprofile.run import history_dir


def drift_report(csv_path: str | Path, out_png: str | Path) -> dict:
    csv_path = Path(csv_path)
    checks_file = history_dir(csv_path) / "checks.jsonl"
    if not checks_file.exists():
        raise UserError(f"{csv_path} has no checks yet (run `ofahw reprofile --lut {csv_path} --target ...`)")
    checks = [json.loads(line) for line in checks_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    x = range(1, len(checks) + 1)
    ax.plot(x, [c["median_ratio"] for c in checks], "o-", label="median new / stored (sentinels, measured)")
    ax.fill_between(x, [1 - c["threshold"] for c in checks], [1 + c["threshold"] for c in checks], alpha=0.2,
                    label="noise threshold")
    for verdict, marker, label in ((UNSTEADY, "x", "unsteady: nothing judged"),
                                   (CONTENTION, "+", "contention (device shared): nothing judged")):
        apart = [(i, c["median_ratio"]) for i, c in enumerate(checks, 1) if c["verdict"] == verdict]
        if apart:
            ax.plot(*zip(*apart, strict=True), marker, color="grey", markersize=9, label=label)
    for i, c in enumerate(checks, 1):
        if c.get("action"):
            ax.annotate(f"v{c['action']['version']}", (i, c["median_ratio"]), textcoords="offset points", xytext=(0, 6))
    ax.set_xlabel("check")
    ax.set_ylabel("latency ratio")
    ax.set_title(f"{csv_path.name}: {len(checks)} checks on target {checks[-1]['target']}", fontsize=9)
    ax.legend(fontsize=7)
    save_figure(fig, Path(out_png))
    verdicts = [c["verdict"] for c in checks]
    return {"checks": len(checks), "verdicts": {v: verdicts.count(v) for v in sorted(set(verdicts))}, "plot": str(out_png)}
