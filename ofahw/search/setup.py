"""A search's problem from what the user gave: LUTs (one latency objective per device), an accuracy
source, cost objectives and constraints, over the resolutions they all share."""

from __future__ import annotations

from collections.abc import Callable

from ofahw.errors import ConfigError
from ofahw.lut import check_mixable
from ofahw.predict import LutLatencyModel
from ofahw.predict.sources import load_accuracy_source, usable_resolutions
from ofahw.search.objectives import accuracy_objective, cost_objectives, energy_objective, latency_objective, parse_constraint
from ofahw.search.problem import SubnetProblem
from ofahw.space import get_space


def build_problem(luts: list[str], accuracy: str | None = None, space: str | None = None, objectives: list[str] = (),
                  constraints: list[str] = (), accuracy_resolutions=None, log: Callable[[str], None] = print,
                  batch: int | None = None) -> tuple[SubnetProblem, list[LutLatencyModel]]:
    """The problem and the LUT models it reads. The search runs at the resolutions every LUT profiled
    and the accuracy source knows; those the source never saw are left out, with a note to ``log``.
    One latency objective per LUT, named by its label (target, and batch size where not 1); with
    ``batch``, each LUT is replaced by its batch-``batch`` LUT."""
    if batch is not None and not luts:
        raise ConfigError("--batch chooses the LUTs' batch size: it needs --lut")
    models = [LutLatencyModel.load(path, batch) for path in luts]
    check_mixable({str(m.path): m.table for m in models})
    spaces = {m.space.name for m in models} | ({space} if space else set())
    if not spaces:
        raise ConfigError("a search needs --lut (one per device) or, for FLOPs / params objectives only, --space")
    if len(spaces) != 1:
        raise ConfigError(f"the LUTs and --space name different spaces ({', '.join(sorted(spaces))}); one search, one space")
    base = get_space(spaces.pop())
    resolutions = (sorted(set.intersection(*(set(m.table.resolutions) for m in models))) if models
                   else list(base.resolutions))
    if not resolutions:
        raise ConfigError("the LUTs share no profiled resolution")
    source = load_accuracy_source(accuracy, base.with_resolutions(resolutions), resolutions=accuracy_resolutions)
    usable, unseen = usable_resolutions(source, resolutions)
    if not usable:
        raise ConfigError(f"the accuracy source knows resolutions {list(source.resolutions)}, none of those the LUTs "
                          f"profiled ({resolutions}): {source.source}")
    if unseen:
        log(f"note: resolutions {unseen} are left out of the search: the accuracy source was trained at "
            f"{list(source.resolutions)} only")
    narrowed = base.with_resolutions(usable)
    log(f"search over {narrowed.name} at resolutions {usable}: building the objectives")
    chosen = [accuracy_objective(source.restricted(narrowed))]
    chosen += [latency_objective(m, narrowed) for m in models]
    if "energy" in objectives:
        measured = [m for m in models if m.table.has_energy]
        if not measured:
            raise ConfigError("--objective energy needs a LUT profiled with energy (ofahw profile --energy, on a target "
                              "with a power sensor); none of the LUTs has energy columns")
        chosen += [energy_objective(m, narrowed) for m in measured]
    chosen += cost_objectives(narrowed, [o for o in objectives if o != "energy"])
    if len(chosen) < 2:
        raise ConfigError("a search needs at least one latency (--lut) or cost (--objective flops|params) objective")
    return SubnetProblem(narrowed, chosen, [parse_constraint(text, chosen) for text in constraints]), models
