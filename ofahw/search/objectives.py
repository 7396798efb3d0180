"""What a search minimises and respects: objectives (top-1 error, latency per device, FLOPs,
params) and constraints (``latency@jetson<=20``), each vectorised over encoded populations and
each carrying how its values are obtained."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ofahw.errors import ConfigError
from ofahw.fidelity import chosen_scores
from ofahw.predict import LutLatencyModel
from ofahw.predict.population import cost_model
from ofahw.space import Space


@dataclass(frozen=True)
class Objective:
    """One column of a search's F: ``evaluate(X)`` gives the value (n,), minimised."""

    name: str  # column name in pareto.csv, e.g. "top1", "latency_ms@cpu", "flops_m"
    evaluate: Callable[[np.ndarray], np.ndarray]
    source: str  # how the values are obtained
    maximise: bool = False  # reported as is; the search minimises its negation
    batch: int | None = None  # images per run the values are for (latency and energy objectives)

    def minimised(self, X: np.ndarray) -> np.ndarray:
        values = self.evaluate(X)
        return -values if self.maximise else values


@dataclass(frozen=True)
class Constraint:
    objective: str  # an objective's name, or "latency" with one LUT
    op: str  # "<=" or ">="
    limit: float

    def violation(self, values: np.ndarray) -> np.ndarray:
        """pymoo's G: <= 0 where the constraint holds."""
        return values - self.limit if self.op == "<=" else self.limit - values


_CONSTRAINT = re.compile(r"^\s*((?:latency|energy)(?:@[\w.-]+)?|flops|params|top1)\s*(<=|>=)\s*([0-9.]+(?:e-?\d+)?)\s*$")
_UNITS = {"latency": "latency_ms", "energy": "energy_mj", "flops": "flops_m", "params": "params_m", "top1": "top1"}


def constraint_on(text: str, names: list[str]) -> Constraint:
    """``latency<=20`` (the only latency column), ``latency@jetson<=20`` (ms), ``flops<=300`` (MMACs),
    ``params<=5`` (millions), ``top1>=0.75`` (fraction), over columns named ``names``."""
    match = _CONSTRAINT.match(text)
    if not match:
        raise ConfigError(f"constraint {text!r} is not like 'latency<=20', 'latency@jetson<=20', 'flops<=300', "
                          f"'params<=5' or 'top1>=0.75'")
    return Constraint(column_named(match.group(1), names, f"constraint {text!r}"), match.group(2), float(match.group(3)))


def column_named(what: str, names: list[str], context: str = "") -> str:
    """The objective among ``names`` that ``latency`` (the only latency column), ``latency@TARGET``,
    ``flops``, ``params`` or ``top1`` names."""
    base, _, target = what.strip().partition("@")
    if base not in _UNITS:
        raise ConfigError(f"{context or repr(what)}: name one of latency, latency@TARGET, energy, energy@TARGET, flops, "
                          "params, top1")
    name = _UNITS[base] + (f"@{target}" if target else "")
    per_device = base in ("latency", "energy") and not target
    found = [n for n in names if n == name or (per_device and n.startswith(f"{_UNITS[base]}@"))]
    if len(found) != 1:
        raise ConfigError(f"{context or repr(what)} names no single objective of this search (objectives: {', '.join(names)}); "
                          "with several LUTs write latency@TARGET")
    return found[0]


def parse_constraint(text: str, objectives: list[Objective]) -> tuple[Objective, Constraint]:
    """The objective a constraint (see :func:`constraint_on`) bounds, and the constraint."""
    constraint = constraint_on(text, [o.name for o in objectives])
    return next(o for o in objectives if o.name == constraint.objective), constraint


def latency_objective(model: LutLatencyModel, space: Space) -> Objective:
    features = model.population(space)
    mape = chosen_scores(model.table.report).get("mape")
    fit = f", CV MAPE {mape:.1%}" if isinstance(mape, float) else ""
    return Objective(f"latency_ms@{model.label}", lambda X: model.predict_encoded(features, X),
                     f"predicted: {model.table.statistic} latency from LUT {model.path} measured on target {model.target}"
                     f" ({model.table.precision}, batch {model.table.batch}; {model.regressor.model} model{fit})",
                     batch=model.table.batch)


def energy_objective(model: LutLatencyModel, space: Space) -> Objective:
    """Energy per inference (mJ) on the LUT's target, from its energy predictor."""
    energy = model.energy_model()
    features = energy.population(space)
    mape = chosen_scores(model.table.meta.get("energy_report")).get("mape")
    fit = f", CV MAPE {mape:.1%}" if isinstance(mape, float) else ""
    return Objective(f"energy_mj@{model.label}", lambda X: energy.predict_encoded(features, X),
                     f"predicted: energy per inference (mJ, idle power subtracted) from LUT {model.path} measured on target "
                     f"{model.target} with {model.table.energy['sensor'].get('sensor', 'its power sensor')} "
                     f"({energy.regressor.model} model{fit})", batch=model.table.batch)


def cost_objectives(space: Space, which: list[str]) -> list[Objective]:
    costs = cost_model(space)
    out = []
    for name in which:
        column = {"flops": 0, "params": 1}[name]
        out.append(Objective(_UNITS[name], lambda X, c=column: costs(X)[:, c],
                             f"counted: {'multiply-accumulates' if name == 'flops' else 'parameters'} of the subnet's "
                             "modules (millions)"))
    return out


def accuracy_objective(predictor) -> Objective:
    return Objective("top1", predictor.predict_encoded, predictor.source, maximise=True)
