"""A deployable model of one subnet: its pretrained weights cut from the supernet, BatchNorm
recalibrated, as ONNX (checked against torch), an int8 model and a TensorRT engine where asked,
with ``model.json`` saying what each file is and where its numbers came from.

Everything is written into a staging folder beside ``out`` and moved there at the end, so a
failure (a corrupt weights file, say) leaves nothing behind."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from ofahw._io import atomic_write_bytes, atomic_write_text, check_writable, sha256_file, strict_json
from ofahw.errors import UserError
from ofahw.export.onnx import OPSET, export_onnx_checked
from ofahw.export.quantize import Quantization, quantize_int8
from ofahw.images import ImageFolder
from ofahw.space import Space, recalibrate_batchnorm

FORMATS = ("onnx", "int8", "tensorrt")
# ONNX against torch on a random input: the largest difference over the output's largest magnitude
ONNX_RTOL = 1e-4
MODEL_FILES = {"onnx": "model.onnx", "int8": "model.int8.onnx", "tensorrt": "model.fp16.engine"}
# images that calibrate a deployable int8 model's activation ranges (NVIDIA's TensorRT guidance: about
# 500 suffice for ImageNet classification); a profile's four batches set the graph, all latency needs
INT8_CALIBRATION_IMAGES = 500


def parse_formats(text: str | None) -> list[str]:
    formats = [f.strip() for f in (text or "onnx").split(",") if f.strip()]
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise UserError(f"--format takes a list of {', '.join(FORMATS)}, got {text!r}")
    return ["onnx", *(f for f in FORMATS[1:] if f in formats)]  # ONNX always: the others are built from it


EngineBuilder = Callable[[Path, Path], dict]  # (onnx, engine to write) -> where and how it was built


def tensorrt_builder() -> EngineBuilder:
    """How to build an fp16 engine on this machine: ``trtexec`` on PATH, else the tensorrt Python
    package; a UserError naming both where neither is at hand (an SSH device's trtexec is the other way)."""
    trtexec = shutil.which("trtexec")
    if trtexec:
        def build(onnx: Path, engine: Path) -> dict:
            done = subprocess.run([trtexec, f"--onnx={onnx}", f"--saveEngine={engine}", "--fp16", "--skipInference"],
                                  capture_output=True, text=True, timeout=3600)
            if done.returncode != 0:
                raise UserError(f"trtexec could not build an engine: {done.stdout.strip().splitlines()[-1:]}")
            return {"built_on": f"this machine with {trtexec}", "precision": "fp16"}
        return build
    try:
        import tensorrt as trt
    except ImportError:
        raise UserError("a TensorRT engine needs trtexec on PATH or the tensorrt Python package (pip install tensorrt), or "
                        "--target an SSH device with trtexec; none is here: leave tensorrt out of --format") from None

    def build_with_api(onnx: Path, engine: Path) -> dict:
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        network = builder.create_network(0 if int(trt.__version__.split(".")[0]) >= 10 else
                                         1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH))
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(onnx.read_bytes()):
            raise UserError(f"TensorRT cannot parse {onnx.name}: {parser.get_error(0)}")
        config = builder.create_builder_config()
        config.set_flag(trt.BuilderFlag.FP16)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise UserError("TensorRT could not build an engine for the model")
        atomic_write_bytes(engine, bytes(serialized))
        return {"built_on": f"this machine with the tensorrt package {trt.__version__}", "precision": "fp16"}
    return build_with_api


def export_model(space: Space, config: dict, weights: Path, out: str | Path, formats: list[str] = ("onnx",),
                 calibration=None, provenance: dict | None = None, log: Callable[[str], None] = print,
                 engine_builder: EngineBuilder | None = None, int8_images: int | None = None) -> dict:
    """Write the subnet ``config`` of ``space`` with the supernet ``weights`` into ``out`` and return
    model.json's content. ``calibration``: an ``ofahw.images.ImageFolder`` for BatchNorm, whose
    folder calibrates the int8 model too (``int8_images`` of its images, taken evenly over it,
    default ``INT8_CALIBRATION_IMAGES``); without it the supernet's statistics are kept, with a
    warning. ``provenance``: more for model.json (accuracy, latencies, where the config came from). ``engine_builder``: how
    the TensorRT engine is built (default: :func:`tensorrt_builder`, on this machine)."""
    out = Path(out)
    if (out / "model.json").exists():
        raise UserError(f"{out} already holds an exported model (model.json); choose another --out")
    check_writable(out / "model.json")
    build_engine = (engine_builder or tensorrt_builder()) if "tensorrt" in formats else None
    config = space.canonical(config)
    r = config["r"]
    net = space.build_network(config, weights=weights)
    warnings = []
    if calibration is not None:
        recalibrate_batchnorm(net, calibration, r, batch_size=50)
        bn = {"recalibrated_on": str(calibration.root), "images": len(calibration), "resolution": r}
    else:
        warnings.append("BatchNorm statistics are the supernet's, not recalibrated for this subnet (no --calib): "
                        "OFA subnets need recalibration, so accuracy will be lower than the front says")
        bn = None
    if "int8" in formats and calibration is None:
        warnings.append("the int8 model is calibrated on random inputs (no --calib): its activation ranges are random "
                        "noise's, not images', so its accuracy may fall well below the fp32 model's")
    for w in warnings:
        log(f"WARNING: {w}")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        data, check = export_onnx_checked(net, (1, 3, r, r), OPSET, rtol=ONNX_RTOL)
        (staging / MODEL_FILES["onnx"]).write_bytes(data)
        files = {"onnx": {"file": MODEL_FILES["onnx"], "opset": OPSET, "input": [1, 3, r, r], "checked_against_torch": check}}
        if "int8" in formats:
            quantization = (Quantization(calibration=str(calibration.root),
                                         images=len(ImageFolder(calibration.root, limit=int8_images or INT8_CALIBRATION_IMAGES)))
                            if calibration is not None else Quantization())
            (staging / MODEL_FILES["int8"]).write_bytes(quantize_int8(staging / MODEL_FILES["onnx"], (1, 3, r, r), quantization))
            files["int8"] = {"file": MODEL_FILES["int8"], **quantization.describe()}
        if build_engine is not None:
            built = build_engine(staging / MODEL_FILES["onnx"], staging / MODEL_FILES["tensorrt"])
            files["tensorrt"] = {"file": MODEL_FILES["tensorrt"], **built}
        model = {
            "space": space.name, "config": config, "config_hash": space.config_hash(config),
            "flops_m": space.flops(config), "params_m": space.params(config),
            "weights": {"file": str(Path(weights).resolve()), "sha256": sha256_file(weights)},
            "batchnorm": bn, "files": files, "warnings": warnings,
            "exported_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "created_by": "ofahw " + __import__("ofahw").__version__, **(provenance or {}),
        }
        atomic_write_text(staging / "model.json", strict_json(model, indent=2) + "\n")
        out.mkdir(exist_ok=True)
        for path in staging.iterdir():
            path.replace(out / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return model


def update_model_json(out: str | Path, more: dict) -> dict:
    """model.json in ``out`` with ``more`` added (a measurement made after the export)."""
    import json

    path = Path(out) / "model.json"
    model = {**json.loads(path.read_text(encoding="utf-8")), **more}
    atomic_write_text(path, strict_json(model, indent=2) + "\n")
    return model
