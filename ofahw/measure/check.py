"""A quick connection / runtime check of a target before a long run."""

from __future__ import annotations

from ofahw._io import atomic_write_bytes, cache_dir
from ofahw.export import Artifact
from ofahw.measure.protocol import Protocol
from ofahw.measure.target import Target

PROBE_SHAPE = (1, 16, 32, 32)
QUICK = Protocol(warmup_runs=5, warmup_s=0.02, min_repeats=20, min_time_s=0.05, max_time_s=0.5)


def probe_model_path():
    """A tiny ONNX model (3x3 conv + ReLU) written once into the cache."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    path = cache_dir("probe") / "conv3x3-relu-opset17.onnx"
    if not path.exists():
        weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((16, 16, 3, 3), dtype=np.float32), "w")
        graph = helper.make_graph(
            [helper.make_node("Conv", ["input", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["output"])],
            "probe",
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, PROBE_SHAPE)],
            [helper.make_tensor_value_info("output", TensorProto.FLOAT, PROBE_SHAPE)],
            [weight],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        onnx.checker.check_model(model)
        atomic_write_bytes(path, model.SerializeToString())
    return path


def check_target(target: Target, energy: bool = False) -> dict:
    """Open ``target``, time the probe model with a short protocol (and with ``energy`` measure its
    energy per inference with the target's power sensor), and return what was seen."""
    probe = Artifact("probe", PROBE_SHAPE, probe_model_path)
    with target:
        metadata = target.metadata()
        m = target.measure(probe, QUICK)
        joules = target.measure_energy(probe, target.energy) if energy else None
    return {"target": target.name, "kind": target.kind, "source": target.source,
            "metadata": metadata, **target.where_measured(),
            "probe": {"model": "conv3x3(16->16)+relu on 1x16x32x32", **m.to_dict()},
            "energy": joules.to_dict() if joules else None}
