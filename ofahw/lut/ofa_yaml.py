"""OFA's YAML latency tables (``{key: {count, mean, std}}``, as ``ofa.nas.efficiency_predictor``
reads them) to and from ofahw LUTs. Block keys are the same; OFA's reader takes ``mean``."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import yaml

from ofahw._io import atomic_write_text, check_writable
from ofahw.errors import LutError
from ofahw.lut.predictors import group_label
from ofahw.lut.table import COLUMNS, LatencyTable
from ofahw.space import Space, part_cost

_STEM = re.compile(r"(?:Conv|InputStem)-input:(\d+)x\1x3-")


def export_ofa_yaml(table: LatencyTable, out: str | Path) -> int:
    """Write the LUT's block entries in OFA's format. ``mean`` holds the LUT's own statistic (what
    its predictions use); the statistic's name and the other statistics are kept beside it."""
    check_writable(out)
    stat = table.statistic
    entries = {
        key: {"count": row["n"], "mean": row["value_ms"], "std": row["std_ms"], "ofahw_statistic": stat,
              **{s: row[f"{s}_ms"] for s in ("min", "p10", "median") if row.get(f"{s}_ms") is not None}}
        for key, row in sorted(table.blocks.items())
    }
    header = (f"# OFA latency lookup table exported by ofahw from target {table.target_name}"
              f" ({table.space_name}); values in ms; 'mean' holds the {stat} of each block's runs\n")
    atomic_write_text(out, header + yaml.safe_dump(entries, sort_keys=True))
    return len(entries)


def import_ofa_yaml(path: str | Path, space: Space, target_name: str) -> tuple[LatencyTable, int]:
    """An ofahw LUT holding the YAML's entries that belong to ``space``, and the number skipped.

    It has no whole-network samples, so its predictor is the plain block sum, and its report says
    that nothing was held out.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LutError(f"OFA LUT {path} does not exist") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise LutError(f"OFA LUT {path} is not readable YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or not data:
        raise LutError(f"OFA LUT {path} must map block keys to {{count, mean}} entries")
    resolutions = sorted({int(m.group(1)) for k in data if (m := _STEM.match(str(k)))})
    if not resolutions:
        raise LutError(f"OFA LUT {path} has no stem entry ('Conv-input:RxRx3-...'), so its resolutions are unknown")
    resolutions = list(space.validate_resolutions(resolutions))
    where = {}
    for r in resolutions:
        for key in space.catalogue([r]):
            where.setdefault(key, r)
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    rows = []
    for key, entry in data.items():
        if key not in where:
            continue
        try:
            mean = float(entry["mean"])
        except (TypeError, KeyError, ValueError):
            raise LutError(f"OFA LUT {path}: entry '{key}' lacks a numeric 'mean'") from None
        if not mean > 0:
            raise LutError(f"OFA LUT {path}: entry '{key}' has a non-positive mean {mean}")
        flops, params = (v / 1e6 for v in part_cost(space.catalogue([where[key]])[key]))
        row = dict.fromkeys(COLUMNS)
        row.update(kind="block", key=key, resolution=where[key], flops_m=flops, params_m=params,
                   statistic="mean", value_ms=mean, mean_ms=mean, std_ms=_float(entry.get("std")),
                   n=int(entry.get("count") or 0), settled=True, attempts=1, measured_at=now,
                   source=f"imported from OFA LUT {path.name}")
        rows.append(row)
    if not rows:
        raise LutError(f"no entry of OFA LUT {path} belongs to space {space.name}")
    meta = {
        "space": space.name,
        "resolutions": resolutions,
        "statistic": "mean",
        "target": {"name": target_name, "kind": "imported", "source": str(path), "fingerprint": {"kind": "imported"}},
        "device": {"note": f"imported from {path}; device facts unknown"},
        "protocol": None,
        "sentinels": [],
        "predictor": {"model": "calibrated-sum", "coef": [1.0], "intercept": 0.0,
                      "labels": sorted({group_label(p.key) for p in space.catalogue(resolutions).values()})},
        "report": {"method": "none: an imported OFA LUT has no whole-network samples; predictions are the raw block sum",
                   "chosen": "calibrated-sum", "candidates": {}},
        "version": 1,
        "history": [{"version": 1, "event": f"imported from {path}", "at": now}],
    }
    return LatencyTable(rows, meta), len(data) - len(rows)


def _float(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
