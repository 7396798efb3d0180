"""Ensembles run for real: each member alone, then each chosen ensemble as one group — serially, or
in parallel (threads on a CPU, CUDA streams on a GPU, members spread over several devices) — so
the latency model's error is a measured figure."""

from __future__ import annotations

import concurrent.futures
import contextlib
import csv
import io
from pathlib import Path

import numpy as np

from ofahw._io import atomic_write_text
from ofahw.errors import UserError
from ofahw.export import OnnxCache, network_artifact
from ofahw.fidelity import latency_fidelity
from ofahw.measure import Measurement, Target, keep_rounds, measure_in_rounds
from ofahw.space import Space


def deal_members(members: list[str], targets: list[Target]) -> dict[Target, list[str]]:
    """Members dealt to devices in turn (member i on device i mod k); devices left without one are left out."""
    dealt = {t: members[i::len(targets)] for i, t in enumerate(targets)}
    return {t: m for t, m in dealt.items() if m}


def verify_ensembles(space: Space, member_configs: dict[str, dict], ensembles: list[list[str]], modelled_ms: np.ndarray,
                     mode: str, targets: list[Target], out_csv: Path, batch: int = 1) -> dict:
    """Measure every ensemble as a group and each of its members alone, on ``targets``; write
    ``out_csv``; return the errors of the search's model (``modelled_ms``) and of the max / sum of the
    members measured alone.

    With several targets (``parallel`` only) the members are spread over them: every device runs its
    share at the same time as the others (its share as a group where it holds more than one), and an
    ensemble's latency is that of the slowest device; moving inputs and outputs between devices is
    not part of the figure. Each target uses its network protocol; the fastest round is kept.
    Every member runs ``batch`` images a run (that of the latencies it is compared with)."""
    if mode == "serial" and len(targets) > 1:
        raise UserError("serial ensembles run on one target; spreading members over devices needs --mode parallel")
    shares = [deal_members(e, targets) for e in ensembles]
    for target in targets:
        if not target.times_groups and any(len(s.get(target, [])) > 1 for s in shares):
            raise UserError(f"target '{target.name}' ({target.kind}) cannot run several members at once; "
                            f"give at least as many targets as members")
    cache = OnnxCache()
    artifacts = {m: network_artifact(space, c, cache, batch) for m, c in member_configs.items()}
    stat = targets[0].protocol.for_network().statistic
    with contextlib.ExitStack() as stack, concurrent.futures.ThreadPoolExecutor(len(targets)) as pool:
        for target in targets:
            stack.enter_context(target)
        alone = _members_alone(shares, targets, artifacts, pool)
        groups = [_group(s, mode, artifacts, pool) for s in shares]
    combine = max if mode == "parallel" else sum
    from_members = np.array([combine(alone[t, k].value(stat) for t, share in s.items() for k in share) for s in shares])
    measured = np.array([max(m.value(stat) for m in g.values()) for g in groups])
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["members", "n_members", "modelled_ms", f"members_alone_{mode}_ms", f"measured_{stat}_ms",
                     "modelled_over_measured", "settled", "measured_on", "batch"])
    for e, s, model, mem, meas, g in zip(ensembles, shares, modelled_ms, from_members, measured, groups, strict=True):
        on = " ".join(f"{t.name}:{'+'.join(share)}" for t, share in s.items())
        writer.writerow(["+".join(e), len(e), f"{model:.6g}", f"{mem:.6g}", f"{meas:.6g}", f"{model / meas:.4f}",
                         all(m.settled for m in g.values()), on, batch])
    atomic_write_text(out_csv, buffer.getvalue())
    return {"target": "+".join(t.name for t in targets), "mode": mode, "statistic": stat, "batch": batch, "n": len(ensembles),
            "file": str(out_csv), "search_model": latency_fidelity(measured, modelled_ms),
            "members_alone_model": latency_fidelity(measured, from_members)}


def _members_alone(shares, targets, artifacts, pool) -> dict[tuple[Target, str], Measurement]:
    """Each member measured alone on every device it is dealt to (the devices measure at once)."""
    used = {t: sorted({k for s in shares for k in s.get(t, [])}) for t in targets}

    def on(target: Target) -> dict:
        names = used[target]
        best = measure_in_rounds(target, [artifacts[k] for k in names], target.protocol.for_network())
        return {(target, k): m for k, m in zip(names, best, strict=True)}

    return {key: m for part in pool.map(on, [t for t in targets if used[t]]) for key, m in part.items()}


def _group(shares: dict[Target, list[str]], mode: str, artifacts, pool) -> dict[Target, Measurement]:
    """One ensemble timed: every device runs its share at the same time as the others, round after
    round; per device, the round its protocol's round rule keeps (the fastest by default)."""

    def once(target: Target) -> Measurement:
        share = [artifacts[k] for k in shares[target]]
        protocol = target.protocol.for_network()
        return target.measure_group(share, mode, protocol) if len(share) > 1 else target.measure(share[0], protocol)

    rounds = [list(pool.map(once, list(shares))) for _ in range(max(t.protocol.for_network().rounds for t in shares))]
    return {t: keep_rounds([(t, r[i]) for r in rounds], t.protocol.statistic, t.protocol.round_rule)[t] for i, t in enumerate(shares)}
