"""Probe groups: the blocks one measured block stands for, which blocks to measure, and how a
value measured on a group's ends carries over to its other blocks.

A probe group is a part's kind, channels, kernel, stride and flags, its spatial size and expansion
left out (36 groups in OFA-MobileNetV3 at any set of resolutions). Within one, latency follows the
block's size (FLOPs plus input elements) smoothly, so the group's smallest and largest block are
measured and every other block takes the value interpolated between theirs in log size. Both a
transfer (the speed ratio to a source LUT) and a fast profile (the latency itself) use them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np

from ofahw.space import part_cost

_SIZED = re.compile(r"^(input|output):(?:\d+x)*(\d+)$")


def probe_group(key: str) -> str:
    """A part without its spatial size and expansion (``expanded_conv-input:136-output:192-kernel:3-stride:2-...``):
    the parts one probe block stands for."""
    fields = [_SIZED.sub(r"\1:\2", f) for f in key.split("-") if not f.startswith(("expand:", "mid:"))]
    return "-".join(fields)


def probe_size(part) -> float:
    """A part's FLOPs plus its input's elements: its size in a probe group (a pooling part has no FLOPs)."""
    return part_cost(part)[0] + float(np.prod(part.input_shape))


def probe_blocks(space, resolutions: list[int]) -> dict[str, tuple[int, object]]:
    """The blocks to probe in each probe group of ``space`` at ``resolutions``, by key -> (resolution,
    part): the group's smallest and largest (:func:`probe_size`), between which
    :func:`interpolate_in_groups` interpolates (a group of one: its block)."""
    groups: dict[str, list[tuple[str, tuple[int, object]]]] = {}
    for key, entry in space.block_parts(resolutions).items():
        groups.setdefault(probe_group(key), []).append((key, entry))
    chosen = {}
    for members in groups.values():
        members.sort(key=lambda m: (probe_size(m[1][1]), m[0]))
        chosen.update((members[0], members[-1]))
    return chosen


def interpolate_in_groups(sizes: dict[str, float], measured: Iterable[tuple[str, float]]) -> dict[str, float]:
    """Block key -> value, for every block of ``sizes`` (key -> :func:`probe_size`) whose probe group
    has a value in ``measured`` ((key, value) pairs, values positive): the group's values interpolated
    in log size, log-log, and held flat beyond them; a group of one, its value."""
    points: dict[str, list[tuple[float, float]]] = {}
    for key, value in measured:
        if key in sizes:
            points.setdefault(probe_group(key), []).append((np.log(sizes[key]), np.log(value)))
    out = {}
    for key, size in sizes.items():
        ends = sorted(points.get(probe_group(key), []))
        if ends:
            out[key] = float(np.exp(np.interp(np.log(size), [x for x, _ in ends], [y for _, y in ends])))
    return out
