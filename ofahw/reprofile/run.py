"""``ofahw reprofile``: re-measure a LUT's sentinels on its target, record the check, and on a
uniform drift rescale the LUT as a new version (the old one kept in the history folder)."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import shutil
import time
from pathlib import Path

import numpy as np

from ofahw.errors import LutError, UserError
from ofahw.export import OnnxCache
from ofahw.lut import LatencyTable, json_path
from ofahw.lut.campaign import measure_in_rounds, network_artifact
from ofahw.lut.predictors import fit_predictor
from ofahw.measure import Target
from ofahw.reprofile.drift import OK, UNIFORM, judge, noise_threshold
from ofahw.space import get_space

SCALED = ("value_ms", "min_ms", "p10_ms", "median_ms", "mean_ms", "std_ms", "p90_ms", "p99_ms")


def history_dir(csv_path: Path) -> Path:
    return csv_path.with_name(csv_path.stem + ".history")


@contextlib.contextmanager
def lut_lock(csv_path: Path):
    """One reprofile of a LUT at a time: a second one is refused, not queued."""
    if not csv_path.is_file():
        raise LutError(f"LUT {csv_path} does not exist")
    lock = csv_path.with_name(csv_path.name + ".lock")
    try:
        fh = open(lock, "w")
    except OSError as exc:
        raise UserError(f"cannot create the lock {lock}: {exc.strerror}") from None
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"another reprofile of {csv_path} is running (lock {lock})") from None
        yield


def reprofile(csv_path: str | Path, target: Target, seed: int = 0, confirm_after_s: float = 60.0) -> dict:
    """Check ``csv_path`` against ``target`` now; returns the record written to the history.

    A check that sees drift looks again after ``confirm_after_s`` and acts on the second look only
    if it agrees: a shared machine has slow spells of tens of seconds (seen here: +40% for ~30 s)
    that are not the drift a LUT should follow."""
    csv_path = Path(csv_path)
    with lut_lock(csv_path):
        table = LatencyTable.read(csv_path)
        space = get_space(table.meta["space"])
        rows = {r["key"]: r for r in table.networks}
        sentinels = [rows[k] for k in table.meta.get("sentinels", []) if k in rows]
        if len(sentinels) < 3:
            raise LutError(f"LUT {csv_path} has {len(sentinels)} sentinel subnets; re-profile it to get a sentinel set")
        stat = table.statistic
        stored = np.array([r["value_ms"] for r in sentinels])
        threshold = noise_threshold(table)
        artifacts = [network_artifact(space, r["config"], OnnxCache()) for r in sentinels]
        with target:
            measure = lambda k: measure_in_rounds(target, artifacts, target.protocol.for_network(), seed=seed + k)  # noqa: E731
            measured = measure(0)
            verdict = judge(stored, [m.value(stat) for m in measured], threshold)
            first = None
            if verdict.verdict != OK and confirm_after_s is not None:
                first = verdict.to_dict()
                time.sleep(confirm_after_s)
                measured = measure(1)
                verdict = judge(stored, [m.value(stat) for m in measured], threshold)
        new = [m.value(stat) for m in measured]
        record = {"at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "target": target.name,
                  "lut_version": table.meta.get("version", 1), **verdict.to_dict(), "statistic": stat,
                  "first_look": first,
                  "sentinels": {r["key"]: [float(s), float(n)] for r, s, n in zip(sentinels, stored, new, strict=True)},
                  "unsettled": int(sum(not m.settled for m in measured))}
        if verdict.verdict == UNIFORM:
            record["action"] = _rescale(csv_path, table, space, verdict.median_ratio, record["at"])
        history = history_dir(csv_path)
        history.mkdir(exist_ok=True)
        with open(history / "checks.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        return record


def _rescale(csv_path: Path, table: LatencyTable, space, scale: float, at: str) -> dict:
    """Keep the current version in the history folder, then write the LUT scaled by ``scale`` with
    its predictor refitted, as the next version."""
    version = int(table.meta.get("version", 1))
    history = history_dir(csv_path)
    history.mkdir(exist_ok=True)
    shutil.copy2(csv_path, history / f"v{version}.csv")
    shutil.copy2(json_path(csv_path), history / f"v{version}.json")
    for row in table.rows:
        for column in SCALED:
            if row.get(column) is not None:
                row[column] = float(row[column]) * scale
    table.meta["predictor"], table.meta["report"] = fit_predictor(table, space)
    table.meta["version"] = version + 1
    event = {"version": version + 1, "event": "recalibrated", "scale": scale, "at": at}
    table.meta.setdefault("history", []).append(event)
    table.write(csv_path)
    return event


def restore(csv_path: str | Path, version: int) -> dict:
    """Put an older version back as the LUT (the current one is kept too)."""
    csv_path = Path(csv_path)
    history = history_dir(csv_path)
    old_csv, old_json = history / f"v{version}.csv", history / f"v{version}.json"
    if not old_csv.exists() or not old_json.exists():
        kept = sorted(p.stem for p in history.glob("v*.csv")) if history.exists() else []
        raise UserError(f"no version {version} of {csv_path} is kept (kept: {', '.join(kept) or 'none'})")
    with lut_lock(csv_path):
        current = LatencyTable.read(csv_path)
        now = int(current.meta.get("version", 1))
        shutil.copy2(csv_path, history / f"v{now}.csv")
        shutil.copy2(json_path(csv_path), history / f"v{now}.json")
        table = LatencyTable.read(old_csv)
        table.meta["version"] = now + 1
        event = {"version": now + 1, "event": f"restored version {version}",
                 "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        table.meta.setdefault("history", []).append(event)
        table.write(csv_path)
    return event
