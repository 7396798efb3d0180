"""The local CPU through onnxruntime's CPU execution provider."""

from __future__ import annotations

import numpy as np

from ofahw.errors import TargetError
from ofahw.export import Artifact
from ofahw.measure.host import GRAPH_OPTIMIZATION, host_facts, ort_session_options
from ofahw.measure.target import Prepared, Target, check_threads


class OnnxruntimeCpuTarget(Target):
    """Times ONNX models with onnxruntime on this machine's CPU.

    Options: ``threads`` (intra-op threads, default 1), ``graph_optimization`` (disable, basic,
    extended, all), ``precision`` (fp32, or int8: each model quantized first, see
    :mod:`ofahw.export.quantize`), ``per_channel`` (int8 weights per channel instead of per tensor).
    """

    kind = "cpu"
    option_defaults = {"threads": 1, "graph_optimization": "all", "precision": "fp32", "per_channel": False}
    precisions = ("fp32", "int8")
    providers = ["CPUExecutionProvider"]

    def __init__(self, name, options=None, protocol=None):
        super().__init__(name, options, protocol)
        check_threads(name, self.options["threads"])
        level = self.options["graph_optimization"]
        if level not in GRAPH_OPTIMIZATION:
            raise TargetError(f"target '{name}': graph_optimization must be one of {list(GRAPH_OPTIMIZATION)}, got {level!r}")
        self._session = None

    def _session_options(self):
        import onnxruntime as ort

        return ort_session_options(ort, self.options["threads"], self.options["graph_optimization"])

    def metadata(self) -> dict:
        import onnxruntime as ort

        return {**host_facts(), "runtime": "onnxruntime", "runtime_version": ort.__version__, "onnxruntime": ort.__version__,
                "provider": self.providers[0], **self.options}

    def _prepare(self, artifact: Artifact) -> Prepared:
        import onnxruntime as ort

        self._session = ort.InferenceSession(str(self.model_file(artifact)), self._session_options(), providers=self.providers)
        feed = {self._session.get_inputs()[0].name: np.random.default_rng(0).standard_normal(artifact.input_shape, dtype=np.float32)}
        session = self._session
        return Prepared(lambda: session.run(None, feed))

    def _release(self) -> None:
        self._session = None
