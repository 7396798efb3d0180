"""One search run: problem + algorithm + budget + seed → the front, its hypervolume per generation,
and the files of ``runs/<name>/``. Runs checkpoint as they go and resume where they stopped."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dill
import numpy as np

from ofahw._io import atomic_write_bytes
from ofahw.errors import ConfigError
from ofahw.search.algorithms import PYMOO, make_pymoo_algorithm
from ofahw.search.archive import Archive, hypervolume, non_dominated, reference_point
from ofahw.search.baselines import ofa_evolution, random_search
from ofahw.search.policy_gradient import MultiTargetPolicyGradient, PolicyGradientSearch
from ofahw.search.problem import SubnetProblem

ALGORITHMS = (*PYMOO, "policy-gradient", "ofa-ea", "random")


@dataclass
class SearchSettings:
    algorithm: str = "nsga2"
    pop_size: int = 100
    generations: int = 100
    seed: int = 0
    mutation_rate: float = 0.1
    crossover_prob: float = 1.0
    reward: str = "tunas"  # policy-gradient: tunas / mnas (one policy per latency target, or --latency-target), hypervolume
    latency_target: float | None = None  # policy-gradient with the mnas / tunas reward
    n_limits: int = 9  # ofa-ea
    reference_point: list[float] | None = None

    def __post_init__(self):
        if self.algorithm not in ALGORITHMS:
            raise ConfigError(f"unknown algorithm {self.algorithm!r} (known: {', '.join(ALGORITHMS)})")
        if self.pop_size < 2 or self.generations < 1:
            raise ConfigError("population must be at least 2 and generations at least 1")

    @property
    def n_evals(self) -> int:
        """The evaluation budget every algorithm gets: population x generations."""
        return self.pop_size * self.generations


@dataclass
class SearchResult:
    X: np.ndarray  # (n, n_var) the front, canonical encodings
    F: np.ndarray  # (n, n_obj) minimised objective values
    values: np.ndarray  # (n, n_obj) as reported (accuracy as accuracy)
    hypervolume: float
    reference_point: np.ndarray
    history: list[dict] = field(default_factory=list)  # per generation: n_eval, hypervolume
    wall_s: float = 0.0
    n_evals: int = 0
    resumed_from: int | None = None


class _Run:
    """The state of one run that checkpoints carry (the problem itself is rebuilt, not stored)."""

    def __init__(self, problem: SubnetProblem, settings: SearchSettings, ref: np.ndarray):
        self.settings, self.ref = settings, ref
        self.rng = np.random.default_rng(settings.seed)
        self.archive = Archive(problem.n_var, problem.n_obj)
        self.history: list[dict] = []
        self.generation, self.n_evaluated, self.wall_s = 0, 0, 0.0
        self.engine = None
        self.ofa_best: tuple[np.ndarray, np.ndarray] | None = None  # ofa-ea: the best subnet per latency limit
        if settings.algorithm in PYMOO:
            self.engine = make_pymoo_algorithm(settings.algorithm, problem.n_obj, settings.pop_size,
                                               settings.mutation_rate, settings.crossover_prob)
            self.engine.setup(problem, termination=("n_gen", settings.generations), seed=settings.seed, verbose=False)
        elif settings.algorithm == "policy-gradient" and settings.reward != "hypervolume" and settings.latency_target is None:
            self.engine = MultiTargetPolicyGradient(problem, self.archive, ref, self.rng, reward=settings.reward,
                                                    batch=settings.pop_size)
        elif settings.algorithm == "policy-gradient":
            self.engine = PolicyGradientSearch(problem, self.archive, ref, self.rng, reward=settings.reward,
                                               target=settings.latency_target, batch=settings.pop_size)

    def attach(self, problem: SubnetProblem) -> None:
        problem.n_evaluated = self.n_evaluated
        if self.engine is not None:
            self.engine.problem = problem

    def detached(self) -> bytes:
        problem = self.engine.problem if self.engine is not None else None
        if self.engine is not None:
            self.engine.problem = None
        try:
            return dill.dumps(self)
        finally:
            if self.engine is not None:
                self.engine.problem = problem


def fingerprint(problem: SubnetProblem, settings: SearchSettings) -> str:
    """What must match for a checkpoint to be resumed: space, objectives, constraints, settings."""
    text = json.dumps({"space": problem.space.name, "resolutions": problem.space.resolutions,
                       "objectives": [(o.name, o.source) for o in problem.objectives],
                       "constraints": [vars(c) for _, c in problem.constraints], "settings": vars(settings)},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def run_search(problem: SubnetProblem, settings: SearchSettings, checkpoint: Path | None = None, fresh: bool = False,
               progress: Callable[[int, int], None] | None = None, log: Callable[[str], None] = print) -> SearchResult:
    """Run ``settings.algorithm`` on ``problem``; with ``checkpoint``, save the run's state every
    few generations and resume from it (if its fingerprint matches) unless ``fresh``."""
    key = fingerprint(problem, settings)
    run = _load(checkpoint, key, log) if checkpoint and not fresh else None
    resumed = None
    if run is None:
        ref = (np.asarray(settings.reference_point, dtype=float) if settings.reference_point is not None
               else reference_point(problem, np.random.default_rng(settings.seed + 7)))
        if len(ref) != problem.n_obj:
            raise ConfigError(f"reference point needs {problem.n_obj} values, one per objective")
        problem.n_evaluated = 0
        run = _Run(problem, settings, ref)
    else:
        resumed = run.generation
        run.attach(problem)
    every = max(1, settings.generations // 20)
    start = time.perf_counter() - run.wall_s
    if settings.algorithm in ("ofa-ea", "random"):
        _baseline(problem, run)
    while run.generation < settings.generations:  # a baseline has run whole above
        if settings.algorithm in PYMOO:
            run.engine.next()
            front = _pymoo_front(run.engine)[1]
        else:
            run.engine.step()
            front = run.archive.front()[1]
        run.generation += 1
        run.n_evaluated = problem.n_evaluated
        run.history.append({"generation": run.generation, "n_eval": problem.n_evaluated,
                            "hypervolume": hypervolume(front, run.ref)})
        if checkpoint and (run.generation % every == 0 or run.generation == settings.generations):
            run.wall_s = time.perf_counter() - start
            atomic_write_bytes(checkpoint, json.dumps({"fingerprint": key}).encode() + b"\n" + run.detached())
        if progress:
            progress(run.generation, settings.generations)
    wall = time.perf_counter() - start
    if settings.algorithm in PYMOO:
        X, F = _pymoo_front(run.engine)
    elif settings.algorithm == "ofa-ea":
        X, F = run.ofa_best
    else:
        X, F = run.archive.front()
    return SearchResult(X=X, F=F, values=problem.values(X) if len(X) else F, hypervolume=hypervolume(F, run.ref),
                        reference_point=run.ref, history=run.history, wall_s=wall, n_evals=problem.n_evaluated,
                        resumed_from=resumed)


def _pymoo_front(algorithm) -> tuple[np.ndarray, np.ndarray]:
    opt = algorithm.opt
    if opt is None or len(opt) == 0:
        return np.empty((0, algorithm.problem.n_var), int), np.empty((0, algorithm.problem.n_obj))
    feasible = opt.get("feasible")[:, 0]
    X = algorithm.problem.space.repair(np.rint(opt.get("X")[feasible]).astype(int))
    return non_dominated(X, opt.get("F")[feasible])


def _baseline(problem: SubnetProblem, run: _Run) -> None:
    """The baselines are short and run whole; their history has one point per population's worth."""
    s = run.settings
    if s.algorithm == "random":
        for g in range(1, s.generations + 1):
            random_search(problem, run.archive, g * s.pop_size, run.rng)
            run.history.append({"generation": g, "n_eval": problem.n_evaluated,
                                "hypervolume": hypervolume(run.archive.front()[1], run.ref)})
    else:
        best = ofa_evolution(problem, run.archive, s.n_evals, run.rng, n_limits=s.n_limits, pop_size=s.pop_size)
        run.ofa_best = (non_dominated(best, problem.evaluate(best, return_values_of=["F"])) if len(best)
                        else (best, np.empty((0, problem.n_obj))))
        run.history.append({"generation": s.generations, "n_eval": problem.n_evaluated,
                            "hypervolume": hypervolume(run.ofa_best[1], run.ref)})
    run.generation = s.generations


def _load(path: Path, key: str, log) -> _Run | None:
    """A checkpoint this run wrote (the first line names what it belongs to). Checkpoints are
    dill pickles of the run's own state, read back only from the run's own folder."""
    if not path.exists():
        return None
    head, _, body = path.read_bytes().partition(b"\n")
    try:
        if json.loads(head)["fingerprint"] != key:
            log(f"checkpoint {path} belongs to a different search; starting afresh")
            return None
        run = dill.loads(body)
    except (ValueError, KeyError, dill.UnpicklingError, EOFError, AttributeError, TypeError):
        log(f"checkpoint {path} is unreadable; starting afresh")
        return None
    log(f"resuming from {path} at generation {run.generation}")
    return run
