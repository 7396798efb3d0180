"""Every subnet a search evaluated, its non-dominated front, and the hypervolume that compares runs."""

from __future__ import annotations

import numpy as np
from pymoo.indicators.hv import HV
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from ofahw.search.problem import SubnetProblem


class Archive:
    """Distinct evaluated subnets (canonical encodings) with F (minimised) and feasibility."""

    def __init__(self, n_var: int, n_obj: int):
        self.X = np.empty((0, n_var), dtype=int)
        self.F = np.empty((0, n_obj))
        self.feasible = np.empty(0, dtype=bool)
        self._seen: set[bytes] = set()

    def add(self, X: np.ndarray, F: np.ndarray, G: np.ndarray | None) -> None:
        ok = np.ones(len(X), dtype=bool) if G is None or G.size == 0 else np.all(G <= 0, axis=1)
        fresh = []
        for i, x in enumerate(X):
            key = x.tobytes()
            if key not in self._seen:
                self._seen.add(key)
                fresh.append(i)
        if fresh:
            self.X = np.vstack([self.X, X[fresh]])
            self.F = np.vstack([self.F, F[fresh]])
            self.feasible = np.concatenate([self.feasible, ok[fresh]])

    def evaluate_into(self, problem: SubnetProblem, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Evaluate ``X`` (repaired), add it, and return (F, G)."""
        X = problem.space.repair(X)
        F, G = problem.evaluate(X, return_values_of=["F", "G"])
        G = G if G.size else None
        self.add(X, F, G)
        return F, G

    def front(self) -> tuple[np.ndarray, np.ndarray]:
        """(X, F) of the feasible non-dominated subnets, sorted by the first objective."""
        return non_dominated(self.X[self.feasible], self.F[self.feasible])


def non_dominated(X: np.ndarray, F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(F) == 0:
        return X, F
    front = NonDominatedSorting().do(F, only_non_dominated_front=True)
    order = front[np.argsort(F[front, 0], kind="stable")]
    return X[order], F[order]


def hypervolume(F: np.ndarray, reference_point: np.ndarray) -> float:
    """Hypervolume (minimised objectives, raw units) dominated by ``F`` up to ``reference_point``."""
    if len(F) == 0:
        return 0.0
    return float(HV(ref_point=np.asarray(reference_point, dtype=float))(np.asarray(F, dtype=float)))


def reference_point(problem: SubnetProblem, rng: np.random.Generator, n: int = 2000) -> np.ndarray:
    """A point every sensible subnet dominates: the worst value of each objective over a seeded
    random sample plus the smallest and largest subnets, pushed out by a tenth of its range."""
    space = problem.space
    X = np.vstack([rng.integers(space.xl, space.xu + 1, size=(n, space.n_var)), space.xl, space.xu])
    F = problem.evaluate(space.repair(X), return_values_of=["F"])
    lo, hi = F.min(axis=0), F.max(axis=0)
    return hi + 0.1 * np.maximum(hi - lo, 1e-9)
