"""The ``Target`` interface: where and how an exported model is timed."""

from __future__ import annotations

import concurrent.futures
import contextlib
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

from ofahw.errors import TargetError
from ofahw.export import Artifact, ExportJob, Quantization, quantized_onnx
from ofahw.measure.power import EnergyMeasurement, Meter, NoSensor, find_meter, measure_energy_as_set
from ofahw.measure.protocol import Measurement, Protocol, run_protocol


def check_threads(name: str, threads) -> int:
    """A target's ``threads`` option, which must be a positive integer."""
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise TargetError(f"target '{name}': runtime threads must be a positive integer, got {threads!r}")
    return threads


@dataclass(frozen=True)
class Prepared:
    """A loaded model, ready to time: ``run`` runs it synchronously ``per_call`` times back to back
    (GPU targets run it several times where one run is too short for their clock)."""

    run: Callable[[], None]
    per_call: int = 1


class Target(ABC):
    """A device + runtime that times artifacts under a :class:`Protocol`.

    Used as a context manager: ``open`` acquires the device (a session pool, an SSH connection),
    ``close`` releases it. Subclasses implement ``metadata`` and ``_prepare`` (make one run callable),
    and may override ``_clock`` (device events after a synchronise) and ``_release``.
    """

    kind: ClassVar[str]
    option_defaults: ClassVar[dict] = {}
    precisions: ClassVar[tuple[str, ...]] = ()  # values of the ``precision`` option, where the target has one
    batch_size: ClassVar[int] = 1  # jobs a campaign hands over at once (remote targets stream batches)
    times_groups: ClassVar[bool] = True  # measure_group works (host-clock targets on this machine)
    on_this_machine: ClassVar[bool] = True  # measures this machine (so never at once with another such target)
    # what a campaign may make before measuring: "model" (the file model_file returns), "onnx" (the fp32
    # export, where the model is quantized on the device), "" (nothing: the target builds its torch module)
    made_ahead: ClassVar[str] = "model"
    source: str = ""  # where the target's definition came from (a file, "built in"); set by load_target
    description: str = ""
    calibration: str | None = None  # image folder that calibrates int8 models (``--calib``); else random inputs
    energy: dict | None = None  # the target file's ``energy`` section: sensor (auto, rapl, nvml, hwmon, ...), rails
    placement: dict | None = None  # the target file's ``ray`` section: resources of the node it is measured on

    def __init__(self, name: str, options: dict | None = None, protocol: Protocol | None = None):
        options = dict(options or {})
        unknown = set(options) - set(self.option_defaults)
        if unknown:
            raise TargetError(
                f"target '{name}': unknown {self.kind} runtime options {sorted(unknown)} "
                f"(known: {sorted(self.option_defaults)})"
            )
        self.name = name
        self.options = {**self.option_defaults, **options}
        self.protocol = protocol or Protocol()
        self._open = False
        if self.precisions and self.options["precision"] not in self.precisions:
            raise TargetError(f"target '{name}': precision must be one of {list(self.precisions)} for {self.describe_runtime()}, "
                              f"got {self.options['precision']!r}")

    def describe_runtime(self) -> str:
        """The runtime in words, for messages."""
        return f"kind {self.kind}"

    def device_key(self) -> str:
        """The device this target measures, as a name: two targets with one key share a device."""
        return "this machine"

    @property
    def precision(self) -> str:
        return self.options.get("precision", "fp32")

    def quantization(self) -> Quantization | None:
        """How this target's models are quantized (precision int8), or None where they run as exported."""
        if self.precision != "int8":
            return None
        return Quantization(per_channel=bool(self.options.get("per_channel")), calibration=self.calibration)

    def model_file(self, artifact: Artifact) -> Path:
        """The ONNX file this target runs for ``artifact``: the export itself, or its int8 model."""
        quantization = self.quantization()
        if quantization is None:
            return Path(artifact.onnx())
        return quantized_onnx(Path(artifact.onnx()), artifact.input_shape, quantization)

    def export_job(self, job: ExportJob) -> ExportJob | None:
        """``job`` (a model's fp32 export) as this target needs it made ahead of measuring (see
        ``made_ahead``): with its int8 quantization where it runs the int8 model; None where it needs no file."""
        if not self.made_ahead:
            return None
        return replace(job, quantization=self.quantization()) if self.made_ahead == "model" else job

    def __enter__(self) -> Target:
        if self.placement:
            raise TargetError(f"target '{self.name}' is measured on the Ray cluster node its file's ray section names, and this "
                              "command measures here: pass --ray (e.g. `ofahw profile --ray`, `ofahw reprofile --ray`), or "
                              "remove the section to measure it here")
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        self._open = True

    def close(self) -> None:
        self._open = False

    @abstractmethod
    def metadata(self) -> dict:
        """Device and runtime facts recorded with every LUT (model, cores, versions, clocks)."""

    def where_measured(self) -> dict:
        """Where this session's measurements ran, where only the end of a session knows (a target
        placed on a Ray node: the node, or the nodes after one was lost and came back); recorded with
        the metadata."""
        return {}

    @abstractmethod
    def _prepare(self, artifact: Artifact) -> Prepared:
        """Load ``artifact`` and return how to run it."""

    def _release(self) -> None:
        """Free what ``_prepare`` loaded."""

    @classmethod
    def from_config(cls, name: str, data: dict, protocol: Protocol, **flags) -> Target:
        """Build from a target file's mapping (``runtime`` options; subclasses read their sections)."""
        return cls(name, data.get("runtime"), protocol)

    def _clock(self) -> int:
        return time.perf_counter_ns()

    def fingerprint(self) -> dict:
        """What must match for two measurements to be comparable (kind and runtime options)."""
        return {"kind": self.kind, "options": dict(sorted(self.options.items()))}

    def completed(self, stored: dict | None) -> dict:
        """A fingerprint recorded earlier (a LUT's, a journal's) as this target would write it: options
        added to this kind since (``precision``, say) at their defaults, which is what was measured."""
        stored = dict(stored or {})
        if stored.get("kind") == self.kind:
            stored["options"] = dict(sorted({**self.option_defaults, **stored.get("options", {})}.items()))
        return stored

    def measure(self, artifact: Artifact, protocol: Protocol | None = None) -> Measurement:
        if not self._open:
            raise RuntimeError(f"target {self.name} is not open; use it as a context manager")
        prepared = self._prepare(artifact)
        try:
            return run_protocol(prepared.run, protocol or self.protocol, clock=self._clock, per_call=prepared.per_call)
        finally:
            self._release()

    def energy_meter(self, sensor: dict | None = None) -> Meter:
        """The power sensor ``sensor`` names (or the first readable); a TargetError naming what was
        looked for where there is none."""
        try:
            return find_meter(sensor)
        except NoSensor as exc:
            raise TargetError(f"target '{self.name}': {exc}") from None

    def check_energy(self, sensor: dict | None = None) -> dict:
        """What is found of the power sensor ``sensor`` names; a TargetError where none is readable."""
        meter = self.energy_meter(sensor)
        meter.close()
        return meter.describe()

    def measure_energy(self, artifact: Artifact, sensor: dict | None = None) -> EnergyMeasurement:
        """Energy per inference of ``artifact`` (mJ, idle power subtracted) with the power sensor that
        ``sensor`` (a target file's ``energy`` section: sensor, rails, window_s, idle_s) names, or the
        first readable one; windows of back-to-back runs (:func:`ofahw.measure.power.measure_energy`).
        No readable sensor: a TargetError naming what was looked for."""
        if not self._open:
            raise RuntimeError(f"target {self.name} is not open; use it as a context manager")
        with contextlib.closing(self.energy_meter(sensor)) as meter:
            prepared = self._prepare(artifact)
            try:
                m = measure_energy_as_set(prepared.run, meter, sensor)
            finally:
                self._release()
        return replace(m, mj=m.mj / prepared.per_call, std_mj=m.std_mj / prepared.per_call)

    def measure_group(self, artifacts: list[Artifact], mode: str, protocol: Protocol | None = None) -> Measurement:
        """Time several models run as one (an ensemble): one after another (``serial``) or all at
        once (``parallel``), each sample the time until the last one is done. Targets whose
        ``times_groups`` is false refuse."""
        if not self._open:
            raise RuntimeError(f"target {self.name} is not open; use it as a context manager")
        if not self.times_groups:
            raise TargetError(f"target '{self.name}' ({self.kind}) cannot time groups of models yet")
        with contextlib.ExitStack() as stack:
            prepared = self._prepare_group(artifacts, mode, stack)
            try:
                return run_protocol(prepared.run, protocol or self.protocol, clock=self._clock, per_call=prepared.per_call)
            finally:
                self._release()

    def _prepare_group(self, artifacts: list[Artifact], mode: str, stack: contextlib.ExitStack) -> Prepared:
        """Load ``artifacts`` and return a callable that runs them as a group: here, host threads
        (one per model, each closure keeping its own session); ``stack`` closes what it opens."""
        runs = [self._prepare(a).run for a in artifacts]
        if mode == "serial":
            return Prepared(lambda: [run() for run in runs])
        pool = stack.enter_context(concurrent.futures.ThreadPoolExecutor(len(runs)))
        return Prepared(lambda: list(pool.map(lambda run: run(), runs)))

    def measure_batch(self, jobs: list[tuple[Artifact, Protocol]]) -> Iterator[Measurement]:
        """Measurements of ``jobs`` in order, each yielded as soon as it is done."""
        for artifact, protocol in jobs:
            yield self.measure(artifact, protocol)
