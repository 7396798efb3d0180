"""Ensembles run for real on a target: each member alone, then each chosen ensemble as one group
(serially, or concurrently in threads), so the latency model's error is a measured figure."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from ofahw._io import atomic_write_text
from ofahw.export import OnnxCache
from ofahw.lut import fidelity
from ofahw.lut.campaign import measure_in_rounds, network_artifact
from ofahw.measure import Target
from ofahw.space import Space


def verify_ensembles(space: Space, member_configs: dict[str, dict], ensembles: list[list[str]], modelled_ms: np.ndarray,
                     mode: str, target: Target, out_csv: Path) -> dict:
    """Measure every member of ``ensembles`` alone and every ensemble as a group on ``target``
    (its network protocol, best settled of its rounds); write ``out_csv``; return the errors of
    the search's model (``modelled_ms``) and of the max / sum of the members measured alone."""
    protocol = target.protocol.for_network()
    stat = protocol.statistic
    cache = OnnxCache()
    used = sorted({m for e in ensembles for m in e})
    artifacts = {m: network_artifact(space, member_configs[m], cache) for m in used}
    with target:
        alone = dict(zip(used, measure_in_rounds(target, [artifacts[m] for m in used], protocol), strict=True))
        groups = []
        for members in ensembles:
            best = None
            for _ in range(protocol.rounds):
                m = target.measure_group([artifacts[k] for k in members], mode, protocol)
                if best is None or (m.settled, -m.value(stat)) > (best.settled, -best.value(stat)):
                    best = m
            groups.append(best)
    combine = max if mode == "parallel" else sum
    from_members = np.array([combine(alone[k].value(stat) for k in e) for e in ensembles])
    measured = np.array([g.value(stat) for g in groups])
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["members", "n_members", "modelled_ms", f"members_alone_{mode}_ms", f"measured_{stat}_ms",
                     "modelled_over_measured", "settled", "measured_on"])
    for e, model, mem, meas, g in zip(ensembles, modelled_ms, from_members, measured, groups, strict=True):
        writer.writerow(["+".join(e), len(e), f"{model:.6g}", f"{mem:.6g}", f"{meas:.6g}", f"{model / meas:.4f}", g.settled,
                         target.name])
    atomic_write_text(out_csv, buffer.getvalue())
    return {"target": target.name, "mode": mode, "statistic": stat, "n": len(ensembles), "file": str(out_csv),
            "search_model": fidelity(measured, modelled_ms), "members_alone_model": fidelity(measured, from_members)}
