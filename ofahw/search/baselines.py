"""Baselines: what OFA users do today (OFA's constrained evolutionary search, one run per latency
limit) and random search. Both fill an :class:`Archive` and count every evaluation."""

from __future__ import annotations

import numpy as np

from ofahw.errors import ConfigError
from ofahw.search.archive import Archive
from ofahw.search.problem import SubnetProblem


def random_search(problem: SubnetProblem, archive: Archive, n_evals: int, rng: np.random.Generator, batch: int = 1000) -> None:
    space = problem.space
    while problem.n_evaluated < n_evals:
        n = min(batch, n_evals - problem.n_evaluated)
        archive.evaluate_into(problem, rng.integers(space.xl, space.xu + 1, size=(n, space.n_var)))


def ofa_evolution(problem: SubnetProblem, archive: Archive, n_evals: int, rng: np.random.Generator, n_limits: int = 9,
                  pop_size: int = 100, parent_ratio: float = 0.25, mutation_ratio: float = 0.5,
                  mutate_prob: float = 0.1) -> np.ndarray:
    """OFA's ``EvolutionFinder``: maximise accuracy under one efficiency limit; run at
    ``n_limits`` limits spread over the range of the first latency (or cost) objective, the
    evaluations shared equally. Returns the best subnet of each limit (rows of X)."""
    acc = [i for i, o in enumerate(problem.objectives) if o.maximise]
    eff = [i for i, o in enumerate(problem.objectives) if not o.maximise]
    if len(acc) != 1 or not eff:
        raise ConfigError("OFA's evolutionary search needs one accuracy objective and one latency or cost objective")
    acc, eff = acc[0], eff[0]
    space = problem.space
    ends = problem.values(space.repair(np.vstack([space.xl, space.xu])))[:, eff]
    limits = np.linspace(ends.min(), ends.max(), n_limits + 2)[1:-1]
    best = []
    for k, limit in enumerate(limits):
        budget = n_evals * (k + 1) // n_limits
        x = _evolve_under(problem, archive, acc, eff, limit, budget, rng, pop_size, parent_ratio, mutation_ratio, mutate_prob)
        if x is not None:
            best.append(x)
    return np.array(best, dtype=int).reshape(-1, space.n_var)


def _evolve_under(problem, archive, acc, eff, limit, budget, rng, pop_size, parent_ratio, mutation_ratio, mutate_prob):
    space = problem.space

    def evaluate(X):
        F, G = archive.evaluate_into(problem, X)
        ok = F[:, eff] <= limit
        if G is not None:
            ok &= np.all(G <= 0, axis=1)
        return space.repair(X), -F[:, acc] if problem.objectives[acc].maximise else F[:, acc], ok

    def feasible(make, n):
        """Up to ``n`` feasible candidates from ``make(m)``, drawing until found or out of budget."""
        got_X, got_a = [], []
        while sum(map(len, got_X)) < n and problem.n_evaluated < budget:
            X, a, ok = evaluate(make(min(n, budget - problem.n_evaluated)))
            got_X.append(X[ok])
            got_a.append(a[ok])
        X, a = np.vstack(got_X or [np.empty((0, space.n_var), int)]), np.concatenate(got_a or [np.empty(0)])
        return X[:n], a[:n]

    X, a = feasible(lambda m: rng.integers(space.xl, space.xu + 1, size=(m, space.n_var)), pop_size)
    if len(X) == 0:
        return None
    n_parents, n_mutate = max(int(pop_size * parent_ratio), 1), int(pop_size * mutation_ratio)
    while problem.n_evaluated < budget:
        order = np.argsort(-a)[:n_parents]
        parents, parent_acc = X[order], a[order]

        def mutate(m, parents=parents):
            base = parents[rng.integers(len(parents), size=m)]
            reset = rng.random(base.shape) < mutate_prob
            return np.where(reset, rng.integers(space.xl, space.xu + 1, size=base.shape), base)

        def cross(m, parents=parents):
            p1, p2 = parents[rng.integers(len(parents), size=m)], parents[rng.integers(len(parents), size=m)]
            return np.where(rng.random(p1.shape) < 0.5, p1, p2)

        Xm, am = feasible(mutate, n_mutate)
        Xc, ac = feasible(cross, pop_size - n_parents - n_mutate)
        X, a = np.vstack([parents, Xm, Xc]), np.concatenate([parent_acc, am, ac])
    return X[int(np.argmax(a))]
