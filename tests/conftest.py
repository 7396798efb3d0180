"""Shared fixtures: a private ONNX cache, a fast protocol, and one small real profile."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# removed when the test session's interpreter exits (a cache holds about 1.6 GB of exports)
_CACHE = tempfile.TemporaryDirectory(prefix="ofahw-test-cache-")
_TARGETS = tempfile.TemporaryDirectory(prefix="ofahw-test-targets-")
os.environ.setdefault("OFAHW_CACHE", _CACHE.name)
os.environ.setdefault("OFAHW_TARGETS", _TARGETS.name)

from ofahw.measure import Protocol  # noqa: E402
from ofahw.measure.cpu import OnnxruntimeCpuTarget  # noqa: E402

# Short rounds keep the suite fast; behaviour, not timing, is under test.
FAST = Protocol(warmup_runs=2, warmup_s=0.0, min_repeats=5, min_time_s=0.004, max_time_s=0.15,
                network_min_time_s=0.01, gate=0.05, rounds=2, network_rounds=2, retries=2)
SPACE = "ofa-mbv3-w1.0"
RESOLUTION = 128


def fast_cpu_target(**options) -> OnnxruntimeCpuTarget:
    target = OnnxruntimeCpuTarget("cpu", options, FAST)
    target.source = "test"
    return target


@pytest.fixture(scope="session")
def profiled_lut(tmp_path_factory) -> Path:
    """A real profile of OFA-MBV3 w1.0 at resolution 128 on the local CPU (fast protocol)."""
    from ofahw.lut.campaign import Campaign
    from ofahw.space import get_space

    out = tmp_path_factory.mktemp("lut") / "cpu.csv"
    Campaign(get_space(SPACE), fast_cpu_target(), out, [RESOLUTION], samples=8, progress=False, log=lambda m: None).run()
    return out


@pytest.fixture(scope="session")
def weights(tmp_path_factory) -> Path:
    """A checkpoint of the w1.0 supernet at a seeded random initialisation (no OFA weights can be downloaded here)."""
    import torch

    from ofahw.space import get_space

    path = tmp_path_factory.mktemp("weights") / "supernet.pth"
    torch.manual_seed(0)
    torch.save({"state_dict": get_space(SPACE)._make_supernet().state_dict()}, path)
    return path


def make_images(root: Path, classes: int, per_class: int, size=lambda i: (40 + 8 * i, 48)) -> Path:
    """An image folder ``root/n0<c>/<i>.png`` of random pixels, image i of a class ``size(i)`` (height, width)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(1, classes + 1):
        (root / f"n0{c}").mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, size=(*size(i), 3), dtype=np.uint8)).save(root / f"n0{c}" / f"{i}.png")
    return root


def write_yaml(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def fast_target_file(folder: Path, name: str, runtime: str = "{threads: 1}", kind: str = "cpu") -> Path:
    """``folder/targets/NAME.yaml``: a target of ``kind`` with ``runtime`` options and the FAST protocol."""
    protocol = "\n".join(f"  {k}: {v}" for k, v in FAST.to_dict().items())
    return write_yaml(folder / "targets" / f"{name}.yaml", f"kind: {kind}\nruntime: {runtime}\nprotocol:\n{protocol}\n")


def copy_lut(source: Path, csv_path: Path) -> Path:
    """A LUT's CSV and JSON copied to ``csv_path``."""
    import shutil

    csv_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, csv_path)
    shutil.copy(source.with_suffix(".json"), csv_path.with_suffix(".json"))
    return csv_path


@pytest.fixture
def busy_core():
    """A busy loop on the core this thread is pinned to (nice 5, as a background job would run)."""
    before = os.sched_getaffinity(0)
    core = min(before)
    os.sched_setaffinity(0, {core})
    busy = subprocess.Popen(["nice", "-n", "5", sys.executable, "-c", f"import os; os.sched_setaffinity(0, {{{core}}})\n"
                             "while True: pass"])
    try:
        yield core
    finally:
        busy.kill()
        busy.wait()
        os.sched_setaffinity(0, before)


def fitted_accuracy_file(folder: Path) -> Path:
    """``folder/acc.json``: a fitted accuracy predictor for SPACE at RESOLUTION, on generated top-1 values
    (a smooth function of FLOPs: for searches whose accuracy source is not under test)."""
    import numpy as np

    from ofahw.predict.fitted_accuracy import FittedAccuracyPredictor
    from ofahw.space import get_space

    space = get_space(SPACE)
    configs = space.sample(40, np.random.default_rng(0), [RESOLUTION])
    y = np.array([0.6 + 0.001 * space.flops(c) ** 0.5 for c in configs])
    path = folder / "acc.json"
    FittedAccuracyPredictor.fit(configs, y, space, seed=0, trained_on="generated").save(path)
    return path
