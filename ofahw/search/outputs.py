"""The files of ``runs/<name>/``: pareto.csv, summary.json, pareto.png, hypervolume.png."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from ofahw._io import atomic_write_bytes, atomic_write_text, strict_json
from ofahw.search.problem import SubnetProblem
from ofahw.search.run import SearchResult, SearchSettings


def write_run(out: Path, problem: SubnetProblem, settings: SearchSettings, result: SearchResult, extra: dict | None = None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    space = problem.space
    configs = [space.decode(x) for x in result.X]
    names = [o.name for o in problem.objectives]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["rank", "config_hash", *names, *(f"{n}_source" for n in names), "config"])
    for i, (config, values) in enumerate(zip(configs, result.values, strict=True)):
        writer.writerow([i, space.config_hash(config), *(f"{v:.6g}" for v in values),
                         *(o.source for o in problem.objectives), json.dumps(config, separators=(",", ":"))])
    atomic_write_text(out / "pareto.csv", buffer.getvalue())
    summary = {
        "algorithm": settings.algorithm, "seed": settings.seed, "space": space.name, "resolutions": list(space.resolutions),
        "budget": {"pop_size": settings.pop_size, "generations": settings.generations, "evaluations": result.n_evals},
        "settings": vars(settings),
        "objectives": [{"name": o.name, "source": o.source, "sense": "max" if o.maximise else "min"} for o in problem.objectives],
        "constraints": [vars(c) for _, c in problem.constraints],
        "hypervolume": result.hypervolume,
        "reference_point": result.reference_point.tolist(),
        "hypervolume_note": "of the minimised objectives (accuracy negated), raw units, up to reference_point",
        "n_nondominated": int(len(result.X)),
        "timings": {"wall_s": result.wall_s, "per_generation_ms": 1e3 * result.wall_s / max(settings.generations, 1)},
        "resumed_from_generation": result.resumed_from,
        "history": result.history,
        **(extra or {}),
    }
    atomic_write_text(out / "summary.json", strict_json(summary, indent=1) + "\n")
    _plots(out, problem, result)
    return summary


def _plots(out: Path, problem: SubnetProblem, result: SearchResult) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    objectives = problem.objectives
    acc = next((i for i, o in enumerate(objectives) if o.maximise), 0)
    other = next((i for i in range(len(objectives)) if i != acc), None)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    if other is not None and len(result.values):
        order = np.argsort(result.values[:, other])
        ax.plot(result.values[order, other], result.values[order, acc], "o-", ms=3)
        ax.set_xlabel(f"{objectives[other].name}")
        ax.set_ylabel(objectives[acc].name)
    ax.set_title(f"front: {len(result.X)} subnets, hypervolume {result.hypervolume:.4g}", fontsize=9)
    fig.text(0.01, 0.01, objectives[other].source if other is not None else "", fontsize=5)
    _save(fig, out / "pareto.png")
    fig, ax = plt.subplots(figsize=(6, 4))
    if result.history:
        ax.plot([h["n_eval"] for h in result.history], [h["hypervolume"] for h in result.history])
    ax.set_xlabel("evaluations")
    ax.set_ylabel("hypervolume")
    _save(fig, out / "hypervolume.png")


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
