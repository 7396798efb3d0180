"""Local GPU targets: TensorRT engines, onnxruntime with the CUDA / TensorRT execution providers,
and torch on CUDA (with CUDA graphs where the module allows). They skip nothing silently: without a
GPU or the runtime, opening the target says what is missing."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from abc import abstractmethod
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ofahw._io import atomic_write_bytes, cache_dir
from ofahw.errors import TargetError
from ofahw.export import Artifact
from ofahw.measure.cpu import OnnxruntimeCpuTarget
from ofahw.measure.host import host_facts
from ofahw.measure.target import Prepared, Target

PRECISIONS = ("fp32", "fp16")


def _torch_cuda():
    try:
        import torch
    except ImportError:
        raise TargetError("GPU targets need torch with CUDA") from None
    if not torch.cuda.is_available():
        raise TargetError("no CUDA GPU is visible to torch on this machine")
    return torch


def gpu_metadata() -> dict:
    """GPU model, driver / CUDA versions, and clocks, temperature and power where nvidia-smi reads them."""
    torch = _torch_cuda()
    props = torch.cuda.get_device_properties(0)
    facts = {"gpu": props.name, "gpu_memory_gib": round(props.total_memory / 2**30, 1), "cuda": torch.version.cuda,
             "torch": torch.__version__, "compute_capability": f"{props.major}.{props.minor}"}
    if shutil.which("nvidia-smi"):
        fields = "driver_version,clocks.sm,clocks.mem,clocks.max.sm,temperature.gpu,power.draw,pstate"
        try:
            out = subprocess.run(["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader", "-i", "0"],
                                 capture_output=True, text=True, timeout=20).stdout.strip()
            facts.update(dict(zip(fields.split(","), (v.strip() for v in out.split(",")), strict=False)))
        except (OSError, subprocess.SubprocessError):
            pass
    return {**host_facts(), **facts}


class _EventClock:
    """GPU time from CUDA events: ``run_once`` advances a virtual nanosecond clock by the elapsed
    event time of its runs, so the protocol's timing loop measures device time, not host time.

    CUDA events resolve about half a microsecond and one launch of a small block lasts a few, so
    each call launches the model ``per_call`` times back to back, enough for a sample to span
    at least ``SAMPLE_NS`` of device time; the protocol divides by it."""

    SAMPLE_NS = 100_000
    MAX_PER_CALL = 1000

    def __init__(self, torch, stream):
        self.torch, self.stream, self.now_ns, self.per_call = torch, stream, 0, 1
        self.start = torch.cuda.Event(enable_timing=True)
        self.end = torch.cuda.Event(enable_timing=True)

    def elapsed_ns(self, launch: Callable[[], None], times: int) -> int:
        self.start.record(self.stream)
        for _ in range(times):
            launch()
        self.end.record(self.stream)
        self.end.synchronize()
        return int(self.start.elapsed_time(self.end) * 1e6)

    def wrap(self, launch: Callable[[], None]) -> Callable[[], None]:
        self.elapsed_ns(launch, 3)
        one = max(self.elapsed_ns(launch, 10) // 10, 1)
        self.per_call = int(min(max(-(-self.SAMPLE_NS // one), 1), self.MAX_PER_CALL))

        def run_once():
            self.now_ns += self.elapsed_ns(launch, self.per_call)

        return run_once

    def __call__(self) -> int:
        return self.now_ns


class _StreamTarget(Target):
    """A GPU target timed with CUDA events on its own stream. Subclasses set ``self.torch`` and
    ``self.stream`` when opened and implement ``_launcher``: load a model and return what launches
    one run of it on a given stream. Groups of models (ensembles) run on the timed stream one after
    another, or each on a stream of its own, all at once."""

    precisions = PRECISIONS

    def __init__(self, name, options=None, protocol=None):
        super().__init__(name, options, protocol)
        self._clock_source = None
        self._keep = []

    @abstractmethod
    def _launcher(self, artifact: Artifact, stream) -> Callable[[], None]:
        """Load ``artifact`` (kept in ``self._keep`` until released) and return what launches one run on ``stream``."""

    def _prepare(self, artifact: Artifact) -> Prepared:
        return self._timed(self._launcher(artifact, self.stream))

    def _prepare_group(self, artifacts: list[Artifact], mode: str, stack) -> Prepared:
        """On the GPU: ``serial`` launches the members one after another on the timed stream;
        ``parallel`` forks each member onto a stream of its own and joins them, so a sample lasts
        until the slowest member is done (the GPU shares its units among them)."""
        torch = self.torch
        streams = [self.stream if mode == "serial" else torch.cuda.Stream() for _ in artifacts]
        launches = [self._launcher(a, s) for a, s in zip(artifacts, streams, strict=True)]
        fork, joins = torch.cuda.Event(), [torch.cuda.Event() for _ in artifacts]

        def serial():
            for launch in launches:
                launch()

        def parallel():
            fork.record(self.stream)
            for stream, launch, join in zip(streams, launches, joins, strict=True):
                stream.wait_event(fork)
                launch()
                join.record(stream)
            for join in joins:
                self.stream.wait_event(join)

        return self._timed(serial if mode == "serial" else parallel)

    def _timed(self, launch: Callable[[], None]) -> Prepared:
        self._clock_source = _EventClock(self.torch, self.stream)
        run_once = self._clock_source.wrap(launch)
        return Prepared(run_once, self._clock_source.per_call)

    def _clock(self) -> int:
        return self._clock_source()

    def _release(self) -> None:
        self._keep = []


class TensorRTTarget(_StreamTarget):
    """ONNX → TensorRT engine (fp32 / fp16; engines cached by ONNX content, precision, TensorRT
    version and GPU), timed with CUDA events after warm-up."""

    kind = "tensorrt"
    option_defaults = {"precision": "fp16", "workspace_mib": 1024}

    def open(self) -> None:
        self.torch = _torch_cuda()
        try:
            import tensorrt as trt
        except ImportError:
            raise TargetError(f"target '{self.name}' needs the tensorrt Python package (pip install tensorrt)") from None
        self.trt, self.logger = trt, trt.Logger(trt.Logger.WARNING)
        self.stream = self.torch.cuda.Stream()
        super().open()

    def metadata(self) -> dict:
        return {**gpu_metadata(), "runtime": "tensorrt", "runtime_version": self.trt.__version__, "tensorrt": self.trt.__version__,
                **self.options}

    def _engine_path(self, onnx: bytes) -> Path:
        gpu = re.sub(r"[^A-Za-z0-9]+", "-", self.torch.cuda.get_device_name(0))
        digest = hashlib.sha256(onnx).hexdigest()[:24]
        return cache_dir("engines") / f"{digest}-{self.options['precision']}-trt{self.trt.__version__}-{gpu}.engine"

    def _build(self, onnx: bytes) -> bytes:
        trt = self.trt
        builder = trt.Builder(self.logger)
        flags = 0 if int(trt.__version__.split(".")[0]) >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, self.logger)
        if not parser.parse(onnx):
            raise TargetError(f"TensorRT cannot parse the model: {parser.get_error(0)}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, self.options["workspace_mib"] << 20)
        if self.options["precision"] == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise TargetError("TensorRT could not build an engine for the model")
        return bytes(serialized)

    def _launcher(self, artifact: Artifact, stream) -> Callable[[], None]:
        torch, trt = self.torch, self.trt
        onnx = Path(artifact.onnx()).read_bytes()
        path = self._engine_path(onnx)
        if not path.exists():
            atomic_write_bytes(path, self._build(onnx))
        engine = trt.Runtime(self.logger).deserialize_cuda_engine(path.read_bytes())
        context = engine.create_execution_context()
        self._keep += [engine, context]
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            dtype = torch.from_numpy(np.zeros(1, dtype=trt.nptype(engine.get_tensor_dtype(name)))).dtype
            buffer = torch.randn(tuple(engine.get_tensor_shape(name)), device="cuda").to(dtype)
            context.set_tensor_address(name, buffer.data_ptr())
            self._keep.append(buffer)
        return lambda: context.execute_async_v3(stream.cuda_stream)


class TorchCudaTarget(_StreamTarget):
    """The torch module itself on CUDA (eager, or replayed as a CUDA graph), timed with CUDA events.
    Works wherever torch sees a GPU; needs no ONNX runtime."""

    kind = "cuda"
    option_defaults = {"precision": "fp32", "cuda_graphs": True}
    made_ahead = ""
    # A graph replay saves launch overhead, a few times the forward's time at most for small
    # models; one that looks 20x faster than the eager forward is not timing the work (seen on an
    # H100 when replays ran on another stream than the timed one): run eagerly instead.
    GRAPH_SANITY = 20

    def open(self) -> None:
        self.torch = _torch_cuda()
        self.stream = self.torch.cuda.Stream()
        super().open()

    def metadata(self) -> dict:
        return {**gpu_metadata(), "runtime": "torch-cuda", "runtime_version": self.torch.__version__, **self.options}

    def _launcher(self, artifact: Artifact, stream) -> Callable[[], None]:
        """Load ``artifact`` and return what launches one forward pass on ``stream`` (a graph
        replay where one can be captured and passes the sanity check, else the eager module)."""
        torch = self.torch
        if artifact.torch is None:
            raise TargetError(f"target '{self.name}' needs the torch module of {artifact.key}, not only its ONNX file")
        dtype = torch.float16 if self.options["precision"] == "fp16" else torch.float32
        model = artifact.torch().to("cuda", dtype).eval()
        x = torch.randn(artifact.input_shape, device="cuda", dtype=dtype)

        def eager():
            with torch.no_grad(), torch.cuda.stream(stream):
                model(x)

        for _ in range(3):  # warm-up before capture, as CUDA graphs require
            eager()
        stream.synchronize()
        launch = self._capture(model, x, stream) if self.options["cuda_graphs"] else None
        check = _EventClock(torch, stream)
        if launch is not None and check.elapsed_ns(launch, 3) * self.GRAPH_SANITY < check.elapsed_ns(eager, 3):
            launch = None
        self._keep += [model, x]
        return launch or eager

    def _capture(self, model, x, stream):
        """The forward pass captured as a CUDA graph (its replay), or None where it cannot be."""
        torch = self.torch
        try:
            graph = torch.cuda.CUDAGraph()
            with torch.no_grad(), torch.cuda.graph(graph, stream=stream):
                model(x)
        except RuntimeError:
            return None

        def replay():
            with torch.cuda.stream(stream):  # replay() launches on the current stream: the member's own
                graph.replay()

        self._keep.append(graph)
        return replay


class OnnxruntimeGpuTarget(OnnxruntimeCpuTarget):
    """onnxruntime with the CUDA or TensorRT execution provider (``provider: cuda | tensorrt``).
    ``session.run`` copies outputs back to the host, so host timing covers the device work."""

    kind = "ort-gpu"
    option_defaults = {"threads": 1, "graph_optimization": "all", "provider": "cuda", "precision": "fp32", "per_channel": False}
    PROVIDERS = {"cuda": ["CUDAExecutionProvider"], "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider"]}

    def __init__(self, name, options=None, protocol=None):
        super().__init__(name, options, protocol)
        if self.options["provider"] not in self.PROVIDERS:
            raise TargetError(f"target '{name}': provider must be one of {sorted(self.PROVIDERS)}")
        self.providers = self.PROVIDERS[self.options["provider"]]

    def open(self) -> None:
        import onnxruntime as ort

        missing = [p for p in self.providers if p not in ort.get_available_providers()]
        if missing:
            raise TargetError(f"target '{self.name}': onnxruntime here lacks {missing} (install onnxruntime-gpu)")
        super().open()

    def metadata(self) -> dict:
        return {**super().metadata(), **gpu_metadata(), "provider": self.providers[0]}
