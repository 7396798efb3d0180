"""GPU targets: real measurements where a GPU is present (skipped otherwise), and the behaviour
that holds everywhere (clear errors without a GPU, the trtexec times parser)."""

import json

import numpy as np
import pytest
from conftest import FAST, RESOLUTION, SPACE, write_yaml

from ofahw.errors import TargetError
from ofahw.export import OnnxCache, network_artifact, part_artifact
from ofahw.measure import load_target
from ofahw.measure.runner import parse_trtexec_times
from ofahw.space import get_space

torch = pytest.importorskip("torch")
HAS_GPU = torch.cuda.is_available()
gpu = pytest.mark.skipif(not HAS_GPU, reason="no CUDA GPU on this machine")


def gpu_target(tmp_path, kind, **runtime):
    path = write_yaml(tmp_path / f"{kind}.yaml", json.dumps({"kind": kind, "runtime": runtime}))
    target = load_target(str(path))
    target.protocol = FAST
    return target


def artifacts(tmp_path):
    space = get_space(SPACE)
    config = space.sample(1, np.random.default_rng(0), [RESOLUTION])[0]
    cache = OnnxCache(tmp_path / "onnx")
    return [part_artifact(space.parts(config)[3], cache), network_artifact(space, config, cache)]


@pytest.mark.skipif(HAS_GPU, reason="checks the message shown where no GPU is present")
@pytest.mark.parametrize("kind", ["cuda", "tensorrt"])
def test_without_a_gpu_opening_says_so(tmp_path, kind):
    with pytest.raises(TargetError, match="no CUDA GPU"):
        with gpu_target(tmp_path, kind):
            pass


def test_bad_gpu_options(tmp_path):
    with pytest.raises(TargetError, match="precision must be one of"):
        gpu_target(tmp_path, "cuda", precision="int4")
    with pytest.raises(TargetError, match="provider must be one of"):
        gpu_target(tmp_path, "ort-gpu", provider="rocm")


def test_trtexec_export_times_parser():
    recorded = [{"count": 3},
                {"startInMs": 0.1, "endInMs": 0.2, "startComputeMs": 0.2, "endComputeMs": 1.4, "startOutMs": 1.4,
                 "endOutMs": 1.5, "inMs": 0.1, "computeMs": 1.2, "outMs": 0.1, "latencyMs": 1.4, "endToEndMs": 1.4},
                {"startInMs": 2.0, "endInMs": 2.1, "startComputeMs": 2.1, "endComputeMs": 3.2, "startOutMs": 3.2,
                 "endOutMs": 3.3, "inMs": 0.1, "computeMs": 1.1, "outMs": 0.1, "latencyMs": 1.3, "endToEndMs": 1.3}]
    assert parse_trtexec_times(json.dumps(recorded)) == [1.2, 1.1]


@gpu
@pytest.mark.parametrize("kind, runtime", [("cuda", {}), ("cuda", {"precision": "fp16"}), ("tensorrt", {}), ("ort-gpu", {})])
def test_gpu_targets_measure_blocks_and_networks(tmp_path, kind, runtime):
    if kind == "tensorrt":
        pytest.importorskip("tensorrt")
    if kind == "ort-gpu":
        ort = pytest.importorskip("onnxruntime")
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            pytest.skip("onnxruntime without the CUDA execution provider")
    with gpu_target(tmp_path, kind, **runtime) as target:
        meta = target.metadata()
        results = [target.measure(a) for a in artifacts(tmp_path)]
    assert meta["gpu"] and all(m.n >= FAST.min_repeats and m.p10 > 0 for m in results)
    assert results[1].p10 > results[0].p10  # a whole network takes longer than one of its blocks


@gpu
def test_cuda_ensembles_run_serially_and_on_streams(tmp_path):
    space = get_space(SPACE)
    cache = OnnxCache(tmp_path / "onnx")
    members = [network_artifact(space, c, cache) for c in space.sample(3, np.random.default_rng(1), [RESOLUTION])]
    with gpu_target(tmp_path, "cuda") as target:
        alone = [target.measure(a).p10 for a in members]
        serial = target.measure_group(members, "serial").p10
        parallel = target.measure_group(members, "parallel").p10
    assert 0.8 * sum(alone) < serial < 1.25 * sum(alone)
    assert 0.9 * max(alone) < parallel < 1.05 * serial  # streams overlap the members, never add work
