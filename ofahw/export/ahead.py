"""Models made ahead of measuring: exported (and quantized to int8) in parallel processes.

Measuring needs the machine to itself, so a campaign used to export each model where its first
round measured it, one at a time, the other cores idle. Before any round starts, nothing is
measured, and every usable core can export. An onnxruntime int8 profile (w1.2 at 160-224, batch 1,
nothing cached, 2 cores) spent 256 of its 819 s outside its rounds that way; made ahead, its 550
models took 116 s and the profile 649 s.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from ofahw.errors import Incomplete
from ofahw.export.artifacts import network_cache_key, network_input_shape
from ofahw.export.onnx import OnnxCache
from ofahw.export.quantize import Quantization, quantized_onnx, quantized_path
from ofahw.space import Part, Space, build_part, get_space

# Fewer missing models are made where they are measured: starting the processes (each imports torch) costs more.
MIN_AHEAD = 16


@dataclass(frozen=True)
class ExportJob:
    """A model to have in the caches: block ``part`` or subnet ``config`` of the registered space
    named ``space``, at ``input_shape`` (batch first), under the ONNX cache's ``key``; its int8 model
    too where ``quantization`` is given."""

    key: str
    input_shape: tuple[int, ...]
    part: Part | None = None
    space: str | None = None
    config: dict | None = None
    quantization: Quantization | None = None

    def build(self):
        return build_part(self.part) if self.part is not None else get_space(self.space).build_network(self.config)

    def missing(self, cache: OnnxCache) -> bool:
        fp32 = cache.path_for(self.key, self.input_shape)
        if not fp32.exists():
            return True
        return self.quantization is not None and not quantized_path(fp32, self.input_shape, self.quantization).exists()

    def make(self, cache: OnnxCache) -> None:
        fp32 = cache.get(self.key, self.build, self.input_shape)
        if self.quantization is not None:
            quantized_onnx(fp32, self.input_shape, self.quantization)


def part_job(part: Part, batch: int, quantization: Quantization | None = None) -> ExportJob:
    return ExportJob(part.key, (batch, *part.input_shape), part=part, quantization=quantization)


def network_job(space: Space, config: dict, batch: int, quantization: Quantization | None = None) -> ExportJob:
    return ExportJob(network_cache_key(space, config), network_input_shape(config, batch), space=space.name, config=config,
                     quantization=quantization)


@dataclass(frozen=True)
class AheadSummary:
    """What :func:`export_ahead` made: ``models`` models in ``processes`` processes, in ``seconds``."""

    models: int
    quantized: bool
    processes: int
    seconds: float

    def describe(self) -> str:
        made = "exported and quantized to int8" if self.quantized else "exported"
        return f"{made} {self.models} models before measuring, in {self.processes} processes: {self.seconds:.0f} s"


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def export_ahead(jobs: list[ExportJob], cache: OnnxCache, processes: int | None = None, progress: bool = False,
                 desc: str = "export", position: int = 0) -> AheadSummary | None:
    """Make the models of ``jobs`` that the caches lack, in ``processes`` processes (default: one per
    usable core). None, with nothing made, where fewer than ``MIN_AHEAD`` are missing or one process
    is usable: those are made where they are measured. A process that dies (killed, out of memory)
    stops it with :class:`Incomplete`; what was made is cached."""
    from tqdm import tqdm

    missing = list({(j.key, j.input_shape): j for j in jobs if j.missing(cache)}.values())
    cpus = usable_cpus()
    processes = min(processes or cpus, len(missing))
    if processes < 2 or len(missing) < MIN_AHEAD:
        return None
    start = time.monotonic()
    # spawned, not forked: a fork of a process whose torch thread pools have started can hang
    pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker,
                               initargs=(max(1, cpus // processes),))
    try:
        with tqdm(total=len(missing), desc=desc, unit="model", disable=not progress, dynamic_ncols=True, leave=False,
                  position=position) as bar:
            for future in as_completed([pool.submit(_make, job, str(cache.root), cache.opset) for job in missing]):
                future.result()
                bar.update(1)
    except BrokenProcessPool:
        raise Incomplete("a process exporting models ended abruptly (killed, or out of memory); the models it made are "
                         "cached: rerun to go on") from None
    finally:
        pool.shutdown(cancel_futures=True)
    return AheadSummary(len(missing), any(j.quantization for j in missing), processes, time.monotonic() - start)


def _start_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _make(job: ExportJob, root: str, opset: int) -> None:
    job.make(OnnxCache(root, opset))
