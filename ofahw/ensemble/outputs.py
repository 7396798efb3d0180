"""The files of an ensemble run: ensembles.csv (with its typed reader), summary.json, ensembles.png."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ofahw._io import atomic_write_text, read_csv_rows, strict_json
from ofahw.ensemble.run import EnsembleResult
from ofahw.ensemble.selection import EnsembleProblem
from ofahw.errors import UserError
from ofahw.plots import pyplot, save_figure


def write_ensembles(out: Path, problem: EnsembleProblem, result: EnsembleResult, members: list[str], latency_source: str,
                    accuracy_source: str, settings: dict, extra: dict | None = None, energy_source: str | None = None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    energy = problem.member_mj is not None
    names = (["top1_error"] + (["top5_error"] if problem.top5 else []) + [f"latency_ms_{problem.mode}"]
             + (["energy_mj_sum"] if energy else []))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["rank", "n_members", "members", *names, "accuracy_source", "latency_source",
                     *(["energy_source"] if energy else [])])
    for i, (x, f) in enumerate(zip(result.X, result.F, strict=True)):
        chosen = [members[j] for j in np.flatnonzero(x)]
        writer.writerow([i, len(chosen), "+".join(chosen), *(f"{v:.10g}" for v in f), accuracy_source,
                         f"{problem.mode} model ({'max' if problem.mode == 'parallel' else 'sum'}) over {latency_source}",
                         *([f"sum over {energy_source}"] if energy else [])])
    atomic_write_text(out / "ensembles.csv", buffer.getvalue())
    summary = {**settings, "mode": problem.mode, "members": members, "objectives": names,
               "hypervolume": result.hypervolume, "singles_hypervolume": result.singles_hypervolume,
               "reference_point": result.reference_point.tolist(), "n_nondominated": int(len(result.X)),
               "scores": "exact: every error written was recomputed from the full probability tables",
               "rescored": result.rescored, "search_estimate_off": result.estimate_off,
               "worst_unsure_share": result.worst_unsure,
               "unsure_note": "during the search only (it scores ensembles among each sample's candidate classes): the "
                              "largest share of samples whose winner was not decided among them; the search's estimate "
                              "differed from the exact error for search_estimate_off of the rescored ensembles",
               "timings": {"wall_s": result.wall_s, "rescore_s": result.rescore_s},
               "latency_source": latency_source, "accuracy_source": accuracy_source, "energy_source": energy_source,
               **(extra or {})}
    atomic_write_text(out / "summary.json", strict_json(summary, indent=1) + "\n")
    _plot(out, problem, result)
    return summary


def _plot(out: Path, problem: EnsembleProblem, result: EnsembleResult) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for F, label, style in ((result.singles_F, "single subnets", "s--"), (result.F, "ensembles", "o-")):
        if len(F):
            latency = F[:, problem.n_errors]
            order = np.argsort(latency)
            ax.plot(latency[order], 100 * (1 - F[order, 0]), style, ms=3, label=label)
    ax.set_xlabel(f"latency (ms, {problem.mode} model)")
    ax.set_ylabel("top-1 (%)")
    ax.legend()
    save_figure(fig, out / "ensembles.png")


@dataclass(frozen=True)
class EnsembleRow:
    """One ensemble of ensembles.csv: its members (config hashes) and its objective values."""

    members: list[str]
    values: dict[str, float]  # top1_error, top5_error (with --top5), latency_ms_<mode>, energy_mj_sum (with --energy)
    accuracy_source: str
    latency_source: str


def read_ensembles(path: str | Path) -> list[EnsembleRow]:
    """ensembles.csv as :func:`write_ensembles` writes it."""
    path = Path(path)
    rows = read_csv_rows(path, "ensembles file")
    try:
        fixed = {"rank", "n_members", "members", "accuracy_source", "latency_source", "energy_source"}
        return [EnsembleRow(r["members"].split("+"), {k: float(v) for k, v in r.items() if k not in fixed},
                            r["accuracy_source"], r["latency_source"]) for r in rows]
    except (KeyError, TypeError, ValueError, AttributeError):
        raise UserError(f"{path} is not an ensembles.csv of `ofahw ensemble`") from None
