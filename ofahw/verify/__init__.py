"""Measure what a search chose on the real target: predicted vs measured latency of each front
member, the prediction error a user should expect, and the front as measured (verify.csv, with its
typed reader)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ofahw._io import atomic_write_text, read_csv_rows
from ofahw.errors import UserError
from ofahw.fidelity import latency_fidelity
from ofahw.measure import Target, measure_subnets
from ofahw.search.archive import non_dominated
from ofahw.space import Space


def verify_front(space: Space, configs: list[dict], predicted_ms: np.ndarray, accuracy: np.ndarray | None,
                 target: Target, out_csv: Path, progress: bool = True, batch: int = 1) -> dict:
    """Measure ``configs`` (whole networks, the network protocol of ``target``) and write
    ``out_csv``: predicted and measured latency, their ratio, and membership of the front that
    the measured latencies give (with ``accuracy``, higher is better), at ``batch`` images a run (the
    LUT's). Returns the error figures."""
    with target:
        device = target.metadata()
        measured = measure_subnets(target, space, configs, batch, progress=progress)
    stat = target.protocol.for_network().statistic
    values = np.array([m.value(stat) for m in measured])
    on_front = np.zeros(len(configs), dtype=bool)
    if accuracy is not None and len(configs):
        index = np.arange(len(configs))[:, None]
        kept, _ = non_dominated(index, np.column_stack([-np.asarray(accuracy), values]))
        on_front[kept[:, 0]] = True
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["config_hash", "predicted_ms", f"measured_{stat}_ms", "predicted_over_measured", "settled",
                     "on_measured_front", "measured_on", "batch", "config"])
    for c, p, m, v, f in zip(configs, predicted_ms, measured, values, on_front, strict=True):
        writer.writerow([space.config_hash(c), f"{p:.6g}", f"{v:.6g}", f"{p / v:.4f}", m.settled, bool(f), target.name, batch,
                         json.dumps(c, separators=(",", ":"))])
    atomic_write_text(out_csv, buffer.getvalue())
    report = latency_fidelity(values, predicted_ms)
    report.update({"target": target.name, "statistic": stat, "device": device.get("cpu_model") or device.get("gpu"),
                   "unsettled": int(sum(not m.settled for m in measured)), "measured_front_size": int(on_front.sum()),
                   "file": str(out_csv)})
    return report


@dataclass(frozen=True)
class Verified:
    """verify.csv read back: per front member (by config hash), what was measured and where."""

    statistic: str
    measured_ms: dict[str, float]
    measured_on: str
    batch: int = 1

    @property
    def label(self) -> str:
        """The latency objective these measurements stand for: the target, and the batch size where not 1."""
        return self.measured_on if self.batch == 1 else f"{self.measured_on}-b{self.batch}"


def read_verify(path: str | Path) -> Verified:
    """verify.csv as :func:`verify_front` writes it; a file that is not one is one clear error."""
    path = Path(path)
    rows = read_csv_rows(path, "verify file")
    column = next((c for c in (rows[0] if rows else {}) if c.startswith("measured_") and c.endswith("_ms")), None)
    if column is None or "config_hash" not in rows[0]:
        raise UserError(f"{path} is not a verify.csv (no config_hash or measured_..._ms column)")
    try:
        measured = {r["config_hash"]: float(r[column]) for r in rows}
        batch = int(rows[0].get("batch") or 1)
    except (TypeError, ValueError):
        raise UserError(f"{path}: column {column} or batch holds a value that is not a number") from None
    return Verified(column.removeprefix("measured_").removesuffix("_ms"), measured, rows[0].get("measured_on", ""), batch)
