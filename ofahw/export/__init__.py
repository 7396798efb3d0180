"""Export: subnet or single block → ONNX (checked against torch), content-addressed cache."""

from ofahw.export.onnx import OPSET, ExportError, OnnxCache, export_onnx

__all__ = ["OPSET", "ExportError", "OnnxCache", "export_onnx"]
