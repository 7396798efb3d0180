"""One ensemble search: pymoo over the members' binary vector, the front of ensembles, and the
single subnets' front on the same reference point for comparison."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from pymoo.operators.crossover.ux import UniformCrossover
from pymoo.operators.mutation.bitflip import BitflipMutation
from pymoo.operators.sampling.rnd import BinaryRandomSampling

from ofahw.ensemble.selection import EnsembleProblem
from ofahw.errors import ConfigError
from ofahw.search.algorithms import PYMOO
from ofahw.search.archive import hypervolume, non_dominated

ALGORITHMS = ("nsga2", "smsemoa", "spea2")


@dataclass
class EnsembleResult:
    """The front of ensembles, every value exact: the search ran on the candidate-class estimate,
    and its final population and front were then rescored from the full tables."""

    X: np.ndarray  # (k, M) bool: the ensembles on the front
    F: np.ndarray  # (k, n_obj): errors and latency (ms), exact
    hypervolume: float
    singles_F: np.ndarray  # each member alone, non-dominated, same objectives, exact
    singles_hypervolume: float
    reference_point: np.ndarray
    wall_s: float  # the search
    rescore_s: float  # the exact rescoring
    worst_unsure: float  # during the search: largest share of samples decided only among the candidates
    rescored: int  # distinct ensembles rescored exactly
    estimate_off: int  # of those, how many the search's estimate had scored otherwise


def run_ensemble_search(problem: EnsembleProblem, algorithm: str = "nsga2", pop_size: int = 100, generations: int = 100,
                        seed: int = 0) -> EnsembleResult:
    if algorithm not in ALGORITHMS:
        raise ConfigError(f"ensemble algorithm must be one of {ALGORITHMS}")
    engine = PYMOO[algorithm](pop_size=pop_size, sampling=BinaryRandomSampling(), crossover=UniformCrossover(),
                              mutation=BitflipMutation(prob_var=1.0 / problem.n_var), eliminate_duplicates=True)
    start = time.perf_counter()
    engine.setup(problem, termination=("n_gen", generations), seed=seed, verbose=False)
    while engine.has_next():
        engine.next()
    wall = time.perf_counter() - start
    start = time.perf_counter()
    found = np.concatenate([engine.pop.get("X"), engine.opt.get("X")]).astype(bool)
    estimate = np.concatenate([engine.pop.get("F"), engine.opt.get("F")])  # what the search scored them at
    keep = problem.feasible(found)
    found, first = np.unique(found[keep], axis=0, return_index=True)
    estimate = estimate[keep][first]
    exact = problem.exact_F(found)
    X, F = non_dominated(found, exact)
    singles = np.eye(problem.n_var, dtype=bool)
    _, singles_F = non_dominated(singles, problem.exact_F(singles))
    everything = np.ones((1, problem.n_var), dtype=bool)
    ref = np.concatenate([np.ones(problem.n_errors), [1.1 * float(c[0]) for c in problem.costs(everything)]])
    errors = slice(0, problem.n_errors)
    off = int(np.any(np.abs(estimate[:, errors] - exact[:, errors]) > 1e-12, axis=1).sum())
    return EnsembleResult(X, F, hypervolume(F, ref), singles_F, hypervolume(singles_F, ref), ref, wall,
                          time.perf_counter() - start, problem.worst_unsure, len(found), off)
