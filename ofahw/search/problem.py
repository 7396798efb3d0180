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
        super().__init__(n_var=space.n_var, n_obj=len(objectives), n_ieq_constr=len(constraints),
                         xl=space.xl, xu=space.xu, vtype=int)

    def _evaluate(self, X, out, *args, **kwargs):
        X = self.space.repair(np.rint(X).astype(int))
        self.n_evaluated += len(X)
        out["F"] = np.column_stack([o.minimised(X) for o in self.objectives])
        if self.constraints:
            out["G"] = np.column_stack([c.violation(o.evaluate(X)) for o, c in self.constraints])

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
