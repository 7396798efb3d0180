"""pymoo algorithms by name, each built fresh with OFA²'s operators: integer random sampling,
uniform crossover, per-gene reset mutation, canonical repair, duplicates eliminated."""

from __future__ import annotations

from collections.abc import Callable

from pymoo.operators.crossover.ux import UniformCrossover
from pymoo.operators.sampling.rnd import IntegerRandomSampling

from ofahw.errors import ConfigError
from ofahw.search.problem import CanonicalRepair, GeneResetMutation


def _nsga2(**kw):
    from pymoo.algorithms.moo.nsga2 import NSGA2

    return NSGA2(**kw)


def _smsemoa(**kw):
    from pymoo.algorithms.moo.sms import SMSEMOA

    return SMSEMOA(**kw)


def _spea2(**kw):
    from pymoo.algorithms.moo.spea2 import SPEA2

    return SPEA2(**kw)


def _nsga3(n_obj, **kw):
    from pymoo.algorithms.moo.nsga3 import NSGA3
    from pymoo.util.ref_dirs import get_reference_directions

    partitions = {1: 1, 2: 99, 3: 12}.get(n_obj, 6)
    return NSGA3(ref_dirs=get_reference_directions("das-dennis", n_obj, n_partitions=partitions), **kw)


def _agemoea(**kw):
    try:
        from pymoo.algorithms.moo.age import AGEMOEA
    except Exception:  # pymoo raises a bare Exception when numba is missing
        raise ConfigError("AGE-MOEA needs numba (pip install numba)") from None
    return AGEMOEA(**kw)


PYMOO: dict[str, Callable] = {"nsga2": _nsga2, "smsemoa": _smsemoa, "spea2": _spea2, "nsga3": _nsga3, "agemoea": _agemoea}


def make_pymoo_algorithm(name: str, n_obj: int, pop_size: int = 100, mutation_rate: float = 0.1,
                         crossover_prob: float = 1.0):
    """A fresh pymoo algorithm (new operator instances; pymoo's defaults are shared objects)."""
    if name not in PYMOO:
        raise ConfigError(f"unknown algorithm {name!r}")
    kw = dict(pop_size=pop_size, sampling=IntegerRandomSampling(), crossover=UniformCrossover(prob=crossover_prob),
              mutation=GeneResetMutation(prob_var=mutation_rate), repair=CanonicalRepair(), eliminate_duplicates=True)
    return PYMOO[name](n_obj=n_obj, **kw) if name == "nsga3" else PYMOO[name](**kw)
