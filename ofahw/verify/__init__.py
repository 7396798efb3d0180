"""Measure what a search chose on the real target: predicted vs measured latency of each front
member, the prediction error a user should expect, and the front as measured."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from ofahw._io import atomic_write_text
from ofahw.export import OnnxCache
from ofahw.lut import fidelity
from ofahw.lut.campaign import measure_in_rounds, network_artifact
from ofahw.measure import Target
from ofahw.search.archive import non_dominated
from ofahw.space import Space


def verify_front(space: Space, configs: list[dict], predicted_ms: np.ndarray, accuracy: np.ndarray | None,
                 target: Target, out_csv: Path, progress: bool = True) -> dict:
    """Measure ``configs`` (whole networks, the network protocol of ``target``) and write
    ``out_csv``: predicted and measured latency, their ratio, and membership of the front that
    the measured latencies give (with ``accuracy``, higher is better). Returns the error figures."""
    protocol = target.protocol.for_network()
    cache = OnnxCache()
    with target:
        device = target.metadata()
        measured = measure_in_rounds(target, [network_artifact(space, c, cache) for c in configs], protocol,
                                     progress=progress)
    stat = protocol.statistic
    values = np.array([m.value(stat) for m in measured])
    on_front = np.zeros(len(configs), dtype=bool)
    if accuracy is not None and len(configs):
        index = np.arange(len(configs))[:, None]
        kept, _ = non_dominated(index, np.column_stack([-np.asarray(accuracy), values]))
        on_front[kept[:, 0]] = True
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["config_hash", "predicted_ms", f"measured_{stat}_ms", "predicted_over_measured", "settled",
                     "on_measured_front", "measured_on", "config"])
    for c, p, m, v, f in zip(configs, predicted_ms, measured, values, on_front, strict=True):
        writer.writerow([space.config_hash(c), f"{p:.6g}", f"{v:.6g}", f"{p / v:.4f}", m.settled, bool(f), target.name,
                         json.dumps(c, separators=(",", ":"))])
    atomic_write_text(out_csv, buffer.getvalue())
    report = fidelity(values, predicted_ms)
    report.update({"target": target.name, "statistic": stat, "device": device.get("cpu_model") or device.get("gpu"),
                   "unsettled": int(sum(not m.settled for m in measured)), "measured_front_size": int(on_front.sum()),
                   "file": str(out_csv)})
    return report
