"""The ``Target`` interface: where and how an exported model is timed."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ofahw.errors import TargetError
from ofahw.measure.protocol import Measurement, Protocol, run_protocol


@dataclass(frozen=True)
class Artifact:
    """One item to time: a model at a fixed input shape, built lazily where it is measured."""

    key: str
    input_shape: tuple[int, ...]  # (batch, channels, height, width)
    onnx: Callable[[], Path]  # returns the path of the ONNX file, exporting it if needed


class Target(ABC):
    """A device + runtime that times artifacts under a :class:`Protocol`.

    Used as a context manager: ``open`` acquires the device (a session pool, an SSH connection),
    ``close`` releases it. Subclasses implement ``_prepare`` (make one run callable) and may override
    ``measure_many`` to batch work (the SSH target streams a whole batch to its remote runner).
    """

    kind: ClassVar[str]
    option_defaults: ClassVar[dict] = {}

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

    def __enter__(self) -> Target:
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

    @abstractmethod
    def _prepare(self, artifact: Artifact) -> Callable[[], None]:
        """Load ``artifact`` and return a callable that runs it once, synchronously."""

    def _release(self) -> None:
        """Free what ``_prepare`` loaded."""

    def _clock(self) -> int:
        return time.perf_counter_ns()

    def fingerprint(self) -> dict:
        """What must match for two measurements to be comparable (kind and runtime options)."""
        return {"kind": self.kind, "options": dict(sorted(self.options.items()))}

    def measure(self, artifact: Artifact, protocol: Protocol | None = None) -> Measurement:
        if not self._open:
            raise RuntimeError(f"target {self.name} is not open; use it as a context manager")
        run_once = self._prepare(artifact)
        try:
            return run_protocol(run_once, protocol or self.protocol, clock=self._clock)
        finally:
            self._release()

    def measure_many(self, artifacts: Iterable[Artifact], protocol: Protocol | None = None) -> Iterator[tuple[Artifact, Measurement]]:
        for artifact in artifacts:
            yield artifact, self.measure(artifact, protocol)
