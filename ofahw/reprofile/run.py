"""``ofahw reprofile``: re-measure a LUT's sentinels on its target, record the check, and on drift
write a new version of the LUT — rescaled (uniform drift) or re-profiled reusing the blocks that still
agree (uneven drift); the old version is kept in the history folder."""

from __future__ import annotations

import copy
import datetime as dt
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ofahw._io import strict_json, writer_lock
from ofahw.errors import LutError, UserError
from ofahw.export import OnnxCache, network_artifact, part_artifact
from ofahw.lut import LatencyTable, check_runtime, check_target, json_path
from ofahw.lut.campaign import Campaign
from ofahw.lut.predictors import MODELS, fit_predictor
from ofahw.measure import Target, measure_in_rounds
from ofahw.reprofile.drift import (
    NON_UNIFORM,
    OK,
    UNIFORM,
    DriftVerdict,
    judge,
    noise_threshold,
    steady_limit,
    stored_tail,
    tail_limit,
)
from ofahw.space import get_space

SCALED = ("value_ms", "min_ms", "p10_ms", "median_ms", "mean_ms", "std_ms", "p90_ms", "p99_ms")


def history_dir(csv_path: Path) -> Path:
    return csv_path.with_name(csv_path.stem + ".history")


def lut_lock(csv_path: Path):
    """One writer of a LUT at a time: a reprofile while another runs, or while a campaign profiles into
    the same LUT, is refused, not queued."""
    if not csv_path.is_file():
        raise LutError(f"LUT {csv_path} does not exist")
    return writer_lock(csv_path, "ofahw reprofile")


def reprofile(csv_path: str | Path, target: Target, seed: int = 0, confirm_after_s: float = 60.0, act: bool = True,
              progress: bool = False) -> dict:
    """Check ``csv_path`` against ``target`` now; returns the record written to the history. With
    ``act``, a uniform drift rescales the LUT and an uneven one re-profiles it (reusing the blocks
    that still agree), each as a new version.

    A check that sees drift looks again after ``confirm_after_s`` and acts on the second look only
    if it agrees: a shared machine has slow spells of tens of seconds (seen here: +40% for ~30 s)
    that are not the drift a LUT should follow."""
    csv_path = Path(csv_path)
    with lut_lock(csv_path):
        table = LatencyTable.read(csv_path)
        check_target(table, target, csv_path)
        target = _keeping_rounds_as(target, table)
        space = get_space(table.space_name)
        rows = {r["key"]: r for r in table.networks}
        sentinels = [rows[k] for k in table.sentinels if k in rows]
        if len(sentinels) < 3:
            raise LutError(f"LUT {csv_path} has {len(sentinels)} sentinel subnets; re-profile it to get a sentinel set")
        stat = table.statistic
        stored = np.array([r["value_ms"] for r in sentinels])
        threshold, limit, tails_limit, tail_now = noise_threshold(table), steady_limit(table), tail_limit(table), stored_tail(table)
        artifacts = [network_artifact(space, r["config"], OnnxCache(), table.batch) for r in sentinels]
        with target:
            check_runtime(table, target.metadata(), csv_path)
            def look(k: int) -> tuple[list, DriftVerdict]:
                measured = measure_in_rounds(target, artifacts, target.protocol.for_network(), seed=seed + k)
                return measured, judge(stored, [m.value(stat) for m in measured], threshold,
                                       [m.round_spread for m in measured], limit,
                                       [m.p90 / m.p10 - 1.0 for m in measured], tails_limit, tail_now)

            measured, verdict = look(0)
            first = None
            if verdict.verdict != OK and confirm_after_s is not None:
                first = verdict.to_dict()
                time.sleep(confirm_after_s)
                measured, verdict = look(1)
        new = [m.value(stat) for m in measured]
        record = {"at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "target": target.name,
                  **target.where_measured(), "lut_version": table.version, **verdict.to_dict(), "statistic": stat,
                  "first_look": first,
                  "sentinels": {r["key"]: [float(s), float(n)] for r, s, n in zip(sentinels, stored, new, strict=True)},
                  "unsettled": int(sum(not m.settled for m in measured))}
        if verdict.verdict == UNIFORM and act:
            record["action"] = _rescale(csv_path, table, space, verdict.median_ratio, record["at"])
        elif verdict.verdict == NON_UNIFORM and act:
            record["action"] = reprofile_uneven(csv_path, table, space, target, seed, record["at"], progress)
        history = history_dir(csv_path)
        history.mkdir(exist_ok=True)
        with open(history / "checks.jsonl", "a", encoding="utf-8") as fh:
            fh.write(strict_json(record) + "\n")
        return record


def _keeping_rounds_as(target: Target, table: LatencyTable) -> Target:
    """``target`` keeping the round the rule ``table`` was measured with keeps: a LUT measured under
    another rule (an earlier default) is checked and re-profiled by its own, as a LUT never mixes rules."""
    if target.protocol.round_rule == table.round_rule:
        return target
    same = copy.copy(target)
    same.protocol = replace(target.protocol, round_rule=table.round_rule)
    return same


def _keep_version(csv_path: Path, table: LatencyTable) -> int:
    """Copy the LUT's current version into the history folder; return its number."""
    version = table.version
    history = history_dir(csv_path)
    history.mkdir(exist_ok=True)
    shutil.copy2(csv_path, history / f"v{version}.csv")
    shutil.copy2(json_path(csv_path), history / f"v{version}.json")
    return version


def _write_version(csv_path: Path, table: LatencyTable, history: list[dict], event: dict) -> dict:
    table.add_version(event, history)
    table.write(csv_path)
    return event


def _scaled(row: dict, scale: float) -> dict:
    return {**row, **{c: float(row[c]) * scale for c in SCALED if row.get(c) is not None}}


def _rescale(csv_path: Path, table: LatencyTable, space, scale: float, at: str) -> dict:
    """Keep the current version in the history folder, then write the LUT scaled by ``scale`` with
    its predictor refitted, as the next version."""
    version = _keep_version(csv_path, table)
    table.rows = [_scaled(row, scale) for row in table.rows]
    report = table.report  # the candidates it was chosen among (a probed transfer: the calibrated sum alone)
    table.set_predictor(fit_predictor(table, space, models=tuple(report.get("candidates", MODELS)), why=report.get("candidates_why")))
    event = {"version": version + 1, "event": "recalibrated", "scale": scale, "at": at}
    return _write_version(csv_path, table, table.history, event)


def reprofile_uneven(csv_path: Path, table: LatencyTable, space, target: Target, seed: int, at: str,
                      progress: bool) -> dict:
    """After uneven drift: measure every block once; keep those that moved with the median block
    (within the spread of their own rounds), rescaled by it; re-profile the others and every
    network (the predictor's ground truth), refit, and write the result as the next version.

    The work LUT and its journal live in the history folder, so an interrupted run resumes there."""
    start = time.monotonic()
    stat, threshold = table.statistic, noise_threshold(table, kind="block")
    parts = space.block_parts(table.resolutions)
    blocks = list(table.blocks.values())
    cache = OnnxCache()
    with target:
        quick = measure_in_rounds(target, [part_artifact(parts[b["key"]][1], cache, table.batch) for b in blocks],
                                  replace(target.protocol, rounds=1), seed=seed)
    ratios = np.array([m.value(stat) / b["value_ms"] for m, b in zip(quick, blocks, strict=True)])
    common = float(np.median(ratios))  # the machine's overall move, which the kept blocks follow
    kept = [_scaled(b, common) for b, r in zip(blocks, ratios, strict=True) if abs(r / common - 1.0) <= threshold]
    version = table.version
    work = history_dir(csv_path) / f"reprofile-v{version + 1}.csv"
    work.parent.mkdir(exist_ok=True)
    LatencyTable(kept, dict(table.meta)).write(work)
    result = Campaign(space, target, work, table.resolutions, samples=len(table.networks), seed=seed,
                      cache=cache, progress=progress, log=lambda m: None, batch=table.batch,
                      energy=(target.energy or {}) if table.has_energy else None).run()
    _keep_version(csv_path, table)
    event = {"version": version + 1, "event": "re-profiled", "at": at, "kept_blocks": len(kept), "kept_scale": common,
             "remeasured_blocks": len(blocks) - len(kept), "networks": len(result.table.networks),
             "block_threshold": threshold, "wall_s": round(time.monotonic() - start, 1)}
    _write_version(csv_path, result.table, table.history, event)
    work.unlink()
    json_path(work).unlink()
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
        now = _keep_version(csv_path, current)
        event = {"version": now + 1, "event": f"restored version {version}",
                 "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        return _write_version(csv_path, LatencyTable.read(old_csv), current.history, event)
