import hashlib
import os
import stat

import onnx
import pytest
import torch

from ofahw.export import ExportError, OnnxCache, export_onnx, prune_quantized
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
    os.utime(path, ns=(0, stamp))
    calls = []
    again = cache.get(part.key, lambda: calls.append(1) or build_part(part), (1, *part.input_shape))
    assert again == path and not calls  # served from the cache, not exported again
    # marked used by its access time; its modification time, which OpenVINO's model cache keys on, stays
    assert path.stat().st_atime_ns > 0 and path.stat().st_mtime_ns == stamp


class _Unstable(torch.nn.Module):
    """Exports a different graph from the one torch runs: ONNX and torch disagree, every time."""

    def forward(self, x):
        return x + 1.0 if torch.onnx.is_in_onnx_export() else x


def test_export_that_disagrees_with_torch_is_refused():
    with pytest.raises(ExportError, match="differs from torch"):
        export_onnx(_Unstable().eval(), (1, 4))


@pytest.mark.parametrize("cache", ["onnx", "int8"])
def test_cache_prune_keeps_recently_used_files(tmp_path, cache):
    suffix = {"onnx": ".onnx", "int8": ".int8.onnx"}[cache]
    for i in range(3):
        path = tmp_path / f"{i}{suffix}"
        path.write_bytes(b"x" * 1000)
        os.utime(path, ns=(i * 10**9, (3 - i) * 10**9))  # used in the order 0, 1, 2; written 2, 1, 0
    (tmp_path / "notes.txt").write_bytes(b"x" * 5000)  # not the cache's: kept
    if cache == "onnx":
        OnnxCache(tmp_path).prune(max_bytes=2500)
    else:
        prune_quantized(max_bytes=2500, root=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"1{suffix}", f"2{suffix}", "notes.txt"]


def test_a_files_content_hash_is_read_once_per_version(tmp_path, monkeypatch):
    from ofahw import _io

    path = tmp_path / "model.onnx"
    path.write_bytes(b"first")
    reads = []
    real = _io._read_sha256
    monkeypatch.setattr(_io, "_read_sha256", lambda p: reads.append(p) or real(p))
    _io._version_sha256.cache_clear()
    first = _io.content_sha256(path)
    first.update(b"extended")  # a copy: the next caller gets the file's hash alone
    assert _io.content_sha256(path).hexdigest() == hashlib.sha256(b"first").hexdigest() and len(reads) == 1
    _io.mark_used(path)  # marking use is no new version
    assert _io.content_sha256(path).hexdigest() == hashlib.sha256(b"first").hexdigest() and len(reads) == 1
    path.write_bytes(b"second!")
    assert _io.content_sha256(path).hexdigest() == hashlib.sha256(b"second!").hexdigest() and len(reads) == 2


def test_an_atomic_write_gives_the_mode_a_plain_write_would(tmp_path):
    """Its temp file is its owner's alone; the file renamed over the path is not (a LUT a team reads),
    and a file written again keeps its mode."""
    from ofahw import _io

    plain, atomic = tmp_path / "plain.csv", tmp_path / "lut.csv"
    plain.write_text("plain")
    _io.atomic_write_text(atomic, "first")
    assert stat.S_IMODE(atomic.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode) == _io.NEW_FILE_MODE
    atomic.chmod(0o640)
    _io.atomic_write_text(atomic, "second")
    assert stat.S_IMODE(atomic.stat().st_mode) == 0o640 and atomic.read_text() == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lut.csv", "plain.csv"]


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


def test_models_are_made_ahead_in_parallel_processes(tmp_path, monkeypatch):
    """Blocks and subnets exported and quantized in two processes, into the caches the targets read:
    measuring them then exports and quantizes nothing."""
    import numpy as np

    from ofahw.export import Quantization, ahead, export_ahead, network_job, part_artifact, part_job, quantize, quantized_onnx
    from ofahw.measure.cpu import OnnxruntimeCpuTarget

    monkeypatch.setenv("OFAHW_CACHE", str(tmp_path))
    space = get_space("ofa-mbv3-w1.0")
    parts = [p for _, p in space.block_parts([128]).values()][: ahead.MIN_AHEAD]
    configs = space.sample(2, np.random.default_rng(0), [128])
    int8 = Quantization()
    jobs = [part_job(p, 1, int8) for p in parts] + [network_job(space, c, 1, int8) for c in configs]
    cache = OnnxCache()
    assert export_ahead(jobs[:-3], cache, processes=2) is None  # too few to start processes for: nothing made
    assert all(j.missing(cache) for j in jobs)

    made = export_ahead(jobs + jobs[:2], cache, processes=2)  # a model asked twice is made once
    assert (made.models, made.processes, made.quantized) == (len(jobs), 2, True)
    assert "exported and quantized to int8 18 models before measuring, in 2 processes" in made.describe()
    assert not any(j.missing(cache) for j in jobs)
    assert export_ahead(jobs, cache, processes=2) is None

    monkeypatch.setattr(quantize, "quantize_int8", lambda *a: pytest.fail("quantized again"))
    block = part_artifact(parts[0], cache)
    onnx.checker.check_model(onnx.load(str(quantized_onnx(block.onnx(), block.input_shape, int8))))
    with OnnxruntimeCpuTarget("cpu-int8", {"precision": "int8"}) as target:
        assert target.model_file(block).name.endswith(".int8.onnx")


def test_a_profile_makes_its_models_ahead_and_says_so(monkeypatch, tmp_path):
    """A campaign makes the models of what it has left to measure (its networks, seeded apart from
    other tests' so that none is cached) ahead, logging how; they are then in the cache."""
    from conftest import RESOLUTION, SPACE, fast_cpu_target

    from ofahw.export import ahead
    from ofahw.lut.campaign import Campaign

    monkeypatch.setattr(ahead, "usable_cpus", lambda: 2)
    monkeypatch.setattr(ahead, "MIN_AHEAD", 2)
    lines, space = [], get_space(SPACE)
    campaign = Campaign(space, fast_cpu_target(), tmp_path / "cpu.csv", [RESOLUTION], samples=5, seed=7,
                        progress=False, log=lines.append)
    campaign.make_ahead()
    assert len(lines) == 1 and lines[0].startswith("target cpu: exported ") and lines[0].endswith(" s")
    assert "in 2 processes" in lines[0]
    cache = OnnxCache()
    networks = [i for i in campaign.plan() if i.kind == "network"]
    assert len(networks) == 5 and all(cache.path_for(f"network:{SPACE}:{i.key}", i.input_shape).exists() for i in networks)
