"""What a target times: a model at a fixed input shape, built lazily where it is measured (the
Polygraphy loader idea: a target is handed how to get the artifact, not the artifact)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ofahw.export.onnx import OnnxCache
from ofahw.space import Part, Space, build_part


@dataclass(frozen=True)
class Artifact:
    """One item to time: a model at a fixed input shape, built lazily where it is measured."""

    key: str
    input_shape: tuple[int, ...]  # (batch, channels, height, width)
    onnx: Callable[[], Path]  # returns the path of the ONNX file, exporting it if needed
    torch: Callable[[], object] | None = None  # builds the torch module (for targets that run torch itself)


def part_artifact(part: Part, cache: OnnxCache, batch: int = 1) -> Artifact:
    """One block (or stem / head piece) of a space at its real input shape, ``batch`` inputs at once."""
    shape = (batch, *part.input_shape)
    return Artifact(part.key, shape, lambda: cache.get(part.key, lambda: build_part(part), shape), lambda: build_part(part))


def network_input_shape(config: dict, batch: int = 1) -> tuple[int, int, int, int]:
    """A whole subnet's input: ``batch`` RGB images at its resolution."""
    return (batch, 3, config["r"], config["r"])


def network_cache_key(space: Space, config: dict) -> str:
    """The ONNX cache's key of a whole subnet."""
    return f"network:{space.name}:{space.config_hash(config)}"


def network_artifact(space: Space, config: dict, cache: OnnxCache, batch: int = 1) -> Artifact:
    """A whole subnet (random weights: latency does not depend on their values), ``batch`` images at once."""
    shape = network_input_shape(config, batch)

    def build():
        return space.build_network(config)

    return Artifact(space.config_hash(config), shape, lambda: cache.get(network_cache_key(space, config), build, shape), build)
