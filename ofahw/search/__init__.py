"""Searches over a space with predicted objectives: pymoo's multi-objective algorithms (the OFA²
idea: one run, the whole front), OFA's constrained evolution and random search as baselines, and
a policy-gradient search (the TND-NAS idea)."""

from ofahw.search.objectives import Constraint, Objective, accuracy_objective, cost_objectives, latency_objective, parse_constraint
from ofahw.search.problem import SubnetProblem
from ofahw.search.run import ALGORITHMS, SearchResult, SearchSettings, run_search

__all__ = ["ALGORITHMS", "Constraint", "Objective", "SearchResult", "SearchSettings", "SubnetProblem", "accuracy_objective",
           "cost_objectives", "latency_objective", "parse_constraint", "run_search"]
