"""What a LUT's numbers are numbers of, and the refusals that keep LUTs of different deployments
(target settings, runtime and version, precision, batch, quantization) from being mixed."""

from __future__ import annotations

import re
from pathlib import Path

from ofahw.errors import LutError, UserError
from ofahw.lut.table import LatencyTable, deployment_differences
from ofahw.measure import Target


def check_target(table: LatencyTable, target: Target, csv_path: Path) -> None:
    """A target whose settings (kind, runtime options, precision) differ from those the LUT was
    measured with measures something else. Refuse, naming the settings."""
    stored = target.completed(table.target_fingerprint)
    now = target.fingerprint()
    if stored == now:
        return
    if stored.get("kind") != now["kind"]:
        what = [f"kind {now['kind']} (LUT: {stored.get('kind')})"]
    else:
        options, theirs = now["options"], stored.get("options", {})
        what = [f"{k} {options.get(k)!r} (LUT: {theirs.get(k)!r})" for k in sorted(set(options) | set(theirs))
                if options.get(k) != theirs.get(k)]
    raise UserError(f"target {target.name}'s settings differ from those {csv_path} was measured with: {', '.join(what)}; "
                    "a settings change is not drift: profile a new LUT for these settings")


def check_runtime(table: LatencyTable, metadata: dict, csv_path: Path) -> None:
    """The runtime an open target reports (``metadata``) must be the one the LUT was measured with,
    version included: a new runtime version is a new LUT, not a drift of the old one."""
    stored = table.device
    what = [f"{k} {metadata.get(k)} (LUT: {stored.get(k)})" for k in ("runtime", "runtime_version")
            if stored.get(k) is not None and metadata.get(k) != stored.get(k)]
    if what:
        raise UserError(f"target {table.target_name} now runs {', '.join(what)}; {csv_path} was measured with another "
                        "runtime: profile a new LUT for it")


def check_mixable(tables: dict[str, LatencyTable]) -> None:
    """LUTs used side by side (one objective each) must be told apart by their labels (target and
    batch); two with one label that differ in anything else would be mixed silently. ``tables``:
    path → table."""
    seen: dict[str, tuple[str, LatencyTable]] = {}
    for path, table in tables.items():
        if table.label in seen:
            other_path, other = seen[table.label]
            differences = deployment_differences(other.deployment, table.deployment)
            raise LutError(f"LUTs {other_path} and {path} both measure target {table.target_name} at batch {table.batch}"
                           + (f" but differ: {', '.join(differences)}; profile each under its own target name"
                              if differences else "; one LUT per device and batch size"))
        seen[table.label] = (path, table)


def batch_path(csv_path: str | Path, batch: int) -> Path:
    """Where ``ofahw profile --batch`` writes the LUT of ``batch`` beside ``csv_path``: the path
    itself for batch 1, else ``STEM-bB.csv`` (a ``-bN`` the stem already has is replaced)."""
    csv_path = Path(csv_path)
    stem = re.sub(r"-b\d+$", "", csv_path.stem)
    return csv_path.with_name(f"{stem}{'' if batch == 1 else f'-b{batch}'}.csv")


def read_for_batch(csv_path: str | Path, batch: int | None) -> tuple[Path, LatencyTable]:
    """The LUT of ``batch`` for the target of ``csv_path``, read once, with its path: the LUT itself
    when it was measured at that batch size (or ``batch`` is None), else its sibling written by
    ``ofahw profile --batch``."""
    csv_path = Path(csv_path)
    if batch is not None and batch < 1:
        raise UserError(f"--batch must be a positive integer, got {batch}")
    table = LatencyTable.read(csv_path)
    if batch is None or table.batch == batch:
        return csv_path, table
    sibling = batch_path(csv_path, batch)
    other = LatencyTable.read(sibling) if sibling.is_file() else None
    if other is None or other.batch != batch:
        raise LutError(f"{csv_path} holds batch {table.batch} and there is no batch-{batch} LUT beside it ({sibling}); "
                       f"profile it with `ofahw profile --target {table.target_name} --batch {batch}`")
    return sibling, other
