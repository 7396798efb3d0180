"""Choosing ensembles of front members (the OFA³ idea): a binary vector over the members; the
ensemble averages their class probabilities; its latency is the slowest member (parallel) or the
sum (serial). Scored over whole populations with one matrix product per generation."""

from __future__ import annotations

import numpy as np
from pymoo.core.problem import Problem

from ofahw.ensemble.tables import CandidateTables, exact_accuracy
from ofahw.errors import ConfigError

MODES = ("parallel", "serial")


def ensemble_latency(X: np.ndarray, member_ms: np.ndarray, mode: str) -> np.ndarray:
    """(n,) ms: max (parallel) or sum (serial) of the chosen members' latencies."""
    X = np.asarray(X, dtype=bool)
    if mode == "parallel":
        return np.where(X, member_ms[None, :], 0.0).max(axis=1)
    if mode == "serial":
        return X.astype(float) @ member_ms
    raise ConfigError(f"mode must be one of {MODES}")


def ensemble_accuracy(X: np.ndarray, tables: CandidateTables, top5: bool = True,
                      chunk: int = 128) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """(top-1, top-5 or None, share of samples whose winner is only known among the candidates),
    each (n,). Ensembles with no member score 0."""
    X = np.asarray(X, dtype=np.float32)
    m, s, n_samples = tables.probs.shape
    flat = tables.probs.reshape(m, s * n_samples)
    top1, top5_out, unsure = np.zeros(len(X)), np.zeros(len(X)) if top5 else None, np.zeros(len(X))
    slot = tables.label_slot
    found = slot >= 0
    # each member's probability of the true label (0 where it is not a candidate): one more product
    label_probs = np.where(found, tables.probs[:, np.maximum(slot, 0), np.arange(n_samples)], 0.0).astype(np.float32)
    for start in range(0, len(X), chunk):
        part = X[start:start + chunk]
        count = np.maximum(part.sum(axis=1), 1.0)[:, None]
        total = (part @ flat).reshape(len(part), s, n_samples)  # sums: the ranking of an average
        label_p = (part @ label_probs) * (1 + 1e-6)  # two products may round apart; true ties are rarer still
        best = total.max(axis=1)
        top1[start:start + chunk] = (found & (label_p >= best)).mean(axis=1)
        if top5:
            rank = (total > label_p[:, None, :]).sum(axis=1)
            top5_out[start:start + chunk] = (found & (rank < 5)).mean(axis=1)
        unsure[start:start + chunk] = (best / count <= (part @ tables.outside) / count).mean(axis=1)
    empty = X.sum(axis=1) == 0
    top1[empty] = unsure[empty] = 0.0
    if top5:
        top5_out[empty] = 0.0
    return top1, top5_out, unsure


class EnsembleProblem(Problem):
    """``X`` (n, M) booleans: which front members join. ``F``: top-1 error (and top-5 error with
    ``top5``), latency in ms, and with ``member_mj`` energy per inference in mJ (the members' sum in
    both modes: running side by side saves time, not work). ``G``: at least ``min_members`` (and at
    most ``max_members``) chosen."""

    def __init__(self, tables: CandidateTables, member_ms: np.ndarray, mode: str, min_members: int = 2,
                 max_members: int | None = None, top5: bool = False, member_mj: np.ndarray | None = None):
        if mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}")
        m = tables.probs.shape[0]
        if not 1 <= min_members <= m or (max_members is not None and max_members < min_members):
            raise ConfigError(f"need 1 <= min members <= max members, and at most {m} (the front's size)")
        self.tables, self.member_ms, self.mode, self.top5 = tables, np.asarray(member_ms, float), mode, top5
        self.min_members, self.max_members = min_members, max_members
        self.member_mj = None if member_mj is None else np.asarray(member_mj, float)
        self.worst_unsure = 0.0
        self.n_errors = 2 if top5 else 1  # the first columns of F; latency (and energy) follow
        super().__init__(n_var=m, n_obj=self.n_errors + 1 + (member_mj is not None), n_ieq_constr=2, xl=0, xu=1, vtype=bool)

    def costs(self, X: np.ndarray) -> list[np.ndarray]:
        """Latency (ms) and, where members carry it, energy (mJ) of ensembles ``X``."""
        out = [ensemble_latency(X, self.member_ms, self.mode)]
        if self.member_mj is not None:
            out.append(np.asarray(X, dtype=float) @ self.member_mj)
        return out

    def objectives(self, top1: np.ndarray, top5: np.ndarray | None, X: np.ndarray) -> np.ndarray:
        """``F`` (n, n_obj) from accuracies and the chosen members."""
        return np.column_stack([1.0 - top1] + ([1.0 - top5] if self.top5 else []) + self.costs(X))

    def feasible(self, X: np.ndarray) -> np.ndarray:
        count = np.asarray(X, dtype=bool).sum(axis=1)
        return (count >= self.min_members) & (count <= (self.max_members or self.n_var))

    def exact_F(self, X: np.ndarray) -> np.ndarray:
        """``F`` of ensembles ``X`` from the full tables: what is written, never the candidates' estimate."""
        X = np.asarray(X, dtype=bool)
        top1, top5 = exact_accuracy(X, self.tables.full, self.tables.labels, top5=self.top5)
        return self.objectives(top1, top5, X)

    def _evaluate(self, X, out, *args, **kwargs):
        X = np.asarray(X, dtype=bool)
        top1, top5, unsure = ensemble_accuracy(X, self.tables, top5=self.top5)
        self.worst_unsure = max(self.worst_unsure, float(unsure.max(initial=0.0)))
        out["F"] = self.objectives(top1, top5, X)
        count = X.sum(axis=1)
        out["G"] = np.column_stack([self.min_members - count, count - (self.max_members or self.n_var)])
