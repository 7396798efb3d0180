"""The local CPU through OpenVINO (which reads ONNX directly), compiled for latency."""

from __future__ import annotations

import tempfile

import numpy as np
import openvino as ov

from ofahw.errors import TargetError
from ofahw.export import Artifact
from ofahw.measure.host import host_facts, openvino_config, openvino_core, openvino_request
from ofahw.measure.target import Prepared, Target, check_threads


class OpenVinoCpuTarget(Target):
    """Times ONNX models with OpenVINO's CPU plugin: the LATENCY hint, one stream, one infer request.

    Options: ``threads`` (inference threads, default 1), ``precision`` (fp32; bf16 where the CPU
    has it; int8: each model quantized first, see :mod:`ofahw.export.quantize`, and run with its
    quantized ops in int8), ``per_channel`` (int8 weights per channel instead of per tensor).
    """

    kind = "openvino"
    option_defaults = {"threads": 1, "precision": "fp32", "per_channel": False}
    precisions = ("fp32", "bf16", "int8")

    def __init__(self, name, options=None, protocol=None):
        super().__init__(name, options, protocol)
        check_threads(name, self.options["threads"])
        self._core = None
        self._compiled = None  # OpenVINO's model cache while the target is open
        self._request = None

    def open(self) -> None:
        self._compiled = tempfile.TemporaryDirectory(prefix="ofahw-openvino-")
        self._core = openvino_core(ov, self._compiled.name)
        capabilities = self._core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        if self.precision == "bf16" and "BF16" not in capabilities:
            raise TargetError(f"target '{self.name}': this CPU has no bf16 support in OpenVINO (it offers {capabilities}); "
                              "use precision fp32 or int8")
        super().open()

    def close(self) -> None:
        self._core = None
        if self._compiled is not None:
            self._compiled.cleanup()
            self._compiled = None
        super().close()

    def metadata(self) -> dict:
        core = self._core or ov.Core()
        return {**host_facts(), "runtime": "openvino", "runtime_version": ov.__version__,
                "openvino_device": core.get_property("CPU", "FULL_DEVICE_NAME"),
                "openvino_capabilities": list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")),
                "openvino_config": openvino_config(self.options["threads"], self.precision), **self.options}

    def _prepare(self, artifact: Artifact) -> Prepared:
        inputs = np.random.default_rng(0).standard_normal(artifact.input_shape, dtype=np.float32)
        request = openvino_request(ov, self._core, self.model_file(artifact), inputs, self.options["threads"], self.precision)
        self._request = request
        return Prepared(request.infer)

    def _release(self) -> None:
        self._request = None
