"""Export: subnet or single block → ONNX (checked against torch), int8 QDQ models, content-addressed
caches, and the lazy artifacts targets time."""

from ofahw.export.artifacts import Artifact, network_artifact, part_artifact
from ofahw.export.onnx import OPSET, ExportError, OnnxCache, export_onnx
from ofahw.export.quantize import Quantization, quantize_int8, quantized_onnx

__all__ = ["OPSET", "Artifact", "ExportError", "OnnxCache", "Quantization", "export_onnx", "network_artifact", "part_artifact",
           "quantize_int8", "quantized_onnx"]
