"""What ofahw thinks of one subnet: its predicted top-1 (with the source) and its latency on each
LUT's target, with FLOPs and params counted."""

from __future__ import annotations

from pathlib import Path

from ofahw.errors import ConfigError, UserError
from ofahw.predict.fitted_accuracy import FittedAccuracyPredictor
from ofahw.predict.latency import LutLatencyModel
from ofahw.predict.sources import load_accuracy_source
from ofahw.space import get_space


def describe_subnet(config: dict, luts: list[str | Path] = (), accuracy: str | None = None, space: str | None = None,
                    accuracy_resolutions=None, download: bool = False) -> dict:
    """Predictions for ``config``: ``latencies`` (one per LUT, as :meth:`LutLatencyModel.explain`)
    and ``accuracy`` (top-1 fraction and its source; None without ``accuracy``).

    The space comes from the LUTs, ``space``, or a fitted predictor's file; an OFA checkpoint
    alone does not name one (MBV3 w1.0 and w1.2 share its encoding)."""
    if not luts and accuracy is None:
        raise UserError("predict needs --lut (latency, repeatable) or --accuracy (top-1), or both")
    if accuracy_resolutions and accuracy is None:
        raise UserError("--accuracy-resolutions describes the checkpoint given with --accuracy")
    models = [LutLatencyModel.load(path) for path in luts]
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
