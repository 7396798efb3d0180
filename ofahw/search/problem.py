"""The search problem over encoded subnets, in pymoo's terms, and the operators OFA² uses on it."""

from __future__ import annotations

import numpy as np
from pymoo.core.mutation import Mutation
from pymoo.core.problem import Problem
from pymoo.core.repair import Repair

from ofahw.search.objectives import Constraint, Objective
from ofahw.space import Space


class SubnetProblem(Problem):
    """``X`` (n, n_var): one choice index per gene. ``F`` (n, n_obj): the objectives, minimised
    (accuracy enters negated). ``G`` (n, n_constr): constraint violations (<= 0 holds)."""

    def __init__(self, space: Space, objectives: list[Objective], constraints: list[tuple[Objective, Constraint]]):
        self.space, self.objectives, self.constraints = space, objectives, constraints
        self.n_evaluated = 0
        self.closest: tuple[float, dict] | None = None  # (total violation, constrained values) of the least-violating subnet seen
        super().__init__(n_var=space.n_var, n_obj=len(objectives), n_ieq_constr=len(constraints),
                         xl=space.xl, xu=space.xu, vtype=int)

    def _evaluate(self, X, out, *args, **kwargs):
        X = self.space.repair(np.rint(X).astype(int))
        self.n_evaluated += len(X)
        out["F"] = np.column_stack([o.minimised(X) for o in self.objectives])
        if self.constraints:
            values = [o.evaluate(X) for o, _ in self.constraints]
            out["G"] = np.column_stack([c.violation(v) for (_, c), v in zip(self.constraints, values, strict=True)])
            total = np.maximum(out["G"], 0.0).sum(axis=1)
            i = int(np.argmin(total))
            if self.closest is None or total[i] < self.closest[0]:
                self.closest = (float(total[i]), {o.name: float(v[i]) for (o, _), v in zip(self.constraints, values, strict=True)})

    def unmet(self) -> str:
        """Which constraints no subnet met, and what the closest subnet evaluated reached."""
        asked = ", ".join(f"{c.objective} {c.op} {c.limit:g}" for _, c in self.constraints)
        if self.closest is None:
            return f"no subnet was evaluated under {asked}"
        reached = ", ".join(f"{name} {value:.4g}" for name, value in self.closest[1].items())
        return f"no subnet found meets {asked}; the closest of the {self.n_evaluated} evaluated reaches {reached}"

    def values(self, X: np.ndarray) -> np.ndarray:
        """The objectives as reported (accuracy as accuracy), (n, n_obj)."""
        return np.column_stack([o.evaluate(X) for o in self.objectives])


class CanonicalRepair(Repair):
    """Genes that depth leaves out set to their first choice: one encoding per subnet, so that
    duplicate elimination and archives see subnets, not spellings."""

    def _do(self, problem, X, **kwargs):
        return problem.space.repair(np.rint(X).astype(int))


class GeneResetMutation(Mutation):
    """Each gene, with probability ``prob_var``, redrawn uniformly from its choices (OFA²: 0.1)."""

    def _do(self, problem, X, random_state=None, **kwargs):
        X = np.rint(X).astype(int)
        prob = np.broadcast_to(np.asarray(self.get_prob_var(problem, size=len(X)), dtype=float), (len(X),))
        reset = random_state.random(X.shape) < prob[:, None]
        drawn = random_state.integers(problem.xl, problem.xu + 1, size=X.shape)
        return np.where(reset, drawn, X)
