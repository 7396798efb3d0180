"""``ofahw pick``: the best member of a search's front under constraints, or the best per limit,
with every objective and how it was obtained. Latencies measured by ``--verify`` (verify.csv beside
the front) win over predicted ones."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ofahw.errors import ConfigError, UserError
from ofahw.search.objectives import Constraint, column_named, constraint_on
from ofahw.search.outputs import Front, FrontMember, read_front


@dataclass(frozen=True)
class Pick:
    """One chosen member: its rank in pareto.csv, config, and every objective's value and source."""

    rank: int
    member: FrontMember
    values: dict[str, float]
    sources: dict[str, str]
    limit: float | None = None  # the --limits value it was chosen under

    def to_dict(self) -> dict:
        return {"rank": self.rank, "config_hash": self.member.config_hash, "config": self.member.config, "limit": self.limit,
                "objectives": {n: {"value": v, "source": self.sources[n]} for n, v in self.values.items()}}


def with_measurements(front: Front, verify: Path | None) -> tuple[list[dict[str, float]], list[dict[str, str]]]:
    """Each member's objective values and sources, the latencies measured in ``verify`` (a
    verify.csv) replacing the predicted ones of the objective it measured."""
    from ofahw.verify import read_verify

    values = [dict(m.values) for m in front.members]
    sources = [dict(m.sources) for m in front.members]
    if verify is None:
        return values, sources
    verified = read_verify(verify)
    column = f"latency_ms@{verified.label}"
    for member, vals, srcs in zip(front.members, values, sources, strict=True):
        if column in vals and member.config_hash in verified.measured_ms:
            vals[column] = verified.measured_ms[member.config_hash]
            srcs[column] = (f"measured: {verified.statistic} on target {verified.measured_on} at batch {verified.batch} "
                            f"({verify})")
    return values, sources


def pick(front_path: str | Path, constraints: list[str] = (), by: str | None = None, limits: list[float] | None = None,
         limits_on: str | None = None, verify: str | Path | None = None) -> list[Pick]:
    """The best member of the front at ``front_path`` by ``by`` (default: top1, else the first
    objective) under ``constraints``; with ``limits``, the best under each ``limits_on <= limit``
    too (``limits_on``: the front's only latency objective by default). ``verify``: default the
    verify.csv beside the front, when there is one. Nothing meeting them is a UserError naming the
    constraint nothing meets."""
    front = read_front(front_path)
    names = list(front.members[0].values)
    if verify is None and Path(front_path).with_name("verify.csv").is_file():
        verify = Path(front_path).with_name("verify.csv")
    values, sources = with_measurements(front, Path(verify) if verify else None)
    goal = column_named(by, names, f"--by {by!r}") if by else ("top1" if "top1" in names else names[0])
    bounds = [constraint_on(text, names) for text in constraints]
    table = {n: np.array([v[n] for v in values]) for n in names}
    if not limits:
        return [_best(front, values, sources, table, goal, bounds, None)]
    if limits_on is None:
        latencies = [n for n in names if n.startswith("latency_ms@")]
        if len(latencies) != 1:
            raise ConfigError(f"--limits needs --limits-on with several latency objectives ({', '.join(latencies)})")
        limits_on = latencies[0].replace("latency_ms", "latency")
    column = column_named(limits_on, names, f"--limits-on {limits_on!r}")
    return [_best(front, values, sources, table, goal, [*bounds, Constraint(column, "<=", limit)], limit) for limit in limits]


def _best(front: Front, values, sources, table: dict[str, np.ndarray], goal: str, bounds: list[Constraint],
          limit: float | None) -> Pick:
    ok = np.ones(len(front.members), dtype=bool)
    for c in bounds:
        meets = c.violation(table[c.objective]) <= 0
        if not meets.any():
            best = table[c.objective].min() if c.op == "<=" else table[c.objective].max()
            raise UserError(f"no member of {front.path} meets {c.objective} {c.op} {c.limit:g} (the closest reaches {best:.4g})")
        ok &= meets
    if not ok.any():
        asked = ", ".join(f"{c.objective} {c.op} {c.limit:g}" for c in bounds)
        raise UserError(f"no member of {front.path} meets all of {asked} at once (each alone is met)")
    score = table[goal] if goal == "top1" else -table[goal]  # accuracy is maximised, every other objective minimised
    i = int(np.flatnonzero(ok)[np.argmax(score[ok])])
    return Pick(i, front.members[i], values[i], sources[i], limit)
