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
    X: np.ndarray  # (k, M) bool: the ensembles on the front
    F: np.ndarray  # (k, n_obj): errors and latency (ms)
    hypervolume: float
    singles_F: np.ndarray  # each member alone, non-dominated, same objectives
    singles_hypervolume: float
    reference_point: np.ndarray
    wall_s: float
    worst_unsure: float  # largest share of samples whose winner was only known among the candidates


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
    opt = engine.opt
    feasible = opt.get("feasible")[:, 0]
    X, F = non_dominated(opt.get("X")[feasible].astype(bool), opt.get("F")[feasible])
    singles = np.eye(problem.n_var, dtype=bool)
    out: dict = {}
    problem._evaluate(singles, out)
    _, singles_F = non_dominated(singles, out["F"])
    everything = np.ones((1, problem.n_var), dtype=bool)
    problem._evaluate(everything, out)
    ref = np.concatenate([np.ones(problem.n_obj - 1), [1.1 * float(out["F"][0, -1])]])
    return EnsembleResult(X, F, hypervolume(F, ref), singles_F, hypervolume(singles_F, ref), ref, wall,
                          problem.worst_unsure)
