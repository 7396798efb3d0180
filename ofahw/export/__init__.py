"""Export: subnet or single block → ONNX (checked against torch), int8 QDQ models, content-addressed
caches, and the lazy artifacts targets time."""

from ofahw.export.ahead import AheadSummary, ExportJob, export_ahead, network_job, part_job
from ofahw.export.artifacts import Artifact, network_artifact, network_input_shape, part_artifact
from ofahw.export.onnx import OPSET, ExportError, OnnxCache, export_onnx
from ofahw.export.quantize import Quantization, prune_quantized, quantize_int8, quantized_onnx

__all__ = ["OPSET", "AheadSummary", "Artifact", "ExportError", "ExportJob", "OnnxCache", "Quantization", "export_ahead",
           "export_onnx", "network_artifact", "network_input_shape", "network_job", "part_artifact", "part_job",
           "prune_quantized", "quantize_int8", "quantized_onnx"]
