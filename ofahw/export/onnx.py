"""torch module → ONNX, checked by the onnx checker and against torch's own outputs; cached."""

from __future__ import annotations

import hashlib
import io
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ofahw._io import atomic_write_bytes, cache_dir, mark_used, prune_least_used

OPSET = 17
# torch.onnx.export keeps process-wide state (seen failing with two targets exporting from two
# threads, as ensemble members spread over devices do): one export at a time.
_EXPORT_LOCK = threading.Lock()


class ExportError(RuntimeError):
    """The exported model is invalid or disagrees with torch."""


def export_onnx(module, input_shape: tuple[int, ...], opset: int = OPSET, rtol: float = 1e-3) -> bytes:
    """Export ``module`` (eval mode) at a fixed ``input_shape`` and return the ONNX bytes.

    The model must pass ``onnx.checker`` and give torch's output on a random input within
    ``rtol`` of the output's largest magnitude.
    """
    return export_onnx_checked(module, input_shape, opset, rtol)[0]


def export_onnx_checked(module, input_shape: tuple[int, ...], opset: int = OPSET, rtol: float = 1e-3) -> tuple[bytes, dict]:
    """:func:`export_onnx`, with what its check against torch found: ``max_abs_diff`` and
    ``relative_error`` (the former over the output's largest magnitude) on a random input."""
    import onnx
    import onnxruntime as ort
    import torch

    x = torch.from_numpy(np.random.default_rng(0).standard_normal(input_shape, dtype=np.float32))
    buffer = io.BytesIO()
    with _EXPORT_LOCK, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        # Constant folding is left to the runtime's graph optimiser; doing it here only slows export.
        torch.onnx.export(module, (x,), buffer, opset_version=opset, dynamo=False, do_constant_folding=False,
                          input_names=["input"], output_names=["output"])
        expected = module(x).numpy()
    data = buffer.getvalue()
    model = onnx.load_from_string(data)
    onnx.checker.check_model(model)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    got = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    if got.shape != expected.shape:
        raise ExportError(f"ONNX output differs from torch: shape {got.shape} vs {expected.shape}")
    scale = max(float(np.abs(expected).max()), 1e-6)
    diff = float(np.abs(got - expected).max())
    if diff / scale > rtol:
        raise ExportError(f"ONNX output differs from torch: relative error {diff / scale:.2e} (allowed {rtol:g})")
    return data, {"max_abs_diff": diff, "relative_error": diff / scale, "allowed_relative_error": rtol,
                  "input": f"standard normal, shape {list(input_shape)}, seed 0", "runtime": f"onnxruntime {ort.__version__} CPU"}


class OnnxCache:
    """ONNX files addressed by a content key (a part key or a subnet's canonical hash), with the
    opset and torch version mixed in, so a changed exporter never serves a stale file."""

    def __init__(self, root: str | Path | None = None, opset: int = OPSET):
        self.root = Path(root) if root else cache_dir("onnx")
        self.root.mkdir(parents=True, exist_ok=True)
        self.opset = opset

    def path_for(self, key: str, input_shape: tuple[int, ...]) -> Path:
        import torch

        shape = "x".join(map(str, input_shape))
        digest = hashlib.sha256(f"{key}|shape={shape}|opset={self.opset}|torch={torch.__version__}".encode()).hexdigest()[:24]
        return self.root / f"{digest}.onnx"

    def get(self, key: str, build: Callable[[], object], input_shape: tuple[int, ...]) -> Path:
        """The cached file for ``key`` at ``input_shape`` (batch first), exporting ``build()`` first when it is missing."""
        path = self.path_for(key, input_shape)
        if path.exists():
            mark_used(path)
        else:
            atomic_write_bytes(path, export_onnx(build(), input_shape, self.opset))
        return path

    def prune(self, max_bytes: int = 8 << 30) -> None:
        """Delete the least recently used files until the cache holds at most ``max_bytes``."""
        prune_least_used(self.root, "*.onnx", max_bytes)
