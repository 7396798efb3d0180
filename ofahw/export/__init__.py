"""Export: subnet or single block → ONNX (checked against torch), content-addressed cache, and the
lazy artifacts targets time."""

from ofahw.export.artifacts import Artifact, network_artifact, part_artifact
from ofahw.export.onnx import OPSET, ExportError, OnnxCache, export_onnx

__all__ = ["OPSET", "Artifact", "ExportError", "OnnxCache", "export_onnx", "network_artifact", "part_artifact"]
