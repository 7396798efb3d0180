"""ONNX (fp32) → int8 in QDQ form with onnxruntime's static quantization, cached by content key.

Per-tensor by default: per-channel static quantization is known to damage MobileNetV3's accuracy.
Only Conv, MatMul and Gemm are quantized: OpenVINO 2026.4 refuses to compile onnxruntime's QDQ
model of a whole MBV3 subnet where the SE's h_sigmoid ``Add`` takes a quantized constant, so one
int8 model serves onnxruntime and OpenVINO alike. The fp32 model is first pre-processed as
onnxruntime recommends (its basic graph optimisations fold BatchNorm into the convolutions), so
the int8 model is the one a deployment would build. Blocks are quantized exactly as networks are.

Calibration: images from a folder where the model's input is an image batch (3 channels, square),
else random normal inputs. Latency does not depend on the scales calibration picks, only on the
graph, which is the same either way; the LUT records which was used. A deployable model's accuracy
does depend on them, so it is calibrated on as many images as asked (``images``), spread over the
folder's classes, where a profile takes four batches. Random inputs are as many
batches as make four images (one batch at batch 8): calibrating is most of the time quantizing takes
(four batches of 8 were 1.6 of 2.8 s for a w1.2 subnet at 224), and the scales of more random images
change nothing a latency depends on; four keep the int8 outputs close to fp32 (the tests' tolerance).
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ofahw._io import atomic_write_bytes, cache_dir, content_sha256, mark_used, prune_least_used
from ofahw.errors import UserError
from ofahw.export.onnx import ExportError

OP_TYPES = ("Conv", "MatMul", "Gemm")
CALIBRATION_BATCHES = 4  # of images, where a calibration folder is given and no image count
RANDOM_CALIBRATION_IMAGES = 4


@dataclass(frozen=True)
class Quantization:
    """How models are quantized: ``per_channel`` weights, and ``calibration``, an image folder
    (``DIR/<class>/<image>``) or None for random inputs; ``images``: how many of the folder's images
    (taken evenly over it) calibrate, default ``CALIBRATION_BATCHES`` batches."""

    per_channel: bool = False
    calibration: str | None = None
    images: int | None = None

    def describe(self) -> dict:
        """What a LUT records of how its models were quantized."""
        import onnxruntime as ort

        random = f"random normal inputs, ceil({RANDOM_CALIBRATION_IMAGES} / batch) batches"
        folder = f"{self.images} images" if self.images else f"{CALIBRATION_BATCHES} batches of images"
        return {"method": "onnxruntime static quantization, QDQ format (pre-processed with quant_pre_process)",
                "onnxruntime": ort.__version__, "activations": "uint8, per tensor",
                "weights": f"int8, per {'channel' if self.per_channel else 'tensor'}", "op_types": list(OP_TYPES),
                "calibration": (f"{folder} from {self.calibration} where the input is an image batch, else {random}"
                                if self.calibration else random)}

    def key(self, input_shape: tuple[int, ...]) -> str:
        """What the int8 model depends on besides the fp32 model's content."""
        import onnxruntime as ort

        images = self._images(input_shape)
        if images is None:
            amount = f"batches={_random_batches(input_shape)}"
        else:
            amount = f"images={self.images}" if self.images else f"batches={CALIBRATION_BATCHES}"
        return f"per_channel={self.per_channel}|calibration={images}|{amount}|ort={ort.__version__}|ops={OP_TYPES}"

    def _images(self, input_shape: tuple[int, ...]) -> str | None:
        """The calibration folder, where the model's input is an image batch; else None (random inputs)."""
        is_image = len(input_shape) == 4 and input_shape[1] == 3 and input_shape[2] == input_shape[3]
        return str(Path(self.calibration).resolve()) if self.calibration and is_image else None

    def batches(self, input_shape: tuple[int, ...]) -> list[np.ndarray]:
        images = self._images(input_shape)
        if images is None:
            rng = np.random.default_rng(0)
            return [rng.standard_normal(input_shape, dtype=np.float32) for _ in range(_random_batches(input_shape))]
        from ofahw.images import ImageFolder

        batch, _, resolution, _ = input_shape
        folder = ImageFolder(images, limit=self.images or batch * CALIBRATION_BATCHES)
        out = [x for x, _ in folder.batches(resolution, batch) if len(x) == batch]
        if not out:
            raise UserError(f"calibration folder {images} holds fewer than {batch} images (one batch)")
        return out


def _random_batches(input_shape: tuple[int, ...]) -> int:
    return math.ceil(RANDOM_CALIBRATION_IMAGES / input_shape[0])  # input_shape[0]: the batch size


def quantize_int8(fp32: Path, input_shape: tuple[int, ...], quantization: Quantization) -> bytes:
    """The int8 QDQ model of the fp32 ONNX file ``fp32`` (input ``input``), checked by the onnx checker."""
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.feeds = iter({"input": x} for x in quantization.batches(input_shape))

        def get_next(self):
            return next(self.feeds, None)

    ort.set_default_logger_severity(3)  # the quantizer's sessions warn about initializers it removes itself
    quiet = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)  # onnxruntime's advice to pre-process, which is done
    try:
        with tempfile.TemporaryDirectory(prefix="ofahw-int8-") as tmp:
            pre, out = os.path.join(tmp, "pre.onnx"), os.path.join(tmp, "int8.onnx")
            quant_pre_process(str(fp32), pre, skip_symbolic_shape=True)
            quantize_static(pre, out, Reader(), quant_format=QuantFormat.QDQ, per_channel=quantization.per_channel,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            op_types_to_quantize=list(OP_TYPES))
            data = Path(out).read_bytes()
    finally:
        logging.getLogger().setLevel(quiet)
    model = onnx.load_from_string(data)
    onnx.checker.check_model(model)
    quantizable = any(n.op_type in OP_TYPES for n in onnx.load(str(fp32)).graph.node)
    if quantizable and not any(n.op_type == "QuantizeLinear" for n in model.graph.node):
        raise ExportError(f"quantizing {fp32} left no QuantizeLinear node: nothing was quantized")
    return data  # a model without Conv / MatMul / Gemm (a pooling piece) stays fp32, as it would deployed


def quantized_path(fp32: Path, input_shape: tuple[int, ...], quantization: Quantization, root: Path | None = None) -> Path:
    """Where the int8 model of ``fp32`` is cached. The key is the fp32 file's content with the
    quantization settings, so a changed export never serves a stale model."""
    root = Path(root) if root else cache_dir("int8")
    digest = content_sha256(fp32)
    digest.update(quantization.key(input_shape).encode())
    return root / f"{digest.hexdigest()[:24]}.int8.onnx"


def prune_quantized(max_bytes: int = 8 << 30, root: Path | None = None) -> None:
    """Delete the least recently used int8 models until the int8 cache holds at most ``max_bytes``."""
    prune_least_used(Path(root) if root else cache_dir("int8"), "*.int8.onnx", max_bytes)


def quantized_onnx(fp32: Path, input_shape: tuple[int, ...], quantization: Quantization, root: Path | None = None) -> Path:
    """The cached int8 model of ``fp32`` (:func:`quantized_path`), quantized first where it is missing."""
    path = quantized_path(fp32, input_shape, quantization, root)
    if path.exists():
        mark_used(path)
    else:
        atomic_write_bytes(path, quantize_int8(Path(fp32), input_shape, quantization))
    return path
