"""The files of ``runs/<name>/``: pareto.csv and summary.json (each with its typed reader), pareto.png,
hypervolume.png."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ofahw._io import atomic_write_text, read_csv_rows, strict_json
from ofahw.errors import UserError
from ofahw.plots import pyplot, save_figure
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
        "objectives": [{"name": o.name, "source": o.source, "sense": "max" if o.maximise else "min",
                        **({"batch": o.batch} if o.batch is not None else {})} for o in problem.objectives],
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
    plt = pyplot()
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
    save_figure(fig, out / "pareto.png")
    fig, ax = plt.subplots(figsize=(6, 4))
    if result.history:
        ax.plot([h["n_eval"] for h in result.history], [h["hypervolume"] for h in result.history])
    ax.set_xlabel("evaluations")
    ax.set_ylabel("hypervolume")
    save_figure(fig, out / "hypervolume.png")


@dataclass(frozen=True)
class FrontMember:
    """One row of pareto.csv: the subnet and its objective values with how each was obtained."""

    config_hash: str
    config: dict
    values: dict[str, float]  # objective name (top1, latency_ms@TARGET, flops_m, ...) → value
    sources: dict[str, str]  # objective name → provenance


@dataclass(frozen=True)
class Front:
    """A search's pareto.csv, read back."""

    path: Path
    members: list[FrontMember]

    @property
    def hashes(self) -> list[str]:
        return [m.config_hash for m in self.members]

    def latency_columns(self) -> list[str]:
        return [n for n in (self.members[0].values if self.members else {}) if n.startswith("latency_ms@")]

    def energy_columns(self) -> list[str]:
        return [n for n in (self.members[0].values if self.members else {}) if n.startswith("energy_mj@")]

    def column(self, name: str) -> np.ndarray:
        return np.array([m.values[name] for m in self.members])


def read_front(path: str | Path) -> Front:
    """pareto.csv as :func:`write_run` writes it; a file that is not one is one clear error."""
    path = Path(path)
    rows = read_csv_rows(path, "front")
    if not rows or "config_hash" not in rows[0]:
        raise UserError(f"{path} is not a search's pareto.csv (no rows, or no config_hash column)")
    names = [c for c in rows[0] if c not in ("rank", "config_hash", "config") and not c.endswith("_source")]
    members = []
    for i, row in enumerate(rows, 1):
        try:
            config = json.loads(row["config"]) if row.get("config") else {}
            values = {n: float(row[n]) for n in names}
        except (TypeError, ValueError):
            raise UserError(f"{path}: row {i} holds a config that is not JSON or a value that is not a number") from None
        members.append(FrontMember(row["config_hash"], config, values, {n: row.get(f"{n}_source", "") for n in names}))
    return Front(path, members)


@dataclass(frozen=True)
class RunSummary:
    """The fields of a run's summary.json that later stages read."""

    space: str
    resolutions: list[int]
    objectives: list[dict]

    def batch_of(self, column: str) -> int:
        """Images per run of a latency or energy column (1 where the summary does not record it)."""
        return int(next((o.get("batch", 1) for o in self.objectives if o.get("name") == column), 1))


def read_summary(path: str | Path) -> RunSummary:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return RunSummary(str(data["space"]), list(data.get("resolutions", [])), list(data.get("objectives", [])))
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"{path} is not a search's summary.json") from None
