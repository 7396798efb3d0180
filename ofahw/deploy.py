"""From a front to a deployable model: choose the subnet (a config, a front's rank, or the best
under constraints), export it with its weights (``ofahw.export.model``), record what ofahw
predicts of it with the sources, and optionally measure the exported file on a target."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

from ofahw.errors import UserError
from ofahw.export import Artifact
from ofahw.export.model import export_model, update_model_json
from ofahw.images import ImageFolder
from ofahw.measure import Target, load_target
from ofahw.predict.subnet import describe_subnet
from ofahw.search.outputs import read_front
from ofahw.search.pick import pick
from ofahw.space import get_space
from ofahw.space.weights import fetch_weights


def choose_subnet(config: dict | None, front: str | None, rank: int | None, constraints: list[str] = (),
                  by: str | None = None) -> tuple[dict, dict]:
    """(config, how it was chosen, with the front's values and their sources where it came from one)."""
    if (config is None) == (front is None):
        raise UserError("give the subnet as --config, or as --front with --rank N or --constraint / --by")
    if config is not None:
        if rank is not None or constraints or by:
            raise UserError("--rank, --constraint and --by choose from a --front")
        return config, {"from": "config given"}
    if rank is not None:
        if constraints or by:
            raise UserError("--rank names one member; --constraint and --by choose one: give either")
        members = read_front(front).members
        if not 0 <= rank < len(members):
            raise UserError(f"--rank {rank} is not on {front} (ranks 0 to {len(members) - 1})")
        member = members[rank]
        values, sources = member.values, member.sources
        how = {"from": f"rank {rank} of {front}"}
    else:
        if not constraints and not by:
            raise UserError("--front needs --rank N, or --constraint / --by to pick the best member")
        chosen = pick(front, constraints, by)[0]
        member, values, sources = chosen.member, chosen.values, chosen.sources
        how = {"from": f"picked from {front}", "rank": chosen.rank, "constraints": list(constraints), "by": by or "top1"}
    return member.config, {**how, "front_values": {n: {"value": v, "source": sources[n]} for n, v in values.items()}}


def deploy(space_name: str, out: str | Path, config: dict | None = None, front: str | None = None, rank: int | None = None,
           constraints: list[str] = (), by: str | None = None, weights: str | None = None, download: bool = False,
           calib: str | None = None, calib_images: int = 2000, formats: list[str] = ("onnx",), luts: list[str] = (),
           accuracy: str | None = None, target: str | None = None, measure: bool = False,
           log: Callable[[str], None] = print, place: Callable[[Target], Target] | None = None,
           int8_images: int | None = None) -> dict:
    """Export the chosen subnet of ``space_name`` into ``out`` (see :func:`export_model`) and return
    model.json's content: with the LUTs' latency predictions and the accuracy (the front's, or
    ``accuracy``'s prediction), and with ``measure`` the exported ONNX timed on ``target`` (default:
    the first LUT's; ``place`` puts it where it measures, a Ray node) with its network protocol,
    against that target's LUT prediction. With a TensorRT format and an SSH ``target``, the engine
    is built on that device and fetched."""
    space = get_space(space_name)
    if measure and not (target or luts):
        raise UserError("--measure needs --target (or --lut, whose target is then used)")
    chosen, how = choose_subnet(config, front, rank, constraints, by)
    config = space.canonical(chosen)
    predicted = describe_subnet(config, luts, accuracy, space.name) if (luts or accuracy) else {"latencies": [], "accuracy": None}
    front_top1 = how.get("front_values", {}).get("top1")
    provenance = {"selected": how,
                  "accuracy": predicted["accuracy"] or ({"top1": front_top1["value"], "source": front_top1["source"]}
                                                        if front_top1 else None),
                  "latency_predicted": [{k: lat[k] for k in ("target", "batch", "latency_ms", "statistic", "source", "lut")}
                                        for lat in predicted["latencies"]]}
    weights_path = Path(weights) if weights else fetch_weights(space.name, download=download)
    calibration = ImageFolder(calib, limit=calib_images) if calib else None
    with contextlib.ExitStack() as stack:
        builder = None
        if "tensorrt" in formats and target and (device := load_target(target)).kind == "ssh":
            stack.enter_context(device)  # the engine is built by the device's trtexec and fetched
            builder = device.build_engine
        model = export_model(space, config, weights_path, out, formats, calibration, provenance, log, builder, int8_images)
    if measure:
        model = update_model_json(out, {"measured": measure_export(out, model, target or predicted["latencies"][0]["target"],
                                                                   predicted["latencies"], place)})
    return model


def measure_export(out: str | Path, model: dict, target_spec: str, latencies: list[dict],
                   place: Callable[[Target], Target] | None = None) -> dict:
    """Time ``out``/model.onnx on ``target_spec`` (the target's network protocol; an int8 target
    quantizes it first, as when profiling) and compare with that target's batch-1 LUT prediction."""
    target = load_target(target_spec)
    target = place(target) if place else target
    onnx = Path(out) / model["files"]["onnx"]["file"]
    shape = tuple(model["files"]["onnx"]["input"])
    protocol = target.protocol.for_network()
    with target:
        m = target.measure(Artifact(f"export:{model['config_hash']}", shape, lambda: onnx), protocol)
    result = {"target": target.name, **target.where_measured(), "file": onnx.name, "precision": target.precision,
              "statistic": protocol.statistic,
              "source": f"measured on target {target.name} ({target.precision}) with its network protocol", **m.to_dict()}
    lut = next((lat for lat in latencies if lat["target"] == target.name and lat["batch"] == 1), None)
    if lut is not None:
        result["predicted_over_measured"] = lut["latency_ms"] / m.value(lut["statistic"])
        result["compared_with"] = f"{lut['statistic']} predicted from {lut['lut']}"
    return result
