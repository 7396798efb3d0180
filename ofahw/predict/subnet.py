"""What ofahw thinks of one subnet: its predicted top-1 (with the source) and its latency on each
LUT's target, with FLOPs and params counted."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ofahw.errors import ConfigError, UserError
from ofahw.export import OnnxCache, network_artifact
from ofahw.lut import check_mixable, check_runtime, check_target
from ofahw.measure import Target, load_target
from ofahw.predict.fitted_accuracy import FittedAccuracyPredictor
from ofahw.predict.latency import LutLatencyModel
from ofahw.predict.sources import load_accuracy_source
from ofahw.space import get_space


def describe_subnet(config: dict, luts: list[str | Path] = (), accuracy: str | None = None, space: str | None = None,
                    accuracy_resolutions=None, download: bool = False, batch: int | None = None) -> dict:
    """Predictions for ``config``: ``latencies`` (one per LUT, as :meth:`LutLatencyModel.explain`)
    and ``accuracy`` (top-1 fraction and its source; None without ``accuracy``).

    The space comes from the LUTs, ``space``, or a fitted predictor's file; an OFA checkpoint
    alone does not name one (MBV3 w1.0 and w1.2 share its encoding). ``batch``: each LUT is replaced
    by its batch-``batch`` LUT (:func:`ofahw.lut.read_for_batch`)."""
    if not luts and accuracy is None:
        raise UserError("predict needs --lut (latency, repeatable) or --accuracy (top-1), or both")
    if accuracy_resolutions and accuracy is None:
        raise UserError("--accuracy-resolutions describes the checkpoint given with --accuracy")
    if batch is not None and not luts:
        raise UserError("--batch chooses the LUTs' batch size: it needs --lut")
    models = [LutLatencyModel.load(path, batch) for path in luts]
    check_mixable({str(m.path): m.table for m in models})
    names = {m.space.name for m in models} | ({space} if space else set())
    if not names and accuracy and Path(accuracy).suffix == ".json":
        names = {FittedAccuracyPredictor.load(accuracy).space.name}
    if not names:
        raise UserError("an OFA predictor checkpoint does not say which space it is for: pass --space")
    if len(names) != 1:
        raise ConfigError(f"the LUTs and --space name different spaces ({', '.join(sorted(names))})")
    full = get_space(names.pop())
    canonical = full.canonical(config)
    latencies = [m.explain(canonical) for m in models]
    result = {"config": canonical, "space": full.name, "config_hash": full.config_hash(canonical),
              "flops_m": full.flops(canonical), "params_m": full.params(canonical), "latencies": latencies,
              "accuracy": None}
    if accuracy is not None:
        source = load_accuracy_source(accuracy, full, download=download, resolutions=accuracy_resolutions)
        top1 = float(source.predict_encoded(full.encode(canonical)[None])[0])
        result["accuracy"] = {"top1": top1, "source": source.source}
    return result


def measure_subnet(lut: str | Path, config: dict, target_spec: str | None = None,
                   place: Callable[[Target], Target] | None = None) -> dict:
    """Measure ``config`` now, as ``lut`` was measured (its batch size, the network protocol), on
    ``target_spec`` (default: the LUT's target), whose settings and runtime must be the LUT's;
    ``place`` puts the target where it measures (a Ray node), else it measures here."""
    model = LutLatencyModel.load(lut)
    target = load_target(target_spec or model.target)
    target = place(target) if place else target
    check_target(model.table, target, Path(lut))
    with target:
        check_runtime(model.table, target.metadata(), Path(lut))
        m = target.measure(network_artifact(model.space, config, OnnxCache(), model.table.batch), target.protocol.for_network())
    return {"target": target.name, "batch": model.table.batch, **target.where_measured(),
            "source": f"measured now on target {target.name} at batch {model.table.batch}", **m.to_dict()}
