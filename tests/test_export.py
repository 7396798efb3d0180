import onnx
import pytest
import torch

from ofahw.export import ExportError, OnnxCache, export_onnx
from ofahw.space import build_part, get_space


def test_block_export_is_valid_and_matches_torch(tmp_path):
    space = get_space("ofa-mbv3-w1.0")
    part = space.parts(space.sample(1, __import__("numpy").random.default_rng(0), [128])[0])[5]
    cache = OnnxCache(tmp_path)
    path = cache.get(part.key, lambda: build_part(part), (1, *part.input_shape))
    model = onnx.load(path)
    onnx.checker.check_model(model)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    stamp = path.stat().st_mtime_ns
    calls = []
    again = cache.get(part.key, lambda: calls.append(1) or build_part(part), (1, *part.input_shape))
    assert again == path and not calls  # served from the cache, not exported again
    assert path.stat().st_mtime_ns >= stamp


class _Unstable(torch.nn.Module):
    """Exports a different graph from the one torch runs: ONNX and torch disagree, every time."""

    def forward(self, x):
        return x + 1.0 if torch.onnx.is_in_onnx_export() else x


def test_export_that_disagrees_with_torch_is_refused():
    with pytest.raises(ExportError, match="differs from torch"):
        export_onnx(_Unstable().eval(), (1, 4))


def test_cache_prune_keeps_recent_files(tmp_path):
    cache = OnnxCache(tmp_path)
    for i in range(3):
        (tmp_path / f"{i}.onnx").write_bytes(b"x" * 1000)
    cache.prune(max_bytes=2500)
    assert len(list(tmp_path.glob("*.onnx"))) == 2


def test_artifacts_build_lazily_and_carry_their_shape(tmp_path, monkeypatch):
    from ofahw.export import network_artifact, part_artifact

    monkeypatch.setenv("OFAHW_CACHE", str(tmp_path))
    space = get_space("ofa-mbv3-w1.0")
    config = space.sample(1, __import__("numpy").random.default_rng(0), [128])[0]
    cache = OnnxCache()
    net = network_artifact(space, config, cache)
    assert net.key == space.config_hash(config) and net.input_shape == (1, 3, 128, 128)
    assert not list(tmp_path.rglob("*.onnx"))  # nothing exported until asked
    onnx.checker.check_model(onnx.load(str(net.onnx())))
    part = next(iter(space.catalogue([128]).values()))
    block = part_artifact(part, cache)
    assert block.key == part.key and block.input_shape == (1, *part.input_shape)
    assert isinstance(block.torch(), torch.nn.Module)
