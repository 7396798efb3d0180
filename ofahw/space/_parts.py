"""The pieces a subnet is cut into for per-block profiling, and how to rebuild each as a module."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from functools import cache

from ofahw.space._ofa import ofa_modules


@dataclass(frozen=True)
class Part:
    """One block (or stem / head piece) of a subnet at its real input shape.

    ``key`` uses OFA's lookup-table format where OFA has one (MobileNetV3, ProxylessNAS), so two
    parts with the same key compute the same thing on the same shapes. ``steps`` is a JSON list of
    ``{"layer": <ofa layer config>}`` or ``{"op": "global_avg_pool" | "flatten" | "max_pool"}``.
    """

    key: str
    steps: str
    input_shape: tuple[int, int, int]  # (channels, height, width), batch 1

    @classmethod
    def of(cls, key: str, steps: list[dict], input_shape) -> Part:
        return cls(key, json.dumps(steps, sort_keys=True), tuple(input_shape))


def build_part(part: Part):
    """A fresh, randomly initialised torch module computing ``part`` (eval mode)."""
    import torch.nn as nn

    mods = ofa_modules()
    modules = []
    for step in json.loads(part.steps):
        if "layer" in step:
            modules.append(mods.layers.set_layer_from_config(copy.deepcopy(step["layer"])))
        elif step["op"] == "global_avg_pool":
            modules.append(mods.pytorch_modules.MyGlobalAvgPool2d(keep_dim=step.get("keep_dim", True)))
        elif step["op"] == "flatten":
            modules.append(nn.Flatten())
        elif step["op"] == "max_pool":
            modules.append(nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
        else:
            raise ValueError(f"unknown part step {step}")
    return nn.Sequential(*modules).eval()


@cache
def part_cost(part: Part) -> tuple[float, float]:
    """(multiply-accumulates, parameters) of one part, counted on the built module."""
    import torch
    import torch.nn as nn

    module = build_part(part)
    macs = 0

    def count(mod, inputs, output):
        nonlocal macs
        if isinstance(mod, nn.Conv2d):
            kh, kw = mod.kernel_size
            macs += output.numel() * (mod.in_channels // mod.groups) * kh * kw
        elif isinstance(mod, nn.Linear):
            macs += output.numel() * mod.in_features

    hooks = [m.register_forward_hook(count) for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        module(torch.zeros(1, *part.input_shape))
    for hook in hooks:
        hook.remove()
    return float(macs), float(sum(p.numel() for p in module.parameters()))
